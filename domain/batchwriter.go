package domain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// ErrQueueFull is answered by BatchWriter.Offer when the queue holds
// QueueSize rows already, and ErrWriterClosed after Close.
var (
	ErrQueueFull    = errors.New("write queue is full")
	ErrWriterClosed = errors.New("writer is closed")
)

// BatchWriterConfig configures a BatchWriter. Zero fields take the
// Recorder's defaults.
type BatchWriterConfig struct {
	// What names the rows in log lines and errors ("biometric window").
	What string
	// QueueSize bounds the rows held in memory, the batch being written
	// included; past it Offer refuses.
	QueueSize     int
	BatchSize     int
	FlushInterval time.Duration
	RetryMin      time.Duration
	RetryMax      time.Duration
	Clock         Clock
	Logger        *slog.Logger
}

// BatchWriter is the Recorder's sibling for rows whose sender is told
// whether they were taken: Offer queues a row or refuses it at once (the
// queue is full, or the writer closed), never dropping one it took; one
// goroutine writes batches, retrying a failed one with backoff until it
// succeeds or Close gives up. What a crash loses is what was queued.
type BatchWriter[T any] struct {
	cfg  BatchWriterConfig
	save func(context.Context, []T) error

	mu      sync.Mutex
	queue   []T
	held    int // rows of the batch being written, counted against QueueSize
	closing bool

	wake    chan struct{}
	runCtx  context.Context
	abandon context.CancelFunc
	done    chan struct{}
}

// NewBatchWriter starts a writer that hands batches to save. save must
// store a batch whole or not at all, and tolerate a batch it stored
// already (a retry after an error it returned late).
func NewBatchWriter[T any](save func(context.Context, []T) error, cfg BatchWriterConfig) *BatchWriter[T] {
	rc := RecorderConfig{QueueSize: cfg.QueueSize, BatchSize: cfg.BatchSize, FlushInterval: cfg.FlushInterval,
		RetryMin: cfg.RetryMin, RetryMax: cfg.RetryMax, Clock: cfg.Clock, Logger: cfg.Logger}.withDefaults()
	cfg.QueueSize, cfg.BatchSize, cfg.FlushInterval = rc.QueueSize, rc.BatchSize, rc.FlushInterval
	cfg.RetryMin, cfg.RetryMax, cfg.Clock, cfg.Logger = rc.RetryMin, rc.RetryMax, rc.Clock, rc.Logger
	if cfg.What == "" {
		cfg.What = "row"
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &BatchWriter[T]{cfg: cfg, save: save, wake: make(chan struct{}, 1), runCtx: ctx, abandon: cancel,
		done: make(chan struct{})}
	go w.run()
	return w
}

// Offer queues row for writing, or answers ErrQueueFull or
// ErrWriterClosed without queueing it. It never waits on the store.
func (w *BatchWriter[T]) Offer(row T) error {
	w.mu.Lock()
	switch {
	case w.closing:
		w.mu.Unlock()
		return ErrWriterClosed
	case len(w.queue)+w.held >= w.cfg.QueueSize:
		w.mu.Unlock()
		return ErrQueueFull
	}
	w.queue = append(w.queue, row)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return nil
}

// Depth is the rows queued or being written.
func (w *BatchWriter[T]) Depth() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue) + w.held
}

// Close writes every queued row and stops the writer; when ctx ends first
// the write in progress is abandoned and an error says how many rows were
// lost. Offer after Close refuses.
func (w *BatchWriter[T]) Close(ctx context.Context) error {
	w.mu.Lock()
	w.closing = true
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	select {
	case <-w.done:
	case <-ctx.Done():
		w.abandon()
		<-w.done
	}
	w.abandon()
	w.mu.Lock()
	lost := len(w.queue) + w.held
	w.queue, w.held = nil, 0
	w.mu.Unlock()
	if lost > 0 {
		w.cfg.Logger.Error(w.cfg.What+" writer stopped with rows unwritten", "dropped", lost, "err", context.Cause(ctx))
		return fmt.Errorf("%s writer closed with %d rows unwritten: %w", w.cfg.What, lost, context.Cause(ctx))
	}
	return nil
}

func (w *BatchWriter[T]) run() {
	defer close(w.done)
	for {
		batch, ok := w.next()
		if !ok {
			return
		}
		if !w.write(batch) {
			return
		}
	}
}

// next waits until a batch is due (full, FlushInterval after its first
// row, or closing) and takes it; false when closing with nothing left, or
// abandoned.
func (w *BatchWriter[T]) next() ([]T, bool) {
	var flush <-chan struct{}
	var stopTimer func() bool
	defer func() {
		if stopTimer != nil {
			stopTimer()
		}
	}()
	for {
		w.mu.Lock()
		n := len(w.queue)
		if n >= w.cfg.BatchSize || (n > 0 && (w.closing || flush == closedChan)) {
			k := min(n, w.cfg.BatchSize)
			batch := make([]T, k)
			copy(batch, w.queue)
			w.queue = append(w.queue[:0:0], w.queue[k:]...)
			w.held = k
			w.mu.Unlock()
			return batch, true
		}
		if n == 0 && w.closing {
			w.mu.Unlock()
			return nil, false
		}
		w.mu.Unlock()
		if n > 0 && flush == nil {
			fired := make(chan struct{})
			flush = fired
			stopTimer = w.cfg.Clock.AfterFunc(w.cfg.FlushInterval, func() { close(fired) })
		}
		select {
		case <-w.wake:
		case <-flush:
			flush = closedChan
		case <-w.runCtx.Done():
			return nil, false
		}
	}
}

// closedChan marks a flush timer that has fired.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// write saves batch until it succeeds (true) or the writer is abandoned.
func (w *BatchWriter[T]) write(batch []T) bool {
	backoff := w.cfg.RetryMin
	failing := false
	for {
		err := w.save(w.runCtx, batch)
		if err == nil {
			w.mu.Lock()
			w.held = 0
			w.mu.Unlock()
			if failing {
				w.cfg.Logger.Info(w.cfg.What + " store is back; writing the queued rows")
			}
			return true
		}
		if w.runCtx.Err() != nil {
			return false
		}
		if !failing {
			failing = true
			w.cfg.Logger.Warn(w.cfg.What+" store write failed; keeping the rows and retrying", "err", err, "rows", len(batch))
		}
		if !sleepClock(w.runCtx, w.cfg.Clock, backoff) {
			return false
		}
		backoff = min(2*backoff, w.cfg.RetryMax)
	}
}
