package wsframe

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/foresight-vision/foresight/adapters/protocol/wire"
)

// Reasons of the close frames this package sends.
const (
	ReasonInvalidCloseCode   = "invalid close code"
	ReasonInvalidCloseReason = "close reason is not valid UTF-8"
)

// CloseError ends a connection with a close frame to send: Code and Reason
// go to the peer.
type CloseError struct {
	Code   wire.CloseCode
	Reason string
	// unread is the payload of the refused frame still on the wire, skipped
	// before waiting for the peer's close; -1 means the stream is out of
	// step, so bytes are discarded raw.
	unread int64
}

func (e *CloseError) Error() string { return fmt.Sprintf("close %d: %s", e.Code, e.Reason) }

// ParseClose reads a close frame's payload. It returns the code and reason
// as sent (code 1005 when the payload is empty) and, when the frame breaks
// RFC 6455 (a 1-byte payload or one over 125 bytes, a code a peer may not send, a reason that is
// not UTF-8), the close to answer with: 1002 or 1007.
func ParseClose(payload []byte) (code wire.CloseCode, reason string, bad *CloseError) {
	switch len(payload) {
	case 0:
		return wire.CloseNoStatus, "", nil
	case 1:
		return 0, "", &CloseError{Code: wire.CloseProtocolError, Reason: ReasonInvalidCloseCode}
	}
	if len(payload) > maxControlPayload {
		// Unreachable from the wire (headers are checked first), refused
		// so ParseClose holds on its own.
		return 0, "", &CloseError{Code: wire.CloseProtocolError, Reason: ReasonBadControl}
	}
	code = wire.CloseCode(binary.BigEndian.Uint16(payload))
	reason = string(payload[2:])
	switch {
	case !code.PeerMaySend():
		// RFC 6455 7.4: a code a peer may not send is a protocol error.
		return code, reason, &CloseError{Code: wire.CloseProtocolError, Reason: ReasonInvalidCloseCode}
	case !utf8.ValidString(reason):
		// RFC 6455 8.1: text that is not UTF-8 fails the connection with 1007.
		return code, reason, &CloseError{Code: wire.CloseInvalidPayload, Reason: ReasonInvalidCloseReason}
	}
	return code, reason, nil
}

// CloseBody is the payload of a close frame with code and reason; the
// reason is cut (at a rune boundary) so the payload fits a control frame.
func CloseBody(code wire.CloseCode, reason string) []byte {
	const maxReason = maxControlPayload - 2
	if len(reason) > maxReason {
		cut := maxReason
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut]
	}
	b := make([]byte, 2+len(reason))
	binary.BigEndian.PutUint16(b, uint16(code))
	copy(b[2:], reason)
	return b
}
