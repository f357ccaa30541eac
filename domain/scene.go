package domain

import (
	"math"
	"time"

	"github.com/foresight-vision/foresight/ports"
)

// Defaults of SceneConfig. The thresholds were calibrated on the ffmpeg clip
// of adapters/scene/jpegscene's calibration test (see docs/benchmarks.md).
const (
	// DefaultChangeThreshold is the largest Hamming distance, in bits of the
	// 64-bit difference hash, at which a chunk still counts as the same
	// scene as the last chunk the model saw (FORESIGHT_CHANGE_THRESHOLD).
	DefaultChangeThreshold = 10
	// DefaultMaxSkip is the longest time unchanged chunks are skipped: after
	// it the next usable chunk goes to the model whatever it shows
	// (FORESIGHT_MAX_SKIP).
	DefaultMaxSkip = 10 * time.Second
	// DefaultDarkLuma is the mean luma (0–255) below which a frame is dark:
	// a covered lens or a pocket, not a dim room (FORESIGHT_DARK_LUMA).
	DefaultDarkLuma = 20.0
	// DefaultBlurSharpness is the variance of the Laplacian, in squared luma
	// levels on the analyzer's reduced grid, below which a frame is blurred
	// (FORESIGHT_BLUR_SHARPNESS).
	DefaultBlurSharpness = 60.0
)

// SceneConfig tunes a SceneGate. The zero value switches both features off:
// chunks pass unchanged and no frame is analysed. The dark and blur
// thresholds mean what their settings mean: zero turns the test off, never
// "the default"; DefaultSceneConfig carries the calibrated ones.
type SceneConfig struct {
	// SkipUnchanged skips the model call for a chunk whose last usable frame
	// shows the same scene as the last chunk the model saw
	// (FORESIGHT_SKIP_UNCHANGED).
	SkipUnchanged bool
	// ChangeThreshold is the largest hash distance, in bits (0–64), that
	// still counts as unchanged. Zero means DefaultChangeThreshold.
	ChangeThreshold int
	// MaxSkip bounds how long unchanged chunks are skipped, measured from
	// the last call. Zero or negative means DefaultMaxSkip.
	MaxSkip time.Duration
	// RejectUnusable leaves dark, blurred and undecodable frames out of the
	// chunk; a chunk with no usable frame is not sent
	// (FORESIGHT_REJECT_UNUSABLE).
	RejectUnusable bool
	// DarkLuma: a frame whose mean luma is below it is dark
	// (FORESIGHT_DARK_LUMA). Zero (or less) turns the dark test off.
	DarkLuma float64
	// BlurSharpness: a frame whose sharpness is below it is blurred
	// (FORESIGHT_BLUR_SHARPNESS). Zero (or less) turns the blur test off.
	BlurSharpness float64
	// SampleFrames bounds the frames analysed per chunk when RejectUnusable
	// is on (each costs a JPEG decode): that many, evenly spaced, first and
	// last included; the frames between them are kept untested, or dropped
	// with the chunk when every sampled frame is unusable. Zero means every
	// frame.
	SampleFrames int
}

// DefaultSceneConfig is the server's scene gate (the settings' defaults):
// both features off, the calibrated thresholds ready for when one is
// switched on.
func DefaultSceneConfig() SceneConfig {
	return SceneConfig{
		ChangeThreshold: DefaultChangeThreshold,
		MaxSkip:         DefaultMaxSkip,
		DarkLuma:        DefaultDarkLuma,
		BlurSharpness:   DefaultBlurSharpness,
	}
}

// withDefaults fills the skip tuning, which has no meaningful zero (the
// settings refuse one); the dark and blur thresholds are taken as given.
func (c SceneConfig) withDefaults() SceneConfig {
	if c.ChangeThreshold <= 0 {
		c.ChangeThreshold = DefaultChangeThreshold
	}
	if c.MaxSkip <= 0 {
		c.MaxSkip = DefaultMaxSkip
	}
	return c
}

// SkipReason says why a chunk was not sent to the model; empty means it was.
type SkipReason string

// Reasons a SceneGate skips a chunk.
const (
	SkipNone        SkipReason = ""
	SkipUnchanged   SkipReason = "unchanged"   // same scene as the last call, within MaxSkip
	SkipDark        SkipReason = "dark"        // every analysed frame unusable, most of them dark
	SkipBlurred     SkipReason = "blurred"     // every analysed frame unusable, most of them blurred
	SkipUndecodable SkipReason = "undecodable" // every analysed frame unusable, most of them unreadable
)

// CameraState is what the camera's frames look like, reported to the client
// on an ack in the "camera" field when it changes.
type CameraState string

// Camera states. A stream starts in CameraOK, which is therefore reported only
// after a dark or blurred spell ends.
const (
	CameraOK      CameraState = "ok"
	CameraDark    CameraState = "dark"
	CameraBlurred CameraState = "blurred"
)

// SceneDecision is what to do with one cut chunk.
type SceneDecision struct {
	// Frames are the frames to send, oldest first: the chunk's frames less
	// the rejected ones (the input slice itself when none was rejected).
	// Nil when the chunk is skipped.
	Frames [][]byte
	// Skip is non-empty when the model must not be called; the caller
	// counts the chunk under this reason and drops its frames at once.
	Skip SkipReason
	// Rejected counts frames left out as unusable.
	Rejected int
	// Analyzed counts frames decoded for this decision (the CPU cost).
	Analyzed int
	// Camera is non-empty when the camera state changed with this chunk:
	// the caller puts it on the next ack as "camera", once.
	Camera CameraState
}

// SceneGate decides, chunk by chunk, which frames of one stream reach the
// model. It keeps the signature of the last chunk the model saw and the
// camera state last reported. It is not safe for concurrent use; calls must
// be ordered (one stream's chunk path, or its one call goroutine at a time).
//
// Review decodes frames (milliseconds each), so a stream should call it at
// the start of the chunk's background call with the cut time, not on the
// ack path: a skipped chunk then ends its call at once with no result.
type SceneGate struct {
	cfg      SceneConfig
	analyzer ports.FrameAnalyzer

	seen     bool                 // whether ref holds the last sent chunk's signature
	ref      ports.FrameSignature // last sent chunk's representative frame
	lastCall time.Time
	camera   CameraState
}

// NewSceneGate returns a gate for one stream. analyzer may be nil when both
// features are off.
func NewSceneGate(cfg SceneConfig, analyzer ports.FrameAnalyzer) *SceneGate {
	return &SceneGate{cfg: cfg.withDefaults(), analyzer: analyzer, camera: CameraOK}
}

// Enabled reports whether the gate does anything; when it does not, Review
// passes every chunk through without analysing a frame.
func (g *SceneGate) Enabled() bool {
	return g != nil && g.analyzer != nil && (g.cfg.SkipUnchanged || g.cfg.RejectUnusable)
}

type frameClass int

const (
	classUsable frameClass = iota
	classDark
	classBlurred
	classUndecodable
)

func (g *SceneGate) classify(sig ports.FrameSignature, err error) frameClass {
	switch {
	case err != nil:
		return classUndecodable
	case g.cfg.DarkLuma > 0 && sig.MeanLuma < g.cfg.DarkLuma:
		return classDark
	case g.cfg.BlurSharpness > 0 && sig.Sharpness < g.cfg.BlurSharpness:
		return classBlurred
	}
	return classUsable
}

// Review decides what happens to a chunk cut at now. With both features off
// (or a nil gate) it returns the frames as they are.
func (g *SceneGate) Review(now time.Time, frames [][]byte) SceneDecision {
	if !g.Enabled() || len(frames) == 0 {
		return SceneDecision{Frames: frames}
	}
	var d SceneDecision

	// Without rejection only the last frame is analysed, for the change test.
	picks := []int{len(frames) - 1}
	if g.cfg.RejectUnusable {
		picks = sampleIndexes(len(frames), g.cfg.SampleFrames)
	}
	var (
		counts   [4]int
		rep      ports.FrameSignature
		repFound bool
		rejected []int
	)
	for _, i := range picks {
		sig, err := g.analyzer.Analyze(frames[i])
		d.Analyzed++
		class := g.classify(sig, err)
		counts[class]++
		switch {
		case class == classUsable || (err == nil && !g.cfg.RejectUnusable):
			// Picks ascend: the last one sent to the model wins.
			rep, repFound = sig, true
		case g.cfg.RejectUnusable:
			rejected = append(rejected, i)
		}
	}

	if g.cfg.RejectUnusable {
		if counts[classUsable] == 0 {
			d.Rejected = len(frames)
			d.Skip = unusableReason(counts)
			switch d.Skip {
			case SkipDark:
				d.Camera = g.setCamera(CameraDark)
			case SkipBlurred:
				d.Camera = g.setCamera(CameraBlurred)
			}
			return d
		}
		d.Camera = g.setCamera(CameraOK)
		d.Rejected = len(rejected)
		frames = without(frames, rejected)
	}

	if g.cfg.SkipUnchanged && repFound && g.seen && g.sameScene(rep, g.ref) && now.Sub(g.lastCall) < g.cfg.MaxSkip {
		d.Skip = SkipUnchanged
		return d
	}
	// The chunk goes to the model. A chunk whose representative could not be
	// read (only possible without rejection) keeps the old reference: fail
	// open, never skip on a guess.
	if repFound {
		g.ref, g.seen = rep, true
	}
	g.lastCall = now
	d.Frames = frames
	return d
}

// flatLumaTolerance is how far apart in mean luma two featureless frames may
// be and still count as one scene.
const flatLumaTolerance = 8.0

// sameScene reports whether b shows what a shows: hashes within the
// threshold, or both featureless (below the blur threshold) at about the same
// brightness, since a flat picture's hash bits are sensor noise (a dark
// scene's chunks measured 28–36 bits apart on the calibration clip).
func (g *SceneGate) sameScene(a, b ports.FrameSignature) bool {
	if a.Distance(b) <= g.cfg.ChangeThreshold {
		return true
	}
	flat := g.cfg.BlurSharpness
	if flat <= 0 {
		flat = DefaultBlurSharpness
	}
	return a.Sharpness < flat && b.Sharpness < flat && math.Abs(a.MeanLuma-b.MeanLuma) <= flatLumaTolerance
}

func (g *SceneGate) setCamera(s CameraState) CameraState {
	if s == g.camera {
		return ""
	}
	g.camera = s
	return s
}

// unusableReason names the most common kind of unusable frame; ties go to
// dark, then blurred, as what the wearer can act on.
func unusableReason(counts [4]int) SkipReason {
	switch {
	case counts[classDark] >= counts[classBlurred] && counts[classDark] >= counts[classUndecodable]:
		return SkipDark
	case counts[classBlurred] >= counts[classUndecodable]:
		return SkipBlurred
	}
	return SkipUndecodable
}

// sampleIndexes returns k indexes of n evenly spaced, ascending, 0 and n-1
// included; every index when k is zero or at least n.
func sampleIndexes(n, k int) []int {
	if k <= 0 || k >= n {
		k = n
	}
	out := make([]int, k)
	if k == 1 {
		out[0] = n - 1
		return out
	}
	for j := range k {
		out[j] = j * (n - 1) / (k - 1)
	}
	return out
}

// without returns frames less the ascending indexes drop, in a new slice
// when anything is dropped.
func without(frames [][]byte, drop []int) [][]byte {
	if len(drop) == 0 {
		return frames
	}
	out := make([][]byte, 0, len(frames)-len(drop))
	next := 0
	for i, f := range frames {
		if next < len(drop) && drop[next] == i {
			next++
			continue
		}
		out = append(out, f)
	}
	return out
}
