package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/foresight-vision/foresight/adapters/protocol/wire"
	"github.com/foresight-vision/foresight/ports"
)

// CaptionsPath is where the integrator mounts NewCaptionsHandler (GET).
const CaptionsPath = "/captions"

// Bounds on GET /captions parameters.
const (
	maxCaptionQueryTextLen = 256
	maxCaptionStreamLen    = 128
)

// CaptionsHandler serves GET /captions: the stored captions, newest first.
type CaptionsHandler struct {
	reader ports.CaptionReader
	logger *slog.Logger
}

// NewCaptionsHandler returns the GET /captions handler over reader; a nil
// logger means slog.Default(). It belongs behind the magic word: captions
// are what the wearer saw.
func NewCaptionsHandler(reader ports.CaptionReader, logger *slog.Logger) *CaptionsHandler {
	if logger == nil {
		logger = slog.Default()
	}
	return &CaptionsHandler{reader: reader, logger: logger}
}

// captionJSON is one caption in the response.
type captionJSON struct {
	ID       string `json:"id"`
	Device   string `json:"device"`
	StreamID string `json:"stream_id"`
	Start    string `json:"start"`
	End      string `json:"end"`
	// The model's fields, under the ack's names.
	wire.CaptionFields
	Backend string `json:"backend"`
	Model   string `json:"model"`
}

type captionsJSON struct {
	Captions   []captionJSON `json:"captions"`
	NextCursor *string       `json:"next_cursor"`
}

func (h *CaptionsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	serveList(w, r, h.logger, "caption", parseCaptionQuery,
		func(w http.ResponseWriter, r *http.Request, q *ports.CaptionQuery) bool {
			var ok bool
			q.Devices, ok = scopeList(w, r, q.Device)
			return ok
		},
		func(q ports.CaptionQuery) string { return q.Cursor },
		func(ctx context.Context, q ports.CaptionQuery) (any, error) {
			page, err := h.reader.QueryCaptions(ctx, q)
			if err != nil {
				return nil, err
			}
			body := captionsJSON{Captions: make([]captionJSON, 0, len(page.Captions))}
			for _, c := range page.Captions {
				body.Captions = append(body.Captions, toCaptionJSON(c))
			}
			if page.NextCursor != "" {
				body.NextCursor = &page.NextCursor
			}
			return body, nil
		})
}

// listQueryTimeout bounds one store query of a list route, so a stuck
// database does not hold the request.
const listQueryTimeout = 10 * time.Second

// serveList is the skeleton GET /captions and GET /interventions share:
// parse the query (422 listing every bad parameter), run it within
// listQueryTimeout (422 for a cursor the store refuses, 503 without
// details when the store fails), and answer the page, never cached. what
// names the store in the log line and the 503.
func serveList[Q any](w http.ResponseWriter, r *http.Request, logger *slog.Logger, what string,
	parse func(*http.Request) (Q, []*validationError), scope func(http.ResponseWriter, *http.Request, *Q) bool,
	cursor func(Q) string, query func(context.Context, Q) (any, error)) {
	q, problems := parse(r)
	if len(problems) > 0 {
		writeValidation(w, problems...)
		return
	}
	if !scope(w, r, &q) {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), listQueryTimeout)
	defer cancel()
	body, err := query(ctx, q)
	switch {
	case errors.Is(err, ports.ErrBadCaptionCursor):
		writeValidation(w, badCursor(cursor(q)))
		return
	case err != nil:
		if r.Context().Err() == nil {
			logger.Error(what+" query failed", "err", err)
		}
		writeDetail(w, http.StatusServiceUnavailable, what+" store unavailable")
		return
	}
	w.Header().Set("Cache-Control", "no-store") // private: what the wearer saw
	writeJSON(w, http.StatusOK, body)
}

// parseCaptionQuery reads the query string, reporting every bad parameter
// the way FastAPI does.
func parseCaptionQuery(r *http.Request) (ports.CaptionQuery, []*validationError) {
	values := r.URL.Query()
	var q ports.CaptionQuery
	var problems []*validationError
	loc := func(name string) []any { return []any{"query", name} }

	if v := values.Get("device"); values.Has("device") {
		if p := checkDevice(v); p != nil {
			problems = append(problems, p)
		}
		q.Device = v
	}
	stringParam := func(name string, maxLen int) string {
		v := values.Get(name)
		if len(v) > maxLen {
			problems = append(problems, &validationError{Type: "string_too_long", Loc: loc(name),
				Msg: fmt.Sprintf("String should have at most %d characters", maxLen), Input: cutOnRune(v, maxLen) + "…",
				Ctx: map[string]any{"max_length": maxLen}})
		}
		return v
	}
	q.StreamID = stringParam("stream", maxCaptionStreamLen)
	q.Text = stringParam("q", maxCaptionQueryTextLen)

	timeParam := func(name string) time.Time {
		v := values.Get(name)
		if v == "" {
			return time.Time{}
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			problems = append(problems, &validationError{Type: "datetime_parsing", Loc: loc(name),
				Msg: "Input should be a valid datetime, in RFC 3339 form such as 2026-05-01T09:00:00Z", Input: v})
		}
		return t
	}
	q.Since, q.Until = timeParam("since"), timeParam("until")

	if v := values.Get("limit"); values.Has("limit") {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			problems = append(problems, &validationError{Type: "int_parsing", Loc: loc("limit"),
				Msg: "Input should be a valid integer, unable to parse string as an integer", Input: v})
		case n < 1:
			problems = append(problems, &validationError{Type: "greater_than_equal", Loc: loc("limit"),
				Msg: "Input should be greater than or equal to 1", Input: v, Ctx: map[string]any{"ge": 1}})
		case n > ports.MaxCaptionLimit:
			problems = append(problems, &validationError{Type: "less_than_equal", Loc: loc("limit"),
				Msg: fmt.Sprintf("Input should be less than or equal to %d", ports.MaxCaptionLimit), Input: v,
				Ctx: map[string]any{"le": ports.MaxCaptionLimit}})
		}
		q.Limit = n
	}
	if v := values.Get("cursor"); v != "" {
		if _, err := ports.ParseCaptionCursor(v); err != nil {
			problems = append(problems, badCursor(v))
		}
		q.Cursor = v
	}
	return q, problems
}

func badCursor(v string) *validationError {
	if len(v) > 64 {
		v = cutOnRune(v, 64) + "…"
	}
	return &validationError{Type: "value_error", Loc: []any{"query", "cursor"},
		Msg: "Value error, not a cursor this server gave out", Input: v}
}

// cutOnRune keeps at most n bytes of v without splitting a rune, so the
// echoed input never ends in a broken character.
func cutOnRune(v string, n int) string {
	if len(v) <= n {
		return v
	}
	for n > 0 && !utf8.RuneStart(v[n]) {
		n--
	}
	return v[:n]
}
