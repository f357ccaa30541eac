package ports

import (
	"context"
	"errors"
	"time"
)

// SealedSecret is a secret encrypted at rest: the ciphertext (nonce
// included) and the id of the server key that sealed it, so a rotation
// knows which key opens it. Stores keep it as given and never see the
// plain secret.
type SealedSecret struct {
	KeyID      string
	Ciphertext []byte
}

// DeviceSealedSecret is one device's sealed secret, as listed for a rekey.
type DeviceSealedSecret struct {
	Device string
	Secret SealedSecret
}

// MaxDeviceSecretsPage bounds one ListPokeKeys page.
const MaxDeviceSecretsPage = 500

// DeviceSecrets keeps each device's sealed Poke API key.
type DeviceSecrets interface {
	// PokeKey returns the device's sealed key; ok is false when it has none.
	PokeKey(ctx context.Context, device string) (sealed SealedSecret, ok bool, err error)
	// SetPokeKey stores (or replaces) the device's sealed key.
	SetPokeKey(ctx context.Context, device string, sealed SealedSecret) error
	// DeletePokeKey removes the device's key; existed says whether it had one.
	DeletePokeKey(ctx context.Context, device string) (existed bool, err error)
	// ListPokeKeys returns at most limit (clamped to MaxDeviceSecretsPage)
	// devices' sealed keys, in device order, after the device named by
	// after ("" starts at the first).
	ListPokeKeys(ctx context.Context, after string, limit int) ([]DeviceSealedSecret, error)
}

// ErrNotifierKeyUnreadable is wrapped by NotifierKeys errors about a key
// that is stored but cannot be opened (another server key sealed it): the
// nudge must fail, never go out with another key.
var ErrNotifierKeyUnreadable = errors.New("the device's Poke key cannot be decrypted with the server's key")

// NotifierKeys tells the nudge loop which notifier key a device's nudges
// go with.
type NotifierKeys interface {
	// NotifierKey returns the device's own key, or "" when it has none
	// (the server's key applies then).
	NotifierKey(ctx context.Context, device string) (string, error)
}

// DefaultDeviceDeleteBatch is how many rows one delete statement of
// DeviceMemoryEraser removes at most, so erasing a large device never holds
// the database's write lock for long.
const DefaultDeviceDeleteBatch = 1000

// DeviceMemoryEraser deletes a device's stored memory by time range. A zero
// since or until leaves that side open. Each call runs one statement that
// deletes at most limit rows and returns how many it deleted; callers repeat
// while it returns limit.
type DeviceMemoryEraser interface {
	// DeleteDeviceCaptions deletes captions whose Start is in [since,
	// until), their search index entries with them.
	DeleteDeviceCaptions(ctx context.Context, device string, since, until time.Time, limit int) (int, error)
	// DeleteDeviceInterventions deletes decisions whose Time is in [since, until).
	DeleteDeviceInterventions(ctx context.Context, device string, since, until time.Time, limit int) (int, error)
}
