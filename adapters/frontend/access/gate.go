package access

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/foresight-vision/foresight/adapters/frontend/edgegate"
	"github.com/foresight-vision/foresight/adapters/protocol/wire"
	"github.com/foresight-vision/foresight/ports"
)

// GateConfig configures a Gate.
type GateConfig struct {
	// Verifier checks tokens; nil refuses every token with ErrNoTokenStore.
	Verifier *Verifier
	// MagicWord, when set, is accepted as an admin credential (the
	// original clients' x-magic-word header or magic_word query), unless
	// RequireTokens. Unset and without RequireTokens, a request that
	// presents nothing acts as admin: the server is as open as before.
	MagicWord string
	// RequireTokens accepts tokens only: the word, and nothing, get 401.
	RequireTokens bool
	// PublicPaths pass without any credential (exact match); nil means
	// edgegate.DefaultPublicPaths.
	PublicPaths []string
	// AdminOnly reports whether a path needs an admin credential; nil
	// means none does.
	AdminOnly func(path string) bool
	// Logger gets one debug line per denial (path, remote, reason, token
	// id when known; never a secret); nil means slog.Default().
	Logger *slog.Logger
}

// Gate turns the credential a request presents into a Principal in its
// context, or refuses it. Every credential (Authorization header, the
// access_token and magic_word query parameters, the x-magic-word header) is
// removed from the request before the wrapped handler, or a log, sees it.
type Gate struct {
	cfg    GateConfig
	word   edgegate.Checker
	public map[string]struct{}
}

// NewGate builds a Gate from cfg.
func NewGate(cfg GateConfig) *Gate {
	paths := cfg.PublicPaths
	if paths == nil {
		paths = edgegate.DefaultPublicPaths
	}
	public := make(map[string]struct{}, len(paths))
	for _, p := range paths {
		public[p] = struct{}{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.AdminOnly == nil {
		cfg.AdminOnly = func(string) bool { return false }
	}
	return &Gate{cfg: cfg, word: edgegate.NewChecker(cfg.MagicWord), public: public}
}

// Denial details, as the gate answers them in {"detail": "..."}.
const (
	DetailMissing      = "missing access token: send Authorization: Bearer <token>"
	DetailWordRefused  = "the magic word is not accepted: this server requires access tokens (FORESIGHT_REQUIRE_TOKENS=true); send Authorization: Bearer <token>"
	DetailNotBearer    = "Authorization must be: Bearer <access token>"
	DetailQueryNotHere = "access_token is accepted only on the WebSocket upgrade (GET " + wire.PathStream + "); send Authorization: Bearer <token>"
	DetailAdminOnly    = "this route needs an admin credential"
	detailStoreDown    = "token store unavailable"
	wwwAuthenticate    = `Bearer realm="foresight"`
	wwwAuthenticateBad = `Bearer realm="foresight", error="invalid_token"`
)

// Wrap returns next behind the gate.
func (g *Gate) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		clean := Strip(r)
		if _, ok := g.public[r.URL.Path]; ok {
			next.ServeHTTP(w, clean)
			return
		}
		p, ok := g.authenticate(w, r)
		if !ok {
			return
		}
		if !p.IsAdmin() && g.cfg.AdminOnly(r.URL.Path) {
			g.deny(r, "admin route", p.TokenID)
			WriteDetail(w, http.StatusForbidden, DetailAdminOnly)
			return
		}
		next.ServeHTTP(w, clean.WithContext(WithPrincipal(clean.Context(), p)))
	})
}

// authenticate finds the request's principal, or answers the denial.
func (g *Gate) authenticate(w http.ResponseWriter, r *http.Request) (Principal, bool) {
	if h := r.Header.Get(wire.HeaderAuthorization); h != "" {
		scheme, secret, _ := strings.Cut(strings.TrimSpace(h), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			g.deny(r, "not bearer", "")
			g.unauthorized(w, wwwAuthenticate, DetailNotBearer)
			return Principal{}, false
		}
		return g.verify(w, r, strings.TrimSpace(secret))
	}
	if secret, present := queryToken(r); present {
		if r.URL.Path != wire.PathStream {
			g.deny(r, "access_token outside the upgrade", "")
			g.unauthorized(w, wwwAuthenticate, DetailQueryNotHere)
			return Principal{}, false
		}
		return g.verify(w, r, secret)
	}
	word, supplied := edgegate.Supplied(r)
	switch {
	case g.cfg.RequireTokens && supplied:
		g.deny(r, "magic word while tokens are required", "")
		g.unauthorized(w, wwwAuthenticate, DetailWordRefused)
		return Principal{}, false
	case g.cfg.RequireTokens:
		g.deny(r, "missing", "")
		g.unauthorized(w, wwwAuthenticate, DetailMissing)
		return Principal{}, false
	case g.word.Configured():
		if !g.word.Match(word) {
			reason := "wrong magic word"
			if !supplied {
				reason = "missing"
			}
			g.deny(r, reason, "")
			edgegate.Deny(w) // the Worker's 403 "forbidden", byte for byte
			return Principal{}, false
		}
		return Principal{Role: ports.RoleAdmin, Via: ViaMagicWord}, true
	}
	return Principal{Role: ports.RoleAdmin, Via: ViaOpen}, true
}

func (g *Gate) verify(w http.ResponseWriter, r *http.Request, secret string) (Principal, bool) {
	if g.cfg.Verifier == nil {
		g.deny(r, "no token store", "")
		g.unauthorized(w, wwwAuthenticateBad, ErrNoTokenStore.Error())
		return Principal{}, false
	}
	p, err := g.cfg.Verifier.Verify(r.Context(), secret)
	switch {
	case err == nil:
		return p, true
	case errors.Is(err, ErrTokenStoreUnavailable):
		g.cfg.Logger.Warn("access token check failed", "path", r.URL.Path, "err", err)
		WriteDetail(w, http.StatusServiceUnavailable, detailStoreDown)
	default:
		g.deny(r, err.Error(), "")
		g.unauthorized(w, wwwAuthenticateBad, err.Error())
	}
	return Principal{}, false
}

func (g *Gate) deny(r *http.Request, reason, tokenID string) {
	attrs := []any{"path", r.URL.Path, "remote", r.RemoteAddr, "reason", reason}
	if tokenID != "" {
		attrs = append(attrs, "token_id", tokenID)
	}
	g.cfg.Logger.Debug("access denied", attrs...)
}

func (g *Gate) unauthorized(w http.ResponseWriter, challenge, detail string) {
	w.Header().Set("WWW-Authenticate", challenge)
	WriteDetail(w, http.StatusUnauthorized, detail)
}

// WriteDetail answers FastAPI's error shape, {"detail": "..."}.
func WriteDetail(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"detail": detail})
}

// queryToken returns the access_token query parameter; present is false
// when there is none.
func queryToken(r *http.Request) (secret string, present bool) {
	if r.URL == nil || !strings.Contains(r.URL.RawQuery, "token") && !strings.ContainsAny(r.URL.RawQuery, "%+") {
		return "", false
	}
	q, _ := url.ParseQuery(r.URL.RawQuery)
	vs, ok := q[wire.QueryAccessToken]
	if !ok || len(vs) == 0 {
		return "", false
	}
	return vs[0], true
}

// Strip returns r without any credential: the magic word (edgegate), the
// Authorization header and every access_token query parameter, from a
// shallow copy. r itself is returned when it carries none.
func Strip(r *http.Request) *http.Request {
	r = edgegate.StripWord(r)
	_, inHeader := r.Header[wire.HeaderAuthorization]
	newQuery, inQuery := stripParam(r.URL.RawQuery, wire.QueryAccessToken)
	if !inHeader && !inQuery {
		return r
	}
	r2 := new(http.Request)
	*r2 = *r
	if inHeader {
		r2.Header = r.Header.Clone()
		r2.Header.Del(wire.HeaderAuthorization)
	}
	if inQuery {
		u := *r.URL
		u.RawQuery = newQuery
		u.ForceQuery = false
		r2.URL = &u
		if i := strings.IndexByte(r.RequestURI, '?'); i >= 0 {
			r2.RequestURI = r.RequestURI[:i]
			if q, _ := stripParam(r.RequestURI[i+1:], wire.QueryAccessToken); q != "" {
				r2.RequestURI += "?" + q
			}
		}
	}
	return r2
}

// stripParam drops every name parameter from rawQuery (its key compared
// decoded, as url.ParseQuery would), keeping the others byte for byte.
func stripParam(rawQuery, name string) (out string, found bool) {
	if rawQuery == "" {
		return rawQuery, false
	}
	parts := strings.Split(rawQuery, "&")
	kept := parts[:0]
	for _, p := range parts {
		if isParam(p, name) {
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

func isParam(pair, name string) bool {
	key, _, _ := strings.Cut(pair, "=")
	if key == name {
		return true
	}
	if !strings.ContainsAny(key, "%+") {
		return false
	}
	k, err := url.QueryUnescape(key)
	return err == nil && k == name
}

// RedactURL renders u for printing with every access_token and magic_word
// value replaced by REDACTED and any userinfo password masked.
func RedactURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	c := *u
	if c.RawQuery != "" {
		parts := strings.Split(c.RawQuery, "&")
		for i, p := range parts {
			if isParam(p, wire.QueryAccessToken) {
				parts[i] = wire.QueryAccessToken + "=REDACTED"
			}
		}
		c.RawQuery = strings.Join(parts, "&")
	}
	return edgegate.RedactURL(&c)
}
