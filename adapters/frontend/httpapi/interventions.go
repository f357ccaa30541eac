package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/ports"
)

// Where the integrator mounts the nudge loop's handlers: GET
// InterventionsPath (NewInterventionsHandler) and POST InterventionsRunPath
// (NewRunInterventionHandler).
const (
	InterventionsPath    = "/interventions"
	InterventionsRunPath = "/interventions/run"
)

// manualRunRetryAfter is the Retry-After, in seconds, of a manual run
// refused because the loop's bound of manual runs is reached: a run takes
// from one decider call to most of an interval, so a few seconds is a fair
// first wait.
const manualRunRetryAfter = 5

// InterventionLister is what GET /interventions reads (a
// ports.InterventionStore).
type InterventionLister interface {
	ListInterventions(ctx context.Context, q ports.InterventionQuery) (ports.InterventionPage, error)
}

// InterventionRunner runs one evaluation of a device now (*domain.NudgeLoop).
type InterventionRunner interface {
	RunOnce(ctx context.Context, device string) (ports.Intervention, error)
}

// NudgesOff is an InterventionRunner, and its error, for a process whose
// nudge loop is off for a reason worth telling the caller (another process
// runs it): every run answers 503 with the text.
type NudgesOff string

// RunOnce refuses the run.
func (n NudgesOff) RunOnce(context.Context, string) (ports.Intervention, error) {
	return ports.Intervention{}, n
}

func (n NudgesOff) Error() string { return string(n) }

// InterventionsHandler serves GET /interventions: the nudge loop's
// decisions, newest first, in the shape of GET /captions.
type InterventionsHandler struct {
	lister  InterventionLister
	logger  *slog.Logger
	cursors *CursorSigner
}

// NewInterventionsHandler returns the GET /interventions handler; a nil
// logger means slog.Default(). It belongs behind the magic word: decisions
// quote what the wearer saw.
func NewInterventionsHandler(lister InterventionLister, logger *slog.Logger) *InterventionsHandler {
	if logger == nil {
		logger = slog.Default()
	}
	return &InterventionsHandler{lister: lister, logger: logger, cursors: processCursorSigner()}
}

// WithCursorSigner makes h seal and accept cursors with signer instead of
// the process's random key (see NewCursorSigner).
func (h *InterventionsHandler) WithCursorSigner(signer *CursorSigner) *InterventionsHandler {
	h.cursors = signer
	return h
}

// interventionJSON is one decision in a response. Absent values are null.
type interventionJSON struct {
	ID               string   `json:"id"`
	Device           string   `json:"device"`
	Time             string   `json:"time"`
	Engine           string   `json:"engine"`
	Decision         string   `json:"decision"`
	Reasoning        string   `json:"reasoning"`
	CaptionIDs       []string `json:"caption_ids"`
	BiometricIDs     []string `json:"biometric_ids"`
	Model            *string  `json:"model"`
	PromptTokens     int      `json:"prompt_tokens"`
	CompletionTokens int      `json:"completion_tokens"`
	Nudge            *string  `json:"nudge"`
	Status           string   `json:"status"`
	DeliveredAt      *string  `json:"delivered_at"`
	Attempts         int      `json:"attempts"`
	Error            *string  `json:"error"`
}

type interventionsJSON struct {
	Interventions []interventionJSON `json:"interventions"`
	NextCursor    *string            `json:"next_cursor"`
}

func toInterventionJSON(r ports.Intervention) interventionJSON {
	orNull := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	out := interventionJSON{
		ID: r.ID, Device: r.Device, Time: r.Time.UTC().Format(time.RFC3339Nano), Engine: r.Engine,
		Decision: string(r.Verdict), Reasoning: r.Reasoning, CaptionIDs: r.CaptionIDs, Model: orNull(r.Model),
		PromptTokens: r.PromptTokens, CompletionTokens: r.CompletionTokens, Nudge: orNull(r.Nudge),
		Status: string(r.Status), Attempts: r.Attempts, Error: orNull(r.Error),
	}
	if out.CaptionIDs == nil {
		out.CaptionIDs = []string{}
	}
	out.BiometricIDs = r.BiometricIDs
	if out.BiometricIDs == nil {
		out.BiometricIDs = []string{}
	}
	if !r.DeliveredAt.IsZero() {
		out.DeliveredAt = orNull(r.DeliveredAt.UTC().Format(time.RFC3339Nano))
	}
	return out
}

func (h *InterventionsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	serveList(w, r, h.logger, "intervention",
		func(r *http.Request) (ports.InterventionQuery, []*validationError) {
			return parseInterventionQuery(r, h.cursors)
		},
		func(w http.ResponseWriter, r *http.Request, q *ports.InterventionQuery) bool {
			var ok bool
			q.Devices, ok = scopeList(w, r, q.Device)
			return ok
		},
		func(ctx context.Context, q ports.InterventionQuery) (any, error) {
			page, err := h.lister.ListInterventions(ctx, q)
			if err != nil {
				return nil, err
			}
			body := interventionsJSON{Interventions: make([]interventionJSON, 0, len(page.Items))}
			for _, rec := range page.Items {
				body.Interventions = append(body.Interventions, toInterventionJSON(rec))
			}
			if page.NextCursor != "" {
				sealed := h.cursors.seal(InterventionsPath, page.NextCursor)
				body.NextCursor = &sealed
			}
			return body, nil
		})
}

// parseInterventionQuery reads device, since, limit and cursor, reporting
// every bad one the way GET /captions does.
func parseInterventionQuery(r *http.Request, cursors *CursorSigner) (ports.InterventionQuery, []*validationError) {
	values := r.URL.Query()
	var q ports.InterventionQuery
	var problems []*validationError
	if values.Has("device") {
		q.Device = values.Get("device")
		if p := checkDevice(q.Device); p != nil {
			problems = append(problems, p)
		}
	}
	if v := values.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			problems = append(problems, &validationError{Type: "datetime_parsing", Loc: []any{"query", "since"},
				Msg: "Input should be a valid datetime, in RFC 3339 form such as 2026-05-01T09:00:00Z", Input: v})
		}
		q.Since = t
	}
	if v := values.Get("limit"); values.Has("limit") {
		n, err := strconv.Atoi(v)
		loc := []any{"query", "limit"}
		switch {
		case err != nil:
			problems = append(problems, &validationError{Type: "int_parsing", Loc: loc,
				Msg: "Input should be a valid integer, unable to parse string as an integer", Input: v})
		case n < 1:
			problems = append(problems, &validationError{Type: "greater_than_equal", Loc: loc,
				Msg: "Input should be greater than or equal to 1", Input: v, Ctx: map[string]any{"ge": 1}})
		case n > ports.MaxInterventionLimit:
			problems = append(problems, &validationError{Type: "less_than_equal", Loc: loc,
				Msg: fmt.Sprintf("Input should be less than or equal to %d", ports.MaxInterventionLimit), Input: v,
				Ctx: map[string]any{"le": ports.MaxInterventionLimit}})
		}
		q.Limit = n
	}
	if v := values.Get("cursor"); v != "" {
		raw, ok := cursors.open(InterventionsPath, v)
		if _, _, err := ports.ParseInterventionCursor(raw); !ok || err != nil {
			problems = append(problems, badCursor(v))
		}
		q.Cursor = raw
	}
	return q, problems
}

func checkDevice(v string) *validationError {
	if domain.ValidDevice(v) {
		return nil
	}
	if len(v) > 80 {
		v = cutOnRune(v, 80) + "…"
	}
	return &validationError{Type: "string_pattern_mismatch", Loc: []any{"query", "device"},
		Msg: fmt.Sprintf("String should match pattern '%s'", domain.DevicePattern), Input: v,
		Ctx: map[string]any{"pattern": domain.DevicePattern}}
}

// RunInterventionHandler serves POST /interventions/run?device=<id>: one
// evaluation of the device now, answered with the decision it recorded; 404
// with no new captions, 409 while the device is busy, 429 with Retry-After while
// the loop's manual runs are all taken, 503 when the store fails.
type RunInterventionHandler struct {
	runner InterventionRunner
	logger *slog.Logger
	// limiter bounds manual runs per credential (LimitPerCredential).
	limiter CredentialLimiter
}

// LimitPerCredential bounds the runs each credential may start (429 with
// Retry-After past it); call it before serving.
func (h *RunInterventionHandler) LimitPerCredential(l CredentialLimiter) { h.limiter = l }

// NewRunInterventionHandler returns the POST /interventions/run handler; a
// nil logger means slog.Default(). It can deliver a nudge: mount it behind
// the magic word.
func NewRunInterventionHandler(runner InterventionRunner, logger *slog.Logger) *RunInterventionHandler {
	if logger == nil {
		logger = slog.Default()
	}
	return &RunInterventionHandler{runner: runner, logger: logger}
}

func (h *RunInterventionHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	values := r.URL.Query()
	if !values.Has("device") {
		writeValidation(w, &validationError{
			Type: "missing", Loc: []any{"query", "device"}, Msg: "Field required", Input: nil})
		return
	}
	device := values.Get("device")
	if p := checkDevice(device); p != nil {
		writeValidation(w, p)
		return
	}
	if !allowDevice(w, r, device) || !allowCall(w, r, h.limiter, "manual runs") {
		return
	}
	// The loop runs the evaluation on its own context, bounded by its
	// interval: a client that hangs up does not cut a delivery half-way.
	rec, err := h.runner.RunOnce(r.Context(), device)
	var off NudgesOff
	switch {
	case errors.As(err, &off):
		writeDetail(w, http.StatusServiceUnavailable, string(off))
		return
	case errors.Is(err, domain.ErrNoCaptions):
		writeDetail(w, http.StatusNotFound, fmt.Sprintf("device %q has no new captions in the window: nothing to decide on", device))
		return
	case errors.Is(err, domain.ErrEvaluationBusy):
		writeDetail(w, http.StatusConflict, fmt.Sprintf("an evaluation of device %q is already running", device))
		return
	case errors.Is(err, domain.ErrTooManyManualRuns):
		w.Header().Set("Retry-After", strconv.Itoa(manualRunRetryAfter))
		writeDetail(w, http.StatusTooManyRequests, fmt.Sprintf("too many manual runs in progress: try again in %d s", manualRunRetryAfter))
		return
	case err != nil:
		if r.Context().Err() == nil {
			h.logger.Error("intervention run failed", "device", device, "err", err)
		}
		writeDetail(w, http.StatusServiceUnavailable, "evaluation failed: store unavailable")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, toInterventionJSON(rec))
}
