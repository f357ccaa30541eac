// Package accesstest is the contract every ports.TokenStore keeps, as a test
// suite an adapter runs against its real database:
//
//	accesstest.Run(t, accesstest.Harness{NewLocation: ..., Open: ...})
package accesstest

import (
	"context"
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/ports"
)

// Store is what the suite needs of a database.
type Store interface {
	ports.TokenStore
	Close() error
}

// Harness tells the suite how to reach the store under test.
type Harness struct {
	// NewLocation returns a fresh, empty database (a file path or a DSN)
	// that lives as long as t.
	NewLocation func(t *testing.T) string
	// Open opens a store on a location, applying migrations. The suite
	// closes what it opens.
	Open func(ctx context.Context, location string) (Store, error)
}

// base is the instant the suite's tokens are created at.
var base = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)

// Token returns a device token created i seconds after a fixed instant,
// whose secret is "secret-<i>".
func Token(i int, role ports.Role, devices ...string) ports.AccessToken {
	sum := sha256.Sum256(fmt.Appendf(nil, "secret-%d", i))
	return ports.AccessToken{
		ID: fmt.Sprintf("tok_%04d", i), Hash: sum[:], Name: fmt.Sprintf("token %d", i), Role: role,
		Devices: devices, Created: base.Add(time.Duration(i) * time.Second),
	}
}

// Run runs the contract as subtests of t.
func Run(t *testing.T, h Harness) {
	open := func(t *testing.T, loc string) Store {
		t.Helper()
		s, err := h.Open(t.Context(), loc)
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, s.Close()) })
		return s
	}
	fresh := func(t *testing.T) Store { return open(t, h.NewLocation(t)) }

	t.Run("CreateAndFindByHashEveryField", func(t *testing.T) {
		s := fresh(t)
		a := Token(1, ports.RoleDevice, "kit", "kit-2")
		a.Created = a.Created.Add(123456789 * time.Nanosecond) // kept to the microsecond
		a.Expires = base.Add(720 * time.Hour)
		b := Token(2, ports.RoleAdmin, "ops")
		require.NoError(t, s.CreateToken(t.Context(), a))
		require.NoError(t, s.CreateToken(t.Context(), b))

		got, err := s.TokenByHash(t.Context(), a.Hash)
		require.NoError(t, err)
		a.Created = a.Created.Truncate(time.Microsecond)
		assert.Equal(t, a, got)
		got, err = s.TokenByHash(t.Context(), b.Hash)
		require.NoError(t, err)
		assert.Equal(t, b, got)
		assert.True(t, got.Expires.IsZero() && got.Revoked.IsZero() && got.LastUsed.IsZero(), "never is the zero time")
	})

	t.Run("UnknownHashIsNotFound", func(t *testing.T) {
		s := fresh(t)
		require.NoError(t, s.CreateToken(t.Context(), Token(1, ports.RoleDevice, "kit")))
		other := sha256.Sum256([]byte("secret-2"))
		_, err := s.TokenByHash(t.Context(), other[:])
		assert.ErrorIs(t, err, ports.ErrTokenNotFound)
		_, err = s.TokenByHash(t.Context(), nil)
		assert.ErrorIs(t, err, ports.ErrTokenNotFound)
	})

	t.Run("DuplicateIDOrHashIsRefused", func(t *testing.T) {
		s := fresh(t)
		require.NoError(t, s.CreateToken(t.Context(), Token(1, ports.RoleDevice, "kit")))
		sameID := Token(2, ports.RoleDevice, "kit")
		sameID.ID = "tok_0001"
		assert.Error(t, s.CreateToken(t.Context(), sameID))
		sameHash := Token(3, ports.RoleDevice, "kit")
		sameHash.Hash = Token(1, ports.RoleDevice).Hash
		assert.Error(t, s.CreateToken(t.Context(), sameHash))
	})

	t.Run("ListOldestFirst", func(t *testing.T) {
		s := fresh(t)
		list, err := s.ListTokens(t.Context())
		require.NoError(t, err)
		assert.Empty(t, list)
		for _, i := range []int{3, 1, 2} {
			require.NoError(t, s.CreateToken(t.Context(), Token(i, ports.RoleDevice, "kit")))
		}
		list, err = s.ListTokens(t.Context())
		require.NoError(t, err)
		var ids []string
		for _, tok := range list {
			ids = append(ids, tok.ID)
		}
		assert.Equal(t, []string{"tok_0001", "tok_0002", "tok_0003"}, ids)
	})

	t.Run("RevokeKeepsTheFirstTime", func(t *testing.T) {
		s := fresh(t)
		tok := Token(1, ports.RoleDevice, "kit")
		require.NoError(t, s.CreateToken(t.Context(), tok))
		require.NoError(t, s.RevokeToken(t.Context(), tok.ID, base.Add(time.Hour)))
		require.NoError(t, s.RevokeToken(t.Context(), tok.ID, base.Add(2*time.Hour)))
		got, err := s.TokenByHash(t.Context(), tok.Hash)
		require.NoError(t, err, "a revoked token is still found: the caller refuses it")
		assert.Equal(t, base.Add(time.Hour), got.Revoked)
		assert.ErrorIs(t, s.RevokeToken(t.Context(), "tok_nope", base), ports.ErrTokenNotFound)
	})

	t.Run("TouchSetsLastUsed", func(t *testing.T) {
		s := fresh(t)
		tok := Token(1, ports.RoleDevice, "kit")
		require.NoError(t, s.CreateToken(t.Context(), tok))
		require.NoError(t, s.TouchToken(t.Context(), tok.ID, base.Add(time.Minute)))
		require.NoError(t, s.TouchToken(t.Context(), tok.ID, base.Add(2*time.Minute)))
		got, err := s.TokenByHash(t.Context(), tok.Hash)
		require.NoError(t, err)
		assert.Equal(t, base.Add(2*time.Minute), got.LastUsed)
		assert.ErrorIs(t, s.TouchToken(t.Context(), "tok_nope", base), ports.ErrTokenNotFound)
	})

	t.Run("SecondConnectionSeesRevocation", func(t *testing.T) {
		loc := h.NewLocation(t)
		a, b := open(t, loc), open(t, loc)
		tok := Token(1, ports.RoleDevice, "kit")
		require.NoError(t, a.CreateToken(t.Context(), tok))
		got, err := b.TokenByHash(t.Context(), tok.Hash)
		require.NoError(t, err)
		assert.True(t, got.Revoked.IsZero())
		require.NoError(t, a.RevokeToken(t.Context(), tok.ID, base))
		got, err = b.TokenByHash(t.Context(), tok.Hash)
		require.NoError(t, err)
		assert.Equal(t, base, got.Revoked)
	})
}
