package httpapi

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/foresight-vision/foresight/adapters/protocol/wire"
	"github.com/foresight-vision/foresight/adapters/protocol/wsframe"
	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/ports"
)

// Defaults of StreamHandlerConfig.
const (
	DefaultMaxFrameBytes = 16 << 20
	DefaultIdleTimeout   = 60 * time.Second
	DefaultMaxStreams    = 10000
	DefaultWriteTimeout  = 10 * time.Second
	// sessionCloseBudget bounds ending a stream's inference (cancelling a
	// call in flight, closing the session); shutdown may cut it shorter.
	sessionCloseBudget = 15 * time.Second
	// shutdownWriteTimeout bounds a write (the ack in flight, the close
	// frame) once a shutdown began: a client that does not read must not
	// hold the stop for the whole WriteTimeout.
	shutdownWriteTimeout = time.Second
	// progressEvery is how often (in frames) a stream logs its progress,
	// as the original did.
	progressEvery = 30
)

// StreamHandlerConfig configures the /vision/stream handler. The zero value works:
// no inference, default limits.
type StreamHandlerConfig struct {
	// Backend opens one inference session per stream; nil means no model
	// (the app hands in its own, noop included).
	Backend ports.InferenceBackend
	// Stream tunes each connection's domain stream (chunking, buffer,
	// prompt, inference timeout, where its captions go). Its Budget also bounds the messages being read:
	// when it is spent and the stream has no frames of its own to give up,
	// the new message is read past, discarded and acked as dropped. A
	// message larger than the whole budget gets close 1009.
	Stream domain.StreamConfig
	// MaxFrameBytes is the largest message accepted
	// (FORESIGHT_MAX_FRAME_BYTES); larger ones get close 1009 unread.
	MaxFrameBytes int64
	// IdleTimeout closes a stream that sends nothing for this long
	// (FORESIGHT_WS_IDLE_TIMEOUT).
	IdleTimeout time.Duration
	// WriteTimeout bounds writing one ack to a client that does not read.
	WriteTimeout time.Duration
	// MaxStreams caps concurrent streams (FORESIGHT_MAX_STREAMS); upgrades
	// past it get 503.
	MaxStreams int
	// SessionOptions turns the upgrade request into the stream's per-stream
	// backend options, already vetted by the trust policy (adapters/frontend/trust):
	// the app builds it from the backend's own header list. nil means none.
	SessionOptions func(*http.Request) map[string]string
	// Observer is told about streams and frames; nil means none.
	Observer Observer
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
}

func (c StreamHandlerConfig) withDefaults() StreamHandlerConfig {
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.MaxStreams <= 0 {
		c.MaxStreams = DefaultMaxStreams
	}
	if c.Observer == nil {
		c.Observer = NopObserver{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Stream.Observer == nil {
		c.Stream.Observer = c.Observer
	}
	return c
}

// StreamHandler serves GET /vision/stream: binary frames in, JSON acks out.
type StreamHandler struct {
	cfg StreamHandlerConfig
	// stopCtx ends when a shutdown runs out of time, cutting short the
	// streams still closing their inference sessions.
	stopCtx  context.Context
	stop     context.CancelFunc
	active   atomic.Int64
	closing  atomic.Bool
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	wg       sync.WaitGroup
	upgrader ws.HTTPUpgrader
}

// NewStreamHandler returns a handler for /vision/stream.
func NewStreamHandler(cfg StreamHandlerConfig) *StreamHandler {
	cfg = cfg.withDefaults()
	stopCtx, stop := context.WithCancel(context.Background())
	return &StreamHandler{
		cfg:      cfg,
		stopCtx:  stopCtx,
		stop:     stop,
		conns:    make(map[net.Conn]struct{}),
		upgrader: ws.HTTPUpgrader{Timeout: cfg.WriteTimeout},
	}
}

// ActiveStreams reports the streams open now.
func (h *StreamHandler) ActiveStreams() int { return int(h.active.Load()) }

// ServeHTTP upgrades the request to a WebSocket and runs the stream until
// it ends.
func (h *StreamHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.closing.Load() {
		h.cfg.Observer.StreamRejected("shutdown")
		writeDetail(w, http.StatusServiceUnavailable, "server is shutting down")
		return
	}
	if !r.ProtoAtLeast(1, 1) {
		// gobwas would answer a bare 505; RFC 6455 4.1 asks for HTTP/1.1.
		h.cfg.Observer.StreamRejected("handshake")
		http.Error(w, "handshake error: WebSocket needs HTTP/1.1 or later", http.StatusBadRequest)
		return
	}
	device, status, detail := streamDevice(r) // the token's scope, before the upgrade
	if status != 0 {
		reason := "bad_device"
		if status == http.StatusForbidden {
			reason = "forbidden_device"
		}
		h.cfg.Observer.StreamRejected(reason)
		writeDetail(w, status, detail)
		return
	}
	if h.active.Add(1) > int64(h.cfg.MaxStreams) {
		h.active.Add(-1)
		h.cfg.Observer.StreamRejected("limit")
		w.Header().Set("Retry-After", "5")
		writeDetail(w, http.StatusServiceUnavailable, "too many concurrent streams")
		return
	}
	defer h.active.Add(-1)

	req := ports.SessionRequest{StreamID: rand.Text(), Device: device}
	if h.cfg.SessionOptions != nil {
		req.Options = h.cfg.SessionOptions(r)
	}
	conn, rw, _, err := h.upgrader.Upgrade(r, w)
	if err != nil {
		// The upgrader has already answered with a status and reason.
		h.cfg.Observer.StreamRejected("handshake")
		h.cfg.Logger.Debug("websocket handshake failed", "remote", r.RemoteAddr, "err", err)
		if conn != nil {
			_ = conn.Close()
		}
		return
	}
	frames := wsframe.NewServer(conn, rw.Reader, rw.Writer, h.frameConfig())
	if !h.track(conn) {
		// Shutdown began between the check above and the upgrade.
		_ = frames.WriteClose(wire.CloseGoingAway, wsframe.ReasonShuttingDown)
		_ = conn.Close()
		return
	}
	defer h.untrack(conn)

	logger := h.cfg.Logger.With("stream_id", req.StreamID, "device", device, "remote", r.RemoteAddr)
	s := &wsStream{
		h:      h,
		frames: frames,
		logger: logger,
		stream: domain.StartStream(h.cfg.Backend, req, h.cfg.Stream),
	}
	frames.SetShed(s.stream.DropBuffered)
	h.cfg.Observer.StreamOpened()
	logger.Info("stream opened")
	code := s.run()
	_ = conn.Close()
	h.cfg.Observer.StreamClosed(int(code))

	ctx, cancel := context.WithTimeout(h.stopCtx, sessionCloseBudget)
	defer cancel()
	sum := s.stream.Close(ctx)
	attrs := []any{"close_code", int(code), "frames", sum.Frames, "bytes", sum.Bytes, "chunks", sum.Chunks,
		"inference_failures", sum.InferenceFailures, "inference_timeouts", sum.InferenceTimeouts,
		"dropped_frames", sum.DroppedFrames, "duration", sum.Duration.Round(time.Millisecond),
		"fps", fmt.Sprintf("%.2f", sum.FPS)}
	if sum.SkippedChunks > 0 || sum.RejectedFrames > 0 {
		// Only with the scene gate on, so the default line stays as it was.
		attrs = append(attrs, "skipped_chunks", sum.SkippedChunks, "rejected_frames", sum.RejectedFrames)
		for _, reason := range []domain.SkipReason{domain.SkipUnchanged, domain.SkipDark, domain.SkipBlurred, domain.SkipUndecodable} {
			if n := sum.SkippedByReason[reason]; n > 0 {
				attrs = append(attrs, "skipped_"+string(reason), n)
			}
		}
	}
	if sum.CloseErr != nil {
		attrs = append(attrs, "close_err", sum.CloseErr)
	}
	logger.Info("stream closed", attrs...)
}

// frameConfig is the framing every stream of this handler gets.
func (h *StreamHandler) frameConfig() wsframe.ServerConfig {
	maxMessage := h.cfg.MaxFrameBytes
	if b := h.cfg.Stream.Budget; b != nil {
		// A message the budget could never hold is refused outright.
		maxMessage = min(maxMessage, b.Limit())
	}
	return wsframe.ServerConfig{
		MaxMessageBytes:  maxMessage,
		DropWhenShort:    true,
		IdleTimeout:      h.cfg.IdleTimeout,
		WriteTimeout:     h.cfg.WriteTimeout,
		Budget:           h.cfg.Stream.Budget,
		Stopping:         h.closing.Load,
		StopWriteTimeout: h.stopWriteTimeout(),
	}
}

// stopWriteTimeout bounds each write once a shutdown began.
func (h *StreamHandler) stopWriteTimeout() time.Duration {
	return min(h.cfg.WriteTimeout, shutdownWriteTimeout)
}

func (h *StreamHandler) track(c net.Conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing.Load() {
		return false
	}
	h.conns[c] = struct{}{}
	h.wg.Add(1)
	return true
}

func (h *StreamHandler) untrack(c net.Conn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
	h.wg.Done()
}

// Shutdown refuses new streams, closes open ones with 1001 and waits until
// each has closed its inference session, or until ctx is done.
func (h *StreamHandler) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closing.Store(true)
	now := time.Now()
	for c := range h.conns {
		// Wakes the stream's reader, which sees closing and says goodbye;
		// a stream blocked writing to a client that does not read gives
		// up soon too, so every stream can close its session in time.
		_ = c.SetReadDeadline(now)
		_ = c.SetWriteDeadline(now.Add(h.stopWriteTimeout()))
	}
	h.mu.Unlock()
	done := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		h.stop() // streams stop waiting on their inference sessions
		h.mu.Lock()
		for c := range h.conns {
			_ = c.Close()
		}
		h.mu.Unlock()
		<-done // closed sockets and a done stopCtx make every stream return at once
		return fmt.Errorf("stream shutdown: %w", ctx.Err())
	}
}

// wsStream is one connection's read-and-ack loop. Everything it writes is
// written from its own goroutine, so writes need no lock.
type wsStream struct {
	h      *StreamHandler
	frames *wsframe.Server
	logger *slog.Logger
	stream *domain.Stream
	ackBuf []byte
	// failures counts the inference failures since the last success, and
	// lastFailure is the latest one's text: with the model down every
	// chunk fails, and one line per change of state is enough.
	failures    int
	lastFailure string
}

// run reads frames until the stream ends and returns the close code seen
// (1006 when the connection dropped without a close frame).
func (s *wsStream) run() wire.CloseCode {
	err := s.loop()
	var ce *wsframe.CloseError
	switch {
	case errors.As(err, &ce):
		s.logger.Info("closing stream", "code", int(ce.Code), "reason", ce.Reason)
	case errors.Is(err, wsframe.ErrPeerClosed), errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	default:
		s.logger.Info("stream dropped", "err", err)
	}
	return s.frames.End(err)
}

func (s *wsStream) loop() error {
	for {
		frame, err := s.frames.ReadMessage()
		var dropped *wsframe.DroppedError
		switch {
		case errors.As(err, &dropped):
			// Frame memory is spent and this stream has nothing buffered to
			// give up: the frame is lost, but still acked and counted.
			s.h.cfg.Observer.FrameReceived(int(dropped.Bytes))
			err = s.ack(s.stream.HandleDroppedFrame(int(dropped.Bytes)))
		case err == nil:
			err = s.handleFrame(frame)
		}
		if err != nil {
			return err
		}
	}
}

// handleFrame feeds one complete binary message to the domain and acks it.
func (s *wsStream) handleFrame(frame []byte) error {
	s.h.cfg.Observer.FrameReceived(len(frame))
	ack := s.stream.HandleFrame(frame)
	if !s.stream.RetainsFrames() {
		s.frames.Recycle(frame) // nothing keeps it: read the next frame into it
	}
	return s.ack(ack)
}

// ack writes one frame's ack.
func (s *wsStream) ack(ack domain.Ack) error {
	// Before the write, so a client that sees the ack finds the line.
	s.logInference(ack)
	s.ackBuf = AppendAck(s.ackBuf[:0], ack)
	if err := s.frames.WriteText(s.ackBuf); err != nil {
		return err
	}
	s.h.cfg.Observer.AckSent()
	if ack.Frame%progressEvery == 0 {
		s.logger.Debug("stream progress", "frames", ack.Frame)
	}
	return nil
}

// logInference warns of a failure only when the state changes (the first
// failure after a success, or a new error text) and tells the recovery with
// the count, instead of one line per failed chunk.
func (s *wsStream) logInference(ack domain.Ack) {
	switch {
	case ack.InferenceError != "":
		s.failures++
		if s.failures == 1 || ack.InferenceError != s.lastFailure {
			s.logger.Warn("inference failed", "frame", ack.Frame, "failures", s.failures, "err", ack.InferenceError)
		}
		s.lastFailure = ack.InferenceError
	case !ack.Result.Empty() && s.failures > 0:
		s.logger.Info("inference recovered", "frame", ack.Frame, "failures", s.failures)
		s.failures, s.lastFailure = 0, ""
	}
}

// errEmptyDevice: a device parameter or header given but empty. Taken as the
// default device it would file a misconfigured client's captions under
// someone else's; /captions?device= refuses it too.
var errEmptyDevice = errors.New("device is empty: give a device id, or leave the parameter and header out for the default device")
