package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/foresight-vision/foresight/ports"
)

// The database also keeps each device's sealed Poke key and answers a
// wearer's deletion of their memory.
var (
	_ ports.DeviceSecrets      = (*Store)(nil)
	_ ports.DeviceMemoryEraser = (*Store)(nil)
)

// PokeKey implements ports.DeviceSecrets.
func (s *Store) PokeKey(ctx context.Context, device string) (ports.SealedSecret, bool, error) {
	var sealed ports.SealedSecret
	err := s.pool.QueryRow(ctx, `SELECT poke_key_id, poke_key_sealed FROM device_secrets WHERE device = $1`, device).
		Scan(&sealed.KeyID, &sealed.Ciphertext)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return ports.SealedSecret{}, false, nil
	case err != nil:
		return ports.SealedSecret{}, false, fmt.Errorf("read device poke key: %w", err)
	}
	return sealed, true, nil
}

// SetPokeKey implements ports.DeviceSecrets.
func (s *Store) SetPokeKey(ctx context.Context, device string, sealed ports.SealedSecret) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO device_secrets (device, poke_key_id, poke_key_sealed, updated_at)
		VALUES ($1, $2, $3, now())
		ON CONFLICT (device) DO UPDATE SET poke_key_id = excluded.poke_key_id,
			poke_key_sealed = excluded.poke_key_sealed, updated_at = excluded.updated_at`,
		device, sealed.KeyID, sealed.Ciphertext)
	if err != nil {
		return fmt.Errorf("store device poke key: %w", err)
	}
	return nil
}

// DeletePokeKey implements ports.DeviceSecrets.
func (s *Store) DeletePokeKey(ctx context.Context, device string) (bool, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM device_secrets WHERE device = $1`, device)
	if err != nil {
		return false, fmt.Errorf("delete device poke key: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

// ListPokeKeys implements ports.DeviceSecrets.
func (s *Store) ListPokeKeys(ctx context.Context, after string, limit int) ([]ports.DeviceSealedSecret, error) {
	rows, err := s.pool.Query(ctx, `SELECT device, poke_key_id, poke_key_sealed FROM device_secrets
		WHERE device > $1 ORDER BY device LIMIT $2`, after, min(max(limit, 1), ports.MaxDeviceSecretsPage))
	if err != nil {
		return nil, fmt.Errorf("list device poke keys: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ports.DeviceSealedSecret, error) {
		var d ports.DeviceSealedSecret
		err := row.Scan(&d.Device, &d.Secret.KeyID, &d.Secret.Ciphertext)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("list device poke keys: %w", err)
	}
	return out, nil
}

// deleteDeviceRows deletes at most limit of device's rows of table whose
// column is in [since, until), a zero bound open.
func (s *Store) deleteDeviceRows(ctx context.Context, table, column, device string, since, until time.Time, limit int) (int, error) {
	args := []any{device}
	where := []string{"device = $1"}
	if !since.IsZero() {
		args = append(args, since.UTC())
		where = append(where, column+" >= $"+strconv.Itoa(len(args)))
	}
	if !until.IsZero() {
		args = append(args, until.UTC())
		where = append(where, column+" < $"+strconv.Itoa(len(args)))
	}
	args = append(args, max(limit, 1))
	tag, err := s.pool.Exec(ctx, "DELETE FROM "+table+" WHERE id IN (SELECT id FROM "+table+
		" WHERE "+strings.Join(where, " AND ")+" LIMIT $"+strconv.Itoa(len(args))+")", args...)
	if err != nil {
		return 0, fmt.Errorf("delete device %s: %w", table, err)
	}
	return int(tag.RowsAffected()), nil
}

// DeleteDeviceCaptions implements ports.DeviceMemoryEraser; the search
// vector is a column of the row, so it goes with it.
func (s *Store) DeleteDeviceCaptions(ctx context.Context, device string, since, until time.Time, limit int) (int, error) {
	return s.deleteDeviceRows(ctx, "captions", "start_at", device, since, until, limit)
}

// DeleteDeviceInterventions implements ports.DeviceMemoryEraser.
func (s *Store) DeleteDeviceInterventions(ctx context.Context, device string, since, until time.Time, limit int) (int, error) {
	return s.deleteDeviceRows(ctx, "interventions", "time", device, since, until, limit)
}
