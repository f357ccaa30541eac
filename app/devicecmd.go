package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/adapters/secret/aesgcm"
	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/internal/settings"
	"github.com/foresight-vision/foresight/ports"
)

// maxPokeKeyFileBytes bounds what `device set` reads from --poke-key-file.
const maxPokeKeyFileBytes = 4 << 10

// deviceCmdConfig is what `foresight device` reads: the database and the
// server keys, from the same settings as serve.
type deviceCmdConfig struct {
	DatabaseURL       string
	SecretKey         string
	SecretKeyPrevious string
	PokeKeyFile       string
}

func deviceCmdSettings(withKeyFile bool) []settings.Setting[deviceCmdConfig] {
	table := []settings.Setting[deviceCmdConfig]{
		{Flag: "database-url", Envs: []string{"FORESIGHT_DATABASE_URL"}, Default: DefaultDatabaseURL, Help: "the server's database: sqlite:<path> or postgres://…",
			Apply: func(c *deviceCmdConfig, v string) error {
				if _, _, err := ParseDatabaseURL(v); err != nil {
					return err
				}
				c.DatabaseURL = v
				return nil
			}},
		{Envs: []string{"FORESIGHT_SECRET_KEY"}, Secret: true, Help: "the server key that encrypts device keys (as serve's)",
			Apply: func(c *deviceCmdConfig, v string) error { c.SecretKey = v; return nil }},
		{Envs: []string{"FORESIGHT_SECRET_KEY_PREVIOUS"}, Secret: true, Help: "the server key it replaced, accepted for decryption",
			Apply: func(c *deviceCmdConfig, v string) error { c.SecretKeyPrevious = v; return nil }},
	}
	if withKeyFile {
		table = append(table, settings.Setting[deviceCmdConfig]{Flag: "poke-key-file", Help: "file holding the device's Poke API key (surrounding whitespace ignored); required",
			Apply: func(c *deviceCmdConfig, v string) error { c.PokeKeyFile = v; return nil }})
	}
	return table
}

func deviceUsage(w io.Writer) {
	fmt.Fprintln(w, `Usage:
  foresight device set ID --poke-key-file FILE   store the device's own Poke API key, encrypted
  foresight device unset ID                      remove it: the device's nudges use the server's key
  foresight device rekey                         re-encrypt every stored key under FORESIGHT_SECRET_KEY

They work on the configured database, whether the server runs or not.
Secrets come from the environment only.`)
	fmt.Fprintln(w)
	settings.PrintTable(w, deviceCmdSettings(true))
}

// DeviceCommand is `foresight device`: a device's own Poke key, set,
// removed or re-encrypted after a server key rotation.
func DeviceCommand(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		deviceUsage(stdout)
		if len(args) == 0 {
			return errors.New("device: which action? set, unset or rekey")
		}
		return flag.ErrHelp
	}
	action, rest := args[0], args[1:]
	var device string
	switch action {
	case "set", "unset":
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			if len(rest) > 0 && (rest[0] == "-h" || rest[0] == "--help") {
				deviceUsage(stdout)
				return flag.ErrHelp
			}
			return fmt.Errorf("device %s: which device? foresight device %s ID", action, action)
		}
		device, rest = rest[0], rest[1:]
		if !domain.ValidDevice(device) {
			return fmt.Errorf("device %s: %q is not a device id (%s)", action, device, domain.DevicePattern)
		}
	case "rekey":
	default:
		deviceUsage(stdout)
		return fmt.Errorf("device: unknown action %q: want set, unset or rekey", action)
	}

	fs := flag.NewFlagSet("foresight device "+action, flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() { deviceUsage(stdout) }
	var c deviceCmdConfig
	if err := settings.Load(&c, deviceCmdSettings(action == "set"), fs, rest, getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("device %s: unexpected argument %q", action, fs.Arg(0))
	}
	if err := refusePasswordInFlags(fs); err != nil {
		return err
	}
	sealer, err := Config{SecretKey: c.SecretKey, SecretKeyPrevious: c.SecretKeyPrevious}.secretSealer()
	if err != nil {
		return err
	}

	var plain string
	if action == "set" {
		if sealer == nil {
			return errors.New("device set: " + secretKeyOff)
		}
		if c.PokeKeyFile == "" {
			return errors.New("device set: --poke-key-file is required (the key never goes on a command line)")
		}
		if plain, err = readPokeKeyFile(c.PokeKeyFile); err != nil {
			return fmt.Errorf("device set: %w", err)
		}
	}
	if action == "rekey" && sealer == nil {
		return errors.New("device rekey: set FORESIGHT_SECRET_KEY to the new key (and FORESIGHT_SECRET_KEY_PREVIOUS to the old one)")
	}

	store, err := openDeviceSecrets(ctx, c.DatabaseURL)
	if err != nil {
		return fmt.Errorf("device %s: %w", action, err)
	}
	defer func() { _ = store.Close() }()

	switch action {
	case "set":
		sealed, err := sealer.Seal(device, []byte(plain))
		if err != nil {
			return fmt.Errorf("device set: %w", err)
		}
		if err := store.SetPokeKey(ctx, device, sealed); err != nil {
			return fmt.Errorf("device set: %w", err)
		}
		fmt.Fprintf(stdout, "device %s: poke key set (encrypted with server key %s)\n", device, sealed.KeyID)
	case "unset":
		existed, err := store.DeletePokeKey(ctx, device)
		if err != nil {
			return fmt.Errorf("device unset: %w", err)
		}
		if existed {
			fmt.Fprintf(stdout, "device %s: poke key removed; its nudges use the server's key\n", device)
		} else {
			fmt.Fprintf(stdout, "device %s: had no poke key of its own\n", device)
		}
	case "rekey":
		return rekey(ctx, store, sealer, stdout)
	}
	return nil
}

// readPokeKeyFile reads and checks a key file, bounded; errors never quote it.
func readPokeKeyFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read --poke-key-file: %w", err)
	}
	defer func() { _ = f.Close() }()
	raw, err := io.ReadAll(io.LimitReader(f, maxPokeKeyFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("read --poke-key-file: %w", err)
	}
	if len(raw) > maxPokeKeyFileBytes {
		return "", fmt.Errorf("--poke-key-file %s is larger than %d bytes: not a Poke key", path, maxPokeKeyFileBytes)
	}
	key := strings.TrimSpace(string(raw))
	if err := httpapi.ValidPokeKey(key); err != nil {
		return "", fmt.Errorf("--poke-key-file %s: %w", path, err)
	}
	return key, nil
}

// rekey re-seals, under the current key, every stored key sealed by
// another; one that does not open is reported and left as it is.
func rekey(ctx context.Context, store ports.DeviceSecrets, sealer *aesgcm.Sealer, stdout io.Writer) error {
	var resealed, current int
	var unreadable []string
	for after := ""; ; {
		page, err := store.ListPokeKeys(ctx, after, ports.MaxDeviceSecretsPage)
		if err != nil {
			return fmt.Errorf("device rekey: %w", err)
		}
		if len(page) == 0 {
			break
		}
		for _, d := range page {
			if sealer.Current(d.Secret) {
				current++
				continue
			}
			plain, err := sealer.Open(d.Device, d.Secret)
			if err != nil {
				unreadable = append(unreadable, d.Device)
				continue
			}
			sealed, err := sealer.Seal(d.Device, plain)
			if err != nil {
				return fmt.Errorf("device rekey %s: %w", d.Device, err)
			}
			if err := store.SetPokeKey(ctx, d.Device, sealed); err != nil {
				return fmt.Errorf("device rekey %s: %w", d.Device, err)
			}
			resealed++
		}
		after = page[len(page)-1].Device
	}
	fmt.Fprintf(stdout, "rekey: %d re-encrypted under server key %s, %d already under it, %d unreadable\n",
		resealed, sealer.CurrentKeyID(), current, len(unreadable))
	if len(unreadable) > 0 {
		return fmt.Errorf("device rekey: the keys of %s open with neither FORESIGHT_SECRET_KEY nor FORESIGHT_SECRET_KEY_PREVIOUS: set them again with `foresight device set`",
			strings.Join(unreadable, ", "))
	}
	return nil
}

// secretStore is a database as `foresight device` uses it.
type secretStore interface {
	ports.DeviceSecrets
	Close() error
}

func openDeviceSecrets(ctx context.Context, databaseURL string) (secretStore, error) {
	if kind, _, err := ParseDatabaseURL(databaseURL); err == nil && kind == StoreNone {
		return nil, errors.New("FORESIGHT_DATABASE_URL is none: device keys are kept in the database")
	}
	return openDatabase(ctx, databaseURL)
}
