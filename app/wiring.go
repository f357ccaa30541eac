package app

import (
	"net/http"
	"net/http/pprof"

	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/adapters/frontend/webui"
	"github.com/foresight-vision/foresight/adapters/observe/metrics"
)

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
		{Method: http.MethodGet, Path: StatusPath, Handler: statusHandler(cfg)},
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
