package ports

import (
	"context"
	"errors"
	"time"
)

// Role is what an access token may do.
type Role string

const (
	// RoleDevice acts for the token's own devices only.
	RoleDevice Role = "device"
	// RoleAdmin acts for every device and reaches the operator's routes.
	RoleAdmin Role = "admin"
)

// AccessToken is one stored credential. The secret itself is never stored:
// Hash is its SHA-256.
type AccessToken struct {
	// ID is short and public ("tok_…"): it names the token in lists,
	// revocation and logs.
	ID   string
	Hash []byte
	Name string
	Role Role
	// Devices are the devices the token acts for, at least one.
	Devices []string
	Created time.Time
	// Expires, Revoked and LastUsed are zero when never (set).
	Expires  time.Time
	Revoked  time.Time
	LastUsed time.Time
}

// ErrTokenNotFound is returned for a hash or id that names no stored token.
var ErrTokenNotFound = errors.New("access token not found")

// TokenReader finds tokens by the hash of their secret (the server's check).
type TokenReader interface {
	// TokenByHash returns the token whose Hash is hash, revoked and expired
	// ones included (the caller decides); ErrTokenNotFound when none.
	TokenByHash(ctx context.Context, hash []byte) (AccessToken, error)
	// TouchToken sets the token's LastUsed to at.
	TouchToken(ctx context.Context, id string, at time.Time) error
}

// TokenStore keeps the access tokens (in the caption database, so every
// instance sharing it sees the same tokens).
type TokenStore interface {
	TokenReader
	// CreateToken stores tok; its ID and Hash must be new.
	CreateToken(ctx context.Context, tok AccessToken) error
	// ListTokens returns every token, oldest first.
	ListTokens(ctx context.Context) ([]AccessToken, error)
	// RevokeToken sets the token's Revoked to at, once: revoking a revoked
	// token keeps its first time. ErrTokenNotFound when id names none.
	RevokeToken(ctx context.Context, id string, at time.Time) error
}
