package domain

import "sync/atomic"

// MemoryBudget bounds the frame bytes that every stream sharing it holds at
// once: frames waiting for the next chunk, chunks whose call is in flight,
// and (in the server) messages being read. Per-stream bounds alone would let
// many streams together exhaust memory. It is safe for concurrent use; a nil
// *MemoryBudget is unlimited.
type MemoryBudget struct {
	limit int64
	used  atomic.Int64
}

// NewMemoryBudget returns a budget of limit bytes.
func NewMemoryBudget(limit int64) *MemoryBudget { return &MemoryBudget{limit: limit} }

// TryAcquire takes n bytes if they fit and reports whether it did.
func (b *MemoryBudget) TryAcquire(n int64) bool {
	if b == nil || n <= 0 {
		return true
	}
	for {
		used := b.used.Load()
		if used+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

// Release gives back n bytes taken with TryAcquire.
func (b *MemoryBudget) Release(n int64) {
	if b != nil && n > 0 {
		b.used.Add(-n)
	}
}

// Used reports the bytes taken now.
func (b *MemoryBudget) Used() int64 {
	if b == nil {
		return 0
	}
	return b.used.Load()
}

// Limit reports the budget's size.
func (b *MemoryBudget) Limit() int64 {
	if b == nil {
		return 0
	}
	return b.limit
}
