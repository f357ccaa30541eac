package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/foresight-vision/foresight/ports"
)

// The caption database also keeps the access tokens, so every instance
// sharing it sees the same ones.
var _ ports.TokenStore = (*Store)(nil)

const tokenColumns = `id, hash, name, role, devices, created, expires, revoked, last_used`

// CreateToken implements ports.TokenStore.
func (s *Store) CreateToken(ctx context.Context, tok ports.AccessToken) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO access_tokens (`+tokenColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		tok.ID, tok.Hash, tok.Name, string(tok.Role), tok.Devices, tok.Created.UTC(),
		nullableTime(tok.Expires), nullableTime(tok.Revoked), nullableTime(tok.LastUsed))
	if err != nil {
		return fmt.Errorf("insert access token: %w", err)
	}
	return nil
}

// TokenByHash implements ports.TokenReader.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (ports.AccessToken, error) {
	tok, err := scanToken(s.pool.QueryRow(ctx, `SELECT `+tokenColumns+` FROM access_tokens WHERE hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return ports.AccessToken{}, ports.ErrTokenNotFound
	}
	if err != nil {
		return ports.AccessToken{}, fmt.Errorf("look up access token: %w", err)
	}
	return tok, nil
}

// ListTokens implements ports.TokenStore.
func (s *Store) ListTokens(ctx context.Context) ([]ports.AccessToken, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+tokenColumns+` FROM access_tokens ORDER BY created, id`)
	if err != nil {
		return nil, fmt.Errorf("list access tokens: %w", err)
	}
	defer rows.Close()
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
	tag, err := s.pool.Exec(ctx, `UPDATE access_tokens SET revoked = coalesce(revoked, $1) WHERE id = $2`, at.UTC(), id)
	if err != nil {
		return fmt.Errorf("revoke access token: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("access token %q: %w", id, ports.ErrTokenNotFound)
	}
	return nil
}

// TouchToken implements ports.TokenReader.
func (s *Store) TouchToken(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE access_tokens SET last_used = $1 WHERE id = $2`, at.UTC(), id)
	if err != nil {
		return fmt.Errorf("mark access token used: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("access token %q: %w", id, ports.ErrTokenNotFound)
	}
	return nil
}

func scanToken(row pgx.Row) (ports.AccessToken, error) {
	var tok ports.AccessToken
	var role string
	var expires, revoked, lastUsed *time.Time
	if err := row.Scan(&tok.ID, &tok.Hash, &tok.Name, &role, &tok.Devices, &tok.Created, &expires, &revoked, &lastUsed); err != nil {
		return ports.AccessToken{}, err
	}
	tok.Role = ports.Role(role)
	tok.Created = tok.Created.UTC()
	fromNull := func(t *time.Time) time.Time {
		if t == nil {
			return time.Time{}
		}
		return t.UTC()
	}
	tok.Expires, tok.Revoked, tok.LastUsed = fromNull(expires), fromNull(revoked), fromNull(lastUsed)
	return tok, nil
}
