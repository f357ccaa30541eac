// Package aesgcm seals small secrets (a device's Poke API key) for storage
// with AES-256-GCM from the standard library: a random 96-bit nonce per
// seal, and the owner's id (the device) as additional data, so a sealed
// secret copied to another device's row does not open. Each seal names the
// id of the server key that made it, so after a rotation the previous key
// still opens old secrets until they are sealed again.
package aesgcm

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/foresight-vision/foresight/ports"
)

// KeyBytes is the size of a server key: AES-256.
const KeyBytes = 32

// purpose binds a ciphertext to what it is, beside the device id.
const purpose = "foresight device poke key v1\x00"

var (
	// ErrUnknownKey: the secret was sealed by a key this sealer does not hold.
	ErrUnknownKey = errors.New("sealed by a server key that is not configured")
	// ErrOpen: the secret does not open with its key (altered, or moved
	// from another device).
	ErrOpen = errors.New("sealed secret does not open")
)

// Key is one server key and its public id.
type Key struct {
	ID   string
	aead cipher.AEAD
}

// ParseKey reads a 32-byte key written in hex (64 digits) or base64
// (standard or URL alphabet, padded or not). Its errors never quote the value.
func ParseKey(text string) (Key, error) {
	text = strings.TrimSpace(text)
	var raw []byte
	if b, err := hex.DecodeString(text); err == nil && len(b) == KeyBytes {
		raw = b
	} else {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(text); err == nil && len(b) == KeyBytes {
				raw = b
				break
			}
		}
	}
	if raw == nil {
		return Key{}, fmt.Errorf("want %d random bytes in hex (64 digits) or base64, e.g. from `openssl rand -base64 32`", KeyBytes)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return Key{}, fmt.Errorf("aes key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return Key{}, fmt.Errorf("aes-gcm: %w", err)
	}
	// The id is a short hash of the key under a label of its own: it tells
	// keys apart and reveals nothing usable about them.
	sum := sha256.Sum256(append([]byte("foresight key id\x00"), raw...))
	return Key{ID: hex.EncodeToString(sum[:4]), aead: aead}, nil
}

// Sealer seals with its current key and opens with the current or the
// previous one.
type Sealer struct {
	current  Key
	previous *Key
}

// New returns a sealer for the current key and, when previous is not
// empty, the key it replaces.
func New(current, previous string) (*Sealer, error) {
	cur, err := ParseKey(current)
	if err != nil {
		return nil, fmt.Errorf("FORESIGHT_SECRET_KEY: %w", err)
	}
	s := &Sealer{current: cur}
	if strings.TrimSpace(previous) != "" {
		prev, err := ParseKey(previous)
		if err != nil {
			return nil, fmt.Errorf("FORESIGHT_SECRET_KEY_PREVIOUS: %w", err)
		}
		if prev.ID != cur.ID {
			s.previous = &prev
		}
	}
	return s, nil
}

// CurrentKeyID is the id new seals carry.
func (s *Sealer) CurrentKeyID() string { return s.current.ID }

// Seal encrypts plaintext for device under the current key.
func (s *Sealer) Seal(device string, plaintext []byte) (ports.SealedSecret, error) {
	nonce := make([]byte, s.current.aead.NonceSize(), s.current.aead.NonceSize()+len(plaintext)+s.current.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return ports.SealedSecret{}, fmt.Errorf("nonce: %w", err)
	}
	return ports.SealedSecret{
		KeyID:      s.current.ID,
		Ciphertext: s.current.aead.Seal(nonce, nonce, plaintext, additionalData(device)),
	}, nil
}

// Open decrypts a secret sealed for device by the current or previous key.
func (s *Sealer) Open(device string, sealed ports.SealedSecret) ([]byte, error) {
	var key *Key
	switch {
	case sealed.KeyID == s.current.ID:
		key = &s.current
	case s.previous != nil && sealed.KeyID == s.previous.ID:
		key = s.previous
	default:
		return nil, fmt.Errorf("key id %q: %w", sealed.KeyID, ErrUnknownKey)
	}
	n := key.aead.NonceSize()
	if len(sealed.Ciphertext) < n+key.aead.Overhead() {
		return nil, ErrOpen
	}
	plain, err := key.aead.Open(nil, sealed.Ciphertext[:n], sealed.Ciphertext[n:], additionalData(device))
	if err != nil {
		return nil, ErrOpen
	}
	return plain, nil
}

// Current reports whether sealed is under the current key already.
func (s *Sealer) Current(sealed ports.SealedSecret) bool { return sealed.KeyID == s.current.ID }

func additionalData(device string) []byte { return []byte(purpose + device) }

// NotifierKeys is the nudge loop's ports.NotifierKeys over stored sealed
// keys: a device without one gets "", a device whose key does not open an
// error wrapping ports.ErrNotifierKeyUnreadable. A nil Sealer (no server
// key configured) opens nothing, so a stored key is never bypassed.
type NotifierKeys struct {
	Store  ports.DeviceSecrets
	Sealer *Sealer
}

// NotifierKey implements ports.NotifierKeys.
func (k NotifierKeys) NotifierKey(ctx context.Context, device string) (string, error) {
	sealed, ok, err := k.Store.PokeKey(ctx, device)
	if err != nil {
		return "", fmt.Errorf("read the device's poke key: %w", err)
	}
	if !ok {
		return "", nil
	}
	if k.Sealer == nil {
		return "", fmt.Errorf("%w: FORESIGHT_SECRET_KEY is not set", ports.ErrNotifierKeyUnreadable)
	}
	plain, err := k.Sealer.Open(device, sealed)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ports.ErrNotifierKeyUnreadable, err)
	}
	return string(plain), nil
}
