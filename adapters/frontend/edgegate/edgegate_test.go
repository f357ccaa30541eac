package edgegate_test

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/frontend/edgegate"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const word = "open sesame"

// seen is what the inner handler observed of the last request it served.
type seen struct {
	mu         sync.Mutex
	calls      int
	header     http.Header
	rawQuery   string
	requestURI string
}

func (s *seen) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.calls++
		s.header = r.Header.Clone()
		s.rawQuery = r.URL.RawQuery
		s.requestURI = r.RequestURI
		s.mu.Unlock()
		_, _ = io.WriteString(w, "inner")
	})
}

func (s *seen) get() (calls int, h http.Header, rawQuery, requestURI string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, s.header, s.rawQuery, s.requestURI
}

// startGate serves a gate over a recording handler on a loopback socket.
func startGate(t *testing.T, cfg edgegate.Config) (*httptest.Server, *seen) {
	t.Helper()
	s := &seen{}
	srv := httptest.NewServer(edgegate.New(cfg).Wrap(s.handler()))
	t.Cleanup(srv.Close)
	return srv, s
}

type reply struct {
	status      int
	body        string
	contentType string
}

func do(t *testing.T, srv *httptest.Server, method, pathAndQuery string, header http.Header) reply {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+pathAndQuery, nil)
	require.NoError(t, err)
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{resp.StatusCode, string(b), resp.Header.Get("Content-Type")}
}

func hdr(v string) http.Header { return http.Header{"X-Magic-Word": {v}} }

func TestGateDeniesMissingWrongAndEmptyWords(t *testing.T) {
	srv, s := startGate(t, edgegate.Config{MagicWord: word})
	cases := []struct {
		name   string
		path   string
		header http.Header
	}{
		{"missing", "/poke/send", nil},
		{"wrong header", "/poke/send", hdr("open sesame!")},
		{"prefix of the word", "/poke/send", hdr("open")},
		{"empty header", "/poke/send", hdr("")},
		{"wrong query", "/vision/stream?magic_word=nope", nil},
		{"empty query", "/vision/stream?magic_word=", nil},
		{"bare query key", "/vision/stream?magic_word", nil},
		{"header wins over query", "/x?magic_word=" + url.QueryEscape(word), hdr("nope")},
		{"case matters", "/x", hdr("OPEN SESAME")},
		{"public path with trailing slash", "/health/", nil},
		{"public prefix is not public", "/health/../poke/send", nil},
		{"root", "/", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, srv, http.MethodPost, tc.path, tc.header)
			assert.Equal(t, http.StatusForbidden, r.status)
			assert.Equal(t, "forbidden", r.body)
			assert.Equal(t, "text/plain; charset=utf-8", r.contentType)
		})
	}
	calls, _, _, _ := s.get()
	assert.Zero(t, calls, "a denied request must not reach the inner handler")
}

func TestGatePublicPathsOpen(t *testing.T) {
	srv, s := startGate(t, edgegate.Config{MagicWord: word})
	for _, p := range []string{"/health", "/metrics"} {
		r := do(t, srv, http.MethodGet, p, nil)
		assert.Equal(t, http.StatusOK, r.status, p)
		assert.Equal(t, "inner", r.body, p)
	}
	calls, _, _, _ := s.get()
	assert.Equal(t, 2, calls)

	// A configured list replaces the default one.
	srv2, _ := startGate(t, edgegate.Config{MagicWord: word, PublicPaths: []string{"/health"}})
	assert.Equal(t, http.StatusOK, do(t, srv2, http.MethodGet, "/health", nil).status)
	assert.Equal(t, http.StatusForbidden, do(t, srv2, http.MethodGet, "/metrics", nil).status)
}

func TestGateAcceptsHeaderAndStripsIt(t *testing.T) {
	srv, s := startGate(t, edgegate.Config{MagicWord: word})
	r := do(t, srv, http.MethodGet, "/vision/stream?a=1", http.Header{
		"X-Magic-Word": {word},
		"X-Other":      {"kept"},
	})
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "inner", r.body)
	calls, h, q, uri := s.get()
	assert.Equal(t, 1, calls)
	assert.Empty(t, h.Values("X-Magic-Word"), "the word must not reach the inner handler")
	assert.Equal(t, "kept", h.Get("X-Other"))
	assert.Equal(t, "a=1", q)
	assert.Equal(t, "/vision/stream?a=1", uri)
}

func TestGateAcceptsQueryAndStripsIt(t *testing.T) {
	srv, s := startGate(t, edgegate.Config{MagicWord: word})
	esc := url.QueryEscape(word)
	cases := []struct{ in, wantQuery, wantURI string }{
		{"/vision/stream?magic_word=" + esc, "", "/vision/stream"},
		{"/vision/stream?b=2&magic_word=" + esc + "&a=%20x", "b=2&a=%20x", "/vision/stream?b=2&a=%20x"},
		{"/vision/stream?magic_word=" + esc + "&magic_word=again&z=1", "z=1", "/vision/stream?z=1"},
		{"/vision/stream?magic%5Fword=" + esc, "", "/vision/stream"},
	}
	for i, tc := range cases {
		r := do(t, srv, http.MethodGet, tc.in, nil)
		require.Equal(t, http.StatusOK, r.status, tc.in)
		calls, _, q, uri := s.get()
		assert.Equal(t, i+1, calls)
		assert.Equal(t, tc.wantQuery, q, tc.in)
		assert.Equal(t, tc.wantURI, uri, tc.in)
	}
}

func TestGateStripsWordOnPublicPaths(t *testing.T) {
	srv, s := startGate(t, edgegate.Config{MagicWord: word})
	r := do(t, srv, http.MethodGet, "/health?magic_word=anything", hdr("anything"))
	require.Equal(t, http.StatusOK, r.status)
	_, h, q, _ := s.get()
	assert.Empty(t, h.Values("X-Magic-Word"))
	assert.Empty(t, q)
}

func TestGateOffWhenUnconfigured(t *testing.T) {
	g := edgegate.New(edgegate.Config{})
	assert.False(t, g.Enabled())
	srv, s := startGate(t, edgegate.Config{})
	for _, p := range []string{"/poke/send", "/vision/stream", "/health", "/anything?magic_word=x"} {
		r := do(t, srv, http.MethodGet, p, nil)
		assert.Equal(t, http.StatusOK, r.status, p)
	}
	_, _, q, _ := s.get()
	assert.Empty(t, q, "a supplied word is removed even when the gate is off")
}

func TestGateRequiredDeniesWhenUnconfigured(t *testing.T) {
	srv, s := startGate(t, edgegate.Config{Required: true, PublicPaths: []string{"/health"}})
	assert.Equal(t, http.StatusForbidden, do(t, srv, http.MethodGet, "/poke/send", nil).status)
	assert.Equal(t, http.StatusForbidden, do(t, srv, http.MethodGet, "/poke/send", hdr("")).status)
	assert.Equal(t, http.StatusForbidden, do(t, srv, http.MethodGet, "/poke/send?magic_word=", nil).status)
	assert.Equal(t, http.StatusForbidden, do(t, srv, http.MethodGet, "/poke/send", hdr("x")).status)
	assert.Equal(t, http.StatusOK, do(t, srv, http.MethodGet, "/health", nil).status)
	calls, _, _, _ := s.get()
	assert.Equal(t, 1, calls)
}

func TestGateDenialLogOmitsWord(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv, _ := startGate(t, edgegate.Config{MagicWord: word, Logger: log})
	do(t, srv, http.MethodGet, "/secret/path?magic_word=guess-one", nil)
	do(t, srv, http.MethodGet, "/secret/path", hdr("guess-two"))
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	assert.Contains(t, out, "/secret/path")
	assert.Contains(t, out, "127.0.0.1")
	assert.NotContains(t, out, "guess-one")
	assert.NotContains(t, out, "guess-two")
	assert.NotContains(t, out, word)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestChecker(t *testing.T) {
	c := edgegate.NewChecker(word)
	assert.True(t, c.Configured())
	assert.True(t, c.Match(word))
	assert.False(t, c.Match(""))
	assert.False(t, c.Match(word+" "))
	assert.False(t, c.Match("open"))

	none := edgegate.NewChecker("")
	assert.False(t, none.Configured())
	assert.False(t, none.Match(""), "an unconfigured checker matches nothing, not even empty")
	assert.False(t, none.Match("x"))
	assert.False(t, edgegate.Checker{}.Match(""))
}

func TestStripWordLeavesOriginalUntouched(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/p?x=1&magic_word=w", nil)
	r.Header.Set("x-magic-word", "w")
	r2 := edgegate.StripWord(r)
	assert.Equal(t, "x=1&magic_word=w", r.URL.RawQuery)
	assert.Equal(t, "w", r.Header.Get("x-magic-word"))
	assert.Equal(t, "x=1", r2.URL.RawQuery)
	assert.Empty(t, r2.Header.Get("x-magic-word"))
	assert.Equal(t, "/p?x=1", r2.RequestURI)

	plain := httptest.NewRequest(http.MethodGet, "/p?x=1", nil)
	assert.Same(t, plain, edgegate.StripWord(plain))
}

func TestSupplied(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/p?magic_word=q", nil)
	w, ok := edgegate.Supplied(r)
	assert.True(t, ok)
	assert.Equal(t, "q", w)
	r.Header.Set("X-Magic-Word", "h")
	w, _ = edgegate.Supplied(r)
	assert.Equal(t, "h", w)
	_, ok = edgegate.Supplied(httptest.NewRequest(http.MethodGet, "/p", nil))
	assert.False(t, ok)
}

func TestRedactURL(t *testing.T) {
	u, err := url.Parse("https://user:pw@example.com/vision/stream?a=1&magic_word=s3cret&magic%5Fword=two&b=x%20y")
	require.NoError(t, err)
	got := edgegate.RedactURL(u)
	assert.NotContains(t, got, "s3cret")
	assert.NotContains(t, got, "two")
	assert.NotContains(t, got, "pw")
	assert.Equal(t, "https://user:xxxxx@example.com/vision/stream?a=1&magic_word=REDACTED&magic_word=REDACTED&b=x%20y", got)
	assert.Equal(t, "", edgegate.RedactURL(nil))
	assert.Equal(t, "a=1", edgegate.RedactQuery("a=1"))
}

func TestMiddlewareShape(t *testing.T) {
	var mw func(http.Handler) http.Handler = edgegate.Middleware(edgegate.Config{MagicWord: word})
	srv := httptest.NewServer(mw(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {})))
	defer srv.Close()
	assert.Equal(t, http.StatusForbidden, do(t, srv, http.MethodGet, "/x", nil).status)
	assert.Equal(t, http.StatusOK, do(t, srv, http.MethodGet, "/x", hdr(word)).status)
}
