package benchcmd

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// histogram is a fixed-size, lock-free latency histogram in microseconds
// with log-linear buckets (HDR-like): exact below 64 µs, then 32 buckets per
// power of two (relative error under 3.2%). Memory is constant (about 15 KiB)
// however many samples are recorded.
type histogram struct {
	counts [numBuckets]atomic.Int64
	total  atomic.Int64
	sumUS  atomic.Int64
	maxUS  atomic.Int64
}

const (
	linear     = 64
	perOctave  = 32
	numBuckets = linear + (64-6)*perOctave
)

func bucketOf(us int64) int {
	if us < linear {
		return int(max(us, 0))
	}
	shift := bits.Len64(uint64(us)) - 6 // us>>shift is in [32, 64)
	top := us >> shift
	return linear + (shift-1)*perOctave + int(top-32)
}

// upperBound is the largest value that falls in bucket i.
func upperBound(i int) int64 {
	if i < linear {
		return int64(i)
	}
	i -= linear
	shift := i/perOctave + 1
	top := int64(i%perOctave + 32)
	return (top+1)<<shift - 1
}

func (h *histogram) record(d time.Duration) {
	us := d.Microseconds()
	h.counts[bucketOf(us)].Add(1)
	h.total.Add(1)
	h.sumUS.Add(us)
	for {
		m := h.maxUS.Load()
		if us <= m || h.maxUS.CompareAndSwap(m, us) {
			return
		}
	}
}

// quantile returns the upper bound of the bucket holding the q-th sample
// (never above the true maximum), so reported percentiles err high.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	rank := int64(q*float64(n) + 0.999999)
	rank = max(1, min(rank, n))
	var seen int64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return time.Duration(min(upperBound(i), h.maxUS.Load())) * time.Microsecond
		}
	}
	return time.Duration(h.maxUS.Load()) * time.Microsecond
}

func (h *histogram) mean() time.Duration {
	n := h.total.Load()
	if n == 0 {
		return 0
	}
	return time.Duration(h.sumUS.Load()/n) * time.Microsecond
}

func (h *histogram) max() time.Duration { return time.Duration(h.maxUS.Load()) * time.Microsecond }
