package access_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/foresight-vision/foresight/adapters/frontend/access"
	"github.com/foresight-vision/foresight/adapters/store/sqlite"
	"github.com/foresight-vision/foresight/ports"
)

// benchVerifier is a Verifier on a real SQLite store holding one token.
func benchVerifier(b *testing.B) (*access.Verifier, string) {
	b.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "f.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = store.Close() })
	secret := access.NewSecret()
	if err := store.CreateToken(context.Background(), ports.AccessToken{ID: access.NewTokenID(), Hash: access.HashSecret(secret),
		Role: ports.RoleDevice, Devices: []string{"kit"}, Created: time.Now()}); err != nil {
		b.Fatal(err)
	}
	return access.NewVerifier(access.VerifierConfig{Tokens: func() ports.TokenReader { return store }}), secret
}

// BenchmarkVerifyCacheHit is one token check answered from the cache.
func BenchmarkVerifyCacheHit(b *testing.B) {
	v, secret := benchVerifier(b)
	if _, err := v.Verify(context.Background(), secret); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(context.Background(), secret); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyStoreLookup is one token check that asks the store: a
// well-formed token the store does not know (never cached).
func BenchmarkVerifyStoreLookup(b *testing.B) {
	v, _ := benchVerifier(b)
	unknown := access.NewSecret()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(context.Background(), unknown); err == nil {
			b.Fatal("an unknown token passed")
		}
	}
}
