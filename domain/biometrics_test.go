package domain_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/ports"
)

// memBiometrics is a ports.BiometricStore in memory, counting saved rows.
type memBiometrics struct {
	ports.BiometricStore
	mu    sync.Mutex
	down  bool // SaveBiometrics fails
	rows  map[string]time.Time
	saved int
}

func (m *memBiometrics) SaveBiometrics(_ context.Context, ws []ports.BiometricWindow) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return context.DeadlineExceeded
	}
	for _, w := range ws {
		m.saved++
		if _, ok := m.rows[w.Device+"/"+w.WindowID]; !ok {
			m.rows[w.Device+"/"+w.WindowID] = w.StoredAt
		}
	}
	return nil
}

func (m *memBiometrics) BiometricStoredAt(_ context.Context, device, id string) (time.Time, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	at, ok := m.rows[device+"/"+id]
	return at, ok, nil
}

// TestBiometricIntakeAnswersARepeatWithTheFirstReceipt: a repeat is
// answered with the first upload's time, whether the first is still
// queued or already stored, and is not queued again.
func TestBiometricIntakeAnswersARepeatWithTheFirstReceipt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &memBiometrics{rows: map[string]time.Time{}, down: true}
		in := domain.NewBiometricIntake(store, domain.BiometricIntakeConfig{QueueSize: 2, FlushInterval: time.Second})
		w := ports.BiometricWindow{Device: "kit", WindowID: "a"}
		first, err := in.Take(t.Context(), w)
		require.NoError(t, err)
		time.Sleep(10 * time.Millisecond)
		again, err := in.Take(t.Context(), w) // the store is down: still queued
		require.NoError(t, err)
		assert.Equal(t, first, again)
		assert.Equal(t, 1, in.Depth(), "a repeat is not queued")
		store.mu.Lock()
		store.down = false
		store.mu.Unlock()

		time.Sleep(2 * time.Second) // written
		synctest.Wait()
		for i := range 3 { // push "a" out of the recent ids: the store answers
			_, err := in.Take(t.Context(), ports.BiometricWindow{Device: "kit", WindowID: string(rune('b' + i))})
			require.NoError(t, err)
			time.Sleep(2 * time.Second)
			synctest.Wait()
		}
		late, err := in.Take(t.Context(), w)
		require.NoError(t, err)
		assert.Equal(t, first, late)
		require.NoError(t, in.Close(t.Context()))
		assert.Equal(t, 4, store.saved, "each window queued once")
	})
}

// TestBiometricIntakeRefusesWhenTheQueueIsFull: past the bound an upload
// is refused, not taken and later dropped.
func TestBiometricIntakeRefusesWhenTheQueueIsFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := &memBiometrics{rows: map[string]time.Time{}}
		in := domain.NewBiometricIntake(store, domain.BiometricIntakeConfig{QueueSize: 2, FlushInterval: time.Hour,
			Writer: domain.BatchWriterConfig{BatchSize: 100}})
		for _, id := range []string{"a", "b"} {
			_, err := in.Take(t.Context(), ports.BiometricWindow{Device: "kit", WindowID: id})
			require.NoError(t, err)
		}
		_, err := in.Take(t.Context(), ports.BiometricWindow{Device: "kit", WindowID: "c"})
		assert.ErrorIs(t, err, domain.ErrQueueFull)
		require.NoError(t, in.Close(t.Context()))
		assert.Equal(t, 2, store.saved)
	})
}
