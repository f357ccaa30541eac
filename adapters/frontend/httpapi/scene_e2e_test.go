package httpapi_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/adapters/scene/jpegscene"
	"github.com/foresight-vision/foresight/adapters/scene/jpegscene/scenetest"
	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/domain/domaintest"
	"github.com/foresight-vision/foresight/ports"
)

// cutCounter counts chunk cuts; the domain reports a cut before the ack of
// the frame that caused it is written.
type cutCounter struct {
	httpapi.NopObserver
	cuts atomic.Int64
}

func (o *cutCounter) ChunkCut(int, int64, int, int64) { o.cuts.Add(1) }

type cameraReport struct {
	state  string
	second int // the clip second of the frame whose ack carried it
}

// clipRun is what one stream of the calibration clip saw.
type clipRun struct {
	calls     []ports.Chunk // what the model was sent, in order
	called    map[int]bool  // clip seconds whose chunk reached the model
	captionAt map[int]int   // chunk second -> clip second of the frame whose ack carried its caption
	cameras   []cameraReport
}

// streamClip streams the clip's frames over a real WebSocket with the scene
// gate set to scene, on a manual clock: the frames of clip second s are sent
// at s, and the clock moves one chunk interval (1 s) before each second's
// last frame, so that frame cuts the second's chunk. The model double
// captions a chunk with the clip second of its last frame.
func streamClip(t *testing.T, frames [][]byte, scene domain.SceneConfig) clipRun {
	t.Helper()
	index := make(map[string]int, len(frames))
	for i, f := range frames {
		index[string(f)] = i
	}
	secondOf := func(chunk ports.Chunk) int { return index[string(chunk.Frames[len(chunk.Frames)-1])] / scenetest.FPS }
	backend := &domaintest.Backend{Infer: func(_ context.Context, chunk ports.Chunk) (ports.Result, error) {
		return ports.Result{Caption: fmt.Sprintf("second %d", secondOf(chunk)), Set: ports.ResultCaption}, nil
	}}
	clock := domaintest.NewClock()
	obs := &cutCounter{}
	srv := newStreamServer(t, httpapi.StreamHandlerConfig{Backend: backend, Observer: obs, Stream: domain.StreamConfig{
		Clock: clock, ChunkInterval: time.Second, MaxFramesPerChunk: domain.DefaultMaxFramesPerChunk, Scene: scene, Analyzer: jpegscene.Analyzer{},
	}})
	c := srv.dial(nil)

	run := clipRun{called: map[int]bool{}, captionAt: map[int]int{}}
	handle := func(frame []byte, second int) {
		c.send(frame)
		a := c.readAck()
		if a.Caption != nil {
			var chunkSecond int
			_, err := fmt.Sscanf(*a.Caption, "second %d", &chunkSecond)
			require.NoError(t, err)
			run.captionAt[chunkSecond] = second
		}
		if state, ok := a.raw["camera"]; ok {
			run.cameras = append(run.cameras, cameraReport{fmt.Sprint(state), second})
		}
	}
	for second := range scenetest.Seconds {
		first := second * scenetest.FPS
		for _, f := range frames[first : first+scenetest.FPS-1] {
			handle(f, second)
		}
		clock.Advance(time.Second)
		last := frames[first+scenetest.FPS-1]
		cuts := obs.cuts.Load()
		handle(last, second)
		// The previous chunk's call (real goroutines, real JPEG decodes) may
		// still be running, which defers the cut: send the last frame again
		// until it cuts, so every chunk holds one clip second.
		deadline := time.Now().Add(10 * time.Second)
		for obs.cuts.Load() == cuts {
			require.True(t, time.Now().Before(deadline), "second %d: no chunk cut", second)
			time.Sleep(time.Millisecond)
			handle(last, second)
		}
	}
	// The last chunk's call runs in the background and may not have reached
	// the model yet: end the stream and wait for its session to close, which
	// the domain does only once no call is in flight.
	require.NoError(t, c.conn.Close())
	require.Len(t, backend.Sessions(), 1)
	session := backend.Sessions()[0]
	require.Eventually(t, func() bool { return session.Closes() == 1 }, 10*time.Second, time.Millisecond,
		"the stream's session is closed once its last call is back")
	run.calls = session.Chunks()
	for _, chunk := range run.calls {
		run.called[secondOf(chunk)] = true
	}
	return run
}

// framesPerCall and frameSizes describe chunks for a failure message by
// counts and sizes, never by content.
func framesPerCall(calls []ports.Chunk) []int {
	counts := make([]int, len(calls))
	for i, chunk := range calls {
		counts[i] = len(chunk.Frames)
	}
	return counts
}

func frameSizes(frames [][]byte) []int {
	sizes := make([]int, len(frames))
	for i, f := range frames {
		sizes[i] = len(f)
	}
	return sizes
}

// TestSceneGateOnTheCalibrationClip is issue 14's "done when" over the
// whole stream path: WebSocket, domain, gate, jpegscene, model double.
func TestSceneGateOnTheCalibrationClip(t *testing.T) {
	frames := scenetest.MakeClip(t, 320, 240) // skips without ffmpeg

	t.Run("both off: every chunk reaches the model as before", func(t *testing.T) {
		run := streamClip(t, frames, domain.SceneConfig{})
		// Counts and sizes only: a failed Len on frames would print every JPEG byte.
		require.Equal(t, scenetest.Seconds, len(run.calls), "model calls (frames per call): %v", framesPerCall(run.calls))
		for i, chunk := range run.calls {
			assert.True(t, run.called[i], "chunk %d", i)
			assert.Equal(t, domain.DefaultMaxFramesPerChunk, len(chunk.Frames), "chunk %d: frame sizes %v", i, frameSizes(chunk.Frames))
		}
		assert.Empty(t, run.cameras)
	})

	t.Run("both on", func(t *testing.T) {
		scene := domain.DefaultSceneConfig() // the calibrated thresholds
		scene.SkipUnchanged, scene.RejectUnusable = true, true
		run := streamClip(t, frames, scene)
		t.Logf("model calls %d of %d chunks", len(run.calls), scenetest.Seconds)

		callsIn := func(kind scenetest.Kind) (calls, chunks int) {
			for second := range scenetest.Seconds {
				if scenetest.SegmentAt(second).Kind == kind {
					chunks++
					if run.called[second] {
						calls++
					}
				}
			}
			return calls, chunks
		}
		calls, chunks := callsIn(scenetest.KindStill)
		assert.Less(t, calls, chunks/2, "still segments: most chunks skipped")
		calls, _ = callsIn(scenetest.KindDark)
		assert.Zero(t, calls, "dark segment: no model call")
		calls, _ = callsIn(scenetest.KindBlurred)
		assert.Zero(t, calls, "blurred segment: no model call")

		// Each scene change (and the view coming back after the dark spell)
		// is captioned within one chunk interval: its own chunk is sent, and
		// the caption is on an ack of the next second's frames.
		for _, s := range scenetest.Segments {
			if s.Kind == scenetest.KindDark || s.Kind == scenetest.KindBlurred || s.From == 0 {
				continue
			}
			assert.True(t, run.called[s.From], "%s at %d: sent", s.Name, s.From)
			assert.Equal(t, s.From+1, run.captionAt[s.From], "%s at %d: captioned within one chunk", s.Name, s.From)
		}

		// A usable view gets a call at least every MaxSkip (10 chunks).
		lastCall := -1
		for second := range scenetest.Seconds {
			kind := scenetest.SegmentAt(second).Kind
			switch {
			case run.called[second]:
				lastCall = second
			case kind != scenetest.KindDark && kind != scenetest.KindBlurred:
				assert.Less(t, second-lastCall, int(domain.DefaultMaxSkip/time.Second), "second %d: no caption for MaxSkip", second)
			}
		}
		assert.True(t, run.called[0] && run.called[10], "still bars: calls at 0 and after MaxSkip")

		// The camera state, once per change, on the ack after the chunk that
		// changed it: dark once, then ok with the next sent chunk's caption.
		assert.Equal(t, []cameraReport{{"dark", 27}, {"ok", 31}, {"blurred", 34}, {"ok", 38}}, run.cameras)
	})
}
