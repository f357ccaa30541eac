package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

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
