package domain

import (
	"time"

	"github.com/foresight-vision/foresight/ports"
)

// Defaults of StreamConfig, matching the original server where it had a setting.
const (
	DefaultChunkInterval    = time.Second
	DefaultMaxBufferFrames  = 120
	DefaultMaxBufferBytes   = 64 << 20
	DefaultInferenceTimeout = 30 * time.Second
	DefaultPrompt           = ports.DefaultPrompt
)

// StreamConfig tunes one stream. Each field means what its setting means
// (docs/configuration.md): zero is none, off or all, never "the default".
// Only fields without a meaningful zero (buffer bounds, timeout, prompt,
// Clock, Observer, Captions) are filled when left zero. StreamConfig{} is
// therefore a working stream that cuts a chunk whenever no call is in
// flight and sends every frame; DefaultStreamConfig is the server's tuning.
type StreamConfig struct {
	// ChunkInterval is the least time between two chunk cuts
	// (VISION_CHUNK_SECONDS). Zero means no minimum: a chunk is cut
	// whenever no call is in flight. A negative value counts as zero.
	ChunkInterval time.Duration
	// MaxBufferFrames bounds the frames waiting for the next chunk
	// (VISION_MAX_BUFFER_FRAMES); the oldest are dropped first.
	MaxBufferFrames int
	// MaxBufferBytes bounds the bytes waiting for the next chunk
	// (VISION_MAX_BUFFER_BYTES); the oldest frames are dropped first. A
	// single frame larger than the budget is still kept, alone.
	MaxBufferBytes int64
	// MaxFramesPerChunk bounds the frames sent to the model per chunk
	// (FORESIGHT_MAX_FRAMES_PER_CHUNK): SampleFrameIndices picks them evenly
	// across the chunk, first and last included, and the others give their
	// budget bytes back at once. Zero (or less) means every buffered frame.
	MaxFramesPerChunk int
	// Prompt is sent with every chunk (VISION_PROMPT).
	Prompt string
	// InferenceTimeout bounds opening the inference session and each call
	// (FORESIGHT_INFERENCE_TIMEOUT); the call's context is cancelled then.
	InferenceTimeout time.Duration
	// Budget, when set, bounds the frame bytes held by every stream sharing
	// it (FORESIGHT_MAX_TOTAL_BUFFER_BYTES); nil means no shared bound.
	Budget *MemoryBudget
	// Clock supplies time; nil means the system clock.
	Clock Clock
	// Observer is told about drops, chunks and calls; nil means none.
	Observer ports.StreamObserver
	// Scene tunes each stream's SceneGate (unchanged-scene skipping,
	// unusable-frame rejection). A SceneConfig with both features off (the
	// zero value and DefaultSceneConfig), or a nil Analyzer, leaves
	// the chunk path exactly as without it: no frame is analysed.
	Scene SceneConfig
	// Analyzer reads frames for the SceneGate; nil switches the gate off.
	Analyzer ports.FrameAnalyzer
	// Captions is handed each caption the stream delivers on an ack (the
	// visual memory); nil keeps none.
	Captions ports.CaptionSink
	// BackendName and ModelName label the captions handed to Captions.
	BackendName string
	ModelName   string
}

// DefaultStreamConfig is the server's tuning of a stream, the defaults of the
// settings table in app/config.go: a chunk at most every
// DefaultChunkInterval, DefaultMaxFramesPerChunk frames sent from each, the
// scene gate off with its calibrated thresholds. Library users and tests
// start from it and change what they need.
func DefaultStreamConfig() StreamConfig {
	return StreamConfig{
		ChunkInterval:     DefaultChunkInterval,
		MaxBufferFrames:   DefaultMaxBufferFrames,
		MaxBufferBytes:    DefaultMaxBufferBytes,
		MaxFramesPerChunk: DefaultMaxFramesPerChunk,
		Prompt:            DefaultPrompt,
		InferenceTimeout:  DefaultInferenceTimeout,
		Scene:             DefaultSceneConfig(),
	}
}

// withDefaults fills the fields that have no meaningful zero; the others
// are taken as given.
func (c StreamConfig) withDefaults() StreamConfig {
	c.ChunkInterval = max(c.ChunkInterval, 0)
	c.MaxFramesPerChunk = max(c.MaxFramesPerChunk, 0) // selectFrames keeps all
	if c.MaxBufferFrames <= 0 {
		c.MaxBufferFrames = DefaultMaxBufferFrames
	}
	if c.MaxBufferBytes <= 0 {
		c.MaxBufferBytes = DefaultMaxBufferBytes
	}
	if c.Prompt == "" {
		c.Prompt = DefaultPrompt
	}
	if c.InferenceTimeout <= 0 {
		c.InferenceTimeout = DefaultInferenceTimeout
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	if c.Observer == nil {
		c.Observer = ports.NopObserver{}
	}
	if c.Captions == nil {
		c.Captions = ports.NopCaptionSink{}
	}
	return c
}

// Clock is the domain's only source of time, so tests can drive it.
type Clock interface {
	Now() time.Time
	// AfterFunc runs f in its own goroutine once d has passed; stop
	// prevents that if it has not happened yet.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// SystemClock is the real, monotonic clock.
type SystemClock struct{}

// Now returns time.Now, which carries a monotonic reading.
func (SystemClock) Now() time.Time { return time.Now() }

// AfterFunc wraps time.AfterFunc.
func (SystemClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}
