package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/foresight-vision/foresight/adapters/answer/openaichat"
	"github.com/foresight-vision/foresight/adapters/frontend/access"
	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/adapters/observe/metrics"
	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/internal/settings"
	"github.com/foresight-vision/foresight/ports"
)

// AskSettings are the settings of POST /ask and of caption embeddings, as
// given; askChatConfig and embeddingsConfig apply the fallbacks.
type AskSettings struct {
	AskBaseURL string
	AskAPIKey  string
	AskModel   string
	AskTimeout time.Duration

	EmbeddingsBaseURL string
	EmbeddingsAPIKey  string
	EmbeddingsModel   string
	EmbeddingsBatch   int
}

// askSettings follow the server's own in Settings (see init).
var askSettings = []Setting{
	{Flag: "ask-base-url", Envs: []string{"FORESIGHT_ASK_BASE_URL"}, Help: "API root of the OpenAI-compatible server answering POST /ask (default: --openai-base-url)",
		Apply: func(c *Config, v string) error { c.AskBaseURL = v; return nil }},
	{Envs: []string{"FORESIGHT_ASK_API_KEY"}, Secret: true, Help: "bearer key of the ask model; unset falls back to FORESIGHT_OPENAI_API_KEY only when the ask model is served by the same host",
		Apply: func(c *Config, v string) error { c.AskAPIKey = v; return nil }},
	{Flag: "ask-model", Envs: []string{"FORESIGHT_ASK_MODEL"}, Help: "the model answering POST /ask (default: --openai-model); with neither, POST /ask answers 503",
		Apply: func(c *Config, v string) error { c.AskModel = v; return nil }},
	{Flag: "ask-timeout", Envs: []string{"FORESIGHT_ASK_TIMEOUT"}, Default: "60s", Help: "limit on one ask model call (a timeout answers 504)",
		Apply: settings.Duration(func(c *Config) *time.Duration { return &c.AskTimeout })},
	{Flag: "embeddings-base-url", Envs: []string{"FORESIGHT_EMBEDDINGS_BASE_URL"}, Help: "API root of the OpenAI-compatible server embedding captions (\"/embeddings\" is appended; default: --ask-base-url, then --openai-base-url)",
		Apply: func(c *Config, v string) error { c.EmbeddingsBaseURL = v; return nil }},
	{Envs: []string{"FORESIGHT_EMBEDDINGS_API_KEY"}, Secret: true, Help: "bearer key of the embeddings model; unset falls back to the ask key, then FORESIGHT_OPENAI_API_KEY, each only for the same host",
		Apply: func(c *Config, v string) error { c.EmbeddingsAPIKey = v; return nil }},
	{Flag: "embeddings-model", Envs: []string{"FORESIGHT_EMBEDDINGS_MODEL"}, Help: "embedding model; set, captions are embedded in the background and /ask retrieval is hybrid (words and meaning); unset, words only",
		Apply: func(c *Config, v string) error { c.EmbeddingsModel = v; return nil }},
	{Flag: "embeddings-batch", Envs: []string{"FORESIGHT_EMBEDDINGS_BATCH"}, Default: "64", Help: "captions embedded per request (min 1)",
		Apply: settings.IntAtLeast(1, func(c *Config) *int { return &c.EmbeddingsBatch })},
}

func init() {
	// Appended here rather than written into the table, so this feature
	// stays in its own file; --help and docs/configuration.md list them last.
	Settings = append(Settings, askSettings...)
}

func orElse(v, fallback string) string {
	if strings.TrimSpace(v) != "" {
		return v
	}
	return fallback
}

// askChatConfig is the ask model's configuration: each FORESIGHT_ASK_*
// setting falls back to the OpenAI backend's; the OpenAI key only where
// the ask model is served by the same host (as for the nudge model).
func (c Config) askChatConfig() openaichat.Config {
	baseURL := orElse(c.AskBaseURL, c.OpenAIBaseURL)
	fallbackKey := ""
	if sameHost(baseURL, c.OpenAIBaseURL) {
		fallbackKey = c.OpenAIAPIKey
	}
	return openaichat.Config{BaseURL: baseURL, APIKey: orElse(c.AskAPIKey, fallbackKey),
		Model: orElse(c.AskModel, c.OpenAIModel), Timeout: c.AskTimeout}
}

// embeddingsConfig is the embeddings model's: the base URL falls back to
// the ask model's; the key to the ask model's, then the OpenAI backend's,
// each only for its own host. An empty Model means embeddings are off.
func (c Config) embeddingsConfig() openaichat.Config {
	ask := c.askChatConfig()
	baseURL := orElse(c.EmbeddingsBaseURL, ask.BaseURL)
	key := c.EmbeddingsAPIKey
	if key == "" && sameHost(baseURL, ask.BaseURL) {
		key = ask.APIKey
	}
	if key == "" && sameHost(baseURL, c.OpenAIBaseURL) {
		key = c.OpenAIAPIKey
	}
	return openaichat.Config{BaseURL: baseURL, APIKey: key, Model: strings.TrimSpace(c.EmbeddingsModel), Timeout: c.AskTimeout}
}

// askStore is what asking needs of the caption store.
type askStore interface {
	ports.CaptionReader
	ports.CaptionSearcher
	ports.CaptionVectorStore
}

// asking is POST /ask and the embeddings indexer as the app runs them:
// the clients are built with the server, the asker once the store is open.
type asking struct {
	cfg    Config
	mem    *captionMemory
	m      *metrics.Metrics
	logger *slog.Logger

	chat     *openaichat.Chat     // nil: no ask model
	embedder *openaichat.Embedder // nil: embeddings off

	// Set by open, before the server listens.
	handler http.Handler
	indexer *domain.Indexer
}

func newAsking(cfg Config, mem *captionMemory, m *metrics.Metrics, logger *slog.Logger) (*asking, error) {
	a := &asking{cfg: cfg, mem: mem, m: m, logger: logger}
	if chatCfg := cfg.askChatConfig(); chatCfg.Model != "" && chatCfg.BaseURL != "" {
		chat, err := openaichat.NewChat(chatCfg)
		if err != nil {
			return nil, fmt.Errorf("ask: %w", err)
		}
		a.chat = chat
	}
	if embCfg := cfg.embeddingsConfig(); embCfg.Model != "" {
		emb, err := openaichat.NewEmbedder(embCfg)
		if err != nil {
			return nil, fmt.Errorf("embeddings: %w", err)
		}
		a.embedder = emb
	}
	return a, nil
}

// open builds the asker on the open store and starts the indexer.
func (a *asking) open(context.Context) error {
	store, _ := a.mem.store.(askStore)
	cfg := httpapi.AskConfig{Logger: a.logger}
	switch {
	case store == nil:
		cfg.Unavailable = "caption store is off (FORESIGHT_DATABASE_URL=none): nothing to ask about"
	case a.chat == nil:
		cfg.Unavailable = "no ask model is configured: set FORESIGHT_ASK_MODEL (or FORESIGHT_OPENAI_MODEL)"
	default:
		p := domain.AskPorts{Search: store, Recent: store, Chat: a.chat}
		if a.embedder != nil {
			p.Vectors, p.Embedder = store, a.embedder
		}
		askCfg := domain.AskConfig{Logger: a.logger}
		if a.m != nil {
			askCfg.Observer = metrics.NewAskMetrics(a.m.Registry())
		}
		asker, err := domain.NewAsker(p, askCfg)
		if err != nil {
			return err
		}
		cfg.Asker = asker
	}
	a.handler = httpapi.NewAskHandler(cfg)
	if store != nil && a.embedder != nil {
		ixCfg := domain.IndexerConfig{Batch: a.cfg.EmbeddingsBatch, Logger: a.logger}
		if a.m != nil {
			ixCfg.Observer = metrics.NewIndexerMetrics(a.m.Registry())
		}
		a.indexer = domain.StartIndexer(store, a.embedder, ixCfg)
		a.mem.onStored(a.indexer.Wake)
	}
	chatCfg, embCfg := a.cfg.askChatConfig(), a.cfg.embeddingsConfig()
	a.logger.Info("ask", "on", cfg.Asker != nil, "model", chatCfg.Model, "embeddings_model", embCfg.Model,
		"retrieval", map[bool]string{true: domain.RetrievalHybrid, false: domain.RetrievalText}[a.indexer != nil])
	return nil
}

// ServeHTTP is POST /ask.
func (a *asking) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if a.handler == nil {
		access.WriteDetail(w, http.StatusServiceUnavailable, "not started")
		return
	}
	a.handler.ServeHTTP(w, r)
}

// stopSteps stop the indexer before the store closes, then release the
// clients' connections.
func (a *asking) stopSteps() []stopStep {
	return []stopStep{{"embeddings indexer", func(ctx context.Context) error {
		if a.indexer != nil {
			if err := a.indexer.Stop(ctx); err != nil {
				return err
			}
		}
		if a.chat != nil {
			a.chat.Close()
		}
		if a.embedder != nil {
			a.embedder.Close()
		}
		return nil
	}}}
}

// insertBefore puts extra into steps before the step named name (at the
// end when there is none).
func insertBefore(steps []stopStep, name string, extra ...stopStep) []stopStep {
	for i, s := range steps {
		if s.name == name {
			return append(append(append([]stopStep(nil), steps[:i]...), extra...), steps[i:]...)
		}
	}
	return append(steps, extra...)
}
