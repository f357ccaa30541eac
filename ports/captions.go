package ports

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// Caption is one delivered model caption, as kept in the visual memory.
// Stores keep times at microsecond precision in UTC.
type Caption struct {
	// ID is unique per caption and chosen by the caller, so a retried batch
	// is stored once.
	ID       string
	Device   string
	StreamID string
	// Start and End are the wall-clock bounds of the chunk the caption describes.
	Start time.Time
	End   time.Time
	// ChunkStartS and ChunkEndS are the same bounds in seconds since the stream began.
	ChunkStartS float64
	ChunkEndS   float64
	Text        string
	LatencyMS   float64
	Tokens      int64
	Backend     string
	Model       string
}

// Limits of CaptionQuery.Limit.
const (
	DefaultCaptionLimit = 50
	MaxCaptionLimit     = 500
)

// CaptionQuery selects captions, newest first. Zero fields do not filter.
type CaptionQuery struct {
	Device string
	// Devices, when non-nil, keeps only captions of these devices (with
	// Device too, both must hold); an empty non-nil set matches nothing. An
	// access scope sets it, so a list never reaches beyond its devices.
	Devices  []string
	StreamID string
	// Since is inclusive and Until exclusive; both compare with Caption.Start.
	Since time.Time
	Until time.Time
	// Text is a full-text search over the caption: the captions holding
	// every word of it (stemmed), whatever other text it holds; SearchWords
	// says exactly what a word is.
	Text string
	// Limit is clamped to [1, MaxCaptionLimit]; zero means DefaultCaptionLimit.
	Limit int
	// Cursor is CaptionPage.NextCursor of the previous page; empty starts at the newest.
	Cursor string
}

// EffectiveLimit is q.Limit clamped the way stores apply it.
func (q CaptionQuery) EffectiveLimit() int {
	switch {
	case q.Limit <= 0:
		return DefaultCaptionLimit
	case q.Limit > MaxCaptionLimit:
		return MaxCaptionLimit
	}
	return q.Limit
}

// CaptionPage is one page of a query.
type CaptionPage struct {
	Captions []Caption
	// NextCursor continues after the last caption; empty when there is no more.
	NextCursor string
}

// CaptionSink takes each caption a stream delivers, as the ack that carries
// it is written (domain.Recorder keeps them in a store). Record is called on
// the ack path: it must not block, and must be safe for concurrent use.
type CaptionSink interface {
	Record(Caption)
}

// NopCaptionSink is a CaptionSink that keeps nothing.
type NopCaptionSink struct{}

func (NopCaptionSink) Record(Caption) {}

// CaptionWriter saves captions.
type CaptionWriter interface {
	// SaveCaptions stores a batch in one transaction: all or none. A caption
	// whose ID is already stored is skipped, so retrying a batch is safe.
	SaveCaptions(ctx context.Context, captions []Caption) error
}

// CaptionReader answers queries over the stored captions.
type CaptionReader interface {
	// QueryCaptions returns one page, newest (Start, then ID) first. A bad
	// Cursor answers an error wrapping ErrBadCaptionCursor, and a query that
	// CaptionQuery.Validate refuses one wrapping ErrInvalidCaptionQuery,
	// before any database work. A search page may hold fewer captions than
	// its limit while NextCursor is set (see SearchScanRows).
	QueryCaptions(ctx context.Context, q CaptionQuery) (CaptionPage, error)
}

// CaptionPruner deletes old captions for retention.
type CaptionPruner interface {
	// DeleteCaptionsBefore deletes at most limit captions whose Start is
	// before t and returns how many it deleted; callers repeat while it
	// returns limit, so no single call holds the database for long.
	DeleteCaptionsBefore(ctx context.Context, t time.Time, limit int) (int, error)
}

// CaptionStore is everything a caption database offers.
type CaptionStore interface {
	CaptionWriter
	CaptionReader
	CaptionPruner
	// Close releases the database; nothing may be called after it.
	Close() error
}

// ErrBadCaptionCursor is wrapped by errors about an unreadable cursor.
var ErrBadCaptionCursor = errors.New("invalid caption cursor")

// CaptionCursor is a keyset position: the (Start, ID) of the last caption
// of a page. Its string form is opaque to clients.
type CaptionCursor struct {
	Start time.Time
	ID    string
}

// maxCursorIDBytes bounds the id inside a cursor, so a cursor stays small.
const maxCursorIDBytes = 128

// String encodes the cursor as unpadded URL-safe base64 of the start in
// Unix microseconds (8 bytes, big endian) followed by the id.
func (c CaptionCursor) String() string {
	buf := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(c.ID)), uint64(c.Start.UnixMicro()))
	return base64.RawURLEncoding.EncodeToString(append(buf, c.ID...))
}

// ParseCaptionCursor decodes CaptionCursor.String.
func ParseCaptionCursor(s string) (CaptionCursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) <= 8 || len(raw) > 8+maxCursorIDBytes {
		return CaptionCursor{}, ErrBadCaptionCursor
	}
	start := time.UnixMicro(int64(binary.BigEndian.Uint64(raw[:8]))).UTC()
	id := string(raw[8:])
	// Only what a store could have written: a readable id and a time every
	// store can compare with.
	if TextProblem(id) != "" || start.Before(MinQueryTime) || start.After(MaxQueryTime) {
		return CaptionCursor{}, ErrBadCaptionCursor
	}
	return CaptionCursor{Start: start, ID: id}, nil
}
