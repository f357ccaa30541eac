package domain_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/domain/domaintest"
	"github.com/foresight-vision/foresight/ports"
)

// nudgeHarness is a loop on in-memory ports. It must be built inside a
// synctest bubble: time is the bubble's, starting at an interval boundary.
type nudgeHarness struct {
	captions *domaintest.Captions
	decider  *domaintest.Decider
	store    *domaintest.Interventions
	notifier *domaintest.Notifier
	observer *domaintest.NudgeObserver
	lock     ports.EvaluationLock
	loop     *domain.NudgeLoop
}

func newNudgeHarness(t *testing.T, cfg domain.NudgeConfig) *nudgeHarness {
	t.Helper()
	h := &nudgeHarness{
		captions: domaintest.NewCaptions(),
		decider:  &domaintest.Decider{},
		store:    domaintest.NewInterventions(),
		notifier: &domaintest.Notifier{},
		observer: &domaintest.NudgeObserver{},
		lock:     domain.NewLocalEvaluationLock(),
	}
	h.loop = h.newLoop(t, cfg)
	return h
}

// newLoop builds another loop over the same ports, as a second instance
// sharing one database would be.
func (h *nudgeHarness) newLoop(t *testing.T, cfg domain.NudgeConfig) *domain.NudgeLoop {
	t.Helper()
	if cfg.Observer == nil {
		cfg.Observer = h.observer
	}
	loop, err := domain.NewNudgeLoop(domain.NudgePorts{
		Captions: h.captions, Decider: h.decider, Store: h.store, Lock: h.lock, Notifier: h.notifier,
	}, cfg)
	require.NoError(t, err)
	return loop
}

// caption adds a caption for device at the bubble's present time.
func (h *nudgeHarness) caption(device, id, text string) {
	h.captions.Add(device, ports.CaptionRef{ID: id, Time: time.Now(), Text: text})
}

func (h *nudgeHarness) start(t *testing.T, loops ...*domain.NudgeLoop) {
	t.Helper()
	loops = append(loops, h.loop)
	for _, l := range loops {
		l.Start()
	}
	t.Cleanup(func() {
		for _, l := range loops {
			assert.NoError(t, l.Stop(context.Background()))
		}
	})
}

// advance lets d pass and waits until every goroutine of the bubble is idle.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

const key = "pk-server"

func TestNudgeLoopNoCaptionsNoDecision(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{APIKey: key})
		h.decider.Answer = domaintest.Yes("stand up")
		h.caption("old", "c0", "eating a donut")
		advance(90 * time.Second) // the caption is now older than the 60 s window
		h.start(t)
		advance(5 * time.Minute)

		assert.Empty(t, h.decider.Inputs(), "no captions in the window: no model call")
		assert.Empty(t, h.store.Records())
		assert.Empty(t, h.notifier.Calls())
	})
}

func TestNudgeLoopDeliversOnceWithPrefixAndKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{APIKey: key, Prefix: domain.DefaultNudgePrefix})
		h.decider.Answer = domaintest.Yes("Put the donut down and grab an apple.")
		h.start(t)
		h.caption("dev1", "c1", "The wearer picks up a donut.")
		h.caption("dev1", "c2", "The wearer takes a bite.")
		advance(time.Minute)

		calls := h.notifier.Calls()
		require.Len(t, calls, 1)
		assert.Equal(t, key, calls[0].APIKey)
		assert.Equal(t, domain.DefaultNudgePrefix+"Put the donut down and grab an apple.", calls[0].Message)

		recs := h.store.Records()
		require.Len(t, recs, 1)
		r := recs[0]
		assert.Equal(t, "dev1", r.Device)
		assert.Equal(t, ports.VerdictYes, r.Verdict)
		assert.Equal(t, ports.DeliveryDelivered, r.Status)
		assert.Equal(t, time.Now(), r.DeliveredAt)
		assert.Equal(t, []string{"c1", "c2"}, r.CaptionIDs)
		assert.Equal(t, "Put the donut down and grab an apple.", r.Nudge, "the record keeps the message without the prefix")
		assert.Equal(t, "test-model", r.Model)
		assert.Equal(t, 10, r.PromptTokens)
		assert.Equal(t, 1, r.Attempts)
		assert.Equal(t, []ports.DeliveryStatus{ports.DeliverySending, ports.DeliveryDelivered}, statuses(h.store.Updates(r.ID)),
			"the store hears of the attempt before the notifier is called")

		in := h.decider.Inputs()
		require.Len(t, in, 1)
		assert.True(t, in[0].LastDelivered.IsZero())
		assert.Len(t, in[0].Captions, 2)

		assert.Equal(t, 1, h.observer.Decisions("test", "delivered"))
		assert.Equal(t, 1, h.observer.Attempts("ok"))
		calls2, tokens := h.observer.ModelCalls()
		assert.Equal(t, 1, calls2)
		assert.Equal(t, 15, tokens)
	})
}

// TestNudgeLoopZeroCooldownIsNone: a zero Cooldown means none, as the
// setting's 0 does; the default lives in the settings table.
func TestNudgeLoopZeroCooldownIsNone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{APIKey: key})
		assert.Equal(t, time.Duration(0), h.loop.Config().Cooldown)
		h.decider.Answer = domaintest.Yes("Stand up.")
		for _, id := range []string{"c1", "c2"} {
			// A new caption each time: a judged one is not evidence twice.
			h.caption("dev1", id, "sitting")
			rec, err := h.loop.RunOnce(context.Background(), "dev1")
			require.NoError(t, err)
			assert.Equal(t, ports.DeliveryDelivered, rec.Status)
		}
		assert.Len(t, h.notifier.Calls(), 2)
	})
}

func TestNudgeLoopCooldown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{APIKey: key, Cooldown: domain.DefaultNudgeCooldown})
		h.decider.Answer = domaintest.Yes("Take a walk.")
		h.start(t)
		firstDelivery := time.Now().Add(time.Minute)
		for minute := range 12 {
			h.caption("dev1", "c", "The wearer sits on the sofa.")
			advance(time.Minute)
			_ = minute
		}

		recs := h.store.Records()
		require.Len(t, recs, 12, "every decision is recorded, suppressed ones included")
		var delivered []time.Time
		for _, r := range recs {
			switch r.Status {
			case ports.DeliveryDelivered:
				delivered = append(delivered, r.DeliveredAt)
			default:
				assert.Equal(t, ports.DeliverySuppressedCooldown, r.Status, "record at %s", r.Time)
			}
		}
		assert.Equal(t, []time.Time{firstDelivery, firstDelivery.Add(10 * time.Minute)}, delivered,
			"a second nudge waits the whole 10 min cooldown")
		assert.Len(t, h.notifier.Calls(), 2)
		assert.Equal(t, 10, h.observer.Decisions("test", "suppressed_cooldown"))

		in := h.decider.Inputs()
		assert.Equal(t, firstDelivery, in[1].LastDelivered, "the decider hears when the last nudge went out")
	})
}

func TestNudgeLoopWithoutKeyRecordsButSkips(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{})
		h.decider.Answer = domaintest.Yes("Stand up.")
		h.start(t)
		h.caption("dev1", "c1", "sitting")
		advance(time.Minute)

		recs := h.store.Records()
		require.Len(t, recs, 1)
		assert.Equal(t, ports.DeliverySkippedNoKey, recs[0].Status)
		assert.Equal(t, "Stand up.", recs[0].Nudge)
		assert.Empty(t, h.notifier.Calls())
		assert.Equal(t, 1, h.observer.Decisions("test", "skipped_no_key"))
	})
}

func TestNudgeLoopDeciderNoAndError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{APIKey: key, Engine: "llm"})
		var n atomic.Int32
		h.decider.Answer = func(context.Context, ports.NudgeInput) (ports.NudgeDecision, error) {
			switch n.Add(1) {
			case 1:
				return ports.NudgeDecision{Engine: "llm", Reasoning: "all fine"}, nil
			case 2:
				return ports.NudgeDecision{}, errors.New("model reply is not valid JSON")
			default:
				return ports.NudgeDecision{Engine: "llm", Deliver: true}, nil // yes without a message
			}
		}
		h.start(t)
		for range 3 {
			h.caption("dev1", "c", "walking")
			advance(time.Minute)
		}

		recs := h.store.Records()
		require.Len(t, recs, 3)
		assert.Equal(t, ports.VerdictNo, recs[0].Verdict)
		assert.Equal(t, "all fine", recs[0].Reasoning)
		assert.Equal(t, ports.DeliveryNone, recs[0].Status)
		assert.Equal(t, ports.VerdictError, recs[1].Verdict)
		assert.Equal(t, "model reply is not valid JSON", recs[1].Error)
		assert.Equal(t, "llm", recs[1].Engine, "a failed decision is recorded under the configured engine")
		assert.Equal(t, ports.VerdictError, recs[2].Verdict)
		assert.Contains(t, recs[2].Error, "empty message")
		assert.Empty(t, h.notifier.Calls())
		assert.Equal(t, 1, h.observer.Decisions("llm", "no"))
		assert.Equal(t, 2, h.observer.Decisions("llm", "error"))
	})
}

func TestNudgeLoopRetriesFailedDeliveryWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{APIKey: key})
		h.decider.Answer = domaintest.Yes("Drink some water.")
		var attemptsAt []time.Time
		h.notifier.Fail = func(call int) error {
			attemptsAt = append(attemptsAt, time.Now())
			if call <= 2 {
				return errors.New("notifier: upstream answered 503")
			}
			return nil
		}
		h.start(t)
		h.caption("dev1", "c1", "hot day")
		advance(time.Minute)
		start := time.Now()
		advance(10 * time.Second)

		assert.Equal(t, []time.Time{start, start.Add(2 * time.Second), start.Add(6 * time.Second)}, attemptsAt,
			"backoff 2 s, then 4 s")
		recs := h.store.Records()
		require.Len(t, recs, 1, "one decision, however many attempts")
		assert.Equal(t, ports.DeliveryDelivered, recs[0].Status)
		assert.Equal(t, 3, recs[0].Attempts)
		assert.Empty(t, recs[0].Error)
		assert.Equal(t, []ports.DeliveryStatus{
			ports.DeliverySending, ports.DeliveryPending,
			ports.DeliverySending, ports.DeliveryPending,
			ports.DeliverySending, ports.DeliveryDelivered,
		}, statuses(h.store.Updates(recs[0].ID)))
		assert.Equal(t, 2, h.observer.Attempts("error"))
		assert.Equal(t, 1, h.observer.Attempts("ok"))
	})
}

func TestNudgeLoopNotifierOutageLosesNoDecisionAndNeverSendsTwice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{APIKey: key, MaxAttempts: 3})
		h.decider.Answer = domaintest.Yes("Stretch.")
		var down atomic.Bool
		down.Store(true)
		h.notifier.Fail = func(int) error {
			if down.Load() {
				return errors.New("notifier: dial tcp: connection refused")
			}
			return nil
		}
		h.start(t)
		h.caption("dev1", "c1", "sitting")
		advance(time.Minute)
		advance(10 * time.Second) // attempts at 0, 2 and 6 s
		recs := h.store.Records()
		require.Len(t, recs, 1)
		assert.Equal(t, ports.DeliveryFailed, recs[0].Status)
		assert.Equal(t, 3, recs[0].Attempts)
		assert.Equal(t, "deliver: notifier: dial tcp: connection refused", recs[0].Error)
		assert.Len(t, h.notifier.Calls(), 3)

		down.Store(false)
		advance(50 * time.Second)
		h.caption("dev1", "c2", "still sitting")
		advance(time.Minute)
		recs = h.store.Records()
		require.Len(t, recs, 2, "the failed decision stays failed; the next interval decides anew")
		assert.Equal(t, ports.DeliveryFailed, recs[0].Status)
		assert.Equal(t, ports.DeliveryDelivered, recs[1].Status)
		assert.Len(t, h.notifier.Calls(), 4)
		assert.Equal(t, 1, h.observer.Decisions("test", "failed"))
	})
}

func TestNudgeLoopRetriesStopAtTheInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{APIKey: key, Interval: 10 * time.Second, Window: time.Minute, MaxAttempts: 100})
		h.decider.Answer = domaintest.Yes("Stretch.")
		h.notifier.Fail = func(int) error { return errors.New("notifier down") }
		h.start(t)
		h.caption("dev1", "c1", "sitting")
		advance(10 * time.Second)
		advance(9 * time.Second)

		recs := h.store.Records()
		require.Len(t, recs, 1)
		assert.Equal(t, ports.DeliveryFailed, recs[0].Status)
		// Attempts at 0, 2 and 6 s; the next (14 s) falls past 9 s, 9/10 of the interval.
		assert.Equal(t, 3, recs[0].Attempts)
	})
}

func TestNudgeLoopDoesNotSendWhenTheAttemptCannotBeMarked(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{APIKey: key})
		h.decider.Answer = domaintest.Yes("Stretch.")
		h.store.FailUpdate = func(u ports.DeliveryUpdate) error {
			if u.Status == ports.DeliverySending {
				return errors.New("database is locked")
			}
			return nil
		}
		h.start(t)
		h.caption("dev1", "c1", "sitting")
		advance(time.Minute)

		assert.Empty(t, h.notifier.Calls())
		require.Len(t, h.store.Records(), 1)
		assert.Equal(t, 1, h.observer.Decisions("test", "failed"))
	})
}

func TestNudgeLoopStoreOutageDeliversNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{APIKey: key})
		h.decider.Answer = domaintest.Yes("Stretch.")
		h.store.FailLast = func() error { return errors.New("database is down") }
		h.start(t)
		h.caption("dev1", "c1", "sitting")
		advance(time.Minute)
		assert.Empty(t, h.decider.Inputs(), "without the last delivery the cooldown cannot be kept: no model call")

		h.store.FailLast = nil
		h.store.FailCreate = func() error { return errors.New("database is down") }
		h.caption("dev1", "c2", "sitting")
		advance(time.Minute)
		assert.Len(t, h.decider.Inputs(), 1)
		assert.Empty(t, h.notifier.Calls(), "an unrecorded decision is never delivered")
		assert.Equal(t, 1, h.observer.Decisions("test", "error"))
	})
}

func TestNudgeLoopTwoInstancesOneNudge(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{APIKey: key, Cooldown: domain.DefaultNudgeCooldown})
		h.decider.Answer = domaintest.Yes("Stand up.")
		second := h.newLoop(t, domain.NudgeConfig{APIKey: key, Cooldown: domain.DefaultNudgeCooldown})
		h.start(t, second)
		for range 3 {
			h.caption("dev1", "c", "sitting")
			h.caption("dev2", "d", "sitting")
			advance(time.Minute)
		}

		assert.Len(t, h.decider.Inputs(), 6, "one evaluation per device per interval, not two")
		assert.Len(t, h.store.Records(), 6)
		assert.Len(t, h.notifier.Calls(), 2, "one nudge per device; the cooldown holds the rest")
	})
}

func TestNudgeLoopRunOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{APIKey: key, Cooldown: domain.DefaultNudgeCooldown})
		h.decider.Answer = domaintest.Yes("Stand up.")
		ctx := context.Background()

		_, err := h.loop.RunOnce(ctx, "dev1")
		require.ErrorIs(t, err, domain.ErrNoCaptions)
		assert.Empty(t, h.decider.Inputs())

		h.caption("dev1", "c1", "sitting")
		rec, err := h.loop.RunOnce(ctx, "dev1")
		require.NoError(t, err)
		assert.Equal(t, ports.DeliveryDelivered, rec.Status)
		assert.Equal(t, "1", rec.ID)
		assert.Len(t, h.notifier.Calls(), 1)

		_, err = h.loop.RunOnce(ctx, "dev1")
		require.ErrorIs(t, err, domain.ErrNoCaptions, "c1 was judged: no new evidence")

		h.caption("dev1", "c2", "still sitting")
		rec, err = h.loop.RunOnce(ctx, "dev1")
		require.NoError(t, err)
		assert.Equal(t, ports.DeliverySuppressedCooldown, rec.Status, "a manual run keeps the cooldown too")

		release, ok, err := h.lock.TryAcquire(ctx, "dev1", time.Now().Add(time.Second))
		require.NoError(t, err)
		require.True(t, ok)
		_, err = h.loop.RunOnce(ctx, "dev1")
		require.ErrorIs(t, err, domain.ErrEvaluationBusy)
		release()
	})
}

// countingLock counts the TryAcquire calls per device.
type countingLock struct {
	ports.EvaluationLock
	mu    sync.Mutex
	tries map[string]int
}

func (c *countingLock) TryAcquire(ctx context.Context, device string, slot time.Time) (func(), bool, error) {
	c.mu.Lock()
	c.tries[device]++
	c.mu.Unlock()
	return c.EvaluationLock.TryAcquire(ctx, device, slot)
}

func (c *countingLock) Tries(device string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tries[device]
}

// TestNudgeLoopBoundsManualRuns: with MaxManualRuns manual runs in
// progress, one more is refused at once, before the lock or the store, while
// a scheduled evaluation runs on; once a run ends, the next is taken.
func TestNudgeLoopBoundsManualRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := domain.NudgeConfig{MaxManualRuns: 2}
		h := newNudgeHarness(t, cfg)
		lock := &countingLock{EvaluationLock: h.lock, tries: map[string]int{}}
		h.lock = lock
		h.loop = h.newLoop(t, cfg)
		release := make(chan struct{})
		h.decider.Answer = func(ctx context.Context, _ ports.NudgeInput) (ports.NudgeDecision, error) {
			select {
			case <-release:
				return ports.NudgeDecision{Engine: "test"}, nil
			case <-ctx.Done():
				return ports.NudgeDecision{}, context.Cause(ctx)
			}
		}
		h.start(t)
		h.caption("sched", "c0", "sitting")
		advance(time.Minute) // the tick lists "sched" only and holds it in the decider
		require.Len(t, h.decider.Inputs(), 1)

		var manual sync.WaitGroup
		for _, dev := range []string{"man1", "man2"} {
			h.caption(dev, "c-"+dev, "sitting")
			manual.Go(func() {
				_, err := h.loop.RunOnce(context.Background(), dev)
				assert.NoError(t, err, dev)
			})
		}
		synctest.Wait()
		require.Len(t, h.decider.Inputs(), 3, "the scheduled evaluation and both manual runs are deciding")

		h.caption("extra", "c-extra", "sitting")
		before := time.Now()
		_, err := h.loop.RunOnce(context.Background(), "extra")
		require.ErrorIs(t, err, domain.ErrTooManyManualRuns)
		assert.Equal(t, before, time.Now(), "refused at once, in the bubble's time")
		assert.Zero(t, lock.Tries("extra"), "the lock is not asked")
		assert.Len(t, h.decider.Inputs(), 3, "nor the decider")
		assert.Empty(t, h.store.Records(), "nor the store")

		close(release)
		manual.Wait()
		synctest.Wait()
		rec, err := h.loop.RunOnce(context.Background(), "extra")
		require.NoError(t, err, "taken once the others ended")
		assert.Equal(t, ports.VerdictNo, rec.Verdict)
		devices := map[string]int{}
		for _, r := range h.store.Records() {
			devices[r.Device]++
		}
		assert.Equal(t, map[string]int{"sched": 1, "man1": 1, "man2": 1, "extra": 1}, devices)
	})
}

func TestNudgeConfigMaxEvaluations(t *testing.T) {
	assert.Equal(t, domain.DefaultNudgeConcurrency+domain.DefaultNudgeMaxManualRuns, domain.NudgeConfig{}.MaxEvaluations())
	assert.Equal(t, 5, domain.NudgeConfig{Concurrency: 2, MaxManualRuns: 3}.MaxEvaluations())
}

func TestNudgeLoopStopDuringRetryRecordsFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{APIKey: key})
		h.decider.Answer = domaintest.Yes("Stretch.")
		h.notifier.Fail = func(int) error { return errors.New("notifier down") }
		h.loop.Start()
		h.caption("dev1", "c1", "sitting")
		advance(time.Minute + time.Second) // first attempt failed, waiting to retry

		require.NoError(t, h.loop.Stop(context.Background()))
		recs := h.store.Records()
		require.Len(t, recs, 1)
		assert.Equal(t, ports.DeliveryFailed, recs[0].Status)
		assert.Equal(t, 1, recs[0].Attempts)
		require.NoError(t, h.loop.Stop(context.Background()), "stopping twice is harmless")
	})
}

func TestNudgeLoopStopTimesOutOnAStuckDecider(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{})
		unblock := make(chan struct{})
		h.decider.Answer = func(context.Context, ports.NudgeInput) (ports.NudgeDecision, error) {
			<-unblock // ignores ctx
			return ports.NudgeDecision{}, nil
		}
		h.loop.Start()
		h.caption("dev1", "c1", "sitting")
		advance(time.Minute)

		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		require.ErrorIs(t, h.loop.Stop(ctx), context.DeadlineExceeded)
		close(unblock)
		require.NoError(t, h.loop.Stop(context.Background()))
	})
}

func TestNewNudgeLoopNeedsItsPorts(t *testing.T) {
	_, err := domain.NewNudgeLoop(domain.NudgePorts{}, domain.NudgeConfig{})
	require.ErrorContains(t, err, "caption source")
}

func TestLocalEvaluationLock(t *testing.T) {
	ctx := context.Background()
	lock := domain.NewLocalEvaluationLock()
	slot := time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)

	release, ok, err := lock.TryAcquire(ctx, "dev1", slot)
	require.NoError(t, err)
	require.True(t, ok)
	_, ok, _ = lock.TryAcquire(ctx, "dev1", slot.Add(time.Minute))
	assert.False(t, ok, "held: a later slot waits")
	_, ok, _ = lock.TryAcquire(ctx, "dev2", slot)
	assert.True(t, ok, "devices are independent")
	release()
	release() // idempotent
	_, ok, _ = lock.TryAcquire(ctx, "dev1", slot)
	assert.False(t, ok, "a slot is evaluated once")
	_, ok, _ = lock.TryAcquire(ctx, "dev1", slot.Add(-time.Minute))
	assert.False(t, ok, "an earlier slot is past")
	manual, ok, _ := lock.TryAcquire(ctx, "dev1", time.Time{})
	require.True(t, ok, "a manual run claims no slot")
	_, ok, _ = lock.TryAcquire(ctx, "dev1", time.Time{})
	assert.False(t, ok, "but excludes")
	manual()
	_, ok, _ = lock.TryAcquire(ctx, "dev1", slot.Add(time.Minute))
	assert.True(t, ok)
}

func TestInterventionsFakeListsNewestFirstWithCursor(t *testing.T) {
	ctx := context.Background()
	s := domaintest.NewInterventions()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		dev := "a"
		if i%2 == 1 {
			dev = "b"
		}
		_, err := s.CreateIntervention(ctx, ports.Intervention{Device: dev, Time: t0.Add(time.Duration(i) * time.Minute)})
		require.NoError(t, err)
	}
	page, err := s.ListInterventions(ctx, ports.InterventionQuery{Device: "a", Limit: 2})
	require.NoError(t, err)
	assert.Equal(t, []string{"5", "3"}, interventionIDs(page.Items))
	page, err = s.ListInterventions(ctx, ports.InterventionQuery{Device: "a", Limit: 2, Cursor: page.NextCursor})
	require.NoError(t, err)
	assert.Equal(t, []string{"1"}, interventionIDs(page.Items))
	assert.Empty(t, page.NextCursor)
	page, err = s.ListInterventions(ctx, ports.InterventionQuery{Since: t0.Add(3 * time.Minute)})
	require.NoError(t, err)
	assert.Equal(t, []string{"5", "4"}, interventionIDs(page.Items))
}

func statuses(us []ports.DeliveryUpdate) []ports.DeliveryStatus {
	out := make([]ports.DeliveryStatus, len(us))
	for i, u := range us {
		out[i] = u.Status
	}
	return out
}

func interventionIDs(rs []ports.Intervention) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

// TestNudgeLoopRecordsADeciderThatNeverAnswers: a model that does not answer
// within the interval still leaves a record of the failed decision.
func TestNudgeLoopRecordsADeciderThatNeverAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{APIKey: key, Engine: "llm"})
		h.decider.Answer = func(ctx context.Context, _ ports.NudgeInput) (ports.NudgeDecision, error) {
			<-ctx.Done()
			return ports.NudgeDecision{}, context.Cause(ctx)
		}
		h.start(t)
		h.caption("dev1", "c1", "eating a donut")
		advance(2 * time.Minute)

		recs := h.store.Records()
		require.NotEmpty(t, recs, "the failed decision is recorded")
		assert.Equal(t, ports.VerdictError, recs[0].Verdict)
		assert.Empty(t, h.notifier.Calls())
	})
}

// TestNudgeLoopSettleSeesACaptionThatLandsLate: a caption whose chunk ended
// just before a slot boundary but reached the store after it is seen by the
// next evaluation when Settle covers the delay.
func TestNudgeLoopSettleSeesACaptionThatLandsLate(t *testing.T) {
	for _, tc := range []struct {
		settle time.Duration
		seen   bool
	}{{0, false}, {5 * time.Second, true}} {
		synctest.Test(t, func(t *testing.T) {
			h := newNudgeHarness(t, domain.NudgeConfig{APIKey: key, Settle: tc.settle})
			h.decider.Answer = domaintest.Yes("stand up")
			h.start(t)
			advance(time.Minute - 2*time.Second) // 2 s before the first boundary
			ended := time.Now()
			advance(4 * time.Second) // the boundary passes with nothing stored
			h.captions.Add("dev1", ports.CaptionRef{ID: "late", Time: ended, Text: "sitting"})
			advance(time.Minute) // the next boundary
			assert.Equal(t, tc.seen, len(h.decider.Inputs()) > 0, "settle %s", tc.settle)
		})
	}
}

// An empty Prefix means none, as the setting's "none" does: the default
// lives in the settings table, not in the loop.
func TestNudgeLoopNoPrefixSendsTheMessageAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{APIKey: key})
		h.decider.Answer = domaintest.Yes("stand up")
		h.start(t)
		h.caption("dev1", "c1", "sitting")
		advance(2 * time.Minute)
		calls := h.notifier.Calls()
		require.NotEmpty(t, calls)
		assert.Equal(t, "stand up", calls[0].Message)
	})
}

// TestNudgeLoopJudgesEachCaptionOnce: with a window wider than the interval
// and a settle margin, every caption is new evidence for exactly one
// evaluation (later ones see it as context), and once the captions stop the
// device gets no further decisions.
func TestNudgeLoopJudgesEachCaptionOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{APIKey: key, Interval: 2 * time.Second,
			Window: 4 * time.Second, Settle: 3 * time.Second, Cooldown: -1})
		h.decider.Answer = domaintest.Yes("stand up")
		h.start(t)
		for i := range 10 { // a caption every 1.5 s for 15 s
			h.caption("dev1", fmt.Sprintf("c%d", i), "sitting")
			advance(1500 * time.Millisecond)
		}
		decisionsWhenStopped := len(h.decider.Inputs())
		advance(time.Minute)

		inputs := h.decider.Inputs()
		assert.Len(t, inputs, decisionsWhenStopped, "the captions stopped: no further decisions")
		judged := map[string]int{}
		for _, in := range inputs {
			require.True(t, slices.ContainsFunc(in.Captions, func(c ports.CaptionRef) bool { return c.New }),
				"every decision has new evidence")
			for _, c := range in.Captions {
				if c.New {
					judged[c.ID]++
				}
			}
		}
		for i := range 10 {
			assert.Equal(t, 1, judged[fmt.Sprintf("c%d", i)], "caption c%d is new in exactly one decision", i)
		}
		assert.Len(t, h.notifier.Calls(), len(inputs), "no cooldown: one nudge per decision, none from old evidence")
	})
}

// TestNudgeLoopJudgesACaptionStoredLateOnce: a caption whose time is before
// the last decision but that reached the store after it is new evidence for
// the next decision, and only for it.
func TestNudgeLoopJudgesACaptionStoredLateOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{APIKey: key, Settle: 10 * time.Second})
		h.start(t)
		advance(55 * time.Second)
		h.caption("dev1", "on-time", "sitting")
		advance(7 * time.Second) // the first boundary judges "on-time"
		require.Len(t, h.decider.Inputs(), 1)
		// Ended at 53 s, before the decision at 60 s; stored at 62 s.
		h.captions.Add("dev1", ports.CaptionRef{ID: "late", Time: time.Now().Add(-9 * time.Second), Text: "sitting"})
		advance(3 * time.Minute)

		inputs := h.decider.Inputs()
		require.Len(t, inputs, 2, "the late caption makes one more decision, no more")
		var newIDs []string
		for _, c := range inputs[1].Captions {
			if c.New {
				newIDs = append(newIDs, c.ID)
			}
		}
		assert.Equal(t, []string{"late"}, newIDs)
	})
}

// TestNudgeLoopRetriesEvidenceAfterAFailedDecision: a decider error does not
// use the evidence up; the next evaluation judges it.
func TestNudgeLoopRetriesEvidenceAfterAFailedDecision(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{APIKey: key, Window: 2 * time.Minute})
		var calls atomic.Int32
		h.decider.Answer = func(context.Context, ports.NudgeInput) (ports.NudgeDecision, error) {
			if calls.Add(1) == 1 {
				return ports.NudgeDecision{}, errors.New("model down")
			}
			return domaintest.Yes("stand up")(context.Background(), ports.NudgeInput{})
		}
		h.start(t)
		h.caption("dev1", "c1", "sitting")
		advance(4 * time.Minute)
		assert.Len(t, h.decider.Inputs(), 2, "failed, then judged; then nothing new")
		assert.Len(t, h.notifier.Calls(), 1)
	})
}

// TestNudgeLoopManualRunOutlivesItsCaller: a caller that gives up half-way
// (an HTTP client hanging up) does not cut the delivery.
func TestNudgeLoopManualRunOutlivesItsCaller(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{APIKey: key})
		ctx, giveUp := context.WithCancel(context.Background())
		h.decider.Answer = func(ctx context.Context, in ports.NudgeInput) (ports.NudgeDecision, error) {
			giveUp()
			return domaintest.Yes("stand up")(ctx, in)
		}
		h.caption("dev1", "c1", "sitting")
		rec, err := h.loop.RunOnce(ctx, "dev1")
		require.NoError(t, err)
		assert.Equal(t, ports.DeliveryDelivered, rec.Status)
		assert.Len(t, h.notifier.Calls(), 1)
		assert.Equal(t, ports.DeliveryDelivered, h.store.Records()[0].Status)
		require.NoError(t, h.loop.Stop(context.Background()))
	})
}

// TestNudgeLoopStopEndsManualRuns: Stop cancels a manual run in progress
// and waits for it, and refuses later ones.
func TestNudgeLoopStopEndsManualRuns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{APIKey: key})
		h.decider.Answer = func(ctx context.Context, _ ports.NudgeInput) (ports.NudgeDecision, error) {
			<-ctx.Done()
			return ports.NudgeDecision{}, context.Cause(ctx)
		}
		h.caption("dev1", "c1", "sitting")
		ran := make(chan error, 1)
		go func() {
			_, err := h.loop.RunOnce(context.Background(), "dev1")
			ran <- err
		}()
		synctest.Wait() // the run waits in the decider
		require.NoError(t, h.loop.Stop(context.Background()))
		select {
		case <-ran:
		default:
			t.Fatal("Stop returned before the manual run ended")
		}
		recs := h.store.Records()
		require.Len(t, recs, 1)
		assert.Contains(t, recs[0].Error, "nudge loop stopped")
		_, err := h.loop.RunOnce(context.Background(), "dev1")
		assert.Error(t, err, "a stopped loop runs nothing")
	})
}

// TestNudgeLoopManualRunsForUnknownDevicesLeaveNoState: manual runs for
// devices without captions keep no per-device entry.
func TestNudgeLoopManualRunsForUnknownDevicesLeaveNoState(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{APIKey: key})
		for i := range 1000 {
			_, err := h.loop.RunOnce(context.Background(), fmt.Sprintf("made-up-%d", i))
			require.ErrorIs(t, err, domain.ErrNoCaptions)
		}
		assert.Zero(t, h.lock.(*domain.LocalEvaluationLock).Devices())
	})
}

// TestNudgeLoopAFailedSendingMarkLeavesNoPendingRecord: when marking an
// attempt "sending" fails (here once; under load, the evaluation's deadline
// landing on it), nothing is sent and the record says failed, not pending
// for good.
func TestNudgeLoopAFailedSendingMarkLeavesNoPendingRecord(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newNudgeHarness(t, domain.NudgeConfig{APIKey: key})
		h.decider.Answer = domaintest.Yes("stand up")
		var failed atomic.Bool
		h.store.FailUpdate = func(u ports.DeliveryUpdate) error {
			if u.Status == ports.DeliverySending && failed.CompareAndSwap(false, true) {
				return errors.New("database is locked")
			}
			return nil
		}
		h.caption("dev1", "c1", "sitting")
		rec, err := h.loop.RunOnce(context.Background(), "dev1")
		require.NoError(t, err)
		assert.Equal(t, ports.DeliveryFailed, rec.Status)
		assert.Empty(t, h.notifier.Calls())
		recs := h.store.Records()
		require.Len(t, recs, 1)
		assert.Equal(t, ports.DeliveryFailed, recs[0].Status, "the store says failed")
		assert.Contains(t, recs[0].Error, "mark sending")
	})
}
