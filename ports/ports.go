// Package ports declares the small driven-side interfaces the domain calls
// out through, grouped by file: the model (ports.go: an InferenceBackend
// opening one InferenceSession per stream), the phone (Notifier), the
// caption store (captions.go: writer, reader, pruner and source), the nudge
// loop (nudges.go, interventions.go: decider, intervention store,
// evaluation lock), the scene gate (scene.go: FrameAnalyzer) and the
// observers that metrics implement.
//
// It names no provider and no transport: what a particular backend reads
// from a client is that backend's business, and reaches it here only as
// opaque per-stream options.
//
// It imports only the standard library, so adapters and tests can implement
// the interfaces without pulling in any outside dependency.
package ports

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// ErrNoInference is returned by InferenceBackend.OpenSession when there is no
// model for the stream (no credentials, or inference switched off). It is
// not a failure: the stream is acked as usual and keeps no frames.
var ErrNoInference = errors.New("no inference configured")

// DefaultPrompt is the instruction a chunk carries when none is configured
// (VISION_PROMPT); a backend handed a blank one falls back to it.
const DefaultPrompt = "Provide a concise present-tense narration of the wearer's current actions and surroundings."

// Chunk is one time window of a stream, sent to the model in a single call.
type Chunk struct {
	// Frames are the encoded frames (JPEG in practice), oldest first.
	Frames [][]byte
	// StartS and EndS are the window's bounds in seconds since the stream began.
	StartS float64
	EndS   float64
	// Prompt is the instruction given to the model for this chunk.
	Prompt string
	// ReceivedFrames and ReceivedBytes count the frames buffered for this
	// window before frame selection; Frames holds the ones sent.
	ReceivedFrames int
	ReceivedBytes  int64
}

// Result is a model's reply to one chunk. The next ack carries the typed
// fields the backend set (those named in Set) and its Extras, merged in key
// order. A failed call is not a Result: it is an error, which the domain
// reports on the ack in a field of its own.
type Result struct {
	// Caption is what the model saw. Only a non-empty caption is kept in
	// the visual memory.
	Caption string
	// ChunkStartS and ChunkEndS bound the window the reply describes, in
	// seconds since the stream began.
	ChunkStartS float64
	ChunkEndS   float64
	// LatencyMS is the call's latency as the backend measured it.
	LatencyMS float64
	// TokensGenerated is how many tokens the model produced.
	TokensGenerated int64
	// Set names the fields above that the backend filled in. Only those
	// reach the ack, so a backend that reports no token count sends none
	// rather than a 0.
	Set ResultFields
	// Extras are a backend's own fields, passed to the client as they are.
	// Values must be JSON-encodable; nil ones are left out. An extra never
	// replaces a typed field that is set, nor a field the server writes
	// itself (frame, bytes, and an inference error or camera state when
	// the ack carries one).
	Extras map[string]any
}

// ResultFields is a set of Result's typed fields.
type ResultFields uint8

// The typed fields of a Result.
const (
	ResultCaption ResultFields = 1 << iota
	ResultChunkStart
	ResultChunkEnd
	ResultLatency
	ResultTokens

	// ResultAll is every typed field: a backend that always reports each.
	ResultAll = ResultCaption | ResultChunkStart | ResultChunkEnd | ResultLatency | ResultTokens
)

// Has reports whether every field of f2 is in f.
func (f ResultFields) Has(f2 ResultFields) bool { return f&f2 == f2 }

// Empty reports whether r carries nothing for an ack.
func (r Result) Empty() bool { return r.Set == 0 && len(r.Extras) == 0 }

// Outcome is how one inference call ended, as told to StreamObserver.
type Outcome string

// The outcomes of an inference call.
const (
	OutcomeOK      Outcome = "ok"
	OutcomeError   Outcome = "error"
	OutcomeTimeout Outcome = "timeout"
)

// Outcomes lists every Outcome, for observers that pre-register them.
func Outcomes() []Outcome { return []Outcome{OutcomeOK, OutcomeError, OutcomeTimeout} }

// InferenceSession runs a model over the chunks of one stream.
// Calls are never concurrent: the domain keeps at most one in flight.
type InferenceSession interface {
	// InferChunk runs the model over one chunk. When ctx is done the
	// implementation must abandon (and, if remote, cancel) the call and
	// return promptly with an error.
	InferChunk(ctx context.Context, chunk Chunk) (Result, error)
	// Close releases everything the session holds. It is called exactly once.
	Close(ctx context.Context) error
}

// SessionRequest says which stream an inference session is for.
type SessionRequest struct {
	// StreamID is unique per stream; backends use it to scope model state.
	StreamID string
	// Device is the wearer's device the stream comes from.
	Device string
	// Options are per-stream settings for the backend, already vetted by
	// the caller's trust policy. Their keys and meaning belong to the
	// backend that reads them; the domain passes them on untouched. Empty
	// means the backend's own defaults.
	Options map[string]string
}

// InferenceBackend opens inference sessions, one per stream.
type InferenceBackend interface {
	// OpenSession prepares a session for one stream. It may be slow (remote
	// look-ups); it must honour ctx. ErrNoInference means "no model here".
	OpenSession(ctx context.Context, req SessionRequest) (InferenceSession, error)
}

// Notifier sends a short message to the phone of the owner of apiKey.
type Notifier interface {
	// Notify delivers message and returns the upstream's JSON reply. Its
	// error text may be shown to the caller: short, and never a secret.
	Notify(ctx context.Context, apiKey, message string) (json.RawMessage, error)
}

// StreamObserver is told what happens inside streams, for metrics. Methods are
// called on hot paths: they must be cheap, non-blocking and safe for
// concurrent use.
type StreamObserver interface {
	// FramesDropped reports frames evicted from a full buffer.
	FramesDropped(frames int, bytes int64)
	// ChunkCut reports a chunk handed to the model: the frames and bytes
	// sent, and those buffered for it before frame selection.
	ChunkCut(frames int, bytes int64, receivedFrames int, receivedBytes int64)
	// InferenceDone reports a finished call and its measured round trip.
	InferenceDone(outcome Outcome, d time.Duration)
	// ChunkSkipped reports a cut chunk the scene gate kept from the model,
	// with its reason ("unchanged", "dark", "blurred", "undecodable") and
	// the frames and bytes it held (given back at once).
	ChunkSkipped(reason string, frames int, bytes int64)
	// FramesRejected reports frames the scene gate left out of a chunk as
	// unusable (dark, blurred or unreadable).
	FramesRejected(frames int)
}

// NopObserver is a StreamObserver that ignores everything.
type NopObserver struct{}

func (NopObserver) FramesDropped(int, int64)             {}
func (NopObserver) ChunkCut(int, int64, int, int64)      {}
func (NopObserver) InferenceDone(Outcome, time.Duration) {}
func (NopObserver) ChunkSkipped(string, int, int64)      {}
func (NopObserver) FramesRejected(int)                   {}
