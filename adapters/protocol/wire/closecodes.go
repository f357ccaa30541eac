package wire

// CloseCode is a WebSocket close status code (RFC 6455 section 7.4).
type CloseCode uint16

// The close codes Foresight sends or interprets.
const (
	CloseNormal          CloseCode = 1000
	CloseGoingAway       CloseCode = 1001
	CloseProtocolError   CloseCode = 1002
	CloseUnsupportedData CloseCode = 1003
	// CloseNoStatus is reported locally for a close frame without a code;
	// it is never sent.
	CloseNoStatus CloseCode = 1005
	// CloseAbnormal is reported locally when the connection dropped without
	// a close frame; it is never sent.
	CloseAbnormal        CloseCode = 1006
	CloseInvalidPayload  CloseCode = 1007
	ClosePolicyViolation CloseCode = 1008
	CloseMessageTooBig   CloseCode = 1009
	CloseInternalError   CloseCode = 1011
	CloseServiceRestart  CloseCode = 1012
	CloseTryAgainLater   CloseCode = 1013
	CloseBadGateway      CloseCode = 1014
)

// PeerMaySend reports whether a peer may put code in a close frame: RFC
// 6455's codes plus IANA's registered 1012–1014 (restart, try again later,
// bad gateway), which browsers and Python's websockets send, and the
// library and private ranges 3000–4999.
func (c CloseCode) PeerMaySend() bool {
	switch {
	case c >= 1000 && c <= 1003, c >= 1007 && c <= 1014, c >= 3000 && c <= 4999:
		return true
	}
	return false
}
