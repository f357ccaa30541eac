package app

import (
	"github.com/foresight-vision/foresight/adapters/httpapi"
	"github.com/foresight-vision/foresight/adapters/noop"
	"github.com/foresight-vision/foresight/ports"
)

// inferenceBackend is the backend streams open their sessions on.
type inferenceBackend = ports.InferenceBackend

func newInferenceBackend(cfg Config) inferenceBackend {
	return noop.Backend{}
}

func newObserver() httpapi.Observer { return httpapi.NopObserver{} }

func extraRoutes(cfg Config, obs httpapi.Observer) []httpapi.Route { return nil }
