package main

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/frontend/access"
	"github.com/foresight-vision/foresight/app"
)

func TestTokenCreateListRevoke(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "foresight.db")
	t.Setenv("FORESIGHT_DATABASE_URL", db)
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run(context.Background(), []string{"token", "create", "--device", "kit", "--device", "kit-2", "--name", "kit glasses", "--expires", "720h"}, &out, &errOut), errOut.String())
	secret := strings.TrimSpace(out.String())
	assert.True(t, access.WellFormed(secret), "stdout is the secret alone: %q", secret)
	assert.NotContains(t, errOut.String(), secret)

	out.Reset()
	require.Equal(t, 0, run(context.Background(), []string{"token", "list"}, &out, &errOut))
	assert.Contains(t, out.String(), "kit,kit-2")
	assert.Contains(t, out.String(), "kit glasses")
	assert.NotContains(t, out.String(), secret, "list never shows the secret")
	assert.NotContains(t, out.String(), secret[len(access.TokenPrefix):len(access.TokenPrefix)+8])

	store, err := app.OpenTokenStore(t.Context(), db)
	require.NoError(t, err)
	tok, err := store.TokenByHash(t.Context(), access.HashSecret(secret))
	require.NoError(t, err, "only the hash is stored, and it finds the token")
	require.NoError(t, store.Close())
	assert.Equal(t, []string{"kit", "kit-2"}, tok.Devices)

	out.Reset()
	require.Equal(t, 0, run(context.Background(), []string{"token", "revoke", tok.ID}, &out, &errOut))
	out.Reset()
	require.Equal(t, 0, run(context.Background(), []string{"token", "list"}, &out, &errOut))
	assert.Contains(t, out.String(), "revoked")

	errOut.Reset()
	assert.Equal(t, 1, run(context.Background(), []string{"token", "revoke", "tok_nope"}, &out, &errOut))
	assert.Contains(t, errOut.String(), `no token "tok_nope"`)
	errOut.Reset()
	assert.Equal(t, 1, run(context.Background(), []string{"token", "create"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "--device")
	errOut.Reset()
	assert.Equal(t, 1, run(context.Background(), []string{"token", "create", "--device", "../etc"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "must match")
}

func TestTokenRefusesAPasswordOnTheCommandLine(t *testing.T) {
	var out bytes.Buffer
	assert.Equal(t, 1, run(context.Background(), []string{"token", "list", "--database-url", "postgres://u:hunter2@127.0.0.1:1/db"}, &out, &out))
	assert.Contains(t, out.String(), "FORESIGHT_DATABASE_URL")
	assert.NotContains(t, out.String(), "hunter2")
}

// The replay tool with FORESIGHT_TOKEN against a server that requires
// tokens: it streams as the token's device, and neither its output nor
// --help of replay and bench shows the secret; with the magic word (tokens
// not required) the seed's flow works unchanged.
func TestReplayPresentsATokenAndNeverPrintsIt(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "foresight.db")
	db := "sqlite:" + dbPath
	t.Setenv("FORESIGHT_DATABASE_URL", db)
	var out, errOut bytes.Buffer
	require.Equal(t, 0, run(context.Background(), []string{"token", "create", "--device", "kit"}, &out, &errOut), errOut.String())
	secret := strings.TrimSpace(out.String())

	start := func(env map[string]string) *app.Instance {
		env["FORESIGHT_INFERENCE_BACKEND"] = "none"
		env["FORESIGHT_DATABASE_URL"] = db
		cfg, err := app.LoadConfig([]string{"--addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, nil)
		require.NoError(t, err)
		inst, err := app.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
		require.NoError(t, err)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			assert.NoError(t, inst.Stop(ctx))
		})
		return inst
	}
	dir, _ := writeTestJPEGs(t, 5)
	strict := start(map[string]string{"FORESIGHT_REQUIRE_TOKENS": "true"})
	out.Reset()
	require.Equal(t, 1, run(context.Background(), []string{"replay", "--url", strict.URL(), "--frames", dir, "--no-sleep"}, &out, &out),
		"without the token the upgrade is refused")
	t.Setenv("FORESIGHT_TOKEN", secret)
	out.Reset()
	require.Equal(t, 0, run(context.Background(), []string{"replay", "--url", strict.URL(), "--frames", dir, "--no-sleep", "--log-every", "1"}, &out, &out), out.String())
	assert.Contains(t, out.String(), `"sent_frames": 5`)
	assert.NotContains(t, out.String(), secret)
	out.Reset()
	require.Equal(t, 0, run(context.Background(), []string{"replay", "--url", strict.URL() + "/vision/stream?access_token=" + secret, "--frames", dir, "--no-sleep"}, &out, &out), out.String())
	assert.NotContains(t, out.String(), secret, "a token put in the URL is redacted when printed")
	for _, cmd := range []string{"replay", "bench", "token"} {
		out.Reset()
		run(context.Background(), []string{cmd, "--help"}, &out, &out)
		assert.NotContains(t, out.String(), secret, "%s --help", cmd)
	}
	out.Reset()
	run(context.Background(), []string{"--help"}, &out, &out)
	assert.NotContains(t, out.String(), secret)

	t.Setenv("FORESIGHT_TOKEN", "")
	worded := start(map[string]string{"MAGIC_WORD": "open sesame"})
	t.Setenv("MAGIC_WORD", "open sesame")
	out.Reset()
	require.Equal(t, 0, run(context.Background(), []string{"replay", "--url", worded.URL(), "--frames", dir, "--no-sleep"}, &out, &out), out.String())
	assert.Contains(t, out.String(), `"sent_frames": 5`)
}
