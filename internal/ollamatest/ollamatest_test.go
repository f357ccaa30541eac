package ollamatest_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"net/http"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/internal/ollamatest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStartServesTheVisionModelAndStopsEveryProcess(t *testing.T) {
	var pid int
	t.Run("serve", func(t *testing.T) {
		srv := ollamatest.Start(t)
		pid = srv.PID()
		client := &http.Client{}
		defer client.CloseIdleConnections()
		assert.True(t, strings.HasPrefix(srv.BaseURL, "http://127.0.0.1:") && strings.HasSuffix(srv.BaseURL, "/v1"), srv.BaseURL)

		var tags struct {
			Models []struct{ Name string } `json:"models"`
		}
		getJSON(t, client, srv.URL+"/api/tags", &tags)
		require.Len(t, tags.Models, 1)
		assert.Equal(t, srv.Model+":latest", tags.Models[0].Name)

		var models struct {
			Data []struct{ ID string } `json:"data"`
		}
		getJSON(t, client, srv.BaseURL+"/models", &models)
		require.Len(t, models.Data, 1)
		assert.Equal(t, srv.Model+":latest", models.Data[0].ID)

		var show struct {
			Capabilities []string `json:"capabilities"`
			Template     string   `json:"template"`
		}
		postJSON(t, client, srv.URL+"/api/show", map[string]any{"model": srv.Model}, http.StatusOK, &show)
		assert.Contains(t, show.Capabilities, "vision")
		assert.Contains(t, show.Template, "<start_of_turn>", "Gemma 3's chat template, recognised from the GGUF")

		// One chat completion with one JPEG, through the OpenAI-compatible
		// API, as Foresight's openai backend sends it.
		var completion struct {
			Object  string `json:"object"`
			Choices []struct {
				Message struct{ Role string } `json:"message"`
			} `json:"choices"`
			Usage struct {
				PromptTokens int `json:"prompt_tokens"`
			} `json:"usage"`
		}
		postJSON(t, client, srv.BaseURL+"/chat/completions", map[string]any{
			"model":       srv.Model,
			"max_tokens":  4,
			"temperature": 0,
			"messages": []any{map[string]any{
				"role": "user",
				"content": []any{
					map[string]any{"type": "text", "text": "Describe the image in one sentence."},
					map[string]any{"type": "image_url", "image_url": map[string]string{
						"url": "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(testJPEG(t)),
					}},
				},
			}},
		}, http.StatusOK, &completion)
		assert.Equal(t, "chat.completion", completion.Object)
		require.Len(t, completion.Choices, 1)
		assert.Equal(t, "assistant", completion.Choices[0].Message.Role)
		// The image took its 16 positions in the prompt: it went through
		// the vision tower, not dropped. (What the model says is noise.)
		assert.Greater(t, completion.Usage.PromptTokens, 16)
	})
	if pid == 0 {
		t.Skip("no model server")
	}
	// The subtest's cleanup has run: no process of the server's group,
	// the model runner included, is left.
	assert.ErrorIs(t, syscall.Kill(-pid, 0), syscall.ESRCH, "ollama serve's process group %d outlived the test", pid)
}

func TestStartWithoutTheServerSkipsOrFailsUnderCI(t *testing.T) {
	t.Setenv(ollamatest.EnvBin, "")
	t.Setenv(ollamatest.EnvModel, "")
	t.Setenv(ollamatest.EnvUnavailable, "missing Debian packages: g++ (not root)")

	t.Setenv("CI", "")
	tb := startFake()
	assert.Empty(t, tb.fatal)
	assert.Contains(t, tb.skip, "missing Debian packages: g++ (not root)", "says why")

	t.Setenv("CI", "true")
	tb = startFake()
	assert.Empty(t, tb.skip)
	assert.Contains(t, tb.fatal, "CI=true requires one")
	assert.Contains(t, tb.fatal, "missing Debian packages: g++ (not root)")

	t.Setenv(ollamatest.EnvUnavailable, "")
	t.Setenv(ollamatest.EnvBin, "/nonexistent/ollama")
	t.Setenv(ollamatest.EnvModel, "/nonexistent/model.gguf")
	tb = startFake()
	assert.Contains(t, tb.fatal, "/nonexistent/ollama")
}

// fakeTB records how Start gave up; both end the goroutine, as the real
// ones do.
type fakeTB struct {
	testing.TB
	fatal, skip string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.fatal = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
func (f *fakeTB) Skipf(format string, args ...any) {
	f.skip = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func startFake() *fakeTB {
	tb := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		ollamatest.Start(tb)
	}()
	<-done
	return tb
}

func getJSON(t *testing.T, client *http.Client, url string, into any) {
	t.Helper()
	resp, err := client.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "GET %s: %s", url, body)
	require.NoError(t, json.Unmarshal(body, into), "%s", body)
}

func postJSON(t *testing.T, client *http.Client, url string, req any, status int, into any) {
	t.Helper()
	b, err := json.Marshal(req)
	require.NoError(t, err)
	resp, err := client.Post(url, "application/json", bytes.NewReader(b))
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, status, resp.StatusCode, "POST %s: %s", url, body)
	require.NoError(t, json.Unmarshal(body, into), "%s", body)
}

// testJPEG is a small colour gradient.
func testJPEG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for y := range 48 {
		for x := range 64 {
			img.Set(x, y, color.RGBA{R: uint8(4 * x), G: uint8(5 * y), B: 128, A: 255})
		}
	}
	var buf bytes.Buffer
	require.NoError(t, jpeg.Encode(&buf, img, &jpeg.Options{Quality: 80}))
	return buf.Bytes()
}
