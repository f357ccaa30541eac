package httpapi_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/adapters/frontend/trust"
	"github.com/foresight-vision/foresight/adapters/notify/poke"
	"github.com/foresight-vision/foresight/adapters/notify/poke/poketest"
)

type pokeEnv struct {
	fake *poketest.Server
	srv  *httptest.Server
}

func newPokeEnv(t *testing.T, cfg httpapi.PokeConfig, timeout time.Duration) *pokeEnv {
	t.Helper()
	fake := poketest.NewServer()
	t.Cleanup(fake.Close)
	client, err := poke.New(poke.Config{URL: fake.URL(), Timeout: timeout}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(client.CloseIdleConnections)
	cfg.Notifier = client
	cfg.Logger = slog.New(slog.DiscardHandler)
	srv := httptest.NewServer(httpapi.NewRouter(httpapi.Handlers{Poke: httpapi.NewPokeHandler(cfg)}))
	t.Cleanup(srv.Close)
	return &pokeEnv{fake: fake, srv: srv}
}

func (e *pokeEnv) post(t *testing.T, body string, header http.Header) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/poke/send", strings.NewReader(body))
	require.NoError(t, err)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var out map[string]any
	require.NoError(t, json.Unmarshal(raw, &out), string(raw))
	return resp.StatusCode, out
}

func keyHeader(k string) http.Header { return http.Header{"X-Poke-Api-Key": {k}} }

func TestPokeSuccess(t *testing.T) {
	e := newPokeEnv(t, httpapi.PokeConfig{}, time.Second)
	e.fake.SetReply(`{"ok":1}`)
	status, body := e.post(t, `{"message":"look left"}`, keyHeader("client-key"))
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, map[string]any{"success": true, "data": map[string]any{"ok": float64(1)}, "error": nil}, body)
	reqs := e.fake.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "Bearer client-key", reqs[0].Authorization)
	assert.Equal(t, "look left", reqs[0].Message)
}

func TestPokeKeyPrecedence(t *testing.T) {
	tests := []struct {
		name      string
		serverKey string
		trust     bool
		header    string
		want      string // Authorization seen upstream; "" = 500 no key
	}{
		{"header only", "", false, "h", "Bearer h"},
		{"server key only", "s", false, "", "Bearer s"},
		{"server key wins over header", "s", false, "h", "Bearer s"},
		{"trusted header wins", "s", true, "h", "Bearer h"},
		{"trusted, no header: server key", "s", true, "", "Bearer s"},
		{"no key at all", "", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newPokeEnv(t, httpapi.PokeConfig{ServerKey: tt.serverKey, Trust: trust.New(tt.trust)}, time.Second)
			var hdr http.Header
			if tt.header != "" {
				hdr = keyHeader(tt.header)
			}
			status, body := e.post(t, `{"message":"m"}`, hdr)
			if tt.want == "" {
				assert.Equal(t, http.StatusInternalServerError, status)
				assert.Equal(t, map[string]any{"detail": "Poke API key not configured"}, body)
				assert.Empty(t, e.fake.Requests())
				return
			}
			assert.Equal(t, http.StatusOK, status)
			require.Len(t, e.fake.Requests(), 1)
			assert.Equal(t, tt.want, e.fake.Requests()[0].Authorization)
		})
	}
}

func TestPokeValidation(t *testing.T) {
	tests := []struct {
		name, body string
		wantType   string
		wantLoc    []any
	}{
		{"empty object", `{}`, "missing", []any{"body", "message"}},
		{"not json", `hello`, "json_invalid", []any{"body", float64(0)}},
		{"message not a string", `{"message": 5}`, "string_type", []any{"body", "message"}},
		{"not an object", `["x"]`, "model_attributes_type", []any{"body"}},
		{"empty body", ``, "missing", []any{"body"}},
		{"message not UTF-8", "{\"message\": \"caf\xe9\"}", "string_unicode", []any{"body", "message"}},
		{"message with a lone high surrogate", `{"message": "a\ud800b"}`, "string_unicode", []any{"body", "message"}},
		{"message with a lone low surrogate", `{"message": "\udc00"}`, "string_unicode", []any{"body", "message"}},
		{"high surrogate at the end", `{"message": "\ud83d"}`, "string_unicode", []any{"body", "message"}},
	}
	e := newPokeEnv(t, httpapi.PokeConfig{}, time.Second)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := e.post(t, tt.body, keyHeader("k"))
			assert.Equal(t, http.StatusUnprocessableEntity, status)
			detail, ok := body["detail"].([]any)
			require.True(t, ok, "detail is a list: %v", body)
			require.Len(t, detail, 1)
			entry := detail[0].(map[string]any)
			assert.Equal(t, tt.wantType, entry["type"])
			assert.Equal(t, tt.wantLoc, entry["loc"])
			assert.NotEmpty(t, entry["msg"])
		})
	}
	assert.Empty(t, e.fake.Requests(), "nothing is sent upstream for a bad body")
}

func TestPokeUnicodeMessagesPass(t *testing.T) {
	e := newPokeEnv(t, httpapi.PokeConfig{}, time.Second)
	for _, body := range []string{
		`{"message": "café ☕ 😀"}`,
		`{"message": "\ud83d\ude00 and \\ud800 (an escaped backslash, not a surrogate)"}`,
		`{"message": "\ufffd is a real character", "other": "\ud800"}`,
	} {
		status, resp := e.post(t, body, keyHeader("k"))
		assert.Equal(t, http.StatusOK, status, "%s: %v", body, resp)
	}
	assert.Len(t, e.fake.Requests(), 3)
}

func TestPokeUpstreamFailures(t *testing.T) {
	t.Run("500", func(t *testing.T) {
		e := newPokeEnv(t, httpapi.PokeConfig{}, time.Second)
		e.fake.SetStatus(http.StatusInternalServerError, `{"error":"secret internals"}`)
		status, body := e.post(t, `{"message":"m"}`, keyHeader("sk-123"))
		assert.Equal(t, http.StatusBadGateway, status)
		assert.Equal(t, "poke upstream returned 500 Internal Server Error", body["detail"])
	})
	t.Run("401", func(t *testing.T) {
		e := newPokeEnv(t, httpapi.PokeConfig{}, time.Second)
		e.fake.SetValidKey("the-right-key")
		status, body := e.post(t, `{"message":"m"}`, keyHeader("sk-wrong"))
		assert.Equal(t, http.StatusBadGateway, status)
		assert.NotContains(t, body["detail"], "sk-wrong")
		assert.Contains(t, body["detail"], "401")
	})
	t.Run("timeout", func(t *testing.T) {
		e := newPokeEnv(t, httpapi.PokeConfig{}, 100*time.Millisecond)
		e.fake.SetDelay(5 * time.Second)
		status, body := e.post(t, `{"message":"m"}`, keyHeader("k"))
		assert.Equal(t, http.StatusBadGateway, status)
		assert.Equal(t, "poke upstream timed out", body["detail"])
	})
}

func TestPokeBodyTooLarge(t *testing.T) {
	e := newPokeEnv(t, httpapi.PokeConfig{MaxBodyBytes: 32}, time.Second)
	status, _ := e.post(t, `{"message":"`+strings.Repeat("x", 100)+`"}`, keyHeader("k"))
	assert.Equal(t, http.StatusRequestEntityTooLarge, status)
}

func TestHealthAndUnknownRoutes(t *testing.T) {
	srv := httptest.NewServer(httpapi.NewRouter(httpapi.Handlers{Stream: http.NotFoundHandler(), Poke: http.NotFoundHandler()}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/health")
	require.NoError(t, err)
	var body map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, map[string]string{"status": "ok"}, body)

	resp, err = http.Get(srv.URL + "/nope")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	resp, err = http.Post(srv.URL+"/health", "application/json", nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)
}
