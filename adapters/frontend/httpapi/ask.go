package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/ports"
)

// AskPath is where the integrator mounts NewAskHandler (POST).
const AskPath = "/ask"

// maxAskBodyBytes bounds a question's body: 2,000 characters of question
// are at most 8,000 bytes, escaped at most six times that.
const maxAskBodyBytes = 64 << 10

// askTimeout bounds a whole question, retrieval and model included; the
// model's own timeout is shorter.
const askTimeout = 5 * time.Minute

// AskConfig configures POST /ask.
type AskConfig struct {
	// Asker answers; nil answers 503 with Unavailable as the detail.
	Asker       *domain.Asker
	Unavailable string
	// Authorize, when set, says whether the request may read device's
	// captions; an error answers 403.
	Authorize func(r *http.Request, device string) error
	Logger    *slog.Logger
}

// AskHandler serves POST /ask.
type AskHandler struct{ cfg AskConfig }

// NewAskHandler returns the POST /ask handler. It belongs behind the magic
// word: answers quote what the wearer saw.
func NewAskHandler(cfg AskConfig) *AskHandler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Unavailable == "" {
		cfg.Unavailable = "no ask model is configured"
	}
	return &AskHandler{cfg: cfg}
}

type citationJSON struct {
	Ref     int    `json:"ref"`
	ID      string `json:"id"`
	Start   string `json:"start"`
	End     string `json:"end"`
	Caption string `json:"caption"`
}

type askJSON struct {
	Answer    string         `json:"answer"`
	Citations []citationJSON `json:"citations"`
	Retrieved int            `json:"retrieved"`
	Omitted   int            `json:"omitted"`
	Model     *string        `json:"model"` // null when no model was asked
	LatencyMS float64        `json:"latency_ms"`
	Retrieval string         `json:"retrieval"`
	Since     string         `json:"since"`
	Until     string         `json:"until"`
}

func (h *AskHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAskBodyBytes))
	if err != nil {
		writeDetail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", maxAskBodyBytes))
		return
	}
	req, problems := parseAsk(body)
	if len(problems) > 0 {
		writeValidation(w, problems...)
		return
	}
	if !allowDevice(w, r, req.Device) { // a device token: its own devices only
		return
	}
	if h.cfg.Authorize != nil {
		if err := h.cfg.Authorize(r, req.Device); err != nil {
			writeDetail(w, http.StatusForbidden, "not allowed to read this device")
			return
		}
	}
	if h.cfg.Asker == nil {
		writeDetail(w, http.StatusServiceUnavailable, h.cfg.Unavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), askTimeout)
	defer cancel()
	h.cfg.Logger.Debug("ask", "device", req.Device, "question_chars", utf8.RuneCountInString(req.Question))

	var sse *sseWriter
	var onDelta func(string)
	if strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		sse = &sseWriter{w: w}
		onDelta = func(piece string) { sse.event("delta", map[string]string{"text": piece}) }
	}
	ans, err := h.cfg.Asker.Ask(ctx, req, onDelta)
	if errors.Is(err, domain.ErrAskRange) { // since alone, after now
		writeValidation(w, &validationError{Type: "value_error", Loc: []any{"body", "since"},
			Msg: "Value error, since must be before until (default: now)", Input: req.Since.Format(time.RFC3339Nano)})
		return
	}
	if err != nil {
		status, detail := h.askFailure(r, req.Device, err)
		if sse != nil && sse.started {
			sse.event("error", map[string]any{"status": status, "detail": detail})
			return
		}
		writeDetail(w, status, detail)
		return
	}
	out := askJSON{
		Answer: ans.Text, Citations: make([]citationJSON, 0, len(ans.Citations)),
		Retrieved: ans.Retrieved, Omitted: ans.Omitted, Retrieval: ans.Retrieval,
		LatencyMS: float64(ans.Latency.Microseconds()) / 1000,
		Since:     ans.Since.Format(time.RFC3339Nano), Until: ans.Until.Format(time.RFC3339Nano),
	}
	if ans.Model != "" {
		out.Model = &ans.Model
	}
	for _, c := range ans.Citations {
		out.Citations = append(out.Citations, citationJSON{Ref: c.Ref, ID: c.Caption.ID,
			Start: c.Caption.Start.UTC().Format(time.RFC3339Nano), End: c.Caption.End.UTC().Format(time.RFC3339Nano),
			Caption: c.Caption.Text})
	}
	if sse != nil {
		sse.event("done", out)
		return
	}
	w.Header().Set("Cache-Control", "no-store") // private: what the wearer saw
	writeJSON(w, http.StatusOK, out)
}

// askFailure maps an Ask error to a status and a short detail that quotes
// nothing of the model's server, key or captions.
func (h *AskHandler) askFailure(r *http.Request, device string, err error) (int, string) {
	switch {
	case errors.Is(err, ports.ErrChatTimeout):
		h.cfg.Logger.Warn("ask: the model timed out", "device", device)
		return http.StatusGatewayTimeout, "the ask model did not answer in time"
	case errors.Is(err, ports.ErrChatFailed):
		h.cfg.Logger.Warn("ask: the model failed", "device", device, "err", err)
		return http.StatusBadGateway, "the ask model failed"
	}
	if r.Context().Err() == nil {
		h.cfg.Logger.Error("ask failed", "device", device, "err", err)
	}
	return http.StatusServiceUnavailable, "caption store unavailable"
}

// sseWriter writes server-sent events; the 200 and headers go out with
// the first event, so a failure before it still gets its own status.
type sseWriter struct {
	w       http.ResponseWriter
	started bool
}

func (s *sseWriter) event(name string, data any) {
	if !s.started {
		s.started = true
		h := s.w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Accel-Buffering", "no") // proxies must not hold the stream back
		s.w.WriteHeader(http.StatusOK)
	}
	b, _ := json.Marshal(data) // one line: JSON escapes newlines
	_, _ = fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", name, b)
	_ = http.NewResponseController(s.w).Flush()
}

// parseAsk validates {"device", "question", "since"?, "until"?} the way
// FastAPI and pydantic do, reporting every bad field.
func parseAsk(body []byte) (domain.AskRequest, []*validationError) {
	var req domain.AskRequest
	if len(bytes.TrimSpace(body)) == 0 {
		return req, []*validationError{{Type: "missing", Loc: []any{"body"}, Msg: "Field required", Input: nil}}
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil || dec.Decode(new(any)) != io.EOF {
		return req, []*validationError{{Type: "json_invalid", Loc: []any{"body", 0}, Msg: "JSON decode error",
			Input: map[string]any{}, Ctx: map[string]any{"error": "Expecting value"}}}
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return req, []*validationError{{Type: "model_attributes_type", Loc: []any{"body"},
			Msg: "Input should be a valid dictionary or object to extract fields from", Input: doc}}
	}
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(body, &fields)
	var problems []*validationError
	str := func(name string, required bool) (string, bool) {
		raw, ok := obj[name]
		if !ok || (!required && raw == nil) {
			if required {
				problems = append(problems, &validationError{Type: "missing", Loc: []any{"body", name}, Msg: "Field required", Input: obj})
			}
			return "", false
		}
		v, ok := raw.(string)
		if !ok {
			problems = append(problems, &validationError{Type: "string_type", Loc: []any{"body", name}, Msg: "Input should be a valid string", Input: raw})
			return "", false
		}
		if !validUnicodeString(fields[name]) {
			problems = append(problems, &validationError{Type: "string_unicode", Loc: []any{"body", name},
				Msg: "Input should be a valid string, unable to parse raw data as a unicode string", Input: v})
			return "", false
		}
		return v, true
	}
	if v, ok := str("device", true); ok {
		if p := checkDevice(v); p != nil {
			p.Loc = []any{"body", "device"}
			problems = append(problems, p)
		}
		req.Device = v
	}
	if v, ok := str("question", true); ok {
		switch n := utf8.RuneCountInString(strings.TrimSpace(v)); {
		case n == 0:
			problems = append(problems, &validationError{Type: "string_too_short", Loc: []any{"body", "question"},
				Msg: "String should have at least 1 character", Input: v, Ctx: map[string]any{"min_length": 1}})
		case utf8.RuneCountInString(v) > domain.MaxQuestionChars:
			problems = append(problems, &validationError{Type: "string_too_long", Loc: []any{"body", "question"},
				Msg:   fmt.Sprintf("String should have at most %d characters", domain.MaxQuestionChars),
				Input: cutOnRune(v, 64) + "…", Ctx: map[string]any{"max_length": domain.MaxQuestionChars}})
		}
		req.Question = v
	}
	timeField := func(name string) time.Time {
		v, ok := str(name, false)
		if !ok {
			return time.Time{}
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			problems = append(problems, &validationError{Type: "datetime_parsing", Loc: []any{"body", name},
				Msg: "Input should be a valid datetime, in RFC 3339 form such as 2026-05-01T09:00:00Z", Input: cutOnRune(v, 64)})
		}
		return t
	}
	req.Since, req.Until = timeField("since"), timeField("until")
	if len(problems) == 0 && !req.Since.IsZero() && !req.Until.IsZero() && !req.Since.Before(req.Until) {
		problems = append(problems, &validationError{Type: "value_error", Loc: []any{"body", "since"},
			Msg: "Value error, since must be before until", Input: fields["since"]})
	}
	return req, problems
}
