package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/inference/openai/openaitest"
	"github.com/foresight-vision/foresight/app"
)

// The replay tool, as the original's replay client is used, against a server
// running FORESIGHT_INFERENCE_BACKEND=openai on the openaitest double: the
// tool gets captions, and every request carries at most
// FORESIGHT_MAX_FRAMES_PER_CHUNK images, each exactly one of the files sent.
func TestReplayGetsCaptionsFromAnOpenAICompatibleServer(t *testing.T) {
	fake := openaitest.NewServer()
	t.Cleanup(fake.Close)
	env := map[string]string{
		"FORESIGHT_INFERENCE_BACKEND":    "openai",
		"FORESIGHT_OPENAI_BASE_URL":      fake.URL,
		"FORESIGHT_OPENAI_MODEL":         "gemma3:4b",
		"FORESIGHT_MAX_FRAMES_PER_CHUNK": "4",
		"VISION_CHUNK_SECONDS":           "0.25",
		"FORESIGHT_DATABASE_URL":         "none",
	}
	cfg, err := app.LoadConfig([]string{"--addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, nil)
	require.NoError(t, err)
	inst, err := app.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, inst.Stop(ctx))
	})

	dir, files := writeTestJPEGs(t, 30)
	var out bytes.Buffer
	code := run(context.Background(), []string{"replay", "--url", inst.URL(), "--frames", dir, "--fps", "20", "--log-every", "0"}, &out, &out)
	require.Equal(t, 0, code, out.String())
	assert.Regexp(t, `inference \{'frame': \d+, 'bytes': \d+, 'caption': 'caption 1', `, out.String())
	assert.Contains(t, out.String(), `"sent_frames": 30`)

	sent := map[string]bool{}
	for _, f := range files {
		sent[string(f)] = true
	}
	requests := fake.Requests()
	require.NotEmpty(t, requests)
	for i, req := range requests {
		assert.NotEmpty(t, req.Images)
		assert.LessOrEqual(t, len(req.Images), 4, "request %d", i)
		for _, img := range req.Images {
			assert.True(t, sent[string(img)], "request %d carries an image the client did not send", i)
		}
	}
	assert.Empty(t, fake.Rejected())
	assert.False(t, strings.Contains(out.String(), "inference_error"), out.String())
}

// writeTestJPEGs writes n distinct small JPEGs, named in order.
func writeTestJPEGs(t *testing.T, n int) (string, [][]byte) {
	t.Helper()
	dir := t.TempDir()
	var all [][]byte
	for i := range n {
		img := image.NewRGBA(image.Rect(0, 0, 32, 24))
		for x := range 32 {
			for y := range 24 {
				img.Set(x, y, color.RGBA{uint8(i * 8), uint8(x * 8), uint8(y * 10), 255})
			}
		}
		var b bytes.Buffer
		require.NoError(t, jpeg.Encode(&b, img, &jpeg.Options{Quality: 80}))
		require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.jpg", i)), b.Bytes(), 0o600))
		all = append(all, b.Bytes())
	}
	return dir, all
}
