package app

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStopSequenceOrder(t *testing.T) {
	mem := newCaptionMemory(Config{DatabaseURL: StoreNone}, nil, slog.New(slog.DiscardHandler))
	nud, err := newNudges(Config{Nudges: NudgesOff}, mem, nil, nil, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	steps := stopSequence(&Server{}, func() error { return nil }, func() {}, nud, mem)
	var names []string
	for _, s := range steps {
		names = append(names, s.name)
	}
	assert.Equal(t, []string{"http server and streams", "nudge loop", "nudge lock and decider", "biometric writer", "caption recorder", "caption retention", "caption store", "inference backend", "notifier"}, names,
		"streams end (no more captions) before the nudge loop stops, which stops before the store it reads and the notifier it delivers through; "+
			"streams end before the recorder writes the queue and the store closes; the http server (uploads) ends before the biometric writer writes its queue; "+
			"streams close their sessions before the backend closes; nothing sends once the notifier is closed")
}

func TestRunStopRunsEveryStepInOrderWithTheDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	want, _ := ctx.Deadline()
	var order []string
	step := func(name string, err error) stopStep {
		return stopStep{name, func(c context.Context) error {
			got, ok := c.Deadline()
			assert.True(t, ok)
			assert.Equal(t, want, got, "each step is bounded by the stop's deadline")
			order = append(order, name)
			return err
		}}
	}
	err := runStop(ctx, []stopStep{
		step("front", errors.New("streams: deadline")),
		step("backend", nil),
		step("notifier", errors.New("boom")),
	}, slog.New(slog.DiscardHandler))
	assert.Equal(t, []string{"front", "backend", "notifier"}, order, "a failed step does not skip the later ones")
	require.Error(t, err)
	assert.ErrorContains(t, err, "front: streams: deadline")
	assert.ErrorContains(t, err, "notifier: boom")
}
