package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/foresight-vision/foresight/ports"
)

// The caption file also keeps each device's sealed Poke key and answers a
// wearer's deletion of their memory.
var (
	_ ports.DeviceSecrets      = (*Store)(nil)
	_ ports.DeviceMemoryEraser = (*Store)(nil)
)

// PokeKey implements ports.DeviceSecrets.
func (s *Store) PokeKey(ctx context.Context, device string) (ports.SealedSecret, bool, error) {
	var sealed ports.SealedSecret
	err := s.read.QueryRowContext(ctx, `SELECT poke_key_id, poke_key_sealed FROM device_secrets WHERE device = ?`, device).
		Scan(&sealed.KeyID, &sealed.Ciphertext)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return ports.SealedSecret{}, false, nil
	case err != nil:
		return ports.SealedSecret{}, false, fmt.Errorf("read device poke key: %w", err)
	}
	return sealed, true, nil
}

// SetPokeKey implements ports.DeviceSecrets.
func (s *Store) SetPokeKey(ctx context.Context, device string, sealed ports.SealedSecret) error {
	_, err := s.write.ExecContext(ctx, `INSERT INTO device_secrets (device, poke_key_id, poke_key_sealed, updated_us)
		VALUES (?, ?, ?, ?)
		ON CONFLICT (device) DO UPDATE SET poke_key_id = excluded.poke_key_id,
			poke_key_sealed = excluded.poke_key_sealed, updated_us = excluded.updated_us`,
		device, sealed.KeyID, sealed.Ciphertext, time.Now().UnixMicro())
	if err != nil {
		return fmt.Errorf("store device poke key: %w", err)
	}
	return nil
}

// DeletePokeKey implements ports.DeviceSecrets.
func (s *Store) DeletePokeKey(ctx context.Context, device string) (bool, error) {
	res, err := s.write.ExecContext(ctx, `DELETE FROM device_secrets WHERE device = ?`, device)
	if err != nil {
		return false, fmt.Errorf("delete device poke key: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("delete device poke key: %w", err)
	}
	return n > 0, nil
}

// ListPokeKeys implements ports.DeviceSecrets.
func (s *Store) ListPokeKeys(ctx context.Context, after string, limit int) ([]ports.DeviceSealedSecret, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT device, poke_key_id, poke_key_sealed FROM device_secrets
		WHERE device > ? ORDER BY device LIMIT ?`, after, min(max(limit, 1), ports.MaxDeviceSecretsPage))
	if err != nil {
		return nil, fmt.Errorf("list device poke keys: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []ports.DeviceSealedSecret
	for rows.Next() {
		var d ports.DeviceSealedSecret
		if err := rows.Scan(&d.Device, &d.Secret.KeyID, &d.Secret.Ciphertext); err != nil {
			return nil, fmt.Errorf("read device poke key: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list device poke keys: %w", err)
	}
	return out, nil
}

// microsRange is [since, until) in Unix microseconds, a zero bound open.
func microsRange(since, until time.Time) (int64, int64) {
	lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
	if !since.IsZero() {
		lo = since.UnixMicro()
	}
	if !until.IsZero() {
		hi = until.UnixMicro()
	}
	return lo, hi
}

// DeleteDeviceCaptions implements ports.DeviceMemoryEraser. The FTS5
// delete trigger takes each caption's index entry with it.
func (s *Store) DeleteDeviceCaptions(ctx context.Context, device string, since, until time.Time, limit int) (int, error) {
	lo, hi := microsRange(since, until)
	res, err := s.write.ExecContext(ctx, `DELETE FROM captions WHERE seq IN
		(SELECT seq FROM captions WHERE device = ? AND start_us >= ? AND start_us < ? LIMIT ?)`,
		device, lo, hi, max(limit, 1))
	if err != nil {
		return 0, fmt.Errorf("delete device captions: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete device captions: %w", err)
	}
	return int(n), nil
}

// DeleteDeviceInterventions implements ports.DeviceMemoryEraser.
func (s *Store) DeleteDeviceInterventions(ctx context.Context, device string, since, until time.Time, limit int) (int, error) {
	lo, hi := microsRange(since, until)
	res, err := s.write.ExecContext(ctx, `DELETE FROM interventions WHERE id IN
		(SELECT id FROM interventions WHERE device = ? AND time_us >= ? AND time_us < ? LIMIT ?)`,
		device, lo, hi, max(limit, 1))
	if err != nil {
		return 0, fmt.Errorf("delete device interventions: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete device interventions: %w", err)
	}
	return int(n), nil
}
