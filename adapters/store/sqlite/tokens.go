package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/foresight-vision/foresight/ports"
)

// The caption database also keeps the access tokens.
var _ ports.TokenStore = (*Store)(nil)

const tokenColumns = `id, hash, name, role, devices, created_us, expires_us, revoked_us, last_used_us`

// CreateToken implements ports.TokenStore.
func (s *Store) CreateToken(ctx context.Context, tok ports.AccessToken) error {
	devices, err := json.Marshal(tok.Devices)
	if err != nil {
		return fmt.Errorf("encode token devices: %w", err)
	}
	_, err = s.write.ExecContext(ctx, `INSERT INTO access_tokens (`+tokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		tok.ID, tok.Hash, tok.Name, string(tok.Role), string(devices), tok.Created.UnixMicro(),
		nullableMicros(tok.Expires), nullableMicros(tok.Revoked), nullableMicros(tok.LastUsed))
	if err != nil {
		return fmt.Errorf("insert access token: %w", err)
	}
	return nil
}

// TokenByHash implements ports.TokenReader.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (ports.AccessToken, error) {
	row := s.read.QueryRowContext(ctx, `SELECT `+tokenColumns+` FROM access_tokens WHERE hash = ?`, hash)
	tok, err := scanToken(row)
	if errors.Is(err, sql.ErrNoRows) {
		return ports.AccessToken{}, ports.ErrTokenNotFound
	}
	if err != nil {
		return ports.AccessToken{}, fmt.Errorf("look up access token: %w", err)
	}
	return tok, nil
}

// ListTokens implements ports.TokenStore.
func (s *Store) ListTokens(ctx context.Context) ([]ports.AccessToken, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+tokenColumns+` FROM access_tokens ORDER BY created_us, id`)
	if err != nil {
		return nil, fmt.Errorf("list access tokens: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []ports.AccessToken
	for rows.Next() {
		tok, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("read access token: %w", err)
		}
		out = append(out, tok)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list access tokens: %w", err)
	}
	return out, nil
}

// RevokeToken implements ports.TokenStore.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	res, err := s.write.ExecContext(ctx,
		`UPDATE access_tokens SET revoked_us = coalesce(revoked_us, ?) WHERE id = ?`, at.UnixMicro(), id)
	if err != nil {
		return fmt.Errorf("revoke access token: %w", err)
	}
	return oneRow(res, id)
}

// TouchToken implements ports.TokenReader.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time) error {
	res, err := s.write.ExecContext(ctx, `UPDATE access_tokens SET last_used_us = ? WHERE id = ?`, at.UnixMicro(), id)
	if err != nil {
		return fmt.Errorf("mark access token used: %w", err)
	}
	return oneRow(res, id)
}

func oneRow(res sql.Result, id string) error {
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("access token %q: %w", id, err)
	}
	if n == 0 {
		return fmt.Errorf("access token %q: %w", id, ports.ErrTokenNotFound)
	}
	return nil
}

func scanToken(row interface{ Scan(...any) error }) (ports.AccessToken, error) {
	var tok ports.AccessToken
	var role, devices string
	var created int64
	var expires, revoked, lastUsed sql.NullInt64
	if err := row.Scan(&tok.ID, &tok.Hash, &tok.Name, &role, &devices, &created, &expires, &revoked, &lastUsed); err != nil {
		return ports.AccessToken{}, err
	}
	if err := json.Unmarshal([]byte(devices), &tok.Devices); err != nil {
		return ports.AccessToken{}, fmt.Errorf("token %s devices: %w", tok.ID, err)
	}
	tok.Role = ports.Role(role)
	tok.Created = time.UnixMicro(created).UTC()
	fromNull := func(v sql.NullInt64) time.Time {
		if !v.Valid {
			return time.Time{}
		}
		return time.UnixMicro(v.Int64).UTC()
	}
	tok.Expires, tok.Revoked, tok.LastUsed = fromNull(expires), fromNull(revoked), fromNull(lastUsed)
	return tok, nil
}
