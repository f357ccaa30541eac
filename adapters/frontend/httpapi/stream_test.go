package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/adapters/protocol/wsframe/wsframetest"
	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/domain/domaintest"
	"github.com/foresight-vision/foresight/internal/testlog"
	"github.com/foresight-vision/foresight/ports"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// streamServer runs the stream handler on a real loopback listener.
type streamServer struct {
	t       *testing.T
	handler *httpapi.StreamHandler
	srv     *httptest.Server
	url     string
}

func newStreamServer(t *testing.T, cfg httpapi.StreamHandlerConfig) *streamServer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := httpapi.NewStreamHandler(cfg)
	srv := httptest.NewServer(httpapi.NewRouter(httpapi.Handlers{Stream: h}))
	s := &streamServer{t: t, handler: h, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http") + "/vision/stream"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, h.Shutdown(ctx))
		srv.Close()
	})
	return s
}

// client is a real WebSocket client over a TCP connection.
type client struct {
	t    *testing.T
	conn net.Conn
	rw   io.ReadWriter
}

func (s *streamServer) dial(header http.Header) *client {
	s.t.Helper()
	d := ws.Dialer{Header: ws.HandshakeHeaderHTTP(header)}
	conn, br, _, err := d.Dial(context.Background(), s.url)
	require.NoError(s.t, err)
	s.t.Cleanup(func() { _ = conn.Close() })
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	return &client{t: s.t, conn: conn, rw: struct {
		io.Reader
		io.Writer
	}{r, conn}}
}

func (c *client) send(frame []byte) {
	c.t.Helper()
	require.NoError(c.t, wsutil.WriteClientBinary(c.conn, frame))
}

type ack struct {
	Frame          int64   `json:"frame"`
	Bytes          int     `json:"bytes"`
	Caption        *string `json:"caption"`
	InferenceError *string `json:"inference_error"`
	ChunkStartS    *float64
	raw            map[string]any
}

func (c *client) readAck() ack {
	c.t.Helper()
	require.NoError(c.t, c.conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	data, op, err := wsutil.ReadServerData(c.rw)
	require.NoError(c.t, err)
	require.Equal(c.t, ws.OpText, op, "acks are text messages")
	var a ack
	require.NoError(c.t, json.Unmarshal(data, &a))
	require.NoError(c.t, json.Unmarshal(data, &a.raw))
	return a
}

// readClose reads until the server's close frame and returns its code and reason.
func (c *client) readClose() (ws.StatusCode, string) {
	c.t.Helper()
	require.NoError(c.t, c.conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	for {
		_, _, err := wsutil.ReadServerData(c.rw)
		var closed wsutil.ClosedError
		if errors.As(err, &closed) {
			return closed.Code, closed.Reason
		}
		require.NoError(c.t, err, "expected a close frame, not a dropped connection")
	}
}

func TestFramesAreAckedInOrder(t *testing.T) {
	s := newStreamServer(t, httpapi.StreamHandlerConfig{})
	c := s.dial(nil)
	sizes := []int{1, 7, 0, 1 << 20}
	for i, n := range sizes {
		c.send(make([]byte, n))
		a := c.readAck()
		assert.Equal(t, int64(i+1), a.Frame)
		assert.Equal(t, n, a.Bytes)
		assert.Equal(t, map[string]any{"frame": float64(i + 1), "bytes": float64(n)}, a.raw, "no inference: plain acks")
	}
}

func TestFiveHundredFramesPipelined(t *testing.T) {
	s := newStreamServer(t, httpapi.StreamHandlerConfig{})
	c := s.dial(nil)
	go func() {
		for i := range 500 {
			if wsutil.WriteClientBinary(c.conn, []byte(fmt.Sprint(i))) != nil {
				return
			}
		}
	}()
	for i := range 500 {
		a := c.readAck()
		require.Equal(t, int64(i+1), a.Frame)
		require.Equal(t, len(fmt.Sprint(i)), a.Bytes)
	}
}

func TestConcurrentStreamsHaveTheirOwnCounters(t *testing.T) {
	s := newStreamServer(t, httpapi.StreamHandlerConfig{})
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for n := range 20 {
		c := s.dial(nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 + n {
				if err := wsutil.WriteClientBinary(c.conn, make([]byte, n)); err != nil {
					errs <- err
					return
				}
				data, _, err := wsutil.ReadServerData(c.rw)
				if err != nil {
					errs <- err
					return
				}
				var a ack
				if err := json.Unmarshal(data, &a); err != nil || a.Frame != int64(i+1) || a.Bytes != n {
					errs <- fmt.Errorf("stream %d frame %d: got %s", n, i+1, data)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestAckNotDelayedByInference(t *testing.T) {
	gate := domaintest.NewGate()
	backend := &domaintest.Backend{Infer: gate.Infer}
	s := newStreamServer(t, httpapi.StreamHandlerConfig{Backend: backend, Stream: domain.StreamConfig{}})
	c := s.dial(nil)
	// The first frames go while the session opens or the first call
	// hangs; every one of them is acked even though no call returns.
	for i := range 20 {
		c.send([]byte{byte(i)})
		assert.Nil(t, c.readAck().Caption)
	}
	require.Eventually(t, func() bool {
		ss := backend.Sessions()
		return len(ss) == 1 && len(ss[0].Chunks()) == 1
	}, 5*time.Second, time.Millisecond)
	gate.Release(ports.Result{Caption: "a person walking", ChunkStartS: 0.0, ChunkEndS: 0.5, LatencyMS: 250,
		Set: ports.ResultCaption | ports.ResultChunkStart | ports.ResultChunkEnd | ports.ResultLatency}, nil)

	// The caption arrives on exactly one later ack.
	captions := 0
	for i := range 50 {
		c.send([]byte{1})
		a := c.readAck()
		if a.Caption != nil {
			captions++
			assert.Equal(t, "a person walking", *a.Caption)
			assert.Equal(t, float64(250), a.raw["latency_ms"])
			assert.Contains(t, a.raw, "chunk_end_s")
			assert.NotContains(t, a.raw, "tokens_generated", "fields a backend does not set are left out")
		}
		if i == 10 {
			go gate.Release(ports.Result{}, nil) // let the next call finish with nothing
		}
	}
	assert.Equal(t, 1, captions)
}

func TestInferenceErrorThenStreamGoesOn(t *testing.T) {
	calls := 0
	var mu sync.Mutex
	backend := &domaintest.Backend{Infer: func(context.Context, ports.Chunk) (ports.Result, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			return ports.Result{}, errors.New("CUDA out of memory")
		}
		return ports.Result{Caption: "ok again", Set: ports.ResultCaption}, nil
	}}
	s := newStreamServer(t, httpapi.StreamHandlerConfig{Backend: backend, Stream: domain.StreamConfig{}})
	c := s.dial(nil)
	var events []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		c.send([]byte{1})
		a := c.readAck()
		switch {
		case a.InferenceError != nil:
			events = append(events, "error:"+*a.InferenceError)
		case a.Caption != nil:
			events = append(events, "caption")
		}
		if len(events) >= 2 {
			break
		}
		time.Sleep(time.Millisecond) // give the background call a moment
	}
	require.GreaterOrEqual(t, len(events), 2)
	assert.Equal(t, []string{"error:CUDA out of memory", "caption"}, events[:2])
}

// With the model down every chunk fails: the stream warns once, not once
// per chunk, and tells the recovery with the count.
func TestFailingChunksAreLoggedOnceThenTheRecovery(t *testing.T) {
	var calls atomic.Int64
	backend := &domaintest.Backend{Infer: func(context.Context, ports.Chunk) (ports.Result, error) {
		if calls.Add(1) <= 10 {
			return ports.Result{}, errors.New("model server unreachable")
		}
		return ports.Result{Caption: "back", Set: ports.ResultCaption}, nil
	}}
	logs := &testlog.Buffer{}
	s := newStreamServer(t, httpapi.StreamHandlerConfig{Backend: backend, Stream: domain.StreamConfig{},
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	c := s.dial(nil)
	failed := 0
	for frames := 0; ; frames++ {
		require.Less(t, frames, 50_000, "no caption after the failures")
		c.send([]byte{1})
		a := c.readAck()
		if a.InferenceError != nil {
			failed++
		}
		if a.Caption != nil {
			break
		}
		time.Sleep(time.Millisecond) // give the background call a moment
	}
	require.Greater(t, failed, 1, "several failures reached acks")
	assert.Equal(t, 1, strings.Count(logs.String(), "level=WARN"), logs.String())
	assert.Contains(t, logs.String(), `level=WARN msg="inference failed"`)
	assert.Contains(t, logs.String(), `msg="inference recovered"`)
	assert.Contains(t, logs.String(), fmt.Sprintf("failures=%d\n", failed))
}

func TestTextMessageGetsClose1003(t *testing.T) {
	s := newStreamServer(t, httpapi.StreamHandlerConfig{})
	c := s.dial(nil)
	c.send([]byte("x"))
	c.readAck()
	require.NoError(t, wsutil.WriteClientText(c.conn, []byte("hello")))
	code, reason := c.readClose()
	assert.Equal(t, ws.StatusUnsupportedData, code)
	assert.Contains(t, reason, "binary")
}

func TestOversizedFrameGetsClose1009(t *testing.T) {
	s := newStreamServer(t, httpapi.StreamHandlerConfig{MaxFrameBytes: 1024})
	c := s.dial(nil)
	c.send(make([]byte, 1024)) // at the limit: fine
	assert.Equal(t, 1024, c.readAck().Bytes)
	// Only the header of a huge frame is sent: the server must refuse it
	// without waiting for (or reading) the payload.
	hdr := ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Mask: ws.NewMask(), Length: 1 << 30}
	require.NoError(t, ws.WriteHeader(c.conn, hdr))
	code, reason := c.readClose()
	assert.Equal(t, ws.StatusMessageTooBig, code)
	assert.Contains(t, reason, "1024")
}

func TestFragmentedMessagesAreAssembledAndBounded(t *testing.T) {
	s := newStreamServer(t, httpapi.StreamHandlerConfig{MaxFrameBytes: 10})
	c := s.dial(nil)
	writeFragment := func(op ws.OpCode, fin bool, p []byte) {
		f := ws.MaskFrameInPlace(ws.NewFrame(op, fin, p))
		require.NoError(t, ws.WriteFrame(c.conn, f))
	}
	writeFragment(ws.OpBinary, false, []byte("abc"))
	require.NoError(t, wsutil.WriteClientMessage(c.conn, ws.OpPing, []byte("p"))) // control frames may interleave
	writeFragment(ws.OpContinuation, true, []byte("def"))
	a := c.readAck()
	assert.Equal(t, 6, a.Bytes)
	writeFragment(ws.OpBinary, false, []byte("123456"))
	writeFragment(ws.OpContinuation, true, []byte("7890X"))
	code, _ := c.readClose()
	assert.Equal(t, ws.StatusMessageTooBig, code)
}

func TestProtocolErrors(t *testing.T) {
	s := newStreamServer(t, httpapi.StreamHandlerConfig{})
	t.Run("unmasked frame", func(t *testing.T) {
		c := s.dial(nil)
		require.NoError(t, ws.WriteFrame(c.conn, ws.NewBinaryFrame([]byte("x"))))
		code, _ := c.readClose()
		assert.Equal(t, ws.StatusProtocolError, code)
	})
	t.Run("continuation without a message", func(t *testing.T) {
		c := s.dial(nil)
		require.NoError(t, ws.WriteFrame(c.conn, ws.MaskFrameInPlace(ws.NewFrame(ws.OpContinuation, true, []byte("x")))))
		code, _ := c.readClose()
		assert.Equal(t, ws.StatusProtocolError, code)
	})
}

func TestPingAndCloseHandshake(t *testing.T) {
	s := newStreamServer(t, httpapi.StreamHandlerConfig{})
	c := s.dial(nil)
	require.NoError(t, wsutil.WriteClientMessage(c.conn, ws.OpPing, []byte("hi")))
	// Read raw frames: the pong must echo the payload.
	require.NoError(t, c.conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	f, err := wsframetest.ReadFrame(c.rw)
	require.NoError(t, err)
	assert.Equal(t, ws.OpPong, f.Header.OpCode)
	assert.Equal(t, []byte("hi"), f.Payload)

	require.NoError(t, wsutil.WriteClientMessage(c.conn, ws.OpClose, ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")))
	f, err = wsframetest.ReadFrame(c.rw)
	require.NoError(t, err)
	assert.Equal(t, ws.OpClose, f.Header.OpCode)
	code, _ := ws.ParseCloseFrameData(f.Payload)
	assert.Equal(t, ws.StatusNormalClosure, code)
	_, err = wsframetest.ReadFrame(c.rw)
	assert.ErrorIs(t, err, io.EOF, "the server closes TCP after the handshake")
}

func TestIdleTimeout(t *testing.T) {
	backend := &domaintest.Backend{}
	s := newStreamServer(t, httpapi.StreamHandlerConfig{Backend: backend, IdleTimeout: 200 * time.Millisecond})
	c := s.dial(nil)
	c.send([]byte{1})
	c.readAck()
	code, reason := c.readClose()
	assert.Equal(t, ws.StatusGoingAway, code)
	assert.Equal(t, "idle timeout", reason)
	require.Eventually(t, func() bool {
		ss := backend.Sessions()
		return len(ss) == 1 && ss[0].Closes() == 1
	}, 5*time.Second, 5*time.Millisecond)
}

func TestAbruptDropClosesSessionOnce(t *testing.T) {
	gate := domaintest.NewGate()
	backend := &domaintest.Backend{Infer: gate.Infer}
	s := newStreamServer(t, httpapi.StreamHandlerConfig{Backend: backend, Stream: domain.StreamConfig{}})
	c := s.dial(nil)
	for range 5 {
		c.send([]byte{1})
		c.readAck()
	}
	require.NoError(t, c.conn.Close()) // no close frame
	require.Eventually(t, func() bool { return s.handler.ActiveStreams() == 0 }, 5*time.Second, 5*time.Millisecond)
	ss := backend.Sessions()
	require.Len(t, ss, 1)
	assert.Equal(t, 1, ss[0].Closes())
}

func TestStreamLimit(t *testing.T) {
	s := newStreamServer(t, httpapi.StreamHandlerConfig{MaxStreams: 2})
	s.dial(nil)
	s.dial(nil)
	_, _, _, err := ws.Dial(context.Background(), s.url)
	var status ws.StatusError
	require.ErrorAs(t, err, &status)
	assert.Equal(t, http.StatusServiceUnavailable, int(status))
}

func TestShutdownClosesOpenStreams(t *testing.T) {
	gate := domaintest.NewGate()
	backend := &domaintest.Backend{Infer: gate.Infer}
	h := httpapi.NewStreamHandler(httpapi.StreamHandlerConfig{Backend: backend, Stream: domain.StreamConfig{}})
	srv := httptest.NewServer(h)
	defer srv.Close()
	s := &streamServer{t: t, handler: h, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
	clients := []*client{s.dial(nil), s.dial(nil), s.dial(nil)}
	for _, c := range clients {
		c.send([]byte{1}) // each has a hanging call in flight
		c.readAck()
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- h.Shutdown(ctx)
	}()
	for _, c := range clients {
		code, reason := c.readClose()
		assert.Equal(t, ws.StatusGoingAway, code)
		assert.Equal(t, "server shutting down", reason)
	}
	require.NoError(t, <-done)
	require.Len(t, backend.Sessions(), 3)
	for _, sess := range backend.Sessions() {
		assert.Equal(t, 1, sess.Closes())
	}
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
}

func TestSessionOptionsReachTheBackend(t *testing.T) {
	for _, accept := range []bool{true, false} {
		t.Run(fmt.Sprint(accept), func(t *testing.T) {
			backend := &domaintest.Backend{}
			cfg := httpapi.StreamHandlerConfig{Backend: backend}
			if accept {
				cfg.SessionOptions = func(r *http.Request) map[string]string {
					return map[string]string{"app-name": strings.TrimSpace(r.Header.Get("X-Test-App")), "token-id": "id1"}
				}
			}
			s := newStreamServer(t, cfg)
			c := s.dial(http.Header{"x-test-app": {" my-app "}})
			c.send([]byte{1})
			c.readAck()
			require.Eventually(t, func() bool { return len(backend.Sessions()) == 1 }, 5*time.Second, time.Millisecond)
			req := backend.Sessions()[0].Request()
			assert.NotEmpty(t, req.StreamID)
			if accept {
				assert.Equal(t, map[string]string{"app-name": "my-app", "token-id": "id1"}, req.Options)
			} else {
				assert.Empty(t, req.Options)
			}
		})
	}
}

func TestPlainHTTPToStreamIsRefused(t *testing.T) {
	s := newStreamServer(t, httpapi.StreamHandlerConfig{})
	resp, err := http.Get(s.srv.URL + "/vision/stream")
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	_, _ = bufio.NewReader(resp.Body).ReadString(0)
}

func TestCloseCodes(t *testing.T) {
	s := newStreamServer(t, httpapi.StreamHandlerConfig{})
	tests := []struct {
		name    string
		payload []byte
		want    ws.StatusCode
	}{
		{"normal is echoed", ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye"), ws.StatusNormalClosure},
		{"application code is echoed", ws.NewCloseFrameBody(4000, ""), 4000},
		{"registered try-again-later is echoed", ws.NewCloseFrameBody(1013, ""), 1013},
		{"no status gets an empty close", nil, 0},
		{"reserved code is a protocol error", ws.NewCloseFrameBody(1005, ""), ws.StatusProtocolError},
		{"one-byte payload is a protocol error", []byte{3}, ws.StatusProtocolError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := s.dial(nil)
			require.NoError(t, wsutil.WriteClientMessage(c.conn, ws.OpClose, tt.payload))
			require.NoError(t, c.conn.SetReadDeadline(time.Now().Add(5*time.Second)))
			f, err := wsframetest.ReadFrame(c.rw)
			require.NoError(t, err)
			require.Equal(t, ws.OpClose, f.Header.OpCode)
			code, _ := ws.ParseCloseFrameData(f.Payload)
			assert.Equal(t, tt.want, code)
		})
	}
}

func TestMalformedHeaderGetsClose1002(t *testing.T) {
	s := newStreamServer(t, httpapi.StreamHandlerConfig{})
	c := s.dial(nil)
	// Length 127 with the most significant bit set: not a valid length.
	_, err := c.conn.Write([]byte{0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4})
	require.NoError(t, err)
	code, reason := c.readClose()
	assert.Equal(t, ws.StatusProtocolError, code)
	assert.Equal(t, "malformed frame header", reason)
}

func TestHeaderAloneReservesNoMemory(t *testing.T) {
	budget := domain.NewMemoryBudget(16 << 20)
	s := newStreamServer(t, httpapi.StreamHandlerConfig{Stream: domain.StreamConfig{Budget: budget}})
	c := s.dial(nil)
	// Claims 8 MiB (within the 16 MiB limit) but sends 10 bytes: only what
	// arrives is allocated and taken from the budget.
	hdr := ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Mask: ws.NewMask(), Length: 8 << 20}
	require.NoError(t, ws.WriteHeader(c.conn, hdr))
	_, err := c.conn.Write(make([]byte, 10))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return budget.Used() > 0 }, 5*time.Second, time.Millisecond)
	assert.LessOrEqual(t, budget.Used(), int64(64<<10), "one read step at most")
	require.NoError(t, c.conn.Close())
	require.Eventually(t, func() bool { return budget.Used() == 0 }, 5*time.Second, time.Millisecond)
}

func TestMessageLargerThanTheBudgetGetsClose1009(t *testing.T) {
	budget := domain.NewMemoryBudget(100 << 10)
	s := newStreamServer(t, httpapi.StreamHandlerConfig{Stream: domain.StreamConfig{Budget: budget}})
	c := s.dial(nil)
	c.send(make([]byte, 50<<10)) // fits
	assert.Equal(t, 50<<10, c.readAck().Bytes)
	c.send(make([]byte, 200<<10)) // can never fit
	code, reason := c.readClose()
	assert.Equal(t, ws.StatusMessageTooBig, code)
	assert.Equal(t, "message larger than 102400 bytes", reason)
	require.Eventually(t, func() bool { return budget.Used() == 0 }, 5*time.Second, time.Millisecond,
		"no inference here, so nothing stays taken")
}

func TestSpentBudgetDropsTheNewFrameButAcksIt(t *testing.T) {
	budget := domain.NewMemoryBudget(100 << 10)
	s := newStreamServer(t, httpapi.StreamHandlerConfig{Stream: domain.StreamConfig{Budget: budget}})
	hog := s.dial(nil)
	// Another stream's message, being read, holds most of the budget.
	hdr := ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Mask: ws.NewMask(), Length: 60 << 10}
	require.NoError(t, ws.WriteHeader(hog.conn, hdr))
	_, err := hog.conn.Write(make([]byte, 10))
	require.NoError(t, err)
	require.Eventually(t, func() bool { return budget.Used() == 60<<10 }, 5*time.Second, time.Millisecond)
	c := s.dial(nil)
	for i := range 3 {
		c.send(make([]byte, 60<<10))
		a := c.readAck()
		assert.Equal(t, int64(i+1), a.Frame)
		assert.Equal(t, 60<<10, a.Bytes)
	}
	c.send([]byte{1}) // still room for a small one
	assert.Equal(t, int64(4), c.readAck().Frame)
}

func TestStreamGivesUpItsBufferBeforeRefusingAMessage(t *testing.T) {
	budget := domain.NewMemoryBudget(128 << 10)
	backend := &domaintest.Backend{}
	s := newStreamServer(t, httpapi.StreamHandlerConfig{Backend: backend, Stream: domain.StreamConfig{Budget: budget, ChunkInterval: time.Hour}})
	c := s.dial(nil)
	for range 3 {
		c.send(make([]byte, 40<<10)) // buffered for a chunk an hour away
		c.readAck()
	}
	require.Eventually(t, func() bool { return budget.Used() == 120<<10 }, 5*time.Second, time.Millisecond)
	c.send(make([]byte, 64<<10)) // needs the room the buffer holds
	assert.Equal(t, 64<<10, c.readAck().Bytes, "acked, not refused")
	assert.Equal(t, int64(64<<10), budget.Used(), "only the new frame is buffered now")
}

// Issue 10 defect 3, scaled down: a lone client whose chunk in flight holds
// the whole budget, with nothing buffered to give up, gets its next frames
// acked as dropped, not close 1013, and later its caption.
func TestLoneClientIsNotRefusedByItsOwnChunkInFlight(t *testing.T) {
	const frameBytes = 16 << 10
	budget := domain.NewMemoryBudget(4 * frameBytes)
	gate := domaintest.NewGate()
	backend := &domaintest.Backend{Infer: gate.Infer}
	clock := domaintest.NewClock()
	s := newStreamServer(t, httpapi.StreamHandlerConfig{Backend: backend, Stream: domain.StreamConfig{
		Budget: budget, ChunkInterval: 500 * time.Millisecond, Clock: clock,
	}})
	c := s.dial(nil)
	c.send(make([]byte, frameBytes))
	c.readAck()
	require.Eventually(t, func() bool { return len(backend.Sessions()) == 1 }, 5*time.Second, time.Millisecond)
	for range 2 {
		c.send(make([]byte, frameBytes))
		c.readAck()
	}
	clock.Advance(500 * time.Millisecond)
	c.send(make([]byte, frameBytes)) // fills the budget and cuts a chunk of all four frames
	assert.Equal(t, frameBytes, c.readAck().Bytes)
	require.Eventually(t, func() bool { return len(backend.Sessions()[0].Chunks()) == 1 }, 5*time.Second, time.Millisecond)
	require.Equal(t, 4, len(backend.Sessions()[0].Chunks()[0].Frames), "the chunk holds the whole budget")

	// The chunk in flight holds every byte: these frames cannot be kept.
	for i := range 3 {
		c.send(make([]byte, frameBytes))
		a := c.readAck()
		assert.Equal(t, int64(5+i), a.Frame, "acked, not refused")
		assert.Equal(t, frameBytes, a.Bytes)
		assert.Nil(t, a.Caption)
	}
	gate.Release(ports.Result{Caption: "a desk", Set: ports.ResultCaption}, nil)
	// The result rides on a later ack (as soon as the stream sees the call
	// back); every frame meanwhile is acked, none refused.
	captions := 0
	for i := 0; captions == 0 && i < 1000; i++ {
		c.send(make([]byte, frameBytes))
		if a := c.readAck(); a.Caption != nil {
			captions++
			assert.Equal(t, "a desk", *a.Caption)
		}
	}
	assert.Equal(t, 1, captions)
}
