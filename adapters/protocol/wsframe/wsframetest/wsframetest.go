// Package wsframetest reads WebSocket frames in tests. ws.ReadFrame is
// deprecated because it allocates whatever payload length the peer
// declares; a test reading a server under test should fail on a runaway
// length rather than run out of memory.
package wsframetest

import (
	"fmt"
	"io"

	"github.com/gobwas/ws"
)

// MaxPayload bounds a frame's payload: far above any ack, close or pong
// the tests exchange.
const MaxPayload = 1 << 20

// ReadFrame reads one frame as ws.ReadFrame does (the payload is left
// masked when the header says so), refusing a payload over MaxPayload. A
// clean end before the header is io.EOF, unwrapped.
func ReadFrame(r io.Reader) (ws.Frame, error) {
	header, err := ws.ReadHeader(r)
	if err != nil {
		return ws.Frame{}, err
	}
	if header.Length > MaxPayload {
		return ws.Frame{Header: header}, fmt.Errorf("frame payload of %d bytes is over the tests' %d", header.Length, MaxPayload)
	}
	if header.Length == 0 {
		return ws.Frame{Header: header}, nil // a nil payload, as ws.ReadFrame gives
	}
	payload := make([]byte, header.Length)
	if _, err := io.ReadFull(r, payload); err != nil {
		return ws.Frame{Header: header}, fmt.Errorf("read %d-byte frame payload: %w", header.Length, err)
	}
	return ws.Frame{Header: header, Payload: payload}, nil
}
