package ports

import (
	"errors"
	"math/bits"
)

// ErrUndecodableFrame is wrapped by FrameAnalyzer.Analyze when a frame is not
// an image it can read (corrupt, truncated, another format, too large).
var ErrUndecodableFrame = errors.New("undecodable frame")

// FrameSignature is a small summary of one frame, enough to tell whether the
// scene changed since another frame and whether the frame is worth showing a
// model at all.
type FrameSignature struct {
	// Hash is a 64-bit difference hash of the luma plane: bit i is set when
	// cell i of an 8×8 grid is brighter than its right-hand neighbour in a
	// 9×8 reduction. Similar pictures differ in few bits.
	Hash uint64
	// MeanLuma is the mean of the luma plane, 0 (black) to 255 (white).
	MeanLuma float64
	// Sharpness is the variance of the 4-neighbour Laplacian over the luma
	// plane reduced to the analyzer's grid, in (luma levels)²: low means
	// few edges (blurred, or a featureless view).
	Sharpness float64
}

// Distance is the number of bits in which the two hashes differ, 0 to 64.
func (s FrameSignature) Distance(other FrameSignature) int {
	return bits.OnesCount64(s.Hash ^ other.Hash)
}

// FrameAnalyzer turns one encoded frame into its signature. Implementations
// must be safe for concurrent use and bound the memory one frame may take.
type FrameAnalyzer interface {
	// Analyze returns the frame's signature, or an error wrapping
	// ErrUndecodableFrame when the frame cannot be read.
	Analyze(frame []byte) (FrameSignature, error)
}
