package domain_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/foresight-vision/foresight/domain"
)

// fakePruner holds caption start times and deletes the old ones in batches.
type fakePruner struct {
	mu     sync.Mutex
	starts []time.Time
	calls  []int // rows each call deleted
}

func (p *fakePruner) DeleteCaptionsBefore(_ context.Context, t time.Time, limit int) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	kept, n := p.starts[:0], 0
	for _, s := range p.starts {
		if s.Before(t) && n < limit {
			n++
			continue
		}
		kept = append(kept, s)
	}
	p.starts = kept
	p.calls = append(p.calls, n)
	return n, nil
}

func (p *fakePruner) snapshot() (int, []int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.starts), append([]int(nil), p.calls...)
}

func TestRetentionSweepsInBatchesAndAgainLater(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		now := time.Now()
		p := &fakePruner{}
		for i := range 7 {
			p.starts = append(p.starts, now.Add(-time.Duration(48+i)*time.Hour)) // old
		}
		p.starts = append(p.starts, now.Add(-time.Hour), now.Add(-23*time.Hour-30*time.Minute)) // young
		stop := domain.StartRetention(p, domain.RetentionConfig{MaxAge: 24 * time.Hour, Every: time.Hour, Batch: 3})
		synctest.Wait()
		left, calls := p.snapshot()
		assert.Equal(t, 2, left)
		assert.Equal(t, []int{3, 3, 1}, calls, "small batches until one comes back short")

		time.Sleep(59 * time.Minute)
		synctest.Wait()
		_, calls = p.snapshot()
		assert.Len(t, calls, 3, "nothing until the next sweep")
		time.Sleep(time.Minute)
		synctest.Wait()
		left, calls = p.snapshot()
		assert.Equal(t, 1, left, "the 23.5h-old caption is now past 24h")
		assert.Equal(t, []int{3, 3, 1, 1}, calls)
		stop()
		time.Sleep(5 * time.Hour)
		synctest.Wait()
		_, calls = p.snapshot()
		assert.Len(t, calls, 4, "no sweep after stop")
	})
}
