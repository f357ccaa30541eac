package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHelpListsCommandsAndSettings(t *testing.T) {
	var out bytes.Buffer
	assert.Equal(t, 0, run(context.Background(), []string{"--help"}, &out, &out))
	for _, want := range []string{"serve", "gateway", "replay", "bench", "FORESIGHT_ADDR", "VISION_CHUNK_SECONDS"} {
		assert.Contains(t, out.String(), want)
	}
}

func TestUnknownCommand(t *testing.T) {
	var out bytes.Buffer
	assert.Equal(t, 2, run(context.Background(), []string{"frobnicate"}, &out, &out))
	assert.Contains(t, out.String(), `unknown command "frobnicate"`)
}

func TestBadSettingExits1(t *testing.T) {
	var out bytes.Buffer
	assert.Equal(t, 1, run(context.Background(), []string{"serve", "--max-streams", "0"}, &out, &out))
	assert.Contains(t, out.String(), "--max-streams")
}

func TestServeStopsWhenContextEnds(t *testing.T) {
	t.Setenv("FORESIGHT_LOG_LEVEL", "error")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out bytes.Buffer
	addr := freeAddr(t)
	// A store in a temp dir: the default, data/foresight.db, would land here.
	db := "sqlite:" + filepath.Join(t.TempDir(), "foresight.db")
	go func() { done <- run(ctx, []string{"serve", "--addr", addr, "--database-url", db}, &out, &out) }()
	// The server must really be up before the stop means anything.
	healthy := func() bool {
		resp, err := http.Get("http://" + addr + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	require.Eventually(t, healthy, 20*time.Second, 10*time.Millisecond, "serve never answered /health")
	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code, out.String())
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
	http.DefaultClient.CloseIdleConnections()
	assert.False(t, healthy(), "nothing listens after the stop")
	http.DefaultClient.CloseIdleConnections()
}

// freeAddr returns a loopback address nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

func TestGatewayBadIntegerIsAnError(t *testing.T) {
	t.Setenv("FORESIGHT_GATEWAY_MAX_CONNS", "lots")
	var out bytes.Buffer
	assert.Equal(t, 1, run(context.Background(), []string{"gateway", "--upstream", "http://127.0.0.1:1"}, &out, &out))
	assert.Contains(t, out.String(), "--max-conns")
	assert.Contains(t, out.String(), "FORESIGHT_GATEWAY_MAX_CONNS")
	assert.Contains(t, out.String(), `"lots"`)
}

func TestGatewayHelpListsItsSettings(t *testing.T) {
	t.Setenv("MAGIC_WORD", "hunter2")
	var out bytes.Buffer
	assert.Equal(t, 0, run(context.Background(), []string{"gateway", "--help"}, &out, &out))
	for _, s := range gatewaySettings {
		if s.Flag != "" {
			assert.Contains(t, out.String(), "--"+s.Flag)
		}
		for _, e := range s.Envs {
			assert.Contains(t, out.String(), e)
		}
	}
	assert.NotContains(t, out.String(), "hunter2")
}

func TestConfigurationDocCoversTheGateway(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	require.NoError(t, err)
	for _, s := range gatewaySettings {
		if s.Flag != "" {
			assert.Contains(t, string(doc), "`--"+s.Flag+"`")
		}
		for _, e := range s.Envs {
			assert.Contains(t, string(doc), "`"+e+"`")
		}
	}
}
