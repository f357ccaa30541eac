// Package httpapi is the HTTP and WebSocket front end, wire-compatible with
// the original FastAPI server where a route existed there. It owns every
// route the server answers: Routes is the table (method, path, credential,
// handler) and NewRouter mounts it on httprouter. Each handler is also an
// http.Handler that another service can mount on its own mux.
package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"strings"

	"github.com/julienschmidt/httprouter"

	"github.com/foresight-vision/foresight/adapters/protocol/wire"
	"github.com/foresight-vision/foresight/ports"
)

// StatusPath answers what the server runs (NewStatusHandler).
const StatusPath = "/status"

// MetricsPath serves the Prometheus metrics, when they are on.
const MetricsPath = "/metrics"

// PagePath serves the live page, when the server has one.
const PagePath = "/"

// PprofPath is the catch-all under which net/http/pprof is served, when on.
const PprofPath = "/debug/pprof/*item"

// Credential is what a request needs to reach a route.
type Credential string

// Credentials of the route table. The gate (adapters/frontend/access)
// enforces them: Public is the default of FORESIGHT_PUBLIC_PATHS, so an
// operator may open or close a path there; the others carry something
// private.
const (
	// Public routes hold no secret: health, the live page, metrics.
	Public Credential = "public"
	// Wearer routes take a device token, which the handler keeps to its
	// devices, or an admin credential (an admin token, or the magic word
	// unless tokens are required).
	Wearer Credential = "device token or admin"
	// Admin routes are the operator's: an admin token, or the magic word
	// unless tokens are required.
	Admin Credential = "admin"
)

// Route is one row of the route table.
type Route struct {
	Method     string
	Path       string
	Credential Credential
	Handler    http.Handler
}

// Handlers are what the routes serve from. A nil handler leaves its route
// out (the feature is off); a reader, lister or runner is asked for per
// request, because the app opens the store after the router is built, and
// a nil answer is a clear 503.
type Handlers struct {
	Stream http.Handler // GET /vision/stream (NewStreamHandler)
	Poke   http.Handler // POST /poke/send (NewPokeHandler)
	Page   http.Handler // GET and HEAD /: the live page
	// Status is the body of GET /status; nil leaves the route out.
	Status *Status
	// Metrics serves GET /metrics; nil when metrics are off.
	Metrics http.Handler
	// Pprof mounts net/http/pprof at /debug/pprof/.
	Pprof bool
	// Captions is GET /captions' store; nil, or a nil answer, is 503
	// "caption store is off".
	Captions func() ports.CaptionReader
	// Interventions is GET /interventions' store; nil, or a nil answer,
	// is 503 (no store keeps decisions).
	Interventions func() InterventionLister
	// RunIntervention runs POST /interventions/run; nil, or a nil answer,
	// is 503 "nudges are off".
	RunIntervention func() InterventionRunner
	// Cursors seals and opens the list routes' page cursors; nil means
	// the process's random key (NewCursorSigner).
	Cursors *CursorSigner
	// ManualRunLimit bounds the manual runs each credential may start
	// (429 with Retry-After past it); nil means no bound.
	ManualRunLimit CredentialLimiter
	// Me answers GET /me: the request's credential, never a secret; nil
	// leaves the route out.
	Me http.Handler
	// Ask answers POST /ask (NewAskHandler); nil leaves the route out.
	Ask http.Handler
	// AskLimit bounds the questions each credential may ask (429 with
	// Retry-After past it); nil means no bound.
	AskLimit CredentialLimiter
	// Biometrics serves POST /biometrics/upload and GET /biometrics; nil
	// leaves them out, a nil store is 503.
	Biometrics *BiometricRoutes
	// DeviceData serves a wearer's own data (/devices/{id}/…: export,
	// deletion, the device's Poke key); nil leaves those routes out.
	DeviceData func() *DeviceDataHandlers
	// Logger receives the handlers' logs; nil means slog.Default().
	Logger *slog.Logger
}

// Routes is the server's route table, in the order a reader meets the
// routes in docs/protocol.md. A route whose handler is off is left out.
func Routes(h Handlers) []Route {
	if h.Logger == nil {
		h.Logger = slog.Default()
	}
	table := []Route{
		// httprouter does not route HEAD to GET handlers.
		{http.MethodGet, PagePath, Public, h.Page},
		{http.MethodHead, PagePath, Public, h.Page},
		{http.MethodGet, wire.PathHealth, Public, Health()},
		{http.MethodHead, wire.PathHealth, Public, Health()},
		{http.MethodGet, MetricsPath, Public, h.Metrics}, // admin when FORESIGHT_PUBLIC_PATHS leaves it out
		{http.MethodGet, wire.PathStream, Wearer, h.Stream},
		{http.MethodPost, wire.PathPoke, Admin, h.Poke},
		{http.MethodGet, wire.PathMe, Wearer, h.Me},
		{http.MethodGet, StatusPath, Admin, statusHandlerOrNil(h.Status)},
		{http.MethodGet, CaptionsPath, Wearer, captionsOrOff(h.Captions, h.Cursors, h.Logger)},
		{http.MethodPost, BiometricsUploadPath, Wearer, biometricUploadOrOff(h.Biometrics, h.Logger)},
		{http.MethodGet, BiometricsPath, Wearer, biometricsListOrOff(h.Biometrics, h.Cursors, h.Logger)},
		{http.MethodGet, InterventionsPath, Wearer, interventionsOrOff(h.Interventions, h.Cursors, h.Logger)},
		{http.MethodPost, InterventionsRunPath, Wearer, runOrOff(h.RunIntervention, h.ManualRunLimit, h.Logger)},
		{http.MethodPost, AskPath, Wearer, limited(h.Ask, h.AskLimit, "questions")},
		{http.MethodGet, DeviceExportPath, Wearer, deviceRoute(h.DeviceData, (*DeviceDataHandlers).Export)},
		{http.MethodDelete, DeviceMemoryPath, Wearer, deviceRoute(h.DeviceData, (*DeviceDataHandlers).Erase)},
		{http.MethodPut, DevicePokeKeyPath, Admin, deviceRoute(h.DeviceData, (*DeviceDataHandlers).SetPokeKey)},
		{http.MethodDelete, DevicePokeKeyPath, Admin, deviceRoute(h.DeviceData, (*DeviceDataHandlers).DeletePokeKey)},
		{http.MethodGet, PprofPath, Admin, pprofHandlerIf(h.Pprof)},
	}
	mounted := table[:0]
	for _, r := range table {
		if r.Handler != nil {
			mounted = append(mounted, r)
		}
	}
	return mounted
}

// DefaultPublicPaths are the paths of the Public routes, each once, in
// table order: the default of FORESIGHT_PUBLIC_PATHS.
func DefaultPublicPaths() []string {
	var paths []string
	seen := map[string]bool{}
	on := http.NotFoundHandler()
	for _, r := range Routes(Handlers{Page: on, Metrics: on}) {
		if r.Credential == Public && !seen[r.Path] {
			seen[r.Path] = true
			paths = append(paths, r.Path)
		}
	}
	return paths
}

// AdminOnly reports whether path is an Admin route of the table, or the
// metrics when not public: what the gate refuses a device token.
func AdminOnly(path string) bool {
	if path == MetricsPath {
		return true // reached only when FORESIGHT_PUBLIC_PATHS leaves it out
	}
	on := http.NotFoundHandler()
	for _, r := range Routes(Handlers{Stream: on, Poke: on, Page: on, Status: &Status{}, Metrics: on, Pprof: true, Me: on}) {
		if r.Credential != Admin {
			continue
		}
		if p, ok := strings.CutSuffix(r.Path, "*item"); ok && strings.HasPrefix(path, p) || r.Path == path {
			return true
		}
	}
	return false
}

// NewRouter mounts Routes(h). Unknown paths and methods get FastAPI's JSON
// error bodies.
func NewRouter(h Handlers) *httprouter.Router {
	r := httprouter.New()
	for _, route := range Routes(h) {
		r.Handler(route.Method, route.Path, route.Handler)
	}
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeDetail(w, http.StatusNotFound, "Not Found")
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeDetail(w, http.StatusMethodNotAllowed, "Method Not Allowed")
	})
	r.PanicHandler = func(w http.ResponseWriter, _ *http.Request, _ any) {
		writeDetail(w, http.StatusInternalServerError, "Internal Server Error")
	}
	return r
}

// Health answers {"status":"ok"}.
func Health() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

// Status is the body of GET /status: what the server runs, never a secret.
type Status struct {
	Backend     string `json:"backend"`
	Model       string `json:"model"`
	BaseURLHost string `json:"base_url_host"`
	Captions    bool   `json:"captions"`
	// ChunkSeconds is the least time between chunk cuts (0: none).
	ChunkSeconds float64 `json:"chunk_seconds"`
	// MaxFramesPerChunk is the bound on frames sent per chunk; 0 is all.
	MaxFramesPerChunk int    `json:"max_frames_per_chunk"`
	Version           string `json:"version"`
}

// NewStatusHandler serves GET /status. The body is fixed at start, so it
// is encoded once.
func NewStatusHandler(s Status) http.Handler {
	body, _ := json.Marshal(s)
	body = append(body, '\n')
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(body)
	})
}

func statusHandlerOrNil(s *Status) http.Handler {
	if s == nil {
		return nil
	}
	return NewStatusHandler(*s)
}

// The 503 answers of routes whose store or loop is off.
const (
	captionsOffDetail      = "caption store is off (FORESIGHT_DATABASE_URL=none)"
	interventionsOffDetail = "caption store is off (FORESIGHT_DATABASE_URL=none): no decisions are kept"
	nudgesOffDetail        = "nudges are off: set FORESIGHT_NUDGES to rules or llm"
)

func captionsOrOff(reader func() ports.CaptionReader, cursors *CursorSigner, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rd ports.CaptionReader
		if reader != nil {
			rd = reader()
		}
		if rd == nil {
			writeDetail(w, http.StatusServiceUnavailable, captionsOffDetail)
			return
		}
		h := NewCaptionsHandler(rd, logger)
		if cursors != nil {
			h.WithCursorSigner(cursors)
		}
		h.ServeHTTP(w, r)
	})
}

func interventionsOrOff(lister func() InterventionLister, cursors *CursorSigner, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var l InterventionLister
		if lister != nil {
			l = lister()
		}
		if l == nil {
			writeDetail(w, http.StatusServiceUnavailable, interventionsOffDetail)
			return
		}
		h := NewInterventionsHandler(l, logger)
		if cursors != nil {
			h.WithCursorSigner(cursors)
		}
		h.ServeHTTP(w, r)
	})
}

func runOrOff(runner func() InterventionRunner, limit CredentialLimiter, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var run InterventionRunner
		if runner != nil {
			run = runner()
		}
		if run == nil {
			writeDetail(w, http.StatusServiceUnavailable, nudgesOffDetail)
			return
		}
		h := NewRunInterventionHandler(run, logger)
		h.LimitPerCredential(limit)
		h.ServeHTTP(w, r)
	})
}

// pprofHandlerIf serves net/http/pprof under one httprouter catch-all
// route when on.
func pprofHandlerIf(on bool) http.Handler {
	if !on {
		return nil
	}
	named := map[string]http.HandlerFunc{
		"/debug/pprof/cmdline": pprof.Cmdline,
		"/debug/pprof/profile": pprof.Profile,
		"/debug/pprof/symbol":  pprof.Symbol,
		"/debug/pprof/trace":   pprof.Trace,
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, ok := named[r.URL.Path]; ok {
			h(w, r)
			return
		}
		pprof.Index(w, r) // the index and named profiles: heap, goroutine, allocs, ...
	})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// writeDetail answers FastAPI's error shape, {"detail": "..."}.
func writeDetail(w http.ResponseWriter, status int, detail string) {
	writeJSON(w, status, map[string]string{"detail": detail})
}

// deviceRoute serves one of the device-data handlers, built per request
// because the app opens the store after the router is built; nil when the
// feature is off.
func deviceRoute(handlers func() *DeviceDataHandlers, pick func(*DeviceDataHandlers) http.Handler) http.Handler {
	if handlers == nil {
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pick(handlers()).ServeHTTP(w, r)
	})
}

// limited takes one call from the credential's share of limit before
// next runs (429 with Retry-After past it); nil when next is.
func limited(next http.Handler, limit CredentialLimiter, what string) http.Handler {
	if next == nil {
		return nil
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if allowCall(w, r, limit, what) {
			next.ServeHTTP(w, r)
		}
	})
}
