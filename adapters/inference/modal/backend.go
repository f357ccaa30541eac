// Package modal is the inference backend over Modal: it calls a deployed
// remote class (Gemma 3 by default, or the legacy StreamingVLM) through
// modal-go, one class instance per stream.
//
// Each stream's call is spawned and waited on under the caller's context;
// when that context ends the remote call is cancelled so no GPU keeps working
// for nobody. One SDK client is kept per distinct credential set and shared by
// the streams using it.
package modal

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	//lint:ignore SA1019 the adapter is built and tested on libmodal v0.7.3; moving to its successor, modal-client/go, is a change of its own
	modalsdk "github.com/modal-labs/libmodal/modal-go"
	"golang.org/x/sync/semaphore"

	"github.com/foresight-vision/foresight/adapters/inference/modal/modalheader"
	"github.com/foresight-vision/foresight/ports"
)

// Backend opens Modal inference sessions. It implements
// ports.InferenceBackend. Close it at shutdown, after the sessions.
type Backend struct {
	cfg    Config
	preset preset
	log    *slog.Logger

	// spawnBudget holds the frame bytes of the spawns in progress.
	spawnBudget *semaphore.Weighted
	// spawnSlots holds one token per spawn encoding or sending its chunk.
	spawnSlots chan struct{}

	mu      sync.Mutex
	clients map[[sha256.Size]byte]*clientEntry
	tick    uint64 // orders client use, for evicting the least recently used
	closed  bool
}

// clientEntry is one shared SDK client and the sessions holding it.
type clientEntry struct {
	key      [sha256.Size]byte
	client   *modalsdk.Client
	refs     int
	lastUsed uint64
}

var _ ports.InferenceBackend = (*Backend)(nil)

// New returns a Backend. Zero bounds in cfg get their defaults; an unknown
// preset is an error.
func New(cfg Config) (*Backend, error) {
	if cfg.Preset == "" {
		cfg.Preset = PresetGemma3
	}
	p, ok := presets[strings.ToLower(cfg.Preset)]
	if !ok {
		return nil, fmt.Errorf("modal backend: unknown preset %q (want gemma3 or streamingvlm)", cfg.Preset)
	}
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = DefaultMaxClients
	}
	if cfg.CancelTimeout <= 0 {
		cfg.CancelTimeout = DefaultCancelTimeout
	}
	if cfg.CloseTimeout <= 0 {
		cfg.CloseTimeout = DefaultCloseTimeout
	}
	if cfg.MaxConcurrentSpawns <= 0 {
		cfg.MaxConcurrentSpawns = DefaultMaxConcurrentSpawns
	}
	if cfg.SpawnSlotHold <= 0 {
		cfg.SpawnSlotHold = DefaultSpawnSlotHold
	}
	if cfg.MaxSpawnBytes <= 0 {
		cfg.MaxSpawnBytes = DefaultMaxSpawnBytes
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Backend{
		cfg:         cfg,
		spawnBudget: semaphore.NewWeighted(cfg.MaxSpawnBytes),
		spawnSlots:  make(chan struct{}, cfg.MaxConcurrentSpawns),
		preset:      p,
		log:         log.With("component", "modal"),
		clients:     map[[sha256.Size]byte]*clientEntry{},
	}, nil
}

// spawnWeight is what a spawn of size frame bytes takes from the spawn
// budget: at least one byte, so a call without frames is bounded too, and
// at most all of it, so a chunk larger than the budget is spawned alone.
func (b *Backend) spawnWeight(size int64) int64 {
	return min(max(size, 1), b.cfg.MaxSpawnBytes)
}

// takeSpawnSlot waits for one of the spawn slots and returns the function
// that gives it back (safe to call more than once). The slot also goes back
// by itself after SpawnSlotHold: a spawn still running by then is, as a
// rule, waiting on the network, not using a core.
func (b *Backend) takeSpawnSlot(ctx context.Context) (free func(), err error) {
	select {
	case b.spawnSlots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var once sync.Once
	giveBack := func() { once.Do(func() { <-b.spawnSlots }) }
	t := time.AfterFunc(b.cfg.SpawnSlotHold, giveBack)
	return func() { t.Stop(); giveBack() }, nil
}

// target is what one stream calls, after resolution.
type target struct {
	tokenID, tokenSecret, app, class string
}

// resolve applies "stream option, then Config, then preset default" per
// field. The options were vetted by the caller's trust policy (adapters/frontend/trust)
// before they got here; modalheader.SessionOptions is how they are read.
func (b *Backend) resolve(options map[string]string) target {
	pick := func(key, fromConfig, fromPreset string) string {
		if v := strings.TrimSpace(options[key]); v != "" {
			return v
		}
		if fromConfig != "" {
			return fromConfig
		}
		return fromPreset
	}
	return target{
		tokenID:     pick(modalheader.OptionTokenID, b.cfg.TokenID, ""),
		tokenSecret: pick(modalheader.OptionTokenSecret, b.cfg.TokenSecret, ""),
		app:         pick(modalheader.OptionAppName, b.cfg.AppName, b.preset.app),
		class:       pick(modalheader.OptionClassName, b.cfg.ClassName, b.preset.class),
	}
}

// OpenSession looks the stream's class up, makes one instance of it and
// returns a session calling it. Without credentials it returns
// ports.ErrNoInference. Any other failure is an error whose
// text never contains the token secret.
func (b *Backend) OpenSession(ctx context.Context, req ports.SessionRequest) (ports.InferenceSession, error) {
	t := b.resolve(req.Options)
	if t.tokenID == "" || t.tokenSecret == "" {
		b.log.DebugContext(ctx, "no Modal credentials: inference disabled for stream", "stream_id", req.StreamID)
		return nil, ports.ErrNoInference
	}
	s, err := b.open(ctx, req.StreamID, t)
	if err != nil {
		return nil, redact(fmt.Errorf("open modal session for %s/%s: %w", t.app, t.class, err), t.tokenSecret)
	}
	return s, nil
}

func (b *Backend) open(ctx context.Context, streamID string, t target) (*session, error) {
	entry, err := b.acquire(t.tokenID, t.tokenSecret)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			b.release(entry)
		}
	}()

	cls, err := entry.client.Cls.FromName(ctx, t.app, t.class, &modalsdk.ClsFromNameParams{Environment: b.cfg.Environment})
	if err != nil {
		return nil, fmt.Errorf("look up class: %w", err)
	}
	inst, err := cls.Instance(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("create instance: %w", err)
	}
	infer, err := inst.Method("infer_chunk")
	if err != nil {
		return nil, err
	}
	closeFn, err := inst.Method("close")
	if err != nil {
		return nil, err
	}
	ok = true
	return &session{
		backend:  b,
		entry:    entry,
		streamID: streamID,
		sendID:   b.cfg.SendSessionID && streamID != "",
		infer:    infer,
		closeFn:  closeFn,
		log:      b.log.With("stream_id", streamID, "app", t.app, "class", t.class),
	}, nil
}

// acquire returns the shared client for a credential set, creating it on
// first use. The SDK dials lazily, so creating it under the lock is cheap.
func (b *Backend) acquire(tokenID, tokenSecret string) (*clientEntry, error) {
	// Keyed by a hash so the map does not hold the secret in the clear.
	key := sha256.Sum256([]byte(tokenID + "\x00" + tokenSecret + "\x00" + b.cfg.Environment))
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, errors.New("modal backend is closed")
	}
	b.tick++
	if e, ok := b.clients[key]; ok {
		e.refs++
		e.lastUsed = b.tick
		return e, nil
	}
	c, err := modalsdk.NewClientWithOptions(&modalsdk.ClientParams{
		TokenID:     tokenID,
		TokenSecret: tokenSecret,
		Environment: b.cfg.Environment,
		Logger:      b.log.With("component", "modal-sdk"),
	})
	if err != nil {
		return nil, fmt.Errorf("create modal client: %w", err)
	}
	e := &clientEntry{key: key, client: c, refs: 1, lastUsed: b.tick}
	b.clients[key] = e
	b.evictLocked()
	return e, nil
}

// release drops a session's hold on a client, then trims idle clients.
func (b *Backend) release(e *clientEntry) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if cur, ok := b.clients[e.key]; !ok || cur != e {
		return // already closed by Backend.Close
	}
	e.refs--
	b.evictLocked()
}

// evictLocked closes least recently used idle clients while there are more
// than MaxClients. Clients in use stay, even over the bound.
func (b *Backend) evictLocked() {
	for len(b.clients) > b.cfg.MaxClients {
		var victim *clientEntry
		for _, e := range b.clients {
			if e.refs == 0 && (victim == nil || e.lastUsed < victim.lastUsed) {
				victim = e
			}
		}
		if victim == nil {
			return
		}
		delete(b.clients, victim.key)
		victim.client.Close()
	}
}

// clientCount reports how many SDK clients are open (for tests).
func (b *Backend) clientCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.clients)
}

// clientRefs reports how many sessions hold a client (for tests).
func (b *Backend) clientRefs() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, e := range b.clients {
		n += e.refs
	}
	return n
}

// Close closes every SDK client. Sessions still open fail from then on, so
// close them first. Later OpenSession calls fail.
func (b *Backend) Close() error {
	b.mu.Lock()
	clients := b.clients
	b.clients = map[[sha256.Size]byte]*clientEntry{}
	b.closed = true
	b.mu.Unlock()
	for _, e := range clients {
		if e.refs > 0 {
			b.log.Warn("closing Modal client still used by open sessions", "sessions", e.refs)
		}
		e.client.Close()
	}
	return nil
}

// redactedError hides a secret in an error's text while keeping the chain
// for errors.Is and errors.As.
type redactedError struct {
	err    error
	secret string
}

func (e *redactedError) Error() string {
	return strings.ReplaceAll(e.err.Error(), e.secret, "[redacted]")
}

func (e *redactedError) Unwrap() error { return e.err }

func redact(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return &redactedError{err: err, secret: secret}
}

// sinceMS is the elapsed time in whole milliseconds.
func sinceMS(start time.Time) int {
	return int(time.Since(start).Milliseconds())
}
