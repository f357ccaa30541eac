package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
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
	reader  ports.CaptionReader
	logger  *slog.Logger
	cursors *CursorSigner
}

// NewCaptionsHandler returns the GET /captions handler over reader; a nil
// logger means slog.Default(). It belongs behind the magic word: captions
// are what the wearer saw.
func NewCaptionsHandler(reader ports.CaptionReader, logger *slog.Logger) *CaptionsHandler {
	if logger == nil {
		logger = slog.Default()
	}
	return &CaptionsHandler{reader: reader, logger: logger, cursors: processCursorSigner()}
}

// WithCursorSigner makes h seal and accept cursors with signer instead of
// the process's random key (see NewCursorSigner).
func (h *CaptionsHandler) WithCursorSigner(signer *CursorSigner) *CaptionsHandler {
	h.cursors = signer
	return h
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
	serveList(w, r, h.logger, "caption",
		func(r *http.Request) (ports.CaptionQuery, []*validationError) { return parseCaptionQuery(r, h.cursors) },
		func(w http.ResponseWriter, r *http.Request, q *ports.CaptionQuery) bool {
			var ok bool
			q.Devices, ok = scopeList(w, r, q.Device)
			return ok
		},
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
				sealed := h.cursors.seal(CaptionsPath, page.NextCursor)
				body.NextCursor = &sealed
			}
			return body, nil
		})
}

// listQueryTimeout bounds one store query of a list route, so a stuck
// database does not hold the request.
const listQueryTimeout = 10 * time.Second

// serveList is the skeleton GET /captions and GET /interventions share:
// parse the query (422 listing every bad parameter), run it within
// listQueryTimeout (422 for a cursor or a parameter the store refuses,
// 503 without details when the store fails), and answer the page, never cached. what
// names the store in the log line and the 503.
func serveList[Q any](w http.ResponseWriter, r *http.Request, logger *slog.Logger, what string,
	parse func(*http.Request) (Q, []*validationError), scope func(http.ResponseWriter, *http.Request, *Q) bool,
	query func(context.Context, Q) (any, error)) {
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
	var invalid *ports.InvalidCaptionQueryError
	switch {
	case errors.Is(err, ports.ErrBadCaptionCursor):
		writeValidation(w, badCursor(r.URL.Query().Get("cursor")))
		return
	case errors.As(err, &invalid): // parse checks the same; a store's refusal is still no outage
		writeValidation(w, &validationError{Type: "value_error", Loc: []any{"query", invalid.Param},
			Msg: "Value error, " + invalid.Reason, Input: echo(r.URL.Query().Get(invalid.Param))})
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
func parseCaptionQuery(r *http.Request, cursors *CursorSigner) (ports.CaptionQuery, []*validationError) {
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
		} else if p := checkText(name, v); p != nil {
			problems = append(problems, p)
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
		switch {
		case err != nil:
			problems = append(problems, &validationError{Type: "datetime_parsing", Loc: loc(name),
				Msg: "Input should be a valid datetime, in RFC 3339 form such as 2026-05-01T09:00:00Z", Input: echo(v)})
		case t.Before(ports.MinQueryTime) || t.After(ports.MaxQueryTime): // year 0000, or an offset past 9999
			problems = append(problems, &validationError{Type: "value_error", Loc: loc(name),
				Msg: "Value error, outside years 0001-9999", Input: v})
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
		raw, ok := cursors.open(CaptionsPath, v)
		if _, err := ports.ParseCaptionCursor(raw); !ok || err != nil {
			problems = append(problems, badCursor(v))
		}
		q.Cursor = raw
	}
	return q, problems
}

// checkText refuses what no store takes as text: invalid UTF-8 and NUL.
func checkText(name, v string) *validationError {
	switch why := ports.TextProblem(v); {
	case why == "":
		return nil
	case !utf8.ValidString(v):
		return &validationError{Type: "string_unicode", Loc: []any{"query", name},
			Msg: "Input should be a valid string, unable to parse raw data as a unicode string", Input: echo(v)}
	default:
		return &validationError{Type: "value_error", Loc: []any{"query", name},
			Msg: "Value error, " + why, Input: echo(v)}
	}
}

// echo is v as a 422 may repeat it: at most 64 bytes, broken bytes shown
// as U+FFFD.
func echo(v string) string {
	v = strings.ToValidUTF8(v, "\uFFFD")
	if len(v) > 64 {
		v = cutOnRune(v, 64) + "…"
	}
	return v
}

func badCursor(v string) *validationError {
	return &validationError{Type: "value_error", Loc: []any{"query", "cursor"},
		Msg: "Value error, not a cursor this server gave out", Input: echo(v)}
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
