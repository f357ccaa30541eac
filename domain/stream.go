// Package domain holds the rules of a live vision stream as pure logic:
// frame acks, the chunk window, the one-call-in-flight rule, attaching a
// finished result to exactly one later ack, handing each delivered caption
// to a ports.CaptionSink, and the stream's lifecycle and summary. It does no
// I/O: inference goes through ports.InferenceBackend, captions through
// ports.CaptionSink and time through Clock.
package domain

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/foresight-vision/foresight/ports"
)

// ErrInferenceTimeout is the cause given to a call's context when it runs
// past StreamConfig.InferenceTimeout.
var ErrInferenceTimeout = errors.New("inference timed out")

// errStreamClosed is the cause given to a call's context when its stream ends.
var errStreamClosed = errors.New("stream closed")

// Ack answers one frame. At most one of Result and InferenceError is set:
// a finished call's reply, or the text of its failure, delivered on this ack
// and no other.
type Ack struct {
	Frame int64
	Bytes int
	// Result is a successful call's reply; Result.Empty() when there is
	// none.
	Result ports.Result
	// InferenceError says why a call (or opening the session) failed;
	// empty when none did.
	InferenceError string
	// Camera is the camera state ("dark", "blurred", "ok") when the scene
	// gate saw it change since the last ack that carried it; empty
	// otherwise, which is always so with the gate off.
	Camera string
}

// report is what a finished call leaves for the next ack.
type report struct {
	result ports.Result
	err    string
}

// Summary describes a finished stream.
type Summary struct {
	Frames            int64
	Bytes             int64
	Chunks            int64
	InferenceFailures int64 // includes timeouts and a failed session open
	InferenceTimeouts int64
	DroppedFrames     int64
	DroppedBytes      int64
	// SkippedChunks counts chunks the scene gate kept from the model (they
	// are in Chunks too); SkippedByReason splits them by SkipReason and is
	// nil until one is skipped. RejectedFrames counts unusable frames left
	// out of chunks, skipped or sent.
	SkippedChunks   int64
	SkippedByReason map[SkipReason]int64
	RejectedFrames  int64
	Duration        time.Duration
	FPS             float64
	// CloseErr is the error closing the inference session returned, if any.
	CloseErr error
}

// Stream is one stream session: one WebSocket connection in the server.
// It is not safe for concurrent use: one goroutine feeds it frames and
// closes it. Inference runs in the background, one call at a time.
type Stream struct {
	cfg     StreamConfig
	backend ports.InferenceBackend
	req     ports.SessionRequest

	start       time.Time
	windowStart time.Time
	buf         frameBuffer

	session  ports.InferenceSession // nil until opened
	disabled bool                   // no session (no model, or the open failed): no more inference
	call     *call                  // the one call in flight (open or infer), if any
	pending  report                 // a result or failure waiting for the next ack
	// gate is the stream's scene gate, nil when it is off. Only the call in
	// flight uses it, from its goroutine; calls never overlap, and each
	// starts after the previous one's outcome was received, so it needs no
	// lock.
	gate   *SceneGate
	camera CameraState // a camera state change waiting for the next ack

	summary    Summary
	closed     bool
	lateFrames int64 // frames handed in after Close, only numbered
}

// call is a background open or infer call.
type call struct {
	open  bool  // opening the session rather than inferring a chunk
	bytes int64 // the chunk's frame bytes, held in the budget until the call ends
	// reported is set once a timeout has been reported for a call that has
	// not returned yet (its session ignored cancellation): the client hears
	// of it at once, but no new call starts until this one returns.
	reported bool
	done     chan outcome
	cancel   context.CancelCauseFunc
	stop     func() bool
	ctx      context.Context
	started  time.Time
}

type outcome struct {
	result  ports.Result
	session ports.InferenceSession
	err     error
	scene   sceneOutcome
}

// sceneOutcome is what the scene gate decided for a chunk's call.
type sceneOutcome struct {
	skip     SkipReason  // non-empty: the model was not called
	camera   CameraState // a change of camera state, for the next ack
	frames   int         // frames the chunk held before the gate
	rejected int         // frames left out as unusable
	// released is the part of the call's budget bytes the call gave back
	// itself (rejected frames, or the whole chunk when skipped), so that
	// whoever collects the call releases only the rest.
	released int64
}

// StartStream begins a stream now and starts opening its inference session in
// the background, so the first acks never wait for the backend. req names
// the stream and its device, which label the captions it hands to
// cfg.Captions. A nil backend means no model: the stream is acked as usual
// and keeps no frames, as with one that answers ports.ErrNoInference.
func StartStream(backend ports.InferenceBackend, req ports.SessionRequest, cfg StreamConfig) *Stream {
	cfg = cfg.withDefaults()
	now := cfg.Clock.Now()
	s := &Stream{
		cfg:         cfg,
		backend:     backend,
		req:         req,
		start:       now,
		windowStart: now,
		buf:         newFrameBuffer(cfg.MaxBufferFrames, cfg.MaxBufferBytes, cfg.Budget),
	}
	if gate := NewSceneGate(cfg.Scene, cfg.Analyzer); gate.Enabled() {
		s.gate = gate
	}
	if backend == nil {
		s.disable()
		return s
	}
	s.call = s.launch(true, func(ctx context.Context) outcome {
		sess, err := backend.OpenSession(ctx, req)
		return outcome{session: sess, err: err}
	})
	return s
}

// launch runs fn in the background under a context that is cancelled when
// the inference timeout passes or the stream closes.
func (s *Stream) launch(open bool, fn func(ctx context.Context) outcome) *call {
	ctx, cancel := context.WithCancelCause(context.Background())
	c := &call{open: open, done: make(chan outcome, 1), cancel: cancel, ctx: ctx, started: s.cfg.Clock.Now()}
	c.stop = s.cfg.Clock.AfterFunc(s.cfg.InferenceTimeout, func() { cancel(ErrInferenceTimeout) })
	go func() { c.done <- fn(ctx) }()
	return c
}

// HandleFrame takes one frame and returns its ack at once. After Close it
// only numbers the frame.
func (s *Stream) HandleFrame(frame []byte) Ack {
	if s.closed {
		// A closed stream still answers, but keeps and counts nothing: no
		// later Close would release the budget its frames took, and its
		// summary is final.
		s.lateFrames++
		return Ack{Frame: s.summary.Frames + s.lateFrames, Bytes: len(frame)}
	}
	s.summary.Frames++
	s.summary.Bytes += int64(len(frame))
	if !s.disabled {
		if n, size, _ := s.buf.push(frame); n > 0 {
			s.summary.DroppedFrames += int64(n)
			s.summary.DroppedBytes += size
			s.cfg.Observer.FramesDropped(n, size)
		}
	}
	s.poll()
	if s.call == nil && s.session != nil && s.buf.count > 0 {
		if now := s.cfg.Clock.Now(); now.Sub(s.windowStart) >= s.cfg.ChunkInterval {
			s.cut(now)
		}
	}
	return s.reply(len(frame))
}

// reply is the ack of the frame just counted: what a finished call left
// (a result or a failure) and a camera change ride on it, once. A caption
// it delivers is handed to the caption sink first, so a caption the client
// sees is always kept.
func (s *Stream) reply(size int) Ack {
	ack := Ack{Frame: s.summary.Frames, Bytes: size, Result: s.pending.result, InferenceError: s.pending.err,
		Camera: string(s.camera)}
	s.pending = report{}
	s.camera = ""
	if ack.Result.Caption != "" && ack.Result.Set.Has(ports.ResultCaption) {
		s.cfg.Captions.Record(s.caption(ack))
	}
	return ack
}

// caption is the caption to keep from ack's result. Its id is the stream's
// (random) id and the frame number, unique and stable, so a retried batch
// is stored once; its times are the chunk's window counted from the
// stream's start.
func (s *Stream) caption(ack Ack) ports.Caption {
	res := ack.Result
	return ports.Caption{
		ID:          s.req.StreamID + "-" + strconv.FormatInt(ack.Frame, 10),
		Device:      s.req.Device,
		StreamID:    s.req.StreamID,
		Start:       s.start.Add(secondsToDuration(res.ChunkStartS)),
		End:         s.start.Add(secondsToDuration(res.ChunkEndS)),
		ChunkStartS: res.ChunkStartS,
		ChunkEndS:   res.ChunkEndS,
		Text:        res.Caption,
		LatencyMS:   res.LatencyMS,
		Tokens:      res.TokensGenerated,
		Backend:     s.cfg.BackendName,
		Model:       s.cfg.ModelName,
	}
}

func secondsToDuration(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// HandleDroppedFrame acks a frame of size bytes that the server could not
// hold (the shared MemoryBudget was spent and the stream had nothing
// buffered to give up): it is counted as received and dropped, and a
// finished result still rides on its ack.
func (s *Stream) HandleDroppedFrame(size int) Ack {
	if s.closed {
		// As in HandleFrame: a closed stream only numbers what it is handed.
		s.lateFrames++
		return Ack{Frame: s.summary.Frames + s.lateFrames, Bytes: size}
	}
	s.summary.Frames++
	s.summary.Bytes += int64(size)
	s.summary.DroppedFrames++
	s.summary.DroppedBytes += int64(size)
	s.cfg.Observer.FramesDropped(1, int64(size))
	s.poll()
	return s.reply(size)
}

// poll collects the call in flight if it has finished.
// It reports the budget bytes that collecting the call gave back.
func (s *Stream) poll() (freed int64) {
	if s.call == nil {
		return 0
	}
	select {
	case o := <-s.call.done:
		// The scene gate gave back what it left out when it decided.
		freed = s.call.bytes - o.scene.released
		s.finish(o)
	default:
		c := s.call
		if !c.reported && errors.Is(context.Cause(c.ctx), ErrInferenceTimeout) {
			// Timed out, cancelled, and still not back: tell the client now
			// rather than wait on a backend that ignores cancellation.
			c.reported = true
			err := s.timeoutErr()
			if c.open {
				s.disable()
				err = fmt.Errorf("open inference session: %w", err)
			}
			s.fail(err, s.cfg.Clock.Now().Sub(c.started))
		}
	}
	return freed
}

func (s *Stream) timeoutErr() error {
	return fmt.Errorf("%w after %s", ErrInferenceTimeout, s.cfg.InferenceTimeout)
}

// finish applies a finished call's outcome.
func (s *Stream) finish(o outcome) {
	c := s.call
	s.call = nil
	c.stop()
	cause := context.Cause(c.ctx)
	c.cancel(nil)
	s.cfg.Budget.Release(c.bytes - o.scene.released)
	s.applyScene(o.scene)
	if c.reported {
		// Its timeout has been reported already; a session that turns up
		// this late is not used, only closed.
		if c.open && o.session != nil {
			go closeLate(o.session)
		}
		return
	}
	elapsed := s.cfg.Clock.Now().Sub(c.started)
	if errors.Is(cause, ErrInferenceTimeout) && o.err == nil && !c.open {
		// Finished in the same instant the timer fired: keep the result.
		cause = nil
	}
	if o.err != nil && errors.Is(cause, ErrInferenceTimeout) {
		o.err = s.timeoutErr()
	}
	if c.open {
		if errors.Is(o.err, ports.ErrNoInference) {
			s.disable() // not a failure: there is no model for this stream
			return
		}
		if o.err != nil {
			if o.session != nil {
				// A backend that fails must not also hand back a session,
				// but if it does it would never be closed otherwise.
				_ = o.session.Close(context.Background())
			}
			s.disable()
			s.fail(fmt.Errorf("open inference session: %w", o.err), elapsed)
			return
		}
		s.session = o.session
		return
	}
	if o.scene.skip != SkipNone {
		return // no call was made: nothing to report
	}
	if o.err != nil {
		s.fail(o.err, elapsed)
		return
	}
	s.cfg.Observer.InferenceDone(ports.OutcomeOK, elapsed)
	if !o.result.Empty() {
		s.pending = report{result: o.result}
	}
}

// applyScene counts what the scene gate decided for a finished call and
// keeps a camera state change for the next ack.
func (s *Stream) applyScene(o sceneOutcome) {
	if o.camera != "" {
		s.camera = o.camera
	}
	if o.rejected > 0 {
		s.summary.RejectedFrames += int64(o.rejected)
		s.cfg.Observer.FramesRejected(o.rejected)
	}
	if o.skip == SkipNone {
		return
	}
	s.summary.SkippedChunks++
	if s.summary.SkippedByReason == nil {
		s.summary.SkippedByReason = make(map[SkipReason]int64, 4)
	}
	s.summary.SkippedByReason[o.skip]++
	s.cfg.Observer.ChunkSkipped(string(o.skip), o.frames, o.released)
}

// disable stops inference for the rest of the stream; frames are no longer kept.
func (s *Stream) disable() {
	s.disabled = true
	s.buf.clear()
}

func (s *Stream) fail(err error, elapsed time.Duration) {
	s.summary.InferenceFailures++
	outcome := ports.OutcomeError
	if errors.Is(err, ErrInferenceTimeout) {
		s.summary.InferenceTimeouts++
		outcome = ports.OutcomeTimeout
	}
	s.cfg.Observer.InferenceDone(outcome, elapsed)
	s.pending = report{err: err.Error()}
}

// cut hands the buffered frames to the model as one chunk, at most
// MaxFramesPerChunk of them; the frames left out give their bytes back now.
//
// With the scene gate on, selection comes first and the gate reviews the
// selected frames at the start of the background call: the frames not
// selected give their memory back at the cut, as without the gate, the gate
// decodes at most MaxFramesPerChunk frames, and the ack path never decodes.
// A rejected frame is therefore not replaced by an unselected usable one.
func (s *Stream) cut(now time.Time) {
	startS := max(s.windowStart.Sub(s.start).Seconds(), 0)
	endS := max(now.Sub(s.start).Seconds(), startS)
	frames, received := s.buf.take()
	receivedFrames := len(frames)
	frames, size := selectFrames(frames, s.cfg.MaxFramesPerChunk)
	s.cfg.Budget.Release(received - size)
	chunk := ports.Chunk{
		Frames: frames, StartS: startS, EndS: endS, Prompt: s.cfg.Prompt,
		ReceivedFrames: receivedFrames, ReceivedBytes: received,
	}
	s.windowStart = now
	s.summary.Chunks++
	s.cfg.Observer.ChunkCut(len(chunk.Frames), size, receivedFrames, received)
	session := s.session
	if s.gate == nil {
		s.call = s.launch(false, func(ctx context.Context) outcome {
			res, err := session.InferChunk(ctx, chunk)
			return outcome{result: res, err: err}
		})
		s.call.bytes = size
		return
	}
	gate, budget := s.gate, s.cfg.Budget
	s.call = s.launch(false, func(ctx context.Context) outcome {
		scene := reviewChunk(gate, budget, now, &chunk, size)
		if scene.skip != SkipNone {
			return outcome{scene: scene}
		}
		res, err := session.InferChunk(ctx, chunk)
		return outcome{result: res, err: err, scene: scene}
	})
	s.call.bytes = size
}

// reviewChunk runs the scene gate over chunk (cut at now, holding size
// budget bytes) in the chunk's call. It gives back at once the budget bytes
// of what will not reach the model (the rejected frames, or the whole chunk
// when it is skipped) and reports them in released, and it leaves in chunk
// only the frames to send.
func reviewChunk(gate *SceneGate, budget *MemoryBudget, now time.Time, chunk *ports.Chunk, size int64) sceneOutcome {
	d := gate.Review(now, chunk.Frames)
	o := sceneOutcome{skip: d.Skip, camera: d.Camera, frames: len(chunk.Frames), rejected: d.Rejected}
	if d.Skip != SkipNone {
		o.released = size
		chunk.Frames = nil
	} else {
		var kept int64
		for _, f := range d.Frames {
			kept += int64(len(f))
		}
		o.released = size - kept
		chunk.Frames = d.Frames
	}
	budget.Release(o.released)
	return o
}

// DropBuffered drops every frame waiting for the next chunk, counting them
// as dropped, and reports the bytes freed. The server calls it when the
// shared MemoryBudget is spent, so a stream gives up its own frames before
// it is refused a new message.
func (s *Stream) DropBuffered() int64 {
	// A call that has come back frees its chunk first; its result stays
	// for the next ack.
	freed := s.poll()
	frames, size := s.buf.count, s.buf.bytes
	if frames == 0 {
		return freed
	}
	s.buf.clear()
	s.summary.DroppedFrames += int64(frames)
	s.summary.DroppedBytes += size
	s.cfg.Observer.FramesDropped(frames, size)
	return freed + size
}

// Await waits until the call in flight (opening the session or inferring a
// chunk), if any, has finished and applies its outcome, so that a result is
// on the next ack. It reports false if ctx ended first. The server never
// waits (acks go out at once); tests, benchmarks and the package example
// use it to make a result's arrival deterministic.
func (s *Stream) Await(ctx context.Context) bool {
	if s.call == nil {
		return true
	}
	select {
	case o := <-s.call.done:
		s.finish(o)
		return true
	case <-ctx.Done():
		return false
	}
}

// RetainsFrames reports whether frames handed to HandleFrame may be kept
// after it returns (for a chunk). Once false (no inference for this
// stream) it stays false, and the caller may reuse a frame's memory as
// soon as HandleFrame returns.
func (s *Stream) RetainsFrames() bool { return !s.disabled }

// Busy reports whether a call (opening the session or inferring a chunk) is
// in flight.
func (s *Stream) Busy() bool { return s.call != nil }

// Close ends the stream: a finished result is consumed and dropped, a call in
// flight is cancelled and awaited until ctx is done, and the inference
// session is closed exactly once. Later calls return the same summary.
func (s *Stream) Close(ctx context.Context) Summary {
	if s.closed {
		return s.summary
	}
	s.closed = true
	if c := s.call; c != nil {
		c.cancel(errStreamClosed)
		select {
		case o := <-c.done:
			s.call = nil
			c.stop()
			s.cfg.Budget.Release(c.bytes - o.scene.released)
			s.applyScene(o.scene)
			if c.open && o.session != nil {
				s.session = o.session // closed below, even if the open also failed
			}
		case <-ctx.Done():
			// The call is cancelled but has not returned. The session must
			// not be closed under it (calls and Close never overlap), so the
			// session is closed, with a fresh deadline, once the call is back.
			c.stop()
			go closeWhenDone(c, s.cfg.Budget, s.session)
			s.session = nil
			s.summary.CloseErr = errors.New("close inference session: left to finish in the background (a call ignored cancellation)")
		}
	}
	s.buf.clear()
	if s.session != nil {
		if err := s.session.Close(ctx); err != nil {
			s.summary.CloseErr = fmt.Errorf("close inference session: %w", err)
		}
		s.session = nil
	}
	s.summary.Duration = s.cfg.Clock.Now().Sub(s.start)
	if secs := s.summary.Duration.Seconds(); secs > 0 {
		s.summary.FPS = float64(s.summary.Frames) / secs
	}
	return s.summary
}

// closeWhenDone waits for an abandoned call, then closes the stream's
// session, or the one the call opened.
func closeWhenDone(c *call, budget *MemoryBudget, session ports.InferenceSession) {
	o := <-c.done
	budget.Release(c.bytes - o.scene.released)
	if c.open && o.session != nil {
		session = o.session
	}
	if session != nil {
		closeLate(session)
	}
}

// lateCloseTimeout bounds closing a session nobody waits for any more.
const lateCloseTimeout = 10 * time.Second

// closeLate closes a session that arrived after the stream stopped waiting.
func closeLate(session ports.InferenceSession) {
	ctx, cancel := context.WithTimeout(context.Background(), lateCloseTimeout)
	defer cancel()
	_ = session.Close(ctx)
}
