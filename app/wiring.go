package app

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"

	"github.com/foresight-vision/foresight/adapters/httpapi"
	"github.com/foresight-vision/foresight/adapters/metrics"
	"github.com/foresight-vision/foresight/adapters/modal"
	"github.com/foresight-vision/foresight/adapters/modal/modalheader"
	"github.com/foresight-vision/foresight/adapters/noop"
	"github.com/foresight-vision/foresight/adapters/webui"
	"github.com/foresight-vision/foresight/ports"
)

// inference is the backend streams open their sessions on, how a stream's
// upgrade request becomes its vetted per-stream options, and how the
// backend is closed at stop.
type inference struct {
	backend        ports.InferenceBackend
	sessionOptions func(*http.Request) map[string]string // nil: none
	close          func() error
}

// newInferenceBackend picks the model backend. The Modal backend is used
// even without server credentials, because trusted client headers (or a
// gateway in front) may supply them per stream; without any, its sessions
// are no-ops.
func newInferenceBackend(cfg Config, logger *slog.Logger) (inference, error) {
	if cfg.InferenceBackend == modal.PresetNone {
		return inference{backend: noop.Backend{}, close: func() error { return nil }}, nil
	}
	mc := modal.DefaultConfig()
	mc.Preset = cfg.InferenceBackend
	mc.TokenID = cfg.ModalTokenID
	mc.TokenSecret = cfg.ModalTokenSecret
	mc.AppName = cfg.ModalAppName
	mc.ClassName = cfg.ModalClassName
	mc.Environment = cfg.ModalEnvironment
	mc.SendSessionID = cfg.ModalSendSessionID
	mc.Logger = logger
	backend, err := modal.New(mc)
	if err != nil {
		return inference{}, fmt.Errorf("modal backend: %w", err)
	}
	inf := inference{backend: backend, close: backend.Close}
	// A stranger must not swap the model or spend another account when the
	// server holds its own credentials: the trust policy decides.
	if cfg.trustPolicy().HonourClient(cfg.ModalHeld()) {
		inf.sessionOptions = func(r *http.Request) map[string]string { return modalheader.SessionOptions(r.Header) }
	}
	return inf, nil
}

// newObserver returns the Prometheus metrics when they are on.
func newObserver(cfg Config) (httpapi.Observer, *metrics.Metrics) {
	if !cfg.Metrics {
		return httpapi.NopObserver{}, nil
	}
	m := metrics.New()
	return m, m
}

// extraRoutes mounts the live page, and /metrics and /debug/pprof when
// they are on.
func extraRoutes(cfg Config, m *metrics.Metrics) []httpapi.Route {
	// The live page; httprouter does not route HEAD to GET handlers.
	routes := []httpapi.Route{
		{Method: http.MethodGet, Path: "/", Handler: webui.Handler()},
		{Method: http.MethodHead, Path: "/", Handler: webui.Handler()},
	}
	if m != nil {
		routes = append(routes, httpapi.Route{Method: http.MethodGet, Path: "/metrics", Handler: m.Handler()})
	}
	if cfg.Pprof {
		routes = append(routes, httpapi.Route{Method: http.MethodGet, Path: "/debug/pprof/*item", Handler: pprofHandler()})
	}
	return routes
}

// pprofHandler serves net/http/pprof under one httprouter catch-all route.
func pprofHandler() http.Handler {
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
