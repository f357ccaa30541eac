package ollamae2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/inference/openai"
	"github.com/foresight-vision/foresight/adapters/protocol/visionclient"
	"github.com/foresight-vision/foresight/app"
	"github.com/foresight-vision/foresight/internal/ollamatest"
	"github.com/foresight-vision/foresight/ports"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Bounds on waiting for the model server: generous, since a call takes 3 to
// 45 s on 2 busy cores (docs/providers.md, measured). They bound waits;
// no assertion is about speed.
const (
	callBound   = 3 * time.Minute // one model call, the first with the load
	streamBound = 6 * time.Minute // a stream's few captions
)

// The real server starts once: every scenario below is a subtest of this
// test, in the order that keeps the model calls few.
func TestRealModelServer(t *testing.T) {
	t.Cleanup(func() { reportRan(t) })
	srv := ollamatest.Start(t)
	t.Logf("real model server: %s (model %s)", srv.BaseURL, srv.Model)
	proxy := newRecordingProxy(t, srv.URL)

	run := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			t.Cleanup(func() { reportRan(t) })
			f(t)
		})
	}
	run("UnknownModelIsA404OnTheAck", func(t *testing.T) { unknownModel(t, proxy) })
	run("EarlyStopIsAnErrorAndNotHistory", func(t *testing.T) { earlyStop(t, proxy, srv.Model) })
	run("TimeoutIsReportedAndTheServerStillAnswers", func(t *testing.T) { timeout(t, proxy, srv.Model) })
	run("CaptionsHistoryFramesAndTheLLMNudge", func(t *testing.T) { captionsAndNudge(t, proxy, srv.Model) })
}

// reportRan appends the test's name and outcome to FORESIGHT_E2E_REPORT,
// when set: `make test` prints it, so a CI log shows which real-server
// tests ran (go test shows nothing of a passing package without -v).
func reportRan(t *testing.T) {
	path := os.Getenv("FORESIGHT_E2E_REPORT")
	if path == "" {
		return
	}
	outcome := "ok"
	switch {
	case t.Failed():
		outcome = "FAILED"
	case t.Skipped():
		outcome = "skipped"
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Errorf("e2e report: %v", err)
		return
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%s %s\n", outcome, t.Name()); err != nil {
		t.Errorf("e2e report: %v", err)
	}
}

// recorded is one request as the proxy saw it.
type recorded struct {
	Path string
	Body []byte
}

// chat is the part of a chat-completions request the tests read.
type chat struct {
	Model          string          `json:"model"`
	ResponseFormat json.RawMessage `json:"response_format"`
	Messages       []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
}

// captionRequest is a caption call's text part and its images' bytes.
type captionRequest struct {
	Text   string
	Images [][]byte
}

func (r recorded) chat(t *testing.T) chat {
	t.Helper()
	var c chat
	require.NoError(t, json.Unmarshal(r.Body, &c), "request to %s", r.Path)
	return c
}

// caption reads r as a caption call (one user message of parts), or ok is
// false.
func (r recorded) caption(t *testing.T) (captionRequest, bool) {
	t.Helper()
	c := r.chat(t)
	if len(c.Messages) != 1 {
		return captionRequest{}, false
	}
	var parts []struct {
		Type     string `json:"type"`
		Text     string `json:"text"`
		ImageURL *struct {
			URL string `json:"url"`
		} `json:"image_url"`
	}
	if json.Unmarshal(c.Messages[0].Content, &parts) != nil {
		return captionRequest{}, false
	}
	var out captionRequest
	for _, p := range parts {
		switch p.Type {
		case "text":
			out.Text = p.Text
		case "image_url":
			require.NotNil(t, p.ImageURL)
			data, ok := strings.CutPrefix(p.ImageURL.URL, "data:image/jpeg;base64,")
			require.True(t, ok, "an image part is a JPEG data URL")
			img, err := base64.StdEncoding.DecodeString(data)
			require.NoError(t, err)
			out.Images = append(out.Images, img)
		}
	}
	return out, true
}

// recordingProxy stands between Foresight and the model server and keeps
// every request's body, as the server got it.
type recordingProxy struct {
	URL string // the proxy's root; the OpenAI API is URL+"/v1"

	mu       sync.Mutex
	requests []recorded
}

func newRecordingProxy(t *testing.T, target string) *recordingProxy {
	t.Helper()
	to, err := url.Parse(target)
	require.NoError(t, err)
	p := &recordingProxy{}
	rp := httputil.NewSingleHostReverseProxy(to)
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil // loopback only, whatever the environment says
	rp.Transport = transport
	rp.ErrorLog = log.New(io.Discard, "", 0) // a cancelled call is expected here
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		p.mu.Lock()
		p.requests = append(p.requests, recorded{Path: r.URL.Path, Body: body})
		p.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		hs.Close()
		transport.CloseIdleConnections()
	})
	p.URL = hs.URL
	return p
}

// since returns the requests after the first n.
func (p *recordingProxy) since(n int) []recorded {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]recorded(nil), p.requests[min(n, len(p.requests)):]...)
}

func (p *recordingProxy) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.requests)
}

// testJPEGs makes n distinct small JPEGs the server can decode.
func testJPEGs(t *testing.T, n int) [][]byte {
	t.Helper()
	var all [][]byte
	for i := range n {
		img := image.NewRGBA(image.Rect(0, 0, 64, 48))
		for x := range 64 {
			for y := range 48 {
				img.Set(x, y, color.RGBA{uint8(i * 37), uint8(x * 4), uint8(y * 5), 255})
			}
		}
		var b bytes.Buffer
		require.NoError(t, jpeg.Encode(&b, img, &jpeg.Options{Quality: 80}))
		all = append(all, b.Bytes())
	}
	return all
}

// startApp runs the whole server with the openai backend on the proxy, and
// env on top; no caption store unless env names one.
func startApp(t *testing.T, proxy *recordingProxy, env ...string) *app.Instance {
	t.Helper()
	vars := map[string]string{
		"FORESIGHT_INFERENCE_BACKEND":    "openai",
		"FORESIGHT_OPENAI_BASE_URL":      proxy.URL + "/v1",
		"FORESIGHT_MAX_FRAMES_PER_CHUNK": "3",
		"VISION_CHUNK_SECONDS":           "0.5",
		"FORESIGHT_INFERENCE_TIMEOUT":    callBound.String(),
		"FORESIGHT_DATABASE_URL":         "none",
	}
	for i := 0; i+1 < len(env); i += 2 {
		vars[env[i]] = env[i+1]
	}
	cfg, err := app.LoadConfig([]string{"--addr", "127.0.0.1:0"}, func(k string) string { return vars[k] }, nil)
	require.NoError(t, err)
	inst, err := app.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		assert.NoError(t, inst.Stop(ctx))
	})
	return inst
}

// stream sends frames (cycling through them) as device until until says
// stop or the bound passes, and returns the acks that carried a result.
func stream(t *testing.T, inst *app.Instance, device string, frames [][]byte, until func(results []visionclient.Ack) bool) []visionclient.Ack {
	t.Helper()
	target := "ws" + strings.TrimPrefix(inst.URL(), "http") + "/vision/stream?device=" + url.QueryEscape(device)
	conn, err := visionclient.Dial(context.Background(), target, visionclient.Options{HandshakeTimeout: 30 * time.Second})
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()
	var results []visionclient.Ack
	deadline := time.Now().Add(streamBound)
	for i := 0; !until(results); i++ {
		require.True(t, time.Now().Before(deadline), "no end after %v: results so far %v", streamBound, ackTexts(results))
		require.NoError(t, conn.SendFrame(frames[i%len(frames)]))
		ack, err := conn.ReadAck()
		require.NoError(t, err)
		if ack.HasResult() {
			results = append(results, ack)
		}
		time.Sleep(50 * time.Millisecond) // a camera's pace, loosely: 20 fps
	}
	return results
}

func ackTexts(acks []visionclient.Ack) []string {
	var out []string
	for _, a := range acks {
		out = append(out, string(a.Raw))
	}
	return out
}

func errorsIn(acks []visionclient.Ack) []string {
	var out []string
	for _, a := range acks {
		if a.InferenceError != "" {
			out = append(out, a.InferenceError)
		}
	}
	return out
}

// An unknown model: the ack names the server's 404, once per chunk, and the
// stream goes on.
func unknownModel(t *testing.T, proxy *recordingProxy) {
	inst := startApp(t, proxy, "FORESIGHT_OPENAI_MODEL", "no-such-model")
	results := stream(t, inst, "unknown", testJPEGs(t, 3), func(r []visionclient.Ack) bool { return len(r) >= 2 })
	for _, r := range results {
		assert.False(t, r.HasCaption, "no caption: %s", r.Raw)
		assert.Contains(t, r.InferenceError, "model server answered 404 Not Found")
		assert.Contains(t, r.InferenceError, "no-such-model")
	}
}

// Ollama stops a model that repeats one piece of text 31 times and answers
// 200 with finish_reason null, zero usage and the partial reply. This model
// does so every time in JSON mode at temperature 0 on a short text-only
// prompt (the grammar lets it write "{" and then spaces); with Foresight's
// prompt or images it writes words instead. So the first request is put in
// JSON mode, its message cut to the task alone, on its way to the server:
// the reply is the real server's. The adapter must report it as an error
// and keep it out of the next prompt.
func earlyStop(t *testing.T, proxy *recordingProxy, model string) {
	var calls int
	var mu sync.Mutex
	jsonMode := func(r *http.Request) (*http.Response, error) {
		mu.Lock()
		calls++
		first := calls == 1
		mu.Unlock()
		if first {
			body, err := textOnlyJSONMode(r.Body)
			if err != nil {
				return nil, err
			}
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		}
		return http.DefaultTransport.RoundTrip(r)
	}
	cfg := openai.DefaultConfig() // caption history on: the early stop must not enter it
	cfg.BaseURL, cfg.Model = proxy.URL+"/v1", model
	cfg.Temperature = 0 // greedy: "temperature":0 on the wire
	cfg.HTTPClient = &http.Client{Transport: roundTripFunc(jsonMode)}
	require.Positive(t, cfg.CaptionHistory)
	backend, err := openai.New(cfg, nil)
	require.NoError(t, err)
	defer backend.Close()
	session, err := backend.OpenSession(context.Background(), ports.SessionRequest{StreamID: "early"})
	require.NoError(t, err)
	defer session.Close(context.Background())
	frames := testJPEGs(t, 2)

	before := proxy.count()
	ctx, cancel := context.WithTimeout(context.Background(), callBound)
	defer cancel()
	res, err := session.InferChunk(ctx, ports.Chunk{Frames: frames[:1], StartS: 0, EndS: 1, Prompt: "describe"})
	require.ErrorIs(t, err, openai.ErrStoppedEarly, "caption %q", res.Caption)
	assert.Empty(t, res.Caption)
	assert.Equal(t, int64(1), backend.Stats().IncompleteReplies)

	_, err = session.InferChunk(ctx, ports.Chunk{Frames: frames[1:], StartS: 1, EndS: 2, Prompt: "describe"})
	require.NoError(t, err, "the next chunk, without JSON mode, gets a caption")
	sent := proxy.since(before)
	require.Len(t, sent, 2)
	assert.Contains(t, string(sent[0].Body), `"json_object"`)
	next, ok := sent[1].caption(t)
	require.True(t, ok)
	assert.NotContains(t, next.Text, "Recent prior observations", "the partial reply is not history")
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
}

// textOnlyJSONMode rewrites a caption request: response_format json_object,
// and the user message the task alone.
func textOnlyJSONMode(body io.ReadCloser) ([]byte, error) {
	defer body.Close()
	var req map[string]any
	if err := json.NewDecoder(body).Decode(&req); err != nil {
		return nil, err
	}
	req["response_format"] = map[string]any{"type": "json_object"}
	messages, _ := req["messages"].([]any)
	if len(messages) != 1 {
		return nil, fmt.Errorf("want one message, got %d", len(messages))
	}
	msg, _ := messages[0].(map[string]any)
	parts, _ := msg["content"].([]any)
	if len(parts) == 0 {
		return nil, errors.New("want content parts")
	}
	text, _ := parts[0].(map[string]any)
	prompt, _ := text["text"].(string)
	_, task, ok := strings.Cut(prompt, "Task: ")
	if !ok {
		return nil, fmt.Errorf("no task in the prompt %q", prompt)
	}
	msg["content"] = task
	return json.Marshal(req)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// A timeout far below a call's time: every chunk's ack says it timed out,
// the calls reached the server, and the server answers the next stream.
func timeout(t *testing.T, proxy *recordingProxy, model string) {
	before := proxy.count()
	inst := startApp(t, proxy, "FORESIGHT_OPENAI_MODEL", model, "FORESIGHT_INFERENCE_TIMEOUT", "50ms")
	results := stream(t, inst, "slow", testJPEGs(t, 3), func(r []visionclient.Ack) bool {
		return len(r) >= 2 && proxy.count() > before
	})
	for _, r := range results {
		assert.False(t, r.HasCaption, "no caption: %s", r.Raw)
		assert.Equal(t, "inference timed out after 50ms", r.InferenceError)
	}
	// The next subtest streams to the same server and gets captions.
}

// Captions through the openai backend: non-empty, tokens counted, each
// request carries at most 3 of the client's own JPEGs, byte for byte, the
// stream's captions come back as history in its next requests, and they
// are stored. Then the llm nudge decider asks the same server with its
// structured output, and the loop records a decision or a clear error.
func captionsAndNudge(t *testing.T, proxy *recordingProxy, model string) {
	before := proxy.count()
	db := filepath.Join(t.TempDir(), "captions.db")
	inst := startApp(t, proxy, "FORESIGHT_OPENAI_MODEL", model,
		"FORESIGHT_DATABASE_URL", "sqlite:"+db,
		"FORESIGHT_NUDGES", "llm", "FORESIGHT_NUDGE_INTERVAL", "10m", "FORESIGHT_NUDGE_COOLDOWN", "1h",
		"FORESIGHT_NUDGE_LLM_BASE_URL", proxy.URL+"/v1", "FORESIGHT_NUDGE_LLM_MODEL", model,
		"FORESIGHT_POKE_URL", "http://127.0.0.1:1")
	frames := testJPEGs(t, 8)
	results := stream(t, inst, "glasses", frames, func(r []visionclient.Ack) bool {
		n := 0
		for _, a := range r {
			if a.HasCaption && a.Caption != "" {
				n++
			}
		}
		return n >= 2
	})
	var captions []string
	for _, r := range results {
		if r.HasCaption {
			assert.NotEmpty(t, r.Caption)
			tokens, err := r.Fields["tokens_generated"].(json.Number).Int64()
			require.NoError(t, err, "ack %s", r.Raw)
			assert.Positive(t, tokens, "ack %s", r.Raw)
			captions = append(captions, r.Caption)
		}
	}
	t.Logf("captions: %q; errors: %q", captions, errorsIn(results))

	sent := map[string]bool{}
	for _, f := range frames {
		sent[string(f)] = true
	}
	var calls []captionRequest
	for _, r := range proxy.since(before) {
		if r.Path != "/v1/chat/completions" {
			continue
		}
		if c, ok := r.caption(t); ok {
			calls = append(calls, c)
		}
	}
	require.GreaterOrEqual(t, len(calls), 2)
	for i, c := range calls {
		assert.NotEmpty(t, c.Images, "request %d", i)
		assert.LessOrEqual(t, len(c.Images), 3, "request %d", i)
		for _, img := range c.Images {
			assert.True(t, sent[string(img)], "request %d carries an image the client did not send", i)
		}
	}
	// The request after the first caption's shows it as history.
	assert.NotContains(t, calls[0].Text, "Recent prior observations")
	require.NotEmpty(t, captions)
	found := false
	for _, c := range calls[1:] {
		if strings.Contains(c.Text, "Recent prior observations") && strings.Contains(c.Text, "s: "+captions[0]+"\n") {
			found = true
		}
	}
	assert.True(t, found, "a later request shows the first caption %q as history", captions[0])

	var page struct {
		Captions []struct {
			Caption string `json:"caption"`
			Backend string `json:"backend"`
		} `json:"captions"`
	}
	// A caption is stored after its ack is queued: wait for the last one.
	require.Eventually(t, func() bool {
		getJSON(t, inst.URL()+"/captions?device=glasses", &page)
		return len(page.Captions) >= len(captions)
	}, callBound, 50*time.Millisecond, "every caption stored")
	// A call in flight when the stream closed may have stored one more.
	stored := map[string]bool{}
	for _, c := range page.Captions {
		assert.NotEmpty(t, c.Caption)
		assert.Equal(t, "openai", c.Backend)
		stored[c.Caption] = true
	}
	for _, c := range captions {
		assert.True(t, stored[c], "caption %q stored", c)
	}

	// One evaluation now, through the real server's structured output.
	nudgeBefore := proxy.count()
	var record struct {
		Decision string  `json:"decision"`
		Engine   string  `json:"engine"`
		Error    *string `json:"error"`
	}
	deadline := time.Now().Add(callBound)
	for {
		require.True(t, time.Now().Before(deadline), "no evaluation ran")
		status, body := post(t, inst.URL()+"/interventions/run?device=glasses")
		if status == http.StatusOK {
			require.NoError(t, json.Unmarshal(body, &record), "%s", body)
			t.Logf("nudge evaluation: %s", body)
			break
		}
		require.Equal(t, http.StatusConflict, status, "%s", body) // the schedule's own run: wait for it
		time.Sleep(200 * time.Millisecond)
	}
	assert.Equal(t, "llm", record.Engine)
	switch record.Decision {
	case "yes", "no":
	case "error":
		require.NotNil(t, record.Error)
		assert.NotEmpty(t, *record.Error)
	default:
		t.Errorf("decision %q: want yes, no or error", record.Decision)
	}
	var asked bool
	for _, r := range proxy.since(nudgeBefore) {
		if c := r.chat(t); len(c.Messages) == 2 && c.Messages[0].Role == "system" {
			asked = true
			assert.Contains(t, string(c.ResponseFormat), `"json_schema"`)
		}
	}
	assert.True(t, asked, "the decider's request reached the server")
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	require.NoError(t, json.Unmarshal(body, v), "%s", body)
}

func post(t *testing.T, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, body
}
