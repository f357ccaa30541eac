package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"time"

	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/ports"
)

// Where the biometric routes are mounted: POST BiometricsUploadPath (the
// wearer app's upload, wire-compatible with the original) and GET
// BiometricsPath (the stored windows, newest first).
const (
	BiometricsUploadPath = "/biometrics/upload"
	BiometricsPath       = "/biometrics"
)

// Bounds of the upload.
const (
	// MaxBiometricBodyBytes bounds an upload's body; a window is about 2 KiB.
	MaxBiometricBodyBytes = 64 << 10
	maxWindowIDLen        = 128
	biometricBodyTimeout  = 10 * time.Second
	biometricTakeTimeout  = 5 * time.Second
)

// BiometricFeatureFields are the upload's numeric fields, each a number or
// null (the shared doc's table; timestamp and durationMs are read apart).
var BiometricFeatureFields = []string{
	"qualityScore", "ppgSampleCount", "accelSampleCount", "peakCount", "validRRCount",
	"hrMean", "hrStd", "hrMin", "hrMax",
	"meanRR", "sdnn", "rmssd", "sdsd", "medianRR", "rangeRR", "iqrRR", "pnn50", "pnn20", "cvnn", "cvsd",
	"sd1", "sd2", "sd1sd2", "poincareArea",
	"accelMeanX", "accelMeanY", "accelMeanZ", "accelStdX", "accelStdY", "accelStdZ",
	"accelMagnitudeMean", "accelMagnitudeStd", "accelMagnitudeMax", "movementIntensity", "accelEnergy",
}

// BiometricIntake is what the upload hands a window to (domain.BiometricIntake).
type BiometricIntake interface {
	Take(ctx context.Context, w ports.BiometricWindow) (storedAt time.Time, err error)
}

// BiometricUploadHandler serves POST /biometrics/upload.
type BiometricUploadHandler struct {
	intake    BiometricIntake
	authorize Authorizer
	logger    *slog.Logger
}

// NewBiometricUploadHandler returns the upload handler; authorize, when set,
// may refuse the request's device (403); a nil logger means slog.Default().
func NewBiometricUploadHandler(intake BiometricIntake, authorize Authorizer, logger *slog.Logger) *BiometricUploadHandler {
	if logger == nil {
		logger = slog.Default()
	}
	return &BiometricUploadHandler{intake: intake, authorize: authorize, logger: logger}
}

type uploadAnswer struct {
	Success  bool   `json:"success"`
	WindowID string `json:"windowId"`
	StoredAt int64  `json:"storedAt"`
}

func (h *BiometricUploadHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// As on the stream: device=, else x-foresight-device, else a device
	// token's only device, else the default; a token's other devices 403.
	device, status, detail := streamDevice(r)
	if status == http.StatusForbidden {
		writeDetail(w, status, detail)
		return
	}
	if status != 0 {
		p := checkDevice(r.URL.Query().Get("device"))
		if p == nil || !r.URL.Query().Has("device") {
			p = &validationError{Type: "string_pattern_mismatch", Loc: []any{"header", "x-foresight-device"},
				Msg: fmt.Sprintf("String should match pattern '%s'", domain.DevicePattern), Input: nil}
		}
		writeValidation(w, p)
		return
	}
	if h.authorize != nil {
		if err := h.authorize(r, device); err != nil {
			writeDetail(w, http.StatusForbidden, err.Error())
			return
		}
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(biometricBodyTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBiometricBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeValidation(w, &validationError{Type: "too_long", Loc: []any{"body"},
				Msg: fmt.Sprintf("Body should be at most %d bytes", MaxBiometricBodyBytes), Input: nil,
				Ctx: map[string]any{"max_length": MaxBiometricBodyBytes}})
			return
		}
		writeDetail(w, http.StatusBadRequest, "could not read request body")
		return
	}
	win, problems := ParseBiometricUpload(body)
	if len(problems) > 0 {
		writeValidation(w, problems...)
		return
	}
	win.Device = device
	if win.Start.IsZero() {
		win.Start = time.Now().UTC().Truncate(time.Microsecond)
	}
	ctx, cancel := context.WithTimeout(r.Context(), biometricTakeTimeout)
	defer cancel()
	storedAt, err := h.intake.Take(ctx, win)
	switch {
	case errors.Is(err, domain.ErrQueueFull):
		w.Header().Set("Retry-After", "5")
		writeDetail(w, http.StatusServiceUnavailable, "biometric store is behind: the window was not taken, retry later")
		return
	case err != nil:
		if r.Context().Err() == nil {
			h.logger.Error("biometric upload failed", "device", device, "err", err)
		}
		writeDetail(w, http.StatusServiceUnavailable, "biometric store unavailable")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, uploadAnswer{Success: true, WindowID: win.WindowID, StoredAt: storedAt.UnixMilli()})
}

// ParseBiometricUpload checks the app's flat JSON body and returns its
// window (device and StoredAt unset; Start zero without a timestamp),
// or every problem the way FastAPI lists them. Unknown numeric fields are
// kept among the features; unknown fields of other types are ignored.
func ParseBiometricUpload(body []byte) (ports.BiometricWindow, []*validationError) {
	var doc any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil || dec.Decode(new(any)) != io.EOF {
		return ports.BiometricWindow{}, []*validationError{{Type: "json_invalid", Loc: []any{"body", 0},
			Msg: "JSON decode error", Input: map[string]any{}, Ctx: map[string]any{"error": "Expecting value"}}}
	}
	var fields map[string]json.RawMessage
	if _, isObject := doc.(map[string]any); !isObject || json.Unmarshal(body, &fields) != nil {
		return ports.BiometricWindow{}, []*validationError{{Type: "model_attributes_type", Loc: []any{"body"},
			Msg: "Input should be a valid dictionary or object to extract fields from", Input: echoJSON(body)}}
	}
	var problems []*validationError
	var win ports.BiometricWindow
	loc := func(name string) []any { return []any{"body", name} }

	if raw, ok := fields["windowId"]; !ok {
		problems = append(problems, &validationError{Type: "missing", Loc: loc("windowId"), Msg: "Field required", Input: nil})
	} else if err := json.Unmarshal(raw, &win.WindowID); err != nil || isNull(raw) {
		problems = append(problems, &validationError{Type: "string_type", Loc: loc("windowId"),
			Msg: "Input should be a valid string", Input: echoJSON(raw)})
	} else if win.WindowID == "" || len(win.WindowID) > maxWindowIDLen {
		problems = append(problems, &validationError{Type: "string_too_long", Loc: loc("windowId"),
			Msg: fmt.Sprintf("String should have 1 to %d characters", maxWindowIDLen), Input: cutOnRune(win.WindowID, 64),
			Ctx: map[string]any{"min_length": 1, "max_length": maxWindowIDLen}})
	}
	number := func(name string, raw json.RawMessage) (float64, bool) {
		var n json.Number
		if err := json.Unmarshal(raw, &n); err == nil && !isNull(raw) {
			if v, err := n.Float64(); err == nil && !math.IsInf(v, 0) {
				return v, true
			}
		}
		problems = append(problems, &validationError{Type: "float_type", Loc: loc(name),
			Msg: "Input should be a valid number", Input: echoJSON(raw)})
		return 0, false
	}
	if raw, ok := fields["timestamp"]; ok {
		if ms, ok := number("timestamp", raw); ok {
			win.Start = time.UnixMicro(int64(ms * 1000)).UTC()
		}
	}
	if raw, ok := fields["durationMs"]; ok && !isNull(raw) {
		if ms, ok := number("durationMs", raw); ok {
			if ms < 0 || ms > float64(24*time.Hour/time.Millisecond) {
				problems = append(problems, &validationError{Type: "value_error", Loc: loc("durationMs"),
					Msg: "Value error, durationMs must be between 0 and one day", Input: echoJSON(raw)})
			}
			win.Duration = time.Duration(ms * float64(time.Millisecond)).Round(time.Microsecond)
		}
	}
	win.Features = map[string]*float64{}
	for _, name := range BiometricFeatureFields {
		raw, ok := fields[name]
		if !ok {
			continue
		}
		if isNull(raw) {
			win.Features[name] = nil
			continue
		}
		if v, ok := number(name, raw); ok {
			win.Features[name] = &v
		}
	}
	for name, raw := range fields {
		if _, known := win.Features[name]; known || slices.Contains(BiometricFeatureFields, name) ||
			name == "windowId" || name == "timestamp" || name == "durationMs" || name == "riskPrediction" {
			continue
		}
		var n json.Number
		if json.Unmarshal(raw, &n) == nil && !isNull(raw) && len(name) <= 64 {
			if v, err := n.Float64(); err == nil && !math.IsInf(v, 0) {
				win.Features[name] = &v // a later app's field: kept
			}
		}
	}
	if raw, ok := fields["riskPrediction"]; ok && !isNull(raw) {
		var risk map[string]json.RawMessage
		if err := json.Unmarshal(raw, &risk); err != nil || risk == nil {
			problems = append(problems, &validationError{Type: "model_type", Loc: loc("riskPrediction"),
				Msg: "Input should be an object or null", Input: echoJSON(raw)})
		} else {
			win.Risk = raw
			riskLoc := func(name string) []any { return []any{"body", "riskPrediction", name} }
			if a, ok := risk["alertLevel"]; ok && !isNull(a) {
				if err := json.Unmarshal(a, &win.AlertLevel); err != nil || ports.AlertRank(win.AlertLevel) < 0 {
					win.AlertLevel = ""
					problems = append(problems, &validationError{Type: "enum", Loc: riskLoc("alertLevel"),
						Msg:   "Input should be 'NO ALERT', 'LOW ALERT', 'MODERATE ALERT', 'HIGH ALERT' or 'CRITICAL ALERT'",
						Input: echoJSON(a)})
				}
			}
			if s, ok := risk["overallSusceptibility"]; ok && !isNull(s) {
				var n json.Number
				v, err := float64(0), json.Unmarshal(s, &n)
				if err == nil {
					v, err = n.Float64()
				}
				if err != nil {
					problems = append(problems, &validationError{Type: "float_type", Loc: riskLoc("overallSusceptibility"),
						Msg: "Input should be a valid number", Input: echoJSON(s)})
				} else {
					win.Susceptibility = &v
				}
			}
		}
	}
	return win, problems
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// echoJSON is a bad JSON value as the 422 quotes it: short, and JSON.
func echoJSON(raw json.RawMessage) any {
	s := string(bytes.TrimSpace(raw))
	if len(s) > 64 {
		return cutOnRune(s, 64) + "…"
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return s
	}
	return v
}

// BiometricsHandler serves GET /biometrics: the stored windows, newest first.
type BiometricsHandler struct {
	store   ports.BiometricStore
	logger  *slog.Logger
	cursors *CursorSigner
}

// NewBiometricsHandler returns the GET /biometrics handler over store.
func NewBiometricsHandler(store ports.BiometricStore, logger *slog.Logger) *BiometricsHandler {
	if logger == nil {
		logger = slog.Default()
	}
	return &BiometricsHandler{store: store, logger: logger, cursors: processCursorSigner()}
}

// biometricJSON is one window in the response: the app's names for the
// features, ours for the rest.
type biometricJSON struct {
	Device         string              `json:"device"`
	WindowID       string              `json:"window_id"`
	Start          string              `json:"start"`
	DurationMS     float64             `json:"duration_ms"`
	StoredAt       string              `json:"stored_at"`
	Features       map[string]*float64 `json:"features"`
	AlertLevel     *string             `json:"alert_level"`
	Susceptibility *float64            `json:"susceptibility"`
	RiskPrediction json.RawMessage     `json:"risk_prediction"`
}

type biometricsJSON struct {
	Biometrics []biometricJSON `json:"biometrics"`
	NextCursor *string         `json:"next_cursor"`
}

func toBiometricJSON(w ports.BiometricWindow) biometricJSON {
	out := biometricJSON{Device: w.Device, WindowID: w.WindowID, Start: w.Start.UTC().Format(time.RFC3339Nano),
		DurationMS: float64(w.Duration) / float64(time.Millisecond), StoredAt: w.StoredAt.UTC().Format(time.RFC3339Nano),
		Features: w.Features, Susceptibility: w.Susceptibility, RiskPrediction: w.Risk}
	if out.Features == nil {
		out.Features = map[string]*float64{}
	}
	if w.AlertLevel != "" {
		out.AlertLevel = &w.AlertLevel
	}
	if len(out.RiskPrediction) == 0 {
		out.RiskPrediction = json.RawMessage("null")
	}
	return out
}

func (h *BiometricsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	serveList(w, r, h.logger, "biometric",
		func(r *http.Request) (ports.BiometricQuery, []*validationError) {
			return parseBiometricQuery(r, h.cursors)
		},
		func(w http.ResponseWriter, r *http.Request, q *ports.BiometricQuery) bool {
			devices, ok := scopeList(w, r, q.Device)
			if !ok || devices == nil || q.Device != "" {
				return ok
			}
			if len(devices) != 1 { // a token of several devices names one
				writeDetail(w, http.StatusBadRequest, "this token acts for several devices: name one with ?device=")
				return false
			}
			q.Device = devices[0]
			return true
		},
		func(ctx context.Context, q ports.BiometricQuery) (any, error) {
			page, err := h.store.QueryBiometrics(ctx, q)
			if err != nil {
				return nil, err
			}
			body := biometricsJSON{Biometrics: make([]biometricJSON, 0, len(page.Windows))}
			for _, win := range page.Windows {
				body.Biometrics = append(body.Biometrics, toBiometricJSON(win))
			}
			if page.NextCursor != "" {
				sealed := h.cursors.seal(CaptionsPath, page.NextCursor) // parsed as /captions' cursors are
				body.NextCursor = &sealed
			}
			return body, nil
		})
}

// parseBiometricQuery reads device, since, until, limit and cursor as
// GET /captions does.
func parseBiometricQuery(r *http.Request, cursors *CursorSigner) (ports.BiometricQuery, []*validationError) {
	cq, problems := parseCaptionQuery(r, cursors)
	return ports.BiometricQuery{Device: cq.Device, Since: cq.Since, Until: cq.Until, Limit: cq.Limit, Cursor: cq.Cursor}, problems
}

// biometricsOff is the 503 of the biometric routes while no store keeps them.
const biometricsOffDetail = "caption store is off (FORESIGHT_DATABASE_URL=none): biometric windows are kept in it"

// BiometricRoutes are what the biometric routes serve from, asked for per
// request (the app opens the store after the router is built); a nil
// answer is 503.
type BiometricRoutes struct {
	Intake    func() BiometricIntake
	Store     func() ports.BiometricStore
	Authorize Authorizer
}

func biometricUploadOrOff(b *BiometricRoutes, logger *slog.Logger) http.Handler {
	if b == nil {
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in BiometricIntake
		if b.Intake != nil {
			in = b.Intake()
		}
		if in == nil {
			writeDetail(w, http.StatusServiceUnavailable, biometricsOffDetail)
			return
		}
		NewBiometricUploadHandler(in, b.Authorize, logger).ServeHTTP(w, r)
	})
}

func biometricsListOrOff(b *BiometricRoutes, cursors *CursorSigner, logger *slog.Logger) http.Handler {
	if b == nil {
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var s ports.BiometricStore
		if b.Store != nil {
			s = b.Store()
		}
		if s == nil {
			writeDetail(w, http.StatusServiceUnavailable, biometricsOffDetail)
			return
		}
		if b.Authorize != nil {
			if device := r.URL.Query().Get("device"); device != "" {
				if err := b.Authorize(r, device); err != nil {
					writeDetail(w, http.StatusForbidden, err.Error())
					return
				}
			}
		}
		h := NewBiometricsHandler(s, logger)
		if cursors != nil {
			h.cursors = cursors
		}
		h.ServeHTTP(w, r)
	})
}

type biometricLine struct {
	Kind string `json:"kind"`
	biometricJSON
}

// BiometricExportSection is the "biometric" kind of a device export
// (DeviceDataConfig.Extra): the device's windows newest first, a store page
// at a time.
func BiometricExportSection(store ports.BiometricStore) ExportSection {
	return ExportSection{Kind: "biometric", Write: func(ctx context.Context, device string, emit func(any) error) error {
		q := ports.BiometricQuery{Device: device, Limit: ports.MaxCaptionLimit}
		for {
			pageCtx, cancel := context.WithTimeout(ctx, deviceStoreTimeout)
			page, err := store.QueryBiometrics(pageCtx, q)
			cancel()
			if err != nil {
				return fmt.Errorf("query biometrics: %w", err)
			}
			for _, win := range page.Windows {
				if err := emit(biometricLine{Kind: "biometric", biometricJSON: toBiometricJSON(win)}); err != nil {
					return err
				}
			}
			if page.NextCursor == "" {
				return nil
			}
			q.Cursor = page.NextCursor
		}
	}}
}
