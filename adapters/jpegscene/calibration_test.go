package jpegscene_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/jpegscene"
	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/ports"
)

// The calibration clip: 320×240 or 640×480 at 10 fps, temporal sensor-like noise over
// everything, cut into 1 s chunks of 10 frames. Segments start on whole
// seconds so each scene change falls on a chunk boundary.
const (
	clipFPS     = 10
	clipSeconds = 41
)

type segment struct {
	name    string
	from    int // second the segment starts
	seconds int
	// source is a lavfi graph producing exactly seconds of {W}×{H} at 10 fps;
	// the braces are filled in by clipSize.
	source string
	// kind tells the assertions what the segment is.
	kind segmentKind
}

type segmentKind int

const (
	kindStill   segmentKind = iota // a new, still scene
	kindPan                        // a new scene, panning slowly
	kindDark                       // an almost black picture
	kindReturn                     // a scene seen before, after a dark spell
	kindBlurred                    // the previous scene, out of focus
)

// freeze holds the first frame of a lavfi source for n seconds.
func freeze(src string, n int) string {
	return fmt.Sprintf("%s,trim=end_frame=1,tpad=stop_mode=clone:stop_duration=%d,trim=duration=%d,setpts=N/%d/TB",
		src, n, n, clipFPS)
}

var clipSegments = []segment{
	{"still bars", 0, 12, "smptebars=s={W}x{H}:r=10:d=12", kindStill},
	// 50 px/s across a still picture: a slow head turn. It starts 160 px in:
	// the picture's left and right edges are a smooth, featureless gradient
	// that reads as blurred (sharpness 14–25, as low as the blurred card).
	{"slow pan", 12, 8, freeze("mandelbrot=s={3W}x{H}:r=10", 8) + ",crop={W}:{H}:x='{W/2}+t*{W/6.4}':y=0", kindPan},
	{"still test card", 20, 6, freeze("testsrc2=s={W}x{H}:r=10", 6), kindStill},
	{"dark", 26, 4, "color=c=0x0a0a0a:s={W}x{H}:r=10:d=4", kindDark},
	{"test card again", 30, 3, freeze("testsrc2=s={W}x{H}:r=10", 3), kindReturn},
	{"blurred test card", 33, 4, freeze("testsrc2=s={W}x{H}:r=10", 4) + ",boxblur={W/40}", kindBlurred},
	{"still cells", 37, 4, freeze("cellauto=s={W}x{H}:r=10:rule=18,trim=start_frame=200,setpts=PTS-STARTPTS", 4), kindStill},
}

// clipSize fills a segment's source for a w×h clip (4:3).
func clipSize(source string, w, h int) string {
	return strings.NewReplacer("{W}", fmt.Sprint(w), "{H}", fmt.Sprint(h), "{3W}", fmt.Sprint(3*w),
		"{W/2}", fmt.Sprint(w/2), "{W/6.4}", fmt.Sprint(w*10/64), "{W/40}", fmt.Sprint(w/40)).Replace(source)
}

// makeClip renders the w×h clip with ffmpeg and returns its JPEG frames in order.
func makeClip(t *testing.T, w, h int) [][]byte {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg is not on PATH: install it (apt-get install ffmpeg; `make test-deps` does) to calibrate on video")
	}
	dir := t.TempDir()
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin"}
	var graph, labels strings.Builder
	for i, s := range clipSegments {
		args = append(args, "-f", "lavfi", "-i", clipSize(s.source, w, h))
		fmt.Fprintf(&graph, "[%d]format=yuv420p,setsar=1[s%d];", i, i)
		fmt.Fprintf(&labels, "[s%d]", i)
	}
	fmt.Fprintf(&graph, "%sconcat=n=%d:v=1:a=0,noise=alls=6:allf=t[out]", labels.String(), len(clipSegments))
	args = append(args, "-filter_complex", graph.String(), "-map", "[out]", "-q:v", "5",
		filepath.Join(dir, "%04d.jpg"))
	out, err := exec.Command("ffmpeg", args...).CombinedOutput()
	require.NoError(t, err, "ffmpeg: %s", out)

	names, err := filepath.Glob(filepath.Join(dir, "*.jpg"))
	require.NoError(t, err)
	slices.Sort(names)
	require.Len(t, names, clipSeconds*clipFPS, "ffmpeg made the wrong number of frames")
	frames := make([][]byte, len(names))
	for i, n := range names {
		frames[i], err = os.ReadFile(n)
		require.NoError(t, err)
	}
	return frames
}

// memoAnalyzer analyses each frame once across the settings compared (the
// race detector makes decoding slow); it is keyed by the frame's first byte's
// address, as the test never copies frames.
type memoAnalyzer struct {
	inner ports.FrameAnalyzer
	sigs  map[*byte]ports.FrameSignature
	errs  map[*byte]error
}

func (m *memoAnalyzer) Analyze(frame []byte) (ports.FrameSignature, error) {
	k := &frame[0]
	if sig, ok := m.sigs[k]; ok {
		return sig, m.errs[k]
	}
	sig, err := m.inner.Analyze(frame)
	m.sigs[k], m.errs[k] = sig, err
	return sig, err
}

func segmentAt(second int) segment {
	for _, s := range clipSegments {
		if second >= s.from && second < s.from+s.seconds {
			return s
		}
	}
	panic("no segment")
}

type chunkOutcome struct {
	called bool
	d      domain.SceneDecision
}

func runClip(frames [][]byte, cfg domain.SceneConfig, analyzer ports.FrameAnalyzer) []chunkOutcome {
	gate := domain.NewSceneGate(cfg, analyzer)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	out := make([]chunkOutcome, clipSeconds)
	for i := range clipSeconds {
		// The chunk covering second i is cut at its end.
		d := gate.Review(start.Add(time.Duration(i+1)*time.Second), frames[i*clipFPS:(i+1)*clipFPS])
		out[i] = chunkOutcome{called: d.Skip == domain.SkipNone, d: d}
	}
	return out
}

// TestCalibrationOnVideo runs the gate over the ffmpeg clip with each
// setting, logs what it measured (the numbers in docs/benchmarks.md) and
// checks the behaviour issue 14 asks for with the default thresholds.
func TestCalibrationOnVideo(t *testing.T) {
	for _, size := range []struct{ w, h int }{{320, 240}, {640, 480}} {
		t.Run(fmt.Sprintf("%dx%d", size.w, size.h), func(t *testing.T) {
			if raceEnabled && size.w > 320 {
				t.Skip("skipped under -race (decoding is ~10× slower); run without -race for this size")
			}
			calibrate(t, makeClip(t, size.w, size.h))
		})
	}
}

func calibrate(t *testing.T, frames [][]byte) {
	analyzer := &memoAnalyzer{inner: jpegscene.Analyzer{}, sigs: map[*byte]ports.FrameSignature{}, errs: map[*byte]error{}}

	logSignatures(t, frames, analyzer)

	settings := []struct {
		name string
		cfg  domain.SceneConfig
	}{
		{"off", domain.SceneConfig{}},
		{"skip only", domain.SceneConfig{SkipUnchanged: true}},
		{"reject only", domain.SceneConfig{RejectUnusable: true}},
		{"both", domain.SceneConfig{SkipUnchanged: true, RejectUnusable: true}},
	}
	results := map[string][]chunkOutcome{}
	for _, s := range settings {
		res := runClip(frames, s.cfg, analyzer)
		results[s.name] = res
		calls, analyzed := 0, 0
		var timeline strings.Builder
		for _, c := range res {
			analyzed += c.d.Analyzed
			switch {
			case c.called:
				calls++
				timeline.WriteByte('C')
			case c.d.Skip == domain.SkipUnchanged:
				timeline.WriteByte('.')
			default:
				timeline.WriteByte('x')
			}
		}
		t.Logf("%-11s model calls %2d of %d (saves %2d, %3.0f%%), frames decoded %3d: %s",
			s.name, calls, clipSeconds, clipSeconds-calls, 100*float64(clipSeconds-calls)/clipSeconds, analyzed, timeline.String())
	}

	// Off: every chunk goes to the model with every frame, nothing decoded.
	for i, c := range results["off"] {
		require.True(t, c.called, "chunk %d", i)
		require.Len(t, c.d.Frames, clipFPS)
		require.Zero(t, c.d.Analyzed)
	}

	both := results["both"]
	var cameraReports []string
	lastCall := -1
	for i, c := range both {
		seg := segmentAt(i)
		if c.d.Camera != "" {
			cameraReports = append(cameraReports, fmt.Sprintf("%d:%s", i, c.d.Camera))
		}
		switch {
		case seg.kind == kindDark:
			assert.Equal(t, domain.SkipDark, c.d.Skip, "chunk %d (%s) must be rejected as dark", i, seg.name)
		case seg.kind == kindBlurred:
			assert.Equal(t, domain.SkipBlurred, c.d.Skip, "chunk %d (%s) must be rejected as blurred", i, seg.name)
		case i == seg.from && (seg.kind == kindStill || seg.kind == kindPan):
			assert.True(t, c.called, "scene change at chunk %d (%s) must be captioned at once", i, seg.name)
		}
		if c.called {
			lastCall = i
		} else if seg.kind != kindDark && seg.kind != kindBlurred {
			// A usable view gets a call at least every MaxSkip (10 chunks).
			assert.Less(t, i-lastCall, int(domain.DefaultMaxSkip/time.Second),
				"chunk %d (%s): no caption for MaxSkip", i, seg.name)
		}
	}
	// Dark reported once when it starts, blurred once, ok when each ends.
	assert.Equal(t, []string{"26:dark", "30:ok", "33:blurred", "37:ok"}, cameraReports)

	// Calls drop in the still segments and in the dark one, against off.
	countCalls := func(res []chunkOutcome, kind segmentKind) (n int) {
		for i, c := range res {
			if segmentAt(i).kind == kind && c.called {
				n++
			}
		}
		return n
	}
	for _, kind := range []segmentKind{kindStill, kindDark} {
		assert.Less(t, countCalls(both, kind), countCalls(results["off"], kind), "segment kind %d", kind)
	}
	// Skipping alone never calls less often than every MaxSkip on a still view.
	stillBars := results["skip only"][0:12]
	assert.True(t, stillBars[0].called && stillBars[10].called, "still bars: calls at 0 and after MaxSkip")
}

// logSignatures prints the distances and measures the defaults were chosen
// from: the noise floor of still scenes, drift per chunk while panning, the
// jump at scene changes, and mean luma / sharpness per segment.
func logSignatures(t *testing.T, frames [][]byte, a ports.FrameAnalyzer) {
	sig := func(i int) ports.FrameSignature {
		s, err := a.Analyze(frames[i])
		require.NoError(t, err, "frame %d", i)
		return s
	}
	for _, seg := range clipSegments {
		var dists []int
		minLuma, maxLuma, minSharp, maxSharp := 256.0, 0.0, 1e18, 0.0
		for i := seg.from * clipFPS; i < (seg.from+seg.seconds)*clipFPS; i++ {
			s := sig(i)
			minLuma, maxLuma = min(minLuma, s.MeanLuma), max(maxLuma, s.MeanLuma)
			minSharp, maxSharp = min(minSharp, s.Sharpness), max(maxSharp, s.Sharpness)
		}
		// Distance of each chunk's last frame from the segment's first chunk's.
		first := sig(seg.from*clipFPS + clipFPS - 1)
		for c := seg.from + 1; c < seg.from+seg.seconds; c++ {
			dists = append(dists, sig(c*clipFPS+clipFPS-1).Distance(first))
		}
		jump := -1
		if seg.from > 0 {
			jump = sig(seg.from*clipFPS + clipFPS - 1).Distance(sig(seg.from*clipFPS - 1))
		}
		t.Logf("%-18s luma %5.1f–%5.1f  sharpness %7.1f–%7.1f  distance from its first chunk %v  jump from previous %d",
			seg.name, minLuma, maxLuma, minSharp, maxSharp, dists, jump)
	}
}
