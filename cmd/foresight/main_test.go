package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
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
	go func() { done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0"}, &out, &out) }()
	time.Sleep(200 * time.Millisecond) // let it start; the test is about stopping
	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code, out.String())
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
}
