package domain

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/foresight-vision/foresight/ports"
)

// DefaultBiometricQueueSize bounds the biometric windows waiting for the
// store (FORESIGHT_BIOMETRIC_QUEUE).
const DefaultBiometricQueueSize = 10_000

// BiometricIntakeConfig configures a BiometricIntake; zero fields take
// defaults.
type BiometricIntakeConfig struct {
	QueueSize     int
	FlushInterval time.Duration
	Clock         Clock
	Writer        BatchWriterConfig
}

// BiometricIntake takes the wearer app's uploads: each window is queued
// for a batching writer, and answered with the time it was first received,
// the same for every repeat of its (device, window id). A window counts as
// received once the queue has taken it: a crash before its batch is
// written loses it (the app's retry then stores it anew).
//
// Repeats are told from new windows by a small map of the ids recently
// taken, then by the store. The map holds at least the ids of every window
// still queued (it keeps the 2×QueueSize newest, and the queue holds at most
// QueueSize), so a repeat is never missed while its first upload is unwritten.
type BiometricIntake struct {
	store  ports.BiometricStore
	writer *BatchWriter[ports.BiometricWindow]
	clock  Clock

	mu     sync.Mutex
	recent map[biometricKey]time.Time
	order  []biometricKey // ring of recent's keys, oldest at next
	next   int
}

type biometricKey struct{ device, window string }

// NewBiometricIntake starts the intake's writer over store.
func NewBiometricIntake(store ports.BiometricStore, cfg BiometricIntakeConfig) *BiometricIntake {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultBiometricQueueSize
	}
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	wc := cfg.Writer
	wc.QueueSize, wc.Clock = cfg.QueueSize, cfg.Clock
	if wc.What == "" {
		wc.What = "biometric window"
	}
	if cfg.FlushInterval > 0 {
		wc.FlushInterval = cfg.FlushInterval
	}
	return &BiometricIntake{
		store:  store,
		writer: NewBatchWriter(store.SaveBiometrics, wc),
		clock:  cfg.Clock,
		recent: make(map[biometricKey]time.Time, 2*cfg.QueueSize),
		order:  make([]biometricKey, 2*cfg.QueueSize),
	}
}

// Take queues w (its StoredAt set by the intake) unless its (Device,
// WindowID) was taken before, and answers its first receipt time. Errors:
// ErrQueueFull (the store is behind: nothing was taken), ErrWriterClosed,
// or the store's when it cannot tell whether the window is a repeat.
func (b *BiometricIntake) Take(ctx context.Context, w ports.BiometricWindow) (time.Time, error) {
	key := biometricKey{w.Device, w.WindowID}
	b.mu.Lock()
	at, ok := b.recent[key]
	b.mu.Unlock()
	if ok {
		return at, nil
	}
	at, ok, err := b.store.BiometricStoredAt(ctx, w.Device, w.WindowID)
	if err != nil {
		return time.Time{}, fmt.Errorf("look up biometric window: %w", err)
	}
	if ok {
		return at, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if at, ok := b.recent[key]; ok { // a concurrent upload of the same window won
		return at, nil
	}
	w.StoredAt = b.clock.Now().UTC().Truncate(time.Microsecond) // as the stores keep it
	if err := b.writer.Offer(w); err != nil {
		return time.Time{}, err
	}
	if old := b.order[b.next]; old != (biometricKey{}) {
		delete(b.recent, old)
	}
	b.order[b.next] = key
	b.next = (b.next + 1) % len(b.order)
	b.recent[key] = w.StoredAt
	return w.StoredAt, nil
}

// Depth is the windows queued or being written.
func (b *BiometricIntake) Depth() int { return b.writer.Depth() }

// Close writes the queued windows (see BatchWriter.Close).
func (b *BiometricIntake) Close(ctx context.Context) error { return b.writer.Close(ctx) }
