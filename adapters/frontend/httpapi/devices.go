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

	"github.com/julienschmidt/httprouter"

	"github.com/foresight-vision/foresight/adapters/frontend/access"
	"github.com/foresight-vision/foresight/adapters/protocol/wire"
	"github.com/foresight-vision/foresight/ports"
)

// Where the integrator mounts a wearer's own data (httprouter patterns;
// the device id is the "device" parameter): GET DeviceExportPath,
// DELETE DeviceMemoryPath, PUT and DELETE DevicePokeKeyPath.
const (
	DeviceExportPath  = "/devices/:device/export"
	DeviceMemoryPath  = "/devices/:device/memory"
	DevicePokeKeyPath = "/devices/:device/poke-key"
)

// Bounds of the device routes.
const (
	// deviceStoreTimeout bounds one store statement of a device route.
	deviceStoreTimeout = 10 * time.Second
	// maxPokeKeyBodyBytes bounds PUT poke-key's body; maxPokeKeyLen the key.
	maxPokeKeyBodyBytes = 4 << 10
	maxPokeKeyLen       = 512
	pokeKeyBodyTimeout  = 10 * time.Second
)

// Authorizer decides whether r may act on device's data: nil allows, an
// error refuses with 403 and the error's text as the detail. It is where
// per-credential scoping plugs in; until then the gate in front (the
// magic word) guards these routes like every other.
type Authorizer func(r *http.Request, device string) error

// ExportSection writes one kind of a device's data to an export: it calls
// emit once per record, in a stable order, reading the store a page at a
// time. emit fails once the client has gone; the section must then stop
// and return that error.
type ExportSection struct {
	// Kind is the "kind" of each line; counted in the closing line.
	Kind  string
	Write func(ctx context.Context, device string, emit func(record any) error) error
}

// DeviceDataConfig is what the device routes use. A nil store turns its
// routes off (503).
type DeviceDataConfig struct {
	Captions      ports.CaptionReader
	Interventions InterventionLister
	// Extra sections follow captions and interventions in an export.
	Extra  []ExportSection
	Eraser ports.DeviceMemoryEraser
	// Biometrics, when set, erases the device's biometric windows with
	// its memory (see BiometricExportSection for the export).
	Biometrics ports.BiometricStore
	Secrets    ports.DeviceSecrets
	// Seal encrypts a device's Poke key for storage; nil refuses to store
	// one (no server key is configured).
	Seal func(device string, plaintext []byte) (ports.SealedSecret, error)
	// SealOff is the detail of the 503 answered while Seal is nil.
	SealOff   string
	Authorize Authorizer
	// DeleteBatch bounds the rows of one delete statement; zero means
	// ports.DefaultDeviceDeleteBatch.
	DeleteBatch int
	Logger      *slog.Logger
}

// DeviceDataHandlers serves a wearer's own data: export, deletion and
// their Poke key.
type DeviceDataHandlers struct{ cfg DeviceDataConfig }

// NewDeviceDataHandlers returns the handlers; a nil logger means slog.Default().
func NewDeviceDataHandlers(cfg DeviceDataConfig) *DeviceDataHandlers {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.DeleteBatch <= 0 {
		cfg.DeleteBatch = ports.DefaultDeviceDeleteBatch
	}
	return &DeviceDataHandlers{cfg: cfg}
}

// device reads, checks and authorizes the path's device id; false means
// the answer has been written.
func (h *DeviceDataHandlers) device(w http.ResponseWriter, r *http.Request) (string, bool) {
	device := httprouter.ParamsFromContext(r.Context()).ByName("device")
	if device == "" {
		device = r.PathValue("device") // mounted on a net/http ServeMux
	}
	if p := checkDevice(device); p != nil {
		p.Loc = []any{"path", "device"}
		writeValidation(w, p)
		return "", false
	}
	if !allowDevice(w, r, device) { // a device token: its own devices only
		return "", false
	}
	if h.cfg.Authorize != nil {
		if err := h.cfg.Authorize(r, device); err != nil {
			writeDetail(w, http.StatusForbidden, err.Error())
			return "", false
		}
	}
	return device, true
}

// adminDevice is device for the routes only an admin may use (a device's
// Poke key is set by its admin, never by the wearer's token).
func (h *DeviceDataHandlers) adminDevice(w http.ResponseWriter, r *http.Request) (string, bool) {
	if p, scoped := access.FromContext(r.Context()); scoped && !p.IsAdmin() {
		writeDetail(w, http.StatusForbidden, access.DetailAdminOnly)
		return "", false
	}
	return h.device(w, r)
}

// Export is GET DeviceExportPath: every record kept for the device as
// NDJSON, one object per line with its "kind", written a store page at a
// time and flushed as it goes, so memory stays one page whatever the
// device holds. A complete export ends with {"kind":"end","counts":{…}}; a
// store failure midway ends it with {"kind":"error","detail":…} instead.
func (h *DeviceDataHandlers) Export() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		device, ok := h.device(w, r)
		if !ok {
			return
		}
		if h.cfg.Captions == nil || h.cfg.Interventions == nil {
			writeDetail(w, http.StatusServiceUnavailable, "caption store is off (FORESIGHT_DATABASE_URL=none): nothing is kept to export")
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="foresight-%s.ndjson"`, device))
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		enc := json.NewEncoder(w)
		counts := map[string]int{}
		ctx := r.Context()
		sections := append([]ExportSection{h.captionSection(), h.interventionSection()}, h.cfg.Extra...)
		for _, s := range sections {
			counts[s.Kind] = 0
			err := s.Write(ctx, device, func(record any) error {
				if err := ctx.Err(); err != nil {
					return err // the client has gone: stop reading the store
				}
				if err := enc.Encode(record); err != nil {
					return err
				}
				counts[s.Kind]++
				return nil
			})
			if err == nil {
				err = rc.Flush()
			}
			if err != nil {
				if ctx.Err() == nil {
					h.cfg.Logger.Error("device export failed", "device", device, "kind", s.Kind, "err", err)
					_ = enc.Encode(map[string]string{"kind": "error", "detail": s.Kind + " store unavailable: the export is incomplete"})
				}
				return
			}
		}
		_ = enc.Encode(map[string]any{"kind": "end", "device": device, "counts": counts})
	})
}

type captionLine struct {
	Kind string `json:"kind"`
	captionJSON
}

type interventionLine struct {
	Kind string `json:"kind"`
	interventionJSON
}

// captionSection pages through the device's captions newest first, the
// store's keyset order, flushing each page.
func (h *DeviceDataHandlers) captionSection() ExportSection {
	return ExportSection{Kind: "caption", Write: func(ctx context.Context, device string, emit func(any) error) error {
		q := ports.CaptionQuery{Device: device, Limit: ports.MaxCaptionLimit}
		for {
			pageCtx, cancel := context.WithTimeout(ctx, deviceStoreTimeout)
			page, err := h.cfg.Captions.QueryCaptions(pageCtx, q)
			cancel()
			if err != nil {
				return fmt.Errorf("query captions: %w", err)
			}
			for _, c := range page.Captions {
				if err := emit(captionLine{Kind: "caption", captionJSON: toCaptionJSON(c)}); err != nil {
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

// interventionSection pages through the device's decisions newest first.
func (h *DeviceDataHandlers) interventionSection() ExportSection {
	return ExportSection{Kind: "intervention", Write: func(ctx context.Context, device string, emit func(any) error) error {
		q := ports.InterventionQuery{Device: device, Limit: ports.MaxInterventionLimit}
		for {
			pageCtx, cancel := context.WithTimeout(ctx, deviceStoreTimeout)
			page, err := h.cfg.Interventions.ListInterventions(pageCtx, q)
			cancel()
			if err != nil {
				return fmt.Errorf("list interventions: %w", err)
			}
			for _, rec := range page.Items {
				if err := emit(interventionLine{Kind: "intervention", interventionJSON: toInterventionJSON(rec)}); err != nil {
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

func toCaptionJSON(c ports.Caption) captionJSON {
	return captionJSON{
		ID: c.ID, Device: c.Device, StreamID: c.StreamID,
		Start: c.Start.UTC().Format(time.RFC3339Nano), End: c.End.UTC().Format(time.RFC3339Nano),
		CaptionFields: wire.CaptionFields{ChunkStartS: c.ChunkStartS, ChunkEndS: c.ChunkEndS, Caption: c.Text,
			LatencyMS: c.LatencyMS, TokensGenerated: c.Tokens},
		Backend: c.Backend, Model: c.Model,
	}
}

type erasedJSON struct {
	Device        string `json:"device"`
	Captions      int    `json:"captions"`
	Interventions int    `json:"interventions"`
	// Biometrics is left out when no biometric store is configured.
	Biometrics *int `json:"biometrics,omitempty"`
}

// Erase is DELETE DeviceMemoryPath?since=&until=: deletes the device's
// captions (with their search entries) whose start, and decisions whose
// time, is in [since, until), either bound open when absent, a batch per
// statement; answers the counts.
func (h *DeviceDataHandlers) Erase() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		device, ok := h.device(w, r)
		if !ok {
			return
		}
		since, until, problems := parseRange(r)
		if len(problems) > 0 {
			writeValidation(w, problems...)
			return
		}
		if h.cfg.Eraser == nil {
			writeDetail(w, http.StatusServiceUnavailable, "caption store is off (FORESIGHT_DATABASE_URL=none): nothing is kept to delete")
			return
		}
		out := erasedJSON{Device: device}
		steps := []struct {
			n   *int
			del func(context.Context, string, time.Time, time.Time, int) (int, error)
		}{{&out.Captions, h.cfg.Eraser.DeleteDeviceCaptions}, {&out.Interventions, h.cfg.Eraser.DeleteDeviceInterventions}}
		biometrics := 0
		if h.cfg.Biometrics != nil {
			out.Biometrics = &biometrics
			steps = append(steps, struct {
				n   *int
				del func(context.Context, string, time.Time, time.Time, int) (int, error)
			}{&biometrics, h.cfg.Biometrics.DeleteDeviceBiometrics})
		}
		for _, step := range steps {
			for {
				ctx, cancel := context.WithTimeout(r.Context(), deviceStoreTimeout)
				n, err := step.del(ctx, device, since, until, h.cfg.DeleteBatch)
				cancel()
				*step.n += n
				if err != nil {
					if r.Context().Err() == nil {
						h.cfg.Logger.Error("device memory deletion failed", "device", device,
							"captions", out.Captions, "interventions", out.Interventions, "biometrics", biometrics, "err", err)
					}
					detail := fmt.Sprintf("store unavailable: %d captions and %d interventions were deleted before it failed; repeat the request to finish",
						out.Captions, out.Interventions)
					if out.Biometrics != nil {
						detail = fmt.Sprintf("store unavailable: %d captions and %d interventions were deleted before it failed, and %d biometric windows; repeat the request to finish",
							out.Captions, out.Interventions, biometrics)
					}
					writeDetail(w, http.StatusServiceUnavailable, detail)
					return
				}
				if n < h.cfg.DeleteBatch {
					break
				}
			}
		}
		h.cfg.Logger.Info("device memory deleted", "device", device, "since", since, "until", until,
			"captions", out.Captions, "interventions", out.Interventions, "biometrics", biometrics)
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, out)
	})
}

// parseRange reads since and until (RFC 3339, both optional).
func parseRange(r *http.Request) (since, until time.Time, problems []*validationError) {
	values := r.URL.Query()
	parse := func(name string) time.Time {
		v := values.Get(name)
		if v == "" {
			return time.Time{}
		}
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			if len(v) > 64 {
				v = cutOnRune(v, 64) + "…"
			}
			problems = append(problems, &validationError{Type: "datetime_parsing", Loc: []any{"query", name},
				Msg: "Input should be a valid datetime, in RFC 3339 form such as 2026-05-01T09:00:00Z", Input: v})
		}
		return t
	}
	since, until = parse("since"), parse("until")
	if len(problems) == 0 && !since.IsZero() && !until.IsZero() && !until.After(since) {
		problems = append(problems, &validationError{Type: "value_error", Loc: []any{"query", "until"},
			Msg: "Value error, until must be after since", Input: values.Get("until")})
	}
	return since, until, problems
}

type pokeKeyJSON struct {
	Device  string `json:"device"`
	PokeKey string `json:"poke_key"` // "set" or "unset", never the key
}

// SetPokeKey is PUT DevicePokeKeyPath with {"poke_api_key": "..."}: stores
// the device's own Poke key, sealed. Neither the answer nor a refusal ever
// repeats the key.
func (h *DeviceDataHandlers) SetPokeKey() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		device, ok := h.adminDevice(w, r)
		if !ok {
			return
		}
		if h.cfg.Secrets == nil {
			writeDetail(w, http.StatusServiceUnavailable, "caption store is off (FORESIGHT_DATABASE_URL=none): device keys are kept in it")
			return
		}
		if h.cfg.Seal == nil {
			writeDetail(w, http.StatusServiceUnavailable, h.cfg.SealOff)
			return
		}
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(pokeKeyBodyTimeout))
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxPokeKeyBodyBytes))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				writeDetail(w, http.StatusRequestEntityTooLarge, "Request body too large")
				return
			}
			writeDetail(w, http.StatusBadRequest, "could not read request body")
			return
		}
		key, problem := parsePokeKey(body)
		if problem != nil {
			writeValidation(w, problem)
			return
		}
		sealed, err := h.cfg.Seal(device, []byte(key))
		if err != nil {
			h.cfg.Logger.Error("seal device poke key", "device", device, "err", err)
			writeDetail(w, http.StatusInternalServerError, "could not seal the key")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), deviceStoreTimeout)
		defer cancel()
		if err := h.cfg.Secrets.SetPokeKey(ctx, device, sealed); err != nil {
			h.cfg.Logger.Error("store device poke key", "device", device, "err", err)
			writeDetail(w, http.StatusServiceUnavailable, "store unavailable: the key was not saved")
			return
		}
		h.cfg.Logger.Info("device poke key set", "device", device, "key_id", sealed.KeyID)
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, pokeKeyJSON{Device: device, PokeKey: "set"})
	})
}

// DeletePokeKey is DELETE DevicePokeKeyPath: the device's nudges go with
// the server's key again. Deleting a key that is not there succeeds.
func (h *DeviceDataHandlers) DeletePokeKey() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		device, ok := h.adminDevice(w, r)
		if !ok {
			return
		}
		if h.cfg.Secrets == nil {
			writeDetail(w, http.StatusServiceUnavailable, "caption store is off (FORESIGHT_DATABASE_URL=none): device keys are kept in it")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), deviceStoreTimeout)
		defer cancel()
		existed, err := h.cfg.Secrets.DeletePokeKey(ctx, device)
		if err != nil {
			h.cfg.Logger.Error("delete device poke key", "device", device, "err", err)
			writeDetail(w, http.StatusServiceUnavailable, "store unavailable: the key was not deleted")
			return
		}
		h.cfg.Logger.Info("device poke key deleted", "device", device, "existed", existed)
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, pokeKeyJSON{Device: device, PokeKey: "unset"})
	})
}

// ValidPokeKey checks a Poke API key's form: it goes into an Authorization
// header, so it must be printable ASCII without spaces. Its errors never
// quote the key.
func ValidPokeKey(key string) error {
	switch {
	case key == "":
		return errors.New("the Poke API key is empty")
	case len(key) > maxPokeKeyLen:
		return fmt.Errorf("the Poke API key is longer than %d characters", maxPokeKeyLen)
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] > '~' {
			return errors.New("the Poke API key holds a character other than printable ASCII")
		}
	}
	return nil
}

// parsePokeKey validates {"poke_api_key": "<key>"}. Problems carry no
// input: it would be the secret.
func parsePokeKey(body []byte) (string, *validationError) {
	loc := []any{"body", "poke_api_key"}
	var doc map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&doc); err != nil || dec.Decode(new(any)) != io.EOF || doc == nil {
		return "", &validationError{Type: "model_attributes_type", Loc: []any{"body"},
			Msg: `Input should be a JSON object such as {"poke_api_key": "..."}`, Input: nil}
	}
	raw, ok := doc["poke_api_key"]
	if !ok {
		return "", &validationError{Type: "missing", Loc: loc, Msg: "Field required", Input: nil}
	}
	var key string
	if err := json.Unmarshal(raw, &key); err != nil {
		return "", &validationError{Type: "string_type", Loc: loc, Msg: "Input should be a valid string", Input: nil}
	}
	key = strings.TrimSpace(key)
	if err := ValidPokeKey(key); err != nil {
		return "", &validationError{Type: "value_error", Loc: loc, Msg: "Value error, " + err.Error(), Input: nil}
	}
	return key, nil
}
