package domain

import "math"

// DefaultMaxFramesPerChunk is the most frames a chunk sends: the limit of the
// model apps this server was built for, which throw away any beyond it.
const DefaultMaxFramesPerChunk = 6

// SampleFrameIndices picks at most maxCount of count indices evenly across
// them, first and last included: numpy's linspace(0, count-1, maxCount)
// rounded half to even, duplicates removed, the rule the model side applies,
// so a chunk trimmed here holds the frames it would have kept. Indices are ascending; count or
// maxCount of zero or less gives none.
func SampleFrameIndices(count, maxCount int) []int {
	if count <= 0 || maxCount <= 0 {
		return nil
	}
	if count <= maxCount {
		picked := make([]int, count)
		for i := range picked {
			picked[i] = i
		}
		return picked
	}
	if maxCount == 1 {
		return []int{0}
	}
	step := float64(count-1) / float64(maxCount-1)
	picked := make([]int, 0, maxCount)
	for i := range maxCount {
		idx := int(math.RoundToEven(float64(i) * step))
		if len(picked) == 0 || idx != picked[len(picked)-1] {
			picked = append(picked, idx)
		}
	}
	picked[len(picked)-1] = count - 1
	return picked
}

// selectFrames keeps the frames SampleFrameIndices picks (all when maxCount
// is zero or less) and reports the bytes kept. frames is reused: the result
// aliases it, and the slots of frames not kept are cleared so they can be
// collected at once.
func selectFrames(frames [][]byte, maxCount int) (kept [][]byte, keptBytes int64) {
	if maxCount <= 0 || len(frames) <= maxCount {
		for _, f := range frames {
			keptBytes += int64(len(f))
		}
		return frames, keptBytes
	}
	picked := SampleFrameIndices(len(frames), maxCount)
	kept = frames[:0]
	for _, idx := range picked { // ascending, so idx >= len(kept): no overwrite of a frame still to copy
		f := frames[idx]
		kept = append(kept, f)
		keptBytes += int64(len(f))
	}
	clear(frames[len(kept):])
	return kept, keptBytes
}
