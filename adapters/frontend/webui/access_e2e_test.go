package webui_test

import (
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/frontend/access"
	"github.com/foresight-vision/foresight/adapters/store/sqlite"
	"github.com/foresight-vision/foresight/ports"
)

// The page with an access token: it shows the devices the token may see,
// streams as the token's device, and the token rides in no URL but the
// WebSocket's; another device is refused and the page says so.
func TestLivePageAccessToken(t *testing.T) {
	ctx, exceptions := browser(t)
	srv := startServerGated(t, func(router http.Handler, store *sqlite.Store, logger *slog.Logger) http.Handler {
		verifier := access.NewVerifier(access.VerifierConfig{Tokens: func() ports.TokenReader { return store }, Logger: logger})
		return access.NewGate(access.GateConfig{Verifier: verifier, RequireTokens: true,
			PublicPaths: []string{"/", "/health"}, Logger: logger}).Wrap(router)
	})
	secret := access.NewSecret()
	require.NoError(t, srv.store.CreateToken(t.Context(), ports.AccessToken{ID: access.NewTokenID(), Hash: access.HashSecret(secret),
		Role: ports.RoleDevice, Devices: []string{"alice"}, Created: time.Now()}))

	open(t, ctx, srv.url+"/")
	waitJS(t, ctx, "no credential yet", `document.getElementById("access").dataset.state === "denied"`)
	steps(t, ctx, "token", setValue("access-token", secret))
	waitJS(t, ctx, "devices shown", `document.getElementById("access").textContent === "access: devices alice"`)
	device := run(t, ctx, "device", chromedp.Evaluate[string](`document.getElementById("device").value`))
	assert.Equal(t, "alice", device, "the page picks the token's device")

	steps(t, ctx, "start", press("start"))
	waitJS(t, ctx, "acks count up", `Number(document.getElementById("acks").textContent) > 3`)
	steps(t, ctx, "stop", press("stop"))
	waitJS(t, ctx, "closed", `document.getElementById("status").dataset.state === "closed"`)

	steps(t, ctx, "another device", setValue("device", "bob"))
	steps(t, ctx, "start as bob", press("start"))
	waitJS(t, ctx, "refused", `document.getElementById("status").dataset.state === "closed" && /403/.test(document.getElementById("status").textContent)`)
	assert.Contains(t, text(t, ctx, "errors"), "access token")

	urls := run(t, ctx, "fetched urls", chromedp.Evaluate[[]string](`performance.getEntriesByType("resource").map(function (e) { return e.name; }).concat([location.href])`))
	require.NotEmpty(t, urls)
	for _, u := range urls {
		assert.NotContains(t, u, secret, "the token rides in no URL but the WebSocket's")
	}
	assert.Empty(t, exceptions(), "uncaught exceptions in the page")
}
