package httpapi

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"sync"
)

// CursorSigner seals the stores' page cursors with an HMAC-SHA256 tag, so
// a list route accepts only cursors this server (or another instance with
// the same secret) gave out: the stores' cursors are plain base64 of a
// time and an id, which anyone could forge to probe the keyset.
type CursorSigner struct{ key []byte }

// cursorTagBytes is the part of the tag a cursor carries (128 bits).
const cursorTagBytes = 16

// NewCursorSigner derives the key from secret, so instances sharing one
// database and one secret accept each other's cursors. An empty secret
// gives this process's own random key: cursors then do not survive a
// restart and do not pass between instances.
func NewCursorSigner(secret string) *CursorSigner {
	if secret == "" {
		return processCursorSigner()
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("foresight page cursor v1"))
	return &CursorSigner{key: mac.Sum(nil)}
}

// processCursorSigner is the random-key signer every handler built without
// one shares, so /captions and /interventions agree within a process.
var processCursorSigner = sync.OnceValue(func() *CursorSigner {
	key := make([]byte, sha256.Size)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (Go 1.24+)
	return &CursorSigner{key: key}
})

// seal appends the tag of (route, raw) to raw; route keeps a cursor of one
// list from being replayed on another.
func (s *CursorSigner) seal(route, raw string) string {
	if raw == "" {
		return ""
	}
	return raw + "." + base64.RawURLEncoding.EncodeToString(s.tag(route, raw))
}

// open returns the store's cursor inside sealed, or false when sealed was
// not given out by seal with this key and route.
func (s *CursorSigner) open(route, sealed string) (string, bool) {
	raw, tag, found := strings.Cut(sealed, ".")
	if !found {
		return "", false
	}
	got, err := base64.RawURLEncoding.DecodeString(tag)
	if err != nil || !hmac.Equal(got, s.tag(route, raw)) {
		return "", false
	}
	return raw, true
}

func (s *CursorSigner) tag(route, raw string) []byte {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(route))
	mac.Write([]byte{0})
	mac.Write([]byte(raw))
	return mac.Sum(nil)[:cursorTagBytes]
}
