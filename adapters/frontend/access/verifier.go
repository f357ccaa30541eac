package access

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/foresight-vision/foresight/ports"
)

// Defaults of VerifierConfig.
const (
	// CacheTTL is how long a verified token is trusted before the store is
	// asked again. A revocation reaches every instance within CacheTTL plus
	// one lookup: under the 5 s the docs promise.
	CacheTTL = 3 * time.Second
	// MaxCacheTTL bounds VerifierConfig.TTL, keeping that promise.
	MaxCacheTTL = 4 * time.Second
	// DefaultMaxCachedTokens bounds the cache. Only tokens the store knows
	// are cached, so a flood of made-up tokens costs lookups, not memory.
	DefaultMaxCachedTokens = 4096
	// TouchInterval is the least time between two writes of a token's
	// last-used time, so the write load stays one row a minute per token.
	TouchInterval = time.Minute
	// lookupTimeout bounds one store lookup or touch.
	lookupTimeout = 5 * time.Second
)

// Why a token is refused; the gate answers each with its own detail.
var (
	ErrInvalidToken = errors.New("invalid access token")
	ErrTokenRevoked = errors.New("access token revoked")
	ErrTokenExpired = errors.New("access token expired")
	// ErrNoTokenStore: the server keeps no database, so it has no tokens.
	ErrNoTokenStore = errors.New("access tokens need a database (FORESIGHT_DATABASE_URL is none)")
	// ErrTokenStoreUnavailable wraps a failed lookup.
	ErrTokenStoreUnavailable = errors.New("token store unavailable")
)

// VerifierConfig configures a Verifier.
type VerifierConfig struct {
	// Tokens is where tokens are looked up; nil means the server has none
	// (every token is refused with ErrNoTokenStore). A function, so the
	// store can open after the verifier is built.
	Tokens func() ports.TokenReader
	// TTL of a cached verification; zero means CacheTTL, more than
	// MaxCacheTTL is cut to it.
	TTL time.Duration
	// MaxEntries bounds the cache; zero means DefaultMaxCachedTokens.
	MaxEntries int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger gets a warning when a last-used write fails (token id only);
	// nil means slog.Default().
	Logger *slog.Logger
}

// Verifier turns a presented secret into a Principal, with a small cache so
// a stream's upgrade and a page's polling cost no store round trip each.
// Safe for concurrent use.
type Verifier struct {
	cfg    VerifierConfig
	flight singleflight.Group

	mu    sync.Mutex
	cache map[[32]byte]*cachedToken
}

type cachedToken struct {
	tok     ports.AccessToken
	fetched time.Time
	// touched is when this instance last wrote LastUsed (or saw it written).
	touched time.Time
}

// NewVerifier builds a Verifier from cfg.
func NewVerifier(cfg VerifierConfig) *Verifier {
	if cfg.TTL <= 0 {
		cfg.TTL = CacheTTL
	}
	cfg.TTL = min(cfg.TTL, MaxCacheTTL)
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxCachedTokens
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Verifier{cfg: cfg, cache: make(map[[32]byte]*cachedToken)}
}

// CachedTokens is how many verifications the cache holds now.
func (v *Verifier) CachedTokens() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.cache)
}

// Verify checks secret and returns its principal. The error is one of the
// Err values above (ErrTokenStoreUnavailable wrapped with the cause).
func (v *Verifier) Verify(ctx context.Context, secret string) (Principal, error) {
	if !WellFormed(secret) {
		return Principal{}, ErrInvalidToken // no lookup, no memory
	}
	var key [32]byte
	copy(key[:], HashSecret(secret))
	now := v.cfg.Now()
	tok, err := v.lookup(ctx, key, now)
	if err != nil {
		return Principal{}, err
	}
	switch {
	case !tok.Revoked.IsZero():
		return Principal{}, ErrTokenRevoked
	case !tok.Expires.IsZero() && !now.Before(tok.Expires):
		return Principal{}, ErrTokenExpired
	case tok.Role != ports.RoleAdmin && tok.Role != ports.RoleDevice:
		return Principal{}, ErrInvalidToken
	}
	v.touch(ctx, key, tok, now)
	p := Principal{TokenID: tok.ID, Role: tok.Role, Via: ViaToken}
	if tok.Role == ports.RoleDevice {
		p.Devices = tok.Devices
	}
	return p, nil
}

// lookup answers from the cache while fresh, else from the store (one
// lookup per secret at a time, however many requests wait for it).
func (v *Verifier) lookup(ctx context.Context, key [32]byte, now time.Time) (ports.AccessToken, error) {
	v.mu.Lock()
	if e, ok := v.cache[key]; ok && now.Sub(e.fetched) < v.cfg.TTL {
		tok := e.tok
		v.mu.Unlock()
		return tok, nil
	}
	v.mu.Unlock()
	var store ports.TokenReader
	if v.cfg.Tokens != nil {
		store = v.cfg.Tokens()
	}
	if store == nil {
		return ports.AccessToken{}, ErrNoTokenStore
	}
	res, err, _ := v.flight.Do(string(key[:]), func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookupTimeout)
		defer cancel()
		tok, err := store.TokenByHash(lctx, key[:])
		if errors.Is(err, ports.ErrTokenNotFound) {
			v.forget(key) // revoked by deletion, or never issued: nothing kept
			return nil, ErrInvalidToken
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrTokenStoreUnavailable, err)
		}
		tok.Hash = nil // the key already is the hash
		v.remember(key, tok, now)
		return tok, nil
	})
	if err != nil {
		return ports.AccessToken{}, err
	}
	return res.(ports.AccessToken), nil
}

func (v *Verifier) forget(key [32]byte) {
	v.mu.Lock()
	delete(v.cache, key)
	v.mu.Unlock()
}

// remember caches tok. When the cache is full, stale entries go first, then
// one arbitrary entry, so it never grows past MaxEntries.
func (v *Verifier) remember(key [32]byte, tok ports.AccessToken, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if e, ok := v.cache[key]; ok {
		e.tok, e.fetched = tok, now
		return
	}
	if len(v.cache) >= v.cfg.MaxEntries {
		for k, e := range v.cache {
			if now.Sub(e.fetched) >= v.cfg.TTL {
				delete(v.cache, k)
			}
		}
		for k := range v.cache {
			if len(v.cache) < v.cfg.MaxEntries {
				break
			}
			delete(v.cache, k)
		}
	}
	v.cache[key] = &cachedToken{tok: tok, fetched: now, touched: tok.LastUsed}
}

// touch writes the token's last-used time when the last write is at least
// TouchInterval old. A failed write is logged and does not refuse the token.
func (v *Verifier) touch(ctx context.Context, key [32]byte, tok ports.AccessToken, now time.Time) {
	v.mu.Lock()
	e, ok := v.cache[key]
	if !ok {
		v.mu.Unlock()
		return
	}
	last := e.touched
	if tok.LastUsed.After(last) {
		last = tok.LastUsed // another instance wrote it
	}
	if now.Sub(last) < TouchInterval {
		v.mu.Unlock()
		return
	}
	e.touched = now // claimed: concurrent requests do not write it again
	v.mu.Unlock()
	store := v.cfg.Tokens()
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lookupTimeout)
	defer cancel()
	if err := store.TouchToken(tctx, tok.ID, now); err != nil {
		v.cfg.Logger.Warn("could not record the access token's last use", "token_id", tok.ID, "err", err)
	}
}
