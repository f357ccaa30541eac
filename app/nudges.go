package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/foresight-vision/foresight/adapters/decide/nudgellm"
	"github.com/foresight-vision/foresight/adapters/decide/nudgerules"
	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/adapters/notify/poke"
	"github.com/foresight-vision/foresight/adapters/observe/metrics"
	"github.com/foresight-vision/foresight/adapters/store/postgres"
	"github.com/foresight-vision/foresight/adapters/store/sqlite"
	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/ports"
)

// nudgeStore is what the nudge loop needs of the caption store: its
// captions and the audit of decisions, in the same database.
type nudgeStore interface {
	ports.CaptionSource
	ports.InterventionStore
}

// checkNudges refuses nudge settings that cannot work, before anything
// starts.
func (c Config) checkNudges() error {
	if c.Nudges == NudgesOff || c.Nudges == "" {
		return nil
	}
	if c.DatabaseURL == StoreNone {
		return fmt.Errorf("config: FORESIGHT_NUDGES=%s needs a caption store (every decision is recorded with the captions): set FORESIGHT_DATABASE_URL to sqlite:<path> or postgres://…", c.Nudges)
	}
	switch c.Nudges {
	case NudgesRules:
		if strings.TrimSpace(c.NudgeRules) == "" {
			return errors.New("config: FORESIGHT_NUDGES=rules needs a rules file: set FORESIGHT_NUDGE_RULES (e.g. docs/examples/nudge-rules.yaml)")
		}
	case NudgesLLM:
		if strings.TrimSpace(c.nudgeLLMConfig().Model) == "" {
			return errors.New("config: FORESIGHT_NUDGES=llm needs a model: set FORESIGHT_NUDGE_LLM_MODEL (or FORESIGHT_OPENAI_MODEL)")
		}
	}
	return nil
}

// sameHost reports whether two URLs name the same host and port.
func sameHost(a, b string) bool {
	ua, errA := url.Parse(a)
	ub, errB := url.Parse(b)
	return errA == nil && errB == nil && strings.EqualFold(ua.Host, ub.Host)
}

// nudgeLLMConfig is the llm decider's configuration: each FORESIGHT_NUDGE_LLM_*
// setting falls back to the OpenAI backend's (itself falling back to
// OPENAI_*), so one server and key can serve both.
func (c Config) nudgeLLMConfig() nudgellm.Config {
	orElse := func(v, fallback string) string {
		if v != "" {
			return v
		}
		return fallback
	}
	baseURL := orElse(c.NudgeLLMBaseURL, c.OpenAIBaseURL)
	// The caption backend's key belongs to its host: it is the nudge
	// model's fallback only where that model is served by the same host.
	fallbackKey := ""
	if sameHost(baseURL, c.OpenAIBaseURL) {
		fallbackKey = c.OpenAIAPIKey
	}
	return nudgellm.Config{
		BaseURL:        baseURL,
		APIKey:         orElse(c.NudgeLLMAPIKey, fallbackKey),
		Model:          orElse(c.NudgeLLMModel, c.OpenAIModel),
		Prompt:         c.NudgePrompt,
		ResponseFormat: nudgellm.ResponseFormat(c.NudgeLLMResponseFormat),
	}
}

// nudgeRetryBackoff is the wait after a failed delivery: the domain's, or
// a tenth of the interval when that is shorter, so a short interval still
// leaves room for retries (all of an evaluation ends within the interval).
func (c Config) nudgeRetryBackoff() time.Duration {
	return min(domain.DefaultNudgeRetryBackoff, c.NudgeInterval/10)
}

// nudges is the nudge loop as the app runs it: the decider is built with
// the server (so a broken rules file stops the start), the loop and the
// lock once the caption store is open. It gives GET /interventions its
// store and POST /interventions/run its loop.
type nudges struct {
	cfg      Config
	mem      *captionMemory
	notifier ports.Notifier
	obs      ports.NudgeObserver
	logger   *slog.Logger

	decider      ports.NudgeDecider // nil when off
	closeDecider func()

	// Set by open, before the server listens, and not changed after.
	lock *postgres.EvaluationLock // nil: the loop's local lock
	// unlockFile releases the SQLite file's nudge loop lock; nil when not held.
	unlockFile func()
	loop       *domain.NudgeLoop // nil when off
	store      nudgeStore        // nil without a caption store
	// elsewhere answers manual runs when another process holds the loop.
	elsewhere httpapi.InterventionRunner
}

func newNudges(cfg Config, mem *captionMemory, notifier *poke.Client, m *metrics.Metrics, logger *slog.Logger) (*nudges, error) {
	n := &nudges{cfg: cfg, mem: mem, notifier: notifier, obs: ports.NopNudgeObserver{}, logger: logger, closeDecider: func() {}}
	switch cfg.Nudges {
	case NudgesRules:
		d, err := nudgerules.Load(cfg.NudgeRules)
		if err != nil {
			return nil, fmt.Errorf("nudges: %w", err) // names the file and the rule
		}
		n.decider = d
	case NudgesLLM:
		d, err := nudgellm.New(cfg.nudgeLLMConfig())
		if err != nil {
			return nil, fmt.Errorf("nudges: %w", err)
		}
		n.decider, n.closeDecider = d, d.Close
	default:
		return n, nil
	}
	if m != nil {
		obs, err := metrics.NewNudgeMetrics(m)
		if err != nil {
			n.closeDecider()
			return nil, err
		}
		n.obs = obs
	}
	return n, nil
}

// open builds the loop on the open caption store (and, on Postgres, the
// lock shared by every instance), ready to start.
func (n *nudges) open(ctx context.Context) error {
	store, _ := n.mem.store.(nudgeStore)
	n.store = store
	if n.decider == nil {
		n.logger.Info("nudges off", "setting", "FORESIGHT_NUDGES")
		return nil
	}
	if store == nil { // checkNudges refuses this; a store without the audit would lose decisions
		return errors.New("nudges: the caption store keeps no interventions")
	}
	loopCfg := domain.NudgeConfig{
		Interval: n.cfg.NudgeInterval,
		Window:   n.cfg.NudgeWindow,
		// A caption reaches the store up to one model call and one writer
		// batch after its chunk ends.
		Settle:       n.cfg.InferenceTimeout + domain.DefaultRecorderFlushInterval,
		Cooldown:     n.cfg.NudgeCooldown,
		Prefix:       n.cfg.NudgePrefix,
		APIKey:       n.cfg.PokeAPIKey,
		Engine:       n.cfg.Nudges,
		RetryBackoff: n.cfg.nudgeRetryBackoff(),
		Observer:     n.obs,
		Logger:       n.logger,
	}
	var lock ports.EvaluationLock
	kind, dsn, _ := ParseDatabaseURL(n.cfg.DatabaseURL)
	if kind == StoreSQLite {
		// The loop's lock and memory are this process's: a second process
		// on the file would deliver the same nudges. It refuses, not waits:
		// a waiting loop would start whenever the first stops, unseen.
		unlock, err := sqlite.LockNudgeLoop(dsn)
		if errors.Is(err, sqlite.ErrNudgeLoopHeld) {
			n.logger.Warn("nudges off in this process: another process runs the nudge loop on this SQLite file",
				"database_url", RedactDatabaseURL(n.cfg.DatabaseURL), "lock", sqlite.NudgeLoopLockPath(dsn))
			n.elsewhere = httpapi.NudgesOff("nudges are off in this process: another process runs the nudge loop on this SQLite file")
			return nil
		}
		if err != nil {
			return fmt.Errorf("nudges: %w", err)
		}
		n.unlockFile = unlock
	}
	if kind == StorePostgres {
		// One connection per evaluation the loop can run at once, manual
		// runs included, so none ever waits for one.
		l, err := postgres.OpenEvaluationLock(ctx, dsn, loopCfg.MaxEvaluations())
		if err != nil {
			return fmt.Errorf("nudges: evaluation lock on %s: %w", RedactDatabaseURL(n.cfg.DatabaseURL), err)
		}
		n.lock, lock = l, l
	}
	keys, err := n.deviceKeys(store)
	if err != nil {
		n.closeLock()
		return fmt.Errorf("nudges: %w", err)
	}
	// Both stores keep biometric windows beside the captions: the loop
	// sees the wearer's body too.
	body, _ := store.(ports.BiometricSource)
	loop, err := domain.NewNudgeLoop(domain.NudgePorts{
		Captions:   store,
		Decider:    n.decider,
		Store:      store,
		Lock:       lock,
		Notifier:   n.notifier,
		Keys:       keys,
		Biometrics: body,
	}, loopCfg)
	if err != nil {
		n.closeLock()
		return fmt.Errorf("nudges: %w", err)
	}
	n.loop = loop
	lc := loop.Config()
	n.logger.Info("nudges on", "engine", n.cfg.Nudges, "interval", lc.Interval, "window", lc.Window,
		"cooldown", lc.Cooldown, "max_manual_runs", lc.MaxManualRuns, "delivery_key", n.cfg.PokeAPIKey != "", "device_keys", n.cfg.SecretKey != "", "shared_lock", n.lock != nil)
	return nil
}

// start runs the loop, once the server listens.
func (n *nudges) start() {
	if n.loop != nil {
		n.loop.Start()
	}
}

// stopSteps are the loop's part of the stop sequence: after the streams
// (no more captions) and before the recorder, the store and the notifier
// close, so no evaluation reads a closed store or delivers on a closed
// notifier.
func (n *nudges) stopSteps() []stopStep {
	return []stopStep{
		{"nudge loop", func(ctx context.Context) error {
			if n.loop == nil {
				return nil
			}
			return n.loop.Stop(ctx)
		}},
		{"nudge lock and decider", func(context.Context) error {
			n.closeLock()
			n.closeDecider()
			return nil
		}},
	}
}

func (n *nudges) closeLock() {
	if n.lock != nil {
		_ = n.lock.Close()
		n.lock = nil
	}
	if n.unlockFile != nil {
		n.unlockFile()
		n.unlockFile = nil
	}
}

// interventionLister is what GET /interventions reads: the store's
// decisions (old ones too with nudges off), or nil without a store.
func (n *nudges) interventionLister() httpapi.InterventionLister {
	if n.store == nil {
		return nil
	}
	return n.store
}

// interventionRunner is what POST /interventions/run runs: the loop, or nil
// with nudges off.
func (n *nudges) interventionRunner() httpapi.InterventionRunner {
	if n.loop == nil {
		return n.elsewhere // nil unless another process runs the loop
	}
	return n.loop
}
