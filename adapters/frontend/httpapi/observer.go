package httpapi

import "github.com/foresight-vision/foresight/ports"

// Observer is told what the HTTP/WS front end and the streams behind it do,
// for metrics. Methods are called on hot paths: they must be cheap,
// non-blocking and safe for concurrent use.
type Observer interface {
	ports.StreamObserver
	// StreamOpened and StreamClosed bracket one /vision/stream connection;
	// code is the WebSocket close code sent or received (1006 when the
	// connection dropped without one).
	StreamOpened()
	StreamClosed(code int)
	// StreamRejected reports an upgrade refused before the stream started
	// (reason: "limit", "shutdown", "handshake", "bad_device").
	StreamRejected(reason string)
	// FrameReceived reports one binary message of n bytes; AckSent one ack.
	FrameReceived(n int)
	AckSent()
	// PokeSent reports one /poke/send outcome: "ok", "no_key", "bad_request"
	// or "upstream_error".
	PokeSent(outcome string)
}

// NopObserver is an Observer that ignores everything.
type NopObserver struct{ ports.NopObserver }

func (NopObserver) StreamOpened()         {}
func (NopObserver) StreamClosed(int)      {}
func (NopObserver) StreamRejected(string) {}
func (NopObserver) FrameReceived(int)     {}
func (NopObserver) AckSent()              {}
func (NopObserver) PokeSent(string)       {}
