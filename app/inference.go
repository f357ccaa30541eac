package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"

	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/adapters/inference/modal"
	"github.com/foresight-vision/foresight/adapters/inference/modal/modalheader"
	"github.com/foresight-vision/foresight/adapters/inference/noop"
	"github.com/foresight-vision/foresight/adapters/inference/openai"
	"github.com/foresight-vision/foresight/adapters/observe/metrics"
	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/ports"
)

// FORESIGHT_INFERENCE_BACKEND values the app chooses itself; the others
// are Modal presets (modal.PresetGemma3, modal.PresetStreamingVLM).
const (
	// BackendOpenAI is the OpenAI-compatible backend (adapters/inference/openai).
	BackendOpenAI = "openai"
	// BackendNone runs no model (adapters/inference/noop): streams are
	// acked and keep no frames.
	BackendNone = "none"
)

// Version is the server's version as /status reports it. A release build
// sets it with -ldflags "-X github.com/foresight-vision/foresight/app.Version=v1.2.3";
// unset, it comes from the build info (module version, else VCS revision).
var Version string

// inference is the backend streams open their sessions on, how a stream's
// upgrade request becomes its vetted per-stream options, and how the
// backend is closed at stop.
type inference struct {
	backend        ports.InferenceBackend
	sessionOptions func(*http.Request) map[string]string // nil: none
	close          func() error
}

// inferenceInfo says which backend and model the server runs, for the
// start-up line, GET /status and the labels kept with each caption. It
// holds no secret.
type inferenceInfo struct {
	// Backend is FORESIGHT_INFERENCE_BACKEND: gemma3, streamingvlm, openai or none.
	Backend string
	// Model is the OpenAI-compatible model name, or the Modal app/class.
	Model string
	// BaseURLHost is the OpenAI-compatible server's host (never its URL,
	// which could carry a token in its query); empty for Modal.
	BaseURLHost string
	// Captions is false when no chunk can reach a model with the server's
	// own configuration (backend none, or Modal without credentials).
	Captions bool
}

// inferenceInfoOf describes what cfg runs; it reads only cfg.
func inferenceInfoOf(cfg Config) inferenceInfo {
	info := inferenceInfo{Backend: cfg.InferenceBackend}
	switch cfg.InferenceBackend {
	case BackendNone:
	case BackendOpenAI:
		info.Model = cfg.OpenAIModel
		if u, err := url.Parse(cfg.OpenAIBaseURL); err == nil {
			info.BaseURLHost = u.Host
		}
		info.Captions = cfg.OpenAIModel != ""
	default:
		app, class := modal.Config{Preset: cfg.InferenceBackend, AppName: cfg.ModalAppName, ClassName: cfg.ModalClassName}.Deployed()
		info.Model = app + "/" + class
		info.Captions = cfg.ModalHeld()
	}
	return info
}

// captionsOffHint is how to turn captions on, for the start-up line.
const captionsOffHint = "set FORESIGHT_INFERENCE_BACKEND=openai with FORESIGHT_OPENAI_MODEL and FORESIGHT_OPENAI_BASE_URL " +
	"(any OpenAI-compatible server: docs/providers.md), or MODAL_TOKEN_ID and MODAL_TOKEN_SECRET for Modal"

// logInference writes the one start-up line that says what the server runs.
func logInference(cfg Config, logger *slog.Logger) {
	info := inferenceInfoOf(cfg)
	attrs := []any{"backend", info.Backend}
	if info.Model != "" {
		attrs = append(attrs, "model", info.Model)
	}
	if info.BaseURLHost != "" {
		attrs = append(attrs, "host", info.BaseURLHost)
	}
	attrs = append(attrs, "max_frames_per_chunk", cfg.MaxFramesPerChunk)
	if info.Captions {
		logger.Info("inference", append(attrs, "captions", "on")...)
		return
	}
	attrs = append(attrs, "captions", "off", "hint", captionsOffHint)
	if cfg.InferenceBackend != BackendNone && cfg.trustPolicy().HonourClient(false) {
		attrs = append(attrs, "note", "a stream may still bring Modal credentials in x-modal-* headers")
	}
	logger.Warn("inference", attrs...)
}

// checkInference rejects a configuration whose backend cannot start.
func (c Config) checkInference() error {
	if c.InferenceBackend == BackendOpenAI && c.OpenAIModel == "" {
		return errors.New("config: FORESIGHT_INFERENCE_BACKEND=openai needs a model: set FORESIGHT_OPENAI_MODEL (or --openai-model), e.g. gemma3:4b for Ollama")
	}
	return nil
}

// defaultFramesPerChunk is FORESIGHT_MAX_FRAMES_PER_CHUNK left unset, which
// depends on the backend: every frame (0) for the legacy StreamingVLM app,
// which was built to see them all; else the Gemma app's limit.
func defaultFramesPerChunk(backend string) int {
	if backend == modal.PresetStreamingVLM {
		return 0
	}
	return domain.DefaultMaxFramesPerChunk
}

// newInferenceBackend picks the model backend. The Modal backend is used
// even without server credentials, because trusted client headers (or a
// gateway in front) may supply them per stream; without any, its sessions
// are no-ops. m, when metrics are on, watches the openai backend's counters.
func newInferenceBackend(cfg Config, m *metrics.Metrics, logger *slog.Logger) (inference, error) {
	if err := cfg.checkInference(); err != nil {
		return inference{}, err // a Config built by hand skips LoadConfig
	}
	logInference(cfg, logger)
	switch cfg.InferenceBackend {
	case BackendNone:
		return inference{backend: noop.Backend{}, close: func() error { return nil }}, nil
	case BackendOpenAI:
		return newOpenAIBackend(cfg, m, logger)
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
		return inference{}, fmt.Errorf("modal backend: %w", err)
	}
	inf := inference{backend: backend, close: backend.Close}
	// A stranger must not swap the model or spend another account when the
	// server holds its own credentials: the trust policy decides.
	if cfg.trustPolicy().HonourClient(cfg.ModalHeld()) {
		inf.sessionOptions = func(r *http.Request) map[string]string { return modalheader.SessionOptions(r.Header) }
	}
	return inf, nil
}

func newOpenAIBackend(cfg Config, m *metrics.Metrics, logger *slog.Logger) (inference, error) {
	oc := openai.Config{
		BaseURL:        cfg.OpenAIBaseURL,
		APIKey:         cfg.OpenAIAPIKey,
		Model:          cfg.OpenAIModel,
		MaxTokens:      cfg.OpenAIMaxTokens,
		Temperature:    cfg.OpenAITemperature,
		CaptionHistory: cfg.CaptionHistory,
		Prompt:         cfg.Prompt,
	}
	backend, err := openai.New(oc, logger)
	if err != nil {
		return inference{}, fmt.Errorf("openai backend: %w", err)
	}
	if m != nil {
		m.WatchInferenceBackend(func() (rateLimited, droppedChunks int64) {
			s := backend.Stats()
			return s.RateLimitedReplies, s.DroppedChunks
		})
	}
	return inference{backend: backend, close: backend.Close}, nil
}

// statusOf is the body of GET /status for cfg: what the server runs, never
// a secret.
func statusOf(cfg Config) httpapi.Status {
	info := inferenceInfoOf(cfg)
	return httpapi.Status{
		Backend:           info.Backend,
		Model:             info.Model,
		BaseURLHost:       info.BaseURLHost,
		Captions:          info.Captions,
		ChunkSeconds:      cfg.ChunkInterval.Seconds(),
		MaxFramesPerChunk: cfg.MaxFramesPerChunk,
		Version:           serverVersion(),
	}
}

// serverVersion is Version when set, else the main module's version, else
// its VCS revision (with "+dirty" for a modified tree), else "devel".
func serverVersion() string {
	if Version != "" {
		return Version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if rev == "" {
		return "devel"
	}
	return rev[:min(len(rev), 12)] + dirty
}
