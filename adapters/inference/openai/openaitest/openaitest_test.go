package openaitest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/inference/openai/openaitest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var jpegA = []byte{0xFF, 0xD8, 0xFF, 0xE0, 'a'}

func dataURL(b []byte) string {
	return "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(b)
}

func body(model string, parts ...any) string {
	b, _ := json.Marshal(map[string]any{
		"model":       model,
		"max_tokens":  64,
		"temperature": 0.2,
		"messages":    []any{map[string]any{"role": "user", "content": parts}},
	})
	return string(b)
}

func text(s string) any { return map[string]any{"type": "text", "text": s} }
func image(url string) any {
	return map[string]any{"type": "image_url", "image_url": map[string]any{"url": url}}
}

func post(t *testing.T, url, ctype, payload string, header ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(payload))
	require.NoError(t, err)
	req.Header.Set("Content-Type", ctype)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, res.Header, string(b)
}

func newServer(t *testing.T) *openaitest.Server {
	s := openaitest.NewServer()
	t.Cleanup(func() {
		s.Close()
		http.DefaultClient.CloseIdleConnections()
	})
	return s
}

func TestRecordsAndAnswers(t *testing.T) {
	s := newServer(t)
	jpegB := append([]byte{0xFF, 0xD8, 0xFF, 0xDB}, make([]byte, 300)...)
	status, _, out := post(t, s.URL+"/chat/completions", "application/json",
		body("gemma3:4b", text("describe"), image(dataURL(jpegA)), image(dataURL(jpegB))),
		"Authorization", "Bearer k")
	require.Equal(t, http.StatusOK, status, out)
	var reply struct {
		Choices []struct {
			Message struct{ Role, Content string }
		}
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		}
	}
	require.NoError(t, json.Unmarshal([]byte(out), &reply))
	require.Len(t, reply.Choices, 1)
	assert.Equal(t, "caption 1", reply.Choices[0].Message.Content)
	assert.Equal(t, 2, reply.Usage.CompletionTokens)

	// Also under the root, without /v1; scripted this time.
	s.Respond(func(r openaitest.Request) openaitest.Response {
		return openaitest.Response{Caption: "saw " + r.Model, CompletionTokens: 7}
	})
	status, _, out = post(t, s.RootURL()+"/chat/completions", "application/json", body("m2", text("x"), image(dataURL(jpegA))))
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, out, `"content":"saw m2"`)
	assert.Contains(t, out, `"completion_tokens":7`)

	reqs := s.Requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "/v1/chat/completions", reqs[0].Path)
	assert.Equal(t, "gemma3:4b", reqs[0].Model)
	assert.Equal(t, "Bearer k", reqs[0].Authorization)
	assert.True(t, reqs[0].HasAuthorization)
	assert.Equal(t, "describe", reqs[0].Text)
	assert.Equal(t, [][]byte{jpegA, jpegB}, reqs[0].Images)
	assert.Equal(t, 64, reqs[0].MaxTokens)
	require.NotNil(t, reqs[0].Temperature)
	assert.Equal(t, 0.2, *reqs[0].Temperature)
	assert.Equal(t, "/chat/completions", reqs[1].Path)
	assert.False(t, reqs[1].HasAuthorization)
}

func TestRejectsBadShapes(t *testing.T) {
	s := newServer(t)
	tests := []struct {
		name, path, ctype, body string
		want                    int
	}{
		{"wrong path", "/v1/completions", "application/json", body("m", text("x"), image(dataURL(jpegA))), 404},
		{"not JSON content type", "/v1/chat/completions", "text/plain", "hi", 415},
		{"not JSON", "/v1/chat/completions", "application/json", "{", 400},
		{"no model", "/v1/chat/completions", "application/json", body("", text("x"), image(dataURL(jpegA))), 400},
		{"no messages", "/v1/chat/completions", "application/json", `{"model":"m"}`, 400},
		{"no image", "/v1/chat/completions", "application/json", body("m", text("x")), 422},
		{"image first", "/v1/chat/completions", "application/json", body("m", image(dataURL(jpegA)), text("x")), 422},
		{"remote URL", "/v1/chat/completions", "application/json", body("m", text("x"), image("https://example.com/a.jpg")), 422},
		{"PNG data", "/v1/chat/completions", "application/json", body("m", text("x"), image(dataURL([]byte("\x89PNG\r\n")))), 422},
		{"bad base64", "/v1/chat/completions", "application/json", body("m", text("x"), image("data:image/jpeg;base64,!!!")), 422},
		{"string content", "/v1/chat/completions", "application/json", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`, 422},
		{"two messages", "/v1/chat/completions", "application/json", `{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"u"}]}`, 422},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, out := post(t, s.RootURL()+tt.path, tt.ctype, tt.body)
			assert.Equal(t, tt.want, status, out)
			assert.Contains(t, out, `"error":{"`)
		})
	}
	assert.Len(t, s.Rejected(), len(tests))
	assert.Empty(t, s.Requests(), "malformed requests are not recorded")

	res, err := http.Get(s.URL + "/chat/completions")
	require.NoError(t, err)
	res.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, res.StatusCode)
}

func TestFailsAndRateLimitsOnDemand(t *testing.T) {
	s := newServer(t)
	s.Enqueue(
		openaitest.Response{Status: 503, Body: "model loading", RetryAfter: ""},
		openaitest.Response{Status: 429, RetryAfter: "3"},
	)
	ok := body("m", text("x"), image(dataURL(jpegA)))
	status, _, out := post(t, s.URL+"/chat/completions", "application/json", ok)
	assert.Equal(t, 503, status)
	assert.Equal(t, "model loading", out)
	status, header, out := post(t, s.URL+"/chat/completions", "application/json", ok)
	assert.Equal(t, 429, status)
	assert.Equal(t, "3", header.Get("Retry-After"))
	assert.Contains(t, out, "Too Many Requests")
	status, _, _ = post(t, s.URL+"/chat/completions", "application/json", ok)
	assert.Equal(t, 200, status, "the queue is spent: back to captions")
	assert.Len(t, s.Requests(), 3)
}

func TestStallsUntilClientGivesUpOrClose(t *testing.T) {
	s := openaitest.NewServer()
	defer http.DefaultClient.CloseIdleConnections()
	s.Respond(func(openaitest.Request) openaitest.Response { return openaitest.Response{Stall: true} })
	ok := body("m", text("x"), image(dataURL(jpegA)))

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+"/chat/completions", strings.NewReader(ok))
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		errc <- err
	}()
	require.NoError(t, s.WaitRequests(context.Background(), 1))
	cancel()
	require.ErrorIs(t, <-errc, context.Canceled)

	// A second stalled request is released by Close.
	go func() {
		req, _ := http.NewRequest(http.MethodPost, s.URL+"/chat/completions", strings.NewReader(ok))
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err == nil {
			res.Body.Close()
		}
		errc <- err
	}()
	require.NoError(t, s.WaitRequests(context.Background(), 2))
	s.Close()
	<-errc // an error or an empty reply: either way it returned

	waitCtx, cancelWait := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancelWait()
	assert.Error(t, s.WaitRequests(waitCtx, 3))
}
