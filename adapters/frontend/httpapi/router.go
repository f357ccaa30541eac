// Package httpapi is the HTTP and WebSocket front end: GET /health,
// POST /poke/send and GET /vision/stream, wire-compatible with the original
// FastAPI server. Each handler is an http.Handler that another service can
// mount on its own mux; NewRouter puts them together on httprouter.
package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/julienschmidt/httprouter"

	"github.com/foresight-vision/foresight/adapters/protocol/wire"
)

// Route is an extra route to mount beside the built-in ones.
type Route struct {
	Method  string
	Path    string
	Handler http.Handler
}

// NewRouter mounts health, the stream handler at /vision/stream and the
// Poke handler at /poke/send, plus any extra routes. Unknown paths and
// methods get FastAPI's JSON error bodies.
func NewRouter(stream http.Handler, poke http.Handler, extra ...Route) *httprouter.Router {
	r := httprouter.New()
	r.Handler(http.MethodGet, wire.PathHealth, Health())
	r.Handler(http.MethodHead, wire.PathHealth, Health())
	r.Handler(http.MethodGet, wire.PathStream, stream)
	r.Handler(http.MethodPost, wire.PathPoke, poke)
	for _, e := range extra {
		r.Handler(e.Method, e.Path, e.Handler)
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

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// WriteDetail answers FastAPI's error shape, {"detail": "..."}, for
// handlers mounted beside this package's (the server's own 503s).
func WriteDetail(w http.ResponseWriter, status int, detail string) { writeDetail(w, status, detail) }

// writeDetail answers FastAPI's error shape, {"detail": "..."}.
func writeDetail(w http.ResponseWriter, status int, detail string) {
	writeJSON(w, status, map[string]string{"detail": detail})
}
