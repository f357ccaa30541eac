package domain

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/foresight-vision/foresight/ports"
)

// Retention defaults.
const (
	DefaultCaptionRetention = 720 * time.Hour
	DefaultRetentionEvery   = 10 * time.Minute
	DefaultRetentionBatch   = 500
)

// RetentionConfig configures StartRetention. Zero fields take the defaults.
type RetentionConfig struct {
	// MaxAge is how long a caption is kept (FORESIGHT_CAPTION_RETENTION);
	// StartRetention is not to be called when captions are kept forever.
	MaxAge time.Duration
	// Every is the pause between sweeps; the first sweep runs at once.
	Every time.Duration
	// Batch is the most rows one delete removes.
	Batch  int
	Clock  Clock
	Logger *slog.Logger
}

// StartRetention deletes captions older than cfg.MaxAge now and then every
// cfg.Every, in batches. stop ends it, waiting for a sweep in progress to
// notice (the pruner must honour ctx).
func StartRetention(p ports.CaptionPruner, cfg RetentionConfig) (stop func()) {
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultCaptionRetention
	}
	if cfg.Every <= 0 {
		cfg.Every = DefaultRetentionEvery
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultRetentionBatch
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu        sync.Mutex
		stopTimer func() bool
		sweeps    sync.WaitGroup
	)
	var sweep func()
	sweep = func() {
		defer sweeps.Done()
		cutoff := cfg.Clock.Now().Add(-cfg.MaxAge)
		deleted := 0
		for ctx.Err() == nil {
			n, err := p.DeleteCaptionsBefore(ctx, cutoff, cfg.Batch)
			deleted += n
			if err != nil {
				if ctx.Err() == nil {
					cfg.Logger.Warn("caption retention sweep failed; retrying at the next sweep", "err", err)
				}
				break
			}
			if n < cfg.Batch {
				break
			}
		}
		if deleted > 0 {
			cfg.Logger.Info("caption retention sweep", "deleted", deleted)
		}
		mu.Lock()
		defer mu.Unlock()
		if ctx.Err() == nil {
			sweeps.Add(1)
			stopTimer = cfg.Clock.AfterFunc(cfg.Every, sweep)
		}
	}
	sweeps.Add(1)
	go sweep()
	return func() {
		mu.Lock()
		cancel()
		if stopTimer != nil && stopTimer() {
			sweeps.Done() // the next sweep will not run
		}
		mu.Unlock()
		sweeps.Wait()
	}
}
