package access

import (
	"sync"
	"time"
)

// DefaultMaxLimitedCredentials bounds a Limiter's table. Its keys are
// verified credentials only (token ids, the magic word), never anything a
// stranger makes up, so the bound is reached only by a very large fleet.
const DefaultMaxLimitedCredentials = 10000

// Limiter is a token bucket per credential: Burst calls at once, refilled at
// PerMinute a minute. Safe for concurrent use.
type Limiter struct {
	perMinute float64
	burst     float64
	maxKeys   int
	now       func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewLimiter returns a Limiter allowing perMinute calls a minute per key,
// perMinute at once. now nil means time.Now.
func NewLimiter(perMinute int, now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{perMinute: float64(max(perMinute, 1)), burst: float64(max(perMinute, 1)),
		maxKeys: DefaultMaxLimitedCredentials, now: now, buckets: make(map[string]*bucket)}
}

// Allow takes one call from key's bucket. When it is empty, ok is false and
// retryAfter says when the next call will be allowed.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, found := l.buckets[key]
	if !found {
		l.makeRoom(now)
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.at).Minutes()*l.perMinute)
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.perMinute * float64(time.Minute))
	return false, max(wait, time.Second)
}

// Len is how many credentials the table holds.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// makeRoom keeps the table under maxKeys: full buckets (as good as new) go
// first, then arbitrary ones.
func (l *Limiter) makeRoom(now time.Time) {
	if len(l.buckets) < l.maxKeys {
		return
	}
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.at).Minutes()*l.perMinute >= l.burst {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < l.maxKeys {
			return
		}
		delete(l.buckets, k)
	}
}
