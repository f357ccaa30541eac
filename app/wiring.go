package app

import (
	"fmt"
	"log/slog"

	"go.uber.org/fx"

	"github.com/foresight-vision/foresight/adapters/httpapi"
	"github.com/foresight-vision/foresight/adapters/modal"
	"github.com/foresight-vision/foresight/adapters/noop"
	"github.com/foresight-vision/foresight/ports"
)

// inferenceBackend is the backend streams open their sessions on.
type inferenceBackend = ports.InferenceBackend

// newInferenceBackend picks the model backend. The Modal backend is used
// even without server credentials, because trusted client headers (or a
// gateway in front) may supply them per stream; without any, its sessions
// are no-ops.
func newInferenceBackend(lc fx.Lifecycle, cfg Config, logger *slog.Logger) (inferenceBackend, error) {
	if cfg.InferenceBackend == modal.PresetNone {
		return noop.Backend{}, nil
	}
	mc := modal.DefaultConfig()
	mc.Preset = cfg.InferenceBackend
	mc.TokenID = cfg.ModalTokenID
	mc.TokenSecret = cfg.ModalTokenSecret
	mc.AppName = cfg.ModalAppName
	mc.ClassName = cfg.ModalClassName
	mc.Environment = cfg.ModalEnvironment
	mc.SendSessionID = cfg.ModalSendSessionID
	mc.Logger = logger
	backend, err := modal.New(mc)
	if err != nil {
		return nil, fmt.Errorf("modal backend: %w", err)
	}
	// Appended before the server's hook, so it runs after the streams (and
	// their sessions) have closed.
	lc.Append(fx.StopHook(backend.Close))
	return backend, nil
}

func newObserver() httpapi.Observer { return httpapi.NopObserver{} }

func extraRoutes(cfg Config, obs httpapi.Observer) []httpapi.Route { return nil }
