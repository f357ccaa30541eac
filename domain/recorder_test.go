package domain_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/domain/domaintest"
	"github.com/foresight-vision/foresight/ports"
)

// fakeStore is a ports.CaptionWriter the test can break, mend or hang.
type fakeStore struct {
	mu      sync.Mutex
	fail    bool
	hang    bool
	batches [][]ports.Caption
	rows    []string
	calls   int
}

func (s *fakeStore) SaveCaptions(ctx context.Context, cs []ports.Caption) error {
	s.mu.Lock()
	s.calls++
	fail, hang := s.fail, s.hang
	s.mu.Unlock()
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	if fail {
		return errors.New("database is down")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, append([]ports.Caption(nil), cs...))
	for _, c := range cs {
		s.rows = append(s.rows, c.ID)
	}
	return nil
}

func (s *fakeStore) set(fail, hang bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail, s.hang = fail, hang
}

func (s *fakeStore) stored() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.rows...)
}

func (s *fakeStore) batchSizes() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for _, b := range s.batches {
		out = append(out, len(b))
	}
	return out
}

// countingRecObs counts what the recorder reports.
type countingRecObs struct {
	mu                        sync.Mutex
	recorded, stored, dropped int
	batches, failedBatches    int
	depth                     int
}

func (o *countingRecObs) CaptionRecorded() { o.mu.Lock(); o.recorded++; o.mu.Unlock() }
func (o *countingRecObs) CaptionsStored(n int) {
	o.mu.Lock()
	o.stored += n
	o.mu.Unlock()
}
func (o *countingRecObs) CaptionsDropped(n int) {
	o.mu.Lock()
	o.dropped += n
	o.mu.Unlock()
}
func (o *countingRecObs) CaptionBatch(_ int, _ time.Duration, err error) {
	o.mu.Lock()
	o.batches++
	if err != nil {
		o.failedBatches++
	}
	o.mu.Unlock()
}
func (o *countingRecObs) CaptionQueueDepth(n int) { o.mu.Lock(); o.depth = n; o.mu.Unlock() }

func (o *countingRecObs) snapshot() countingRecObs {
	o.mu.Lock()
	defer o.mu.Unlock()
	return countingRecObs{recorded: o.recorded, stored: o.stored, dropped: o.dropped,
		batches: o.batches, failedBatches: o.failedBatches, depth: o.depth}
}

func caption(i int) ports.Caption {
	return ports.Caption{ID: fmt.Sprintf("c%03d", i), Device: "default", Text: "a caption"}
}

func ids(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, caption(i).ID)
	}
	return out
}

func TestRecorderBatchesBySizeAndInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &fakeStore{}
		obs := &countingRecObs{}
		rec := domain.NewRecorder(store, domain.RecorderConfig{BatchSize: 3, FlushInterval: time.Second, Observer: obs})
		for i := 1; i <= 5; i++ {
			rec.Record(caption(i))
		}
		synctest.Wait()
		assert.Equal(t, []int{3}, store.batchSizes(), "a full batch goes at once")
		time.Sleep(999 * time.Millisecond)
		synctest.Wait()
		assert.Equal(t, []int{3}, store.batchSizes(), "the rest waits for the interval")
		time.Sleep(time.Millisecond)
		synctest.Wait()
		assert.Equal(t, []int{3, 2}, store.batchSizes())
		assert.Equal(t, ids(1, 5), store.stored())
		require.NoError(t, rec.Close(t.Context()))
		got := obs.snapshot()
		assert.Equal(t, 5, got.recorded)
		assert.Equal(t, 5, got.stored)
		assert.Equal(t, 0, got.dropped)
		assert.Equal(t, 2, got.batches)
		assert.Equal(t, 0, got.depth)
	})
}

func TestRecorderOutageThenRecoveryWritesQueuedRows(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &fakeStore{}
		store.set(true, false)
		obs := &countingRecObs{}
		var logs bytes.Buffer
		rec := domain.NewRecorder(store, domain.RecorderConfig{
			BatchSize: 4, FlushInterval: time.Second, RetryMin: 100 * time.Millisecond, RetryMax: time.Second,
			Observer: obs, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		})
		for i := 1; i <= 10; i++ {
			rec.Record(caption(i))
		}
		time.Sleep(30 * time.Second) // a long outage: many retries
		synctest.Wait()
		assert.Empty(t, store.stored())
		assert.Greater(t, obs.snapshot().failedBatches, 10)
		assert.Equal(t, 1, strings.Count(logs.String(), "caption store write failed"), "one line per outage, not per retry")

		store.set(false, false)
		time.Sleep(2 * time.Second) // the backoff is capped at RetryMax, then the interval flushes the rest
		synctest.Wait()
		assert.Equal(t, ids(1, 10), store.stored(), "every queued row, in order, once")
		assert.Contains(t, logs.String(), "caption store is back")
		require.NoError(t, rec.Close(t.Context()))
		assert.Equal(t, 0, obs.snapshot().dropped)
	})
}

func TestRecorderBoundHoldsAndDropsOldest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &fakeStore{}
		store.set(true, false)
		obs := &countingRecObs{}
		var logs bytes.Buffer
		rec := domain.NewRecorder(store, domain.RecorderConfig{
			QueueSize: 5, BatchSize: 2, FlushInterval: time.Second, RetryMin: time.Second, RetryMax: time.Second,
			Observer: obs, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		})
		for i := 1; i <= 12; i++ {
			rec.Record(caption(i))
			synctest.Wait() // the writer is between retries, so its batch may shrink too
		}
		got := obs.snapshot()
		assert.Equal(t, 7, got.dropped)
		assert.Equal(t, 5, got.depth, "the bound holds")
		assert.Equal(t, 1, strings.Count(logs.String(), "caption queue full"), "logged once per burst")

		store.set(false, false)
		time.Sleep(3 * time.Second)
		synctest.Wait()
		assert.Equal(t, ids(8, 12), store.stored(), "the newest five survive")
		assert.Contains(t, logs.String(), "dropped=7")

		// A second burst is logged again.
		store.set(true, false)
		for i := 13; i <= 19; i++ {
			rec.Record(caption(i))
			synctest.Wait()
		}
		assert.Equal(t, 2, strings.Count(logs.String(), "caption queue full"))
		store.set(false, false)
		require.NoError(t, rec.Close(t.Context()))
		assert.Equal(t, append(ids(8, 12), ids(15, 19)...), store.stored())
		assert.Equal(t, 9, obs.snapshot().dropped)
	})
}

func TestRecorderCloseFlushesEverything(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &fakeStore{}
		rec := domain.NewRecorder(store, domain.RecorderConfig{BatchSize: 3, FlushInterval: time.Hour})
		for i := 1; i <= 7; i++ {
			rec.Record(caption(i))
		}
		require.NoError(t, rec.Close(t.Context()))
		assert.Equal(t, ids(1, 7), store.stored())
		rec.Record(caption(8)) // after Close: dropped, never written
		synctest.Wait()
		assert.Equal(t, ids(1, 7), store.stored())
	})
}

func TestRecorderCloseRetriesAFailingStoreUntilItWorks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &fakeStore{}
		store.set(true, false)
		rec := domain.NewRecorder(store, domain.RecorderConfig{RetryMin: time.Second, RetryMax: time.Second})
		rec.Record(caption(1))
		go func() {
			time.Sleep(5 * time.Second)
			store.set(false, false)
		}()
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		require.NoError(t, rec.Close(ctx))
		assert.Equal(t, ids(1, 1), store.stored())
	})
}

func TestRecorderNeverBlocksOnAHungStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &fakeStore{}
		store.set(false, true)
		obs := &countingRecObs{}
		rec := domain.NewRecorder(store, domain.RecorderConfig{QueueSize: 100, BatchSize: 10, Observer: obs})
		rec.Record(caption(0))
		time.Sleep(2 * time.Second)
		synctest.Wait() // the first batch is stuck inside SaveCaptions
		start := time.Now()
		for i := 1; i <= 20_000; i++ {
			rec.Record(caption(i))
		}
		assert.Zero(t, time.Since(start), "Record waits on nothing (fake time stands still unless something blocks)")
		assert.Equal(t, 100, obs.snapshot().depth)

		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		err := rec.Close(ctx)
		require.Error(t, err)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Contains(t, err.Error(), "100 captions unwritten")
		got := obs.snapshot()
		assert.Equal(t, 20_001, got.recorded)
		assert.Equal(t, 20_001, got.dropped, "all given up: 19,901 for the bound, 100 at Close")
		assert.Equal(t, 0, got.stored)
	})
}

func TestDeviceID(t *testing.T) {
	for _, ok := range []string{"default", "a", "glasses-01", "Kit_2.v3", strings.Repeat("x", 64)} {
		got, err := domain.DeviceID(ok)
		require.NoError(t, err, ok)
		assert.Equal(t, ok, got)
	}
	got, err := domain.DeviceID("")
	require.NoError(t, err)
	assert.Equal(t, domain.DefaultDevice, got)
	for _, bad := range []string{strings.Repeat("x", 65), "a b", "a/b", "ü", "a\x00", "%41"} {
		_, err := domain.DeviceID(bad)
		assert.ErrorIs(t, err, domain.ErrBadDevice, bad)
	}
}

// captionLog is a ports.CaptionSink that keeps what it is handed.
type captionLog struct {
	mu  sync.Mutex
	got []ports.Caption
}

func (l *captionLog) Record(c ports.Caption) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, c)
}

func (l *captionLog) all() []ports.Caption {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ports.Caption(nil), l.got...)
}

// TestStreamHandsDeliveredCaptionsToItsSink: a caption goes to the stream's
// sink on the ack that delivers it, labelled with the stream, its device
// and the backend; a failure, a reply without a caption and an empty
// caption are not captions.
func TestStreamHandsDeliveredCaptionsToItsSink(t *testing.T) {
	replies := []struct {
		res ports.Result
		err error
	}{
		{res: ports.Result{Caption: "The wearer pours coffee", LatencyMS: 812.5, ChunkStartS: 2, ChunkEndS: 4.5,
			TokensGenerated: 12, Set: ports.ResultAll}},
		{err: errors.New("boom")},
		{res: ports.Result{LatencyMS: 3, Set: ports.ResultLatency, Extras: map[string]any{"caption": "an extra"}}},
		{res: ports.Result{ChunkStartS: 1, Set: ports.ResultAll}},
		{res: ports.Result{Caption: "a cup", Set: ports.ResultCaption}},
	}
	var calls atomic.Int32
	backend := &domaintest.Backend{Infer: func(context.Context, ports.Chunk) (ports.Result, error) {
		i := int(calls.Add(1) - 1)
		if i >= len(replies) {
			return ports.Result{}, nil // the chunk cut by the last frame
		}
		return replies[i].res, replies[i].err
	}}
	clock := domaintest.NewClock()
	start := clock.Now()
	sink := &captionLog{}
	s := domain.StartStream(backend, ports.SessionRequest{StreamID: "s1", Device: "kit"}, domain.StreamConfig{
		Clock: clock, Captions: sink, BackendName: "backend-a", ModelName: "model-a"})
	defer s.Close(context.Background())
	s.AwaitCall() // the open

	s.HandleFrame([]byte{1}) // cuts the first chunk
	for frame := 2; frame <= len(replies)+1; frame++ {
		s.AwaitCall()
		s.HandleFrame([]byte{1}) // delivers the previous reply, cuts the next chunk
		if frame == 2 {
			require.Len(t, sink.all(), 1, "handed over by the time its ack is returned")
		}
	}
	assert.Equal(t, []ports.Caption{
		{ID: "s1-2", Device: "kit", StreamID: "s1",
			Start: start.Add(2 * time.Second), End: start.Add(4500 * time.Millisecond),
			ChunkStartS: 2, ChunkEndS: 4.5, Text: "The wearer pours coffee", LatencyMS: 812.5, Tokens: 12,
			Backend: "backend-a", Model: "model-a"},
		{ID: "s1-6", Device: "kit", StreamID: "s1", Start: start, End: start, Text: "a cup",
			Backend: "backend-a", Model: "model-a"},
	}, sink.all())
}

// TestPreparedRecorderWritesOnceStarted: a recorder built before its store
// is open queues what it is handed and writes it once started; one closed
// without a start reports what it lost and starts no writer.
func TestPreparedRecorderWritesOnceStarted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := domain.PrepareRecorder(domain.RecorderConfig{FlushInterval: time.Second})
		r.Record(ports.Caption{ID: "a"})
		r.Record(ports.Caption{ID: "b"})
		store := &fakeStore{}
		r.Start(store)
		require.NoError(t, r.Close(context.Background()))
		assert.Equal(t, []string{"a", "b"}, store.stored())

		idle := domain.PrepareRecorder(domain.RecorderConfig{})
		idle.Record(ports.Caption{ID: "c"})
		err := idle.Close(context.Background())
		require.Error(t, err)
		assert.Contains(t, err.Error(), "1 captions unwritten")
		idle.Start(store) // too late: nothing starts
		idle.Record(ports.Caption{ID: "d"})
		synctest.Wait()
		assert.Equal(t, []string{"a", "b"}, store.stored())
	})
}

// gatedStore blocks every SaveCaptions until release is closed.
type gatedStore struct {
	release chan struct{}
	mu      sync.Mutex
	rows    []string
}

func (s *gatedStore) SaveCaptions(ctx context.Context, cs []ports.Caption) error {
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cs {
		s.rows = append(s.rows, c.ID)
	}
	return nil
}

// TestRecorderKeepsTheNewestWhileABatchIsWritten: a batch in flight never
// holds the whole queue, so a caption arriving while it is written displaces
// the oldest queued one instead of being lost itself.
func TestRecorderKeepsTheNewestWhileABatchIsWritten(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &gatedStore{release: make(chan struct{})}
		rec := domain.NewRecorder(store, domain.RecorderConfig{QueueSize: 4})
		for i := range 4 {
			rec.Record(caption(i))
		}
		time.Sleep(2 * time.Second)
		synctest.Wait() // a batch is inside SaveCaptions
		rec.Record(caption(4))
		close(store.release)
		require.NoError(t, rec.Close(t.Context()))
		store.mu.Lock()
		defer store.mu.Unlock()
		assert.Contains(t, store.rows, caption(4).ID, "the newest caption is kept")
		assert.Len(t, store.rows, 4, "the bound held: one caption gave way")
	})
}

// TestRecorderCloseCountsAndLogsWhatAFailingStoreKept: a store that fails
// every write (a read-only file) leaves captions queued at the stop: they
// are counted as dropped and logged with their number.
func TestRecorderCloseCountsAndLogsWhatAFailingStoreKept(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &fakeStore{}
		store.set(true, false)
		obs := &countingRecObs{}
		var logs bytes.Buffer
		rec := domain.NewRecorder(store, domain.RecorderConfig{BatchSize: 2, RetryMin: time.Second, RetryMax: time.Second,
			Observer: obs, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		for i := 1; i <= 5; i++ {
			rec.Record(caption(i))
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		err := rec.Close(ctx)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "5 captions unwritten")
		assert.Equal(t, 5, obs.snapshot().dropped)
		assert.Contains(t, logs.String(), "caption recorder stopped with captions unwritten")
		assert.Contains(t, logs.String(), "dropped=5")
	})
}

// TestRecorderDefaultsWriteACaptionWithin250ms: with the default settings a
// lone caption is written no later than 250 ms after its ack (fake time):
// the most a crash can lose, as docs/deployment.md states.
func TestRecorderDefaultsWriteACaptionWithin250ms(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &fakeStore{}
		rec := domain.NewRecorder(store, domain.RecorderConfig{})
		rec.Record(caption(1))
		time.Sleep(250 * time.Millisecond)
		synctest.Wait()
		assert.Equal(t, ids(1, 1), store.stored(), "written within the crash window")
		require.NoError(t, rec.Close(t.Context()))
	})
}
