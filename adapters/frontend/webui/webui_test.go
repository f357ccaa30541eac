package webui_test

import (
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/frontend/webui"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func do(t *testing.T, method, target string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	webui.Handler().ServeHTTP(rec, req)
	return rec.Result()
}

func TestServesPageWithHeaders(t *testing.T) {
	resp := do(t, http.MethodGet, "/", nil)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)

	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "text/html; charset=utf-8", resp.Header.Get("Content-Type"))
	assert.Equal(t, "nosniff", resp.Header.Get("X-Content-Type-Options"))
	assert.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"))
	assert.Equal(t, "no-cache", resp.Header.Get("Cache-Control"))
	assert.Regexp(t, `^"[0-9a-f]{24}"$`, resp.Header.Get("ETag"))
	assert.Equal(t, webui.ContentSecurityPolicy(), resp.Header.Get("Content-Security-Policy"))
	assert.Equal(t, webui.Page(), body)
}

func TestHeadAndConditionalGet(t *testing.T) {
	head := do(t, http.MethodHead, "/", nil)
	body, _ := io.ReadAll(head.Body)
	assert.Equal(t, http.StatusOK, head.StatusCode)
	assert.Empty(t, body)
	assert.Equal(t, "text/html; charset=utf-8", head.Header.Get("Content-Type"))

	etag := head.Header.Get("ETag")
	require.NotEmpty(t, etag)
	again := do(t, http.MethodGet, "/", map[string]string{"If-None-Match": etag})
	assert.Equal(t, http.StatusNotModified, again.StatusCode)

	stale := do(t, http.MethodGet, "/", map[string]string{"If-None-Match": `"other"`})
	assert.Equal(t, http.StatusOK, stale.StatusCode)
}

func TestOnlyRootAndReadMethods(t *testing.T) {
	assert.Equal(t, http.StatusNotFound, do(t, http.MethodGet, "/index.html", nil).StatusCode)
	assert.Equal(t, http.StatusNotFound, do(t, http.MethodGet, "/x/", nil).StatusCode)
	post := do(t, http.MethodPost, "/", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, post.StatusCode)
	assert.Equal(t, "GET, HEAD", post.Header.Get("Allow"))
}

func TestPageHasControlsAndNoExternalReferences(t *testing.T) {
	page := string(webui.Page())
	for _, id := range []string{"status", "preview", "camera", "fps", "quality", "magic-word", "remember-word",
		"start", "stop", "sent", "acks", "ack-rate", "rtt", "skipped", "caption", "caption-meta", "caption-log",
		"errors", "nudge-form", "nudge-message", "nudge-send", "nudge-result"} {
		assert.Contains(t, page, `id="`+id+`"`, "missing #%s", id)
		assert.Contains(t, page, `data-testid="`+id+`"`, "missing data-testid %s", id)
	}
	// Every control has a label.
	for _, id := range []string{"camera", "fps", "quality", "magic-word", "remember-word", "nudge-message"} {
		assert.Contains(t, page, `<label for="`+id+`"`, "no label for #%s", id)
	}
	assert.Contains(t, page, `aria-live`)

	// Nothing leaves the origin: no absolute URL, no protocol-relative one,
	// no external stylesheet, script, font or @import.
	for _, bad := range []string{`(?i)https?://`, `(?i)(src|href|action)\s*=\s*["']?//`, `(?i)<script[^>]*\bsrc=`,
		`(?i)<link[^>]*rel=["']?stylesheet`, `(?i)@import|@font-face|\burl\(`, `(?i)<(iframe|object|embed)\b`} {
		assertNoMatch(t, bad, page)
	}
	// The magic word never goes into the page's own URL or local storage:
	// local storage holds the device id only.
	for _, use := range regexp.MustCompile(`localStorage\.\w+\([^)]*\)?`).FindAllString(page, -1) {
		assert.Regexp(t, `^localStorage\.(getItem|setItem)\(DEVICE_KEY`, use)
	}
	assert.NotContains(t, page, "history.")
}

func TestPolicyPinsInlineCodeByHash(t *testing.T) {
	csp := webui.ContentSecurityPolicy()
	assert.NotContains(t, csp, "unsafe-inline")
	assert.NotContains(t, csp, "unsafe-eval")
	assert.Contains(t, csp, "default-src 'none'")
	assert.Contains(t, csp, "frame-ancestors 'none'")
	assert.Contains(t, csp, "connect-src 'self' ws: wss:")

	blocks := regexp.MustCompile(`(?s)<(script|style)>(.*?)</(?:script|style)>`).FindAllStringSubmatch(string(webui.Page()), -1)
	require.Len(t, blocks, 2, "one inline style and one inline script")
	for _, b := range blocks {
		sum := sha256.Sum256([]byte(b[2]))
		want := b[1] + "-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		assert.Contains(t, csp, want)
	}
	// No other inline code the hashes would not cover.
	assertNoMatch(t, `(?i)<[^>]+\son[a-z]+\s*=`, string(webui.Page())) // inline event handler attribute
	assertNoMatch(t, `(?i)<[^>]+\sstyle\s*=`, string(webui.Page()))    // inline style attribute
	assert.Equal(t, 1, strings.Count(string(webui.Page()), "<script"))
}

// assertNoMatch reports the first match of pattern in text, without dumping
// the whole page into the failure message.
func assertNoMatch(t *testing.T, pattern, text string) {
	t.Helper()
	if loc := regexp.MustCompile(pattern).FindStringIndex(text); loc != nil {
		from, to := max(loc[0]-40, 0), min(loc[1]+40, len(text))
		t.Errorf("page matches %s: ...%s...", pattern, text[from:to])
	}
}
