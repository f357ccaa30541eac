package domain_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/domain/domaintest"
	"github.com/foresight-vision/foresight/ports"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// harness starts a stream on a manual clock with the session already open.
type harness struct {
	t       *testing.T
	clock   *domaintest.Clock
	backend *domaintest.Backend
	stream  *domain.Stream
	obs     *countingObserver
}

func newHarness(t *testing.T, cfg domain.StreamConfig, infer domaintest.InferFunc) *harness {
	t.Helper()
	h := &harness{t: t, clock: domaintest.NewClock(), backend: &domaintest.Backend{Infer: infer}, obs: &countingObserver{}}
	cfg.Clock = h.clock
	cfg.Observer = h.obs
	h.stream = domain.StartStream(h.backend, ports.SessionRequest{StreamID: "s1"}, cfg)
	h.stream.AwaitCall() // the open
	t.Cleanup(func() { h.stream.Close(context.Background()) })
	return h
}

func (h *harness) session() *domaintest.Session {
	sessions := h.backend.Sessions()
	require.Len(h.t, sessions, 1)
	return sessions[0]
}

func (h *harness) frame(n int) domain.Ack { return h.stream.HandleFrame(make([]byte, n)) }

type countingObserver struct {
	dropped, chunks atomic.Int64
	outcomes        [3]atomic.Int64
	skipped         atomic.Int64
	skippedBytes    atomic.Int64
	rejected        atomic.Int64
}

func (o *countingObserver) ChunkSkipped(_ string, _ int, bytes int64) {
	o.skipped.Add(1)
	o.skippedBytes.Add(bytes)
}
func (o *countingObserver) FramesRejected(n int) { o.rejected.Add(int64(n)) }

func (o *countingObserver) FramesDropped(n int, _ int64)    { o.dropped.Add(int64(n)) }
func (o *countingObserver) ChunkCut(int, int64, int, int64) { o.chunks.Add(1) }
func (o *countingObserver) InferenceDone(outcome ports.Outcome, _ time.Duration) {
	switch outcome {
	case ports.OutcomeOK:
		o.outcomes[0].Add(1)
	case ports.OutcomeError:
		o.outcomes[1].Add(1)
	case ports.OutcomeTimeout:
		o.outcomes[2].Add(1)
	}
}

func TestAcksCountFramesAndBytes(t *testing.T) {
	h := newHarness(t, domain.StreamConfig{}, nil)
	for i, size := range []int{10, 0, 1 << 20, 3} {
		ack := h.frame(size)
		assert.Equal(t, int64(i+1), ack.Frame)
		assert.Equal(t, size, ack.Bytes)
		assert.True(t, ack.Result.Empty())
	}
}

func TestBufferBounds(t *testing.T) {
	tests := []struct {
		name                     string
		maxFrames                int
		maxBytes                 int64
		sizes                    []int
		wantFrames, wantDropped  int
		wantBytes, wantDropBytes int64
	}{
		{"under both bounds", 5, 1000, []int{10, 20}, 2, 0, 30, 0},
		{"frame bound drops oldest", 3, 1000, []int{1, 2, 3, 4, 5}, 3, 2, 12, 3},
		{"min one frame", 1, 1000, []int{7, 8}, 1, 1, 8, 7},
		{"byte bound drops oldest", 100, 100, []int{40, 40, 40}, 2, 1, 80, 40},
		{"byte bound drops several", 100, 100, []int{30, 30, 30, 90}, 1, 3, 90, 90},
		{"oversized frame kept alone", 100, 100, []int{10, 500}, 1, 1, 500, 10},
		{"empty frames count against frames only", 2, 1, []int{0, 0, 0}, 2, 1, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gate := domaintest.NewGate()
			// Keep a call in flight so that nothing is cut while filling.
			h := newHarness(t, domain.StreamConfig{MaxBufferFrames: tt.maxFrames, MaxBufferBytes: tt.maxBytes}, gate.Infer)
			h.frame(0) // cut a chunk holding one empty frame; its call hangs
			for _, n := range tt.sizes {
				h.frame(n)
			}
			frames, size := h.stream.Buffered()
			assert.Equal(t, tt.wantFrames, frames)
			assert.Equal(t, tt.wantBytes, size)
			sum := h.stream.Close(context.Background())
			assert.Equal(t, int64(tt.wantDropped), sum.DroppedFrames)
			assert.Equal(t, tt.wantDropBytes, sum.DroppedBytes)
			assert.Equal(t, int64(tt.wantDropped), h.obs.dropped.Load())
		})
	}
}

func TestChunkWindow(t *testing.T) {
	tests := []struct {
		name     string
		interval time.Duration
		// steps: advance the clock, then send a frame.
		steps      []time.Duration
		wantChunks [][2]float64 // start, end seconds of each chunk
		wantFrames []int        // frames in each chunk
	}{
		{
			name:       "no chunk before the interval",
			interval:   time.Second,
			steps:      []time.Duration{0, 300 * time.Millisecond, 600 * time.Millisecond},
			wantChunks: nil,
		},
		{
			name:       "chunk at the interval holds every buffered frame",
			interval:   time.Second,
			steps:      []time.Duration{0, 500 * time.Millisecond, 500 * time.Millisecond},
			wantChunks: [][2]float64{{0, 1}},
			wantFrames: []int{3},
		},
		{
			name:       "window restarts at the cut",
			interval:   time.Second,
			steps:      []time.Duration{1500 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond},
			wantChunks: [][2]float64{{0, 1.5}, {1.5, 2.5}},
			wantFrames: []int{1, 2},
		},
		{
			name:       "zero interval cuts on every idle frame",
			interval:   -1,
			steps:      []time.Duration{0, 0, 250 * time.Millisecond},
			wantChunks: [][2]float64{{0, 0}, {0, 0}, {0, 0.25}},
			wantFrames: []int{1, 1, 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, domain.StreamConfig{ChunkInterval: tt.interval}, nil)
			for _, d := range tt.steps {
				h.clock.Advance(d)
				h.frame(4)
				h.stream.AwaitCall()
			}
			var got [][2]float64
			var frames []int
			for _, c := range h.session().Chunks() {
				got = append(got, [2]float64{c.StartS, c.EndS})
				frames = append(frames, len(c.Frames))
				assert.Equal(t, domain.DefaultPrompt, c.Prompt)
			}
			assert.Equal(t, tt.wantChunks, got)
			assert.Equal(t, tt.wantFrames, frames)
			assert.Equal(t, int64(len(tt.wantChunks)), h.obs.chunks.Load())
		})
	}
}

func TestChunkFramesOldestFirst(t *testing.T) {
	h := newHarness(t, domain.StreamConfig{ChunkInterval: time.Second}, nil)
	for i := range 3 {
		h.stream.HandleFrame([]byte{byte(i)})
	}
	h.clock.Advance(time.Second)
	h.stream.HandleFrame([]byte{3})
	h.stream.AwaitCall()
	chunks := h.session().Chunks()
	require.Len(t, chunks, 1)
	assert.Equal(t, [][]byte{{0}, {1}, {2}, {3}}, chunks[0].Frames)
	frames, size := h.stream.Buffered()
	assert.Zero(t, frames)
	assert.Zero(t, size)
}

func TestOneCallInFlight(t *testing.T) {
	gate := domaintest.NewGate()
	h := newHarness(t, domain.StreamConfig{}, gate.Infer)
	h.frame(1) // cuts chunk 1
	for range 10 {
		h.clock.Advance(time.Second)
		ack := h.frame(1) // acked at once while the call hangs
		assert.True(t, ack.Result.Empty())
	}
	assert.True(t, h.stream.Busy())
	gate.Release(ports.Result{Caption: "one", Set: ports.ResultCaption}, nil)
	h.stream.AwaitCall()
	ack := h.frame(1) // takes the result, then cuts chunk 2 with 11 frames
	assert.Equal(t, ports.Result{Caption: "one", Set: ports.ResultCaption}, ack.Result)
	go gate.Release(ports.Result{}, nil)
	h.stream.AwaitCall()
	chunks := h.session().Chunks()
	require.Len(t, chunks, 2)
	assert.Len(t, chunks[1].Frames, 11)
	assert.Equal(t, 1, h.session().MaxConcurrentCalls())
}

func TestResultAttachment(t *testing.T) {
	tests := []struct {
		name    string
		result  ports.Result
		err     error
		want    ports.Result
		wantErr string
	}{
		{"caption on one later ack", ports.Result{Caption: "a dog", LatencyMS: 120, Set: ports.ResultCaption | ports.ResultLatency}, nil, ports.Result{Caption: "a dog", LatencyMS: 120, Set: ports.ResultCaption | ports.ResultLatency}, ""},
		{"extras alone are a result", ports.Result{Extras: map[string]any{"x": 1}}, nil, ports.Result{Extras: map[string]any{"x": 1}}, ""},
		{"empty result adds nothing", ports.Result{}, nil, ports.Result{}, ""},
		{"failure becomes the ack's error", ports.Result{}, errors.New("boom"), ports.Result{}, "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, domain.StreamConfig{ChunkInterval: time.Hour}, func(context.Context, ports.Chunk) (ports.Result, error) {
				return tt.result, tt.err
			})
			h.clock.Advance(time.Hour)
			first := h.frame(1) // cuts the chunk; its result cannot be on its own ack
			assert.True(t, first.Result.Empty())
			h.stream.AwaitCall()
			ack := h.frame(1)
			assert.Equal(t, tt.want, ack.Result)
			assert.Equal(t, tt.wantErr, ack.InferenceError)
			again := h.frame(1)
			assert.True(t, again.Result.Empty(), "a result is attached to exactly one ack")
			assert.Empty(t, again.InferenceError, "an error is attached to exactly one ack")
			sum := h.stream.Close(context.Background())
			wantFailures := int64(0)
			if tt.err != nil {
				wantFailures = 1
			}
			assert.Equal(t, wantFailures, sum.InferenceFailures)
		})
	}
}

func TestFailureThenStreamGoesOn(t *testing.T) {
	var calls atomic.Int32
	h := newHarness(t, domain.StreamConfig{}, func(context.Context, ports.Chunk) (ports.Result, error) {
		if calls.Add(1) == 1 {
			return ports.Result{}, errors.New("model crashed")
		}
		return ports.Result{Caption: "fine", Set: ports.ResultCaption}, nil
	})
	h.frame(1)
	h.stream.AwaitCall()
	assert.Equal(t, "model crashed", h.frame(1).InferenceError) // and cuts the next chunk
	h.stream.AwaitCall()
	assert.Equal(t, ports.Result{Caption: "fine", Set: ports.ResultCaption}, h.frame(1).Result)
	assert.Equal(t, int64(1), h.obs.outcomes[1].Load())
}

func TestInferenceTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gate := domaintest.NewGate()
		h := newHarness(t, domain.StreamConfig{InferenceTimeout: 5 * time.Second}, gate.Infer)
		h.frame(1)
		h.clock.Advance(4 * time.Second)
		h.frame(1)
		assert.True(t, h.stream.Busy(), "not timed out yet")
		h.clock.Advance(time.Second) // fires the timeout, which cancels the call
		h.stream.AwaitCall()
		ack := h.frame(1) // gets the error and cuts the next chunk at once
		assert.Equal(t, "inference timed out after 5s", ack.InferenceError)
		assert.True(t, h.stream.Busy(), "the next chunk went")
		synctest.Wait()
		require.Len(t, h.session().Chunks(), 2)
		assert.Len(t, h.session().Chunks()[1].Frames, 2)
		sum := h.stream.Close(context.Background())
		assert.Equal(t, int64(1), sum.InferenceTimeouts)
		assert.Equal(t, int64(1), h.obs.outcomes[2].Load())
		assert.Zero(t, h.clock.PendingTimers())
	})
}

func TestOpenFailure(t *testing.T) {
	clock := domaintest.NewClock()
	backend := &domaintest.Backend{Open: func(context.Context, ports.SessionRequest) error {
		return errors.New("class Gemma3VLMSession not found")
	}}
	s := domain.StartStream(backend, ports.SessionRequest{}, domain.StreamConfig{Clock: clock})
	s.AwaitCall()
	assert.Equal(t, "open inference session: class Gemma3VLMSession not found", s.HandleFrame([]byte{1}).InferenceError)
	for range 5 {
		clock.Advance(time.Second)
		ack := s.HandleFrame([]byte{1})
		assert.True(t, ack.Result.Empty())
		assert.False(t, s.Busy())
	}
	frames, _ := s.Buffered()
	assert.Zero(t, frames, "frames are not kept when there is no inference")
	sum := s.Close(context.Background())
	assert.Equal(t, int64(6), sum.Frames)
	assert.Equal(t, int64(1), sum.InferenceFailures)
	assert.Zero(t, sum.Chunks)
}

func TestOpenTimeout(t *testing.T) {
	clock := domaintest.NewClock()
	backend := &domaintest.Backend{Open: func(ctx context.Context, _ ports.SessionRequest) error {
		<-ctx.Done()
		return ctx.Err()
	}}
	s := domain.StartStream(backend, ports.SessionRequest{}, domain.StreamConfig{Clock: clock, InferenceTimeout: time.Second})
	clock.Advance(time.Second)
	s.AwaitCall()
	assert.Equal(t, "open inference session: inference timed out after 1s", s.HandleFrame(nil).InferenceError)
	s.Close(context.Background())
}

func TestFramesDuringOpenGoInFirstChunk(t *testing.T) {
	clock := domaintest.NewClock()
	release := make(chan struct{})
	backend := &domaintest.Backend{Open: func(context.Context, ports.SessionRequest) error {
		<-release
		return nil
	}}
	s := domain.StartStream(backend, ports.SessionRequest{StreamID: "abc"}, domain.StreamConfig{Clock: clock})
	for range 3 {
		clock.Advance(time.Second)
		assert.True(t, s.HandleFrame([]byte{9}).Result.Empty())
	}
	close(release)
	s.AwaitCall()
	s.HandleFrame([]byte{9})
	s.AwaitCall()
	chunks := backend.Sessions()[0].Chunks()
	require.Len(t, chunks, 1)
	assert.Len(t, chunks[0].Frames, 4)
	assert.Equal(t, 0.0, chunks[0].StartS)
	assert.Equal(t, 3.0, chunks[0].EndS)
	assert.Equal(t, "abc", backend.Sessions()[0].Request().StreamID)
	s.Close(context.Background())
}

func TestClose(t *testing.T) {
	t.Run("cancels the call in flight and closes the session once", func(t *testing.T) {
		var cancelled atomic.Bool
		h := newHarness(t, domain.StreamConfig{}, func(ctx context.Context, _ ports.Chunk) (ports.Result, error) {
			<-ctx.Done()
			cancelled.Store(true)
			return ports.Result{}, ctx.Err()
		})
		h.frame(1)
		h.clock.Advance(2 * time.Second)
		sum := h.stream.Close(context.Background())
		assert.True(t, cancelled.Load())
		assert.Equal(t, 1, h.session().Closes())
		assert.Equal(t, int64(1), sum.Frames)
		assert.Equal(t, int64(1), sum.Chunks)
		assert.Equal(t, 2*time.Second, sum.Duration)
		assert.InDelta(t, 0.5, sum.FPS, 1e-9)
		assert.Equal(t, sum, h.stream.Close(context.Background()), "second close is a no-op")
		assert.Equal(t, 1, h.session().Closes())
		assert.Zero(t, h.clock.PendingTimers())
	})
	t.Run("a finished result is consumed", func(t *testing.T) {
		h := newHarness(t, domain.StreamConfig{}, func(context.Context, ports.Chunk) (ports.Result, error) {
			return ports.Result{Caption: "late", Set: ports.ResultCaption}, nil
		})
		h.frame(1)
		h.stream.AwaitCall()
		sum := h.stream.Close(context.Background())
		assert.Equal(t, 1, h.session().Closes())
		assert.Zero(t, sum.InferenceFailures)
	})
	t.Run("close during open closes the session it opened", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			release := make(chan struct{})
			backend := &domaintest.Backend{Open: func(context.Context, ports.SessionRequest) error {
				<-release
				return nil
			}}
			s := domain.StartStream(backend, ports.SessionRequest{}, domain.StreamConfig{Clock: domaintest.NewClock()})
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // give up waiting at once
			s.Close(ctx)
			close(release)
			synctest.Wait()
			ss := backend.Sessions()
			require.Len(t, ss, 1)
			require.Equal(t, 1, ss[0].Closes())
		})
	})
	t.Run("close error is reported", func(t *testing.T) {
		s := domain.StartStream(failingCloseBackend{}, ports.SessionRequest{}, domain.StreamConfig{})
		sum := s.Close(context.Background())
		assert.EqualError(t, sum.CloseErr, "close inference session: remote close failed")
	})
}

type failingCloseBackend struct{}

func (failingCloseBackend) OpenSession(context.Context, ports.SessionRequest) (ports.InferenceSession, error) {
	return failingCloseSession{}, nil
}

type failingCloseSession struct{}

func (failingCloseSession) InferChunk(context.Context, ports.Chunk) (ports.Result, error) {
	return ports.Result{}, nil
}
func (failingCloseSession) Close(context.Context) error { return errors.New("remote close failed") }

func TestNoInferenceKeepsNoFrames(t *testing.T) {
	clock := domaintest.NewClock()
	backend := &domaintest.Backend{Open: func(context.Context, ports.SessionRequest) error { return ports.ErrNoInference }}
	s := domain.StartStream(backend, ports.SessionRequest{}, domain.StreamConfig{Clock: clock})
	s.AwaitCall()
	for range 5 {
		clock.Advance(time.Second)
		ack := s.HandleFrame([]byte{1, 2})
		assert.True(t, ack.Result.Empty(), "no model is not an error")
	}
	frames, _ := s.Buffered()
	assert.Zero(t, frames)
	sum := s.Close(context.Background())
	assert.Zero(t, sum.InferenceFailures)
	assert.Zero(t, sum.Chunks)
	assert.Equal(t, int64(5), sum.Frames)
}

// TestNilBackendMeansNoModel: a stream given no backend is acked as usual
// and keeps no frame, from its first one.
func TestNilBackendMeansNoModel(t *testing.T) {
	s := domain.StartStream(nil, ports.SessionRequest{}, domain.StreamConfig{Clock: domaintest.NewClock()})
	assert.False(t, s.RetainsFrames())
	assert.False(t, s.Busy())
	for i := range 3 {
		ack := s.HandleFrame([]byte{1, 2})
		assert.Equal(t, int64(i+1), ack.Frame)
		assert.True(t, ack.Result.Empty())
		assert.Empty(t, ack.InferenceError)
	}
	sum := s.Close(context.Background())
	assert.Zero(t, sum.InferenceFailures)
	assert.Zero(t, sum.Chunks)
	assert.Equal(t, int64(3), sum.Frames)
}

func TestSharedMemoryBudget(t *testing.T) {
	budget := domain.NewMemoryBudget(100)
	gate := domaintest.NewGate()
	newStream := func() (*domain.Stream, *domaintest.Clock) {
		clock := domaintest.NewClock()
		s := domain.StartStream(&domaintest.Backend{Infer: gate.Infer}, ports.SessionRequest{},
			domain.StreamConfig{Clock: clock, ChunkInterval: time.Hour, Budget: budget, MaxFramesPerChunk: domain.DefaultMaxFramesPerChunk})
		s.AwaitCall()
		return s, clock
	}
	a, clockA := newStream()
	b, _ := newStream()

	for range 6 {
		a.HandleFrame(make([]byte, 10)) // 60 bytes buffered
	}
	b.HandleFrame(make([]byte, 30))
	assert.Equal(t, int64(90), budget.Used())
	b.HandleFrame(make([]byte, 30)) // does not fit: b drops its own oldest frame
	frames, size := b.Buffered()
	assert.Equal(t, 1, frames)
	assert.Equal(t, int64(30), size)
	b.HandleFrame(make([]byte, 50)) // cannot fit even alone: dropped
	frames, _ = b.Buffered()
	assert.Equal(t, 0, frames, "b dropped its oldest, then the frame itself")
	assert.Equal(t, int64(60), budget.Used())

	// A chunk keeps its bytes until its call ends; of its 7 frames the 6
	// sent (DefaultMaxFramesPerChunk) hold 60, the other gave its 10 back.
	clockA.Advance(time.Hour)
	a.HandleFrame(make([]byte, 10))
	assert.Equal(t, int64(60), budget.Used())
	gate.Release(ports.Result{}, nil)
	a.AwaitCall()
	assert.Equal(t, int64(0), budget.Used())

	sumB := b.Close(context.Background())
	assert.Equal(t, int64(3), sumB.DroppedFrames)
	assert.Equal(t, int64(110), sumB.DroppedBytes)
	a.Close(context.Background())
	assert.Zero(t, budget.Used())
}

func TestBudgetReleasedOnClose(t *testing.T) {
	budget := domain.NewMemoryBudget(1 << 20)
	gate := domaintest.NewGate()
	h := harness{clock: domaintest.NewClock()}
	s := domain.StartStream(&domaintest.Backend{Infer: gate.Infer}, ports.SessionRequest{},
		domain.StreamConfig{Clock: h.clock, Budget: budget})
	s.AwaitCall()
	s.HandleFrame(make([]byte, 100)) // chunk in flight
	s.HandleFrame(make([]byte, 50))  // buffered
	assert.Equal(t, int64(150), budget.Used())
	s.Close(context.Background()) // cancels the hanging call
	assert.Zero(t, budget.Used())
}

func TestTimeoutReportedWhenSessionIgnoresCancellation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		h := newHarness(t, domain.StreamConfig{InferenceTimeout: time.Second}, func(context.Context, ports.Chunk) (ports.Result, error) {
			<-release // ignores ctx
			return ports.Result{Caption: "too late", Set: ports.ResultCaption}, nil
		})
		h.frame(1)
		h.clock.Advance(time.Second)
		ack := h.frame(1)
		assert.Equal(t, "inference timed out after 1s", ack.InferenceError)
		assert.True(t, h.stream.Busy(), "no new call while the old one has not returned")
		assert.True(t, h.frame(1).Result.Empty(), "reported once")
		close(release)
		h.stream.AwaitCall()
		assert.True(t, h.frame(1).Result.Empty(), "the late result is dropped")
		synctest.Wait()
		require.Len(t, h.session().Chunks(), 2)
		assert.Equal(t, 1, h.session().MaxConcurrentCalls())
	})
}

func TestOpenTimeoutReportedWhenBackendIgnoresCancellation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := domaintest.NewClock()
		release := make(chan struct{})
		backend := &domaintest.Backend{Open: func(context.Context, ports.SessionRequest) error {
			<-release // ignores ctx
			return nil
		}}
		s := domain.StartStream(backend, ports.SessionRequest{}, domain.StreamConfig{Clock: clock, InferenceTimeout: time.Second})
		clock.Advance(time.Second)
		assert.Equal(t, "open inference session: inference timed out after 1s", s.HandleFrame([]byte{1}).InferenceError)
		frames, _ := s.Buffered()
		assert.Zero(t, frames, "no inference: frames are not kept")
		close(release)
		s.AwaitCall()
		assert.True(t, s.HandleFrame([]byte{1}).Result.Empty())
		synctest.Wait()
		ss := backend.Sessions()
		require.Len(t, ss, 1)
		require.Equal(t, 1, ss[0].Closes(), "the late session is closed, not used")
		assert.Empty(t, backend.Sessions()[0].Chunks())
		s.Close(context.Background())
	})
}

func TestCloseNeverClosesTheSessionUnderARunningCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		h := newHarness(t, domain.StreamConfig{}, func(context.Context, ports.Chunk) (ports.Result, error) {
			<-release // ignores cancellation
			return ports.Result{}, nil
		})
		h.frame(1)
		synctest.Wait()
		require.Len(t, h.session().Chunks(), 1)
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // the caller will not wait
		sum := h.stream.Close(ctx)
		assert.Error(t, sum.CloseErr)
		assert.Zero(t, h.session().Closes(), "not while the call runs")
		close(release)
		synctest.Wait()
		require.Equal(t, 1, h.session().Closes(), "closed once the call is back")
	})
}

func TestDropBuffered(t *testing.T) {
	budget := domain.NewMemoryBudget(1 << 20)
	gate := domaintest.NewGate()
	clock := domaintest.NewClock()
	s := domain.StartStream(&domaintest.Backend{Infer: gate.Infer}, ports.SessionRequest{},
		domain.StreamConfig{Clock: clock, ChunkInterval: time.Hour, Budget: budget})
	s.AwaitCall()
	assert.Zero(t, s.DropBuffered())
	s.HandleFrame(make([]byte, 10))
	s.HandleFrame(make([]byte, 20))
	assert.Equal(t, int64(30), s.DropBuffered())
	assert.Zero(t, budget.Used())
	sum := s.Close(context.Background())
	assert.Equal(t, int64(2), sum.DroppedFrames)
	assert.Equal(t, int64(30), sum.DroppedBytes)
}

func TestHandleFrameAfterCloseKeepsNothing(t *testing.T) {
	budget := domain.NewMemoryBudget(1 << 20)
	clock := domaintest.NewClock()
	s := domain.StartStream(&domaintest.Backend{}, ports.SessionRequest{},
		domain.StreamConfig{Clock: clock, ChunkInterval: time.Hour, Budget: budget})
	s.AwaitCall()
	s.HandleFrame(make([]byte, 10))
	sum := s.Close(context.Background())
	ack := s.HandleFrame(make([]byte, 100))
	assert.Equal(t, int64(2), ack.Frame, "still numbered")
	assert.Equal(t, 100, ack.Bytes)
	frames, _ := s.Buffered()
	assert.Zero(t, frames, "a closed stream buffers nothing")
	assert.Zero(t, budget.Used(), "a closed stream takes no budget")
	assert.Equal(t, sum, s.Close(context.Background()), "the summary is final")
}

func TestHandleDroppedFrameAfterCloseOnlyNumbers(t *testing.T) {
	s := domain.StartStream(&domaintest.Backend{}, ports.SessionRequest{},
		domain.StreamConfig{Clock: domaintest.NewClock(), ChunkInterval: time.Hour})
	s.AwaitCall()
	s.HandleFrame(make([]byte, 10))
	sum := s.Close(context.Background())
	ack := s.HandleDroppedFrame(100)
	assert.Equal(t, int64(2), ack.Frame, "still numbered")
	assert.Equal(t, sum, s.Close(context.Background()), "the summary is final")
}

// TestHandleFrameAllocatesNothing backs docs/benchmarks.md: the per-frame path
// with a call in flight (buffer, drops once full, poll, ack) allocates nothing.
func TestHandleFrameAllocatesNothing(t *testing.T) {
	gate := domaintest.NewGate()
	s := domain.StartStream(&domaintest.Backend{Infer: gate.Infer}, ports.SessionRequest{},
		domain.StreamConfig{Clock: domaintest.NewClock(), MaxBufferFrames: 4})
	s.AwaitCall()
	frame := make([]byte, 1000)
	s.HandleFrame(frame) // cuts a chunk whose call hangs until Close
	s.HandleFrame(frame) // allocates the ring
	allocs := testing.AllocsPerRun(100, func() { s.HandleFrame(frame) })
	assert.Zero(t, allocs)
	s.Close(context.Background())
}
