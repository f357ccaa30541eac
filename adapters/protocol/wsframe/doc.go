// Package wsframe is Foresight's RFC 6455 framing on top of the gobwas/ws
// codec, shared by the server (adapters/frontend/httpapi) and the client
// (adapters/protocol/visionclient): frame header checks, control frames, close codes
// and reasons, payload reads charged to a shared memory budget, the close
// handshake, idle and write deadlines.
//
// Server reads one client connection's messages; it knows nothing of
// streams, acks or inference. The client side uses the smaller helpers
// (AppendFrame, ParseClose, CloseBody).
package wsframe
