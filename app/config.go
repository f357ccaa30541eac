package app

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/foresight-vision/foresight/adapters/decide/nudgellm"
	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/adapters/frontend/trust"
	"github.com/foresight-vision/foresight/adapters/inference/modal"
	"github.com/foresight-vision/foresight/adapters/inference/openai"
	"github.com/foresight-vision/foresight/adapters/protocol/wsframe"
	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/internal/settings"
)

// Config is everything the server reads from its environment and flags.
// Fields are documented in Settings (and docs/configuration.md).
type Config struct {
	Addr            string
	ShutdownTimeout time.Duration
	LogLevel        slog.Level
	LogFormat       string

	ChunkInterval   time.Duration
	MaxBufferFrames int
	MaxBufferBytes  int64
	// MaxTotalBufferBytes is shared by all streams (a domain.MemoryBudget).
	MaxTotalBufferBytes int64
	// MemoryLimit is the Go runtime's soft memory limit in bytes:
	// MemoryLimitAuto derives it from MaxTotalBufferBytes, 0 leaves it off.
	MemoryLimit      int64
	Prompt           string
	InferenceTimeout time.Duration
	MaxFrameBytes    int64
	IdleTimeout      time.Duration
	MaxStreams       int

	// DatabaseURL picks the caption store: sqlite:<path>, postgres://…, or
	// none (see DatabaseKind).
	DatabaseURL      string
	CaptionRetention time.Duration // 0 keeps captions forever
	CaptionQueue     int
	// BiometricQueue bounds the biometric windows waiting for the store
	// (FORESIGHT_BIOMETRIC_QUEUE); past it uploads are refused with 503.
	BiometricQueue int

	// The scene gate (domain.SceneConfig); see docs/protocol.md.
	SkipUnchanged     bool
	ChangeThreshold   int
	MaxSkip           time.Duration
	RejectUnusable    bool
	DarkLuma          float64 // 0: no dark test
	BlurSharpness     float64 // 0: no blur test
	SceneSampleFrames int

	PokeURL     string
	PokeTimeout time.Duration
	PokeAPIKey  string
	// SecretKey seals each device's own Poke key in the store;
	// SecretKeyPrevious still opens keys sealed before a rotation
	// (app/devices.go, docs/security.md).
	SecretKey         string
	SecretKeyPrevious string

	MagicWord string
	// CursorSecret keys the seal on /captions and /interventions cursors;
	// empty: a random key per process.
	CursorSecret           string
	PublicPaths            []string
	TrustClientCredentials bool
	// Per-wearer access (app/access.go, docs/security.md).
	RequireTokens       bool
	ManualRunsPerMinute int
	AsksPerMinute       int

	InferenceBackend   string
	ModalTokenID       string
	ModalTokenSecret   string
	ModalAppName       string
	ModalClassName     string
	ModalEnvironment   string
	ModalSendSessionID bool

	// The OpenAI-compatible backend (app/inference.go).
	OpenAIBaseURL     string
	OpenAIAPIKey      string
	OpenAIModel       string
	OpenAIMaxTokens   int
	OpenAITemperature float64
	CaptionHistory    int
	// MaxFramesPerChunk bounds the frames sent per chunk; 0 is all. Unset,
	// it is the backend's default (defaultFramesPerChunk).
	MaxFramesPerChunk int

	// The nudge loop (app/nudges.go, docs/nudges.md). The LLM fields are
	// as given; nudgeLLMConfig applies the fallbacks to the OpenAI ones.
	Nudges                 string // NudgesOff, NudgesRules or NudgesLLM
	NudgeInterval          time.Duration
	NudgeWindow            time.Duration // 0: the interval
	NudgeCooldown          time.Duration // 0: none
	NudgeRules             string
	NudgePrefix            string
	NudgePrompt            string // empty: nudgellm.DefaultPrompt
	NudgeLLMBaseURL        string
	NudgeLLMAPIKey         string
	NudgeLLMModel          string
	NudgeLLMResponseFormat string

	Metrics bool
	Pprof   bool

	// POST /ask and caption embeddings (app/ask.go).
	AskSettings
}

// Values of Config.Nudges.
const (
	NudgesOff   = "off"
	NudgesRules = "rules"
	NudgesLLM   = "llm"
)

// Setting is one configuration knob of `foresight serve` (internal/settings).
type Setting = settings.Setting[Config]

// Settings lists every knob of `foresight serve`, in the order --help and
// docs/configuration.md show them.
var Settings = []Setting{
	{Flag: "addr", Envs: []string{"FORESIGHT_ADDR"}, Default: ":8080", Help: "listen address; when unset and PORT is set, \":$PORT\"",
		Fallback: func(getenv func(string) string) (string, string) {
			if port := strings.TrimSpace(getenv("PORT")); port != "" {
				return ":" + port, "PORT"
			}
			return "", ""
		},
		Apply: func(c *Config, v string) error { c.Addr = v; return nil }},
	{Flag: "shutdown-timeout", Envs: []string{"FORESIGHT_SHUTDOWN_TIMEOUT"}, Default: "15s", Help: "graceful shutdown limit on SIGINT/SIGTERM",
		Apply: settings.Duration(func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
	{Flag: "log-level", Envs: []string{"FORESIGHT_LOG_LEVEL"}, Default: "info", Help: "debug, info, warn or error",
		Apply: func(c *Config, v string) error { return c.LogLevel.UnmarshalText([]byte(v)) }},
	{Flag: "log-format", Envs: []string{"FORESIGHT_LOG_FORMAT"}, Default: "text", Help: "text or json",
		Apply: settings.OneOf(func(c *Config) *string { return &c.LogFormat }, "text", "json")},

	{Flag: "chunk-seconds", Envs: []string{"VISION_CHUNK_SECONDS"}, Default: "1.0", Help: "least seconds between chunk cuts (min 0)",
		Apply: func(c *Config, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return fmt.Errorf("not a number of seconds: %q", v)
			}
			c.ChunkInterval = time.Duration(max(f, 0) * float64(time.Second))
			return nil
		}},
	{Flag: "max-buffer-frames", Envs: []string{"VISION_MAX_BUFFER_FRAMES"}, Default: "120", Help: "frames kept for the next chunk, oldest dropped first (min 1)",
		Apply: func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("not a whole number: %q", v)
			}
			c.MaxBufferFrames = max(n, 1)
			return nil
		}},
	{Flag: "max-buffer-bytes", Envs: []string{"VISION_MAX_BUFFER_BYTES"}, Default: "67108864", Help: "bytes kept for the next chunk (64 MiB), oldest dropped first",
		Apply: settings.PositiveInt64(func(c *Config) *int64 { return &c.MaxBufferBytes })},
	{Flag: "max-total-buffer-bytes", Envs: []string{"FORESIGHT_MAX_TOTAL_BUFFER_BYTES"}, Default: "2147483648", Help: "frame bytes all streams together may hold (2 GiB): buffers, chunks in flight, messages being read",
		Apply: settings.PositiveInt64(func(c *Config) *int64 { return &c.MaxTotalBufferBytes })},
	{Flag: "memory-limit", Envs: []string{"FORESIGHT_MEMORY_LIMIT"}, Default: "auto", Help: "Go soft memory limit in bytes, so the collector keeps RSS near the frame budget: auto (1.125 × the total buffer bytes + 32 MiB), off, or a number; GOMEMLIMIT, when set, wins",
		Apply: func(c *Config, v string) error {
			switch strings.ToLower(strings.TrimSpace(v)) {
			case "auto":
				c.MemoryLimit = MemoryLimitAuto
				return nil
			case "off", "0":
				c.MemoryLimit = 0
				return nil
			}
			return settings.PositiveInt64(func(c *Config) *int64 { return &c.MemoryLimit })(c, v)
		}},
	{Flag: "prompt", Envs: []string{"VISION_PROMPT"}, Default: domain.DefaultPrompt, Help: "instruction sent with every chunk",
		Apply: func(c *Config, v string) error { c.Prompt = v; return nil }},
	{Flag: "inference-timeout", Envs: []string{"FORESIGHT_INFERENCE_TIMEOUT"}, Default: "30s", Help: "limit on opening an inference session and on each call",
		Apply: settings.Duration(func(c *Config) *time.Duration { return &c.InferenceTimeout })},
	{Flag: "max-frame-bytes", Envs: []string{"FORESIGHT_MAX_FRAME_BYTES"}, Default: "16777216", Help: "largest WebSocket message (16 MiB); larger gets close 1009",
		Apply: settings.PositiveInt64(func(c *Config) *int64 { return &c.MaxFrameBytes })},
	{Flag: "ws-idle-timeout", Envs: []string{"FORESIGHT_WS_IDLE_TIMEOUT"}, Default: "60s", Help: "close a stream silent this long",
		Apply: settings.Duration(func(c *Config) *time.Duration { return &c.IdleTimeout })},
	{Flag: "max-streams", Envs: []string{"FORESIGHT_MAX_STREAMS"}, Default: "10000", Help: "concurrent streams; more get 503",
		Apply: settings.IntAtLeast(1, func(c *Config) *int { return &c.MaxStreams })},

	{Flag: "database-url", Envs: []string{"FORESIGHT_DATABASE_URL"}, Default: DefaultDatabaseURL, Help: "caption store: sqlite:<path> (folder created), postgres://… or postgresql://…, or none to keep nothing",
		Apply: func(c *Config, v string) error {
			if _, _, err := ParseDatabaseURL(v); err != nil {
				return err
			}
			c.DatabaseURL = v
			return nil
		}},
	{Flag: "caption-retention", Envs: []string{"FORESIGHT_CAPTION_RETENTION"}, Default: "720h", Help: "delete stored captions older than this; 0 keeps them forever",
		Apply: settings.NonNegativeDuration(func(c *Config) *time.Duration { return &c.CaptionRetention })},
	{Flag: "caption-queue", Envs: []string{"FORESIGHT_CAPTION_QUEUE"}, Default: "10000", Help: "captions held in memory while the store is slow or down; past it the oldest are dropped",
		Apply: settings.IntAtLeast(1, func(c *Config) *int { return &c.CaptionQueue })},
	{Flag: "biometric-queue", Envs: []string{"FORESIGHT_BIOMETRIC_QUEUE"}, Default: "10000", Help: "biometric windows held in memory while the store is slow or down; past it uploads are answered 503",
		Apply: settings.IntAtLeast(1, func(c *Config) *int { return &c.BiometricQueue })},
	{Flag: "skip-unchanged", Envs: []string{"FORESIGHT_SKIP_UNCHANGED"}, Default: "false", Help: "skip the model call for a chunk showing the same scene as the last chunk the model saw",
		Apply: settings.Bool(func(c *Config) *bool { return &c.SkipUnchanged })},
	{Flag: "change-threshold", Envs: []string{"FORESIGHT_CHANGE_THRESHOLD"}, Default: "10", Help: "largest distance, in bits of the 64-bit luma difference hash, that still counts as the same scene (1-64)",
		Apply: func(c *Config, v string) error {
			if err := settings.IntAtLeast(1, func(c *Config) *int { return &c.ChangeThreshold })(c, v); err != nil {
				return err
			}
			if c.ChangeThreshold > 64 {
				return fmt.Errorf("must be at most 64: %q", v)
			}
			return nil
		}},
	{Flag: "max-skip", Envs: []string{"FORESIGHT_MAX_SKIP"}, Default: "10s", Help: "longest time unchanged chunks are skipped after the last model call",
		Apply: settings.Duration(func(c *Config) *time.Duration { return &c.MaxSkip })},
	{Flag: "reject-unusable", Envs: []string{"FORESIGHT_REJECT_UNUSABLE"}, Default: "false", Help: "leave dark, blurred and unreadable frames out of chunks; a chunk with none usable is not sent and the ack reports \"camera\"",
		Apply: settings.Bool(func(c *Config) *bool { return &c.RejectUnusable })},
	{Flag: "dark-luma", Envs: []string{"FORESIGHT_DARK_LUMA"}, Default: formatFloat(domain.DefaultDarkLuma), Help: "mean luma (0-255) below which a frame is dark; 0 turns the test off",
		Apply: settings.Float(0, func(c *Config) *float64 { return &c.DarkLuma })},
	{Flag: "blur-sharpness", Envs: []string{"FORESIGHT_BLUR_SHARPNESS"}, Default: formatFloat(domain.DefaultBlurSharpness), Help: "variance of the Laplacian on the reduced luma grid below which a frame is blurred; 0 turns the test off",
		Apply: settings.Float(0, func(c *Config) *float64 { return &c.BlurSharpness })},
	{Flag: "scene-sample-frames", Envs: []string{"FORESIGHT_SCENE_SAMPLE_FRAMES"}, Default: "0", Help: "frames decoded per chunk to find unusable ones, evenly spaced (0 = every frame sent)",
		Apply: settings.IntAtLeast(0, func(c *Config) *int { return &c.SceneSampleFrames })},

	{Flag: "poke-url", Envs: []string{"FORESIGHT_POKE_URL"}, Default: "https://poke.com/api/v1/inbound-sms/webhook", Help: "Poke inbound webhook",
		Apply: func(c *Config, v string) error { c.PokeURL = v; return nil }},
	{Flag: "poke-timeout", Envs: []string{"FORESIGHT_POKE_TIMEOUT"}, Default: "10s", Help: "limit on one Poke call",
		Apply: settings.Duration(func(c *Config) *time.Duration { return &c.PokeTimeout })},
	{Envs: []string{"FORESIGHT_POKE_API_KEY"}, Secret: true, Help: "the server's Poke API key; without it the x-poke-api-key header is used",
		Apply: func(c *Config, v string) error { c.PokeAPIKey = v; return nil }},
	{Envs: []string{"FORESIGHT_SECRET_KEY"}, Secret: true, Help: "32 random bytes, base64 or hex (openssl rand -base64 32), that encrypt each device's own Poke key in the database (AES-256-GCM); without it device keys cannot be set",
		Apply: func(c *Config, v string) error { c.SecretKey = v; return nil }},
	{Envs: []string{"FORESIGHT_SECRET_KEY_PREVIOUS"}, Secret: true, Help: "the server key FORESIGHT_SECRET_KEY replaced, still accepted for decryption until `foresight device rekey` has re-encrypted every key",
		Apply: func(c *Config, v string) error { c.SecretKeyPrevious = v; return nil }},

	{Envs: []string{"MAGIC_WORD", "FORESIGHT_MAGIC_WORD"}, Secret: true, Help: "when set, every route but the public ones needs it or an access token (header x-magic-word or query magic_word); it acts as admin",
		Apply: func(c *Config, v string) error { c.MagicWord = v; return nil }},
	{Flag: "require-tokens", Envs: []string{"FORESIGHT_REQUIRE_TOKENS"}, Default: "false", Help: "accept access tokens only (foresight token create): the magic word is refused with 401; needs a database",
		Apply: settings.Bool(func(c *Config) *bool { return &c.RequireTokens })},
	{Flag: "manual-runs-per-minute", Envs: []string{"FORESIGHT_MANUAL_RUNS_PER_MINUTE"}, Default: "6", Help: "POST /interventions/run calls each credential (a token; the magic word counts as one) may make a minute, at once or spread; past it 429 with Retry-After",
		Apply: settings.IntAtLeast(1, func(c *Config) *int { return &c.ManualRunsPerMinute })},
	{Flag: "asks-per-minute", Envs: []string{"FORESIGHT_ASKS_PER_MINUTE"}, Default: "20", Help: "POST /ask questions each credential (a token; the magic word counts as one) may ask a minute, at once or spread; past it 429 with Retry-After",
		Apply: settings.IntAtLeast(1, func(c *Config) *int { return &c.AsksPerMinute })},
	{Envs: []string{"FORESIGHT_CURSOR_SECRET"}, Secret: true, Help: "keys the HMAC seal on /captions and /interventions page cursors; set the same on instances sharing one Postgres so a cursor from one works on another; unset: a random key per process, so cursors do not survive a restart",
		Apply: func(c *Config, v string) error { c.CursorSecret = v; return nil }},
	{Flag: "public-paths", Envs: []string{"FORESIGHT_PUBLIC_PATHS"}, Default: strings.Join(httpapi.DefaultPublicPaths(), ","), Help: "comma-separated paths open without the magic word (exact match; / is the live page, which holds no secret)",
		Apply: func(c *Config, v string) error { c.PublicPaths = splitList(v); return nil }},
	{Flag: "trust-client-credentials", Envs: []string{"FORESIGHT_TRUST_CLIENT_CREDENTIALS"}, Default: "false", Help: "use x-poke-api-key and x-modal-* headers even when the server holds its own secrets",
		Apply: settings.Bool(func(c *Config) *bool { return &c.TrustClientCredentials })},

	{Flag: "inference-backend", Envs: []string{"FORESIGHT_INFERENCE_BACKEND"}, Default: "gemma3", Help: "gemma3, streamingvlm (Modal), openai (any OpenAI-compatible server) or none; Modal is used only with credentials (server env or trusted headers)",
		Apply: settings.OneOf(func(c *Config) *string { return &c.InferenceBackend }, modal.PresetGemma3, modal.PresetStreamingVLM, BackendOpenAI, BackendNone)},
	{Envs: []string{"MODAL_TOKEN_ID", "FORESIGHT_MODAL_TOKEN_ID"}, Secret: true, Help: "Modal token id",
		Apply: func(c *Config, v string) error { c.ModalTokenID = v; return nil }},
	{Envs: []string{"MODAL_TOKEN_SECRET", "FORESIGHT_MODAL_TOKEN_SECRET"}, Secret: true, Help: "Modal token secret",
		Apply: func(c *Config, v string) error { c.ModalTokenSecret = v; return nil }},
	{Flag: "modal-app", Envs: []string{"MODAL_APP_NAME", "FORESIGHT_MODAL_APP_NAME"}, Help: "Modal app name (default: the backend's, foresight-gemma3-vlm or foresight-streamingvlm)",
		Apply: func(c *Config, v string) error { c.ModalAppName = v; return nil }},
	{Flag: "modal-class", Envs: []string{"MODAL_CLASS_NAME", "FORESIGHT_MODAL_CLASS_NAME"}, Help: "Modal class name (default: Gemma3VLMSession or StreamingVLMSession)",
		Apply: func(c *Config, v string) error { c.ModalClassName = v; return nil }},
	{Flag: "modal-environment", Envs: []string{"FORESIGHT_MODAL_ENVIRONMENT", "MODAL_ENVIRONMENT"}, Help: "Modal environment (default: the SDK's profile default)",
		Apply: func(c *Config, v string) error { c.ModalEnvironment = v; return nil }},
	{Flag: "modal-send-session-id", Envs: []string{"FORESIGHT_MODAL_SEND_SESSION_ID"}, Default: "true", Help: "send the per-stream session_id keyword; false for apps deployed from the original code",
		Apply: settings.Bool(func(c *Config) *bool { return &c.ModalSendSessionID })},

	// The OpenAI-compatible backend (FORESIGHT_INFERENCE_BACKEND=openai; docs/providers.md).
	{Flag: "openai-base-url", Envs: []string{"FORESIGHT_OPENAI_BASE_URL", "OPENAI_BASE_URL"}, Default: "https://api.openai.com/v1", Help: "API root of the OpenAI-compatible server (\"/chat/completions\" is appended), e.g. http://127.0.0.1:11434/v1 for Ollama",
		Apply: func(c *Config, v string) error { c.OpenAIBaseURL = v; return nil }},
	{Envs: []string{"FORESIGHT_OPENAI_API_KEY", "OPENAI_API_KEY"}, Secret: true, Help: "API key sent as a bearer token; unset sends no Authorization header (local servers need none)",
		Apply: func(c *Config, v string) error { c.OpenAIAPIKey = v; return nil }},
	{Flag: "openai-model", Envs: []string{"FORESIGHT_OPENAI_MODEL"}, Help: "model name on the server, e.g. gemma3:4b; required with --inference-backend openai",
		Apply: func(c *Config, v string) error { c.OpenAIModel = v; return nil }},
	{Flag: "openai-max-tokens", Envs: []string{"FORESIGHT_OPENAI_MAX_TOKENS"}, Default: strconv.Itoa(openai.DefaultMaxTokens), Help: "max_tokens of each caption (min 1)",
		Apply: settings.IntAtLeast(1, func(c *Config) *int { return &c.OpenAIMaxTokens })},
	{Flag: "openai-temperature", Envs: []string{"FORESIGHT_OPENAI_TEMPERATURE"}, Default: formatFloat(openai.DefaultTemperature), Help: "sampling temperature (min 0; 0 is greedy)",
		Apply: settings.Float(0, func(c *Config) *float64 { return &c.OpenAITemperature })},
	{Flag: "caption-history", Envs: []string{"FORESIGHT_CAPTION_HISTORY"}, Default: strconv.Itoa(openai.DefaultCaptionHistory), Help: "prior captions of the same stream shown in each openai prompt (0 = none)",
		Apply: settings.IntAtLeast(0, func(c *Config) *int { return &c.CaptionHistory })},
	{Flag: "max-frames-per-chunk", Envs: []string{"FORESIGHT_MAX_FRAMES_PER_CHUNK"}, Help: "frames sent to the model per chunk, picked evenly, first and last included; 0 = all (default: 6 for openai and gemma3, all for streamingvlm)",
		Apply: func(c *Config, v string) error {
			if v == "" {
				// The table applies --inference-backend before this
				// setting, so the backend is known here.
				c.MaxFramesPerChunk = defaultFramesPerChunk(c.InferenceBackend)
				return nil
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("not a whole number of at least 0: %q", v)
			}
			c.MaxFramesPerChunk = n
			return nil
		}},

	// The nudge loop (docs/nudges.md).
	{Flag: "nudges", Envs: []string{"FORESIGHT_NUDGES"}, Default: NudgesOff, Help: "the nudge loop: off, rules (FORESIGHT_NUDGE_RULES) or llm (an OpenAI-compatible model); on needs a caption store",
		Apply: settings.OneOf(func(c *Config) *string { return &c.Nudges }, NudgesOff, NudgesRules, NudgesLLM)},
	{Flag: "nudge-interval", Envs: []string{"FORESIGHT_NUDGE_INTERVAL"}, Default: "60s", Help: "time between two evaluations of a device",
		Apply: settings.Duration(func(c *Config) *time.Duration { return &c.NudgeInterval })},
	{Flag: "nudge-window", Envs: []string{"FORESIGHT_NUDGE_WINDOW"}, Help: "how far back the captions of one evaluation reach (default: the interval)",
		Apply: func(c *Config, v string) error {
			if v == "" {
				c.NudgeWindow = 0
				return nil
			}
			return settings.Duration(func(c *Config) *time.Duration { return &c.NudgeWindow })(c, v)
		}},
	{Flag: "nudge-cooldown", Envs: []string{"FORESIGHT_NUDGE_COOLDOWN"}, Default: "10m", Help: "least time between two delivered nudges to a device, whatever the decider says (0 or 0s = none)",
		Apply: settings.NonNegativeDuration(func(c *Config) *time.Duration { return &c.NudgeCooldown })},
	{Flag: "nudge-rules", Envs: []string{"FORESIGHT_NUDGE_RULES"}, Help: "rules file (YAML or JSON) of {name, match, message}; required with --nudges rules, e.g. docs/examples/nudge-rules.yaml",
		Apply: func(c *Config, v string) error { c.NudgeRules = v; return nil }},
	{Flag: "nudge-prefix", Envs: []string{"FORESIGHT_NUDGE_PREFIX"}, Default: domain.DefaultNudgePrefix, Help: "put before every nudge sent to Poke, which rewrites what it gets unless told not to; none sends the message alone",
		Apply: func(c *Config, v string) error {
			if strings.EqualFold(v, "none") {
				v = ""
			}
			c.NudgePrefix = v
			return nil
		}},
	{Flag: "nudge-prompt", Envs: []string{"FORESIGHT_NUDGE_PROMPT"}, Help: "system prompt of --nudges llm (default: the built-in health-agent prompt, docs/nudges.md)",
		Apply: func(c *Config, v string) error { c.NudgePrompt = v; return nil }},
	{Flag: "nudge-llm-base-url", Envs: []string{"FORESIGHT_NUDGE_LLM_BASE_URL"}, Help: "API root of the nudge model's OpenAI-compatible server (default: --openai-base-url)",
		Apply: func(c *Config, v string) error { c.NudgeLLMBaseURL = v; return nil }},
	{Envs: []string{"FORESIGHT_NUDGE_LLM_API_KEY"}, Secret: true, Help: "bearer key of the nudge model; unset falls back to FORESIGHT_OPENAI_API_KEY, then OPENAI_API_KEY",
		Apply: func(c *Config, v string) error { c.NudgeLLMAPIKey = v; return nil }},
	{Flag: "nudge-llm-model", Envs: []string{"FORESIGHT_NUDGE_LLM_MODEL"}, Help: "the nudge model (default: --openai-model); required with --nudges llm",
		Apply: func(c *Config, v string) error { c.NudgeLLMModel = v; return nil }},
	{Flag: "nudge-llm-response-format", Envs: []string{"FORESIGHT_NUDGE_LLM_RESPONSE_FORMAT"}, Default: string(nudgellm.FormatJSONSchema), Help: "json_schema, json_object (JSON mode, schema in the prompt) or none (schema in the prompt only), for servers without structured outputs",
		Apply: func(c *Config, v string) error {
			f, err := nudgellm.ParseResponseFormat(v)
			if err != nil {
				return err
			}
			c.NudgeLLMResponseFormat = string(f)
			return nil
		}},

	{Flag: "metrics", Envs: []string{"FORESIGHT_METRICS"}, Default: "true", Help: "serve Prometheus metrics at /metrics",
		Apply: settings.Bool(func(c *Config) *bool { return &c.Metrics })},
	{Flag: "pprof", Envs: []string{"FORESIGHT_PPROF"}, Default: "false", Help: "serve /debug/pprof (admin credentials only: an admin token, or the magic word when one is set)",
		Apply: settings.Bool(func(c *Config) *bool { return &c.Pprof })},
}

// LoadConfig reads the settings from args (flags) and getenv. It returns
// flag.ErrHelp after printing usage to out when -h or --help is given.
func LoadConfig(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	fs := flag.NewFlagSet("foresight serve", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.Usage = func() { PrintUsage(out) }
	var c Config
	if err := settings.Load(&c, Settings, fs, args, getenv); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err := refusePasswordInFlags(fs); err != nil {
		return Config{}, err
	}
	c.keepShellOpenAIKeyAtOpenAI(getenv)
	if err := c.checkInference(); err != nil {
		return Config{}, err
	}
	if err := c.checkMemory(); err != nil {
		return Config{}, err
	}
	if err := c.checkNudges(); err != nil {
		return Config{}, err
	}
	if _, err := c.secretSealer(); err != nil {
		return Config{}, err
	}
	if err := c.checkAccess(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// refusePasswordInFlags keeps secrets out of command lines (which other
// users of the machine can read): a database URL with a password must come
// from FORESIGHT_DATABASE_URL, not --database-url.
func refusePasswordInFlags(fs *flag.FlagSet) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		if f.Name != "database-url" {
			return
		}
		if u, perr := url.Parse(f.Value.String()); perr == nil && u.User != nil {
			if _, has := u.User.Password(); has {
				err = errors.New("config --database-url: carries a password; pass that URL in FORESIGHT_DATABASE_URL instead (a command line is visible to other users)")
			}
		}
	})
	return err
}

// keepShellOpenAIKeyAtOpenAI drops an OPENAI_API_KEY picked up as the
// fallback when the server talks to someone else: a shell's OpenAI key must
// not reach a third party that FORESIGHT_OPENAI_BASE_URL names. It is kept
// for OpenAI itself, and for an OPENAI_BASE_URL set beside it (the pair a
// shell exports for one OpenAI-compatible service).
func (c *Config) keepShellOpenAIKeyAtOpenAI(getenv func(string) string) {
	fromShell := strings.TrimSpace(getenv("FORESIGHT_OPENAI_API_KEY")) == "" && strings.TrimSpace(getenv("OPENAI_API_KEY")) != ""
	if !fromShell || c.OpenAIAPIKey == "" {
		return
	}
	pairedURL := strings.TrimSpace(getenv("FORESIGHT_OPENAI_BASE_URL")) == "" && strings.TrimSpace(getenv("OPENAI_BASE_URL")) != ""
	if u, err := url.Parse(c.OpenAIBaseURL); pairedURL || (err == nil && strings.EqualFold(u.Hostname(), "api.openai.com")) {
		return
	}
	c.OpenAIAPIKey = ""
}

// MemoryLimitAuto in Config.MemoryLimit derives the soft memory limit from
// the frame budget (see SoftMemoryLimit).
const MemoryLimitAuto = -1

// SoftMemoryLimit is the limit to hand debug.SetMemoryLimit, or 0 for none.
// Auto is the budget, an eighth more for garbage the collector has not
// reclaimed yet, and 32 MiB for everything that is not frames (measured in
// docs/benchmarks.md: RSS then stays within 1.25 × budget + 64 MiB).
func (c Config) SoftMemoryLimit() int64 {
	if c.MemoryLimit == MemoryLimitAuto {
		return c.MaxTotalBufferBytes + c.MaxTotalBufferBytes/8 + 32<<20
	}
	return max(c.MemoryLimit, 0)
}

// checkMemory refuses frame-memory settings that cannot work together.
func (c Config) checkMemory() error {
	if need := wsframe.ReadCost(c.MaxFrameBytes); c.MaxTotalBufferBytes < need {
		// Otherwise the largest message allowed could never be read, even
		// by a lone stream.
		return fmt.Errorf("config: FORESIGHT_MAX_TOTAL_BUFFER_BYTES (%d) must be at least %d: reading a message of FORESIGHT_MAX_FRAME_BYTES (%d) takes that much frame memory at once",
			c.MaxTotalBufferBytes, need, c.MaxFrameBytes)
	}
	if c.MaxBufferBytes > c.MaxTotalBufferBytes {
		// A stream would fill the whole shared budget with frames waiting
		// for its next chunk, leaving nothing for the chunk in flight or for
		// reading the next message: it would see its frames dropped.
		return fmt.Errorf("config: VISION_MAX_BUFFER_BYTES (%d) must not exceed FORESIGHT_MAX_TOTAL_BUFFER_BYTES (%d): one stream's buffer cannot be larger than the memory all streams share",
			c.MaxBufferBytes, c.MaxTotalBufferBytes)
	}
	return nil
}

// PrintUsage writes the serve command's flags and environment variables.
func PrintUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: foresight [serve] [flags]")
	fmt.Fprintln(w, "\nEvery setting can come from a flag or from the environment; a flag wins.")
	fmt.Fprintln(w, "Secrets come from the environment only.")
	fmt.Fprintln(w)
	settings.PrintTable(w, Settings)
}

// sceneConfig is the domain's scene gate for c.
func (c Config) sceneConfig() domain.SceneConfig {
	return domain.SceneConfig{
		SkipUnchanged:   c.SkipUnchanged,
		ChangeThreshold: c.ChangeThreshold,
		MaxSkip:         c.MaxSkip,
		RejectUnusable:  c.RejectUnusable,
		DarkLuma:        c.DarkLuma,
		BlurSharpness:   c.BlurSharpness,
		SampleFrames:    c.SceneSampleFrames,
	}
}

// trustPolicy is the rule for client-supplied credentials (adapters/frontend/trust).
func (c Config) trustPolicy() trust.Policy { return trust.New(c.TrustClientCredentials) }

// ModalHeld reports whether the server has its own Modal credentials.
func (c Config) ModalHeld() bool { return c.ModalTokenID != "" && c.ModalTokenSecret != "" }

// formatFloat spells a default the way a user would type it (20, 0.2).
func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func splitList(v string) []string {
	var out []string
	for p := range strings.SplitSeq(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
