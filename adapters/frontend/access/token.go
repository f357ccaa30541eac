// Package access is per-wearer access to the server: access tokens (a
// random secret, stored only as its SHA-256), the principal a request acts
// as, the gate that turns a presented credential into that principal (and
// keeps the original magic word working as an admin credential), and
// per-credential limits. Handlers ask FromContext what the request may see.
package access

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
)

// TokenPrefix starts every secret, so secret scanners can find a leaked one.
const TokenPrefix = "fst_"

// IDPrefix starts every token id (public: lists, revocation, logs).
const IDPrefix = "tok_"

// secretBytes is the entropy of a secret: 256 bits.
const secretBytes = 32

// secretLen is the length of a well-formed secret: the prefix and 32 bytes
// in unpadded base64url.
var secretLen = len(TokenPrefix) + base64.RawURLEncoding.EncodedLen(secretBytes)

// NewSecret returns a fresh token secret: "fst_" and 32 random bytes in
// unpadded base64url.
func NewSecret() string {
	b := make([]byte, secretBytes)
	_, _ = rand.Read(b) // never fails (crypto/rand panics rather than return short)
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// NewTokenID returns a fresh public token id, "tok_" and 12 base32 letters
// (60 bits: ids are unique in the store, not secret).
func NewTokenID() string {
	return IDPrefix + strings.ToLower(rand.Text()[:12])
}

// HashSecret is what the store keeps of a secret. A plain SHA-256 is right
// for a 256-bit random secret (docs/decisions.md): no guess list can reach
// it, so a slow password hash would only slow every request.
func HashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// WellFormed reports whether s has the shape of a secret NewSecret makes, so
// a malformed one is refused without asking the store.
func WellFormed(s string) bool {
	if len(s) != secretLen || !strings.HasPrefix(s, TokenPrefix) {
		return false
	}
	for _, c := range s[len(TokenPrefix):] {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
