// Package webui serves the live page: one self-contained HTML document
// (inline CSS and JavaScript, no external request of any kind) that streams a
// camera to /vision/stream and shows the acks and captions that come back,
// with a form that posts a test nudge to /poke/send.
//
// The page is embedded in the binary. Its Content-Security-Policy allows
// exactly the page's own inline script and style (by SHA-256 hash, computed
// at start-up), so no injected markup can run code even though nothing is
// loaded from a file.
package webui

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"regexp"
	"strings"
	"time"
)

//go:embed index.html
var page []byte

// Page returns a copy of the embedded HTML document.
func Page() []byte { return bytes.Clone(page) }

// inlineBlock matches the body of each inline <script> or <style> element;
// the page has no attributes on either tag, which keeps this exact.
var inlineBlock = regexp.MustCompile(`(?s)<(script|style)>(.*?)</(?:script|style)>`)

var (
	etag          = computeETag(page)
	contentPolicy = computePolicy(page)
)

func computeETag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:12]) + `"`
}

// computePolicy builds the Content-Security-Policy. connect-src names the
// ws: and wss: schemes because browsers that predate CSP 3 do not let 'self'
// cover WebSockets; with scripts pinned by hash nothing else can open one.
func computePolicy(b []byte) string {
	hashes := map[string][]string{}
	for _, m := range inlineBlock.FindAllSubmatch(b, -1) {
		sum := sha256.Sum256(m[2])
		kind := string(m[1])
		hashes[kind] = append(hashes[kind], "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
	}
	directives := []string{
		"default-src 'none'",
		"script-src " + strings.Join(hashes["script"], " "),
		"style-src " + strings.Join(hashes["style"], " "),
		"connect-src 'self' ws: wss:",
		"img-src 'self' blob: data:",
		"media-src 'self' blob: mediastream:",
		"base-uri 'none'",
		"form-action 'none'",
		"frame-ancestors 'none'",
		"object-src 'none'",
	}
	return strings.Join(directives, "; ")
}

// ContentSecurityPolicy returns the policy the handler sends with the page.
func ContentSecurityPolicy() string { return contentPolicy }

// Handler serves the page at "/" for GET and HEAD; other paths get 404 and
// other methods 405. It answers conditional requests with 304 (the ETag is
// a hash of the page) and asks caches to revalidate, so a new binary's page
// is picked up at once.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", contentPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Permissions-Policy", "camera=(self), microphone=(), geolocation=()")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", etag)
	// ServeContent handles HEAD, If-None-Match and ranges; a zero modtime
	// leaves Last-Modified out, the ETag is the validator.
	http.ServeContent(w, r, "index.html", time.Time{}, bytes.NewReader(page))
}
