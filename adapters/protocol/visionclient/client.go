// Package visionclient is a small WebSocket client for Foresight's
// /vision/stream endpoint: it sends JPEG frames as binary messages and reads
// the server's JSON acks. The replay tool and the load generator use it.
//
// A Conn allows one goroutine sending frames and another reading acks at the
// same time; Close may be called from any goroutine.
package visionclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/foresight-vision/foresight/adapters/frontend/access"
	"github.com/foresight-vision/foresight/adapters/protocol/wire"
	"github.com/foresight-vision/foresight/adapters/protocol/wsframe"
)

// DefaultMaxMessageBytes is the largest ack accepted by default (the original
// replay tool's 16 MB limit, rounded to 16 MiB).
const DefaultMaxMessageBytes = 16 << 20

// DefaultCloseTimeout bounds how long Close waits for the server's close frame.
const DefaultCloseTimeout = time.Second

// Options configures Dial. The zero value is usable.
type Options struct {
	// MagicWord, when non-empty, is sent as the query parameter magic_word
	// (replacing any already in the URL), as the edge proxy expects.
	MagicWord string
	// Token, when non-empty, is an access token sent on the upgrade as
	// "Authorization: Bearer <token>" (never in the URL, so never printed).
	Token string
	// Header holds extra handshake request headers (for example
	// x-magic-word or x-modal-token-id).
	Header http.Header
	// MaxMessageBytes bounds one incoming message; a larger one closes the
	// connection with 1009. Zero means DefaultMaxMessageBytes.
	MaxMessageBytes int64
	// HandshakeTimeout bounds connect + upgrade; zero means only ctx bounds it.
	HandshakeTimeout time.Duration
	// CloseTimeout bounds how long Close waits for the server's close frame.
	// Zero means DefaultCloseTimeout.
	CloseTimeout time.Duration
	// NetDial, when set, replaces the default dialer (tests, source-address
	// selection in the load generator).
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Ack is one JSON text message from the server.
type Ack struct {
	// Frame is the 1-based frame number being acknowledged.
	Frame int64
	// Bytes is the length of that frame as the server received it.
	Bytes int
	// Caption is the model caption carried by this ack, if HasCaption.
	Caption    string
	HasCaption bool
	// InferenceError is the failure text of an inference call, if any.
	InferenceError string
	// Fields holds every field of the message (numbers as json.Number).
	Fields map[string]any
	// Raw is the message exactly as received.
	Raw []byte
}

// HasResult reports whether the ack carries an inference outcome: a caption
// or an inference_error (the replay tool's "inference event").
func (a Ack) HasResult() bool {
	_, err := a.Fields[wire.AckInferenceError]
	return a.HasCaption || err
}

// CloseError is returned by ReadAck when the server closed the connection
// with a close frame.
type CloseError struct {
	Code   int
	Reason string
}

func (e *CloseError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("websocket closed by server: code %d", e.Code)
	}
	return fmt.Sprintf("websocket closed by server: code %d: %s", e.Code, e.Reason)
}

// ErrClosed is returned by SendFrame and ReadAck after Close.
var ErrClosed = errors.New("visionclient: connection closed")

// Conn is one /vision/stream connection.
type Conn struct {
	conn         net.Conn
	br           *bufio.Reader
	maxMsg       int64
	closeTimeout time.Duration

	wmu     sync.Mutex // serialises frame writes (frames, pongs, close)
	wbuf    []byte
	sentClo bool // a close frame was written (guarded by wmu)

	rmu     sync.Mutex // one reader at a time
	hdrBuf  [ws.MaxHeaderSize]byte
	msgBuf  bytes.Buffer
	ctlBuf  [125]byte
	gotClo  chan struct{} // closed once the server's close frame (or EOF) was read
	gotOnce sync.Once

	closeOnce sync.Once
	closeErr  error
}

// NormalizeURL applies the original replay tool's rules: http and https
// become ws and wss, ws and wss stay, any other scheme is an error; an empty
// path or "/" becomes /vision/stream. The query is kept.
func NormalizeURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("parse url: %w", err)
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		u.Scheme = "wss"
	case "http":
		u.Scheme = "ws"
	case "ws", "wss":
		u.Scheme = strings.ToLower(u.Scheme)
	default:
		return "", fmt.Errorf("unsupported URL scheme %q: use ws://, wss://, http:// or https://", u.Scheme)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = wire.PathStream
		u.RawPath = ""
	}
	return u.String(), nil
}

// WithMagicWord returns rawURL with the query parameter magic_word set to
// word (replacing any present); an empty word leaves the URL unchanged.
func WithMagicWord(rawURL, word string) (string, error) {
	if word == "" {
		return rawURL, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("parse url: %w", err)
	}
	q := u.Query()
	q.Set(wire.QueryMagicWord, word)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// RedactURL returns rawURL with its magic_word and access_token values replaced by REDACTED
// and no user info, for printing and logging. An unparsable URL is returned as "<invalid url>".
func RedactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "<invalid url>"
	}
	u.User = nil
	return access.RedactURL(u) // the server's own rule, so the two agree
}

// Dial connects to a ws:// or wss:// URL (use NormalizeURL first for http
// URLs) and completes the WebSocket handshake.
func Dial(ctx context.Context, rawURL string, opts Options) (*Conn, error) {
	target, err := WithMagicWord(rawURL, opts.MagicWord)
	if err != nil {
		return nil, err
	}
	d := ws.Dialer{
		Timeout: opts.HandshakeTimeout,
		NetDial: opts.NetDial,
	}
	header := opts.Header
	if opts.Token != "" {
		header = header.Clone()
		if header == nil {
			header = http.Header{}
		}
		header.Set(wire.HeaderAuthorization, "Bearer "+opts.Token)
	}
	if len(header) > 0 {
		d.Header = ws.HandshakeHeaderHTTP(header)
	}
	conn, br, _, err := d.Dial(ctx, target)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", RedactURL(target), err)
	}
	if br == nil {
		br = bufio.NewReaderSize(conn, 4096)
	}
	c := &Conn{
		conn:         conn,
		br:           br,
		maxMsg:       opts.MaxMessageBytes,
		closeTimeout: opts.CloseTimeout,
		gotClo:       make(chan struct{}),
	}
	if c.maxMsg <= 0 {
		c.maxMsg = DefaultMaxMessageBytes
	}
	if c.closeTimeout <= 0 {
		c.closeTimeout = DefaultCloseTimeout
	}
	return c, nil
}

// LocalAddr returns the client side address of the connection.
func (c *Conn) LocalAddr() net.Addr { return c.conn.LocalAddr() }

// SendFrame sends b as one binary message. b is not modified.
func (c *Conn) SendFrame(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.sentClo {
		return ErrClosed
	}
	if err := c.writeLocked(ws.OpBinary, b); err != nil {
		return fmt.Errorf("send frame: %w", err)
	}
	return nil
}

// writeLocked writes one masked, unfragmented frame with a single Write so a
// frame is never interleaved with another. Caller holds wmu.
func (c *Conn) writeLocked(op ws.OpCode, payload []byte) error {
	c.wbuf = wsframe.AppendFrame(c.wbuf[:0], op, payload, true)
	_, err := c.conn.Write(c.wbuf)
	return err
}

// ReadAck reads the next text message and decodes it as an ack, answering
// pings on the way. A server close frame yields a *CloseError; an unexpected
// binary message is an error.
func (c *Conn) ReadAck() (Ack, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	raw, err := c.readMessage()
	if err != nil {
		return Ack{}, err
	}
	return ParseAck(raw)
}

// ParseAck decodes one ack message. Raw keeps the slice it is given.
func ParseAck(raw []byte) (Ack, error) {
	a := Ack{Raw: raw}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&a.Fields); err != nil {
		return Ack{}, fmt.Errorf("decode ack %q: %w", truncate(raw, 200), err)
	}
	if a.Fields == nil {
		return Ack{}, fmt.Errorf("decode ack %q: not a JSON object", truncate(raw, 200))
	}
	if n, ok := a.Fields[wire.AckFrame].(json.Number); ok {
		a.Frame, _ = strconv.ParseInt(n.String(), 10, 64)
	}
	if n, ok := a.Fields[wire.AckBytes].(json.Number); ok {
		v, _ := strconv.ParseInt(n.String(), 10, 64)
		a.Bytes = int(v)
	}
	if s, ok := a.Fields[wire.AckCaption]; ok {
		a.HasCaption = true
		a.Caption, _ = s.(string)
	}
	if s, ok := a.Fields[wire.AckInferenceError]; ok {
		if str, isStr := s.(string); isStr {
			a.InferenceError = str
		} else {
			a.InferenceError = fmt.Sprint(s)
		}
	}
	return a, nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// readMessage returns the payload of the next complete text message. Caller
// holds rmu. The returned slice is a fresh copy owned by the caller.
func (c *Conn) readMessage() ([]byte, error) {
	c.msgBuf.Reset()
	inMessage := false
	for {
		h, err := ws.ReadHeaderBuffer(c.br, c.hdrBuf[:])
		if err != nil {
			return nil, c.readFailed(fmt.Errorf("read frame header: %w", err))
		}
		if code, reason := wsframe.CheckServerHeader(h); code != 0 {
			return nil, c.protocolError(reason)
		}
		if h.OpCode.IsControl() {
			if err := c.handleControl(h); err != nil {
				return nil, err
			}
			continue
		}
		switch h.OpCode {
		case ws.OpText, ws.OpBinary:
			if inMessage {
				return nil, c.protocolError("new data frame inside a fragmented message")
			}
			if h.OpCode == ws.OpBinary {
				// Discard and report: the server only ever sends text acks.
				_, _ = io.CopyN(io.Discard, c.br, h.Length)
				return nil, c.protocolError("unexpected binary message from server")
			}
			inMessage = true
		case ws.OpContinuation:
			if !inMessage {
				return nil, c.protocolError("continuation frame without a message")
			}
		}
		if int64(c.msgBuf.Len())+h.Length > c.maxMsg {
			c.sendClose(wire.CloseMessageTooBig, "message too big")
			return nil, c.readFailed(fmt.Errorf("message larger than %d bytes", c.maxMsg))
		}
		start := c.msgBuf.Len()
		if _, err := io.CopyN(&c.msgBuf, c.br, h.Length); err != nil {
			return nil, c.readFailed(fmt.Errorf("read frame payload: %w", err))
		}
		if h.Masked {
			ws.Cipher(c.msgBuf.Bytes()[start:], h.Mask, 0)
		}
		if h.Fin {
			return bytes.Clone(c.msgBuf.Bytes()), nil
		}
	}
}

// handleControl answers a ping, ignores a pong, and turns a close frame into
// a *CloseError after replying to it.
func (c *Conn) handleControl(h ws.Header) error {
	p := c.ctlBuf[:h.Length] // CheckServerHeader bounded it
	if _, err := io.ReadFull(c.br, p); err != nil {
		return c.readFailed(fmt.Errorf("read control frame: %w", err))
	}
	if h.Masked {
		ws.Cipher(p, h.Mask, 0)
	}
	switch h.OpCode {
	case ws.OpPing:
		c.wmu.Lock()
		defer c.wmu.Unlock()
		if c.sentClo {
			return nil
		}
		if err := c.writeLocked(ws.OpPong, p); err != nil {
			return c.readFailed(fmt.Errorf("send pong: %w", err))
		}
		return nil
	case ws.OpPong:
		return nil
	default: // close
		code, reason, bad := wsframe.ParseClose(p)
		// Echo the code, as RFC 6455 asks, unless we already sent ours; a
		// close frame that breaks the RFC is answered with 1002 or 1007.
		switch {
		case bad != nil:
			c.sendClose(bad.Code, bad.Reason)
		case code == wire.CloseNoStatus:
			c.sendClose(wire.CloseNormal, "")
		default:
			c.sendClose(code, "")
		}
		c.markClosed()
		return &CloseError{Code: int(code), Reason: reason}
	}
}

func (c *Conn) protocolError(msg string) error {
	c.sendClose(wire.CloseProtocolError, "")
	return c.readFailed(errors.New("websocket protocol error: " + msg))
}

// readFailed records that no close frame will arrive any more.
func (c *Conn) readFailed(err error) error {
	c.markClosed()
	return err
}

func (c *Conn) markClosed() { c.gotOnce.Do(func() { close(c.gotClo) }) }

// sendClose writes a close frame once; later calls do nothing.
func (c *Conn) sendClose(code wire.CloseCode, reason string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.sentClo {
		return
	}
	c.sentClo = true
	_ = c.conn.SetWriteDeadline(time.Now().Add(c.closeTimeout))
	_ = c.writeLocked(ws.OpClose, wsframe.CloseBody(code, reason))
}

// Close sends a normal close frame, waits up to the close timeout for the
// server's close frame, then closes the TCP connection. It is safe to call
// more than once and concurrently with a blocked ReadAck (which then returns
// a *CloseError or a read error).
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		deadline := time.Now().Add(c.closeTimeout)
		// A writer blocked on a full socket holds wmu; the deadline frees it.
		_ = c.conn.SetWriteDeadline(deadline)
		c.sendClose(wire.CloseNormal, "")
		if c.rmu.TryLock() {
			// Nobody is reading: drain until the server's close frame.
			_ = c.conn.SetReadDeadline(deadline)
			c.drainUntilClose()
			c.rmu.Unlock()
		} else {
			// A reader is blocked in ReadAck: it will see the close frame.
			t := time.NewTimer(time.Until(deadline))
			select {
			case <-c.gotClo:
			case <-t.C:
			}
			t.Stop()
		}
		c.closeErr = c.conn.Close()
		c.markClosed()
	})
	if c.closeErr != nil {
		return fmt.Errorf("close connection: %w", c.closeErr)
	}
	return nil
}

// drainUntilClose discards messages until the server's close frame or a
// read error. Caller holds rmu.
func (c *Conn) drainUntilClose() {
	for {
		select {
		case <-c.gotClo:
			return
		default:
		}
		if _, err := c.readMessage(); err != nil {
			return
		}
	}
}

// Abort closes the TCP connection at once, without a close handshake (for
// tests of abrupt disconnects and for shutting down a load run fast).
func (c *Conn) Abort() error {
	err := c.conn.Close()
	c.markClosed()
	c.closeOnce.Do(func() {})
	if err != nil {
		return fmt.Errorf("abort connection: %w", err)
	}
	return nil
}
