// Package openai is an inference backend (ports.InferenceBackend) for any
// server that speaks OpenAI's chat-completions API with image parts: a local
// Ollama, llama.cpp's llama-server, vLLM, SGLang, or a hosted API (OpenAI,
// Gemini's OpenAI-compatible endpoint, OpenRouter, Groq, Together). It
// sends one request per chunk whose prompt follows the Gemma 3 Modal app's
// (adapters/inference/modal/remote/vlm_logic.py), so captions read alike whichever
// backend runs, and keeps each stream's caption history apart.
package openai

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"time"

	"github.com/foresight-vision/foresight/ports"
)

// Defaults of Config.
const (
	DefaultBaseURL        = "https://api.openai.com/v1"
	DefaultMaxTokens      = 64  // the Gemma app's max_new_tokens
	DefaultTemperature    = 0.2 // the Gemma app's temperature
	DefaultCaptionHistory = 6   // the Gemma app's max_history_entries
	// DefaultMaxResponseBytes bounds a reply body; a 64-token caption
	// needs a few hundred bytes.
	DefaultMaxResponseBytes = 1 << 20
	// DefaultRateLimitWait is how long a stream waits after a 429 that
	// gave no usable Retry-After.
	DefaultRateLimitWait = time.Second
	// DefaultMaxRetryAfter caps the wait a Retry-After can impose, so a
	// wrong header cannot silence a stream for hours.
	DefaultMaxRetryAfter = 5 * time.Minute
	// DefaultDialTimeout bounds connecting and the TLS handshake; the whole
	// call is bounded by the domain's inference timeout through ctx.
	DefaultDialTimeout = 10 * time.Second
)

// Config configures a Backend. Only Model is required. Temperature and
// CaptionHistory mean what their settings mean, zero included (greedy, no
// history); the other fields have no meaningful zero and take their default
// when left zero. DefaultConfig carries every default. There is no call
// timeout here: the domain bounds each call through its context
// (FORESIGHT_INFERENCE_TIMEOUT).
type Config struct {
	// BaseURL is the API root that "/chat/completions" is appended to
	// (FORESIGHT_OPENAI_BASE_URL, falling back to OPENAI_BASE_URL).
	// Default DefaultBaseURL. Must be http or https.
	BaseURL string
	// APIKey is sent as "Authorization: Bearer <key>"
	// (FORESIGHT_OPENAI_API_KEY, falling back to OPENAI_API_KEY). Empty
	// means no Authorization header at all, as local servers want.
	APIKey string
	// Model names the model on the server (FORESIGHT_OPENAI_MODEL). Required.
	Model string
	// MaxTokens is the reply's max_tokens (FORESIGHT_OPENAI_MAX_TOKENS).
	// Zero or less means DefaultMaxTokens.
	MaxTokens int
	// Temperature is the sampling temperature (FORESIGHT_OPENAI_TEMPERATURE);
	// zero is greedy and is sent as 0. Negative is refused.
	Temperature float64
	// CaptionHistory is how many of the stream's prior captions each prompt
	// shows (FORESIGHT_CAPTION_HISTORY); zero shows none. Negative is refused.
	CaptionHistory int
	// Prompt is the task when a chunk brings none (VISION_PROMPT). Default
	// ports.DefaultPrompt.
	Prompt string
	// MaxResponseBytes bounds a reply body. Zero or less means
	// DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// MaxRetryAfter caps the wait after a 429. Zero or less means
	// DefaultMaxRetryAfter.
	MaxRetryAfter time.Duration
	// DialTimeout bounds connecting and the TLS handshake. Zero or less
	// means DefaultDialTimeout. Ignored with HTTPClient.
	DialTimeout time.Duration
	// HTTPClient, when set, carries the requests (tests, proxies); nil
	// means the backend's own client, released by Backend.Close.
	HTTPClient *http.Client
	// Now tells the time that Retry-After waits are measured against; nil
	// means time.Now. Tests pass a clock they move.
	Now func() time.Time
}

// DefaultConfig is a Config holding every default (the settings' defaults:
// the Gemma app's sampling and history); set Model, and BaseURL for a server
// other than OpenAI's.
func DefaultConfig() Config {
	return Config{
		BaseURL:          DefaultBaseURL,
		MaxTokens:        DefaultMaxTokens,
		Temperature:      DefaultTemperature,
		CaptionHistory:   DefaultCaptionHistory,
		Prompt:           ports.DefaultPrompt,
		MaxResponseBytes: DefaultMaxResponseBytes,
		MaxRetryAfter:    DefaultMaxRetryAfter,
		DialTimeout:      DefaultDialTimeout,
	}
}

// ErrNoModel is returned by New when Config.Model is empty.
var ErrNoModel = errors.New("openai backend: no model configured (set FORESIGHT_OPENAI_MODEL)")

// withDefaults fills the zero fields that have no meaningful zero and
// checks the rest.
func (c Config) withDefaults() (Config, *url.URL, error) {
	if c.Model == "" {
		return c, nil, ErrNoModel
	}
	if c.BaseURL == "" {
		c.BaseURL = DefaultBaseURL
	}
	base, err := url.Parse(c.BaseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		// The URL itself is not repeated: it may carry credentials.
		return c, nil, errors.New("openai backend: base URL must be an absolute http or https URL")
	}
	if base.User != nil {
		return c, nil, errors.New("openai backend: base URL must not carry credentials (use the API key setting)")
	}
	if c.MaxTokens <= 0 {
		c.MaxTokens = DefaultMaxTokens
	}
	if c.Temperature < 0 || math.IsNaN(c.Temperature) || math.IsInf(c.Temperature, 0) {
		return c, nil, fmt.Errorf("openai backend: temperature %v must be a number of at least 0 (0 is greedy)", c.Temperature)
	}
	if c.CaptionHistory < 0 {
		return c, nil, fmt.Errorf("openai backend: caption history %d must be at least 0 (0 shows none)", c.CaptionHistory)
	}
	if c.Prompt == "" {
		c.Prompt = ports.DefaultPrompt
	}
	if c.MaxResponseBytes <= 0 {
		c.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if c.MaxRetryAfter <= 0 {
		c.MaxRetryAfter = DefaultMaxRetryAfter
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxTokens > 1<<20 {
		return c, nil, fmt.Errorf("openai backend: max tokens %d is too large", c.MaxTokens)
	}
	return c, base, nil
}
