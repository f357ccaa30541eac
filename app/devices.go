package app

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/adapters/secret/aesgcm"
	"github.com/foresight-vision/foresight/ports"
)

// secretKeyOff is what a refused device key says: which setting is missing.
const secretKeyOff = "device Poke keys are off: set FORESIGHT_SECRET_KEY (32 random bytes, base64 or hex, e.g. `openssl rand -base64 32`) so they can be stored encrypted"

// secretSealer is the sealer of device keys, or nil when FORESIGHT_SECRET_KEY
// is unset. Its errors name the setting and never quote the value.
func (c Config) secretSealer() (*aesgcm.Sealer, error) {
	if strings.TrimSpace(c.SecretKey) == "" {
		if strings.TrimSpace(c.SecretKeyPrevious) != "" {
			return nil, errors.New("config: FORESIGHT_SECRET_KEY_PREVIOUS is set without FORESIGHT_SECRET_KEY: a rotation needs the new key too")
		}
		return nil, nil
	}
	s, err := aesgcm.New(c.SecretKey, c.SecretKeyPrevious)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return s, nil
}

// deviceKeys is the nudge loop's per-device key look-up: on every store
// that keeps device secrets, whether or not a server key is set (a stored
// key that cannot be opened fails its nudge rather than fall back).
func (n *nudges) deviceKeys(store nudgeStore) (ports.NotifierKeys, error) {
	secrets, ok := store.(ports.DeviceSecrets)
	if !ok {
		return nil, nil
	}
	sealer, err := n.cfg.secretSealer()
	if err != nil {
		return nil, err
	}
	return aesgcm.NotifierKeys{Store: secrets, Sealer: sealer}, nil
}

// deviceStore is what the device routes need of the caption store.
type deviceStore interface {
	ports.CaptionReader
	ports.InterventionStore
	ports.DeviceSecrets
	ports.DeviceMemoryEraser
}

// deviceRoutes mounts a wearer's own data: export, deletion and their Poke
// key. They are admin routes for now: the gate in front (the magic word)
// guards them, and Authorize, nil here, is where per-credential scoping
// plugs in.
func deviceData(cfg Config, mem *captionMemory, logger *slog.Logger) func() *httpapi.DeviceDataHandlers {
	sealer, _ := cfg.secretSealer() // LoadConfig has checked it
	return func() *httpapi.DeviceDataHandlers {
		hc := httpapi.DeviceDataConfig{SealOff: secretKeyOff, Logger: logger}
		// The store is set before the server listens and not changed after.
		if store, ok := mem.store.(deviceStore); ok {
			hc.Captions, hc.Interventions, hc.Eraser, hc.Secrets = store, store, store, store
		}
		if bio := mem.biometricStore(); bio != nil {
			hc.Biometrics = bio
			hc.Extra = append(hc.Extra, httpapi.BiometricExportSection(bio))
		}
		if sealer != nil {
			hc.Seal = sealer.Seal
		}
		return httpapi.NewDeviceDataHandlers(hc)
	}
}
