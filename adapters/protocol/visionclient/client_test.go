package visionclient_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/adapters/protocol/visionclient"
	"github.com/foresight-vision/foresight/adapters/protocol/wsframe/wsframetest"
	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/domain/domaintest"
	"github.com/foresight-vision/foresight/ports"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// closeRecorder records the close codes the server reports.
type closeRecorder struct {
	httpapi.NopObserver
	codes chan int
}

func (c *closeRecorder) StreamClosed(code int) { c.codes <- code }

// startServer runs the real stream handler on a loopback httptest server
// and returns its ws:// URL.
func startServer(t *testing.T, cfg httpapi.StreamHandlerConfig, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	h := httpapi.NewStreamHandler(cfg)
	var handler http.Handler = h
	if wrap != nil {
		handler = wrap(h)
	}
	srv := httptest.NewServer(handler)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, h.Shutdown(ctx))
		srv.Close()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/vision/stream"
}

func dial(t *testing.T, url string, opts visionclient.Options) *visionclient.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := visionclient.Dial(ctx, url, opts)
	require.NoError(t, err)
	return c
}

func TestFramesAreAckedInOrder(t *testing.T) {
	rec := &closeRecorder{codes: make(chan int, 1)}
	url := startServer(t, httpapi.StreamHandlerConfig{Observer: rec}, nil)
	c := dial(t, url, visionclient.Options{})

	for i, size := range []int{10, 0, 20000, 1} {
		require.NoError(t, c.SendFrame(make([]byte, size)))
		ack, err := c.ReadAck()
		require.NoError(t, err)
		assert.Equal(t, int64(i+1), ack.Frame)
		assert.Equal(t, size, ack.Bytes)
		assert.False(t, ack.HasResult())
		assert.JSONEq(t, string(ack.Raw), `{"frame":`+itoa(i+1)+`,"bytes":`+itoa(size)+`}`)
	}
	require.NoError(t, c.Close())
	select {
	case code := <-rec.codes:
		assert.Equal(t, 1000, code, "client Close must be a normal closure")
	case <-time.After(5 * time.Second):
		t.Fatal("server did not report the stream closed")
	}
	assert.ErrorIs(t, c.SendFrame([]byte{1}), visionclient.ErrClosed)
	require.NoError(t, c.Close(), "second Close is a no-op")
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestCaptionsAndInferenceErrorsArrive(t *testing.T) {
	for _, tc := range []struct {
		name  string
		infer domaintest.InferFunc
		check func(t *testing.T, a visionclient.Ack)
	}{
		{
			name: "caption",
			infer: func(context.Context, ports.Chunk) (ports.Result, error) {
				return ports.Result{Caption: "a person walks", LatencyMS: 7, TokensGenerated: 3,
					Set: ports.ResultCaption | ports.ResultLatency | ports.ResultTokens}, nil
			},
			check: func(t *testing.T, a visionclient.Ack) {
				assert.True(t, a.HasCaption)
				assert.Equal(t, "a person walks", a.Caption)
				assert.Empty(t, a.InferenceError)
				assert.EqualValues(t, "7", a.Fields["latency_ms"].(interface{ String() string }).String())
				assert.Contains(t, a.Fields, "frame")
			},
		},
		{
			name: "error",
			infer: func(context.Context, ports.Chunk) (ports.Result, error) {
				return ports.Result{}, errors.New("model exploded")
			},
			check: func(t *testing.T, a visionclient.Ack) {
				assert.False(t, a.HasCaption)
				assert.Contains(t, a.InferenceError, "model exploded")
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backend := &domaintest.Backend{Infer: tc.infer}
			url := startServer(t, httpapi.StreamHandlerConfig{
				Backend: backend,
				Stream:  domain.StreamConfig{}, // cut whenever idle
			}, nil)
			c := dial(t, url, visionclient.Options{})
			defer c.Close()
			var got *visionclient.Ack
			deadline := time.Now().Add(10 * time.Second) // a bound for a broken server only
			for i := 0; got == nil && time.Now().Before(deadline); i++ {
				require.NoError(t, c.SendFrame([]byte{0xff, 0xd8, 0xff, 0xd9}))
				ack, err := c.ReadAck()
				require.NoError(t, err)
				require.Equal(t, int64(i+1), ack.Frame)
				if ack.HasResult() {
					got = &ack
				} else {
					time.Sleep(2 * time.Millisecond) // let the call finish
				}
			}
			require.NotNil(t, got, "no ack carried a result")
			tc.check(t, *got)
		})
	}
}

func TestMagicWordAndHeadersAreSent(t *testing.T) {
	var mu sync.Mutex
	var gotQuery, gotHeader string
	url := startServer(t, httpapi.StreamHandlerConfig{}, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			gotQuery, gotHeader = r.URL.Query().Get("magic_word"), r.Header.Get("X-Test")
			mu.Unlock()
			next.ServeHTTP(w, r)
		})
	})
	c := dial(t, url+"?magic_word=old&x=1", visionclient.Options{
		MagicWord: "open sesame",
		Header:    http.Header{"X-Test": []string{"yes"}},
	})
	require.NoError(t, c.SendFrame([]byte("x")))
	_, err := c.ReadAck()
	require.NoError(t, err)
	require.NoError(t, c.Close())
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, "open sesame", gotQuery)
	assert.Equal(t, "yes", gotHeader)
}

func TestRefusedHandshakeIsAnError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "forbidden", http.StatusForbidden)
	}))
	defer srv.Close()
	_, err := visionclient.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http")+"/vision/stream?magic_word=secret", visionclient.Options{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "403")
	assert.NotContains(t, err.Error(), "secret", "the magic word must not leak into errors")
}

func TestPipelinedSendAndReadConcurrently(t *testing.T) {
	url := startServer(t, httpapi.StreamHandlerConfig{}, nil)
	c := dial(t, url, visionclient.Options{})
	const n = 300
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		frame := make([]byte, 2048)
		for range n {
			if !assert.NoError(t, c.SendFrame(frame)) {
				return
			}
		}
	}()
	for i := range n {
		ack, err := c.ReadAck()
		require.NoError(t, err)
		require.Equal(t, int64(i+1), ack.Frame)
		require.Equal(t, 2048, ack.Bytes)
	}
	wg.Wait()
	require.NoError(t, c.Close())
}

func TestCloseWhileReaderBlocked(t *testing.T) {
	url := startServer(t, httpapi.StreamHandlerConfig{}, nil)
	c := dial(t, url, visionclient.Options{})
	errc := make(chan error, 1)
	go func() {
		_, err := c.ReadAck()
		errc <- err
	}()
	// Under load the reader may start late; closing first would make it read
	// a closed connection instead of the close reply.
	require.Eventually(t, c.ReaderBlocked, 10*time.Second, time.Millisecond, "the reader blocks in ReadAck")
	require.NoError(t, c.Close())
	err := <-errc
	var ce *visionclient.CloseError
	require.ErrorAs(t, err, &ce, "the blocked reader sees the server's close reply")
	assert.Equal(t, 1000, ce.Code)
}

// rawServer is a hand-written WebSocket server for the cases the real
// handler never produces (pings, fragmented or oversized acks, its own close).
func rawServer(t *testing.T, script func(conn wsConn)) string {
	t.Helper()
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, _, _, err := ws.UpgradeHTTP(r, w)
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		defer conn.Close()
		script(wsConn{conn})
	}))
	t.Cleanup(func() {
		srv.Close()
		wg.Wait()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/"
}

type wsConn struct{ c io.ReadWriter }

func TestPingIsAnsweredAndFragmentsJoined(t *testing.T) {
	pong := make(chan string, 1)
	url := rawServer(t, func(c wsConn) {
		// Ping first, then an ack split into two fragments.
		_ = ws.WriteFrame(c.c, ws.NewPingFrame([]byte("hi")))
		_ = ws.WriteFrame(c.c, ws.NewFrame(ws.OpText, false, []byte(`{"frame":1,`)))
		_ = ws.WriteFrame(c.c, ws.NewFrame(ws.OpContinuation, true, []byte(`"bytes":5,"caption":"x"}`)))
		f, err := wsframetest.ReadFrame(c.c)
		if err == nil && f.Header.OpCode == ws.OpPong {
			f = ws.UnmaskFrameInPlace(f)
			pong <- string(f.Payload)
		}
		// Server-initiated close with a code.
		_ = ws.WriteFrame(c.c, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "bye")))
		_, _, _ = wsutil.ReadClientData(c.c) // the client's echo
	})
	c := dial(t, url, visionclient.Options{})
	ack, err := c.ReadAck()
	require.NoError(t, err)
	assert.Equal(t, int64(1), ack.Frame)
	assert.Equal(t, 5, ack.Bytes)
	assert.True(t, ack.HasCaption)
	select {
	case p := <-pong:
		assert.Equal(t, "hi", p)
	case <-time.After(5 * time.Second):
		t.Fatal("no pong")
	}
	_, err = c.ReadAck()
	var ce *visionclient.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, 1001, ce.Code)
	assert.Equal(t, "bye", ce.Reason)
	require.NoError(t, c.Close())
}

func TestOversizedAndBadMessagesAreErrors(t *testing.T) {
	url := rawServer(t, func(c wsConn) {
		_ = ws.WriteFrame(c.c, ws.NewTextFrame([]byte(strings.Repeat("x", 200))))
		_, _, _ = wsutil.ReadClientData(c.c)
	})
	c := dial(t, url, visionclient.Options{MaxMessageBytes: 100})
	_, err := c.ReadAck()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "larger than 100 bytes")
	require.NoError(t, c.Close())

	url = rawServer(t, func(c wsConn) {
		_ = ws.WriteFrame(c.c, ws.NewTextFrame([]byte("not json")))
		_ = ws.WriteFrame(c.c, ws.NewBinaryFrame([]byte{1, 2}))
		_, _, _ = wsutil.ReadClientData(c.c)
	})
	c = dial(t, url, visionclient.Options{})
	_, err = c.ReadAck()
	assert.ErrorContains(t, err, "decode ack")
	_, err = c.ReadAck()
	assert.ErrorContains(t, err, "unexpected binary message")
	require.NoError(t, c.Close())
}

func TestNormalizeURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://h:8080":                     "ws://h:8080/vision/stream",
		"https://h.example":                 "wss://h.example/vision/stream",
		"https://h.example/":                "wss://h.example/vision/stream",
		"HTTPS://h.example/?a=b":            "wss://h.example/vision/stream?a=b",
		"ws://127.0.0.1:1/vision/stream":    "ws://127.0.0.1:1/vision/stream",
		"wss://h/custom/path":               "wss://h/custom/path",
		"ws://h/vision/stream?magic_word=x": "ws://h/vision/stream?magic_word=x",
	} {
		got, err := visionclient.NormalizeURL(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"ftp://h/", "localhost:8080", "h/vision", "", "://x"} {
		_, err := visionclient.NormalizeURL(bad)
		assert.Error(t, err, bad)
	}
	_, err := visionclient.NormalizeURL("ftp://h/")
	assert.ErrorContains(t, err, "use ws://, wss://, http:// or https://")
}

func TestMagicWordHelpers(t *testing.T) {
	u, err := visionclient.WithMagicWord("ws://h/vision/stream?a=1&magic_word=old", "new word")
	require.NoError(t, err)
	assert.Equal(t, "ws://h/vision/stream?a=1&magic_word=new+word", u)
	same, err := visionclient.WithMagicWord("ws://h/x", "")
	require.NoError(t, err)
	assert.Equal(t, "ws://h/x", same)
	assert.Equal(t, "ws://h/vision/stream?a=1&magic_word=REDACTED", visionclient.RedactURL(u))
	assert.Equal(t, "ws://h/vision/stream?magic_word=REDACTED", visionclient.RedactURL("ws://user:pw@h/vision/stream?magic_word=s"))
}
