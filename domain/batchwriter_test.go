package domain_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/domain"
)

type intSink struct {
	mu      sync.Mutex
	fail    bool
	batches [][]int
}

func (s *intSink) save(_ context.Context, rows []int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("store down")
	}
	s.batches = append(s.batches, append([]int(nil), rows...))
	return nil
}

func (s *intSink) snapshot() [][]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]int(nil), s.batches...)
}

// TestBatchWriterBatchesFlushesAndRefusesWhenFull: rows go out in batches
// of BatchSize, a partial one after FlushInterval; past QueueSize Offer
// refuses instead of dropping a row it took, and a failed batch is kept
// and retried until the store is back.
func TestBatchWriterBatchesFlushesAndRefusesWhenFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &intSink{fail: true}
		w := domain.NewBatchWriter(sink.save, domain.BatchWriterConfig{QueueSize: 4, BatchSize: 2,
			FlushInterval: time.Second, RetryMin: time.Second, RetryMax: time.Second})
		for i := range 4 {
			require.NoError(t, w.Offer(i))
		}
		synctest.Wait()
		assert.ErrorIs(t, w.Offer(99), domain.ErrQueueFull, "the store is down and the queue holds 4")
		assert.Equal(t, 4, w.Depth())

		sink.mu.Lock()
		sink.fail = false
		sink.mu.Unlock()
		time.Sleep(time.Second) // the retry
		synctest.Wait()
		assert.Equal(t, [][]int{{0, 1}, {2, 3}}, sink.snapshot())

		require.NoError(t, w.Offer(4))
		synctest.Wait()
		assert.Len(t, sink.snapshot(), 2, "a lone row waits for its batch to fill or the flush")
		time.Sleep(time.Second)
		synctest.Wait()
		assert.Equal(t, [][]int{{0, 1}, {2, 3}, {4}}, sink.snapshot())

		require.NoError(t, w.Offer(5))
		require.NoError(t, w.Close(t.Context()), "Close writes what is queued")
		assert.Equal(t, []int{5}, sink.snapshot()[3])
		assert.ErrorIs(t, w.Offer(6), domain.ErrWriterClosed)
	})
}

// TestBatchWriterCloseReportsWhatItLost: a store that never comes back
// leaves the queued rows unwritten; Close says how many when its context
// ends.
func TestBatchWriterCloseReportsWhatItLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &intSink{fail: true}
		w := domain.NewBatchWriter(sink.save, domain.BatchWriterConfig{QueueSize: 10, BatchSize: 2, What: "thing"})
		for i := range 3 {
			require.NoError(t, w.Offer(i))
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		err := w.Close(ctx)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "thing writer closed with 3 rows unwritten")
	})
}
