package postgres

import (
	"context"
	"fmt"

	"github.com/foresight-vision/foresight/ports"
)

var _ ports.CaptionVectorStore = (*Store)(nil)

// SaveCaptionVectors implements ports.CaptionVectorStore: one statement a
// batch; the device and start come from the caption's row, so a caption
// deleted meanwhile inserts nothing.
func (s *Store) SaveCaptionVectors(ctx context.Context, model string, vectors []ports.CaptionVector) error {
	if len(vectors) == 0 {
		return nil
	}
	ids := make([]string, len(vectors))
	blobs := make([][]byte, len(vectors))
	for i, v := range vectors {
		ids[i], blobs[i] = v.CaptionID, ports.AppendVectorBytes(nil, ports.Unit(v.Vector))
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO caption_vectors (caption_id, model, device, start_at, vec)
		SELECT c.id, $1, c.device, c.start_at, v.vec
		FROM unnest($2::text[], $3::bytea[]) AS v (id, vec) JOIN captions c ON c.id = v.id
		ON CONFLICT (caption_id) DO UPDATE SET model = excluded.model, vec = excluded.vec`, model, ids, blobs)
	if err != nil {
		return fmt.Errorf("insert vector batch: %w", err)
	}
	return nil
}

// CaptionsWithoutVector implements ports.CaptionVectorStore, oldest first.
func (s *Store) CaptionsWithoutVector(ctx context.Context, model string, limit int) ([]ports.Caption, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+captionColumns+` FROM captions c
		WHERE NOT EXISTS (SELECT 1 FROM caption_vectors v WHERE v.caption_id = c.id AND v.model = $1)
		ORDER BY start_at, id LIMIT $2`, model, max(limit, 1))
	if err != nil {
		return nil, fmt.Errorf("captions without vector: %w", err)
	}
	return scanCaptions(rows)
}

// NearestCaptions implements ports.CaptionVectorStore: the device's
// vectors in the range come from an index-only scan and are scored here.
func (s *Store) NearestCaptions(ctx context.Context, q ports.VectorSearch) ([]ports.Caption, error) {
	unit := ports.Unit(q.Vector)
	rows, err := s.pool.Query(ctx, `SELECT caption_id, vec FROM caption_vectors
		WHERE model = $1 AND device = $2 AND start_at >= $3 AND start_at < $4`,
		q.Model, q.Device, q.Since.UTC(), q.Until.UTC())
	if err != nil {
		return nil, fmt.Errorf("scan vectors: %w", err)
	}
	best := ports.NewNearest[string](searchLimit(q.Limit))
	for rows.Next() {
		var id string
		var vec []byte
		if err := rows.Scan(&id, &vec); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read vector row: %w", err)
		}
		if score, err := ports.DotBytes(unit, vec); err == nil {
			best.Offer(id, score)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("scan vectors: %w", err)
	}
	ids := best.Keys()
	if len(ids) == 0 {
		return nil, nil
	}
	got, err := s.pool.Query(ctx, `SELECT `+captionColumns+` FROM captions WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("read nearest captions: %w", err)
	}
	found, err := scanCaptions(got)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]ports.Caption, len(found))
	for _, c := range found {
		byID[c.ID] = c
	}
	out := make([]ports.Caption, 0, len(ids))
	for _, id := range ids {
		if c, ok := byID[id]; ok {
			out = append(out, c)
		}
	}
	return out, nil
}
