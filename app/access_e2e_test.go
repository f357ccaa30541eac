package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/frontend/access"
	"github.com/foresight-vision/foresight/adapters/protocol/visionclient"
	"github.com/foresight-vision/foresight/adapters/store/postgres/pgtest"
	"github.com/foresight-vision/foresight/app"
	"github.com/foresight-vision/foresight/ports"
)

// These tests run the whole server over loopback with real stores and
// tokens issued the way `foresight token create` issues them.

// issue stores a new token in the database at databaseURL and returns its
// secret and id.
func issue(t *testing.T, databaseURL string, role ports.Role, expires time.Time, devices ...string) (secret, id string) {
	t.Helper()
	store, err := app.OpenTokenStore(t.Context(), databaseURL)
	require.NoError(t, err)
	defer func() { require.NoError(t, store.Close()) }()
	secret = access.NewSecret()
	tok := ports.AccessToken{ID: access.NewTokenID(), Hash: access.HashSecret(secret), Role: role,
		Devices: append([]string{}, devices...), Created: time.Now(), Expires: expires}
	require.NoError(t, store.CreateToken(t.Context(), tok))
	return secret, tok.ID
}

func revoke(t *testing.T, databaseURL, id string) {
	t.Helper()
	store, err := app.OpenTokenStore(t.Context(), databaseURL)
	require.NoError(t, err)
	defer func() { require.NoError(t, store.Close()) }()
	require.NoError(t, store.RevokeToken(t.Context(), id, time.Now()))
}

// recorder keeps every response body a test saw, to look for secrets.
type recorder struct {
	mu     sync.Mutex
	bodies bytes.Buffer
}

// call makes one request with header pairs and returns status and body.
func (rec *recorder) call(t *testing.T, method, target string, header ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, target, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	rec.mu.Lock()
	rec.bodies.Write(body)
	for k, vs := range resp.Header {
		rec.bodies.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
	}
	rec.mu.Unlock()
	return resp.StatusCode, string(body), resp.Header
}

func detailOf(t *testing.T, body string) string {
	t.Helper()
	var d struct{ Detail string }
	require.NoError(t, json.Unmarshal([]byte(body), &d), body)
	require.NotEmpty(t, d.Detail, body)
	return d.Detail
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startWithLog starts a server whose debug log goes to logs.
func startWithLog(t *testing.T, logs *syncBuffer, env ...string) *app.Instance {
	t.Helper()
	base := []string{"MODAL_TOKEN_ID", "ak-server", "MODAL_TOKEN_SECRET", "as-server", "VISION_CHUNK_SECONDS", "0"}
	cfg, err := app.LoadConfig([]string{"--addr", "127.0.0.1:0"}, envOf(append(base, env...)...), nil)
	require.NoError(t, err)
	inst, err := app.Start(context.Background(), cfg, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	require.NoError(t, err)
	return inst
}

// streamCaption streams with opts until an ack carries a caption.
func streamCaption(t *testing.T, target string, opts visionclient.Options) {
	t.Helper()
	opts.HandshakeTimeout = 10 * time.Second
	conn, err := visionclient.Dial(context.Background(), target, opts)
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()
	for frames := 0; ; frames++ {
		require.Less(t, frames, 20_000, "no caption came back")
		if sendFrame(t, conn).HasCaption {
			return
		}
	}
}

func devicesOf(t *testing.T, rec *recorder, target string, header ...string) []string {
	t.Helper()
	status, body, _ := rec.call(t, http.MethodGet, target, header...)
	require.Equal(t, http.StatusOK, status, body)
	var page struct {
		Captions []struct{ Device string } `json:"captions"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &page))
	seen := map[string]bool{}
	var out []string
	for _, c := range page.Captions {
		if !seen[c.Device] {
			seen[c.Device] = true
			out = append(out, c.Device)
		}
	}
	return out
}

func TestDeviceTokensAreScopedEverywhere(t *testing.T) {
	captionFake(t)
	db := "sqlite:" + filepath.Join(t.TempDir(), "foresight.db")
	logs := &syncBuffer{}
	rec := &recorder{}
	inst := startWithLog(t, logs, "FORESIGHT_DATABASE_URL", db, "MAGIC_WORD", "open sesame", "FORESIGHT_METRICS", "true",
		"FORESIGHT_NUDGES", "rules", "FORESIGHT_NUDGE_RULES", rulesFile(t, donutRules), "FORESIGHT_MANUAL_RUNS_PER_MINUTE", "2")
	defer stopInstance(t, inst)
	alice, aliceID := issue(t, db, ports.RoleDevice, time.Time{}, "alice")
	twoDevices, _ := issue(t, db, ports.RoleDevice, time.Time{}, "carol", "carol-2")
	admin, _ := issue(t, db, ports.RoleAdmin, time.Time{})
	expired, _ := issue(t, db, ports.RoleDevice, time.Now().Add(-time.Minute), "alice")
	secrets := []string{alice, twoDevices, admin, expired}
	bearer := func(s string) []string { return []string{"Authorization", "Bearer " + s} }
	base := inst.URL()

	// Streaming: alice's token streams as its only device with no device=
	// (header, and the access_token query a browser uses); the admin token
	// streams as bob.
	streamCaption(t, wsURL(inst, ""), visionclient.Options{Token: alice})
	streamCaption(t, wsURL(inst, "?access_token="+url.QueryEscape(alice)), visionclient.Options{})
	streamCaption(t, wsURL(inst, "?device=bob"), visionclient.Options{Token: admin})
	require.Eventually(t, func() bool {
		return len(devicesOf(t, rec, base+"/captions", bearer(admin)...)) == 2
	}, 10*time.Second, 20*time.Millisecond, "both devices' captions are stored")

	for _, c := range []struct{ name, method, target string }{
		{"stream as bob", http.MethodGet, base + "/vision/stream?device=bob"},
		{"stream as bob by header", http.MethodGet, base + "/vision/stream?x=1"},
		{"read bob's captions", http.MethodGet, base + "/captions?device=bob"},
		{"read bob's decisions", http.MethodGet, base + "/interventions?device=bob"},
		{"run bob's evaluation", http.MethodPost, base + "/interventions/run?device=bob"},
		{"status", http.MethodGet, base + "/status"},
		{"poke", http.MethodPost, base + "/poke/send"},
		{"export bob", http.MethodGet, base + "/devices/bob/export"},
		{"delete bob's memory", http.MethodDelete, base + "/devices/bob/memory"},
		{"set bob's Poke key", http.MethodPut, base + "/devices/bob/poke-key"},
		{"set its own Poke key (admin only)", http.MethodPut, base + "/devices/alice/poke-key"},
	} {
		header := bearer(alice)
		if c.name == "stream as bob by header" {
			header = append(header, "x-foresight-device", "bob")
		}
		status, body, _ := rec.call(t, c.method, c.target, header...)
		assert.Equal(t, http.StatusForbidden, status, "%s: %s", c.name, body)
		assert.NotEmpty(t, detailOf(t, body), c.name)
	}

	askBob, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/ask",
		strings.NewReader(`{"device":"bob","question":"what did bob see?"}`))
	require.NoError(t, err)
	askBob.Header.Set("Authorization", "Bearer "+alice)
	askBob.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(askBob)
	require.NoError(t, err)
	askBody, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "ask about bob: %s", askBody)
	assert.NotEmpty(t, detailOf(t, string(askBody)), "ask about bob")

	assert.Equal(t, []string{"alice"}, devicesOf(t, rec, base+"/captions", bearer(alice)...), "a list without device= is the token's devices only")
	assert.Equal(t, []string{"alice"}, devicesOf(t, rec, base+"/captions?device=alice", bearer(alice)...))
	assert.Equal(t, []string{"bob"}, devicesOf(t, rec, base+"/captions?device=bob", bearer(admin)...), "admin reads any device")
	assert.Equal(t, []string{"bob"}, devicesOf(t, rec, base+"/captions?device=bob", "x-magic-word", "open sesame"), "the magic word is admin")
	assert.ElementsMatch(t, []string{"alice", "bob"}, devicesOf(t, rec, base+"/captions?magic_word=open%20sesame"))
	status, body, _ := rec.call(t, http.MethodGet, base+"/interventions", bearer(alice)...)
	assert.Equal(t, http.StatusOK, status, body)
	status, _, _ = rec.call(t, http.MethodGet, base+"/status", bearer(admin)...)
	assert.Equal(t, http.StatusOK, status)

	status, body, _ = rec.call(t, http.MethodGet, base+"/vision/stream", bearer(twoDevices)...)
	assert.Equal(t, http.StatusBadRequest, status)
	assert.Contains(t, detailOf(t, body), "device=", "several devices: name one")

	status, body, _ = rec.call(t, http.MethodGet, base+"/me", bearer(alice)...)
	require.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"role":"device","via":"token","token_id":"`+aliceID+`","devices":["alice"]}`, body)

	status, body, hdr := rec.call(t, http.MethodGet, base+"/captions", bearer(expired)...)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, "access token expired", detailOf(t, body))
	assert.Contains(t, hdr.Get("WWW-Authenticate"), "Bearer")
	status, body, _ = rec.call(t, http.MethodGet, base+"/captions", bearer(access.NewSecret())...)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, "invalid access token", detailOf(t, body))

	// Manual runs are limited per token: 2 a minute, then 429.
	for range 2 {
		status, body, _ = rec.call(t, http.MethodPost, base+"/interventions/run?device=alice", bearer(alice)...)
		assert.NotEqual(t, http.StatusTooManyRequests, status, body)
	}
	status, body, hdr = rec.call(t, http.MethodPost, base+"/interventions/run?device=alice", bearer(alice)...)
	assert.Equal(t, http.StatusTooManyRequests, status, body)
	assert.NotEmpty(t, hdr.Get("Retry-After"))
	status, body, _ = rec.call(t, http.MethodPost, base+"/interventions/run?device=bob", bearer(admin)...)
	assert.NotEqual(t, http.StatusTooManyRequests, status, "another credential has its own share: %s", body)

	_, metricsBody, _ := rec.call(t, http.MethodGet, base+"/metrics")
	for _, s := range secrets {
		assert.NotContains(t, logs.String(), s, "no token secret in any log line")
		assert.NotContains(t, rec.bodies.String(), s, "no token secret in any response")
		assert.NotContains(t, metricsBody, s)
	}
	assert.NotContains(t, logs.String(), "open sesame")
	assert.Contains(t, logs.String(), "access denied", "the denials were logged (without secrets)")
}

func TestRequireTokensRefusesTheMagicWord(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "foresight.db")
	inst := startServer(t, "FORESIGHT_DATABASE_URL", db, "MAGIC_WORD", "open sesame", "FORESIGHT_REQUIRE_TOKENS", "true")
	rec := &recorder{}
	status, body, _ := rec.call(t, http.MethodGet, inst.URL()+"/captions", "x-magic-word", "open sesame")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Contains(t, detailOf(t, body), "FORESIGHT_REQUIRE_TOKENS")
	status, body, _ = rec.call(t, http.MethodGet, inst.URL()+"/captions")
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Contains(t, detailOf(t, body), "access token")
	admin, _ := issue(t, db, ports.RoleAdmin, time.Time{})
	status, body, _ = rec.call(t, http.MethodGet, inst.URL()+"/captions", "Authorization", "Bearer "+admin)
	assert.Equal(t, http.StatusOK, status, body)

	_, err := app.LoadConfig(nil, envOf("FORESIGHT_REQUIRE_TOKENS", "true", "FORESIGHT_DATABASE_URL", "none"), nil)
	assert.ErrorContains(t, err, "needs a database")
}

func TestARevokedTokenIsRefusedByASecondInstanceWithinFiveSeconds(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := postgresURL(t, pg.NewDatabase(t))
	a := startWithStore(t, dsn, "FORESIGHT_REQUIRE_TOKENS", "true")
	defer stopInstance(t, a)
	b := startWithStore(t, dsn, "FORESIGHT_REQUIRE_TOKENS", "true")
	defer stopInstance(t, b)
	secret, id := issue(t, dsn, ports.RoleDevice, time.Time{}, "alice")
	rec := &recorder{}
	for _, inst := range []*app.Instance{a, b} {
		status, body, _ := rec.call(t, http.MethodGet, inst.URL()+"/captions", "Authorization", "Bearer "+secret)
		require.Equal(t, http.StatusOK, status, body) // now cached on both
	}
	revoke(t, dsn, id)
	revokedAt := time.Now()
	for _, inst := range []*app.Instance{a, b} {
		assert.Eventually(t, func() bool {
			status, _, _ := rec.call(t, http.MethodGet, inst.URL()+"/captions", "Authorization", "Bearer "+secret)
			return status == http.StatusUnauthorized
		}, 5*time.Second-time.Since(revokedAt), 50*time.Millisecond, "every instance refuses a revoked token within 5 s")
	}
	status, body, _ := rec.call(t, http.MethodGet, b.URL()+"/captions", "Authorization", "Bearer "+secret)
	assert.Equal(t, http.StatusUnauthorized, status)
	assert.Equal(t, "access token revoked", detailOf(t, body))
}
