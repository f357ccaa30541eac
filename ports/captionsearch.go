package ports

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// ErrInvalidCaptionQuery is wrapped by errors about a query that no store
// can run (bytes a database refuses): the caller's mistake, not an outage.
var ErrInvalidCaptionQuery = errors.New("invalid caption query")

// InvalidCaptionQueryError names the parameter of a CaptionQuery that no
// store accepts; it wraps ErrInvalidCaptionQuery.
type InvalidCaptionQueryError struct {
	// Param is the field as the HTTP API names it: device, stream, q, since, until.
	Param  string
	Reason string
}

func (e *InvalidCaptionQueryError) Error() string {
	return fmt.Sprintf("%s: %s: %s", ErrInvalidCaptionQuery, e.Param, e.Reason)
}

func (e *InvalidCaptionQueryError) Unwrap() error { return ErrInvalidCaptionQuery }

// Times a query or cursor may hold: what RFC 3339 can write, and well inside
// what every store keeps (Postgres' timestamptz ends in 294276 AD, SQLite's
// microsecond integers in 294247 AD).
var (
	MinQueryTime = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxQueryTime = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)
)

// TextProblem says why s cannot go to a database as text (invalid UTF-8 or
// a NUL byte, which Postgres refuses), or "" when it can.
func TextProblem(s string) string {
	switch {
	case !utf8.ValidString(s):
		return "not valid UTF-8"
	case strings.IndexByte(s, 0) >= 0:
		return "holds a NUL byte"
	}
	return ""
}

// Validate reports the first field no store accepts, as an
// *InvalidCaptionQueryError, or a cursor that is not one, wrapping
// ErrBadCaptionCursor. Stores call it before touching the database, so bad
// bytes get the same answer on every store.
func (q CaptionQuery) Validate() error {
	for _, f := range []struct{ param, value string }{{"device", q.Device}, {"stream", q.StreamID}, {"q", q.Text}} {
		if why := TextProblem(f.value); why != "" {
			return &InvalidCaptionQueryError{Param: f.param, Reason: why}
		}
	}
	for _, f := range []struct {
		param string
		value time.Time
	}{{"since", q.Since}, {"until", q.Until}} {
		if !f.value.IsZero() && (f.value.Before(MinQueryTime) || f.value.After(MaxQueryTime)) {
			return &InvalidCaptionQueryError{Param: f.param, Reason: "outside years 0001-9999"}
		}
	}
	if q.Cursor != "" {
		if _, err := ParseCaptionCursor(q.Cursor); err != nil {
			return err
		}
	}
	return nil
}

// SearchWords is what CaptionQuery.Text means, the same on every store: its
// words, lower-cased, each a run of letters and digits (anything else,
// quotes, minus signs and operators included, only separates words),
// without English stop words ("a", "the", "or", … as Postgres' english
// configuration lists them) and without repeats. A caption matches when it
// holds every word, stemmed. No word left means nothing matches.
func SearchWords(text string) []string {
	var words []string
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		if _, stop := englishStopWords[w]; !stop && !contains(words, w) {
			words = append(words, w)
		}
	}
	return words
}

func contains(words []string, w string) bool {
	for _, x := range words {
		if x == w {
			return true
		}
	}
	return false
}

// englishStopWords is PostgreSQL's tsearch_data/english.stop, which its
// english configuration drops from both captions and queries; dropping the
// same from every query makes SQLite (which indexes every word) agree.
var englishStopWords = func() map[string]struct{} {
	set := map[string]struct{}{}
	for _, w := range strings.Fields(`i me my myself we our ours ourselves you your yours yourself yourselves
		he him his himself she her hers herself it its itself they them their theirs themselves what which who
		whom this that these those am is are was were be been being have has had having do does did doing a an
		the and but if or because as until while of at by for with about against between into through during
		before after above below to from up down in out on off over under again further then once here there
		when where why how all any both each few more most other some such no nor not only own same so than too
		very s t can will just don should now`) {
		set[w] = struct{}{}
	}
	return set
}()

// Search bounds, the same on every store, so a search costs what its page
// costs and not what the corpus holds.
const (
	// SearchIndexRows is the most matches a search takes from the text index
	// to sort by time. A query matching more (a common word) walks the time
	// order instead.
	SearchIndexRows = 5_000
	// SearchScanRows is the most captions one page of such a walk examines:
	// a page may then hold fewer than its limit, even none, with a
	// NextCursor to go on from where the walk stopped. A page is short only
	// when the words match more than SearchIndexRows captions in all and
	// fewer than its limit of the SearchScanRows newest (after the filters).
	SearchScanRows = 2_000
)
