package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/adapters/store/sqlite"
	"github.com/foresight-vision/foresight/ports"
	"github.com/foresight-vision/foresight/ports/captionstest"
	"github.com/foresight-vision/foresight/ports/nudgestest"
)

func serveDeviceData(t *testing.T, cfg httpapi.DeviceDataConfig) *httptest.Server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := httpapi.NewDeviceDataHandlers(cfg)
	srv := httptest.NewServer(httpapi.NewRouter(httpapi.Handlers{DeviceData: func() *httpapi.DeviceDataHandlers { return h }}))
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, method, url, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(b)
}

func TestDeviceRoutesAskTheAuthorizerAndCheckTheDevice(t *testing.T) {
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "f.db"))
	require.NoError(t, err)
	defer store.Close()
	var asked []string
	srv := serveDeviceData(t, httpapi.DeviceDataConfig{Captions: store, Interventions: store, Eraser: store, Secrets: store,
		Seal: func(string, []byte) (ports.SealedSecret, error) {
			return ports.SealedSecret{KeyID: "k", Ciphertext: []byte("x")}, nil
		},
		Authorize: func(_ *http.Request, device string) error {
			asked = append(asked, device)
			if device == "bob" {
				return errors.New("this credential may not act for device \"bob\"")
			}
			return nil
		}})
	routes := []struct{ method, path, body string }{
		{http.MethodGet, "/export", ""}, {http.MethodDelete, "/memory", ""},
		{http.MethodPut, "/poke-key", `{"poke_api_key":"pk-1"}`}, {http.MethodDelete, "/poke-key", ""},
	}
	for _, r := range routes {
		status, _, body := do(t, r.method, srv.URL+"/devices/bob"+r.path, r.body)
		assert.Equal(t, http.StatusForbidden, status, r)
		assert.JSONEq(t, `{"detail":"this credential may not act for device \"bob\""}`, body)
		status, _, _ = do(t, r.method, srv.URL+"/devices/alice"+r.path, r.body)
		assert.Equal(t, http.StatusOK, status, r)
		status, _, body = do(t, r.method, srv.URL+"/devices/bad%20id"+r.path, r.body)
		assert.Equal(t, http.StatusUnprocessableEntity, status, r)
		assert.Contains(t, body, `"loc":["path","device"]`)
	}
	assert.Equal(t, []string{"bob", "alice", "bob", "alice", "bob", "alice", "bob", "alice"}, asked, "asked once per request, never for a malformed id")
}

// endlessCaptions answers every query with a full page and a cursor, and
// counts the queries.
type endlessCaptions struct{ queries atomic.Int64 }

func (e *endlessCaptions) QueryCaptions(_ context.Context, q ports.CaptionQuery) (ports.CaptionPage, error) {
	n := int(e.queries.Add(1))
	page := ports.CaptionPage{NextCursor: ports.CaptionCursor{Start: time.Unix(int64(n), 0), ID: "x"}.String()}
	for i := range q.EffectiveLimit() {
		page.Captions = append(page.Captions, captionstest.Make(n*1000+i, "kit", "s", strings.Repeat("text ", 20)))
	}
	return page, nil
}

func TestExportStopsWhenTheClientGoes(t *testing.T) {
	captions := &endlessCaptions{}
	exportDone := make(chan struct{})
	cfg := httpapi.DeviceDataConfig{Captions: captions, Interventions: nudgeLister{}, Logger: slog.New(slog.DiscardHandler)}
	h := httpapi.NewDeviceDataHandlers(cfg)
	router := httpapi.NewRouter(httpapi.Handlers{DeviceData: func() *httpapi.DeviceDataHandlers { return h }})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(exportDone)
		router.ServeHTTP(w, r)
	}))
	defer srv.Close()

	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/devices/kit/export", nil)
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	assert.Equal(t, "application/x-ndjson", resp.Header.Get("Content-Type"))
	assert.Equal(t, `attachment; filename="foresight-kit.ndjson"`, resp.Header.Get("Content-Disposition"))
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(line, `{"kind":"caption",`), line)
	cancel()
	_ = resp.Body.Close()

	select {
	case <-exportDone:
	case <-time.After(30 * time.Second):
		t.Fatal("the export goes on after the client left")
	}
	assert.Less(t, captions.queries.Load(), int64(1000), "it stopped reading the store")
}

type nudgeLister struct{}

func (nudgeLister) ListInterventions(context.Context, ports.InterventionQuery) (ports.InterventionPage, error) {
	return ports.InterventionPage{}, nil
}

func TestExportPagesThroughEverythingOfTheDeviceOnly(t *testing.T) {
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "f.db"))
	require.NoError(t, err)
	defer store.Close()
	var batch []ports.Caption
	const n = ports.MaxCaptionLimit + 7 // more than one page
	for i := range n {
		batch = append(batch, captionstest.Make(i, "kit", "s1", fmt.Sprintf("kit %d", i)), captionstest.Make(10_000+i, "other", "s2", "other"))
	}
	require.NoError(t, store.SaveCaptions(t.Context(), batch))
	for i := range 3 {
		_, err := store.CreateIntervention(t.Context(), nudgestest.Record(i, "kit", ports.VerdictNo, ports.DeliveryNone))
		require.NoError(t, err)
		_, err = store.CreateIntervention(t.Context(), nudgestest.Record(i, "other", ports.VerdictNo, ports.DeliveryNone))
		require.NoError(t, err)
	}
	srv := serveDeviceData(t, httpapi.DeviceDataConfig{Captions: store, Interventions: store})
	status, _, body := do(t, http.MethodGet, srv.URL+"/devices/kit/export", "")
	require.Equal(t, http.StatusOK, status)
	kinds := map[string]int{}
	seen := map[string]bool{}
	var last map[string]any
	for line := range strings.Lines(body) {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
		kinds[rec["kind"].(string)]++
		if rec["kind"] != "end" {
			assert.Equal(t, "kit", rec["device"], line)
			id := rec["kind"].(string) + rec["id"].(string)
			assert.False(t, seen[id], "each record once: %s", id)
			seen[id] = true
		}
		last = rec
	}
	assert.Equal(t, map[string]int{"caption": n, "intervention": 3, "end": 1}, kinds)
	assert.Equal(t, map[string]any{"kind": "end", "device": "kit", "counts": map[string]any{"caption": float64(n), "intervention": float64(3)}}, last)
}

// countingEraser deletes from a pretend table of rows, counting statements.
type countingEraser struct {
	captions, interventions int
	statements              int
	failAfter               int // fail the statement after this many; 0 never
}

func (e *countingEraser) take(rows *int, limit int) (int, error) {
	e.statements++
	if e.failAfter > 0 && e.statements > e.failAfter {
		return 0, errors.New("disk I/O error")
	}
	n := min(*rows, limit)
	*rows -= n
	return n, nil
}

func (e *countingEraser) DeleteDeviceCaptions(_ context.Context, _ string, _, _ time.Time, limit int) (int, error) {
	return e.take(&e.captions, limit)
}

func (e *countingEraser) DeleteDeviceInterventions(_ context.Context, _ string, _, _ time.Time, limit int) (int, error) {
	return e.take(&e.interventions, limit)
}

func TestEraseDeletesInBatchesAndAnswersTheCounts(t *testing.T) {
	eraser := &countingEraser{captions: 25, interventions: 10}
	srv := serveDeviceData(t, httpapi.DeviceDataConfig{Eraser: eraser, DeleteBatch: 10})
	status, _, body := do(t, http.MethodDelete, srv.URL+"/devices/kit/memory?since=2026-01-01T00:00:00Z", "")
	require.Equal(t, http.StatusOK, status, body)
	assert.JSONEq(t, `{"device":"kit","captions":25,"interventions":10}`, body)
	assert.Equal(t, 3+2, eraser.statements, "batches of 10: 10+10+5 captions, 10+0 interventions")

	failing := &countingEraser{captions: 25, failAfter: 2}
	srv = serveDeviceData(t, httpapi.DeviceDataConfig{Eraser: failing, DeleteBatch: 10})
	status, _, body = do(t, http.MethodDelete, srv.URL+"/devices/kit/memory", "")
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Contains(t, body, "20 captions and 0 interventions were deleted before it failed")

	for q, loc := range map[string]string{"since=yesterday": "since", "until=2026-13-01T00:00:00Z": "until",
		"since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z": "until"} {
		status, _, body = do(t, http.MethodDelete, srv.URL+"/devices/kit/memory?"+q, "")
		assert.Equal(t, http.StatusUnprocessableEntity, status, q)
		assert.Contains(t, body, `"loc":["query","`+loc+`"]`, q)
	}
}

func TestPokeKeyIsNeverEchoed(t *testing.T) {
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "f.db"))
	require.NoError(t, err)
	defer store.Close()
	var sealedFor []string
	srv := serveDeviceData(t, httpapi.DeviceDataConfig{Secrets: store,
		Seal: func(device string, plain []byte) (ports.SealedSecret, error) {
			sealedFor = append(sealedFor, device)
			return ports.SealedSecret{KeyID: "k", Ciphertext: []byte("sealed:" + fmt.Sprint(len(plain)))}, nil
		}})
	const secret = "pk-live-SECRET123"
	status, _, body := do(t, http.MethodPut, srv.URL+"/devices/kit/poke-key", `{"poke_api_key":" `+secret+`\n"}`)
	require.Equal(t, http.StatusOK, status, body)
	assert.JSONEq(t, `{"device":"kit","poke_key":"set"}`, body)
	sealed, ok, err := store.PokeKey(t.Context(), "kit")
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, "sealed:17", string(sealed.Ciphertext), "the trimmed key was sealed, and only the sealed form stored")

	for _, bad := range []string{
		`{"poke_api_key":"` + secret + ` with space"}`, `{"poke_api_key":""}`, `{"poke_key":"` + secret + `"}`,
		`{"poke_api_key":["` + secret + `"]}`, `"` + secret + `"`, `{"poke_api_key":"` + secret + `"} trailing`,
		`{"poke_api_key":"` + strings.Repeat("k", 600) + secret + `"}`,
	} {
		status, _, body := do(t, http.MethodPut, srv.URL+"/devices/kit/poke-key", bad)
		assert.Equal(t, http.StatusUnprocessableEntity, status, bad)
		assert.NotContains(t, body, secret, "a refusal never repeats the key")
		assert.Contains(t, body, `"input":null`)
	}
	status, _, _ = do(t, http.MethodPut, srv.URL+"/devices/kit/poke-key", `{"poke_api_key":"`+strings.Repeat("k", 5000)+`"}`)
	assert.Equal(t, http.StatusRequestEntityTooLarge, status)
	assert.Equal(t, []string{"kit"}, sealedFor)

	status, _, body = do(t, http.MethodDelete, srv.URL+"/devices/kit/poke-key", "")
	require.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"device":"kit","poke_key":"unset"}`, body)
	_, ok, err = store.PokeKey(t.Context(), "kit")
	require.NoError(t, err)
	assert.False(t, ok)

	off := serveDeviceData(t, httpapi.DeviceDataConfig{Secrets: store, SealOff: "set FORESIGHT_SECRET_KEY"})
	status, _, body = do(t, http.MethodPut, off.URL+"/devices/kit/poke-key", `{"poke_api_key":"`+secret+`"}`)
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.JSONEq(t, `{"detail":"set FORESIGHT_SECRET_KEY"}`, body)
}
