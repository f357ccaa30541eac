package httpapi

import (
	"bufio"
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

	"github.com/foresight-vision/foresight/adapters/noop"
	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/ports"
)

// Defaults of StreamConfig.
const (
	DefaultMaxFrameBytes = 16 << 20
	DefaultIdleTimeout   = 60 * time.Second
	DefaultMaxStreams    = 10000
	DefaultWriteTimeout  = 10 * time.Second
	// closeWait bounds how long a server-initiated close waits for the
	// client's close frame before dropping the connection.
	closeWait = 2 * time.Second
	// readStep is how much of a message is allocated at a time.
	readStep = 64 << 10
	// statusTryAgainLater is RFC 6455's 1013, not named by gobwas/ws.
	statusTryAgainLater ws.StatusCode = 1013
	// sessionCloseBudget bounds ending a stream's inference (cancelling a
	// call in flight, closing the session); shutdown may cut it shorter.
	sessionCloseBudget = 15 * time.Second
	// progressEvery is how often (in frames) a stream logs its progress,
	// as the original did.
	progressEvery = 30
)

// HeaderPokeAPIKey carries a client's (or a gateway's) Poke API key. The
// inference backend's own headers belong to its adapter.
const HeaderPokeAPIKey = "X-Poke-Api-Key"

// StreamConfig configures the /vision/stream handler. The zero value works:
// no inference, default limits.
type StreamConfig struct {
	// Backend opens one inference session per stream; nil means noop.
	Backend ports.InferenceBackend
	// Session tunes each stream's domain session (chunking, buffer, prompt,
	// inference timeout). Its Budget also bounds the messages being read:
	// when it is spent, a stream is closed with 1013.
	Session domain.Config
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
	// backend options, already vetted by the trust policy (adapters/trust):
	// the app builds it from the backend's own header list. nil means none.
	SessionOptions func(*http.Request) map[string]string
	// Observer is told about streams and frames; nil means none.
	Observer Observer
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
}

func (c StreamConfig) withDefaults() StreamConfig {
	if c.Backend == nil {
		c.Backend = noop.Backend{}
	}
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
	if c.Session.Observer == nil {
		c.Session.Observer = c.Observer
	}
	return c
}

// StreamHandler serves GET /vision/stream: binary frames in, JSON acks out.
type StreamHandler struct {
	cfg StreamConfig
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
func NewStreamHandler(cfg StreamConfig) *StreamHandler {
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
	if h.active.Add(1) > int64(h.cfg.MaxStreams) {
		h.active.Add(-1)
		h.cfg.Observer.StreamRejected("limit")
		w.Header().Set("Retry-After", "5")
		writeDetail(w, http.StatusServiceUnavailable, "too many concurrent streams")
		return
	}
	defer h.active.Add(-1)

	req := ports.SessionRequest{StreamID: rand.Text()}
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
	if !h.track(conn) {
		// Shutdown began between the check above and the upgrade.
		_ = writeClose(conn, rw.Writer, ws.StatusGoingAway, "server shutting down", h.cfg.WriteTimeout)
		_ = conn.Close()
		return
	}
	defer h.untrack(conn)

	logger := h.cfg.Logger.With("stream_id", req.StreamID, "remote", r.RemoteAddr)
	s := &wsStream{
		h:      h,
		conn:   conn,
		br:     rw.Reader,
		bw:     rw.Writer,
		logger: logger,
		stream: domain.StartStream(h.cfg.Backend, req, h.cfg.Session),
	}
	h.cfg.Observer.StreamOpened()
	logger.Info("stream opened")
	code := s.run()
	s.releaseHeld() // a message cut short
	_ = conn.Close()
	h.cfg.Observer.StreamClosed(int(code))

	ctx, cancel := context.WithTimeout(h.stopCtx, sessionCloseBudget)
	defer cancel()
	sum := s.stream.Close(ctx)
	attrs := []any{"close_code", int(code), "frames", sum.Frames, "bytes", sum.Bytes, "chunks", sum.Chunks,
		"inference_failures", sum.InferenceFailures, "inference_timeouts", sum.InferenceTimeouts,
		"dropped_frames", sum.DroppedFrames, "duration", sum.Duration.Round(time.Millisecond),
		"fps", fmt.Sprintf("%.2f", sum.FPS)}
	if sum.CloseErr != nil {
		attrs = append(attrs, "close_err", sum.CloseErr)
	}
	logger.Info("stream closed", attrs...)
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
	for c := range h.conns {
		// Wakes the stream's reader, which sees closing and says goodbye.
		_ = c.SetReadDeadline(time.Now())
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
	conn   net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	logger *slog.Logger
	stream *domain.Stream

	hdrBuf   [ws.MaxHeaderSize]byte // for reading frame headers
	outBuf   [ws.MaxHeaderSize]byte // for writing them; a field so it is not allocated per ack
	ackBuf   []byte
	message  []byte // a fragmented message being assembled
	inMsg    bool
	peerCode ws.StatusCode // the code of the client's close frame
	held     int64         // budget bytes taken by the message being read
}

// closeError ends the loop with a close frame to send.
type closeError struct {
	code   ws.StatusCode
	reason string
	// unread is the payload of the refused frame still on the wire, skipped
	// before waiting for the client's close; -1 means the stream is out of
	// step, so bytes are discarded raw.
	unread int64
}

// refuse builds the closeError for a frame whose payload is still unread.
func refuse(code ws.StatusCode, reason string, hdr ws.Header) *closeError {
	return &closeError{code: code, reason: reason, unread: hdr.Length}
}

func (e *closeError) Error() string { return fmt.Sprintf("close %d: %s", e.code, e.reason) }

// run reads frames until the stream ends and returns the close code seen
// (1006 when the connection dropped without a close frame).
func (s *wsStream) run() ws.StatusCode {
	err := s.loop()
	var ce *closeError
	switch {
	case errors.As(err, &ce):
		s.logger.Info("closing stream", "code", int(ce.code), "reason", ce.reason)
		if werr := writeClose(s.conn, s.bw, ce.code, ce.reason, s.h.cfg.WriteTimeout); werr != nil {
			return ws.StatusAbnormalClosure
		}
		s.drainUntilClose(ce.unread)
		return ce.code
	case errors.Is(err, errPeerClosed):
		return s.peerCode
	default:
		if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
			s.logger.Info("stream dropped", "err", err)
		}
		return ws.StatusAbnormalClosure
	}
}

var errPeerClosed = errors.New("peer sent close")

func (s *wsStream) loop() error {
	cfg := s.h.cfg
	for {
		if err := s.conn.SetReadDeadline(time.Now().Add(cfg.IdleTimeout)); err != nil {
			return err
		}
		if s.h.closing.Load() {
			return &closeError{code: ws.StatusGoingAway, reason: "server shutting down"}
		}
		hdr, err := ws.ReadHeaderBuffer(s.br, s.hdrBuf[:ws.MaxHeaderSize-2])
		if err != nil {
			return s.readFailure(err)
		}
		if code, reason := checkHeader(hdr); code != 0 {
			return refuse(code, reason, hdr)
		}
		if hdr.OpCode.IsControl() {
			if err := s.control(hdr); err != nil {
				return err
			}
			continue
		}
		switch {
		case hdr.OpCode == ws.OpText:
			return refuse(ws.StatusUnsupportedData, "text messages are not supported: send each frame as a binary message", hdr)
		case hdr.OpCode == ws.OpContinuation && !s.inMsg:
			return refuse(ws.StatusProtocolError, "continuation frame without a message", hdr)
		case hdr.OpCode == ws.OpBinary && s.inMsg:
			return refuse(ws.StatusProtocolError, "new message before the previous one ended", hdr)
		}
		if int64(len(s.message))+hdr.Length > cfg.MaxFrameBytes {
			// Never buffered: the rest is only discarded, briefly, while the
			// client gets the close frame.
			return refuse(ws.StatusMessageTooBig, fmt.Sprintf("message larger than %d bytes", cfg.MaxFrameBytes), hdr)
		}
		payload, err := s.readPayload(hdr)
		if err != nil {
			s.releaseHeld()
			return err
		}
		if !hdr.Fin {
			// Fragments are rare from real clients; assembling them costs a copy.
			s.message = append(s.message, payload...)
			s.inMsg = true
			continue
		}
		if s.inMsg {
			payload = append(s.message, payload...)
			s.message, s.inMsg = nil, false
		}
		s.releaseHeld()
		if err := s.handleFrame(payload); err != nil {
			return err
		}
	}
}

// readFailure turns a read error into the loop's result: a deadline is
// either shutdown or the idle timeout.
func (s *wsStream) readFailure(err error) error {
	if errors.Is(err, ws.ErrHeaderLengthMSB) || errors.Is(err, ws.ErrHeaderLengthUnexpected) {
		return &closeError{code: ws.StatusProtocolError, reason: "malformed frame header", unread: -1}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		if s.h.closing.Load() {
			return &closeError{code: ws.StatusGoingAway, reason: "server shutting down"}
		}
		return &closeError{code: ws.StatusGoingAway, reason: "idle timeout"}
	}
	return err
}

// checkHeader returns the close code and reason for a frame header the
// server refuses, or 0.
func checkHeader(hdr ws.Header) (ws.StatusCode, string) {
	switch {
	case !hdr.Masked:
		return ws.StatusProtocolError, "client frames must be masked"
	case hdr.Rsv != 0:
		return ws.StatusProtocolError, "reserved bits set without an extension"
	case hdr.OpCode.IsReserved():
		return ws.StatusProtocolError, "reserved opcode"
	case hdr.OpCode.IsControl() && (hdr.Length > ws.MaxControlFramePayloadSize || !hdr.Fin):
		return ws.StatusProtocolError, "invalid control frame"
	}
	return 0, ""
}

// readPayload reads one frame's payload and unmasks it. Memory follows the
// bytes that actually arrive, never what a header claims: the buffer starts
// at one read step and doubles (so at most about twice what was received
// is allocated), and each growth is taken from the shared budget first, by
// capacity. A frame that fits in one step gets one exact allocation.
func (s *wsStream) readPayload(hdr ws.Header) ([]byte, error) {
	var payload []byte
	for int64(len(payload)) < hdr.Length {
		if len(payload) == cap(payload) {
			grown := min(max(2*int64(cap(payload)), readStep), hdr.Length)
			if err := s.reserve(grown-int64(cap(payload)), hdr.Length-int64(len(payload))); err != nil {
				return nil, err
			}
			next := make([]byte, len(payload), grown)
			copy(next, payload)
			payload = next
		}
		n := len(payload)
		payload = payload[:cap(payload)]
		if _, err := io.ReadFull(s.br, payload[n:]); err != nil {
			return nil, midFrame(s.readFailure(err))
		}
	}
	ws.Cipher(payload, hdr.Mask, 0)
	return payload, nil
}

// reserve takes n bytes of the shared budget for the message being read.
// When the budget is spent, the stream first gives up its own buffered
// frames; if that is not enough the client gets 1013. unread is what is
// left of the frame on the wire.
func (s *wsStream) reserve(n, unread int64) error {
	budget := s.h.cfg.Session.Budget
	if !budget.TryAcquire(n) && (s.stream.DropBuffered() == 0 || !budget.TryAcquire(n)) {
		return &closeError{code: statusTryAgainLater, reason: "server is short of frame memory, try again later", unread: unread}
	}
	s.held += n
	return nil
}

// midFrame marks a closeError raised part-way through a frame: the rest of
// the frame is still on the wire, of unknown length now, so the close
// handshake discards raw bytes rather than parse them as headers.
func midFrame(err error) error {
	var ce *closeError
	if errors.As(err, &ce) {
		ce.unread = -1
	}
	return err
}

// releaseHeld gives the bytes of the message just read back to the budget;
// the domain takes its own share if it keeps the frame.
func (s *wsStream) releaseHeld() {
	s.h.cfg.Session.Budget.Release(s.held)
	s.held = 0
}

// control answers ping, ignores pong, and handles the client's close.
func (s *wsStream) control(hdr ws.Header) error {
	var buf [ws.MaxControlFramePayloadSize]byte
	payload := buf[:hdr.Length]
	if _, err := io.ReadFull(s.br, payload); err != nil {
		return midFrame(s.readFailure(err))
	}
	ws.Cipher(payload, hdr.Mask, 0)
	switch hdr.OpCode {
	case ws.OpPing:
		return s.writeFrame(ws.OpPong, payload)
	case ws.OpClose:
		code, _ := ws.ParseCloseFrameDataUnsafe(payload)
		switch {
		case len(payload) == 0:
			code = ws.StatusNoStatusRcvd
		case len(payload) == 1 || !validCloseCode(code):
			// RFC 6455 7.4: a code a peer may not send is a protocol error.
			code = ws.StatusProtocolError
			payload = ws.NewCloseFrameBody(code, "invalid close code")
		default:
			payload = ws.NewCloseFrameBody(code, "")
		}
		// Echo the code, as RFC 6455 asks, then the server closes TCP.
		_ = s.writeFrame(ws.OpClose, payload)
		s.peerCode = code
		return errPeerClosed
	}
	return nil
}

// validCloseCode reports whether a peer may send code in a close frame:
// RFC 6455's codes plus IANA's registered 1012–1014 (restart, try again
// later, bad gateway), which browsers and Python's websockets send.
func validCloseCode(code ws.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014, code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// handleFrame feeds one complete binary message to the domain and acks it.
func (s *wsStream) handleFrame(frame []byte) error {
	s.h.cfg.Observer.FrameReceived(len(frame))
	ack := s.stream.HandleFrame(frame)
	s.ackBuf = AppendAck(s.ackBuf[:0], ack)
	if err := s.writeFrame(ws.OpText, s.ackBuf); err != nil {
		return err
	}
	s.h.cfg.Observer.AckSent()
	if ack.Frame%progressEvery == 0 {
		s.logger.Debug("stream progress", "frames", ack.Frame)
	}
	if ack.InferenceError != "" {
		s.logger.Warn("inference failed", "frame", ack.Frame, "err", ack.InferenceError)
	}
	return nil
}

func (s *wsStream) writeFrame(op ws.OpCode, payload []byte) error {
	if err := s.conn.SetWriteDeadline(time.Now().Add(s.h.cfg.WriteTimeout)); err != nil {
		return err
	}
	hdr := ws.Header{Fin: true, OpCode: op, Length: int64(len(payload))}
	if err := ws.WriteHeaderBuffer(s.bw, hdr, s.outBuf[:]); err != nil {
		return err
	}
	if _, err := s.bw.Write(payload); err != nil {
		return err
	}
	return s.bw.Flush()
}

// drainUntilClose discards what the client sends until it answers our close
// frame, or closeWait passes. Besides completing the handshake, this keeps
// unread bytes out of the socket when it closes, which would turn the FIN
// into a RST and could destroy the close frame before the client reads it.
// Discarding never holds more than bufio's buffer, whatever the client sends.
func (s *wsStream) drainUntilClose(unread int64) {
	_ = s.conn.SetReadDeadline(time.Now().Add(closeWait))
	if unread < 0 {
		_, _ = io.Copy(io.Discard, s.br)
		return
	}
	if _, err := io.CopyN(io.Discard, s.br, unread); err != nil {
		return
	}
	for {
		hdr, err := ws.ReadHeaderBuffer(s.br, s.hdrBuf[:ws.MaxHeaderSize-2])
		if err != nil {
			return
		}
		if _, err := io.CopyN(io.Discard, s.br, hdr.Length); err != nil || hdr.OpCode == ws.OpClose {
			return
		}
	}
}

func writeClose(conn net.Conn, bw *bufio.Writer, code ws.StatusCode, reason string, timeout time.Duration) error {
	if err := conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	body := ws.NewCloseFrameBody(code, reason)
	if err := ws.WriteFrame(bw, ws.NewCloseFrame(body)); err != nil {
		return err
	}
	return bw.Flush()
}
