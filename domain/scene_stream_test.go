package domain_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/domain/domaintest"
	"github.com/foresight-vision/foresight/ports"
)

// sceneHarness is a stream with the scene gate on, cutting a chunk on every
// frame handed in while no call is in flight.
type sceneHarness struct {
	*harness
	analyzer *fakeAnalyzer
	budget   *domain.MemoryBudget
}

func newSceneHarness(t *testing.T, scene domain.SceneConfig, infer domaintest.InferFunc) *sceneHarness {
	t.Helper()
	a := newFakeAnalyzer()
	budget := domain.NewMemoryBudget(1 << 20)
	h := newHarness(t, domain.StreamConfig{Scene: scene, Analyzer: a, Budget: budget}, infer)
	return &sceneHarness{harness: h, analyzer: a, budget: budget}
}

// chunk hands in one frame named name, which is cut as a chunk of its own,
// waits for its call and returns the ack of the frame.
func (h *sceneHarness) chunk(name string) domain.Ack {
	ack := h.stream.HandleFrame([]byte(name))
	h.stream.AwaitCall()
	return ack
}

func sentFrames(s *domaintest.Session) [][]string {
	var out [][]string
	for _, c := range s.Chunks() {
		var names []string
		for _, f := range c.Frames {
			names = append(names, string(f))
		}
		out = append(out, names)
	}
	return out
}

func TestStreamSkipsUnchangedChunks(t *testing.T) {
	h := newSceneHarness(t, domain.SceneConfig{SkipUnchanged: true, MaxSkip: 5 * time.Second}, nil)
	h.chunk("a")  // first chunk: the model sees it
	h.chunk("a2") // 3 bits away: skipped
	assert.Zero(t, h.budget.Used(), "a skipped chunk gives its bytes back")
	h.clock.Advance(5 * time.Second)
	h.chunk("a2") // MaxSkip since the last call: sent
	h.chunk("b")  // a new scene: sent
	h.chunk("b")  // skipped

	assert.Equal(t, [][]string{{"a"}, {"a2"}, {"b"}}, sentFrames(h.session()))
	assert.Equal(t, int64(2), h.obs.skipped.Load())
	assert.Equal(t, int64(len("a2")+len("b")), h.obs.skippedBytes.Load())
	assert.Equal(t, int64(5), h.obs.chunks.Load(), "every cut chunk is still counted as cut")
	assert.Equal(t, int64(3), h.obs.outcomes[0].Load(), "only real calls are reported as inference")

	sum := h.stream.Close(context.Background())
	assert.Equal(t, int64(5), sum.Chunks)
	assert.Equal(t, int64(2), sum.SkippedChunks)
	assert.Equal(t, map[domain.SkipReason]int64{domain.SkipUnchanged: 2}, sum.SkippedByReason)
	assert.Zero(t, sum.RejectedFrames)
	assert.Zero(t, h.budget.Used())
}

func TestStreamRejectsUnusableFramesAndReportsCameraOnce(t *testing.T) {
	h := newSceneHarness(t, domain.SceneConfig{RejectUnusable: true, DarkLuma: domain.DefaultDarkLuma, BlurSharpness: domain.DefaultBlurSharpness}, func(context.Context, ports.Chunk) (ports.Result, error) {
		return ports.Result{Caption: "seen", Set: ports.ResultCaption}, nil
	})
	var acks []domain.Ack
	for _, name := range []string{"a", "dark", "dark2", "dark", "blurred", "a", "b"} {
		acks = append(acks, h.chunk(name))
	}
	acks = append(acks, h.chunk("b")) // carries what the last chunk left
	var cameras []string
	for i, ack := range acks {
		if ack.Camera != "" {
			cameras = append(cameras, ack.Camera)
			assert.Equal(t, int64(i+1), ack.Frame)
		}
	}
	// The ack after the chunk that changed the state carries it: frame 3
	// after the first dark chunk (2), 6 after the blurred one (5), and the
	// usable chunk 6's "ok" comes with its result on frame 7.
	assert.Equal(t, []string{"dark", "blurred", "ok"}, cameras)
	assert.Equal(t, "dark", acks[2].Camera)
	assert.Equal(t, "blurred", acks[5].Camera)
	assert.Equal(t, "ok", acks[6].Camera)
	assert.Equal(t, "seen", acks[6].Result.Caption, "the ok arrives with the sent chunk's result")

	assert.Equal(t, [][]string{{"a"}, {"a"}, {"b"}, {"b"}}, sentFrames(h.session()))
	sum := h.stream.Close(context.Background())
	assert.Equal(t, int64(4), sum.SkippedChunks)
	assert.Equal(t, map[domain.SkipReason]int64{domain.SkipDark: 3, domain.SkipBlurred: 1}, sum.SkippedByReason)
	assert.Equal(t, int64(4), sum.RejectedFrames)
	assert.Equal(t, int64(4), h.obs.rejected.Load())
	assert.Zero(t, h.budget.Used())
}

// A chunk of several frames loses its unusable ones before the call, and
// their budget bytes come back while the call is still running.
func TestRejectedFramesReleaseTheirBytesBeforeTheCallEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := domaintest.NewGate()
		a := newFakeAnalyzer()
		budget := domain.NewMemoryBudget(1 << 20)
		h := newHarness(t, domain.StreamConfig{ChunkInterval: time.Second, Scene: domain.SceneConfig{RejectUnusable: true, DarkLuma: domain.DefaultDarkLuma, BlurSharpness: domain.DefaultBlurSharpness},
			Analyzer: a, Budget: budget}, gate.Infer)
		for _, name := range []string{"a", "dark", "blurred"} {
			h.stream.HandleFrame([]byte(name))
		}
		h.clock.Advance(time.Second)
		h.stream.HandleFrame([]byte("b")) // cuts a, dark, blurred, b
		require.True(t, h.stream.Busy())
		synctest.Wait() // the call is waiting in the model
		assert.Equal(t, int64(len("a")+len("b")), budget.Used(), "rejected frames gave their bytes back at the call's start")
		assert.Equal(t, [][]string{{"a", "b"}}, sentFrames(h.session()))
		gate.Release(ports.Result{}, nil)
		h.stream.AwaitCall()
		assert.Zero(t, budget.Used(), "the rest is released once, when the call ends")
		sum := h.stream.Close(context.Background())
		assert.Equal(t, int64(2), sum.RejectedFrames)
		assert.Zero(t, sum.SkippedChunks)
		assert.Zero(t, budget.Used())
	})
}

// Close collects a skipped call that nobody polled: its bytes are not
// released twice and it is still counted.
func TestCloseCollectsASkippedCall(t *testing.T) {
	h := newSceneHarness(t, domain.SceneConfig{RejectUnusable: true, DarkLuma: domain.DefaultDarkLuma, BlurSharpness: domain.DefaultBlurSharpness}, nil)
	h.stream.HandleFrame([]byte("dark")) // cut; its call skips at once
	sum := h.stream.Close(context.Background())
	assert.Equal(t, int64(1), sum.SkippedChunks)
	assert.Zero(t, h.budget.Used())
	assert.Empty(t, h.session().Chunks())
}

func TestSceneGateOffAnalysesNothing(t *testing.T) {
	for name, cfg := range map[string]domain.StreamConfig{
		"zero scene config": {Analyzer: newFakeAnalyzer()},
		"no analyzer":       {Scene: domain.SceneConfig{SkipUnchanged: true, RejectUnusable: true, DarkLuma: domain.DefaultDarkLuma, BlurSharpness: domain.DefaultBlurSharpness}},
	} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, cfg, nil)
			for _, f := range []string{"dark", "dark", "a", "a"} {
				assert.Empty(t, h.stream.HandleFrame([]byte(f)).Camera)
				h.stream.AwaitCall()
			}
			assert.Equal(t, [][]string{{"dark"}, {"dark"}, {"a"}, {"a"}}, sentFrames(h.session()))
			if a, ok := cfg.Analyzer.(*fakeAnalyzer); ok {
				assert.Zero(t, a.calls)
			}
			sum := h.stream.Close(context.Background())
			assert.Zero(t, sum.SkippedChunks)
			assert.Nil(t, sum.SkippedByReason)
		})
	}
}
