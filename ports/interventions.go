package ports

import (
	"fmt"
	"strconv"
	"time"
)

// Limits of InterventionQuery.Limit, the same as captions'.
const (
	DefaultInterventionLimit = 50
	MaxInterventionLimit     = 500
)

// MaxRecentCaptions bounds what CaptionSource.RecentCaptions returns: the
// newest ones of the window, so a window's memory stays bounded whatever
// arrives in it.
const MaxRecentCaptions = 1000

// EffectiveLimit is q.Limit clamped the way stores apply it.
func (q InterventionQuery) EffectiveLimit() int {
	switch {
	case q.Limit <= 0:
		return DefaultInterventionLimit
	case q.Limit > MaxInterventionLimit:
		return MaxInterventionLimit
	}
	return q.Limit
}

// InterventionCursor is the opaque cursor after the record (t, id): a
// CaptionCursor whose id is the record's numeric id, so clients see one
// cursor form and a bad one fails the same way.
func InterventionCursor(t time.Time, id int64) string {
	return CaptionCursor{Start: t, ID: strconv.FormatInt(id, 10)}.String()
}

// ParseInterventionCursor decodes InterventionCursor; a bad cursor answers
// an error wrapping ErrBadCaptionCursor.
func ParseInterventionCursor(s string) (time.Time, int64, error) {
	c, err := ParseCaptionCursor(s)
	if err != nil {
		return time.Time{}, 0, err
	}
	id, err := strconv.ParseInt(c.ID, 10, 64)
	if err != nil || id < 1 {
		return time.Time{}, 0, fmt.Errorf("intervention cursor id: %w", ErrBadCaptionCursor)
	}
	return c.Start, id, nil
}
