package postgres_test

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/store/postgres"
	"github.com/foresight-vision/foresight/adapters/store/postgres/pgtest"
	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/domain/domaintest"
	"github.com/foresight-vision/foresight/ports"
)

// openLock opens a lock sized for a loop on the default configuration.
func openLock(t *testing.T, dsn string) *postgres.EvaluationLock {
	t.Helper()
	return openLockConns(t, dsn, domain.NudgeConfig{}.MaxEvaluations())
}

func openLockConns(t *testing.T, dsn string, conns int) *postgres.EvaluationLock {
	t.Helper()
	l, err := postgres.OpenEvaluationLock(t.Context(), dsn, conns)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, l.Close()) })
	return l
}

func TestEvaluationLockOneWinnerPerSlotAcrossInstances(t *testing.T) {
	dsn := pgtest.Start(t).NewDatabase(t)
	locks := []*postgres.EvaluationLock{openLock(t, dsn), openLock(t, dsn)}
	slot0 := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	for i := range 10 {
		slot := slot0.Add(time.Duration(i) * time.Minute)
		var wins atomic.Int32
		var releases sync.Mutex
		var toRelease []func()
		var wg sync.WaitGroup
		for g := range 8 { // four racers on each instance
			wg.Go(func() {
				release, ok, err := locks[g%2].TryAcquire(t.Context(), "kit", slot)
				if !assert.NoError(t, err) || !ok {
					return
				}
				wins.Add(1)
				releases.Lock()
				toRelease = append(toRelease, release)
				releases.Unlock()
			})
		}
		wg.Wait()
		assert.Equal(t, int32(1), wins.Load(), "slot %d", i)
		for _, r := range toRelease {
			r()
			r() // twice is harmless
		}
		// Released, the slot stays claimed, on both instances.
		for _, l := range locks {
			_, ok, err := l.TryAcquire(t.Context(), "kit", slot)
			require.NoError(t, err)
			assert.False(t, ok, "slot %d claimed again after release", i)
		}
	}
}

func TestEvaluationLockExcludesWhileHeldAndOutlivesTheInstance(t *testing.T) {
	dsn := pgtest.Start(t).NewDatabase(t)
	a, b := openLock(t, dsn), openLock(t, dsn)
	ctx := t.Context()
	slot := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

	release, ok, err := a.TryAcquire(ctx, "kit", slot)
	require.NoError(t, err)
	require.True(t, ok)
	for _, s := range []time.Time{{}, slot.Add(time.Minute)} {
		_, ok, err := b.TryAcquire(ctx, "kit", s)
		require.NoError(t, err)
		assert.False(t, ok, "busy while held (slot %v)", s)
	}
	otherRelease, ok, err := b.TryAcquire(ctx, "other", slot)
	require.NoError(t, err)
	assert.True(t, ok, "another device is free")
	otherRelease()
	release()

	manual, ok, err := b.TryAcquire(ctx, "kit", time.Time{})
	require.NoError(t, err)
	require.True(t, ok, "a manual run once free")
	_, ok, err = a.TryAcquire(ctx, "kit", slot.Add(time.Minute))
	require.NoError(t, err)
	assert.False(t, ok, "a manual run excludes a scheduled one")
	manual()

	next, ok, err := a.TryAcquire(ctx, "kit", slot.Add(time.Minute))
	require.NoError(t, err)
	require.True(t, ok, "a manual run claimed no slot")
	next()

	// A new instance (a restart) sees the claims.
	c := openLock(t, dsn)
	_, ok, err = c.TryAcquire(ctx, "kit", slot.Add(time.Minute))
	require.NoError(t, err)
	assert.False(t, ok)
	last, ok, err := c.TryAcquire(ctx, "kit", slot.Add(2*time.Minute))
	require.NoError(t, err)
	assert.True(t, ok)
	last()
}

func TestEvaluationLockReleasesWhenItsConnectionDies(t *testing.T) {
	dsn := pgtest.Start(t).NewDatabase(t)
	a, err := postgres.OpenEvaluationLock(t.Context(), dsn, domain.NudgeConfig{}.MaxEvaluations())
	require.NoError(t, err)
	b := openLock(t, dsn)
	slot := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	release, ok, err := a.TryAcquire(t.Context(), "kit", slot)
	require.NoError(t, err)
	require.True(t, ok)
	// The instance dies mid-evaluation: its connections go without a commit.
	killBackends(t, dsn, "nudge_schedule")
	release() // the commit fails; the claim was rolled back
	require.NoError(t, a.Close())

	again, ok, err := b.TryAcquire(t.Context(), "kit", slot)
	require.NoError(t, err)
	require.True(t, ok, "a claim that never committed frees the slot")
	again()
}

// killBackends ends every other session idle in a transaction whose last
// query mentions table, and waits for it to be gone.
func killBackends(t *testing.T, dsn, table string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	require.NoError(t, err)
	defer func() { assert.NoError(t, conn.Close(context.Background())) }()
	var n int
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle in transaction'
		AND query LIKE '%'||$1||'%' AND pg_terminate_backend(pid, 10000)`, table).Scan(&n))
	require.Equal(t, 1, n, "the claiming session")
}

// lockObserver wraps a lock to tell the test when each evaluation has
// ended: refused at once, or released after its delivery.
type lockObserver struct {
	ports.EvaluationLock
	ended chan bool // true: it had won the slot
}

func (o *lockObserver) TryAcquire(ctx context.Context, device string, slot time.Time) (func(), bool, error) {
	release, ok, err := o.EvaluationLock.TryAcquire(ctx, device, slot)
	if err != nil || !ok {
		o.ended <- false
		return release, ok, err
	}
	return func() { release(); o.ended <- true }, true, nil
}

func TestTwoInstancesOnOnePostgresDeliverOneNudge(t *testing.T) {
	dsn := pgtest.Start(t).NewDatabase(t)
	clock := domaintest.NewClock()
	notifier := &domaintest.Notifier{}
	ended := make(chan bool, 8)
	var loops []*domain.NudgeLoop
	for range 2 {
		store, err := postgres.Open(t.Context(), dsn)
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, store.Close()) })
		loop, err := domain.NewNudgeLoop(domain.NudgePorts{
			Captions: store, Store: store, Notifier: notifier,
			Decider: &domaintest.Decider{Answer: domaintest.Yes("Stand up and stretch.")},
			Lock:    &lockObserver{EvaluationLock: openLock(t, dsn), ended: ended},
		}, domain.NudgeConfig{APIKey: "key", Prefix: domain.DefaultNudgePrefix, Clock: clock})
		require.NoError(t, err)
		loops = append(loops, loop)
	}
	store, err := postgres.Open(t.Context(), dsn)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, store.Close()) })
	now := clock.Now()
	require.NoError(t, store.SaveCaptions(t.Context(), []ports.Caption{{
		ID: "c1", Device: "kit", StreamID: "s1", Start: now.Add(-2 * time.Second), End: now.Add(30 * time.Second),
		Text: "The wearer sits on the couch", Backend: "modal", Model: "gemma3",
	}}))

	for _, l := range loops {
		l.Start()
	}
	// Both loops wait for the next interval boundary on the manual clock.
	for clock.PendingTimers() < len(loops) {
		runtime.Gosched()
	}
	clock.Advance(domain.DefaultNudgeInterval)
	won := 0
	for range loops { // each loop's evaluation ends: one delivered, one refused
		if <-ended {
			won++
		}
	}
	for _, l := range loops {
		require.NoError(t, l.Stop(t.Context()))
	}

	assert.Equal(t, 1, won)
	require.Len(t, notifier.Calls(), 1, "one nudge, not two")
	assert.Equal(t, domain.DefaultNudgePrefix+"Stand up and stretch.", notifier.Calls()[0].Message)
	page, err := store.ListInterventions(t.Context(), ports.InterventionQuery{})
	require.NoError(t, err)
	require.Len(t, page.Items, 1, "one decision recorded")
	assert.Equal(t, ports.DeliveryDelivered, page.Items[0].Status)
	assert.Equal(t, []string{"c1"}, page.Items[0].CaptionIDs)
}

func TestOpenEvaluationLockNeedsAConnection(t *testing.T) {
	_, err := postgres.OpenEvaluationLock(t.Context(), "postgres://127.0.0.1:1/none", 0)
	require.ErrorContains(t, err, "want at least 1")
}

// TestEvaluationLockPoolHoldsEveryEvaluationAndRefusesTheNextManualRun: a
// lock sized by the loop's MaxEvaluations holds Concurrency scheduled and
// MaxManualRuns manual evaluations at once, each in its own transaction, and
// one more manual run is refused at once rather than left waiting for a
// connection (which would end in a 503 "store unavailable").
func TestEvaluationLockPoolHoldsEveryEvaluationAndRefusesTheNextManualRun(t *testing.T) {
	dsn := pgtest.Start(t).NewDatabase(t)
	store, err := postgres.Open(t.Context(), dsn)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, store.Close()) })
	clock := domaintest.NewClock()
	cfg := domain.NudgeConfig{Concurrency: 2, MaxManualRuns: 2, Clock: clock, APIKey: "key"}
	release := make(chan struct{})
	entered := make(chan string, 8)
	decider := &domaintest.Decider{Answer: func(ctx context.Context, in ports.NudgeInput) (ports.NudgeDecision, error) {
		entered <- in.Device
		select {
		case <-release:
			return ports.NudgeDecision{Engine: "test"}, nil
		case <-ctx.Done():
			return ports.NudgeDecision{}, context.Cause(ctx)
		}
	}}
	loop, err := domain.NewNudgeLoop(domain.NudgePorts{Captions: store, Store: store, Decider: decider,
		Lock: openLockConns(t, dsn, cfg.MaxEvaluations()), Notifier: &domaintest.Notifier{}}, cfg)
	require.NoError(t, err)
	saveCaption := func(device string) {
		now := clock.Now()
		require.NoError(t, store.SaveCaptions(t.Context(), []ports.Caption{{
			ID: "c-" + device, Device: device, StreamID: "s-" + device, Start: now.Add(-2 * time.Second),
			End: now.Add(30 * time.Second), Text: "The wearer sits", Backend: "modal", Model: "gemma3",
		}}))
	}
	waitEntered := func(n int) {
		t.Helper()
		for range n {
			select {
			case <-entered:
			case <-time.After(time.Minute): // a guard against a hang, not a timing check
				t.Fatal("an evaluation never reached the decider")
			}
		}
	}

	// Concurrency scheduled evaluations, held in the decider.
	saveCaption("sched1")
	saveCaption("sched2")
	loop.Start()
	defer func() { require.NoError(t, loop.Stop(t.Context())) }()
	for clock.PendingTimers() < 1 {
		runtime.Gosched()
	}
	clock.Advance(domain.DefaultNudgeInterval)
	waitEntered(cfg.Concurrency)

	// MaxManualRuns manual runs, held too; they were listed after the tick
	// began, so the tick does not see their devices.
	var manual sync.WaitGroup
	for _, dev := range []string{"man1", "man2"} {
		saveCaption(dev)
		manual.Go(func() {
			_, err := loop.RunOnce(t.Context(), dev)
			assert.NoError(t, err, dev)
		})
	}
	waitEntered(cfg.MaxManualRuns)
	assert.Equal(t, cfg.MaxEvaluations(), heldAdvisoryLocks(t, dsn), "every evaluation holds its lock at once")

	// One more is refused at once. Without the bound it would wait in
	// pool.Begin for a connection until this guard ends it.
	saveCaption("man3")
	guard, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, err = loop.RunOnce(guard, "man3")
	require.ErrorIs(t, err, domain.ErrTooManyManualRuns)
	assert.Equal(t, cfg.MaxEvaluations(), heldAdvisoryLocks(t, dsn))

	close(release)
	manual.Wait()
	rec, err := loop.RunOnce(t.Context(), "man3")
	require.NoError(t, err, "a manual run once one has ended")
	assert.Equal(t, ports.VerdictNo, rec.Verdict)
	// Stop waits for the scheduled evaluations, whose records are written
	// even when the stop cuts their decision short.
	require.NoError(t, loop.Stop(t.Context()))
	page, err := store.ListInterventions(t.Context(), ports.InterventionQuery{})
	require.NoError(t, err)
	devices := map[string]int{}
	for _, r := range page.Items {
		devices[r.Device]++
	}
	assert.Equal(t, map[string]int{"sched1": 1, "sched2": 1, "man1": 1, "man2": 1, "man3": 1}, devices,
		"each held evaluation recorded its decision, the refused run none")
}

// heldAdvisoryLocks counts the advisory locks granted in dsn's database: one
// per evaluation in progress.
func heldAdvisoryLocks(t *testing.T, dsn string) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), dsn)
	require.NoError(t, err)
	defer func() { assert.NoError(t, conn.Close(context.Background())) }()
	var n int
	require.NoError(t, conn.QueryRow(t.Context(), `SELECT count(*) FROM pg_locks
		WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&n))
	return n
}
