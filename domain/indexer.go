package domain

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/foresight-vision/foresight/ports"
)

// Defaults of IndexerConfig.
const (
	DefaultIndexBatch      = 64
	DefaultIndexSweep      = time.Minute
	DefaultIndexMaxBackoff = time.Minute
)

// IndexerObserver counts embeddings. Implementations must be safe for
// concurrent use.
type IndexerObserver interface {
	// EmbeddingsQueued reports captions found without a vector, about to
	// be embedded; EmbeddingsDone those stored, EmbeddingsFailed those
	// whose batch failed (they are tried again).
	EmbeddingsQueued(n int)
	EmbeddingsDone(n int)
	EmbeddingsFailed(n int)
}

// NopIndexerObserver counts nothing.
type NopIndexerObserver struct{}

func (NopIndexerObserver) EmbeddingsQueued(int) {}
func (NopIndexerObserver) EmbeddingsDone(int)   {}
func (NopIndexerObserver) EmbeddingsFailed(int) {}

// IndexerConfig tunes the indexer; zero fields take the defaults.
type IndexerConfig struct {
	// Batch is the captions embedded per request.
	Batch int
	// Sweep is how often the store is checked with no wake-up, which
	// catches captions written by other instances.
	Sweep time.Duration
	// MaxBackoff caps the wait after a failure, which doubles from a second.
	MaxBackoff time.Duration
	Observer   IndexerObserver
	Logger     *slog.Logger
}

// Indexer embeds stored captions in the background, off the ack path: the
// store is the queue (captions without a vector of the model, oldest
// first), so it is bounded by the store, survives a restart and back-fills
// captions stored before embeddings were on. Wake says new captions were
// stored.
type Indexer struct {
	store    ports.CaptionVectorStore
	embedder ports.Embedder
	cfg      IndexerConfig
	wake     chan struct{}
	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
}

// StartIndexer starts embedding in its own goroutine; Stop ends it.
func StartIndexer(store ports.CaptionVectorStore, embedder ports.Embedder, cfg IndexerConfig) *Indexer {
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultIndexBatch
	}
	if cfg.Sweep <= 0 {
		cfg.Sweep = DefaultIndexSweep
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultIndexMaxBackoff
	}
	if cfg.Observer == nil {
		cfg.Observer = NopIndexerObserver{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ix := &Indexer{store: store, embedder: embedder, cfg: cfg, wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	go ix.run(ctx)
	return ix
}

// Wake asks for a pass soon; it never blocks.
func (ix *Indexer) Wake() {
	select {
	case ix.wake <- struct{}{}:
	default: // a pass is already due
	}
}

// Stop ends the indexer and waits for it, within ctx; a batch in flight
// is abandoned (its captions are embedded on the next start).
func (ix *Indexer) Stop(ctx context.Context) error {
	ix.stopOnce.Do(ix.cancel)
	select {
	case <-ix.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (ix *Indexer) run(ctx context.Context) {
	defer close(ix.done)
	backoff := time.Duration(0)
	sweep := time.NewTicker(ix.cfg.Sweep)
	defer sweep.Stop()
	for {
		err := ix.pass(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			backoff = min(max(2*backoff, time.Second), ix.cfg.MaxBackoff)
			ix.cfg.Logger.Warn("embeddings: batch failed, will retry", "err", err, "retry_in", backoff)
			timer := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
			}
			continue
		}
		backoff = 0
		select {
		case <-ctx.Done():
			return
		case <-ix.wake:
		case <-sweep.C:
		}
	}
}

// pass embeds batches until no caption is left without a vector.
func (ix *Indexer) pass(ctx context.Context) error {
	model := ix.embedder.Model()
	for {
		todo, err := ix.store.CaptionsWithoutVector(ctx, model, ix.cfg.Batch)
		if err != nil {
			return err
		}
		if len(todo) == 0 {
			return nil
		}
		ix.cfg.Observer.EmbeddingsQueued(len(todo))
		texts := make([]string, len(todo))
		for i, c := range todo {
			texts[i] = c.Text
		}
		vecs, err := ix.embedder.Embed(ctx, texts)
		if err == nil && len(vecs) != len(todo) {
			err = errors.New("embeddings: one vector per caption was not returned")
		}
		if err == nil {
			batch := make([]ports.CaptionVector, len(todo))
			for i, c := range todo {
				batch[i] = ports.CaptionVector{CaptionID: c.ID, Vector: vecs[i]}
			}
			err = ix.store.SaveCaptionVectors(ctx, model, batch)
		}
		if err != nil {
			ix.cfg.Observer.EmbeddingsFailed(len(todo))
			return err
		}
		ix.cfg.Observer.EmbeddingsDone(len(todo))
		if len(todo) < ix.cfg.Batch {
			return nil
		}
	}
}
