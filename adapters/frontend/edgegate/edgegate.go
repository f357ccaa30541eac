// Package edgegate is the magic-word gate of the original's Cloudflare Worker,
// as HTTP middleware: every path except a few public ones needs a shared
// secret word, in header x-magic-word or query parameter magic_word.
//
// The word is compared in constant time (both sides are hashed first, so the
// comparison does not leak the length either), and it is removed from the
// request before the wrapped handler sees it, so nothing downstream (access
// logs, proxies, upstreams) can record it.
//
// The same gate serves two deployments: in-process in the server, where an
// empty word switches the gate off, and in the standalone gateway
// (adapters/frontend/gateway), which sets Config.Required so an unconfigured word
// denies everything, as the Worker did.
package edgegate

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/foresight-vision/foresight/adapters/protocol/wire"
)

const (
	// Header is the request header that may carry the magic word.
	Header = wire.HeaderMagicWord
	// QueryParam is the query parameter that may carry the magic word.
	QueryParam = wire.QueryMagicWord
	// ForbiddenBody is the body of a denial, exactly as the Worker sent it.
	ForbiddenBody = "forbidden"
)

// DefaultPublicPaths are the paths open without the word when
// Config.PublicPaths is nil.
var DefaultPublicPaths = []string{wire.PathHealth, "/metrics"}

// Config configures a Gate.
type Config struct {
	// MagicWord is the shared secret. Empty switches the gate off (everything
	// passes) unless Required is set.
	MagicWord string
	// Required makes an empty MagicWord deny every non-public path instead of
	// switching the gate off. The standalone gateway sets it (the Worker
	// answered 403 when no word was configured); the in-process gate does not.
	Required bool
	// PublicPaths are the request paths (URL.Path, decoded) that pass without
	// the word. Matching is exact and case-sensitive: "/health" is public,
	// "/health/" and "/health/x" are not. nil means DefaultPublicPaths; an
	// empty non-nil slice means no public path.
	PublicPaths []string
	// Logger receives one debug line per denial (path, remote address,
	// reason; never the supplied word). Debug, not info, so that strangers
	// probing the server cannot flood the logs. nil means slog.Default().
	Logger *slog.Logger
}

// Gate checks the magic word on requests. Build it with New; it is safe for
// concurrent use.
type Gate struct {
	check  Checker
	off    bool
	public map[string]struct{}
	log    *slog.Logger
}

// New builds a Gate from cfg.
func New(cfg Config) *Gate {
	paths := cfg.PublicPaths
	if paths == nil {
		paths = DefaultPublicPaths
	}
	public := make(map[string]struct{}, len(paths))
	for _, p := range paths {
		public[p] = struct{}{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Gate{
		check:  NewChecker(cfg.MagicWord),
		off:    cfg.MagicWord == "" && !cfg.Required,
		public: public,
		log:    log,
	}
}

// Enabled reports whether the gate checks anything at all.
func (g *Gate) Enabled() bool { return !g.off }

// IsPublic reports whether path passes without the word.
func (g *Gate) IsPublic(path string) bool {
	_, ok := g.public[path]
	return ok
}

// Wrap returns next behind the gate. Allowed requests reach next with the
// magic word removed from both the header and the query (on public paths
// too); denied requests get 403 "forbidden" and never reach next. When the
// gate is off, requests pass unchanged except that a supplied word is still
// removed.
func (g *Gate) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.off && !g.IsPublic(r.URL.Path) {
			word, _ := Supplied(r)
			if !g.check.Match(word) {
				reason := "wrong"
				if word == "" {
					reason = "missing"
				}
				g.log.Debug("edge gate denied request",
					"path", r.URL.Path, "remote", r.RemoteAddr, "reason", reason)
				Deny(w)
				return
			}
		}
		next.ServeHTTP(w, StripWord(r))
	})
}

// Middleware is New(cfg).Wrap, in the func(http.Handler) http.Handler shape.
func Middleware(cfg Config) func(http.Handler) http.Handler {
	return New(cfg).Wrap
}

// Checker compares a supplied word with the configured one in constant time.
// The zero value matches nothing.
type Checker struct {
	sum [sha256.Size]byte
	set bool
}

// NewChecker returns a Checker for word. An empty word matches nothing.
func NewChecker(word string) Checker {
	if word == "" {
		return Checker{}
	}
	return Checker{sum: sha256.Sum256([]byte(word)), set: true}
}

// Configured reports whether a non-empty word was given to NewChecker.
func (c Checker) Configured() bool { return c.set }

// Match reports whether supplied equals the configured word. It is false when
// no word is configured or supplied is empty. Both sides are hashed so the
// time taken depends on neither the word nor its length.
func (c Checker) Match(supplied string) bool {
	got := sha256.Sum256([]byte(supplied))
	eq := subtle.ConstantTimeCompare(got[:], c.sum[:]) == 1
	return eq && c.set && supplied != ""
}

// Supplied returns the word the client sent: the x-magic-word header if
// non-empty, otherwise the magic_word query parameter. The header wins when
// both are present, as in the Worker. ok is false when neither was sent.
func Supplied(r *http.Request) (word string, ok bool) {
	if v := r.Header.Get(Header); v != "" {
		return v, true
	}
	if r.URL == nil || !mayHoldWord(r.URL.RawQuery) {
		return "", false
	}
	q, _ := url.ParseQuery(r.URL.RawQuery) // keep the pairs that parse, as net/http does
	if vs, has := q[QueryParam]; has {
		if len(vs) > 0 {
			return vs[0], vs[0] != ""
		}
	}
	return "", false
}

// StripWord returns r without the magic word: the x-magic-word header and
// every magic_word query parameter are removed from a shallow copy (URL,
// RequestURI and Header are replaced, never modified in place). Other query
// parameters keep their order and encoding. r itself is returned when it
// carries no word.
func StripWord(r *http.Request) *http.Request {
	_, inHeader := r.Header[http.CanonicalHeaderKey(Header)]
	rawQuery := ""
	if r.URL != nil {
		rawQuery = r.URL.RawQuery
	}
	newQuery, inQuery := stripQuery(rawQuery)
	if !inHeader && !inQuery {
		return r
	}
	r2 := new(http.Request)
	*r2 = *r
	if inHeader {
		r2.Header = r.Header.Clone()
		r2.Header.Del(Header)
	}
	if inQuery {
		u := *r.URL
		u.RawQuery = newQuery
		u.ForceQuery = false
		r2.URL = &u
		if i := strings.IndexByte(r.RequestURI, '?'); i >= 0 {
			r2.RequestURI = r.RequestURI[:i]
			if q, _ := stripQuery(r.RequestURI[i+1:]); q != "" {
				r2.RequestURI += "?" + q
			}
		}
	}
	return r2
}

// RedactURL renders u for logging with every magic_word query value replaced
// by "REDACTED" and any userinfo password masked.
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	c.RawQuery = RedactQuery(u.RawQuery)
	return c.Redacted()
}

// RedactQuery returns rawQuery with every magic_word value replaced by
// "REDACTED"; other parameters are left byte for byte.
func RedactQuery(rawQuery string) string {
	if !mayHoldWord(rawQuery) {
		return rawQuery
	}
	parts := strings.Split(rawQuery, "&")
	for i, p := range parts {
		if isWordParam(p) {
			parts[i] = QueryParam + "=REDACTED"
		}
	}
	return strings.Join(parts, "&")
}

// Deny writes the Worker's denial: 403, text/plain, body "forbidden".
func Deny(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusForbidden)
	_, _ = w.Write([]byte(ForbiddenBody))
}

// stripQuery drops every magic_word parameter from rawQuery, keeping the
// others byte for byte and in order. found says whether anything was dropped.
func stripQuery(rawQuery string) (out string, found bool) {
	if !mayHoldWord(rawQuery) {
		return rawQuery, false
	}
	parts := strings.Split(rawQuery, "&")
	kept := parts[:0]
	for _, p := range parts {
		if isWordParam(p) {
			found = true
			continue
		}
		kept = append(kept, p)
	}
	if !found {
		return rawQuery, false
	}
	return strings.Join(kept, "&"), true
}

// mayHoldWord is a cheap pre-check: false means rawQuery surely has no
// magic_word parameter, in plain or percent-encoded form.
func mayHoldWord(rawQuery string) bool {
	return strings.Contains(rawQuery, QueryParam) || strings.ContainsAny(rawQuery, "%+")
}

// isWordParam reports whether one key=value pair of a raw query is the magic
// word, comparing the decoded key as url.ParseQuery would (so "magic%5Fword"
// counts too).
func isWordParam(pair string) bool {
	key, _, _ := strings.Cut(pair, "=")
	if key == QueryParam {
		return true
	}
	if !strings.ContainsAny(key, "%+") {
		return false
	}
	k, err := url.QueryUnescape(key)
	return err == nil && k == QueryParam
}
