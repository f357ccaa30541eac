// Package noop is the inference backend used when no model is configured.
// Streams are acked as usual and keep no frames; acks carry no caption.
package noop

import (
	"context"

	"github.com/foresight-vision/foresight/ports"
)

// Backend has no model: every stream runs without inference.
type Backend struct{}

// OpenSession implements ports.InferenceBackend: it always answers
// ports.ErrNoInference, so the domain keeps no frames for a model.
func (Backend) OpenSession(context.Context, ports.SessionRequest) (ports.InferenceSession, error) {
	return nil, ports.ErrNoInference
}
