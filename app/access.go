package app

import (
	"context"
	"errors"
	"log/slog"

	"github.com/foresight-vision/foresight/adapters/frontend/access"
	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/ports"
)

// checkAccess refuses access settings that cannot work: tokens live in the
// database, so requiring them needs one.
func (c Config) checkAccess() error {
	if !c.RequireTokens {
		return nil
	}
	if kind, _, err := ParseDatabaseURL(c.DatabaseURL); err == nil && kind == StoreNone {
		return errors.New("config: FORESIGHT_REQUIRE_TOKENS=true needs a database (tokens are kept there): set FORESIGHT_DATABASE_URL to sqlite:<path> or postgres://…")
	}
	return nil
}

// newAccessGate is the server's gate: tokens from the caption database, the
// magic word as an admin credential unless tokens are required, and the
// operator's routes (/status, /debug/pprof, /poke/send) for admins only.
func newAccessGate(cfg Config, mem *captionMemory, logger *slog.Logger) *access.Gate {
	verifier := access.NewVerifier(access.VerifierConfig{Tokens: mem.tokens, Logger: logger})
	publicPaths := cfg.PublicPaths
	return access.NewGate(access.GateConfig{
		Verifier:      verifier,
		MagicWord:     cfg.MagicWord,
		RequireTokens: cfg.RequireTokens,
		PublicPaths:   publicPaths,
		AdminOnly:     httpapi.AdminOnly,
		Logger:        logger,
	})
}

// tokens is the open store's token table, or nil before open or without a
// store. The store is set before the server listens and never changed.
func (c *captionMemory) tokens() ports.TokenReader {
	if t, ok := c.store.(ports.TokenReader); ok {
		return t
	}
	return nil
}

// TokenStore is the token table of the database FORESIGHT_DATABASE_URL
// names, for `foresight token`.
type TokenStore interface {
	ports.TokenStore
	Close() error
}

// OpenTokenStore opens the database url names (applying migrations under
// the same lock a server takes, so it is safe beside a running server).
func OpenTokenStore(ctx context.Context, url string) (TokenStore, error) {
	if kind, _, err := ParseDatabaseURL(url); err == nil && kind == StoreNone {
		return nil, errors.New("FORESIGHT_DATABASE_URL is none: tokens live in the database; set it to the server's sqlite:<path> or postgres://…")
	}
	return openDatabase(ctx, url)
}
