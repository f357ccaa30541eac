package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/inference/openai/openaitest"
	"github.com/foresight-vision/foresight/app"
	"github.com/foresight-vision/foresight/internal/testlog"
)

// These tests run the whole server with FORESIGHT_INFERENCE_BACKEND=openai
// against the openaitest double on loopback: client -> server -> adapter ->
// double.

// startLogged runs the whole app with env on a loopback port, logging at
// debug level into the returned buffer.
func startLogged(t *testing.T, env ...string) (*app.Instance, *testlog.Buffer) {
	t.Helper()
	// No caption store unless a test asks for one: nothing left in the package folder.
	cfg, err := app.LoadConfig([]string{"--addr", "127.0.0.1:0"}, envOf(append([]string{"FORESIGHT_DATABASE_URL", "none"}, env...)...), nil)
	require.NoError(t, err)
	logs := &testlog.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	inst, err := app.Start(context.Background(), cfg, logger)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, inst.Stop(ctx))
	})
	return inst, logs
}

func startWithOpenAI(t *testing.T, env ...string) (*app.Instance, *openaitest.Server, *testlog.Buffer) {
	t.Helper()
	fake := openaitest.NewServer()
	t.Cleanup(fake.Close) // after the server's stop (cleanups run last first)
	base := []string{
		"FORESIGHT_INFERENCE_BACKEND", "openai",
		"FORESIGHT_OPENAI_BASE_URL", fake.URL,
		"FORESIGHT_OPENAI_MODEL", "gemma3:4b",
		"VISION_CHUNK_SECONDS", "0",
	}
	inst, logs := startLogged(t, append(base, env...)...)
	return inst, fake, logs
}

// testJPEG is a distinct payload that passes as a JPEG (the adapter and the
// double check the magic bytes, not the picture).
func testJPEG(i int) []byte {
	return append([]byte{0xFF, 0xD8, 0xFF, 0xE0}, fmt.Sprintf("frame %04d", i)...)
}

// jpegStream sends numbered JPEGs and keeps what it sent and got back.
type jpegStream struct {
	*streamClient
	sent [][]byte
	acks []map[string]any
}

func dialJPEGStream(t *testing.T, inst *app.Instance, query string) *jpegStream {
	t.Helper()
	conn, _, _, err := ws.Dial(context.Background(), wsURL(inst, query))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return &jpegStream{streamClient: &streamClient{t: t, conn: conn}}
}

// until sends frames, pausing briefly between them as a camera would, until
// an ack has key, and returns that ack. It gives up after 20 s, which only a
// broken server needs.
func (s *jpegStream) until(key string) map[string]any {
	s.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		frame := testJPEG(len(s.sent))
		s.sent = append(s.sent, frame)
		ack := s.frame(frame)
		s.acks = append(s.acks, ack)
		if _, ok := ack[key]; ok {
			return ack
		}
		time.Sleep(2 * time.Millisecond)
	}
	s.t.Fatalf("no ack with %q after %d frames", key, len(s.sent))
	return nil
}

func getWith(t *testing.T, url string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body bytes.Buffer
	_, err = body.ReadFrom(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, body.String()
}

func TestOpenAICaptionsEndToEnd(t *testing.T) {
	inst, fake, logs := startWithOpenAI(t, "FORESIGHT_MAX_FRAMES_PER_CHUNK", "3", "VISION_CHUNK_SECONDS", "0.05")
	c := dialJPEGStream(t, inst, "")
	for range 3 {
		ack := c.until("caption")
		assert.Regexp(t, `^caption \d+$`, ack["caption"])
		for _, k := range []string{"chunk_start_s", "chunk_end_s", "latency_ms", "tokens_generated"} {
			assert.Contains(t, ack, k)
		}
	}
	requests := fake.Requests()
	require.NotEmpty(t, requests)
	sent := map[string]bool{}
	for _, f := range c.sent {
		sent[string(f)] = true
	}
	for i, req := range requests {
		assert.Equal(t, "gemma3:4b", req.Model)
		assert.False(t, req.HasAuthorization, "no key configured: no Authorization header")
		assert.LessOrEqual(t, len(req.Images), 3, "request %d carries at most FORESIGHT_MAX_FRAMES_PER_CHUNK images", i)
		assert.NotEmpty(t, req.Images)
		for _, img := range req.Images {
			assert.True(t, sent[string(img)], "request %d: every image is one of the JPEGs the client sent", i)
		}
	}
	assert.Empty(t, fake.Rejected())
	assert.Contains(t, logs.String(), `level=INFO msg=inference backend=openai model=gemma3:4b host=127.0.0.1:`)
	assert.Contains(t, logs.String(), "captions=on")
}

func TestOpenAIFramesPerChunkZeroSendsAll(t *testing.T) {
	inst, fake, _ := startWithOpenAI(t, "FORESIGHT_MAX_FRAMES_PER_CHUNK", "0", "VISION_CHUNK_SECONDS", "0.3")
	c := dialJPEGStream(t, inst, "")
	c.until("caption")
	c.until("caption")
	most := 0
	for _, req := range fake.Requests() {
		most = max(most, len(req.Images))
	}
	// A chunk of 0.3 s at one frame per ack round trip holds far more than
	// the default 6; with 0 (all) every buffered frame goes.
	assert.Greater(t, most, 6)
}

func TestOpenAIServerErrorThenRecovery(t *testing.T) {
	inst, fake, _ := startWithOpenAI(t)
	fake.Enqueue(openaitest.Response{Status: http.StatusInternalServerError})
	c := dialJPEGStream(t, inst, "")
	ack := c.until("inference_error")
	assert.Contains(t, ack["inference_error"], "model server answered 500")
	ack = c.until("caption")
	assert.Equal(t, "caption 2", ack["caption"], "the stream recovers on its own")
}

func TestOpenAIRateLimitIsHonoured(t *testing.T) {
	inst, fake, _ := startWithOpenAI(t)
	var mu sync.Mutex
	var arrivals []time.Time
	fake.Respond(func(openaitest.Request) openaitest.Response {
		mu.Lock()
		defer mu.Unlock()
		arrivals = append(arrivals, time.Now())
		if len(arrivals) == 1 {
			return openaitest.Response{Status: http.StatusTooManyRequests, RetryAfter: "1"}
		}
		return openaitest.Response{Caption: "after the pause"}
	})
	c := dialJPEGStream(t, inst, "")
	ack := c.until("inference_error")
	assert.Contains(t, ack["inference_error"], "429")
	ack = c.until("caption")
	assert.Equal(t, "after the pause", ack["caption"])

	mu.Lock()
	require.GreaterOrEqual(t, len(arrivals), 2)
	// The 429 was answered after its request arrived, and the wait runs
	// from the answer: the next request cannot come sooner.
	assert.GreaterOrEqual(t, arrivals[1].Sub(arrivals[0]), time.Second, "no request before Retry-After passed")
	mu.Unlock()
	var droppedErrors int
	for _, a := range c.acks {
		if e, ok := a["inference_error"].(string); ok && strings.Contains(e, "chunk not sent") {
			droppedErrors++
		}
	}
	assert.Positive(t, droppedErrors, "chunks cut during the wait are dropped, and said so")

	_, body := get(t, inst.URL()+"/metrics")
	assert.Contains(t, body, "foresight_inference_rate_limited_total 1\n")
	assert.Positive(t, metricValue(t, body, "foresight_inference_dropped_chunks_total"))
}

func TestOpenAIStalledReplyTimesOut(t *testing.T) {
	inst, fake, _ := startWithOpenAI(t, "FORESIGHT_INFERENCE_TIMEOUT", "300ms")
	fake.Enqueue(openaitest.Response{Stall: true})
	c := dialJPEGStream(t, inst, "")
	ack := c.until("inference_error")
	assert.Equal(t, "inference timed out after 300ms", ack["inference_error"])
	ack = c.until("caption")
	assert.Equal(t, "caption 2", ack["caption"])
}

func TestOpenAIKeyNeverShown(t *testing.T) {
	const key = "sk-canary-7f3a9c1e5b"
	inst, fake, logs := startWithOpenAI(t, "FORESIGHT_OPENAI_API_KEY", key, "MAGIC_WORD", "w")
	// An upstream that echoes the key in its error body must not leak it.
	fake.Enqueue(openaitest.Response{Status: http.StatusUnauthorized,
		Body: `{"error":{"message":"Incorrect API key provided: ` + key + `","type":"invalid_request_error"}}`})
	c := dialJPEGStream(t, inst, "?magic_word=w")
	ack := c.until("inference_error")
	assert.Contains(t, ack["inference_error"], "401")
	c.until("caption")
	require.NotEmpty(t, fake.Requests())
	assert.Equal(t, "Bearer "+key, fake.Requests()[0].Authorization, "the key does reach the model server")

	statusCode, status := getWith(t, inst.URL()+"/status", http.Header{"X-Magic-Word": {"w"}})
	require.Equal(t, http.StatusOK, statusCode)
	_, metrics := get(t, inst.URL()+"/metrics")
	acks, err := json.Marshal(c.acks)
	require.NoError(t, err)
	for name, text := range map[string]string{"acks": string(acks), "/status": status, "/metrics": metrics, "logs": logs.String()} {
		assert.NotContains(t, text, key, "the API key must not appear in %s", name)
		assert.NotContains(t, text, key[3:], "nor a part of it in %s", name)
	}
	assert.NotEmpty(t, logs.String())
}

func TestOpenAIEnvFallbacks(t *testing.T) {
	fake := openaitest.NewServer()
	t.Cleanup(fake.Close)
	inst, _ := startLogged(t,
		"FORESIGHT_INFERENCE_BACKEND", "openai", "FORESIGHT_OPENAI_MODEL", "m",
		"OPENAI_BASE_URL", fake.URL, "OPENAI_API_KEY", "from-openai-env", "VISION_CHUNK_SECONDS", "0")
	c := dialJPEGStream(t, inst, "")
	c.until("caption")
	assert.Equal(t, "Bearer from-openai-env", fake.Requests()[0].Authorization)
}

func TestOpenAIMissingModelIsAStartUpError(t *testing.T) {
	_, err := app.LoadConfig(nil, envOf("FORESIGHT_INFERENCE_BACKEND", "openai"), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "FORESIGHT_OPENAI_MODEL")

	// A Config built by hand (not through LoadConfig) is refused at start.
	cfg, err := app.LoadConfig([]string{"--addr", "127.0.0.1:0"}, envOf("FORESIGHT_DATABASE_URL", "none"), nil)
	require.NoError(t, err)
	cfg.InferenceBackend = "openai"
	_, err = app.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "FORESIGHT_OPENAI_MODEL")
}

func TestOpenAIBadBaseURLIsAStartUpError(t *testing.T) {
	cfg, err := app.LoadConfig([]string{"--addr", "127.0.0.1:0"},
		envOf("FORESIGHT_DATABASE_URL", "none", "FORESIGHT_INFERENCE_BACKEND", "openai", "FORESIGHT_OPENAI_MODEL", "m", "FORESIGHT_OPENAI_BASE_URL", "ftp://u:p@host/v1"), nil)
	require.NoError(t, err)
	_, err = app.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "base URL")
	assert.NotContains(t, err.Error(), "u:p", "the URL may carry credentials")
}

func TestStatusSaysWhatRuns(t *testing.T) {
	t.Run("openai", func(t *testing.T) {
		inst, _, _ := startWithOpenAI(t, "MAGIC_WORD", "w", "VISION_CHUNK_SECONDS", "0.5")
		code, _ := get(t, inst.URL()+"/status")
		assert.Equal(t, http.StatusForbidden, code, "/status sits behind the magic word")
		code, body := get(t, inst.URL()+"/status?magic_word=w")
		require.Equal(t, http.StatusOK, code)
		var got map[string]any
		require.NoError(t, json.Unmarshal([]byte(body), &got))
		assert.Equal(t, "openai", got["backend"])
		assert.Equal(t, "gemma3:4b", got["model"])
		assert.Regexp(t, `^127\.0\.0\.1:\d+$`, got["base_url_host"])
		assert.Equal(t, true, got["captions"])
		assert.Equal(t, 0.5, got["chunk_seconds"])
		assert.Equal(t, float64(6), got["max_frames_per_chunk"], "the openai default")
		assert.NotEmpty(t, got["version"])
		assert.Len(t, got, 7)
	})
	t.Run("none", func(t *testing.T) {
		inst, logs := startLogged(t, "FORESIGHT_INFERENCE_BACKEND", "none", "FORESIGHT_MAX_FRAMES_PER_CHUNK", "0")
		code, body := get(t, inst.URL()+"/status")
		require.Equal(t, http.StatusOK, code)
		var got map[string]any
		require.NoError(t, json.Unmarshal([]byte(body), &got))
		assert.Equal(t, "none", got["backend"])
		assert.Equal(t, false, got["captions"])
		assert.Equal(t, float64(0), got["max_frames_per_chunk"], "0 is all")
		assert.Contains(t, logs.String(), `level=WARN msg=inference backend=none`)
		assert.Contains(t, logs.String(), "captions=off")
		assert.Contains(t, logs.String(), "FORESIGHT_OPENAI_MODEL", "the line says how to turn captions on")
	})
	t.Run("modal without credentials", func(t *testing.T) {
		inst, logs := startLogged(t, "FORESIGHT_INFERENCE_BACKEND", "streamingvlm")
		_, body := get(t, inst.URL()+"/status")
		var got map[string]any
		require.NoError(t, json.Unmarshal([]byte(body), &got))
		assert.Equal(t, "streamingvlm", got["backend"])
		assert.Equal(t, "foresight-streamingvlm/StreamingVLMSession", got["model"])
		assert.Equal(t, false, got["captions"])
		assert.Equal(t, float64(0), got["max_frames_per_chunk"], "the legacy app sees every frame")
		assert.Contains(t, logs.String(), "captions=off")
		assert.Contains(t, logs.String(), "MODAL_TOKEN_ID")
	})
	t.Run("modal with credentials", func(t *testing.T) {
		inst, logs := startLogged(t, "MODAL_TOKEN_ID", "ak-canary", "MODAL_TOKEN_SECRET", "as-canary")
		_, body := get(t, inst.URL()+"/status")
		var got map[string]any
		require.NoError(t, json.Unmarshal([]byte(body), &got))
		assert.Equal(t, "gemma3", got["backend"])
		assert.Equal(t, "foresight-gemma3-vlm/Gemma3VLMSession", got["model"])
		assert.Equal(t, true, got["captions"])
		assert.NotContains(t, body, "canary")
		assert.NotContains(t, logs.String(), "canary")
	})
}

func TestOpenAIFramesMetrics(t *testing.T) {
	inst, _, _ := startWithOpenAI(t, "FORESIGHT_MAX_FRAMES_PER_CHUNK", "1", "VISION_CHUNK_SECONDS", "0.1")
	c := dialJPEGStream(t, inst, "")
	c.until("caption")
	c.until("caption")
	_, body := get(t, inst.URL()+"/metrics")
	sent, received := metricValue(t, body, "foresight_chunk_frames_total"), metricValue(t, body, "foresight_chunk_received_frames_total")
	chunks := metricValue(t, body, "foresight_chunks_total")
	assert.Equal(t, chunks, sent, "one frame per chunk")
	assert.Greater(t, received, sent, "chunks of 0.1 s buffer more frames than the one sent")
	assert.Greater(t, metricValue(t, body, "foresight_chunk_received_bytes_total"), metricValue(t, body, "foresight_chunk_bytes_total"))
}

func metricValue(t *testing.T, body, name string) float64 {
	t.Helper()
	for line := range strings.SplitSeq(body, "\n") {
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			var v float64
			_, err := fmt.Sscan(rest, &v)
			require.NoError(t, err)
			return v
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestHelpNeverPrintsTheAPIKey(t *testing.T) {
	var out bytes.Buffer
	_, err := app.LoadConfig([]string{"--help"}, envOf("FORESIGHT_OPENAI_API_KEY", "sk-help-canary", "OPENAI_API_KEY", "sk-help-canary"), &out)
	require.Error(t, err)
	assert.Contains(t, out.String(), "FORESIGHT_OPENAI_API_KEY")
	assert.NotContains(t, out.String(), "sk-help-canary")
}

func TestOpenAIUnreachableServerIsTold(t *testing.T) {
	// A port nothing listens on: the stream says so, then keeps going.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String()
	require.NoError(t, ln.Close())
	inst, _ := startLogged(t, "FORESIGHT_INFERENCE_BACKEND", "openai", "FORESIGHT_OPENAI_MODEL", "m",
		"FORESIGHT_OPENAI_BASE_URL", "http://"+dead+"/v1", "VISION_CHUNK_SECONDS", "0")
	c := dialJPEGStream(t, inst, "")
	ack := c.until("inference_error")
	assert.Contains(t, ack["inference_error"], "cannot reach "+dead)
	ack = c.frame(testJPEG(-1))
	assert.Equal(t, float64(len(c.sent)+1), ack["frame"], "acks go on while the model is away")
}
