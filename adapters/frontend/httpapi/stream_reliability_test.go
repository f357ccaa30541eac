package httpapi_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/adapters/protocol/wsframe/wsframetest"
	"github.com/foresight-vision/foresight/domain/domaintest"
)

// A client uploading one frame slowly but steadily keeps the stream open:
// the idle timeout counts silence, not the time one frame takes.
func TestSlowSteadyUploadIsNotIdle(t *testing.T) {
	s := newStreamServer(t, httpapi.StreamHandlerConfig{IdleTimeout: 300 * time.Millisecond})
	c := s.dial(nil)
	const size = 50 // a byte every 20 ms: 1 s for the frame, over 3 idle timeouts
	mask := ws.NewMask()
	require.NoError(t, ws.WriteHeader(c.conn, ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Mask: mask, Length: size}))
	payload := make([]byte, size)
	ws.Cipher(payload, mask, 0)
	for i := range payload {
		time.Sleep(20 * time.Millisecond)
		_, err := c.conn.Write(payload[i : i+1])
		require.NoError(t, err, "byte %d", i)
	}
	a := c.readAck()
	assert.Equal(t, int64(1), a.Frame)
	assert.Equal(t, size, a.Bytes)
}

// A client silent in the middle of a frame is still closed as idle.
func TestSilenceMidFrameIsIdle(t *testing.T) {
	s := newStreamServer(t, httpapi.StreamHandlerConfig{IdleTimeout: 200 * time.Millisecond})
	c := s.dial(nil)
	require.NoError(t, ws.WriteHeader(c.conn, ws.Header{Fin: true, OpCode: ws.OpBinary, Masked: true, Mask: ws.NewMask(), Length: 100}))
	_, err := c.conn.Write([]byte{1, 2, 3})
	require.NoError(t, err)
	code, reason := c.readClose()
	assert.Equal(t, ws.StatusGoingAway, code)
	assert.Equal(t, "idle timeout", reason)
}

// RFC 6455 8.1: a close reason that is not UTF-8 fails the connection with 1007.
func TestCloseReasonNotUTF8Gets1007(t *testing.T) {
	s := newStreamServer(t, httpapi.StreamHandlerConfig{})
	c := s.dial(nil)
	body := append(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""), 0xff, 0xfe)
	require.NoError(t, ws.WriteFrame(c.conn, ws.MaskFrameInPlace(ws.NewCloseFrame(body))))
	require.NoError(t, c.conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	f, err := wsframetest.ReadFrame(c.rw)
	require.NoError(t, err)
	require.Equal(t, ws.OpClose, f.Header.OpCode)
	code, _ := ws.ParseCloseFrameData(f.Payload)
	assert.Equal(t, ws.StatusCode(1007), code)
}

// An upgrade over HTTP/1.0 gets 400 with a reason, not gobwas's bare 505.
func TestHTTP10UpgradeGets400(t *testing.T) {
	s := newStreamServer(t, httpapi.StreamHandlerConfig{})
	conn, err := net.Dial("tcp", s.srv.Listener.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	_, err = fmt.Fprintf(conn, "GET /vision/stream HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	require.NoError(t, err)
	require.NoError(t, conn.SetReadDeadline(time.Now().Add(5*time.Second)))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	assert.Contains(t, string(body), "HTTP/1.1")
}

// smallBufferListener makes the server's send buffers tiny, so a client
// that does not read blocks the server's writes after a few acks.
type smallBufferListener struct{ net.Listener }

func (l smallBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// A client that sends frames but never reads must not hold a graceful stop:
// Shutdown ends every stream, and closes every inference session, within
// its context, though an ack write would wait 10 s.
func TestShutdownWithAClientThatNeverReads(t *testing.T) {
	backend := &domaintest.Backend{}
	h := httpapi.NewStreamHandler(httpapi.StreamHandlerConfig{
		Backend: backend, WriteTimeout: 10 * time.Second, Logger: slog.New(slog.DiscardHandler),
	})
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = smallBufferListener{srv.Listener}
	srv.Start()
	defer srv.Close()

	d := ws.Dialer{NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 2048)
			})
			return errors.Join(err, serr)
		}}
		return nd.DialContext(ctx, network, addr)
	}}
	conn, _, _, err := d.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"))
	require.NoError(t, err)
	defer conn.Close()

	// Send until the client's own writes stall: the server is then blocked
	// writing an ack and no longer reading.
	frame := wsFrame(t, make([]byte, 1024))
	stalled := false
	for range 100000 {
		require.NoError(t, conn.SetWriteDeadline(time.Now().Add(300*time.Millisecond)))
		if _, err := conn.Write(frame); err != nil {
			require.ErrorIs(t, err, os.ErrDeadlineExceeded)
			stalled = true
			break
		}
	}
	require.True(t, stalled, "the server never stopped reading")

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	require.NoError(t, h.Shutdown(ctx), "a stream blocked writing held the shutdown")
	require.Len(t, backend.Sessions(), 1)
	assert.Equal(t, 1, backend.Sessions()[0].Closes())
}

func wsFrame(t *testing.T, payload []byte) []byte {
	t.Helper()
	var b strings.Builder
	require.NoError(t, ws.WriteFrame(&b, ws.MaskFrameInPlace(ws.NewBinaryFrame(payload))))
	return []byte(b.String())
}
