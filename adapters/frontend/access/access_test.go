package access_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/frontend/access"
	"github.com/foresight-vision/foresight/ports"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memTokens is an in-memory ports.TokenReader that counts its calls.
type memTokens struct {
	mu      sync.Mutex
	byHash  map[string]ports.AccessToken
	lookups int
	touches int
}

func newMemTokens() *memTokens { return &memTokens{byHash: map[string]ports.AccessToken{}} }

func (m *memTokens) add(role ports.Role, devices ...string) (secret string, tok ports.AccessToken) {
	secret = access.NewSecret()
	tok = ports.AccessToken{ID: access.NewTokenID(), Hash: access.HashSecret(secret), Role: role, Devices: devices}
	m.mu.Lock()
	m.byHash[string(tok.Hash)] = tok
	m.mu.Unlock()
	return secret, tok
}

func (m *memTokens) update(id string, f func(*ports.AccessToken)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, t := range m.byHash {
		if t.ID == id {
			f(&t)
			m.byHash[k] = t
		}
	}
}

func (m *memTokens) TokenByHash(_ context.Context, hash []byte) (ports.AccessToken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.lookups++
	t, ok := m.byHash[string(hash)]
	if !ok {
		return ports.AccessToken{}, ports.ErrTokenNotFound
	}
	return t, nil
}

func (m *memTokens) TouchToken(_ context.Context, id string, at time.Time) error {
	m.mu.Lock()
	m.touches++
	m.mu.Unlock()
	m.update(id, func(t *ports.AccessToken) { t.LastUsed = at })
	return nil
}

func (m *memTokens) counts() (lookups, touches int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lookups, m.touches
}

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func newVerifier(store *memTokens, clk *clock, maxEntries int) *access.Verifier {
	return access.NewVerifier(access.VerifierConfig{
		Tokens: func() ports.TokenReader { return store }, Now: clk.Now, MaxEntries: maxEntries,
	})
}

func TestSecretShape(t *testing.T) {
	s := access.NewSecret()
	assert.True(t, strings.HasPrefix(s, "fst_"))
	assert.Len(t, s, 4+43, "32 bytes in unpadded base64url")
	assert.True(t, access.WellFormed(s))
	assert.NotEqual(t, s, access.NewSecret())
	assert.False(t, access.WellFormed(s[:len(s)-1]))
	assert.False(t, access.WellFormed("fst_"+strings.Repeat("!", 43)))
	assert.True(t, strings.HasPrefix(access.NewTokenID(), "tok_"))
}

func TestVerifierSeesARevocationOnceTheCacheTTLHasPassed(t *testing.T) {
	store, clk := newMemTokens(), &clock{now: time.Unix(1e9, 0)}
	v := newVerifier(store, clk, 0)
	secret, tok := store.add(ports.RoleDevice, "kit")
	p, err := v.Verify(t.Context(), secret)
	require.NoError(t, err)
	assert.Equal(t, access.Principal{TokenID: tok.ID, Role: ports.RoleDevice, Devices: []string{"kit"}, Via: access.ViaToken}, p)

	store.update(tok.ID, func(t *ports.AccessToken) { t.Revoked = clk.Now() })
	clk.Advance(access.CacheTTL - time.Millisecond)
	_, err = v.Verify(t.Context(), secret)
	assert.NoError(t, err, "within the TTL the cached verification stands")
	clk.Advance(time.Millisecond)
	_, err = v.Verify(t.Context(), secret)
	assert.ErrorIs(t, err, access.ErrTokenRevoked)
	assert.LessOrEqual(t, access.CacheTTL, access.MaxCacheTTL)
	assert.LessOrEqual(t, access.MaxCacheTTL, 4*time.Second, "a revocation must reach every instance within 5 s")
}

func TestVerifierCutsALongTTLToTheMaximum(t *testing.T) {
	store, clk := newMemTokens(), &clock{now: time.Unix(1e9, 0)}
	v := access.NewVerifier(access.VerifierConfig{Tokens: func() ports.TokenReader { return store }, Now: clk.Now, TTL: time.Hour})
	secret, tok := store.add(ports.RoleAdmin)
	_, err := v.Verify(t.Context(), secret)
	require.NoError(t, err)
	store.update(tok.ID, func(t *ports.AccessToken) { t.Revoked = clk.Now() })
	clk.Advance(access.MaxCacheTTL)
	_, err = v.Verify(t.Context(), secret)
	assert.ErrorIs(t, err, access.ErrTokenRevoked)
}

func TestVerifierRefusesExpiredUnknownAndMalformed(t *testing.T) {
	store, clk := newMemTokens(), &clock{now: time.Unix(1e9, 0)}
	v := newVerifier(store, clk, 0)
	secret, tok := store.add(ports.RoleDevice, "kit")
	store.update(tok.ID, func(t *ports.AccessToken) { t.Expires = clk.Now().Add(time.Hour) })
	_, err := v.Verify(t.Context(), secret)
	require.NoError(t, err)
	clk.Advance(time.Hour)
	_, err = v.Verify(t.Context(), secret)
	assert.ErrorIs(t, err, access.ErrTokenExpired, "expiry is checked on every use, cached or not")

	_, err = v.Verify(t.Context(), access.NewSecret())
	assert.ErrorIs(t, err, access.ErrInvalidToken)
	before, _ := store.counts()
	for _, bad := range []string{"", "fst_", "hunter2", "fst_" + strings.Repeat("a", 200)} {
		_, err = v.Verify(t.Context(), bad)
		assert.ErrorIs(t, err, access.ErrInvalidToken)
	}
	after, _ := store.counts()
	assert.Equal(t, before, after, "a malformed token is refused without a lookup")
}

func TestVerifierWithoutStoreRefusesEveryToken(t *testing.T) {
	v := access.NewVerifier(access.VerifierConfig{Tokens: func() ports.TokenReader { return nil }})
	_, err := v.Verify(t.Context(), access.NewSecret())
	assert.ErrorIs(t, err, access.ErrNoTokenStore)
}

func TestAFloodOfMadeUpTokensCostsNoMemory(t *testing.T) {
	store, clk := newMemTokens(), &clock{now: time.Unix(1e9, 0)}
	v := newVerifier(store, clk, 16)
	for range 5000 {
		_, err := v.Verify(t.Context(), access.NewSecret())
		require.ErrorIs(t, err, access.ErrInvalidToken)
	}
	assert.Zero(t, v.CachedTokens(), "misses are never cached")

	for range 100 { // more real tokens than the cache holds
		secret, _ := store.add(ports.RoleDevice, "kit")
		_, err := v.Verify(t.Context(), secret)
		require.NoError(t, err)
	}
	assert.LessOrEqual(t, v.CachedTokens(), 16)
}

func TestVerifierWritesLastUsedAtMostOnceAMinute(t *testing.T) {
	store, clk := newMemTokens(), &clock{now: time.Unix(1e9, 0)}
	v := newVerifier(store, clk, 0)
	secret, _ := store.add(ports.RoleDevice, "kit")
	for range 120 { // two minutes, a request a second
		_, err := v.Verify(t.Context(), secret)
		require.NoError(t, err)
		clk.Advance(time.Second)
	}
	lookups, touches := store.counts()
	assert.Equal(t, 2, touches, "at 0 s and at 60 s")
	assert.Less(t, lookups, 120, "the cache answers most checks")
}

func TestLimiterBurstThenRetryAfterThenRefill(t *testing.T) {
	clk := &clock{now: time.Unix(1e9, 0)}
	l := access.NewLimiter(6, clk.Now)
	for i := range 6 {
		ok, _ := l.Allow("tok_a")
		require.True(t, ok, "call %d of the burst", i)
	}
	ok, wait := l.Allow("tok_a")
	assert.False(t, ok)
	assert.Equal(t, 10*time.Second, wait, "one call every 10 s at 6 a minute")
	ok, _ = l.Allow("tok_b")
	assert.True(t, ok, "another credential has its own bucket")
	clk.Advance(10 * time.Second)
	ok, _ = l.Allow("tok_a")
	assert.True(t, ok)
}

func TestLimiterTableStaysBounded(t *testing.T) {
	clk := &clock{now: time.Unix(1e9, 0)}
	l := access.NewLimiter(6, clk.Now)
	for i := range access.DefaultMaxLimitedCredentials + 500 {
		l.Allow("tok_" + strings.Repeat("x", i%7) + time.Duration(i).String())
	}
	assert.LessOrEqual(t, l.Len(), access.DefaultMaxLimitedCredentials)
}

// seen is what the handler behind the gate received.
type seen struct {
	principal access.Principal
	ok        bool
	query     string
	uri       string
	header    http.Header
}

func serveGate(t *testing.T, cfg access.GateConfig, r *http.Request) (*httptest.ResponseRecorder, *seen) {
	t.Helper()
	var got *seen
	h := access.NewGate(cfg).Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := access.FromContext(r.Context())
		got = &seen{principal: p, ok: ok, query: r.URL.RawQuery, uri: r.RequestURI, header: r.Header.Clone()}
		w.WriteHeader(http.StatusNoContent)
	}))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w, got
}

func detail(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	assert.Equal(t, "application/json", w.Header().Get("Content-Type"))
	var body struct{ Detail string }
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &body))
	return body.Detail
}

func TestGate(t *testing.T) {
	store := newMemTokens()
	device, devTok := store.add(ports.RoleDevice, "kit")
	admin, _ := store.add(ports.RoleAdmin)
	verifier := access.NewVerifier(access.VerifierConfig{Tokens: func() ports.TokenReader { return store }})
	base := access.GateConfig{Verifier: verifier, MagicWord: "open-sesame",
		AdminOnly: func(p string) bool { return p == "/status" }}
	required := base
	required.RequireTokens = true
	open := base
	open.MagicWord = ""

	req := func(target string, header ...string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, target, nil)
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		return r
	}

	t.Run("DeviceTokenInTheHeader", func(t *testing.T) {
		w, got := serveGate(t, base, req("/captions?device=kit", "Authorization", "Bearer "+device))
		require.Equal(t, http.StatusNoContent, w.Code)
		assert.Equal(t, access.Principal{TokenID: devTok.ID, Role: ports.RoleDevice, Devices: []string{"kit"}, Via: access.ViaToken}, got.principal)
		assert.Empty(t, got.header.Get("Authorization"), "the token never reaches the handler")
	})
	t.Run("AccessTokenQueryOnTheUpgradeIsStripped", func(t *testing.T) {
		w, got := serveGate(t, base, req("/vision/stream?device=kit&access_token="+device+"&fps=2"))
		require.Equal(t, http.StatusNoContent, w.Code)
		assert.Equal(t, "kit", got.principal.Devices[0])
		assert.Equal(t, "device=kit&fps=2", got.query)
		assert.Equal(t, "/vision/stream?device=kit&fps=2", got.uri)
	})
	t.Run("AccessTokenQueryElsewhereIs401", func(t *testing.T) {
		w, got := serveGate(t, base, req("/captions?access_token="+device))
		assert.Nil(t, got)
		assert.Equal(t, http.StatusUnauthorized, w.Code)
		assert.Equal(t, access.DetailQueryNotHere, detail(t, w))
		assert.NotContains(t, w.Body.String(), device)
	})
	t.Run("BadTokensAre401WithADetail", func(t *testing.T) {
		for _, h := range []string{"Bearer " + access.NewSecret(), "Bearer nonsense", "Basic Zm9vOmJhcg==", "Bearer"} {
			w, got := serveGate(t, base, req("/captions", "Authorization", h))
			assert.Nil(t, got, h)
			assert.Equal(t, http.StatusUnauthorized, w.Code, h)
			assert.NotEmpty(t, detail(t, w))
			assert.Contains(t, w.Header().Get("WWW-Authenticate"), "Bearer")
		}
	})
	t.Run("DeviceTokenOnAnAdminRouteIs403", func(t *testing.T) {
		w, got := serveGate(t, base, req("/status", "Authorization", "Bearer "+device))
		assert.Nil(t, got)
		assert.Equal(t, http.StatusForbidden, w.Code)
		assert.Equal(t, access.DetailAdminOnly, detail(t, w))
		w, got = serveGate(t, base, req("/status", "Authorization", "Bearer "+admin))
		assert.Equal(t, http.StatusNoContent, w.Code)
		assert.True(t, got.principal.IsAdmin())
	})
	t.Run("MagicWordIsAnAdminCredential", func(t *testing.T) {
		for _, r := range []*http.Request{req("/status", "x-magic-word", "open-sesame"), req("/status?magic_word=open-sesame")} {
			w, got := serveGate(t, base, r)
			require.Equal(t, http.StatusNoContent, w.Code)
			assert.Equal(t, access.Principal{Role: ports.RoleAdmin, Via: access.ViaMagicWord}, got.principal)
			assert.Empty(t, got.query)
			assert.Empty(t, got.header.Get("x-magic-word"))
		}
	})
	t.Run("MissingOrWrongWordIsTheWorkersForbidden", func(t *testing.T) {
		for _, r := range []*http.Request{req("/captions"), req("/captions", "x-magic-word", "nope")} {
			w, got := serveGate(t, base, r)
			assert.Nil(t, got)
			assert.Equal(t, http.StatusForbidden, w.Code)
			assert.Equal(t, "text/plain; charset=utf-8", w.Header().Get("Content-Type"))
			body, _ := io.ReadAll(w.Body)
			assert.Equal(t, "forbidden", string(body))
		}
	})
	t.Run("RequireTokensRefusesTheWordWithADetail", func(t *testing.T) {
		w, got := serveGate(t, required, req("/captions", "x-magic-word", "open-sesame"))
		assert.Nil(t, got)
		assert.Equal(t, http.StatusUnauthorized, w.Code)
		assert.Equal(t, access.DetailWordRefused, detail(t, w))
		w, _ = serveGate(t, required, req("/captions"))
		assert.Equal(t, http.StatusUnauthorized, w.Code)
		assert.Equal(t, access.DetailMissing, detail(t, w))
		w, _ = serveGate(t, required, req("/captions", "Authorization", "Bearer "+device))
		assert.Equal(t, http.StatusNoContent, w.Code)
	})
	t.Run("NoGateConfiguredIsOpenAsBefore", func(t *testing.T) {
		w, got := serveGate(t, open, req("/captions"))
		require.Equal(t, http.StatusNoContent, w.Code)
		assert.Equal(t, access.Principal{Role: ports.RoleAdmin, Via: access.ViaOpen}, got.principal)
		w, got = serveGate(t, open, req("/captions", "Authorization", "Bearer "+device))
		require.Equal(t, http.StatusNoContent, w.Code)
		assert.False(t, got.principal.IsAdmin(), "a presented token scopes even on an open server")
	})
	t.Run("PublicPathsPassWithCredentialsStripped", func(t *testing.T) {
		w, got := serveGate(t, required, req("/health?access_token=x&magic_word=y", "Authorization", "Bearer z"))
		require.Equal(t, http.StatusNoContent, w.Code)
		assert.False(t, got.ok)
		assert.Empty(t, got.query)
		assert.Empty(t, got.header.Get("Authorization"))
	})
}

func TestPrincipalScope(t *testing.T) {
	dev := access.Principal{Role: ports.RoleDevice, Devices: []string{"kit", "kit-2"}}
	assert.True(t, dev.MaySee("kit-2"))
	assert.False(t, dev.MaySee("bob"))
	assert.Equal(t, []string{"kit", "kit-2"}, dev.DevicesFilter())
	assert.Equal(t, []string{}, access.Principal{Role: ports.RoleDevice}.DevicesFilter(), "no devices sees nothing, not everything")
	admin := access.Principal{Role: ports.RoleAdmin}
	assert.True(t, admin.MaySee("bob"))
	assert.Nil(t, admin.DevicesFilter())
}

func TestRedactURL(t *testing.T) {
	u, err := http.NewRequest(http.MethodGet, "ws://h/vision/stream?device=kit&access_token=fst_abc&magic_word=w", nil)
	require.NoError(t, err)
	got := access.RedactURL(u.URL)
	assert.Equal(t, "ws://h/vision/stream?device=kit&access_token=REDACTED&magic_word=REDACTED", got)
}
