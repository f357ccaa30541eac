package aesgcm_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/secret/aesgcm"
	"github.com/foresight-vision/foresight/ports"
)

func newKey(t *testing.T) string {
	t.Helper()
	raw := make([]byte, aesgcm.KeyBytes)
	_, err := rand.Read(raw)
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(raw)
}

func TestSealOpensOnlyForItsDevice(t *testing.T) {
	s, err := aesgcm.New(newKey(t), "")
	require.NoError(t, err)
	sealed, err := s.Seal("kitchen", []byte("pk-kitchen"))
	require.NoError(t, err)
	assert.Equal(t, s.CurrentKeyID(), sealed.KeyID)
	assert.NotContains(t, string(sealed.Ciphertext), "pk-kitchen")
	again, err := s.Seal("kitchen", []byte("pk-kitchen"))
	require.NoError(t, err)
	assert.NotEqual(t, sealed.Ciphertext, again.Ciphertext, "a fresh nonce each time")

	plain, err := s.Open("kitchen", sealed)
	require.NoError(t, err)
	assert.Equal(t, "pk-kitchen", string(plain))

	_, err = s.Open("garden", sealed)
	assert.ErrorIs(t, err, aesgcm.ErrOpen, "moved to another device's row, it does not open")
	tampered := ports.SealedSecret{KeyID: sealed.KeyID, Ciphertext: append([]byte(nil), sealed.Ciphertext...)}
	tampered.Ciphertext[len(tampered.Ciphertext)-1] ^= 1
	_, err = s.Open("kitchen", tampered)
	assert.ErrorIs(t, err, aesgcm.ErrOpen)
	_, err = s.Open("kitchen", ports.SealedSecret{KeyID: sealed.KeyID, Ciphertext: []byte{1, 2}})
	assert.ErrorIs(t, err, aesgcm.ErrOpen)
}

func TestRotationOpensWithThePreviousKeyAndSealsWithTheNew(t *testing.T) {
	oldKey, newKeyText := newKey(t), newKey(t)
	old, err := aesgcm.New(oldKey, "")
	require.NoError(t, err)
	sealed, err := old.Seal("kitchen", []byte("pk"))
	require.NoError(t, err)

	onlyNew, err := aesgcm.New(newKeyText, "")
	require.NoError(t, err)
	_, err = onlyNew.Open("kitchen", sealed)
	assert.ErrorIs(t, err, aesgcm.ErrUnknownKey, "without the previous key an old seal does not open")

	rotated, err := aesgcm.New(newKeyText, oldKey)
	require.NoError(t, err)
	assert.False(t, rotated.Current(sealed))
	plain, err := rotated.Open("kitchen", sealed)
	require.NoError(t, err)
	assert.Equal(t, "pk", string(plain))
	resealed, err := rotated.Seal("kitchen", plain)
	require.NoError(t, err)
	assert.True(t, rotated.Current(resealed))
	plain, err = onlyNew.Open("kitchen", resealed)
	require.NoError(t, err)
	assert.Equal(t, "pk", string(plain))
}

func TestParseKeyTakesHexAndBase64AndNeverQuotesABadOne(t *testing.T) {
	raw := make([]byte, aesgcm.KeyBytes)
	for i := range raw {
		raw[i] = byte(i * 7)
	}
	forms := []string{hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw),
		base64.RawURLEncoding.EncodeToString(raw), " " + base64.URLEncoding.EncodeToString(raw) + "\n"}
	var ids []string
	for _, f := range forms {
		k, err := aesgcm.ParseKey(f)
		require.NoError(t, err, f)
		ids = append(ids, k.ID)
	}
	for _, id := range ids {
		assert.Equal(t, ids[0], id, "one key, one id, whatever its spelling")
	}
	for _, bad := range []string{"", "short-secret-value", hex.EncodeToString(raw[:16]), base64.StdEncoding.EncodeToString(append(raw, 1))} {
		_, err := aesgcm.ParseKey(bad)
		require.Error(t, err)
		if bad != "" {
			assert.NotContains(t, err.Error(), bad)
		}
	}
	_, err := aesgcm.New("short-secret-value", "")
	assert.ErrorContains(t, err, "FORESIGHT_SECRET_KEY")
	_, err = aesgcm.New(forms[0], "nope-previous")
	assert.ErrorContains(t, err, "FORESIGHT_SECRET_KEY_PREVIOUS")
	assert.NotContains(t, err.Error(), "nope-previous")
}

type memSecrets map[string]ports.SealedSecret

func (m memSecrets) PokeKey(_ context.Context, d string) (ports.SealedSecret, bool, error) {
	s, ok := m[d]
	return s, ok, nil
}
func (m memSecrets) SetPokeKey(_ context.Context, d string, s ports.SealedSecret) error {
	m[d] = s
	return nil
}
func (m memSecrets) DeletePokeKey(_ context.Context, d string) (bool, error) {
	_, ok := m[d]
	delete(m, d)
	return ok, nil
}
func (m memSecrets) ListPokeKeys(context.Context, string, int) ([]ports.DeviceSealedSecret, error) {
	return nil, errors.New("unused")
}

func TestNotifierKeysNeverFallBackPastAStoredKey(t *testing.T) {
	s, err := aesgcm.New(newKey(t), "")
	require.NoError(t, err)
	store := memSecrets{}
	sealed, err := s.Seal("kitchen", []byte("pk-kitchen"))
	require.NoError(t, err)
	store["kitchen"] = sealed

	key, err := aesgcm.NotifierKeys{Store: store, Sealer: s}.NotifierKey(t.Context(), "kitchen")
	require.NoError(t, err)
	assert.Equal(t, "pk-kitchen", key)
	key, err = aesgcm.NotifierKeys{Store: store, Sealer: s}.NotifierKey(t.Context(), "garden")
	require.NoError(t, err)
	assert.Empty(t, key, "no key of its own: the server's applies")

	other, err := aesgcm.New(newKey(t), "")
	require.NoError(t, err)
	_, err = aesgcm.NotifierKeys{Store: store, Sealer: other}.NotifierKey(t.Context(), "kitchen")
	assert.ErrorIs(t, err, ports.ErrNotifierKeyUnreadable, "a wrong server key")
	_, err = aesgcm.NotifierKeys{Store: store}.NotifierKey(t.Context(), "kitchen")
	assert.ErrorIs(t, err, ports.ErrNotifierKeyUnreadable, "no server key at all")
}
