package domain_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/ports"
)

// deviceKeys is a ports.NotifierKeys over a map; a device mapped to an
// error answers it.
type deviceKeys struct {
	mu   sync.Mutex
	keys map[string]string
	errs map[string]error
}

func (k *deviceKeys) NotifierKey(_ context.Context, device string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.errs[device]; err != nil {
		return "", err
	}
	return k.keys[device], nil
}

func (h *nudgeHarness) loopWithKeys(t *testing.T, cfg domain.NudgeConfig, keys ports.NotifierKeys) *domain.NudgeLoop {
	t.Helper()
	cfg.Observer = h.observer
	loop, err := domain.NewNudgeLoop(domain.NudgePorts{
		Captions: h.captions, Decider: h.decider, Store: h.store, Lock: h.lock, Notifier: h.notifier, Keys: keys,
	}, cfg)
	require.NoError(t, err)
	return loop
}

func TestNudgeLoopSendsEachDeviceWithItsOwnKeyElseTheServers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{})
		keys := &deviceKeys{keys: map[string]string{"alice": "pk-alice", "bob": "pk-bob"}}
		h.loop = h.loopWithKeys(t, domain.NudgeConfig{APIKey: key, Prefix: domain.DefaultNudgePrefix}, keys)
		h.decider.Answer = func(_ context.Context, in ports.NudgeInput) (ports.NudgeDecision, error) {
			return ports.NudgeDecision{Deliver: true, Message: "hello " + in.Device, Engine: "rules"}, nil
		}
		h.start(t)
		for _, d := range []string{"alice", "bob", "carol"} {
			h.caption(d, "c-"+d, "a donut")
		}
		advance(time.Minute)

		sent := map[string]string{}
		for _, c := range h.notifier.Calls() {
			sent[c.Message] = c.APIKey
		}
		assert.Equal(t, map[string]string{
			domain.DefaultNudgePrefix + "hello alice": "pk-alice",
			domain.DefaultNudgePrefix + "hello bob":   "pk-bob",
			domain.DefaultNudgePrefix + "hello carol": key,
		}, sent, "each device's nudge goes with its own key; one without a key gets the server's")
	})
}

func TestNudgeLoopDeviceKeyWithoutServerKeyStillDelivers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{})
		h.loop = h.loopWithKeys(t, domain.NudgeConfig{}, &deviceKeys{keys: map[string]string{"alice": "pk-alice"}})
		h.decider.Answer = func(context.Context, ports.NudgeInput) (ports.NudgeDecision, error) {
			return ports.NudgeDecision{Deliver: true, Message: "hi", Engine: "rules"}, nil
		}
		h.start(t)
		h.caption("alice", "c1", "x")
		h.caption("bob", "c2", "x")
		advance(time.Minute)

		calls := h.notifier.Calls()
		require.Len(t, calls, 1)
		assert.Equal(t, "pk-alice", calls[0].APIKey)
		byDevice := map[string]ports.DeliveryStatus{}
		for _, r := range h.store.Records() {
			byDevice[r.Device] = r.Status
		}
		assert.Equal(t, map[string]ports.DeliveryStatus{"alice": ports.DeliveryDelivered, "bob": ports.DeliverySkippedNoKey}, byDevice)
	})
}

func TestNudgeLoopNeverFallsBackPastAnUnreadableDeviceKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{})
		keys := &deviceKeys{errs: map[string]error{
			"alice": fmt.Errorf("wrapped: %w", ports.ErrNotifierKeyUnreadable),
			"bob":   errors.New("database is down"),
		}}
		h.loop = h.loopWithKeys(t, domain.NudgeConfig{APIKey: key, Prefix: domain.DefaultNudgePrefix}, keys)
		h.decider.Answer = func(context.Context, ports.NudgeInput) (ports.NudgeDecision, error) {
			return ports.NudgeDecision{Deliver: true, Message: "hi", Engine: "rules"}, nil
		}
		h.start(t)
		h.caption("alice", "c1", "x")
		h.caption("bob", "c2", "x")
		advance(time.Minute)

		assert.Empty(t, h.notifier.Calls(), "never sent with the server's key instead")
		byDevice := map[string]ports.Intervention{}
		for _, r := range h.store.Records() {
			byDevice[r.Device] = r
		}
		require.Len(t, byDevice, 2)
		assert.Equal(t, ports.DeliveryFailed, byDevice["alice"].Status)
		assert.Equal(t, domain.DeviceKeyUnreadable, byDevice["alice"].Error)
		assert.Equal(t, ports.DeliveryFailed, byDevice["bob"].Status)
		assert.Equal(t, domain.DeviceKeyLookupFailed, byDevice["bob"].Error)
		assert.Equal(t, ports.VerdictYes, byDevice["alice"].Verdict)
	})
}
