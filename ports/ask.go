package ports

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"time"
)

// Limits of a question's retrieval.
const (
	// MaxSearchWords bounds the words of one text search.
	MaxSearchWords = 16
	// MaxSearchLimit bounds the captions one search returns.
	MaxSearchLimit = 200
)

// CaptionSearch selects one device's captions in a time range by how well
// they match words, best first.
type CaptionSearch struct {
	Device string
	// Since is inclusive and Until exclusive; both compare with Caption.Start.
	Since time.Time
	Until time.Time
	// Words are matched one by one: a caption holding any of them (stemmed)
	// matches, ranked higher the more and the rarer words it holds.
	Words []string
	// Limit is clamped to [1, MaxSearchLimit].
	Limit int
}

// CaptionSearcher ranks stored captions against words.
type CaptionSearcher interface {
	// SearchCaptions returns the matching captions of q.Device in the
	// range, best match first, ties newest first. No word matches nothing.
	SearchCaptions(ctx context.Context, q CaptionSearch) ([]Caption, error)
}

// Vector is one embedding.
type Vector []float32

// Embedder turns texts into vectors, one per text, in order.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([]Vector, error)
	// Model names the embedding model; vectors of different models are
	// never compared.
	Model() string
}

// CaptionVector is a stored caption's embedding.
type CaptionVector struct {
	CaptionID string
	Vector    Vector
}

// VectorSearch selects one device's captions in a time range nearest a
// vector of Model.
type VectorSearch struct {
	Device string
	Since  time.Time
	Until  time.Time
	Model  string
	Vector Vector
	// Limit is clamped to [1, MaxSearchLimit].
	Limit int
}

// CaptionVectorStore keeps caption embeddings beside the captions.
type CaptionVectorStore interface {
	// SaveCaptionVectors stores vectors of model; a caption deleted since
	// is skipped. A caption keeps one vector: saving replaces the one it
	// had, of whatever model (so a new model re-embeds in place).
	SaveCaptionVectors(ctx context.Context, model string, vectors []CaptionVector) error
	// CaptionsWithoutVector returns up to limit stored captions, oldest
	// first, that have no vector of model yet (the back-fill).
	CaptionsWithoutVector(ctx context.Context, model string, limit int) ([]Caption, error)
	// NearestCaptions returns q.Device's captions in the range holding a
	// vector of q.Model, most similar (cosine) first.
	NearestCaptions(ctx context.Context, q VectorSearch) ([]Caption, error)
}

// ChatMessage is one message of a chat with a language model.
type ChatMessage struct {
	Role    string // "system" or "user"
	Content string
}

// Chat asks a language model to answer, handing each piece of the answer
// to onDelta as it is generated (onDelta may be nil).
type Chat interface {
	Complete(ctx context.Context, messages []ChatMessage, onDelta func(string)) (ChatReply, error)
}

// ChatReply is a model's whole answer.
type ChatReply struct {
	Text  string
	Model string
}

// Errors a Chat wraps, so callers can tell the answer's status.
var (
	// ErrChatTimeout: the model did not answer in time.
	ErrChatTimeout = errors.New("the model did not answer in time")
	// ErrChatFailed: the model's server failed or answered something unusable.
	ErrChatFailed = errors.New("the model failed")
)

// ErrBadVector is wrapped when a stored vector's bytes are not a vector of
// the query's length.
var ErrBadVector = errors.New("stored vector does not fit the query")

// AppendVectorBytes appends v as little-endian float32s, the form both
// stores keep vectors in: 4 bytes a dimension, nothing else.
func AppendVectorBytes(buf []byte, v Vector) []byte {
	for _, x := range v {
		buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(x))
	}
	return buf
}

// Unit is v scaled to length 1 (v itself when it is all zero).
func Unit(v Vector) Vector {
	var n float64
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	if n == 0 {
		return v
	}
	n = math.Sqrt(n)
	out := make(Vector, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) / n)
	}
	return out
}

// DotBytes is the dot product of unit and a vector in AppendVectorBytes
// form, read in place. Vectors are stored at unit length, so this is their
// cosine similarity.
func DotBytes(unit Vector, b []byte) (float32, error) {
	if len(b) != 4*len(unit) {
		return 0, ErrBadVector
	}
	var dot float32
	for i, x := range unit {
		dot += x * math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return dot, nil
}

// Nearest keeps the k best-scoring keys offered to it.
type Nearest[K any] struct {
	k     int
	keys  []K
	score []float32
}

// NewNearest keeps up to k keys.
func NewNearest[K any](k int) *Nearest[K] { return &Nearest[K]{k: max(k, 1)} }

// Offer considers key with score.
func (n *Nearest[K]) Offer(key K, score float32) {
	if len(n.keys) == n.k && score <= n.score[len(n.score)-1] {
		return
	}
	i := len(n.score)
	for i > 0 && n.score[i-1] < score {
		i--
	}
	if len(n.keys) < n.k {
		n.keys = append(n.keys, key)
		n.score = append(n.score, 0)
	}
	copy(n.keys[i+1:], n.keys[i:len(n.keys)-1])
	copy(n.score[i+1:], n.score[i:len(n.score)-1])
	n.keys[i], n.score[i] = key, score
}

// Keys are the kept keys, best first.
func (n *Nearest[K]) Keys() []K { return n.keys }
