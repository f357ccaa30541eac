package domain

// frameBuffer holds the frames waiting for the next chunk, oldest first, in
// a ring so that appending and dropping never allocate once it exists.
type frameBuffer struct {
	ring     [][]byte
	head     int // index of the oldest frame
	count    int
	bytes    int64
	maxCount int
	maxBytes int64
	budget   *MemoryBudget // shared with other streams; nil is unlimited
}

func newFrameBuffer(maxCount int, maxBytes int64, budget *MemoryBudget) frameBuffer {
	return frameBuffer{maxCount: maxCount, maxBytes: maxBytes, budget: budget}
}

// push appends frame, first dropping the oldest frames as needed to stay
// within the stream's bounds and the shared budget. When the budget cannot
// hold the frame even alone, the frame itself is dropped (kept is false).
func (b *frameBuffer) push(frame []byte) (droppedFrames int, droppedBytes int64, kept bool) {
	if b.ring == nil {
		// Allocated on the first frame, so idle streams cost nothing.
		b.ring = make([][]byte, b.maxCount)
	}
	size := int64(len(frame))
	for b.count > 0 && (b.count == b.maxCount || b.bytes+size > b.maxBytes) {
		droppedBytes += b.dropOldest()
		droppedFrames++
	}
	for !b.budget.TryAcquire(size) {
		if b.count == 0 {
			return droppedFrames + 1, droppedBytes + size, false
		}
		droppedBytes += b.dropOldest()
		droppedFrames++
	}
	b.ring[(b.head+b.count)%b.maxCount] = frame
	b.count++
	b.bytes += size
	return droppedFrames, droppedBytes, true
}

// dropOldest removes the oldest frame, gives its bytes back to the budget
// and returns its size.
func (b *frameBuffer) dropOldest() int64 {
	size := int64(len(b.ring[b.head]))
	b.bytes -= size
	b.budget.Release(size)
	b.ring[b.head] = nil // let the frame be collected
	b.head = (b.head + 1) % b.maxCount
	b.count--
	return size
}

// take removes and returns every buffered frame, oldest first, with their
// size. The bytes stay taken from the budget: the caller releases them when
// it is done with the frames.
func (b *frameBuffer) take() ([][]byte, int64) {
	frames := make([][]byte, b.count)
	size := b.bytes
	for i := range frames {
		frames[i] = b.ring[b.head]
		b.ring[b.head] = nil
		b.head = (b.head + 1) % b.maxCount
	}
	b.count, b.bytes, b.head = 0, 0, 0
	return frames, size
}

// clear drops every buffered frame.
func (b *frameBuffer) clear() {
	for b.count > 0 {
		b.dropOldest()
	}
	b.head = 0
}
