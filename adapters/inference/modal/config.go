package modal

import (
	"log/slog"
	"strings"
	"time"
)

// Presets name the deployed remote apps the adapter can call.
const (
	// PresetGemma3 is Gemma 3 in app foresight-gemma3-vlm, class
	// Gemma3VLMSession (the default).
	PresetGemma3 = "gemma3"
	// PresetStreamingVLM is the legacy StreamingVLM in app
	// foresight-streamingvlm, class StreamingVLMSession, kept for rollback.
	PresetStreamingVLM = "streamingvlm"
)

type preset struct{ app, class string }

var presets = map[string]preset{
	PresetGemma3:       {app: "foresight-gemma3-vlm", class: "Gemma3VLMSession"},
	PresetStreamingVLM: {app: "foresight-streamingvlm", class: "StreamingVLMSession"},
}

// Defaults for the Config fields that have one.
const (
	DefaultMaxClients    = 8
	DefaultCancelTimeout = 5 * time.Second
	DefaultCloseTimeout  = 10 * time.Second
	// DefaultMaxSpawnBytes bounds the frame bytes being encoded and sent at
	// once (see Config.MaxSpawnBytes).
	DefaultMaxSpawnBytes = 4 << 20
	// DefaultMaxConcurrentSpawns and DefaultSpawnSlotHold bound the spawns
	// encoding at once (see Config.MaxConcurrentSpawns).
	DefaultMaxConcurrentSpawns = 2
	DefaultSpawnSlotHold       = 2 * time.Millisecond
)

// Config configures the Modal backend. Start from DefaultConfig: the zero
// value does not send session ids. (The server fills it from its settings
// in app.)
//
// The Modal SDK keeps reading its own environment: MODAL_SERVER_URL (where
// the control plane is; how tests point it at modaltest), MODAL_ENVIRONMENT
// (used when Environment is empty), MODAL_PROFILE, MODAL_CONFIG_PATH and
// ~/.modal.toml. MODAL_LOGLEVEL has no effect: the adapter always hands the
// SDK its own logger.
type Config struct {
	// Preset picks the default app and class: "gemma3" (default, when empty),
	// "streamingvlm" or "none" (inference off).
	Preset string
	// TokenID and TokenSecret are the Modal credentials used when a stream
	// brings none. No id or no secret after resolution: no-op sessions.
	TokenID     string
	TokenSecret string
	// AppName and ClassName override the preset's deployed names; empty means
	// the preset's.
	AppName   string
	ClassName string
	// Environment is the Modal environment the class is looked up in; empty
	// means the SDK's own (MODAL_ENVIRONMENT, the profile, else the
	// workspace default).
	Environment string
	// SendSessionID sends each stream's id as the session_id keyword of
	// infer_chunk and close, so our remote apps keep history per stream.
	// Turn it off for apps deployed from the original code, which take no
	// such keyword. DefaultConfig sets it.
	SendSessionID bool
	// MaxClients bounds the Modal clients kept for distinct credential sets;
	// idle ones beyond it are closed (clients in use never are). Default 8.
	MaxClients int
	// CancelTimeout bounds the FunctionCallCancel sent when a call is
	// abandoned. Default 5 s.
	CancelTimeout time.Duration
	// CloseTimeout bounds the remote close call at stream end (the caller's
	// context may cut it shorter). Default 10 s.
	CloseTimeout time.Duration
	// MaxSpawnBytes bounds the frame bytes of the calls being spawned at
	// once across all sessions, from the wait for a slot until the
	// FunctionMap reply: the SDK keeps the encoded chunk that long. A spawn
	// copies its chunk twice (CBOR, then gRPC's message buffer); left
	// unbounded, every stream cutting a chunk at once multiplies that
	// memory. The bound is in bytes, not calls, so that many small chunks
	// still wait their round trips side by side while large ones queue; it
	// caps the frames sent at MaxSpawnBytes per control-plane round trip
	// (4 MiB per 50 ms is 80 MiB/s, 700 streams of 6 × 20 KB chunks a
	// second). A chunk larger than the bound is spawned alone. Waiting
	// delays only the call, never an ack. Default 4 MiB.
	MaxSpawnBytes int64
	// MaxConcurrentSpawns bounds the spawns encoding and sending their
	// chunks at once, so that chunk encoding cannot take every core from
	// the acks. Default 2.
	MaxConcurrentSpawns int
	// SpawnSlotHold is the longest a spawn holds its slot. A spawn still
	// running after it is, as a rule, waiting a control-plane round trip;
	// holding the slot over the round trip would cap the server at
	// MaxConcurrentSpawns round trips' worth of chunks (two spawns per
	// 20 ms is 100 chunk calls a second). With the hold the cap is
	// MaxConcurrentSpawns per SpawnSlotHold whatever the round trip: 1,000
	// chunk calls a second by default, 1,000 streams at 1 s chunks. On a
	// busy machine an encoding can outlast the hold; the next one then
	// starts beside it. Releasing the slot when the SDK sends FunctionMap
	// instead (a unary interceptor) was measured: it left protobuf
	// marshalling and the write unbounded and doubled ack p99 under load.
	// Default 2 ms.
	SpawnSlotHold time.Duration
	// Logger receives the adapter's and the SDK's logs; nil means
	// slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the defaults: Gemma 3 preset, session ids sent, and
// the default bounds.
func DefaultConfig() Config {
	return Config{
		Preset:        PresetGemma3,
		SendSessionID: true,
		MaxClients:    DefaultMaxClients,
		CancelTimeout: DefaultCancelTimeout,
		CloseTimeout:  DefaultCloseTimeout,
	}
}

// Deployed names the app and class the server's own sessions call: the
// configured names, else the preset's (empty for an unknown
// preset). A status page shows them.
func (c Config) Deployed() (app, class string) {
	p := presets[strings.ToLower(c.Preset)]
	if c.Preset == "" {
		p = presets[PresetGemma3]
	}
	app, class = p.app, p.class
	if c.AppName != "" {
		app = c.AppName
	}
	if c.ClassName != "" {
		class = c.ClassName
	}
	return app, class
}
