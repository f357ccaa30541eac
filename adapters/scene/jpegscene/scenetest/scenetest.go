// Package scenetest renders the scene gate's calibration clip with ffmpeg: a
// still segment, a slow pan, scene changes, a dark and a blurred segment,
// with sensor-like noise over all of it (docs/benchmarks.md, "Scene gate").
// Tests of the gate on real video (adapters/scene/jpegscene's calibration, the
// stream end-to-end test) share it. MakeClip skips the test without ffmpeg.
package scenetest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The clip: 320×240 or 640×480 at 10 fps, temporal sensor-like noise over
// everything, cut into 1 s chunks of 10 frames. Segments start on whole
// seconds so each scene change falls on a chunk boundary.
const (
	FPS     = 10 // frames per second of the clip
	Seconds = 41 // its length
)

// Segment is one part of the clip.
type Segment struct {
	Name    string
	From    int // second the segment starts
	Seconds int
	// Source is a lavfi graph producing exactly Seconds of {W}×{H} at 10 fps;
	// the braces are filled in for the clip's size.
	Source string
	// Kind tells the assertions what the segment is.
	Kind Kind
}

// Kind is what a segment shows, for assertions.
type Kind int

const (
	KindStill   Kind = iota // a new, still scene
	KindPan                 // a new scene, panning slowly
	KindDark                // an almost black picture
	KindReturn              // a scene seen before, after a dark spell
	KindBlurred             // the previous scene, out of focus
)

// freeze holds the first frame of a lavfi source for n seconds.
func freeze(src string, n int) string {
	return fmt.Sprintf("%s,trim=end_frame=1,tpad=stop_mode=clone:stop_duration=%d,trim=duration=%d,setpts=N/%d/TB",
		src, n, n, FPS)
}

// Segments are the clip's parts, in order, covering every second once.
var Segments = []Segment{
	{"still bars", 0, 12, "smptebars=s={W}x{H}:r=10:d=12", KindStill},
	// 50 px/s across a still picture: a slow head turn. It starts 160 px in:
	// the picture's left and right edges are a smooth, featureless gradient
	// that reads as blurred (sharpness 14–25, as low as the blurred card).
	{"slow pan", 12, 8, freeze("mandelbrot=s={3W}x{H}:r=10", 8) + ",crop={W}:{H}:x='{W/2}+t*{W/6.4}':y=0", KindPan},
	{"still test card", 20, 6, freeze("testsrc2=s={W}x{H}:r=10", 6), KindStill},
	{"dark", 26, 4, "color=c=0x0a0a0a:s={W}x{H}:r=10:d=4", KindDark},
	{"test card again", 30, 3, freeze("testsrc2=s={W}x{H}:r=10", 3), KindReturn},
	{"blurred test card", 33, 4, freeze("testsrc2=s={W}x{H}:r=10", 4) + ",boxblur={W/40}", KindBlurred},
	{"still cells", 37, 4, freeze("cellauto=s={W}x{H}:r=10:rule=18,trim=start_frame=200,setpts=PTS-STARTPTS", 4), KindStill},
}

// clipSize fills a segment's source for a w×h clip (4:3).
func clipSize(source string, w, h int) string {
	return strings.NewReplacer("{W}", fmt.Sprint(w), "{H}", fmt.Sprint(h), "{3W}", fmt.Sprint(3*w),
		"{W/2}", fmt.Sprint(w/2), "{W/6.4}", fmt.Sprint(w*10/64), "{W/40}", fmt.Sprint(w/40)).Replace(source)
}

// MakeClip renders the w×h clip with ffmpeg and returns its JPEG frames in order.
func MakeClip(t testing.TB, w, h int) [][]byte {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg is not on PATH: install it (apt-get install ffmpeg; `make test-deps` does) to calibrate on video")
	}
	dir := t.TempDir()
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin"}
	var graph, labels strings.Builder
	for i, s := range Segments {
		args = append(args, "-f", "lavfi", "-i", clipSize(s.Source, w, h))
		fmt.Fprintf(&graph, "[%d]format=yuv420p,setsar=1[s%d];", i, i)
		fmt.Fprintf(&labels, "[s%d]", i)
	}
	fmt.Fprintf(&graph, "%sconcat=n=%d:v=1:a=0,noise=alls=6:allf=t[out]", labels.String(), len(Segments))
	args = append(args, "-filter_complex", graph.String(), "-map", "[out]", "-q:v", "5",
		filepath.Join(dir, "%04d.jpg"))
	out, err := exec.Command("ffmpeg", args...).CombinedOutput()
	require.NoError(t, err, "ffmpeg: %s", out)

	names, err := filepath.Glob(filepath.Join(dir, "*.jpg"))
	require.NoError(t, err)
	slices.Sort(names)
	require.Len(t, names, Seconds*FPS, "ffmpeg made the wrong number of frames")
	frames := make([][]byte, len(names))
	for i, n := range names {
		frames[i], err = os.ReadFile(n)
		require.NoError(t, err)
	}
	return frames
}

// SegmentAt returns the segment playing at second.
func SegmentAt(second int) Segment {
	for _, s := range Segments {
		if second >= s.From && second < s.From+s.Seconds {
			return s
		}
	}
	panic("no segment")
}
