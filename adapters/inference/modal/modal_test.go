package modal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	//lint:ignore SA1019 the adapter is built and tested on libmodal v0.7.3; moving to its successor, modal-client/go, is a change of its own
	modalsdk "github.com/modal-labs/libmodal/modal-go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/inference/modal/modalheader"
	"github.com/foresight-vision/foresight/adapters/inference/modal/modaltest"
	"github.com/foresight-vision/foresight/internal/testlog"
	"github.com/foresight-vision/foresight/ports"
)

func TestMain(m *testing.M) {
	SetGRPCBufferPool() // as the binary does at init
	goleak.VerifyTestMain(m)
}

const (
	testTokenID     = "ak-test"
	testTokenSecret = "as-very-secret"
)

type fixture struct {
	srv *modaltest.Server
	b   *Backend
}

// setup starts the double, points the SDK at it through its own environment
// variables and builds a Backend with test credentials; mutate adjusts the
// config. At the end it checks no secret reached the logs.
func setup(t *testing.T, mutate func(*Config)) *fixture {
	t.Helper()
	srv := modaltest.New(t)
	srv.SetEnv(t)
	t.Setenv("MODAL_ENVIRONMENT", "")
	t.Setenv("MODAL_TOKEN_ID", "")
	t.Setenv("MODAL_TOKEN_SECRET", "")

	logs := &testlog.Buffer{}
	cfg := DefaultConfig()
	cfg.TokenID, cfg.TokenSecret = testTokenID, testTokenSecret
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if mutate != nil {
		mutate(&cfg)
	}
	b, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, b.Close())
		assert.NotContains(t, logs.String(), testTokenSecret, "a secret reached the logs")
	})
	return &fixture{srv: srv, b: b}
}

func (f *fixture) open(t *testing.T, streamID string, overrides map[string]string) ports.InferenceSession {
	t.Helper()
	s, err := f.b.OpenSession(context.Background(), ports.SessionRequest{StreamID: streamID, Options: overrides})
	require.NoError(t, err)
	return s
}

func chunk(frames ...[]byte) ports.Chunk {
	return ports.Chunk{Frames: frames, StartS: 1.5, EndS: 2.5, Prompt: "narrate"}
}

// within fails the test if f does not return in a generous time: it guards
// against hangs, it does not measure speed.
func within[T any](t *testing.T, f func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- f() }()
	select {
	case v := <-done:
		return v
	case <-time.After(20 * time.Second):
		t.Fatal("call did not return")
		panic("unreachable")
	}
}

func TestCaptionRoundTrip(t *testing.T) {
	f := setup(t, nil)
	s := f.open(t, "stream-1", nil)

	res, err := s.InferChunk(context.Background(), chunk([]byte("jpeg-1"), []byte("jpeg-22")))
	require.NoError(t, err)
	assert.Equal(t, "chunk 1: 2 frames", res.Caption)
	assert.Equal(t, 1.5, res.ChunkStartS)
	assert.Equal(t, 2.5, res.ChunkEndS)
	assert.Equal(t, int64(3), res.TokensGenerated)
	assert.True(t, res.Set.Has(ports.ResultLatency), "measured round trip filled in")
	_, err = json.Marshal(res)
	require.NoError(t, err)

	res, err = s.InferChunk(context.Background(), chunk([]byte("x")))
	require.NoError(t, err)
	assert.Equal(t, "chunk 2: 1 frames", res.Caption)

	calls := f.srv.CallsTo(modaltest.MethodInferChunk)
	require.Len(t, calls, 2)
	c := calls[0]
	assert.Equal(t, modaltest.Gemma3App, c.App)
	assert.Equal(t, modaltest.Gemma3Class, c.Class)
	assert.Equal(t, [][]byte{[]byte("jpeg-1"), []byte("jpeg-22")}, c.Frames)
	assert.Equal(t, 1.5, c.StartS)
	assert.Equal(t, 2.5, c.EndS)
	assert.Equal(t, "narrate", c.Prompt)
	assert.True(t, c.HasSessionID)
	assert.Equal(t, "stream-1", c.SessionID)
	assert.Equal(t, map[string]any{"session_id": "stream-1"}, c.Kwargs)
	assert.False(t, c.ArgsViaBlob)
	assert.Equal(t, testTokenID, c.TokenID)
	assert.Empty(t, f.srv.Cancellations())

	require.NoError(t, s.Close(context.Background()))
}

func TestEmptyChunkSendsEmptyList(t *testing.T) {
	f := setup(t, nil)
	s := f.open(t, "s", nil)
	res, err := s.InferChunk(context.Background(), ports.Chunk{Prompt: "p"})
	require.NoError(t, err)
	assert.Equal(t, "", res.Caption)
	c := f.srv.CallsTo(modaltest.MethodInferChunk)[0]
	assert.Equal(t, []any{}, c.Args[0], "frames must reach Python as an empty list, not None")
	require.NoError(t, s.Close(context.Background()))
}

func TestLargeChunkAndReplyGoThroughBlobs(t *testing.T) {
	f := setup(t, nil)
	big := strings.Repeat("c", 3<<20)
	f.srv.SetReply(func(c modaltest.Call) (any, error) {
		if c.Method == modaltest.MethodInferChunk {
			return map[string]any{"caption": big}, nil
		}
		return nil, nil
	})
	s := f.open(t, "s", nil)

	frames := make([][]byte, 3)
	for i := range frames {
		frames[i] = bytes.Repeat([]byte{byte('a' + i)}, 1<<20)
	}
	res, err := s.InferChunk(context.Background(), chunk(frames...))
	require.NoError(t, err)
	assert.Equal(t, big, res.Caption)

	c := f.srv.CallsTo(modaltest.MethodInferChunk)[0]
	assert.True(t, c.ArgsViaBlob, "3 MiB of arguments must go through the blob upload")
	assert.Equal(t, []int{1 << 20, 1 << 20, 1 << 20}, c.FrameSizes())
	for i := range frames { // bytes.Equal: a failed assert.Equal would print 3 MiB as numbers
		assert.True(t, i < len(c.Frames) && bytes.Equal(frames[i], c.Frames[i]), "frame %d: content differs (sizes %v)", i, c.FrameSizes())
	}
	require.NoError(t, s.Close(context.Background()))
}

func TestBlobUploadFailureIsAnError(t *testing.T) {
	f := setup(t, nil)
	f.srv.FailBlobUploads(true)
	s := f.open(t, "s", nil)
	_, err := s.InferChunk(context.Background(), chunk(make([]byte, 3<<20)))
	require.Error(t, err)
	assert.Empty(t, f.srv.CallsTo(modaltest.MethodInferChunk))
	require.NoError(t, s.Close(context.Background()))
}

func TestRemoteFailureThenStreamGoesOn(t *testing.T) {
	f := setup(t, nil)
	f.srv.QueueBehavior(modaltest.Behavior{Fail: "CUDA out of memory"})
	s := f.open(t, "s", nil)

	_, err := s.InferChunk(context.Background(), chunk([]byte("a")))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "CUDA out of memory")
	var remote modalsdk.RemoteError
	assert.ErrorAs(t, err, &remote)
	assert.Empty(t, f.srv.Cancellations(), "a finished call needs no cancel")

	res, err := s.InferChunk(context.Background(), chunk([]byte("a")))
	require.NoError(t, err)
	assert.Equal(t, "chunk 2: 1 frames", res.Caption)
	require.NoError(t, s.Close(context.Background()))
}

func TestDelayedReplyArrives(t *testing.T) {
	f := setup(t, nil)
	f.srv.SetBehavior(modaltest.Behavior{Delay: 50 * time.Millisecond})
	s := f.open(t, "s", nil)
	res, err := s.InferChunk(context.Background(), chunk([]byte("a")))
	require.NoError(t, err)
	assert.Equal(t, "chunk 1: 1 frames", res.Caption)
	require.NoError(t, s.Close(context.Background()))
}

func TestHungCallIsCancelledOnDeadline(t *testing.T) {
	f := setup(t, nil)
	f.srv.QueueBehavior(modaltest.Behavior{Hang: true})
	s := f.open(t, "s", nil)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := within(t, func() error {
		_, err := s.InferChunk(ctx, chunk([]byte("a")))
		return err
	})
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	calls := f.srv.CallsTo(modaltest.MethodInferChunk)
	require.Len(t, calls, 1)
	assert.Equal(t, []string{calls[0].ID}, f.srv.Cancellations(), "the remote call must be cancelled")

	// The next chunk still goes.
	res, err := s.InferChunk(context.Background(), chunk([]byte("a")))
	require.NoError(t, err)
	assert.Equal(t, "chunk 2: 1 frames", res.Caption)
	require.NoError(t, s.Close(context.Background()))
}

// inferCancelledOnArrival runs one InferChunk whose context is cancelled as
// soon as the call reaches the server, like a stream ending with a call in
// flight, and returns its error.
func (f *fixture) inferCancelledOnArrival(t *testing.T, s ports.InferenceSession) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = f.srv.WaitFor(ctx, func() bool { return len(f.srv.CallsTo(modaltest.MethodInferChunk)) == 1 })
		cancel()
	}()
	return within(t, func() error {
		_, err := s.InferChunk(ctx, chunk([]byte("a")))
		return err
	})
}

func TestCancelledContextCancelsRemoteCall(t *testing.T) {
	f := setup(t, nil)
	f.srv.SetBehavior(modaltest.Behavior{Hang: true})
	s := f.open(t, "s", nil)

	assert.ErrorIs(t, f.inferCancelledOnArrival(t, s), context.Canceled)

	// The cancel may still be on its way if ctx ended during the spawn;
	// Close waits for it.
	f.srv.SetBehavior(modaltest.Behavior{})
	require.NoError(t, s.Close(context.Background()))
	assert.Len(t, f.srv.Cancellations(), 1)
	assert.Len(t, f.srv.CallsTo(modaltest.MethodClose), 1)
}

func TestCallSpawnedAsContextEndsIsCancelled(t *testing.T) {
	f := setup(t, nil)
	// The call exists on the server, but its id reaches the adapter only
	// after the caller gave up.
	f.srv.QueueBehavior(modaltest.Behavior{SpawnDelay: 300 * time.Millisecond})
	s := f.open(t, "s", nil)

	assert.ErrorIs(t, f.inferCancelledOnArrival(t, s), context.Canceled)

	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	require.NoError(t, f.srv.WaitFor(wctx, func() bool { return len(f.srv.Cancellations()) == 1 }),
		"the call must be cancelled once its id is known")
	require.NoError(t, s.Close(context.Background()))
}

func TestAlreadyDoneContextMakesNoCall(t *testing.T) {
	f := setup(t, nil)
	s := f.open(t, "s", nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.InferChunk(ctx, chunk([]byte("a")))
	assert.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, f.srv.CallsTo(modaltest.MethodInferChunk))
	require.NoError(t, s.Close(context.Background()))
}

func TestOpenSessionErrors(t *testing.T) {
	t.Run("unknown class", func(t *testing.T) {
		f := setup(t, nil)
		_, err := f.b.OpenSession(context.Background(), ports.SessionRequest{
			StreamID: "s", Options: map[string]string{modalheader.OptionClassName: "NoSuchClass"},
		})
		require.Error(t, err)
		var nf modalsdk.NotFoundError
		assert.ErrorAs(t, err, &nf)
		assert.Contains(t, err.Error(), "NoSuchClass")
		assert.Equal(t, 0, f.b.clientRefs(), "a failed open releases the client")
	})
	t.Run("unknown app", func(t *testing.T) {
		f := setup(t, func(c *Config) { c.AppName = "no-such-app" })
		_, err := f.b.OpenSession(context.Background(), ports.SessionRequest{StreamID: "s"})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "no-such-app")
	})
	t.Run("bad token", func(t *testing.T) {
		f := setup(t, nil)
		f.srv.AllowCredentials("ak-other", "as-other")
		_, err := f.b.OpenSession(context.Background(), ports.SessionRequest{StreamID: "s"})
		require.Error(t, err)
		assert.Contains(t, err.Error(), "Unauthenticated")
		assert.NotContains(t, err.Error(), testTokenSecret)
		assert.Empty(t, f.srv.Lookups())
	})
	t.Run("control plane down", func(t *testing.T) {
		f := setup(t, nil)
		f.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := f.b.OpenSession(ctx, ports.SessionRequest{StreamID: "s"})
		require.Error(t, err)
	})
	t.Run("context done", func(t *testing.T) {
		f := setup(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := f.b.OpenSession(ctx, ports.SessionRequest{StreamID: "s"})
		require.Error(t, err)
	})
}

func TestCloseCalledExactlyOnce(t *testing.T) {
	f := setup(t, nil)
	s := f.open(t, "stream-9", nil)
	_, err := s.InferChunk(context.Background(), chunk([]byte("a")))
	require.NoError(t, err)

	require.NoError(t, s.Close(context.Background()))
	require.NoError(t, s.Close(context.Background()))
	closes := f.srv.CallsTo(modaltest.MethodClose)
	require.Len(t, closes, 1)
	assert.Equal(t, "stream-9", closes[0].SessionID)
	assert.Empty(t, closes[0].Args)

	_, err = s.InferChunk(context.Background(), chunk([]byte("a")))
	assert.ErrorIs(t, err, errSessionClosed)
	assert.Equal(t, 0, f.b.clientRefs(), "the session released its client")
	assert.Equal(t, 1, f.b.clientCount(), "the shared client stays open")
}

func TestRemoteCloseFailureIsReturnedAndReleases(t *testing.T) {
	f := setup(t, nil)
	f.srv.SetReply(func(c modaltest.Call) (any, error) {
		if c.Method == modaltest.MethodClose {
			return nil, errors.New("close exploded")
		}
		return modaltest.DefaultReply(c)
	})
	s := f.open(t, "s", nil)
	err := s.Close(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "close exploded")
	assert.Equal(t, 0, f.b.clientRefs())
}

func TestSessionsShareOneClientAndSendOwnIDs(t *testing.T) {
	f := setup(t, nil)
	a := f.open(t, "stream-a", nil)
	b := f.open(t, "stream-b", nil)
	_, err := a.InferChunk(context.Background(), chunk([]byte("a")))
	require.NoError(t, err)
	_, err = b.InferChunk(context.Background(), chunk([]byte("b")))
	require.NoError(t, err)

	calls := f.srv.CallsTo(modaltest.MethodInferChunk)
	require.Len(t, calls, 2)
	assert.Equal(t, "stream-a", calls[0].SessionID)
	assert.Equal(t, "stream-b", calls[1].SessionID)
	assert.Equal(t, 1, f.b.clientCount())
	assert.Equal(t, 1, f.srv.AuthTokenGets(), "one SDK client (one auth handshake) for both streams")

	// Other credentials get their own client.
	c := f.open(t, "stream-c", map[string]string{modalheader.OptionTokenID: "ak-2", modalheader.OptionTokenSecret: "as-2"})
	_, err = c.InferChunk(context.Background(), chunk([]byte("c")))
	require.NoError(t, err)
	assert.Equal(t, 2, f.b.clientCount())
	assert.Equal(t, 2, f.srv.AuthTokenGets())

	for _, s := range []ports.InferenceSession{a, b, c} {
		require.NoError(t, s.Close(context.Background()))
	}
	assert.ElementsMatch(t, []string{"stream-a", "stream-b", "stream-c"}, sessionIDs(f.srv.CallsTo(modaltest.MethodClose)))
}

func TestConcurrentStreams(t *testing.T) {
	f := setup(t, nil)
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "stream-" + string(rune('a'+i))
			s, err := f.b.OpenSession(context.Background(), ports.SessionRequest{StreamID: id})
			if err != nil {
				errs <- err
				return
			}
			if _, err := s.InferChunk(context.Background(), chunk([]byte(id))); err != nil {
				errs <- err
			}
			if err := s.Close(context.Background()); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for _, c := range f.srv.CallsTo(modaltest.MethodInferChunk) {
		assert.Equal(t, c.SessionID, string(c.Frames[0]), "each stream's calls carry its own id")
		assert.Equal(t, 1, c.Seq)
	}
	assert.Len(t, f.srv.CallsTo(modaltest.MethodClose), n)
	assert.Equal(t, 1, f.srv.AuthTokenGets())
	assert.Equal(t, 1, f.b.clientCount())
}

func TestIdleClientsBeyondBoundAreClosed(t *testing.T) {
	f := setup(t, func(c *Config) { c.MaxClients = 1 })
	a := f.open(t, "a", nil)
	b := f.open(t, "b", map[string]string{modalheader.OptionTokenID: "ak-2", modalheader.OptionTokenSecret: "as-2"})
	assert.Equal(t, 2, f.b.clientCount(), "clients in use are kept over the bound")
	require.NoError(t, a.Close(context.Background()))
	assert.Equal(t, 1, f.b.clientCount())
	_, err := b.InferChunk(context.Background(), chunk([]byte("b")))
	require.NoError(t, err)
	require.NoError(t, b.Close(context.Background()))
}

func sessionIDs(calls []modaltest.Call) []string {
	var ids []string
	for _, c := range calls {
		ids = append(ids, c.SessionID)
	}
	return ids
}

func TestSessionIDCanBeTurnedOff(t *testing.T) {
	f := setup(t, func(c *Config) { c.SendSessionID = false })
	s := f.open(t, "stream-1", nil)
	_, err := s.InferChunk(context.Background(), chunk([]byte("a")))
	require.NoError(t, err)
	require.NoError(t, s.Close(context.Background()))

	calls := f.srv.Calls()
	require.Len(t, calls, 2)
	for _, c := range calls {
		assert.False(t, c.HasSessionID, "%s must not get session_id", c.Method)
		assert.Empty(t, c.Kwargs)
	}
}

func TestLegacyPresetCallsStreamingVLM(t *testing.T) {
	f := setup(t, func(c *Config) { c.Preset = PresetStreamingVLM })
	s := f.open(t, "s", nil)
	_, err := s.InferChunk(context.Background(), chunk([]byte("a")))
	require.NoError(t, err)
	require.NoError(t, s.Close(context.Background()))
	for _, c := range f.srv.Calls() {
		assert.Equal(t, modaltest.StreamingVLMApp, c.App)
		assert.Equal(t, modaltest.StreamingVLMClass, c.Class)
	}
	assert.Len(t, f.srv.Calls(), 2)
}

func TestResolutionOrder(t *testing.T) {
	f := setup(t, func(c *Config) { c.AppName, c.ClassName = "cfg-app", "CfgClass" })
	f.srv.Deploy("cfg-app", "CfgClass")
	f.srv.Deploy("hdr-app", "HdrClass")

	cfgSession := f.open(t, "s1", nil)
	hdrSession := f.open(t, "s2", map[string]string{
		modalheader.OptionAppName: " hdr-app ", modalheader.OptionClassName: "HdrClass",
		modalheader.OptionTokenID: "ak-hdr", modalheader.OptionTokenSecret: "as-hdr",
	})
	_, err := cfgSession.InferChunk(context.Background(), chunk())
	require.NoError(t, err)
	_, err = hdrSession.InferChunk(context.Background(), chunk())
	require.NoError(t, err)

	calls := f.srv.CallsTo(modaltest.MethodInferChunk)
	require.Len(t, calls, 2)
	assert.Equal(t, []string{"cfg-app", "CfgClass", testTokenID}, []string{calls[0].App, calls[0].Class, calls[0].TokenID})
	assert.Equal(t, []string{"hdr-app", "HdrClass", "ak-hdr"}, []string{calls[1].App, calls[1].Class, calls[1].TokenID})
	require.NoError(t, cfgSession.Close(context.Background()))
	require.NoError(t, hdrSession.Close(context.Background()))
}

func TestEnvironment(t *testing.T) {
	t.Run("from config", func(t *testing.T) {
		f := setup(t, func(c *Config) { c.Environment = "staging" })
		require.NoError(t, f.open(t, "s", nil).Close(context.Background()))
		require.Len(t, f.srv.Lookups(), 1)
		assert.Equal(t, "staging", f.srv.Lookups()[0].Environment)
	})
	t.Run("SDK reads MODAL_ENVIRONMENT", func(t *testing.T) {
		f := setup(t, nil)
		t.Setenv("MODAL_ENVIRONMENT", "dev")
		require.NoError(t, f.open(t, "s", nil).Close(context.Background()))
		require.Len(t, f.srv.Lookups(), 1)
		assert.Equal(t, "dev", f.srv.Lookups()[0].Environment)
	})
}

func TestNoCredentialsMeansNoInference(t *testing.T) {
	f := setup(t, func(c *Config) { c.TokenID, c.TokenSecret = "", "" })
	noModel := func(overrides map[string]string) {
		t.Helper()
		_, err := f.b.OpenSession(context.Background(), ports.SessionRequest{StreamID: "s", Options: overrides})
		require.ErrorIs(t, err, ports.ErrNoInference)
	}
	noModel(nil)
	noModel(map[string]string{modalheader.OptionTokenSecret: "as-x"}) // a secret without an id is no credentials
	assert.Empty(t, f.srv.Calls())
	assert.Empty(t, f.srv.Lookups())
	assert.Equal(t, 0, f.b.clientCount())

	// Header credentials alone are enough.
	s := f.open(t, "s", map[string]string{modalheader.OptionTokenID: "ak-h", modalheader.OptionTokenSecret: "as-h"})
	_, err := s.InferChunk(context.Background(), chunk([]byte("a")))
	require.NoError(t, err)
	require.NoError(t, s.Close(context.Background()))
	assert.Len(t, f.srv.CallsTo(modaltest.MethodInferChunk), 1)
}

func TestReplyDecoding(t *testing.T) {
	f := setup(t, nil)
	f.srv.SetReply(func(c modaltest.Call) (any, error) {
		if c.Method != modaltest.MethodInferChunk {
			return nil, nil
		}
		return map[any]any{
			"caption":    "hi",
			"latency_ms": 42,
			"dropped":    nil,
			"nested":     map[any]any{uint64(7): []any{uint64(math.MaxUint64), -3, []byte("txt")}},
			"nan":        math.NaN(),
		}, nil
	})
	s := f.open(t, "s", nil)
	res, err := s.InferChunk(context.Background(), chunk([]byte("a")))
	require.NoError(t, err)
	assert.Equal(t, ports.Result{
		Caption:   "hi",
		LatencyMS: 42,
		Set:       ports.ResultCaption | ports.ResultLatency,
		Extras:    map[string]any{"nested": map[string]any{"7": []any{float64(math.MaxUint64), int64(-3), "txt"}}},
	}, res)
	_, err = json.Marshal(res.Extras)
	require.NoError(t, err)

	// A field whose value does not fit its typed field (or would change its
	// JSON form there) stays an extra, as it came; a latency the app sent,
	// of whatever type, is not replaced by the measured one.
	f.srv.SetReply(func(c modaltest.Call) (any, error) {
		return map[any]any{
			"caption":          7,
			"chunk_start_s":    int64(1) << 60,
			"chunk_end_s":      2,
			"latency_ms":       "slow",
			"tokens_generated": 2.5,
		}, nil
	})
	res, err = s.InferChunk(context.Background(), chunk([]byte("a")))
	require.NoError(t, err)
	assert.Equal(t, ports.Result{
		ChunkEndS: 2,
		Set:       ports.ResultChunkEnd,
		Extras: map[string]any{"caption": int64(7), "chunk_start_s": int64(1) << 60, "latency_ms": "slow",
			"tokens_generated": 2.5},
	}, res)

	f.srv.SetReply(func(c modaltest.Call) (any, error) {
		return map[any]any{"tokens_generated": 4.0, "chunk_start_s": int64(3)}, nil
	})
	res, err = s.InferChunk(context.Background(), chunk([]byte("a")))
	require.NoError(t, err)
	assert.Equal(t, int64(4), res.TokensGenerated, "a whole float is a token count")
	assert.Equal(t, 3.0, res.ChunkStartS)
	assert.True(t, res.Set.Has(ports.ResultTokens|ports.ResultChunkStart|ports.ResultLatency), "latency measured when the app sent none")
	assert.Empty(t, res.Extras)

	f.srv.SetReply(func(c modaltest.Call) (any, error) { return []any{"not", "a", "dict"}, nil })
	_, err = s.InferChunk(context.Background(), chunk([]byte("a")))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "want a dict")
	require.NoError(t, s.Close(context.Background()))
}

func TestBackendClosed(t *testing.T) {
	f := setup(t, nil)
	require.NoError(t, f.b.Close())
	_, err := f.b.OpenSession(context.Background(), ports.SessionRequest{StreamID: "s"})
	require.Error(t, err)
}

func TestNewRejectsUnknownPreset(t *testing.T) {
	_, err := New(Config{Preset: "gpt"})
	require.Error(t, err)
}

func TestRedact(t *testing.T) {
	base := errors.New("dial with as-very-secret failed")
	err := redact(base, testTokenSecret)
	assert.Equal(t, "dial with [redacted] failed", err.Error())
	assert.ErrorIs(t, err, base)
	assert.Same(t, base, redact(base, "other"))
}

func TestSpawnWaitsForRoomInTheSpawnBudget(t *testing.T) {
	f := setup(t, func(c *Config) {
		c.MaxSpawnBytes = 4
		c.CancelTimeout = 50 * time.Millisecond
	})
	s := f.open(t, "s", nil)
	require.NoError(t, f.b.spawnBudget.Acquire(context.Background(), 4)) // other spawns hold it all
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := within(t, func() error { _, err := s.InferChunk(ctx, chunk([]byte("a"))); return err })
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	s.(*session).stragglers.Wait() // the detached spawn gave up too
	assert.Empty(t, f.srv.CallsTo(modaltest.MethodInferChunk), "no call was encoded or sent without room")
	f.b.spawnBudget.Release(4)

	// A chunk larger than the whole budget is spawned alone, not refused.
	err = within(t, func() error {
		_, err := s.InferChunk(context.Background(), chunk([]byte("bb"), []byte("ccc")))
		return err
	})
	assert.NoError(t, err)
	assert.Len(t, f.srv.CallsTo(modaltest.MethodInferChunk), 1)
	assert.True(t, f.b.spawnBudget.TryAcquire(4), "the spawn gave its bytes back")
	f.b.spawnBudget.Release(4)
	require.NoError(t, s.Close(context.Background()))
}

func TestSpawnWaitsForASpawnSlot(t *testing.T) {
	f := setup(t, func(c *Config) {
		c.MaxConcurrentSpawns = 1
		c.SpawnSlotHold = time.Hour // only the spawn itself gives the slot back
		c.CancelTimeout = 50 * time.Millisecond
	})
	s := f.open(t, "s", nil)
	f.b.spawnSlots <- struct{}{} // another spawn is encoding
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := within(t, func() error { _, err := s.InferChunk(ctx, chunk([]byte("a"))); return err })
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	s.(*session).stragglers.Wait()
	assert.Empty(t, f.srv.CallsTo(modaltest.MethodInferChunk), "no call was encoded or sent without a slot")
	<-f.b.spawnSlots

	err = within(t, func() error { _, err := s.InferChunk(context.Background(), chunk([]byte("b"))); return err })
	assert.NoError(t, err)
	assert.Empty(t, f.b.spawnSlots, "the slot is given back")
	require.NoError(t, s.Close(context.Background()))
}

// The slot bounds encoding, not the round trip: after SpawnSlotHold it is
// free again while the reply is still awaited.
func TestSpawnSlotIsNotHeldOverTheRoundTrip(t *testing.T) {
	f := setup(t, func(c *Config) {
		c.MaxConcurrentSpawns = 1
		c.SpawnSlotHold = 20 * time.Millisecond
		c.CancelTimeout = 50 * time.Millisecond
	})
	a, b := f.open(t, "a", nil), f.open(t, "b", nil)
	f.srv.QueueBehavior(modaltest.Behavior{SpawnDelay: time.Minute}) // a's spawn reply is held
	actx, cancelA := context.WithCancel(context.Background())
	defer cancelA()
	aDone := make(chan error, 1)
	go func() { _, err := a.InferChunk(actx, chunk([]byte("a"))); aDone <- err }()
	wctx, wcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer wcancel()
	require.NoError(t, f.srv.WaitFor(wctx, func() bool { return len(f.srv.CallsTo(modaltest.MethodInferChunk)) == 1 }))

	bctx, cancelB := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancelB()
	berr := within(t, func() error { _, err := b.InferChunk(bctx, chunk([]byte("b"))); return err })
	assert.NoError(t, berr, "b got the only slot while a still waits for its reply")

	cancelA()
	assert.ErrorIs(t, within(t, func() error { return <-aDone }), context.Canceled)
	a.(*session).stragglers.Wait()
	assert.Empty(t, f.b.spawnSlots)
	require.NoError(t, a.Close(context.Background()))
	require.NoError(t, b.Close(context.Background()))
}

// A caller that gives up while its spawn waits for room sends nothing: no
// call is created only to be cancelled.
func TestGivenUpCallerSendsNothing(t *testing.T) {
	f := setup(t, func(c *Config) {
		c.MaxSpawnBytes = 4
		c.CancelTimeout = time.Hour // the grace for a spawn already sent must not matter
	})
	s := f.open(t, "s", nil)
	require.NoError(t, f.b.spawnBudget.Acquire(context.Background(), 4))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := within(t, func() error { _, err := s.InferChunk(ctx, chunk([]byte("a"))); return err })
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	f.b.spawnBudget.Release(4) // room again, after the caller left
	within(t, func() bool { s.(*session).stragglers.Wait(); return true })
	assert.Empty(t, f.srv.CallsTo(modaltest.MethodInferChunk), "nothing was spawned for a caller that had gone")
	assert.Empty(t, f.srv.Cancellations())
	require.NoError(t, s.Close(context.Background()))
}

// Each spawn waits a control-plane round trip. Small chunks must go out side
// by side: a bound of a few calls would cap the whole server at a few round
// trips' worth of chunks, whatever its streams need.
func TestSmallChunksSpawnSideBySide(t *testing.T) {
	const streams = 8
	f := setup(t, func(c *Config) { c.CancelTimeout = 50 * time.Millisecond })
	f.srv.SetBehavior(modaltest.Behavior{SpawnDelay: time.Minute}) // every spawn's reply is held
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sessions := make([]ports.InferenceSession, streams)
	errs := make(chan error, streams)
	for i := range sessions {
		sessions[i] = f.open(t, fmt.Sprint("s", i), nil)
		go func() {
			_, err := sessions[i].InferChunk(ctx, chunk(make([]byte, 20_000), make([]byte, 20_000)))
			errs <- err
		}()
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	assert.NoError(t, f.srv.WaitFor(wctx, func() bool { return len(f.srv.CallsTo(modaltest.MethodInferChunk)) == streams }),
		"all %d spawns are in flight at once, none of them answered yet", streams)
	cancel()
	for range sessions {
		assert.ErrorIs(t, within(t, func() error { return <-errs }), context.Canceled)
	}
	f.srv.SetBehavior(modaltest.Behavior{})
	for _, s := range sessions {
		s.(*session).stragglers.Wait()
		require.NoError(t, s.Close(context.Background()))
	}
}
