// Package noop is the inference backend used when no model is configured:
// every chunk gets an empty result, so acks carry no caption.
package noop

import (
	"context"

	"github.com/foresight-vision/foresight/ports"
)

// Backend opens no-op sessions.
type Backend struct{}

// OpenSession implements ports.InferenceBackend.
func (Backend) OpenSession(context.Context, ports.SessionRequest) (ports.InferenceSession, error) {
	return Session{}, nil
}

// Session answers every chunk with an empty result.
type Session struct{}

// InferChunk implements ports.InferenceSession.
func (Session) InferChunk(context.Context, ports.Chunk) (ports.Result, error) {
	return ports.Result{}, nil
}

// Close implements ports.InferenceSession.
func (Session) Close(context.Context) error { return nil }
