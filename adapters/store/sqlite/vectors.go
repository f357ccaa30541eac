package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/foresight-vision/foresight/ports"
)

var _ ports.CaptionVectorStore = (*Store)(nil)

// SaveCaptionVectors implements ports.CaptionVectorStore.
func (s *Store) SaveCaptionVectors(ctx context.Context, model string, vectors []ports.CaptionVector) error {
	if len(vectors) == 0 {
		return nil
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin vector batch: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	// The caption's seq, device and start come from its row: a caption
	// deleted meanwhile inserts nothing.
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO caption_vectors (model, device, start_us, seq, vec)
		SELECT ?, device, start_us, seq, ? FROM captions WHERE id = ?
		ON CONFLICT (seq) DO UPDATE SET model = excluded.model, vec = excluded.vec`)
	if err != nil {
		return fmt.Errorf("prepare vector insert: %w", err)
	}
	defer func() { _ = stmt.Close() }()
	for _, v := range vectors {
		if _, err := stmt.ExecContext(ctx, model, ports.AppendVectorBytes(nil, ports.Unit(v.Vector)), v.CaptionID); err != nil {
			return fmt.Errorf("insert vector: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit vector batch: %w", err)
	}
	return nil
}

// CaptionsWithoutVector implements ports.CaptionVectorStore, oldest stored first.
func (s *Store) CaptionsWithoutVector(ctx context.Context, model string, limit int) ([]ports.Caption, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+captionColumns+` FROM captions c
		WHERE NOT EXISTS (SELECT 1 FROM caption_vectors v WHERE v.seq = c.seq AND v.model = ?)
		ORDER BY c.seq LIMIT ?`, model, max(limit, 1))
	if err != nil {
		return nil, fmt.Errorf("captions without vector: %w", err)
	}
	return scanCaptions(rows)
}

// NearestCaptions implements ports.CaptionVectorStore: the device's
// vectors in the range are read in key order and scored in place.
func (s *Store) NearestCaptions(ctx context.Context, q ports.VectorSearch) ([]ports.Caption, error) {
	unit := ports.Unit(q.Vector)
	rows, err := s.read.QueryContext(ctx, `SELECT seq, vec FROM caption_vectors
		WHERE model = ? AND device = ? AND start_us >= ? AND start_us < ?`,
		q.Model, q.Device, q.Since.UnixMicro(), q.Until.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("scan vectors: %w", err)
	}
	best := ports.NewNearest[int64](searchLimit(q.Limit))
	var vec []byte
	for rows.Next() {
		var seq int64
		if err := rows.Scan(&seq, &vec); err != nil {
			_ = rows.Close()
			return nil, fmt.Errorf("read vector row: %w", err)
		}
		score, err := ports.DotBytes(unit, vec)
		if err != nil {
			continue // another dimension: a model renamed in place; never comparable
		}
		best.Offer(seq, score)
	}
	if err := rows.Err(); err != nil {
		_ = rows.Close()
		return nil, fmt.Errorf("scan vectors: %w", err)
	}
	_ = rows.Close()
	seqs := best.Keys()
	if len(seqs) == 0 {
		return nil, nil
	}
	args := make([]any, len(seqs))
	for i, seq := range seqs {
		args[i] = seq
	}
	got, err := s.read.QueryContext(ctx, `SELECT `+captionColumns+`, c.seq FROM captions c WHERE c.seq IN (?`+
		strings.Repeat(",?", len(seqs)-1)+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("read nearest captions: %w", err)
	}
	return inKeyOrder(got, seqs)
}

// inKeyOrder reads rows of captionColumns then seq, and returns them in
// the order of seqs.
func inKeyOrder(rows *sql.Rows, seqs []int64) ([]ports.Caption, error) {
	defer func() { _ = rows.Close() }()
	bySeq := make(map[int64]ports.Caption, len(seqs))
	for rows.Next() {
		var c ports.Caption
		var startUS, endUS, seq int64
		if err := rows.Scan(&c.ID, &c.Device, &c.StreamID, &startUS, &endUS, &c.ChunkStartS, &c.ChunkEndS,
			&c.Text, &c.LatencyMS, &c.Tokens, &c.Backend, &c.Model, &seq); err != nil {
			return nil, fmt.Errorf("read caption row: %w", err)
		}
		c.Start, c.End = time.UnixMicro(startUS).UTC(), time.UnixMicro(endUS).UTC()
		bySeq[seq] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read captions: %w", err)
	}
	out := make([]ports.Caption, 0, len(seqs))
	for _, seq := range seqs {
		if c, ok := bySeq[seq]; ok { // deleted since the scan: left out
			out = append(out, c)
		}
	}
	return out, nil
}
