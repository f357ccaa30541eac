package webui_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/foresight-vision/foresight/adapters/frontend/edgegate"
	"github.com/foresight-vision/foresight/adapters/frontend/webui"
)

// statusServer serves the page and a /status body (the shape app serves),
// behind the magic word gate when one is given.
func statusServer(t *testing.T, magicWord, body string) string {
	t.Helper()
	status := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, body)
	})
	router := http.NewServeMux()
	router.Handle("GET /{$}", webui.Handler())
	router.Handle("GET /status", status)
	var root http.Handler = router
	if magicWord != "" {
		root = edgegate.New(edgegate.Config{MagicWord: magicWord, PublicPaths: []string{"/"}, Logger: slog.New(slog.DiscardHandler)}).Wrap(router)
	}
	ts := httptest.NewServer(root)
	t.Cleanup(ts.Close)
	return ts.URL
}

func TestLivePageShowsTheModel(t *testing.T) {
	ctx, exceptions := browser(t)

	url := statusServer(t, "", `{"backend":"openai","model":"gemma3:4b","base_url_host":"127.0.0.1:11434","captions":true,"chunk_seconds":1,"max_frames_per_chunk":6,"version":"v0"}`)
	open(t, ctx, url+"/")
	waitJS(t, ctx, "model shown", `document.getElementById("model").dataset.state === "on"`)
	assert.Equal(t, "model: gemma3:4b (openai at 127.0.0.1:11434, up to 6 frames per chunk)", text(t, ctx, "model"))

	url = statusServer(t, "", `{"backend":"none","model":"","base_url_host":"","captions":false,"chunk_seconds":1,"max_frames_per_chunk":6,"version":"v0"}`)
	open(t, ctx, url+"/")
	waitJS(t, ctx, "captions off shown", `document.getElementById("model").dataset.state === "off"`)
	assert.Equal(t, "captions off: no model configured", text(t, ctx, "model"))

	// Behind the magic word, the page asks for it, then shows the model.
	url = statusServer(t, "w", `{"backend":"gemma3","model":"foresight-gemma3-vlm/Gemma3VLMSession","base_url_host":"","captions":true,"chunk_seconds":1,"max_frames_per_chunk":0,"version":"v0"}`)
	open(t, ctx, url+"/")
	waitJS(t, ctx, "locked", `document.getElementById("model").dataset.state === "locked"`)
	steps(t, ctx, "enter the word", setValue("magic-word", "w"))
	waitJS(t, ctx, "model shown", `document.getElementById("model").dataset.state === "on"`)
	assert.Equal(t, "model: foresight-gemma3-vlm/Gemma3VLMSession (gemma3, all frames per chunk)", text(t, ctx, "model"))
	assert.Empty(t, exceptions(), "uncaught exceptions in the page")
}
