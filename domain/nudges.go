package domain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/foresight-vision/foresight/ports"
)

// Defaults of NudgeConfig.
const (
	DefaultNudgeInterval = 60 * time.Second
	DefaultNudgeCooldown = 10 * time.Minute
	// DefaultNudgePrefix goes before every nudge: the notifier is itself an
	// assistant and rewrites what it gets unless told not to.
	DefaultNudgePrefix        = "Send the following message to the user verbatim, without rewording it: "
	DefaultNudgeConcurrency   = 4
	DefaultNudgeMaxManualRuns = 4
	DefaultNudgeMaxAttempts   = 5
	DefaultNudgeRetryBackoff  = 2 * time.Second
	// nudgeStoreWriteBudget bounds a status write made after the
	// evaluation's own deadline has passed, so the record still tells the
	// truth about the delivery.
	nudgeStoreWriteBudget = 5 * time.Second
)

var (
	// ErrNoCaptions: the device has no new captions in the window (none, or
	// only ones an earlier decision judged already), so there is nothing to
	// decide on and no decider was asked.
	ErrNoCaptions = errors.New("no new captions in the window")
	// ErrEvaluationBusy: another evaluation of the device (here or on
	// another instance) holds this interval.
	ErrEvaluationBusy = errors.New("an evaluation of this device is already running or done for this interval")
	// ErrTooManyManualRuns: MaxManualRuns manual runs are in progress
	// already; the run was refused before it took the lock or read anything.
	ErrTooManyManualRuns = errors.New("too many manual runs in progress")
	errNudgeDeadline     = errors.New("nudge evaluation ran out of its interval")

	errNudgeStopped = errors.New("nudge loop stopped")
)

// The fixed record of a nudge held back because the device's own key
// cannot be had: sending it with the server's key instead would reach
// another person's phone.
const (
	DeviceKeyUnreadable   = "device poke key cannot be decrypted with the server's FORESIGHT_SECRET_KEY (or FORESIGHT_SECRET_KEY_PREVIOUS): not sent"
	DeviceKeyLookupFailed = "device poke key could not be read from the store: not sent"
)

// NudgeConfig tunes the nudge loop. A zero field takes its default.
type NudgeConfig struct {
	// Interval is the time between two evaluations of a device
	// (FORESIGHT_NUDGE_INTERVAL).
	Interval time.Duration
	// Window is how far back the captions of one evaluation reach
	// (FORESIGHT_NUDGE_WINDOW); zero means Interval.
	Window time.Duration
	// Settle is how late a caption may reach the store (after its chunk
	// ended: the model call, then the writer's batch) and still count as new
	// evidence: a caption that lands just after a slot boundary, with a time
	// before the next window, is still judged by the next evaluation instead
	// of falling between two windows. Only unjudged captions are taken from
	// that margin. Zero means none.
	Settle time.Duration
	// Cooldown is the least time between two delivered nudges to a device
	// (FORESIGHT_NUDGE_COOLDOWN), whatever the decider says. Zero means
	// none, as in the setting; DefaultNudgeCooldown is the setting's default.
	Cooldown time.Duration
	// Prefix goes before the message sent to the notifier
	// (FORESIGHT_NUDGE_PREFIX); empty sends the message alone, as the
	// setting's "none" does. DefaultNudgePrefix is the setting's default.
	Prefix string
	// APIKey is the server's key for the notifier. Empty:
	// decisions are recorded, delivery is "skipped: no key".
	APIKey string
	// Engine names the decider in records of failed decisions, whose
	// NudgeDecision is empty.
	Engine string
	// Concurrency bounds the devices evaluated at once on the schedule.
	Concurrency int
	// MaxManualRuns bounds the manual runs (RunOnce) in progress at once,
	// apart from the schedule's: over it RunOnce answers
	// ErrTooManyManualRuns at once. Each evaluation may hold a lock
	// resource (a Postgres connection) and a decider call for up to 9/10
	// of the interval, so an unbounded burst of them would starve the
	// schedule. See MaxEvaluations.
	MaxManualRuns int
	// MaxAttempts bounds the notifier calls for one decision; RetryBackoff
	// is the wait after the first failure, doubled after each. Retries stop
	// at the end of the interval, whichever comes first.
	MaxAttempts  int
	RetryBackoff time.Duration
	// Clock supplies time; nil means the system clock.
	Clock Clock
	// Observer is told about decisions, deliveries and model calls.
	Observer ports.NudgeObserver
	// Logger receives failures that have no record to land in (a caption
	// source or store outage); nil discards them.
	Logger *slog.Logger
}

func (c NudgeConfig) withDefaults() NudgeConfig {
	if c.Interval <= 0 {
		c.Interval = DefaultNudgeInterval
	}
	if c.Window <= 0 {
		c.Window = c.Interval
	}
	c.Cooldown = max(c.Cooldown, 0)
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultNudgeConcurrency
	}
	if c.MaxManualRuns <= 0 {
		c.MaxManualRuns = DefaultNudgeMaxManualRuns
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultNudgeMaxAttempts
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = DefaultNudgeRetryBackoff
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	if c.Observer == nil {
		c.Observer = ports.NopNudgeObserver{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// MaxEvaluations is the most evaluations one loop with this configuration
// has in progress at once, defaults filled: Concurrency scheduled plus
// MaxManualRuns manual ones. An EvaluationLock that holds a resource per
// evaluation needs that many to never make one wait.
func (c NudgeConfig) MaxEvaluations() int {
	c = c.withDefaults()
	return c.Concurrency + c.MaxManualRuns
}

// NudgePorts are what the nudge loop drives.
type NudgePorts struct {
	Captions ports.CaptionSource
	Decider  ports.NudgeDecider
	Store    ports.InterventionStore
	// Lock makes evaluations exclusive; nil means a LocalEvaluationLock,
	// right for a single instance.
	Lock     ports.EvaluationLock
	Notifier ports.Notifier
	// Keys, when set, names each device's own notifier key; a device
	// without one gets NudgeConfig.APIKey. nil: every device gets APIKey.
	Keys ports.NotifierKeys
	// Biometrics, when set, adds each device's biometric windows to its
	// evaluations, under the same evidence rule as captions; a device with
	// new windows is evaluated even when its captions stopped. nil: the
	// loop sees captions only.
	Biometrics ports.BiometricSource
}

// NudgeLoop evaluates every device with recent captions once per interval,
// records each decision and delivers the nudges it allows.
type NudgeLoop struct {
	cfg NudgeConfig
	p   NudgePorts

	manual chan struct{} // a token per manual run in progress
	// life ends at Stop: it cancels manual runs, which otherwise run on a
	// context of their own; manualRuns counts them for Stop to wait on.
	life       context.Context
	endLife    context.CancelCauseFunc
	manualRuns sync.WaitGroup

	mu            sync.Mutex
	lastDelivered map[string]time.Time // backs up the store for the cooldown
	stopped       bool
	cancel        context.CancelCauseFunc
	done          chan struct{}
}

// NewNudgeLoop checks the ports and returns a loop that is not yet started.
func NewNudgeLoop(p NudgePorts, cfg NudgeConfig) (*NudgeLoop, error) {
	switch {
	case p.Captions == nil:
		return nil, errors.New("nudge loop: no caption source")
	case p.Decider == nil:
		return nil, errors.New("nudge loop: no decider")
	case p.Store == nil:
		return nil, errors.New("nudge loop: no intervention store")
	case p.Notifier == nil:
		return nil, errors.New("nudge loop: no notifier")
	}
	if p.Lock == nil {
		p.Lock = NewLocalEvaluationLock()
	}
	cfg = cfg.withDefaults()
	life, endLife := context.WithCancelCause(context.Background())
	return &NudgeLoop{cfg: cfg, p: p, manual: make(chan struct{}, cfg.MaxManualRuns),
		life: life, endLife: endLife, lastDelivered: map[string]time.Time{}}, nil
}

// Config returns the configuration in use, defaults filled.
func (l *NudgeLoop) Config() NudgeConfig { return l.cfg }

// Start runs the loop in the background: the first evaluation is at the next
// interval boundary. Starting a started (or stopped) loop does nothing.
func (l *NudgeLoop) Start() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done != nil || l.stopped {
		return
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	l.cancel, l.done = cancel, make(chan struct{})
	go func(done chan struct{}) {
		defer close(done)
		l.run(ctx)
	}(l.done)
}

// Stop ends the loop, scheduled evaluations and manual runs alike, and waits
// for them to finish, or for ctx to end (then it returns ctx's error; the
// evaluations were cancelled and end on their own). Later manual runs are
// refused.
func (l *NudgeLoop) Stop(ctx context.Context) error {
	l.mu.Lock()
	cancel, done := l.cancel, l.done
	l.stopped = true
	l.mu.Unlock()
	l.endLife(errNudgeStopped)
	if cancel != nil {
		cancel(errNudgeStopped)
	}
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		if done != nil {
			<-done
		}
		l.manualRuns.Wait()
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stop nudge loop: %w", ctx.Err())
	}
}

func (l *NudgeLoop) run(ctx context.Context) {
	for {
		next := l.cfg.Clock.Now().Truncate(l.cfg.Interval).Add(l.cfg.Interval)
		if !sleepClock(ctx, l.cfg.Clock, next.Sub(l.cfg.Clock.Now())) {
			return
		}
		l.tick(ctx, next)
	}
}

// tick evaluates every active device for the interval starting at slot.
func (l *NudgeLoop) tick(ctx context.Context, slot time.Time) {
	devices, err := l.activeDevices(ctx, slot.Add(-l.cfg.Window-l.cfg.Settle))
	if err != nil {
		l.cfg.Logger.Warn("nudge loop: list active devices", "err", err)
		return
	}
	sem := make(chan struct{}, l.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, device := range devices {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			_, err := l.evaluate(ctx, device, slot)
			if err != nil && !errors.Is(err, ErrNoCaptions) && !errors.Is(err, ErrEvaluationBusy) {
				l.cfg.Logger.Warn("nudge loop: evaluation", "device", device, "err", err)
			}
		})
	}
	wg.Wait()
}

// RunOnce evaluates device now, outside the schedule (a manual run),
// under the same rules: lock, cooldown, delivery. It
// returns the stored record. With no new captions in the window it returns
// ErrNoCaptions; while another evaluation holds the device,
// ErrEvaluationBusy; while MaxManualRuns manual runs are in progress,
// ErrTooManyManualRuns, at once and without touching the lock or the store.
//
// The evaluation runs on a context of its own, bounded like a scheduled
// one and ended by Stop: ctx's values reach it, its end does not. A caller
// that gives up (an HTTP client hanging up) must not cut a delivery
// half-way, leaving a nudge sent but recorded as failed, with no cooldown.
func (l *NudgeLoop) RunOnce(ctx context.Context, device string) (ports.Intervention, error) {
	// Refused, not queued: a waiting run would only hold its caller for
	// a slot that may take most of an interval to free.
	select {
	case l.manual <- struct{}{}:
	default:
		return ports.Intervention{}, fmt.Errorf("%w (at most %d)", ErrTooManyManualRuns, l.cfg.MaxManualRuns)
	}
	defer func() { <-l.manual }()
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return ports.Intervention{}, errNudgeStopped
	}
	l.manualRuns.Add(1) // under mu, so Stop's Wait starts after it or sees it
	l.mu.Unlock()
	defer l.manualRuns.Done()

	runCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	defer cancel(context.Canceled)
	stopOnEnd := context.AfterFunc(l.life, func() { cancel(context.Cause(l.life)) })
	defer stopOnEnd()
	return l.evaluate(runCtx, device, time.Time{})
}

// evaluate runs one evaluation of device for the interval starting at slot
// (zero for a manual run). It returns the record as it was last written.
func (l *NudgeLoop) evaluate(ctx context.Context, device string, slot time.Time) (ports.Intervention, error) {
	// Everything, retries included, ends before the next interval starts,
	// so the next evaluation of the device finds the lock free.
	ctx, cancel := withClockTimeout(ctx, l.cfg.Clock, l.cfg.Interval*9/10, errNudgeDeadline)
	defer cancel()

	release, ok, err := l.p.Lock.TryAcquire(ctx, device, slot)
	if err != nil {
		return ports.Intervention{}, fmt.Errorf("acquire evaluation lock: %w", err)
	}
	if !ok {
		return ports.Intervention{}, ErrEvaluationBusy
	}
	defer release()

	now := l.cfg.Clock.Now()
	// The window's captions are context; only those no earlier decision
	// judged (New) may make this one act, so one piece of evidence nudges
	// at most once, and a device whose captions stopped is left alone.
	window, err := l.p.Captions.RecentCaptions(ctx, device, now.Add(-l.cfg.Window), now.Add(-l.cfg.Window-l.cfg.Settle))
	if err != nil {
		return ports.Intervention{}, fmt.Errorf("read captions: %w", err)
	}
	var body ports.BiometricSet
	if l.p.Biometrics != nil {
		body, err = l.p.Biometrics.RecentBiometrics(ctx, device, now.Add(-l.cfg.Window), now.Add(-l.cfg.Window-l.cfg.Settle))
		if err != nil {
			return ports.Intervention{}, fmt.Errorf("read biometric windows: %w", err)
		}
	}
	if !window.HasNew() && !body.HasNew() {
		return ports.Intervention{}, ErrNoCaptions
	}
	captions := window.Captions
	last, err := l.p.Store.LastDelivered(ctx, device)
	if err != nil {
		// Without it the cooldown cannot be kept: decide nothing.
		return ports.Intervention{}, fmt.Errorf("read last delivery: %w", err)
	}
	l.mu.Lock()
	if mem := l.lastDelivered[device]; mem.After(last) {
		last = mem
	}
	l.mu.Unlock()

	started := l.cfg.Clock.Now()
	// The decider gets 7/10 of the interval, so a model that does not answer
	// leaves time to record the failure and to deliver a "yes".
	decideCtx, cancelDecide := withClockTimeout(ctx, l.cfg.Clock, l.cfg.Interval*7/10, errNudgeDeadline)
	dec, decErr := l.p.Decider.Decide(decideCtx, ports.NudgeInput{Device: device, Now: now, Captions: captions,
		Biometrics: body.Windows, LastDelivered: last})
	cancelDecide()
	engine := dec.Engine
	if engine == "" {
		engine = l.cfg.Engine
	}
	l.cfg.Observer.NudgeModelCall(engine, l.cfg.Clock.Now().Sub(started), dec.PromptTokens, dec.CompletionTokens)
	if decErr == nil && dec.Deliver && dec.Message == "" {
		decErr = errors.New("decider chose to deliver an empty message")
	}

	var apiKey string // the key this decision's nudge goes with, once it is a yes
	rec := ports.Intervention{
		Device:           device,
		Time:             now,
		Engine:           engine,
		Reasoning:        dec.Reasoning,
		CaptionIDs:       captionIDs(captions),
		BiometricIDs:     biometricIDs(body.Windows),
		Model:            dec.Model,
		PromptTokens:     dec.PromptTokens,
		CompletionTokens: dec.CompletionTokens,
		Status:           ports.DeliveryNone,
	}
	switch {
	case decErr != nil:
		rec.Verdict, rec.Error = ports.VerdictError, decErr.Error()
	case !dec.Deliver:
		rec.Verdict = ports.VerdictNo
	default:
		rec.Verdict, rec.Nudge = ports.VerdictYes, dec.Message
		if !last.IsZero() && now.Sub(last) < l.cfg.Cooldown {
			rec.Status = ports.DeliverySuppressedCooldown
			break
		}
		var keyErr error
		apiKey, keyErr = l.notifierKey(ctx, device)
		switch {
		case keyErr != nil:
			rec.Status = ports.DeliveryFailed
			rec.Error = DeviceKeyLookupFailed
			if errors.Is(keyErr, ports.ErrNotifierKeyUnreadable) {
				rec.Error = DeviceKeyUnreadable
			}
			l.cfg.Logger.Warn("nudge loop: device poke key", "device", device, "err", keyErr)
		case apiKey == "":
			rec.Status = ports.DeliverySkippedNoKey
		default:
			rec.Status = ports.DeliveryPending
		}
	}

	// Recorded even when the evaluation's deadline has passed (a slow
	// model): every decision is stored, errors included.
	wctx, cancelWrite := withClockTimeout(context.WithoutCancel(ctx), l.cfg.Clock, nudgeStoreWriteBudget, errNudgeDeadline)
	stored, err := l.p.Store.CreateIntervention(wctx, rec)
	cancelWrite()
	if err != nil {
		// Unrecorded, a delivery could not be kept to once: send nothing.
		l.cfg.Observer.NudgeDecided(engine, "error")
		return rec, fmt.Errorf("record decision: %w", err)
	}
	rec = stored
	if decErr == nil {
		// The evidence is judged once the decision is on record; a failed
		// decision leaves it new for the next evaluation. Marked before
		// delivery: a nudge goes out only once its evidence can no longer
		// make another.
		wctx, cancelMark := withClockTimeout(context.WithoutCancel(ctx), l.cfg.Clock, nudgeStoreWriteBudget, errNudgeDeadline)
		err := l.markJudged(wctx, device, window, body)
		cancelMark()
		if err != nil {
			if rec.Status == ports.DeliveryPending {
				rec.Status, rec.Error = ports.DeliveryFailed, fmt.Sprintf("mark captions judged: %v", err)
				l.writeDelivery(ctx, rec)
			}
			l.cfg.Observer.NudgeDecided(engine, decisionOutcome(rec))
			return rec, fmt.Errorf("mark captions judged: %w", err)
		}
	}
	if rec.Status == ports.DeliveryPending {
		rec = l.deliver(ctx, rec, apiKey)
	}
	l.cfg.Observer.NudgeDecided(engine, decisionOutcome(rec))
	return rec, nil
}

// deliver sends rec's nudge, retrying with backoff until it succeeds, the
// attempts run out or the evaluation's deadline comes. The store is told
// before each attempt, so a record is never sent twice: one found "sending"
// after a crash is not retried.
func (l *NudgeLoop) deliver(ctx context.Context, rec ports.Intervention, apiKey string) ports.Intervention {
	backoff := l.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		rec.Status, rec.Attempts = ports.DeliverySending, attempt
		if err := l.p.Store.UpdateDelivery(ctx, rec.ID, ports.DeliveryUpdate{Status: rec.Status, Attempts: attempt, Error: rec.Error}); err != nil {
			// Unmarked, an attempt could end up repeated by nobody knows
			// whom: stop here. Say so if the store takes it (the mark may
			// have failed only for the evaluation's deadline), rather than
			// leave the record "pending" for good.
			rec.Status, rec.Attempts, rec.Error = ports.DeliveryFailed, attempt-1, fmt.Sprintf("mark sending: %v", err)
			l.writeDelivery(ctx, rec)
			return rec
		}
		_, err := l.p.Notifier.Notify(ctx, apiKey, l.cfg.Prefix+rec.Nudge)
		if err == nil {
			l.cfg.Observer.NudgeDeliveryAttempt("ok")
			rec.Status, rec.DeliveredAt, rec.Error = ports.DeliveryDelivered, l.cfg.Clock.Now(), ""
			l.mu.Lock()
			if rec.DeliveredAt.After(l.lastDelivered[rec.Device]) {
				l.lastDelivered[rec.Device] = rec.DeliveredAt
			}
			l.mu.Unlock()
			l.writeDelivery(ctx, rec)
			return rec
		}
		l.cfg.Observer.NudgeDeliveryAttempt("error")
		rec.Error = fmt.Sprintf("deliver: %v", err)
		if attempt >= l.cfg.MaxAttempts || !sleepClock(ctx, l.cfg.Clock, backoff) {
			rec.Status = ports.DeliveryFailed
			l.writeDelivery(ctx, rec)
			return rec
		}
		backoff *= 2
		rec.Status = ports.DeliveryPending
		l.writeDelivery(ctx, rec)
	}
}

// writeDelivery stores rec's delivery state, even when ctx has just ended.
func (l *NudgeLoop) writeDelivery(ctx context.Context, rec ports.Intervention) {
	wctx, cancel := withClockTimeout(context.WithoutCancel(ctx), l.cfg.Clock, nudgeStoreWriteBudget, errNudgeDeadline)
	defer cancel()
	u := ports.DeliveryUpdate{Status: rec.Status, DeliveredAt: rec.DeliveredAt, Attempts: rec.Attempts, Error: rec.Error}
	if err := l.p.Store.UpdateDelivery(wctx, rec.ID, u); err != nil {
		l.cfg.Logger.Warn("nudge loop: record delivery", "device", rec.Device, "intervention", rec.ID, "status", string(rec.Status), "err", err)
	}
}

// notifierKey is the key device's nudges go with: its own, else the
// server's ("" when neither is set).
func (l *NudgeLoop) notifierKey(ctx context.Context, device string) (string, error) {
	if l.p.Keys != nil {
		key, err := l.p.Keys.NotifierKey(ctx, device)
		if err != nil || key != "" {
			return key, err
		}
	}
	return l.cfg.APIKey, nil
}

func decisionOutcome(rec ports.Intervention) string {
	switch rec.Status {
	case ports.DeliveryDelivered:
		return "delivered"
	case ports.DeliveryFailed:
		return "failed"
	case ports.DeliverySuppressedCooldown:
		return "suppressed_cooldown"
	case ports.DeliverySkippedNoKey:
		return "skipped_no_key"
	}
	if rec.Verdict == ports.VerdictError {
		return "error"
	}
	return "no"
}

// activeDevices lists the devices with captions, or biometric windows,
// since t, sorted and each once.
func (l *NudgeLoop) activeDevices(ctx context.Context, since time.Time) ([]string, error) {
	devices, err := l.p.Captions.ActiveDevices(ctx, since)
	if err != nil || l.p.Biometrics == nil {
		return devices, err
	}
	more, err := l.p.Biometrics.ActiveBiometricDevices(ctx, since)
	if err != nil {
		return nil, fmt.Errorf("biometric devices: %w", err)
	}
	devices = append(devices, more...)
	slices.Sort(devices)
	return slices.Compact(devices), nil
}

// markJudged records the marks of what the decision saw: its captions and
// its biometric windows (each kind's own mark; an empty kind has none).
func (l *NudgeLoop) markJudged(ctx context.Context, device string, window ports.CaptionWindow, body ports.BiometricSet) error {
	if window.Mark != "" {
		if err := l.p.Captions.MarkJudged(ctx, device, window.Mark); err != nil {
			return err
		}
	}
	if body.Mark != "" && l.p.Biometrics != nil {
		if err := l.p.Biometrics.MarkBiometricsJudged(ctx, device, body.Mark); err != nil {
			return fmt.Errorf("biometric windows: %w", err)
		}
	}
	return nil
}

func biometricIDs(ws []ports.BiometricRef) []string {
	ids := make([]string, len(ws))
	for i, w := range ws {
		ids[i] = w.ID
	}
	return ids
}

func captionIDs(cs []ports.CaptionRef) []string {
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = c.ID
	}
	return ids
}

// sleepClock waits d on clock; false when ctx ended first.
func sleepClock(ctx context.Context, clock Clock, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	fired := make(chan struct{})
	stop := clock.AfterFunc(d, func() { close(fired) })
	select {
	case <-fired:
		return true
	case <-ctx.Done():
		stop()
		return false
	}
}

// withClockTimeout is context.WithTimeout on the domain's Clock.
func withClockTimeout(parent context.Context, clock Clock, d time.Duration, cause error) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	stop := clock.AfterFunc(d, func() { cancel(cause) })
	return ctx, func() {
		stop()
		cancel(context.Canceled)
	}
}

// LocalEvaluationLock is the in-process ports.EvaluationLock: right when a
// single instance runs the loop over a store no other instance shares. It
// keeps one small entry per device the schedule evaluated (a device with
// captions); a manual run's entry goes with its release, so runs for
// made-up devices leave nothing behind.
type LocalEvaluationLock struct {
	mu      sync.Mutex
	devices map[string]*localSlot
}

type localSlot struct {
	running bool
	claimed time.Time // latest slot claimed
}

// NewLocalEvaluationLock returns an empty lock.
func NewLocalEvaluationLock() *LocalEvaluationLock {
	return &LocalEvaluationLock{devices: map[string]*localSlot{}}
}

// TryAcquire implements ports.EvaluationLock.
func (l *LocalEvaluationLock) TryAcquire(_ context.Context, device string, slot time.Time) (func(), bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.devices[device]
	if s == nil {
		s = &localSlot{}
		l.devices[device] = s
	}
	if s.running || (!slot.IsZero() && !slot.After(s.claimed)) {
		return nil, false, nil
	}
	s.running = true
	if !slot.IsZero() {
		s.claimed = slot
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			s.running = false
			if s.claimed.IsZero() {
				delete(l.devices, device)
			}
			l.mu.Unlock()
		})
	}, true, nil
}

// Devices reports how many devices the lock keeps an entry for.
func (l *LocalEvaluationLock) Devices() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.devices)
}
