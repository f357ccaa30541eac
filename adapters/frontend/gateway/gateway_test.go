package gateway_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/frontend/gateway"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const word = "open sesame"

var secrets = gateway.Secrets{
	PokeAPIKey:       "poke-key",
	ModalTokenID:     "ak-id",
	ModalTokenSecret: "as-secret",
	ModalAppName:     "app",
	ModalClassName:   "Cls",
}

// ---------- upstream test double ----------

// recorded is one request as the upstream saw it.
type recorded struct {
	path     string
	rawQuery string
	header   http.Header
}

// upstream is a small server standing in for foresight: it records every
// request, answers plain requests with 200 "upstream <path>", and speaks
// WebSocket on /ws (acks each data message in order; on text "close-me" it
// closes with 1003) and /ws-frames (see handleFrames).
type upstream struct {
	mu      sync.Mutex
	reqs    []recorded
	block   chan struct{} // /block waits on it
	arrived chan struct{} // /block signals arrival
}

func newUpstream() *upstream {
	return &upstream{block: make(chan struct{}), arrived: make(chan struct{}, 16)}
}

func (u *upstream) last(t *testing.T) recorded {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	require.NotEmpty(t, u.reqs, "upstream saw no request")
	return u.reqs[len(u.reqs)-1]
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	u.reqs = append(u.reqs, recorded{r.URL.Path, r.URL.RawQuery, r.Header.Clone()})
	u.mu.Unlock()
	switch r.URL.Path {
	case "/ws":
		u.handleWS(w, r)
	case "/ws-frames":
		u.handleFrames(w, r)
	case "/block":
		u.arrived <- struct{}{}
		<-u.block
		_, _ = io.WriteString(w, "unblocked")
	default:
		_, _ = io.WriteString(w, "upstream "+r.URL.Path)
	}
}

func (u *upstream) handleWS(w http.ResponseWriter, r *http.Request) {
	conn, rw, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	defer conn.Close()
	rd := struct {
		io.Reader
		io.Writer
	}{rw.Reader, conn}
	for n := 1; ; n++ {
		msg, op, err := wsutil.ReadClientData(rd)
		if err != nil {
			return // includes the client's close
		}
		if op == ws.OpText && string(msg) == "close-me" {
			_ = ws.WriteFrame(conn, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusUnsupportedData, "no text please")))
			// Wait for the client's close reply (or its hang-up).
			_, _ = io.Copy(io.Discard, rw.Reader)
			return
		}
		if err := wsutil.WriteServerText(conn, []byte(fmt.Sprintf("ack:%d:%s", n, msg))); err != nil {
			return
		}
	}
}

// handleFrames reads one frame header, reports it before the payload has
// arrived, then reads the payload and reports its size: proof that the
// gateway relays bytes as they come instead of buffering whole messages.
func (u *upstream) handleFrames(w http.ResponseWriter, r *http.Request) {
	conn, rw, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	defer conn.Close()
	h, err := ws.ReadHeader(rw.Reader)
	if err != nil {
		return
	}
	if err := wsutil.WriteServerText(conn, []byte(fmt.Sprintf("header:%d", h.Length))); err != nil {
		return
	}
	n, err := io.CopyN(io.Discard, rw.Reader, h.Length)
	if err != nil {
		return
	}
	_ = wsutil.WriteServerText(conn, []byte(fmt.Sprintf("payload:%d", n)))
	_, _ = io.Copy(io.Discard, rw.Reader)
}

// startUpstream serves u on ln (a fresh loopback port when ln is nil).
func startUpstream(t *testing.T, u *upstream, ln net.Listener) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(u)
	if ln != nil {
		srv.Listener.Close()
		srv.Listener = ln
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// startGateway serves a Gateway for cfg on loopback.
func startGateway(t *testing.T, cfg gateway.Config) (*gateway.Gateway, *httptest.Server) {
	t.Helper()
	g, err := gateway.New(cfg)
	require.NoError(t, err)
	srv := httptest.NewServer(g)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { _ = g.Close() }) // runs first: ends WebSocket relays
	return g, srv
}

type reply struct {
	status int
	body   string
}

func do(t *testing.T, srv *httptest.Server, method, pathAndQuery string, header http.Header) reply {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+pathAndQuery, strings.NewReader(`{"message":"hi"}`))
	require.NoError(t, err)
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return reply{resp.StatusCode, string(b)}
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

// ---------- WebSocket client ----------

type wsClient struct {
	conn net.Conn
	rw   io.ReadWriter
}

func dialWS(t *testing.T, gw *httptest.Server, pathAndQuery string, h http.Header) (*wsClient, error) {
	t.Helper()
	d := ws.Dialer{Header: ws.HandshakeHeaderHTTP(h), Timeout: 10 * time.Second}
	conn, br, _, err := d.Dial(context.Background(), "ws"+strings.TrimPrefix(gw.URL, "http")+pathAndQuery)
	if err != nil {
		return nil, err
	}
	var r io.Reader = conn
	if br != nil {
		r = br
	}
	c := &wsClient{conn: conn, rw: struct {
		io.Reader
		io.Writer
	}{r, conn}}
	t.Cleanup(func() { _ = conn.Close() })
	return c, nil
}

// ---------- tests ----------

func TestGatewayDeniesWithoutTheWord(t *testing.T) {
	up := newUpstream()
	upSrv := startUpstream(t, up, nil)
	_, gw := startGateway(t, gateway.Config{Upstream: upSrv.URL, MagicWord: word})
	cases := []struct {
		name string
		path string
		h    http.Header
	}{
		{"missing", "/poke/send", nil},
		{"wrong header", "/poke/send", hdr("X-Magic-Word", "nope")},
		{"empty header", "/poke/send", hdr("X-Magic-Word", "")},
		{"wrong query", "/poke/send?magic_word=nope", nil},
		{"empty query", "/poke/send?magic_word=", nil},
		{"health with trailing slash", "/health/", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, gw, http.MethodPost, tc.path, tc.h)
			assert.Equal(t, http.StatusForbidden, r.status)
			assert.Equal(t, "forbidden", r.body)
		})
	}
	_, err := dialWS(t, gw, "/ws", nil)
	var se ws.StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusForbidden, int(se))
	assert.Zero(t, up.count(), "nothing may reach the upstream")
}

func TestGatewayDeniesEverythingWhenNoWordConfigured(t *testing.T) {
	up := newUpstream()
	upSrv := startUpstream(t, up, nil)
	_, gw := startGateway(t, gateway.Config{Upstream: upSrv.URL, Secrets: secrets})
	for _, h := range []http.Header{nil, hdr("X-Magic-Word", ""), hdr("X-Magic-Word", "anything")} {
		r := do(t, gw, http.MethodPost, "/poke/send", h)
		assert.Equal(t, http.StatusForbidden, r.status)
		assert.Equal(t, "forbidden", r.body)
	}
	assert.Equal(t, http.StatusForbidden, do(t, gw, http.MethodGet, "/x?magic_word=", nil).status)
	assert.Zero(t, up.count())

	r := do(t, gw, http.MethodGet, "/health", nil)
	assert.Equal(t, http.StatusOK, r.status, "health stays open")
	assert.Equal(t, "upstream /health", r.body)
}

func TestGatewayHealthOpen(t *testing.T) {
	up := newUpstream()
	upSrv := startUpstream(t, up, nil)
	_, gw := startGateway(t, gateway.Config{Upstream: upSrv.URL, MagicWord: word, Secrets: secrets})
	r := do(t, gw, http.MethodGet, "/health", nil)
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "upstream /health", r.body)
	// /metrics is not public on the gateway unless configured.
	assert.Equal(t, http.StatusForbidden, do(t, gw, http.MethodGet, "/metrics", nil).status)
}

func assertSecretsInjected(t *testing.T, h http.Header) {
	t.Helper()
	assert.Equal(t, []string{"poke-key"}, h.Values("x-poke-api-key"))
	assert.Equal(t, []string{"ak-id"}, h.Values("x-modal-token-id"))
	assert.Equal(t, []string{"as-secret"}, h.Values("x-modal-token-secret"))
	assert.Equal(t, []string{"app"}, h.Values("x-modal-app-name"))
	assert.Equal(t, []string{"Cls"}, h.Values("x-modal-class-name"))
	assert.Empty(t, h.Values("x-magic-word"), "the word must not reach the upstream")
	assert.Empty(t, h.Values("x-modal-environment"), "unknown x-modal-* headers are stripped")
	assert.Equal(t, "127.0.0.1", h.Get("X-Forwarded-For"), "client-supplied X-Forwarded-For is replaced")
}

// strangerHeaders are credentials a client tries to pass itself.
func strangerHeaders() http.Header {
	return hdr(
		"X-Poke-Api-Key", "stranger-key",
		"x-modal-token-id", "stranger-id",
		"X-Modal-Token-Secret", "stranger-secret",
		"X-Modal-App-Name", "stranger-app",
		"X-Modal-Class-Name", "StrangerCls",
		"X-Modal-Environment", "stranger-env",
		"X-Forwarded-For", "6.6.6.6",
	)
}

func TestGatewayInjectsSecretsOnHTTP(t *testing.T) {
	up := newUpstream()
	upSrv := startUpstream(t, up, nil)
	_, gw := startGateway(t, gateway.Config{Upstream: upSrv.URL, MagicWord: word, Secrets: secrets})

	h := strangerHeaders()
	h.Set("X-Magic-Word", word)
	r := do(t, gw, http.MethodPost, "/poke/send?a=1", h)
	require.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "upstream /poke/send", r.body)
	got := up.last(t)
	assertSecretsInjected(t, got.header)
	assert.Equal(t, "a=1", got.rawQuery)

	// Query form: the parameter is removed before forwarding.
	r = do(t, gw, http.MethodPost, "/poke/send?b=2&magic_word="+url.QueryEscape(word)+"&c=3", strangerHeaders())
	require.Equal(t, http.StatusOK, r.status)
	got = up.last(t)
	assertSecretsInjected(t, got.header)
	assert.Equal(t, "b=2&c=3", got.rawQuery)
}

func TestGatewayStripsClientCredentialsItDoesNotHold(t *testing.T) {
	up := newUpstream()
	upSrv := startUpstream(t, up, nil)
	_, gw := startGateway(t, gateway.Config{
		Upstream: upSrv.URL, MagicWord: word,
		Secrets: gateway.Secrets{PokeAPIKey: "poke-key"},
	})
	h := strangerHeaders()
	h.Set("X-Magic-Word", word)
	require.Equal(t, http.StatusOK, do(t, gw, http.MethodGet, "/x", h).status)
	got := up.last(t).header
	assert.Equal(t, []string{"poke-key"}, got.Values("x-poke-api-key"))
	for _, name := range []string{"x-modal-token-id", "x-modal-token-secret", "x-modal-app-name", "x-modal-class-name", "x-modal-environment"} {
		assert.Empty(t, got.Values(name), name)
	}
}

func TestGatewayWebSocketRelay(t *testing.T) {
	up := newUpstream()
	upSrv := startUpstream(t, up, nil)
	g, gw := startGateway(t, gateway.Config{Upstream: upSrv.URL, MagicWord: word, Secrets: secrets})

	h := strangerHeaders()
	c, err := dialWS(t, gw, "/ws?magic_word="+url.QueryEscape(word)+"&keep=1", h)
	require.NoError(t, err)

	// The upgrade carried the gateway's secrets, not the client's.
	got := up.last(t)
	assert.Equal(t, "/ws", got.path)
	assert.Equal(t, "keep=1", got.rawQuery)
	assertSecretsInjected(t, got.header)
	assert.Equal(t, "websocket", strings.ToLower(got.header.Get("Upgrade")))

	// Messages both ways, in order, pipelined.
	const n = 20
	for i := 1; i <= n; i++ {
		require.NoError(t, wsutil.WriteClientBinary(c.rw, []byte(fmt.Sprintf("frame-%d", i))))
	}
	big := strings.Repeat("x", 256<<10)
	require.NoError(t, wsutil.WriteClientBinary(c.rw, []byte(big)))
	for i := 1; i <= n; i++ {
		msg, err := wsutil.ReadServerText(c.rw)
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("ack:%d:frame-%d", i, i), string(msg))
	}
	msg, err := wsutil.ReadServerText(c.rw)
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("ack:%d:%s", n+1, big), string(msg))
	assert.Equal(t, 1, g.InFlight(), "an open WebSocket holds a slot")

	// The upstream's close code and reason reach the client unchanged.
	require.NoError(t, wsutil.WriteClientText(c.rw, []byte("close-me")))
	_, _, err = wsutil.ReadServerData(c.rw)
	var ce wsutil.ClosedError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, ws.StatusUnsupportedData, ce.Code)
	assert.Equal(t, "no text please", ce.Reason)
	require.NoError(t, c.conn.Close())

	// The slot is released when the relay ends.
	require.Eventually(t, func() bool { return g.InFlight() == 0 }, 5*time.Second, 5*time.Millisecond)
}

func TestGatewayWebSocketHeaderWordAndStreamingRelay(t *testing.T) {
	up := newUpstream()
	upSrv := startUpstream(t, up, nil)
	_, gw := startGateway(t, gateway.Config{Upstream: upSrv.URL, MagicWord: word, Secrets: secrets})
	c, err := dialWS(t, gw, "/ws-frames", hdr("X-Magic-Word", word))
	require.NoError(t, err)
	assertSecretsInjected(t, up.last(t).header)

	// Send a frame header announcing 1 MiB and only part of the payload: the
	// upstream must see the header before the rest exists.
	const size = 1 << 20
	mask := ws.NewMask()
	require.NoError(t, ws.WriteHeader(c.rw, ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Mask: mask, Length: size}))
	payload := make([]byte, size)
	ws.Cipher(payload, mask, 0)
	_, err = c.rw.Write(payload[:1000])
	require.NoError(t, err)
	msg, err := wsutil.ReadServerText(c.rw)
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("header:%d", size), string(msg))

	_, err = c.rw.Write(payload[1000:])
	require.NoError(t, err)
	msg, err = wsutil.ReadServerText(c.rw)
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("payload:%d", size), string(msg))
}

func TestGatewayUpstreamDownThenBack(t *testing.T) {
	// Reserve a loopback address, then free it so nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	_, gw := startGateway(t, gateway.Config{Upstream: "http://" + addr, MagicWord: word, Secrets: secrets})
	h := hdr("X-Magic-Word", word)
	r := do(t, gw, http.MethodGet, "/poke/send", h)
	assert.Equal(t, http.StatusBadGateway, r.status)
	assert.Equal(t, "upstream unavailable", r.body)
	assert.NotContains(t, r.body, "127.0.0.1")
	_, err = dialWS(t, gw, "/ws?magic_word="+url.QueryEscape(word), nil)
	var se ws.StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusBadGateway, int(se))

	// The upstream comes up on the same address: the gateway recovers.
	ln2, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	up := newUpstream()
	upSrv := startUpstream(t, up, ln2)
	r = do(t, gw, http.MethodGet, "/poke/send", h)
	assert.Equal(t, http.StatusOK, r.status)
	assert.Equal(t, "upstream /poke/send", r.body)
	c, err := dialWS(t, gw, "/ws?magic_word="+url.QueryEscape(word), nil)
	require.NoError(t, err)
	require.NoError(t, wsutil.WriteClientBinary(c.rw, []byte("x")))
	msg, err := wsutil.ReadServerText(c.rw)
	require.NoError(t, err)
	assert.Equal(t, "ack:1:x", string(msg))
	require.NoError(t, c.conn.Close())

	// And down again: 502 again, no sticky state.
	upSrv.CloseClientConnections()
	upSrv.Close()
	r = do(t, gw, http.MethodGet, "/poke/send", h)
	assert.Equal(t, http.StatusBadGateway, r.status)
	assert.Equal(t, "upstream unavailable", r.body)
}

func TestGatewayConnectionLimit(t *testing.T) {
	up := newUpstream()
	upSrv := startUpstream(t, up, nil)
	g, gw := startGateway(t, gateway.Config{Upstream: upSrv.URL, MagicWord: word, MaxConns: 1})
	h := hdr("X-Magic-Word", word)

	// A slow plain request holds the only slot.
	done := make(chan reply, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, gw.URL+"/block", nil)
		req.Header = h.Clone()
		resp, err := gw.Client().Do(req)
		if err != nil {
			done <- reply{status: -1, body: err.Error()}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- reply{resp.StatusCode, string(b)}
	}()
	<-up.arrived
	r := do(t, gw, http.MethodGet, "/x", h)
	assert.Equal(t, http.StatusServiceUnavailable, r.status)
	assert.Equal(t, "over capacity", r.body)
	// Strangers are still told 403, not 503: the gate comes first.
	assert.Equal(t, http.StatusForbidden, do(t, gw, http.MethodGet, "/x", nil).status)
	close(up.block)
	assert.Equal(t, reply{http.StatusOK, "unblocked"}, <-done)
	require.Eventually(t, func() bool { return g.InFlight() == 0 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, http.StatusOK, do(t, gw, http.MethodGet, "/x", h).status)

	// A WebSocket holds the slot for its whole life.
	c, err := dialWS(t, gw, "/ws", h)
	require.NoError(t, err)
	assert.Equal(t, http.StatusServiceUnavailable, do(t, gw, http.MethodGet, "/x", h).status)
	_, err = dialWS(t, gw, "/ws", h)
	var se ws.StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusServiceUnavailable, int(se))
	require.NoError(t, c.conn.Close())
	require.Eventually(t, func() bool { return g.InFlight() == 0 }, 5*time.Second, 5*time.Millisecond)
	assert.Equal(t, http.StatusOK, do(t, gw, http.MethodGet, "/x", h).status)
}

func TestGatewayResponseHeaderTimeout(t *testing.T) {
	up := newUpstream()
	upSrv := startUpstream(t, up, nil)
	_, gw := startGateway(t, gateway.Config{
		Upstream: upSrv.URL, MagicWord: word, ResponseHeaderTimeout: 50 * time.Millisecond,
	})
	defer close(up.block)
	r := do(t, gw, http.MethodGet, "/block", hdr("X-Magic-Word", word))
	assert.Equal(t, http.StatusGatewayTimeout, r.status)
	assert.Equal(t, "upstream timeout", r.body)
}

func TestGatewayServeShutsDownRelays(t *testing.T) {
	up := newUpstream()
	upSrv := startUpstream(t, up, nil)
	g, err := gateway.New(gateway.Config{Upstream: upSrv.URL, MagicWord: word, ShutdownTimeout: time.Second})
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx, ln) }()

	d := ws.Dialer{Header: ws.HandshakeHeaderHTTP(hdr("X-Magic-Word", word))}
	conn, br, _, err := d.Dial(context.Background(), "ws://"+ln.Addr().String()+"/ws")
	require.NoError(t, err)
	defer conn.Close()
	require.Nil(t, br)
	require.NoError(t, wsutil.WriteClientBinary(conn, []byte("a")))
	msg, err := wsutil.ReadServerText(conn)
	require.NoError(t, err)
	assert.Equal(t, "ack:1:a", string(msg))

	cancel()
	require.NoError(t, <-served)
	// The relay was cut: the client's next read ends with EOF or a reset,
	// not with the guard deadline.
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, err = io.ReadAll(bufio.NewReader(conn))
	var ne net.Error
	assert.False(t, errors.As(err, &ne) && ne.Timeout(), "relay still open after shutdown")
	assert.Equal(t, 0, g.InFlight())
}

func TestGatewayAfterClose(t *testing.T) {
	up := newUpstream()
	upSrv := startUpstream(t, up, nil)
	g, gw := startGateway(t, gateway.Config{Upstream: upSrv.URL, MagicWord: word})
	require.NoError(t, g.Close())
	require.NoError(t, g.Wait(context.Background()))
	r := do(t, gw, http.MethodGet, "/x", hdr("X-Magic-Word", word))
	assert.Equal(t, reply{http.StatusServiceUnavailable, "shutting down"}, r)
	assert.Equal(t, http.StatusForbidden, do(t, gw, http.MethodGet, "/x", nil).status)
	assert.Zero(t, up.count())
}

func TestNewValidatesUpstream(t *testing.T) {
	for _, bad := range []string{"", "  ", "ftp://x", "http://", "http://u:p@host", "::"} {
		_, err := gateway.New(gateway.Config{Upstream: bad})
		assert.Error(t, err, bad)
	}
	for _, good := range []string{"http://127.0.0.1:8080", "https://example.com/base", "ws://h:1", "wss://h"} {
		g, err := gateway.New(gateway.Config{Upstream: good})
		if assert.NoError(t, err, good) {
			_ = g.Close()
		}
	}
}

func TestGatewaySendsUpstreamWord(t *testing.T) {
	up := newUpstream()
	upSrv := startUpstream(t, up, nil)
	_, gw := startGateway(t, gateway.Config{Upstream: upSrv.URL, MagicWord: word, UpstreamMagicWord: "inner word"})
	require.Equal(t, http.StatusOK, do(t, gw, http.MethodGet, "/x?magic_word="+url.QueryEscape(word), nil).status)
	got := up.last(t)
	assert.Equal(t, []string{"inner word"}, got.header.Values("X-Magic-Word"))
	assert.Empty(t, got.rawQuery)
}

func TestUpstreamPathPrefix(t *testing.T) {
	up := newUpstream()
	upSrv := startUpstream(t, up, nil)
	_, gw := startGateway(t, gateway.Config{Upstream: upSrv.URL + "/base", MagicWord: word})
	r := do(t, gw, http.MethodGet, "/poke/send", hdr("X-Magic-Word", word))
	assert.Equal(t, "upstream /base/poke/send", r.body)
}

func TestSecretsFromEnv(t *testing.T) {
	env := map[string]string{
		"FORESIGHT_POKE_API_KEY":       " pk ",
		"FORESIGHT_MODAL_TOKEN_ID":     "id",
		"FORESIGHT_MODAL_TOKEN_SECRET": "sec",
		"FORESIGHT_MODAL_APP_NAME":     "",
		"FORESIGHT_MODAL_CLASS_NAME":   "C",
	}
	s := gateway.SecretsFromEnv(func(k string) string { return env[k] })
	assert.Equal(t, gateway.Secrets{PokeAPIKey: "pk", ModalTokenID: "id", ModalTokenSecret: "sec", ModalClassName: "C"}, s)
}
