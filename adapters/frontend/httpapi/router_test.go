package httpapi_test

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/ports"
)

// everyRouteOn turns on every optional route.
func everyRouteOn() httpapi.Handlers {
	h := http.NotFoundHandler()
	return httpapi.Handlers{Stream: h, Poke: h, Page: h, Metrics: h, Status: &httpapi.Status{}, Pprof: true,
		Me: h, Ask: h, DeviceData: func() *httpapi.DeviceDataHandlers { return nil },
		Biometrics: &httpapi.BiometricRoutes{}}
}

// TestRouteTableMatchesProtocolDoc keeps docs/protocol.md's route table
// (method, path, credential) equal to the one the router mounts.
func TestRouteTableMatchesProtocolDoc(t *testing.T) {
	f, err := os.Open("../../../docs/protocol.md")
	require.NoError(t, err)
	defer f.Close()
	var documented []string
	inTable := false
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "| method and path | credential |"):
			inTable = true
		case inTable && !strings.HasPrefix(line, "|"):
			inTable = false
		case inTable && !strings.HasPrefix(line, "| ---"):
			cells := strings.Split(line, "|")
			documented = append(documented, strings.Trim(strings.TrimSpace(cells[1]), "`")+" "+strings.TrimSpace(cells[2]))
		}
	}
	var mounted []string
	for _, r := range httpapi.Routes(everyRouteOn()) {
		// The doc writes httprouter's :device parameter as {id}.
		mounted = append(mounted, r.Method+" "+strings.ReplaceAll(r.Path, ":device", "{id}")+" "+string(r.Credential))
	}
	assert.Equal(t, mounted, documented)
}

func TestDefaultPublicPathsAreThePublicRoutes(t *testing.T) {
	assert.Equal(t, []string{"/", "/health", "/metrics"}, httpapi.DefaultPublicPaths())
}

func TestOptionalRoutesAreLeftOutWhenOff(t *testing.T) {
	srv := httptest.NewServer(httpapi.NewRouter(httpapi.Handlers{}))
	defer srv.Close()
	for _, path := range []string{"/", "/metrics", "/status", "/debug/pprof/", "/vision/stream"} {
		resp, err := http.Get(srv.URL + path)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusNotFound, resp.StatusCode, path)
	}
}

func TestStatusAndPprofAnswerWhenOn(t *testing.T) {
	h := everyRouteOn()
	h.Status = &httpapi.Status{Backend: "none", Version: "v1"}
	srv := httptest.NewServer(httpapi.NewRouter(h))
	defer srv.Close()
	status, body := call(t, srv, http.MethodGet, httpapi.StatusPath, nil)
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "none", body["backend"])
	assert.Equal(t, "v1", body["version"])
	resp, err := http.Get(srv.URL + "/debug/pprof/cmdline")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

// TestStoreRoutesAnswer503WhenOff: a reader, lister or runner that is not
// given, or answers nil (the store or loop is off), is a clear 503.
func TestStoreRoutesAnswer503WhenOff(t *testing.T) {
	for name, h := range map[string]httpapi.Handlers{
		"not given": {Biometrics: &httpapi.BiometricRoutes{}},
		"nil answer": {
			Captions:        func() ports.CaptionReader { return nil },
			Interventions:   func() httpapi.InterventionLister { return nil },
			RunIntervention: func() httpapi.InterventionRunner { return nil },
			Biometrics: &httpapi.BiometricRoutes{Intake: func() httpapi.BiometricIntake { return nil },
				Store: func() ports.BiometricStore { return nil }},
		},
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(httpapi.NewRouter(h))
			defer srv.Close()
			for _, tc := range []struct{ method, path, detail string }{
				{http.MethodGet, httpapi.CaptionsPath, "caption store is off (FORESIGHT_DATABASE_URL=none)"},
				{http.MethodGet, httpapi.InterventionsPath, "caption store is off (FORESIGHT_DATABASE_URL=none): no decisions are kept"},
				{http.MethodPost, httpapi.InterventionsRunPath, "nudges are off: set FORESIGHT_NUDGES to rules or llm"},
				{http.MethodPost, httpapi.BiometricsUploadPath, "caption store is off (FORESIGHT_DATABASE_URL=none): biometric windows are kept in it"},
				{http.MethodGet, httpapi.BiometricsPath, "caption store is off (FORESIGHT_DATABASE_URL=none): biometric windows are kept in it"},
			} {
				status, body := call(t, srv, tc.method, tc.path, url.Values{"device": {"kit"}})
				assert.Equal(t, http.StatusServiceUnavailable, status, tc.path)
				assert.Equal(t, map[string]any{"detail": tc.detail}, body, tc.path)
			}
		})
	}
}
