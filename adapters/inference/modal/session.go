package modal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	//lint:ignore SA1019 the adapter is built and tested on libmodal v0.7.3; moving to its successor, modal-client/go, is a change of its own
	modalsdk "github.com/modal-labs/libmodal/modal-go"

	"github.com/foresight-vision/foresight/adapters/protocol/wire"
	"github.com/foresight-vision/foresight/ports"
)

// errSessionClosed is returned by InferChunk after Close.
var errSessionClosed = errors.New("modal session is closed")

// session calls one instance of the remote class for one stream.
type session struct {
	backend  *Backend
	entry    *clientEntry
	streamID string
	sendID   bool
	infer    *modalsdk.Function
	closeFn  *modalsdk.Function
	log      *slog.Logger

	// stragglers counts spawns still running after their caller gave up.
	stragglers sync.WaitGroup

	mu       sync.Mutex
	inflight *modalsdk.FunctionCall
	closed   bool
}

var _ ports.InferenceSession = (*session)(nil)

// kwargs carries the stream's id so the remote app scopes history to it.
func (s *session) kwargs() map[string]any {
	if !s.sendID {
		return nil
	}
	return map[string]any{"session_id": s.streamID}
}

// InferChunk spawns the remote infer_chunk and waits for its result under
// ctx. When ctx ends first, the remote call is cancelled and the error wraps
// ctx.Err().
func (s *session) InferChunk(ctx context.Context, chunk ports.Chunk) (ports.Result, error) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return ports.Result{}, errSessionClosed
	}
	if err := ctx.Err(); err != nil {
		return ports.Result{}, fmt.Errorf("modal infer_chunk: %w", err)
	}

	// []any of []byte encodes as a CBOR array of byte strings, which Python
	// receives as list[bytes]. A nil slice would encode as null.
	frames := make([]any, len(chunk.Frames))
	for i, f := range chunk.Frames {
		if f == nil {
			f = []byte{}
		}
		frames[i] = f
	}
	args := []any{frames, chunk.StartS, chunk.EndS, chunk.Prompt}

	start := time.Now()
	out, err := s.callSized(ctx, s.infer, args, chunkBytes(chunk.Frames))
	if err != nil {
		return ports.Result{}, fmt.Errorf("modal infer_chunk: %w", err)
	}
	res, err := toResult(out)
	if err != nil {
		return ports.Result{}, fmt.Errorf("modal infer_chunk: %w", err)
	}
	if _, sent := res.Extras[wire.AckLatencyMS]; !sent && !res.Set.Has(ports.ResultLatency) {
		res.LatencyMS = float64(sinceMS(start))
		res.Set |= ports.ResultLatency
	}
	return res, nil
}

// call spawns fn and waits for its output. If the wait fails for any reason
// other than the call having finished remotely (ctx done, control plane
// unreachable), the call is cancelled before returning.
func (s *session) call(ctx context.Context, fn *modalsdk.Function, args []any) (any, error) {
	return s.callSized(ctx, fn, args, 0)
}

// callSized is call for arguments carrying size bytes of frames, which the
// spawn holds of the backend's spawn budget while it encodes and sends them.
func (s *session) callSized(ctx context.Context, fn *modalsdk.Function, args []any, size int64) (any, error) {
	fc, err := s.spawn(ctx, fn, args, size)
	if err != nil {
		return nil, withCtx(ctx, fmt.Errorf("spawn: %w", err))
	}
	s.mu.Lock()
	s.inflight = fc
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inflight = nil
		s.mu.Unlock()
	}()

	out, err := fc.Get(ctx, nil)
	if err != nil {
		if !finishedRemotely(err) {
			s.cancel(ctx, fc)
		}
		return nil, withCtx(ctx, fmt.Errorf("call %s: %w", fc.FunctionCallID, err))
	}
	return out, nil
}

// spawn starts fn and returns as soon as ctx ends. The spawn itself (blob
// upload, FunctionMap) runs detached from ctx with Config.CancelTimeout of
// grace after it ends: otherwise a call created on the server just as ctx
// ended would come back without its id and run on unseen. When the spawn
// completes after spawn returned, its call is cancelled at once. Close waits
// for such stragglers, so none outlives the session.
func (s *session) spawn(ctx context.Context, fn *modalsdk.Function, args []any, size int64) (*modalsdk.FunctionCall, error) {
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	unwatch := context.AfterFunc(ctx, func() { time.AfterFunc(s.backend.cfg.CancelTimeout, stop) })

	type spawned struct {
		fc  *modalsdk.FunctionCall
		err error
	}
	var (
		mu        sync.Mutex
		abandoned bool
	)
	done := make(chan spawned, 1)
	s.stragglers.Add(1)
	go func() {
		defer s.stragglers.Done()
		defer stop()
		defer unwatch()
		fc, err := s.spawnInBudget(ctx, sctx, fn, args, size)
		mu.Lock()
		gone := abandoned
		if !gone {
			done <- spawned{fc, err}
		}
		mu.Unlock()
		if gone && err == nil {
			s.cancel(ctx, fc)
		}
	}()

	select {
	case r := <-done:
		return r.fc, r.err
	case <-ctx.Done():
		mu.Lock()
		defer mu.Unlock()
		select {
		case r := <-done:
			// Spawned just in time: the caller's wait sees ctx done and
			// cancels it.
			return r.fc, r.err
		default:
			abandoned = true
			return nil, ctx.Err()
		}
	}
}

// spawnInBudget runs fn.Spawn under sctx once the backend's spawn budget
// can hold the chunk's bytes (Config.MaxSpawnBytes) and a spawn slot is free
// (Config.MaxConcurrentSpawns). It waits for both on the caller's ctx: a
// caller that has given up sends nothing, rather than a call to cancel.
func (s *session) spawnInBudget(ctx, sctx context.Context, fn *modalsdk.Function, args []any, size int64) (*modalsdk.FunctionCall, error) {
	weight := s.backend.spawnWeight(size)
	if err := s.backend.spawnBudget.Acquire(ctx, weight); err != nil {
		return nil, err
	}
	defer s.backend.spawnBudget.Release(weight)
	free, err := s.backend.takeSpawnSlot(ctx)
	if err != nil {
		return nil, err
	}
	defer free()
	return fn.Spawn(sctx, args, s.kwargs())
}

// chunkBytes is the frame bytes a chunk carries.
func chunkBytes(frames [][]byte) int64 {
	var n int64
	for _, f := range frames {
		n += int64(len(f))
	}
	return n
}

// cancel asks Modal to stop a call, on a fresh context so it still goes out
// when ctx is already done.
func (s *session) cancel(ctx context.Context, fc *modalsdk.FunctionCall) {
	cctx, stop := context.WithTimeout(context.WithoutCancel(ctx), s.backend.cfg.CancelTimeout)
	defer stop()
	if err := fc.Cancel(cctx, nil); err != nil {
		s.log.WarnContext(ctx, "cancel Modal call failed", "function_call_id", fc.FunctionCallID, "err", err)
		return
	}
	s.log.DebugContext(ctx, "cancelled Modal call", "function_call_id", fc.FunctionCallID)
}

// finishedRemotely says the error is the call's own outcome (an exception, a
// remote timeout or failure), so there is nothing left to cancel.
func finishedRemotely(err error) bool {
	var remote modalsdk.RemoteError
	var timeout modalsdk.FunctionTimeoutError
	var internal modalsdk.InternalFailure
	return errors.As(err, &remote) || errors.As(err, &timeout) || errors.As(err, &internal)
}

// withCtx makes err match ctx.Err() with errors.Is when ctx is done: gRPC
// reports cancellation as a status error that does not.
func withCtx(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: %w", cerr, err)
	}
	return err
}

// Close cancels a call still in flight (and waits for abandoned spawns to be
// cancelled), calls the remote close once, bounded by Config.CloseTimeout,
// and releases its hold on the shared client, which stays open. A failure is
// logged and returned; the session is released either way.
func (s *session) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	inflight := s.inflight
	s.mu.Unlock()
	defer s.backend.release(s.entry)

	s.stragglers.Wait()
	if inflight != nil {
		s.cancel(ctx, inflight)
	}
	ctx, stop := context.WithTimeout(ctx, s.backend.cfg.CloseTimeout)
	defer stop()
	if _, err := s.call(ctx, s.closeFn, nil); err != nil {
		s.log.WarnContext(ctx, "remote close failed", "err", err)
		return fmt.Errorf("modal close: %w", err)
	}
	return nil
}
