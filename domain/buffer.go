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
}

func newFrameBuffer(maxCount int, maxBytes int64) frameBuffer {
	return frameBuffer{maxCount: maxCount, maxBytes: maxBytes}
}

// push appends frame, first dropping the oldest frames as needed to stay
// within both bounds. It reports what was dropped.
func (b *frameBuffer) push(frame []byte) (droppedFrames int, droppedBytes int64) {
	if b.ring == nil {
		// Allocated on the first frame, so idle streams cost nothing.
		b.ring = make([][]byte, b.maxCount)
	}
	size := int64(len(frame))
	for b.count > 0 && (b.count == b.maxCount || b.bytes+size > b.maxBytes) {
		droppedBytes += int64(len(b.ring[b.head]))
		b.dropOldest()
		droppedFrames++
	}
	b.ring[(b.head+b.count)%b.maxCount] = frame
	b.count++
	b.bytes += size
	return droppedFrames, droppedBytes
}

func (b *frameBuffer) dropOldest() {
	b.bytes -= int64(len(b.ring[b.head]))
	b.ring[b.head] = nil // let the frame be collected
	b.head = (b.head + 1) % b.maxCount
	b.count--
}

// take removes and returns every buffered frame, oldest first.
func (b *frameBuffer) take() [][]byte {
	frames := make([][]byte, b.count)
	for i := range frames {
		frames[i] = b.ring[b.head]
		b.dropOldest()
	}
	b.head = 0
	return frames
}

// clear drops every buffered frame.
func (b *frameBuffer) clear() {
	for b.count > 0 {
		b.dropOldest()
	}
	b.head = 0
}
