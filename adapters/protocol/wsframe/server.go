package wsframe

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/foresight-vision/foresight/adapters/protocol/wire"
)

const (
	// maxControlPayload is RFC 6455's bound on a control frame's payload.
	maxControlPayload = ws.MaxControlFramePayloadSize
	// slabSize is the size of the pooled buffers a large payload is read
	// into until enough of it has arrived to allocate it exactly; a payload
	// up to this size is read straight into an exact allocation.
	slabSize = 64 << 10
	// DefaultCloseWait bounds how long a server-initiated close waits for
	// the client's close frame before dropping the connection.
	DefaultCloseWait = 2 * time.Second
)

// Reasons of the server's close frames, part of the protocol (docs/protocol.md).
const (
	ReasonUnmasked         = "client frames must be masked"
	ReasonReservedBits     = "reserved bits set without an extension"
	ReasonReservedOpcode   = "reserved opcode"
	ReasonBadControl       = "invalid control frame"
	ReasonOrphanContinue   = "continuation frame without a message"
	ReasonMessageInMessage = "new message before the previous one ended"
	ReasonMalformedHeader  = "malformed frame header"
	ReasonText             = "text messages are not supported: send each frame as a binary message"
	ReasonShortOfMemory    = "server is short of frame memory, try again later"
	ReasonIdle             = "idle timeout"
	ReasonShuttingDown     = "server shutting down"
)

// ErrPeerClosed is returned by ReadMessage once the client's close frame
// was read and answered.
var ErrPeerClosed = errors.New("peer sent close")

// DroppedError is returned by ReadMessage, with ServerConfig.DropWhenShort,
// for a message the budget could not hold: it was read off the wire and
// discarded. The connection is fine; the caller acks it as dropped and
// reads on.
type DroppedError struct {
	// Bytes is the message's length.
	Bytes int64
}

func (e *DroppedError) Error() string {
	return fmt.Sprintf("message of %d bytes dropped: frame memory is spent", e.Bytes)
}

// slabs holds the fixed-size buffers large payloads are first read into,
// shared by every connection, so reading allocates no more per message than
// the message itself.
var slabs = sync.Pool{New: func() any { return new([slabSize]byte) }}

// Budget is the memory messages are read against (domain.MemoryBudget
// satisfies it): bytes are acquired before they are allocated.
type Budget interface {
	TryAcquire(n int64) bool
	Release(n int64)
}

// Deadlines is the part of a net.Conn the framing needs besides its buffers.
type Deadlines interface {
	SetReadDeadline(t time.Time) error
	SetWriteDeadline(t time.Time) error
}

// ServerConfig configures a Server. Zero values mean: no limit on message
// size, no idle timeout, no write timeout, no budget.
type ServerConfig struct {
	// MaxMessageBytes bounds one message, fragments included; a larger one
	// gets close 1009 and is never read into memory.
	MaxMessageBytes int64
	// IdleTimeout closes the connection with 1001 when nothing at all
	// arrives for this long, mid-frame included.
	IdleTimeout time.Duration
	// WriteTimeout bounds writing one frame.
	WriteTimeout time.Duration
	// StopWriteTimeout bounds writing one frame once Stopping reports true,
	// so a client that does not read cannot hold a shutdown.
	StopWriteTimeout time.Duration
	// CloseWait bounds waiting for the client's close after the server's;
	// zero means DefaultCloseWait.
	CloseWait time.Duration
	// Budget is charged for the memory the message being read takes as its
	// bytes arrive; when it is spent (and Shed frees nothing) the client
	// gets 1013, or with DropWhenShort the message is discarded.
	Budget Budget
	// DropWhenShort turns the 1013 for a spent budget into a dropped
	// message: the rest of it is read and discarded (never buffered) and
	// ReadMessage returns a *DroppedError, so the caller can still ack it.
	DropWhenShort bool
	// Shed, when set, is called once the budget is spent, to give up other
	// memory (the stream's buffered frames); it returns the bytes freed.
	Shed func() int64
	// Stopping reports a shutdown: the next read ends with 1001 "server
	// shutting down" instead of "idle timeout".
	Stopping func() bool
}

// Server reads binary messages from one client connection, answering
// control frames, and writes text messages and the close handshake. All
// reads and writes must come from one goroutine.
type Server struct {
	cfg  ServerConfig
	conn Deadlines
	br   *bufio.Reader
	bw   *bufio.Writer
	in   idleReader

	hdrBuf   [ws.MaxHeaderSize]byte // for reading frame headers
	outBuf   [ws.MaxHeaderSize]byte // for writing them; a field so it is not allocated per write
	message  []byte                 // a fragmented message being assembled
	inMsg    bool
	msgLen   int64          // bytes of the current message so far, assembled or dropped
	dropping bool           // the current message is being discarded
	peerCode wire.CloseCode // the code of the client's close frame
	held     int64          // budget bytes taken by the message being read
	// spare is a message buffer given back with Recycle, read into next;
	// spareHeld is the budget it holds meanwhile.
	spare     []byte
	spareHeld int64
}

// NewServer wraps an upgraded connection: conn for deadlines, br and bw its
// buffered reader and writer (from the upgrade, so bytes the client sent
// right behind the handshake are kept).
func NewServer(conn Deadlines, br *bufio.Reader, bw *bufio.Writer, cfg ServerConfig) *Server {
	if cfg.CloseWait <= 0 {
		cfg.CloseWait = DefaultCloseWait
	}
	if cfg.StopWriteTimeout <= 0 {
		cfg.StopWriteTimeout = cfg.WriteTimeout
	}
	if cfg.Stopping == nil {
		cfg.Stopping = func() bool { return false }
	}
	s := &Server{cfg: cfg, conn: conn, br: br, bw: bw}
	s.in = idleReader{r: br, conn: conn, timeout: cfg.IdleTimeout, stopping: cfg.Stopping}
	return s
}

// idleReader reads through the connection's buffer and turns a read
// deadline into the idle timeout: the deadline is armed once per idle
// period, not per read, and when it fires while bytes arrived less than
// the timeout ago it is moved to lastActive+timeout and the read goes on.
// So a slow but steady upload of one large frame stays open, and a peer
// silent mid-frame is closed after exactly the timeout.
type idleReader struct {
	r          io.Reader
	conn       Deadlines
	timeout    time.Duration
	stopping   func() bool
	lastActive time.Time
	armed      bool // the idle timeout is in force (not while draining)
}

func (r *idleReader) Read(p []byte) (int, error) {
	for {
		n, err := r.r.Read(p)
		if n > 0 {
			r.lastActive = time.Now()
			return n, err
		}
		if err == nil || !r.armed || !isTimeout(err) || r.stopping() {
			return n, err
		}
		next := r.lastActive.Add(r.timeout)
		if !time.Now().Before(next) {
			return n, err
		}
		if serr := r.conn.SetReadDeadline(next); serr != nil {
			return n, serr
		}
		// A shutdown that set the deadline to now just before us must win.
		if r.stopping() {
			return n, err
		}
	}
}

// waiting marks the start of a wait for the next frame: idle time counts
// from here, not from the last byte, so time spent writing an ack is not
// the client's silence.
func (r *idleReader) waiting() error {
	r.lastActive = time.Now()
	if r.timeout <= 0 || r.armed {
		return nil
	}
	r.armed = true
	return r.conn.SetReadDeadline(r.lastActive.Add(r.timeout))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// ReadMessage returns the next complete binary message. A fragmented
// message is assembled; pings are answered and pongs skipped on the way.
// It returns a *CloseError for a frame the server refuses (pass it to End),
// ErrPeerClosed after the client's close, or the read error. The message's
// budget share is released before it returns: whoever keeps the bytes
// charges them again.
func (s *Server) ReadMessage() ([]byte, error) {
	defer s.release()
	for {
		if err := s.in.waiting(); err != nil {
			return nil, err
		}
		if s.cfg.Stopping() {
			return nil, &CloseError{Code: wire.CloseGoingAway, Reason: ReasonShuttingDown}
		}
		hdr, err := ws.ReadHeaderBuffer(&s.in, s.hdrBuf[:ws.MaxHeaderSize-2])
		if err != nil {
			return nil, s.readFailure(err)
		}
		if code, reason := CheckClientHeader(hdr); code != 0 {
			return nil, refuse(code, reason, hdr)
		}
		if hdr.OpCode.IsControl() {
			if err := s.control(hdr); err != nil {
				return nil, err
			}
			continue
		}
		switch {
		case hdr.OpCode == ws.OpText:
			return nil, refuse(wire.CloseUnsupportedData, ReasonText, hdr)
		case hdr.OpCode == ws.OpContinuation && !s.inMsg:
			return nil, refuse(wire.CloseProtocolError, ReasonOrphanContinue, hdr)
		case hdr.OpCode == ws.OpBinary && s.inMsg:
			return nil, refuse(wire.CloseProtocolError, ReasonMessageInMessage, hdr)
		}
		if s.cfg.MaxMessageBytes > 0 && s.msgLen+hdr.Length > s.cfg.MaxMessageBytes {
			// Never buffered: the rest is only discarded, briefly, while the
			// client gets the close frame.
			return nil, refuse(wire.CloseMessageTooBig, fmt.Sprintf("message larger than %d bytes", s.cfg.MaxMessageBytes), hdr)
		}
		s.msgLen += hdr.Length
		var payload []byte
		if s.dropping {
			if err := s.discard(hdr.Length); err != nil {
				return nil, err
			}
		} else {
			var err error
			if payload, err = s.readPayload(hdr); err != nil {
				return nil, err
			}
		}
		if !hdr.Fin {
			if !s.dropping {
				// Fragments are rare from real clients; assembling them costs a copy.
				s.message = append(s.message, payload...)
			}
			s.inMsg = true
			continue
		}
		if s.dropping {
			dropped := &DroppedError{Bytes: s.msgLen}
			s.endMessage()
			return nil, dropped
		}
		if s.inMsg {
			payload = append(s.message, payload...)
		}
		s.endMessage()
		return payload, nil
	}
}

// endMessage resets the state of the message just finished.
func (s *Server) endMessage() {
	s.message, s.inMsg, s.msgLen, s.dropping = nil, false, 0, false
}

// drop gives up the message being read: its memory goes back to the budget
// and the rest of it will be discarded as it arrives.
func (s *Server) drop() {
	s.release()
	s.message = nil
	s.dropping = true
}

// discard reads n payload bytes and throws them away through io.Discard's
// small shared buffer.
func (s *Server) discard(n int64) error {
	if _, err := io.CopyN(io.Discard, &s.in, n); err != nil {
		return midFrame(s.readFailure(err))
	}
	return nil
}

// refuse builds the CloseError for a frame whose payload is still unread.
func refuse(code wire.CloseCode, reason string, hdr ws.Header) *CloseError {
	return &CloseError{Code: code, Reason: reason, unread: hdr.Length}
}

// CheckClientHeader returns the close code and reason for a client frame
// header the server refuses, or 0.
func CheckClientHeader(hdr ws.Header) (wire.CloseCode, string) {
	if !hdr.Masked {
		return wire.CloseProtocolError, ReasonUnmasked
	}
	return checkHeader(hdr)
}

// checkHeader holds the checks both directions share.
func checkHeader(hdr ws.Header) (wire.CloseCode, string) {
	switch {
	case hdr.Rsv != 0:
		return wire.CloseProtocolError, ReasonReservedBits
	case hdr.OpCode.IsReserved():
		return wire.CloseProtocolError, ReasonReservedOpcode
	case hdr.OpCode.IsControl() && (hdr.Length > maxControlPayload || !hdr.Fin):
		return wire.CloseProtocolError, ReasonBadControl
	}
	return 0, ""
}

// readFailure turns a read error into ReadMessage's result: a deadline is
// either shutdown or the idle timeout.
func (s *Server) readFailure(err error) error {
	if errors.Is(err, ws.ErrHeaderLengthMSB) || errors.Is(err, ws.ErrHeaderLengthUnexpected) {
		return &CloseError{Code: wire.CloseProtocolError, Reason: ReasonMalformedHeader, unread: -1}
	}
	if isTimeout(err) {
		if s.cfg.Stopping() {
			return &CloseError{Code: wire.CloseGoingAway, Reason: ReasonShuttingDown}
		}
		return &CloseError{Code: wire.CloseGoingAway, Reason: ReasonIdle}
	}
	return err
}

// readPayload reads one frame's payload and unmasks it. Memory follows the
// bytes that actually arrive, never what a header claims, and each step is
// taken from the budget before it is allocated. A payload up to slabSize
// gets one exact allocation. A larger one is read into pooled slabs until
// half of it has arrived, then allocated exactly once, the slabs copied in
// and returned, and the rest read in place: at most 1.5 times the payload
// is held at once, all of it counted, and nothing is grown by copying.
// When the budget cannot take a step (and Shed frees nothing), the client
// gets 1013, or with DropWhenShort the payload is discarded and
// s.dropping set (payload nil, err nil).
func (s *Server) readPayload(hdr ws.Header) ([]byte, error) {
	length := hdr.Length
	if length <= slabSize {
		var payload []byte
		if int64(cap(s.spare)) >= length {
			// Its budget share becomes the message's, released as usual.
			payload, s.spare = s.spare[:length], nil
			s.held += s.spareHeld
			s.spareHeld = 0
		} else {
			if ok, err := s.reserve(length, length); !ok {
				return nil, s.dropRest(err, length)
			}
			payload = make([]byte, length)
		}
		if _, err := io.ReadFull(&s.in, payload); err != nil {
			return nil, midFrame(s.readFailure(err))
		}
		ws.Cipher(payload, hdr.Mask, 0)
		return payload, nil
	}

	var (
		parts    []*[slabSize]byte
		received int64
	)
	giveBack := func() {
		for _, p := range parts {
			slabs.Put(p)
		}
		parts = nil
	}
	defer giveBack()
	for received < length/2 {
		if ok, err := s.reserve(slabSize, length-received); !ok {
			return nil, s.dropRest(err, length-received)
		}
		slab := slabs.Get().(*[slabSize]byte)
		parts = append(parts, slab)
		n := min(slabSize, length-received)
		if _, err := io.ReadFull(&s.in, slab[:n]); err != nil {
			return nil, midFrame(s.readFailure(err))
		}
		received += n
	}
	if ok, err := s.reserve(length, length-received); !ok {
		return nil, s.dropRest(err, length-received)
	}
	payload := make([]byte, length)
	at := 0
	for _, p := range parts {
		at += copy(payload[at:received], p[:])
	}
	s.unreserve(int64(len(parts)) * slabSize)
	giveBack()
	if _, err := io.ReadFull(&s.in, payload[received:]); err != nil {
		return nil, midFrame(s.readFailure(err))
	}
	ws.Cipher(payload, hdr.Mask, 0)
	return payload, nil
}

// ReadCost is the most budget reading one payload of n bytes takes at once
// (see readPayload): configurations must leave at least this much for the
// largest message allowed.
func ReadCost(n int64) int64 {
	if n <= slabSize {
		return n
	}
	halfInSlabs := (n/2 + slabSize - 1) / slabSize
	return halfInSlabs*slabSize + n
}

// dropRest handles a reserve that failed part-way through a payload: with
// DropWhenShort the message is given up and the unread rest discarded;
// otherwise refusal (the 1013) is returned.
func (s *Server) dropRest(refusal error, unread int64) error {
	if refusal != nil {
		return refusal
	}
	s.drop()
	return s.discard(unread)
}

// reserve takes n bytes of the budget for the message being read. When the
// budget is spent, Shed may free memory first. If that is not enough, it
// reports false: with DropWhenShort the message is given up (err nil, the
// caller discards what is left of it, starting with unread bytes of this
// frame); otherwise err is the 1013.
func (s *Server) reserve(n, unread int64) (bool, error) {
	b := s.cfg.Budget
	if b == nil {
		return true, nil
	}
	got := b.TryAcquire(n)
	if !got && s.spareHeld > 0 {
		s.dropSpare() // a recycled buffer too small for this message goes first
		got = b.TryAcquire(n)
	}
	if !got && (s.cfg.Shed == nil || s.cfg.Shed() == 0 || !b.TryAcquire(n)) {
		if !s.cfg.DropWhenShort {
			return false, &CloseError{Code: wire.CloseTryAgainLater, Reason: ReasonShortOfMemory, unread: unread}
		}
		return false, nil
	}
	s.held += n
	return true, nil
}

// unreserve gives back n bytes of the message's share before it is read in
// full (slabs no longer needed).
func (s *Server) unreserve(n int64) {
	if s.cfg.Budget != nil {
		s.cfg.Budget.Release(n)
	}
	s.held -= n
}

// Recycle gives back a message ReadMessage returned, once the caller holds
// no reference to it, so the next message that fits is read into it
// instead of a new allocation: a stream that keeps no frames then reads
// without allocating. Only one buffer of up to 64 KiB is kept, and it
// holds its size in the budget while it waits (none is kept if the budget
// cannot take it).
func (s *Server) Recycle(msg []byte) {
	size := int64(cap(msg))
	if s.spare != nil || size == 0 || size > slabSize {
		return
	}
	if b := s.cfg.Budget; b != nil && !b.TryAcquire(size) {
		return
	}
	s.spare, s.spareHeld = msg[:0], size
}

// dropSpare lets go of the recycled buffer and its budget share.
func (s *Server) dropSpare() {
	if s.cfg.Budget != nil {
		s.cfg.Budget.Release(s.spareHeld)
	}
	s.spare, s.spareHeld = nil, 0
}

// release gives the bytes of the message just read back to the budget.
func (s *Server) release() {
	if s.cfg.Budget != nil {
		s.cfg.Budget.Release(s.held)
	}
	s.held = 0
}

// midFrame marks a CloseError raised part-way through a frame: the rest of
// the frame is still on the wire, of unknown length now, so the close
// handshake discards raw bytes rather than parse them as headers.
func midFrame(err error) error {
	var ce *CloseError
	if errors.As(err, &ce) {
		ce.unread = -1
	}
	return err
}

// control answers ping, ignores pong, and handles the client's close.
func (s *Server) control(hdr ws.Header) error {
	var buf [maxControlPayload]byte
	payload := buf[:hdr.Length]
	if _, err := io.ReadFull(&s.in, payload); err != nil {
		return midFrame(s.readFailure(err))
	}
	ws.Cipher(payload, hdr.Mask, 0)
	switch hdr.OpCode {
	case ws.OpPing:
		return s.WriteFrame(ws.OpPong, payload)
	case ws.OpClose:
		code, _, bad := ParseClose(payload)
		switch {
		case bad != nil:
			code, payload = bad.Code, CloseBody(bad.Code, bad.Reason)
		case code == wire.CloseNoStatus:
			payload = payload[:0] // an empty close is answered with an empty one
		default:
			payload = CloseBody(code, "")
		}
		// Echo the code, as RFC 6455 asks; then the caller closes TCP.
		_ = s.WriteFrame(ws.OpClose, payload)
		s.peerCode = code
		return ErrPeerClosed
	}
	return nil
}

// WriteText writes one text message.
func (s *Server) WriteText(p []byte) error { return s.WriteFrame(ws.OpText, p) }

// WriteFrame writes one unmasked, unfragmented frame within the write
// timeout (the stop write timeout once stopping).
func (s *Server) WriteFrame(op ws.OpCode, payload []byte) error {
	if err := s.setWriteDeadline(); err != nil {
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

func (s *Server) setWriteDeadline() error {
	if s.cfg.WriteTimeout <= 0 {
		return nil
	}
	if !s.cfg.Stopping() {
		if err := s.conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout)); err != nil {
			return err
		}
		// A shutdown that shortened the deadline just before us must win.
		if !s.cfg.Stopping() {
			return nil
		}
	}
	return s.conn.SetWriteDeadline(time.Now().Add(s.cfg.StopWriteTimeout))
}

// WriteClose writes a close frame with code and reason.
func (s *Server) WriteClose(code wire.CloseCode, reason string) error {
	return s.WriteFrame(ws.OpClose, CloseBody(code, reason))
}

// End finishes the connection after ReadMessage (or the caller) failed
// with err and returns the close code of the connection: for a
// *CloseError it sends the close frame, skips the rest of the refused
// frame and waits for the client's close; after ErrPeerClosed it is the
// client's code; otherwise 1006. The caller then closes TCP.
func (s *Server) End(err error) wire.CloseCode {
	s.dropSpare()
	var ce *CloseError
	switch {
	case errors.As(err, &ce):
		if werr := s.WriteClose(ce.Code, ce.Reason); werr != nil {
			return wire.CloseAbnormal
		}
		s.drainUntilClose(ce.unread)
		return ce.Code
	case errors.Is(err, ErrPeerClosed):
		return s.peerCode
	default:
		return wire.CloseAbnormal
	}
}

// drainUntilClose discards what the client sends until it answers our close
// frame, or CloseWait passes. Besides completing the handshake, this keeps
// unread bytes out of the socket when it closes, which would turn the FIN
// into a RST and could destroy the close frame before the client reads it.
// Discarding never holds more than bufio's buffer, whatever the client sends.
func (s *Server) drainUntilClose(unread int64) {
	s.in.armed = false
	_ = s.conn.SetReadDeadline(time.Now().Add(s.cfg.CloseWait))
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

// SetShed sets ServerConfig.Shed after the fact, for a caller whose
// memory owner exists only once the connection is accepted.
func (s *Server) SetShed(shed func() int64) { s.cfg.Shed = shed }
