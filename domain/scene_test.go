package domain_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/ports"
)

// fakeAnalyzer maps a frame's bytes (a name) to a signature; unknown names
// are undecodable. It counts the frames it analyses.
type fakeAnalyzer struct {
	sigs  map[string]ports.FrameSignature
	calls int
}

func (a *fakeAnalyzer) Analyze(frame []byte) (ports.FrameSignature, error) {
	a.calls++
	sig, ok := a.sigs[string(frame)]
	if !ok {
		return ports.FrameSignature{}, fmt.Errorf("%w: %q", ports.ErrUndecodableFrame, frame)
	}
	return sig, nil
}

const (
	sceneA     uint64 = 0x0F0F_0F0F_0F0F_0F0F
	sceneANear uint64 = sceneA ^ 0b111        // 3 bits away
	sceneAFar  uint64 = sceneA ^ 0x0000_0FFF  // 12 bits away
	sceneB     uint64 = 0xF0F0_F0F0_F0F0_F0F0 // 64 bits away
)

func newFakeAnalyzer() *fakeAnalyzer {
	usable := func(h uint64) ports.FrameSignature {
		return ports.FrameSignature{Hash: h, MeanLuma: 120, Sharpness: 300}
	}
	return &fakeAnalyzer{sigs: map[string]ports.FrameSignature{
		"a": usable(sceneA), "a2": usable(sceneANear), "a3": usable(sceneAFar), "b": usable(sceneB),
		"dark":    {Hash: sceneB, MeanLuma: 5, Sharpness: 0.5},
		"dark2":   {Hash: sceneA, MeanLuma: 9, Sharpness: 0.7},   // another noise hash
		"dim":     {Hash: sceneA, MeanLuma: 30, Sharpness: 100},  // a dim room: usable
		"grey":    {Hash: sceneAFar, MeanLuma: 60, Sharpness: 2}, // a featureless wall
		"blurred": {Hash: sceneA, MeanLuma: 120, Sharpness: 3},
	}}
}

func frames(names ...string) [][]byte {
	out := make([][]byte, len(names))
	for i, n := range names {
		out[i] = []byte(n)
	}
	return out
}

func names(frames [][]byte) []string {
	if frames == nil {
		return nil
	}
	out := make([]string, len(frames))
	for i, f := range frames {
		out[i] = string(f)
	}
	return out
}

type step struct {
	at       time.Duration // since the first chunk
	frames   []string
	skip     domain.SkipReason
	kept     []string // nil: all of frames when not skipped, none when skipped
	camera   domain.CameraState
	analyzed int
}

func TestSceneGate(t *testing.T) {
	both := domain.SceneConfig{SkipUnchanged: true, RejectUnusable: true, DarkLuma: domain.DefaultDarkLuma, BlurSharpness: domain.DefaultBlurSharpness}
	cases := []struct {
		name  string
		cfg   domain.SceneConfig
		steps []step
	}{
		{"off: everything passes, nothing decoded", domain.SceneConfig{}, []step{
			{at: 0, frames: []string{"a", "dark", "junk"}},
			{at: time.Second, frames: []string{"a", "a"}},
		}},
		{"skip only: same scene skipped, only the last frame decoded", domain.SceneConfig{SkipUnchanged: true}, []step{
			{at: 0, frames: []string{"b", "a"}, analyzed: 1},
			{at: 1 * time.Second, frames: []string{"b", "a2"}, skip: domain.SkipUnchanged, analyzed: 1},
			{at: 2 * time.Second, frames: []string{"a"}, skip: domain.SkipUnchanged, analyzed: 1},
			{at: 3 * time.Second, frames: []string{"a", "b"}, analyzed: 1},
			{at: 4 * time.Second, frames: []string{"b"}, skip: domain.SkipUnchanged, analyzed: 1},
		}},
		{"skip only: distance above the threshold is a change", domain.SceneConfig{SkipUnchanged: true}, []step{
			{at: 0, frames: []string{"a"}, analyzed: 1},
			{at: time.Second, frames: []string{"a3"}, analyzed: 1},
		}},
		{"skip only: a higher threshold tolerates more", domain.SceneConfig{SkipUnchanged: true, ChangeThreshold: 12}, []step{
			{at: 0, frames: []string{"a"}, analyzed: 1},
			{at: time.Second, frames: []string{"a3"}, skip: domain.SkipUnchanged, analyzed: 1},
		}},
		{"skip only: the reference is the last sent chunk, so drift adds up", domain.SceneConfig{SkipUnchanged: true, ChangeThreshold: 4}, []step{
			{at: 0, frames: []string{"a"}, analyzed: 1},
			{at: 1 * time.Second, frames: []string{"a2"}, skip: domain.SkipUnchanged, analyzed: 1}, // 3 bits from a
			{at: 2 * time.Second, frames: []string{"a3"}, analyzed: 1},                             // 12 bits from a
		}},
		{"skip only: never longer than MaxSkip", domain.SceneConfig{SkipUnchanged: true, MaxSkip: 3 * time.Second}, []step{
			{at: 0, frames: []string{"a"}, analyzed: 1},
			{at: 1 * time.Second, frames: []string{"a"}, skip: domain.SkipUnchanged, analyzed: 1},
			{at: 2999 * time.Millisecond, frames: []string{"a"}, skip: domain.SkipUnchanged, analyzed: 1},
			{at: 3 * time.Second, frames: []string{"a"}, analyzed: 1},
			{at: 4 * time.Second, frames: []string{"a"}, skip: domain.SkipUnchanged, analyzed: 1},
			{at: 6 * time.Second, frames: []string{"a"}, analyzed: 1},
		}},
		{"skip only: an unreadable last frame is sent, never skipped on a guess", domain.SceneConfig{SkipUnchanged: true}, []step{
			{at: 0, frames: []string{"junk"}, analyzed: 1},
			{at: 1 * time.Second, frames: []string{"a"}, analyzed: 1},
			{at: 2 * time.Second, frames: []string{"a", "junk"}, analyzed: 1},
			{at: 3 * time.Second, frames: []string{"a"}, skip: domain.SkipUnchanged, analyzed: 1},
		}},
		{"skip only: dark frames are not rejected and become the reference", domain.SceneConfig{SkipUnchanged: true}, []step{
			{at: 0, frames: []string{"a"}, analyzed: 1},
			{at: 1 * time.Second, frames: []string{"dark"}, analyzed: 1},
			// Same flat brightness, another noise hash: unchanged.
			{at: 2 * time.Second, frames: []string{"dark2"}, skip: domain.SkipUnchanged, analyzed: 1},
			// Flat too, but brighter by more than the tolerance: changed.
			{at: 3 * time.Second, frames: []string{"grey"}, analyzed: 1},
			{at: 4 * time.Second, frames: []string{"a"}, analyzed: 1},
			// Blurred: flat, but the hash alone says unchanged.
			{at: 5 * time.Second, frames: []string{"blurred"}, skip: domain.SkipUnchanged, analyzed: 1},
		}},
		{"reject only: unusable frames left out, camera reported once per change", domain.SceneConfig{RejectUnusable: true, DarkLuma: domain.DefaultDarkLuma, BlurSharpness: domain.DefaultBlurSharpness}, []step{
			{at: 0, frames: []string{"a", "dark", "a", "junk"}, kept: []string{"a", "a"}, analyzed: 4},
			{at: 1 * time.Second, frames: []string{"dark", "dark"}, skip: domain.SkipDark, camera: domain.CameraDark, analyzed: 2},
			{at: 2 * time.Second, frames: []string{"dark", "blurred", "dark"}, skip: domain.SkipDark, analyzed: 3},
			{at: 3 * time.Second, frames: []string{"blurred", "dark", "blurred"}, skip: domain.SkipBlurred, camera: domain.CameraBlurred, analyzed: 3},
			{at: 4 * time.Second, frames: []string{"dim", "a"}, camera: domain.CameraOK, analyzed: 2},
			{at: 5 * time.Second, frames: []string{"a"}, analyzed: 1},
			// Unchanged scenes are still sent: skipping is off.
			{at: 6 * time.Second, frames: []string{"a"}, analyzed: 1},
		}},
		{"reject only: a chunk of unreadable frames is skipped, camera untouched", domain.SceneConfig{RejectUnusable: true, DarkLuma: domain.DefaultDarkLuma, BlurSharpness: domain.DefaultBlurSharpness}, []step{
			{at: 0, frames: []string{"junk", "junk2"}, skip: domain.SkipUndecodable, analyzed: 2},
			{at: 1 * time.Second, frames: []string{"dark"}, skip: domain.SkipDark, camera: domain.CameraDark, analyzed: 1},
			{at: 2 * time.Second, frames: []string{"junk"}, skip: domain.SkipUndecodable, analyzed: 1},
			{at: 3 * time.Second, frames: []string{"a"}, camera: domain.CameraOK, analyzed: 1},
		}},
		{"reject only: thresholds can be moved or switched off", domain.SceneConfig{RejectUnusable: true, DarkLuma: 40}, []step{
			{at: 0, frames: []string{"dim", "blurred", "a"}, kept: []string{"blurred", "a"}, analyzed: 3},
		}},
		{"reject only: sampling decodes first, evenly spaced and last", domain.SceneConfig{RejectUnusable: true, DarkLuma: domain.DefaultDarkLuma, BlurSharpness: domain.DefaultBlurSharpness, SampleFrames: 3}, []step{
			{at: 0, frames: []string{"dark", "junk", "a", "junk", "dark"}, kept: []string{"junk", "a", "junk"}, analyzed: 3},
			// Only the sampled frames count: untested frames go with the chunk.
			{at: 1 * time.Second, frames: []string{"dark", "a", "dark", "a", "dark"}, skip: domain.SkipDark, camera: domain.CameraDark, analyzed: 3},
		}},
		{"both: unchanged and dark chunks skipped, changes sent at once", both, []step{
			{at: 0, frames: []string{"a", "a"}, analyzed: 2},
			{at: 1 * time.Second, frames: []string{"a", "a2"}, skip: domain.SkipUnchanged, analyzed: 2},
			{at: 2 * time.Second, frames: []string{"dark", "dark"}, skip: domain.SkipDark, camera: domain.CameraDark, analyzed: 2},
			{at: 3 * time.Second, frames: []string{"dark", "a"}, kept: []string{"a"}, skip: domain.SkipUnchanged, camera: domain.CameraOK, analyzed: 2},
			{at: 4 * time.Second, frames: []string{"b", "dark"}, kept: []string{"b"}, analyzed: 2},
			{at: 5 * time.Second, frames: []string{"b", "b"}, skip: domain.SkipUnchanged, analyzed: 2},
		}},
		{"both: the representative is the last usable frame", both, []step{
			{at: 0, frames: []string{"a"}, analyzed: 1},
			{at: 1 * time.Second, frames: []string{"b", "a", "blurred"}, kept: []string{"b", "a"}, skip: domain.SkipUnchanged, analyzed: 3},
		}},
		{"both: a long dark spell lets the first usable chunk through", domain.SceneConfig{SkipUnchanged: true, RejectUnusable: true, DarkLuma: domain.DefaultDarkLuma, BlurSharpness: domain.DefaultBlurSharpness, MaxSkip: 2 * time.Second}, []step{
			{at: 0, frames: []string{"a"}, analyzed: 1},
			{at: 1 * time.Second, frames: []string{"dark"}, skip: domain.SkipDark, camera: domain.CameraDark, analyzed: 1},
			{at: 2 * time.Second, frames: []string{"dark"}, skip: domain.SkipDark, analyzed: 1},
			{at: 3 * time.Second, frames: []string{"a"}, camera: domain.CameraOK, analyzed: 1},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			analyzer := newFakeAnalyzer()
			gate := domain.NewSceneGate(tc.cfg, analyzer)
			start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			for i, s := range tc.steps {
				before := analyzer.calls
				in := frames(s.frames...)
				d := gate.Review(start.Add(s.at), in)
				where := fmt.Sprintf("step %d (%v)", i, s.frames)
				assert.Equal(t, s.skip, d.Skip, where)
				assert.Equal(t, s.camera, d.Camera, where)
				assert.Equal(t, s.analyzed, analyzer.calls-before, where+": frames analysed")
				assert.Equal(t, s.analyzed, d.Analyzed, where)
				switch {
				case s.skip != domain.SkipNone:
					assert.Nil(t, d.Frames, where+": a skipped chunk keeps no frames")
				case s.kept == nil:
					assert.Equal(t, s.frames, names(d.Frames), where)
					assert.Zero(t, d.Rejected, where)
				default:
					assert.Equal(t, s.kept, names(d.Frames), where)
					assert.Equal(t, len(s.frames)-len(s.kept), d.Rejected, where)
				}
			}
		})
	}
}

func TestSceneGateOffOrNilPassesThrough(t *testing.T) {
	in := frames("a", "b")
	var nilGate *domain.SceneGate
	assert.False(t, nilGate.Enabled())
	d := nilGate.Review(time.Now(), in)
	assert.Equal(t, in, d.Frames)
	assert.Equal(t, domain.SceneDecision{Frames: in}, d)

	// On, but without an analyzer: nothing to measure with, so off.
	gate := domain.NewSceneGate(domain.SceneConfig{SkipUnchanged: true, RejectUnusable: true, DarkLuma: domain.DefaultDarkLuma, BlurSharpness: domain.DefaultBlurSharpness}, nil)
	assert.False(t, gate.Enabled())
	assert.Equal(t, domain.SceneDecision{Frames: in}, gate.Review(time.Now(), in))

	// An empty chunk is never analysed.
	analyzer := newFakeAnalyzer()
	gate = domain.NewSceneGate(domain.SceneConfig{SkipUnchanged: true, RejectUnusable: true, DarkLuma: domain.DefaultDarkLuma, BlurSharpness: domain.DefaultBlurSharpness}, analyzer)
	require.True(t, gate.Enabled())
	assert.Equal(t, domain.SceneDecision{}, gate.Review(time.Now(), nil))
	assert.Zero(t, analyzer.calls)
}

func TestSceneGateKeepsTheInputWhenNothingIsRejected(t *testing.T) {
	gate := domain.NewSceneGate(domain.SceneConfig{RejectUnusable: true, DarkLuma: domain.DefaultDarkLuma, BlurSharpness: domain.DefaultBlurSharpness}, newFakeAnalyzer())
	in := frames("a", "b")
	d := gate.Review(time.Now(), in)
	require.Len(t, d.Frames, 2)
	assert.Same(t, &in[0], &d.Frames[0], "no copy when every frame is kept")
}

func TestUndecodableErrorIsRecognisable(t *testing.T) {
	_, err := newFakeAnalyzer().Analyze([]byte("junk"))
	assert.True(t, errors.Is(err, ports.ErrUndecodableFrame))
}
