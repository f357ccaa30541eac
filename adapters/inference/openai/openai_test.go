package openai_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/inference/openai"
	"github.com/foresight-vision/foresight/adapters/inference/openai/openaitest"
	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/domain/domaintest"
	"github.com/foresight-vision/foresight/internal/testlog"
	"github.com/foresight-vision/foresight/ports"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const secret = "sk-test-0123456789abcdefSECRET"

// jpeg makes a distinct frame that passes for a JPEG.
func jpeg(tag string) []byte { return append([]byte{0xFF, 0xD8, 0xFF, 0xE0}, tag...) }

// fakeNow is a clock for Retry-After waits.
type fakeNow struct {
	mu sync.Mutex
	t  time.Time
}

func (f *fakeNow) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeNow) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
}

type fixture struct {
	srv     *openaitest.Server
	backend *openai.Backend
	logs    *testlog.Buffer
	clock   *fakeNow
}

func newFixture(t *testing.T, mutate func(*openai.Config)) *fixture {
	t.Helper()
	f := &fixture{srv: openaitest.NewServer(), logs: &testlog.Buffer{}, clock: &fakeNow{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
	t.Cleanup(f.srv.Close)
	cfg := openai.DefaultConfig()
	cfg.BaseURL, cfg.Model, cfg.Now = f.srv.URL, "gemma3:4b", f.clock.Now
	if mutate != nil {
		mutate(&cfg)
	}
	logger := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, err := openai.New(cfg, logger)
	require.NoError(t, err)
	f.backend = b
	t.Cleanup(func() { _ = b.Close() })
	return f
}

func (f *fixture) open(t *testing.T, streamID string) ports.InferenceSession {
	t.Helper()
	s, err := f.backend.OpenSession(context.Background(), ports.SessionRequest{StreamID: streamID})
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func chunk(startS, endS float64, frames ...[]byte) ports.Chunk {
	return ports.Chunk{Frames: frames, StartS: startS, EndS: endS, Prompt: "describe"}
}

func TestRequestShapeAndResult(t *testing.T) {
	f := newFixture(t, nil)
	f.srv.Enqueue(openaitest.Response{Caption: "  A person\n\twalks   a dog. ", CompletionTokens: 9})
	s := f.open(t, "s1")
	frames := [][]byte{jpeg("one"), jpeg("two"), []byte("not a jpeg"), jpeg("three")}
	res, err := s.InferChunk(context.Background(), chunk(0, 1.25, frames...))
	require.NoError(t, err)
	assert.Equal(t, "A person walks a dog.", res.Caption)
	assert.Equal(t, 0.0, res.ChunkStartS)
	assert.Equal(t, 1.25, res.ChunkEndS)
	assert.Equal(t, int64(9), res.TokensGenerated)
	assert.True(t, res.Set.Has(ports.ResultLatency))

	reqs := f.srv.Requests()
	require.Len(t, reqs, 1, "one request per chunk")
	r := reqs[0]
	assert.Equal(t, "/v1/chat/completions", r.Path)
	assert.Equal(t, "gemma3:4b", r.Model)
	assert.Equal(t, [][]byte{jpeg("one"), jpeg("two"), jpeg("three")}, r.Images,
		"exactly the JPEGs given, in order; the frame that is no JPEG is left out")
	assert.Equal(t, openai.DefaultMaxTokens, r.MaxTokens)
	require.NotNil(t, r.Temperature)
	assert.Equal(t, openai.DefaultTemperature, *r.Temperature)
	assert.False(t, r.HasAuthorization, "no key: no Authorization header at all")
	// The Gemma app's prompt (vlm_logic.build_prompt), no history yet;
	// 1.25 rounds half to even like Python's "%.1f".
	assert.Equal(t, "Chunk time window: 0.0s to 1.2s.\n"+
		"Use only what is visible in these frames. Answer with exactly one concise present-tense sentence.\n"+
		"Task: describe", r.Text)

	// The next prompt shows the caption as history, as the Gemma app does.
	_, err = s.InferChunk(context.Background(), ports.Chunk{Frames: [][]byte{jpeg("four")}, StartS: 1.25, EndS: 2.5, Prompt: "  "})
	require.NoError(t, err)
	r = f.srv.Requests()[1]
	assert.Equal(t, "Chunk time window: 1.2s to 2.5s.\n"+
		"Recent prior observations (may be stale):\n"+
		"- 0.0-1.2s: A person walks a dog.\n"+
		"Use only what is visible in these frames. Answer with exactly one concise present-tense sentence.\n"+
		"Task: "+domain.DefaultPrompt, r.Text, "a blank prompt falls back to the default task")
}

func TestEmptyChunkAndNoJPEGSendNothing(t *testing.T) {
	f := newFixture(t, nil)
	s := f.open(t, "s1")
	res, err := s.InferChunk(context.Background(), chunk(2, 3))
	require.NoError(t, err)
	assert.Equal(t, "", res.Caption)
	assert.Equal(t, int64(0), res.TokensGenerated)
	_, err = s.InferChunk(context.Background(), chunk(2, 3, []byte("png?")))
	require.ErrorContains(t, err, "none of the 1 frames in the chunk is a JPEG")
	assert.Empty(t, f.srv.Requests())
}

func TestRootBaseURLAndOptions(t *testing.T) {
	f := newFixture(t, func(c *openai.Config) {
		c.MaxTokens = 16
		c.Temperature = 0 // greedy
		c.Prompt = "narrate"
	})
	// A second backend on the server's root (no /v1), as some servers are mounted.
	b, err := openai.New(openai.Config{BaseURL: f.srv.RootURL() + "/", Model: "m"}, nil)
	require.NoError(t, err)
	defer b.Close()
	s2, err := b.OpenSession(context.Background(), ports.SessionRequest{StreamID: "x"})
	require.NoError(t, err)
	_, err = s2.InferChunk(context.Background(), chunk(0, 1, jpeg("a")))
	require.NoError(t, err)

	s := f.open(t, "s1")
	_, err = s.InferChunk(context.Background(), ports.Chunk{Frames: [][]byte{jpeg("a")}, EndS: 1})
	require.NoError(t, err)
	reqs := f.srv.Requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "/chat/completions", reqs[0].Path)
	assert.Equal(t, 16, reqs[1].MaxTokens)
	require.NotNil(t, reqs[1].Temperature)
	assert.Equal(t, 0.0, *reqs[1].Temperature)
	assert.True(t, strings.HasSuffix(reqs[1].Text, "\nTask: narrate"))
	assert.Equal(t, "m", b.Model())
	assert.Equal(t, strings.TrimPrefix(f.srv.RootURL(), "http://"), b.Host())
}

// A zero Temperature and CaptionHistory mean greedy and no history, as the
// settings' 0 does; the defaults come only from DefaultConfig.
func TestZeroTemperatureAndHistoryAreTakenAsGiven(t *testing.T) {
	srv := openaitest.NewServer()
	defer srv.Close()
	b, err := openai.New(openai.Config{BaseURL: srv.URL, Model: "m"}, nil)
	require.NoError(t, err)
	defer b.Close()
	s, err := b.OpenSession(context.Background(), ports.SessionRequest{StreamID: "s1"})
	require.NoError(t, err)
	for i := range 2 {
		_, err := s.InferChunk(context.Background(), chunk(float64(i), float64(i+1), jpeg("a")))
		require.NoError(t, err)
	}
	reqs := srv.Requests()
	require.Len(t, reqs, 2)
	for _, r := range reqs {
		require.NotNil(t, r.Temperature, "a zero temperature is sent, not left to the server")
		assert.Equal(t, 0.0, *r.Temperature)
		assert.NotContains(t, r.Text, "Recent prior observations", "no history")
	}
}

func TestNewChecksConfig(t *testing.T) {
	_, err := openai.New(openai.Config{}, nil)
	require.ErrorIs(t, err, openai.ErrNoModel)
	assert.Contains(t, err.Error(), "FORESIGHT_OPENAI_MODEL")
	for _, base := range []string{"ftp://h/v1", "not a url", "/v1", "http://user:" + secret + "@h/v1"} {
		_, err := openai.New(openai.Config{Model: "m", BaseURL: base}, nil)
		require.Error(t, err, base)
		assert.NotContains(t, err.Error(), secret)
	}
	for _, bad := range []openai.Config{{Model: "m", Temperature: -0.1}, {Model: "m", Temperature: math.NaN()}, {Model: "m", CaptionHistory: -1}} {
		_, err := openai.New(bad, nil)
		assert.Error(t, err, "temperature %v, history %d", bad.Temperature, bad.CaptionHistory)
	}
	b, err := openai.New(openai.Config{Model: "m"}, nil)
	require.NoError(t, err)
	assert.Equal(t, "api.openai.com", b.Host())
	require.NoError(t, b.Close())
}

func TestBearerOnlyWithKey(t *testing.T) {
	// The SDK would read OPENAI_API_KEY from the environment; the backend
	// must not: the configuration alone decides.
	t.Setenv("OPENAI_API_KEY", "sk-from-env")
	t.Setenv("OPENAI_CUSTOM_HEADERS", "X-Leak: yes")
	without := newFixture(t, nil)
	with := newFixture(t, func(c *openai.Config) { c.APIKey = secret })
	for _, f := range []*fixture{without, with} {
		_, err := f.open(t, "s").InferChunk(context.Background(), chunk(0, 1, jpeg("a")))
		require.NoError(t, err)
	}
	r := without.srv.Requests()[0]
	assert.False(t, r.HasAuthorization)
	r = with.srv.Requests()[0]
	assert.Equal(t, "Bearer "+secret, r.Authorization)
}

func TestFailuresAreShortAndNeverCarryTheKey(t *testing.T) {
	long := strings.Repeat("upstream detail ", 500)
	tests := []struct {
		name string
		resp openaitest.Response
		want string
	}{
		{"OpenAI error JSON echoing the key",
			openaitest.Response{Status: 401, Body: `{"error":{"message":"Incorrect API key provided: ` + secret + `. Get one at the dashboard.","type":"invalid_request_error"}}`},
			"model server answered 401 Unauthorized: Incorrect API key provided: [redacted]. Get one at the dashboard."},
		{"Ollama-style string error", openaitest.Response{Status: 404, Body: `{"error":"model \"gemma3:4b\" not found, try pulling it first"}`},
			`model server answered 404 Not Found: model "gemma3:4b" not found, try pulling it first`},
		{"HTML page", openaitest.Response{Status: 502, Body: "<html><body>" + secret + " Bad Gateway</body></html>"},
			"model server answered 502 Bad Gateway"},
		{"long body, key at the cut", openaitest.Response{Status: 500, Body: `{"error":{"message":"` + long[:150] + secret + long + `"}}`}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, func(c *openai.Config) { c.APIKey = secret })
			f.srv.Enqueue(tt.resp)
			s := f.open(t, "stream-1")
			_, err := s.InferChunk(context.Background(), chunk(0, 1, jpeg("a")))
			require.Error(t, err)
			var serr *openai.StatusError
			require.ErrorAs(t, err, &serr)
			assert.Equal(t, tt.resp.Status, serr.StatusCode)
			if tt.want != "" {
				assert.Equal(t, tt.want, err.Error())
			}
			assert.Less(t, len(err.Error()), 300, "a short reason, never the whole body")
			assert.NotContains(t, err.Error(), secret[:12], "not even a prefix of the key")
			assert.Len(t, f.srv.Requests(), 1, "no hidden retry")

			// Recovery: the next chunk goes through.
			res, err := s.InferChunk(context.Background(), chunk(1, 2, jpeg("b")))
			require.NoError(t, err)
			assert.Equal(t, "caption 2", res.Caption)

			logs := f.logs.String()
			assert.Contains(t, logs, "stream_id=stream-1")
			assert.NotContains(t, logs, secret[:12])
		})
	}
}

func TestRateLimitHonoursRetryAfter(t *testing.T) {
	for _, tt := range []struct {
		name       string
		retryAfter func(now time.Time) string
		wait       time.Duration
	}{
		{"seconds", func(time.Time) string { return "3" }, 3 * time.Second},
		{"HTTP date", func(now time.Time) string { return now.Add(5 * time.Second).Format(http.TimeFormat) }, 5 * time.Second},
		{"absent", func(time.Time) string { return "" }, openai.DefaultRateLimitWait},
		{"too long is capped", func(time.Time) string { return "86400" }, openai.DefaultMaxRetryAfter},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.srv.Enqueue(openaitest.Response{Status: http.StatusTooManyRequests, RetryAfter: tt.retryAfter(f.clock.Now())})
			a, other := f.open(t, "a"), f.open(t, "b")
			_, err := a.InferChunk(context.Background(), chunk(0, 1, jpeg("a")))
			require.ErrorIs(t, err, openai.ErrRateLimited)
			assert.Contains(t, err.Error(), "429 Too Many Requests")
			assert.Contains(t, err.Error(), "retry in "+tt.wait.String())

			// Before the wait passes, the stream's chunks are dropped unsent.
			f.clock.Advance(tt.wait - 100*time.Millisecond)
			_, err = a.InferChunk(context.Background(), chunk(1, 2, jpeg("b")))
			require.ErrorIs(t, err, openai.ErrRateLimited)
			assert.Contains(t, err.Error(), "chunk not sent")
			_, err = a.InferChunk(context.Background(), chunk(2, 3, jpeg("c")))
			require.ErrorIs(t, err, openai.ErrRateLimited)
			assert.Len(t, f.srv.Requests(), 1)
			assert.Equal(t, openai.Stats{RateLimitedReplies: 1, DroppedChunks: 2}, f.backend.Stats())

			// Another stream is not held back.
			_, err = other.InferChunk(context.Background(), chunk(0, 1, jpeg("x")))
			require.NoError(t, err)

			// Once it passes, the stream recovers on its own.
			f.clock.Advance(100 * time.Millisecond)
			res, err := a.InferChunk(context.Background(), chunk(3, 4, jpeg("d")))
			require.NoError(t, err)
			assert.Equal(t, "caption 3", res.Caption)
			assert.Len(t, f.srv.Requests(), 3)
		})
	}
}

func TestHistoryIsPerStreamAndBounded(t *testing.T) {
	f := newFixture(t, func(c *openai.Config) { c.CaptionHistory = 2 })
	// The caption names the stream, told by its frames' tag.
	f.srv.Respond(func(r openaitest.Request) openaitest.Response {
		return openaitest.Response{Caption: "seen " + string(r.Images[0][4:])}
	})
	const chunks = 5
	var wg sync.WaitGroup
	for _, id := range []string{"A", "B"} {
		s := f.open(t, id)
		wg.Go(func() {
			for i := range chunks {
				_, err := s.InferChunk(context.Background(), chunk(float64(i), float64(i+1), jpeg(fmt.Sprintf("%s%d", id, i))))
				assert.NoError(t, err)
			}
		})
	}
	wg.Wait()
	reqs := f.srv.Requests()
	require.Len(t, reqs, 2*chunks)
	for _, r := range reqs {
		tag := string(r.Images[0][4:])
		stream, i := tag[:1], int(tag[1]-'0')
		other := map[string]string{"A": "B", "B": "A"}[stream]
		assert.NotContains(t, r.Text, "seen "+other, "stream %s saw the other's captions", stream)
		var want []string
		for j := max(0, i-2); j < i; j++ {
			want = append(want, fmt.Sprintf("- %d.0-%d.0s: seen %s%d", j, j+1, stream, j))
		}
		got := []string{}
		for _, line := range strings.Split(r.Text, "\n") {
			if strings.HasPrefix(line, "- ") {
				got = append(got, line)
			}
		}
		if want == nil {
			want = []string{}
			assert.NotContains(t, r.Text, "Recent prior observations")
		}
		assert.Equal(t, want, got, "request %s", tag)
	}
}

func TestCancelledCallReturnsPromptly(t *testing.T) {
	f := newFixture(t, nil)
	f.srv.Respond(func(openaitest.Request) openaitest.Response { return openaitest.Response{Stall: true} })
	s := f.open(t, "s1")
	ctx, cancel := context.WithCancelCause(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := s.InferChunk(ctx, chunk(0, 1, jpeg("a")))
		errc <- err
	}()
	require.NoError(t, f.srv.WaitRequests(context.Background(), 1))
	cancel(domain.ErrInferenceTimeout)
	err := <-errc
	require.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, "model call abandoned: context canceled", err.Error())
}

// The domain's timeout cancels the call, the client hears "timed out", and
// the stream's next chunk gets a caption: the adapter sees only ctx.
func TestStreamTimesOutAndRecovers(t *testing.T) {
	f := newFixture(t, nil)
	f.srv.Enqueue(openaitest.Response{Stall: true})
	clock := domaintest.NewClock()
	st := domain.StartStream(f.backend, ports.SessionRequest{StreamID: "s1"},
		domain.StreamConfig{Clock: clock, InferenceTimeout: 5 * time.Second})
	defer st.Close(context.Background())
	st.Await(context.Background()) // the open

	st.HandleFrame(jpeg("a")) // cuts chunk 1, which stalls
	require.NoError(t, f.srv.WaitRequests(context.Background(), 1))
	clock.Advance(5 * time.Second)
	require.True(t, st.Await(context.Background()))
	ack := st.HandleFrame(jpeg("b")) // carries the timeout, cuts chunk 2
	assert.True(t, ack.Result.Empty())
	assert.Equal(t, "inference timed out after 5s", ack.InferenceError)
	require.True(t, st.Await(context.Background()))
	ack = st.HandleFrame(jpeg("c"))
	require.False(t, ack.Result.Empty())
	assert.Equal(t, "caption 2", ack.Result.Caption)
	assert.Equal(t, [][]byte{jpeg("b")}, f.srv.Requests()[1].Images)
}

func TestUnreachableThenRecovers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now

	logs := &testlog.Buffer{}
	b, err := openai.New(openai.Config{BaseURL: "http://" + addr + "/v1", Model: "m", APIKey: secret},
		slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	require.NoError(t, err)
	defer b.Close()
	s, err := b.OpenSession(context.Background(), ports.SessionRequest{StreamID: "s1"})
	require.NoError(t, err)
	defer s.Close(context.Background())

	_, err = s.InferChunk(context.Background(), chunk(0, 1, jpeg("a")))
	var uerr *openai.UnreachableError
	require.ErrorAs(t, err, &uerr)
	assert.Equal(t, "cannot reach "+addr+": connection refused", err.Error())
	assert.NotContains(t, logs.String(), secret[:12])

	// The server comes up on that address: the same session recovers.
	srv := openaitest.NewServer()
	srv.Close()
	ln, err = net.Listen("tcp", addr)
	require.NoError(t, err)
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"back"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`))
	}))
	up.Listener.Close()
	up.Listener = ln
	up.Start()
	defer up.Close()
	res, err := s.InferChunk(context.Background(), chunk(1, 2, jpeg("b")))
	require.NoError(t, err)
	assert.Equal(t, "back", res.Caption)
}

func TestOversizedReplyIsRefused(t *testing.T) {
	f := newFixture(t, func(c *openai.Config) { c.MaxResponseBytes = 512 })
	f.srv.Enqueue(openaitest.Response{Caption: strings.Repeat("word ", 400)})
	_, err := f.open(t, "s").InferChunk(context.Background(), chunk(0, 1, jpeg("a")))
	require.Error(t, err)
	assert.Equal(t, "model server sent a reply that could not be read: reply body too large", err.Error(), "fixed texts: the SDK's may quote the body")
	assert.Contains(t, f.logs.String(), "level=DEBUG msg=\"model call failed\"", "the SDK's cleaned text is for the debug log")
	assert.False(t, errors.Is(err, openai.ErrRateLimited))
}

// A reply the SDK cannot parse is named by a fixed text: the SDK's own may
// quote the body, which is the model server's to fill.
func TestUnparsableReplyIsDescribedWithoutItsBody(t *testing.T) {
	garbled := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"x","choices":[{"index":"body-canary-text",`))
	}))
	defer garbled.Close()
	logs := &testlog.Buffer{}
	b, err := openai.New(openai.Config{BaseURL: garbled.URL + "/v1", Model: "m"},
		slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	require.NoError(t, err)
	defer b.Close()
	s, err := b.OpenSession(context.Background(), ports.SessionRequest{StreamID: "s1"})
	require.NoError(t, err)
	defer s.Close(context.Background())

	_, err = s.InferChunk(context.Background(), chunk(0, 1, jpeg("a")))
	require.Error(t, err)
	assert.Equal(t, "model server sent a reply that could not be read", err.Error())
	assert.NotContains(t, logs.String(), "level=WARN", "the stream logs the failure, not the adapter")
}

// The SDK refuses max_tokens for reasoning models (o1, o3, o4, gpt-5) before
// sending; the error says so instead of blaming the server's reply.
func TestRequestTheSDKRefusesIsNotSent(t *testing.T) {
	f := newFixture(t, func(c *openai.Config) { c.Model = "gpt-5-mini"; c.APIKey = secret })
	_, err := f.open(t, "s").InferChunk(context.Background(), chunk(0, 1, jpeg("a")))
	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "model call not sent: "), err.Error())
	assert.Contains(t, err.Error(), "MaxTokens")
	assert.Empty(t, f.srv.Requests())
	assert.NotContains(t, f.logs.String(), secret[:12])
}

// A 200 reply without a finish reason (Ollama's answer when it stops a
// model that repeats itself) or with an empty caption is a failure: no
// caption, counted, and kept out of the next prompt's history.
func TestIncompleteReplyIsAFailureAndNotHistory(t *testing.T) {
	f := newFixture(t, nil)
	f.srv.Enqueue(
		openaitest.Response{Caption: "{      partial", StoppedEarly: true},
		openaitest.Response{Caption: " \n\t "},
		openaitest.Response{Caption: "a dog runs"},
		openaitest.Response{Caption: "a dog sits"},
	)
	s := f.open(t, "s1")

	res, err := s.InferChunk(context.Background(), chunk(0, 1, jpeg("one")))
	require.ErrorIs(t, err, openai.ErrStoppedEarly)
	assert.Equal(t, "model stopped early without a finish reason (partial reply dropped)", err.Error())
	assert.Empty(t, res.Caption)

	_, err = s.InferChunk(context.Background(), chunk(1, 2, jpeg("two")))
	require.ErrorIs(t, err, openai.ErrEmptyCaption)

	_, err = s.InferChunk(context.Background(), chunk(2, 3, jpeg("three")))
	require.NoError(t, err)
	_, err = s.InferChunk(context.Background(), chunk(3, 4, jpeg("four")))
	require.NoError(t, err)

	reqs := f.srv.Requests()
	require.Len(t, reqs, 4)
	assert.NotContains(t, reqs[2].Text, "Recent prior observations", "neither dropped reply is history")
	assert.NotContains(t, reqs[3].Text, "partial")
	assert.Contains(t, reqs[3].Text, "- 2.0-3.0s: a dog runs\n")
	assert.Equal(t, int64(2), f.backend.Stats().IncompleteReplies)
}
