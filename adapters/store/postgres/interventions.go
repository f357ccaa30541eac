package postgres

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/foresight-vision/foresight/ports"
)

// The caption store is also the nudge loop's caption source and audit trail,
// in the same database; EvaluationLock keeps instances sharing it apart.
var (
	_ ports.CaptionSource     = (*Store)(nil)
	_ ports.InterventionStore = (*Store)(nil)
)

// RecentCaptions implements ports.CaptionSource: the device's captions whose
// chunk ended at or after since, and the unjudged ones that ended at or
// after unjudgedSince, oldest first, at most the newest
// ports.MaxRecentCaptions of them.
//
// The mark is the read's own snapshot (one statement, one snapshot): a
// caption is judged when its transaction was visible to the snapshot of
// the last recorded decision. Unlike a sequence, that holds with writers
// committing out of order on several instances.
func (s *Store) RecentCaptions(ctx context.Context, device string, since, unjudgedSince time.Time) (ports.CaptionWindow, error) {
	if unjudgedSince.After(since) {
		unjudgedSince = since
	}
	rows, err := s.pool.Query(ctx, `WITH m AS (SELECT (SELECT snapshot FROM nudge_marks WHERE device = $1) AS snap)
		SELECT id, end_at, caption, new, pg_current_snapshot()::text FROM (
			SELECT c.id, c.end_at, c.caption,
				(m.snap IS NULL OR (c.ins_xid IS NOT NULL AND NOT pg_visible_in_snapshot(c.ins_xid, m.snap))) AS new
			FROM captions c, m WHERE c.device = $1 AND c.end_at >= $3) w
		WHERE end_at >= $2 OR new
		ORDER BY end_at DESC, id DESC LIMIT $4`,
		device, since.UTC(), unjudgedSince.UTC(), ports.MaxRecentCaptions)
	if err != nil {
		return ports.CaptionWindow{}, fmt.Errorf("query recent captions: %w", err)
	}
	var out ports.CaptionWindow
	out.Captions, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (ports.CaptionRef, error) {
		var c ports.CaptionRef
		err := row.Scan(&c.ID, &c.Time, &c.Text, &c.New, &out.Mark)
		c.Time = c.Time.UTC()
		return c, err
	})
	if err != nil {
		return ports.CaptionWindow{}, fmt.Errorf("query recent captions: %w", err)
	}
	slices.Reverse(out.Captions)
	return out, nil
}

// MarkJudged implements ports.CaptionSource. The loop calls it under the
// device's evaluation lock, so marks of one device are written one at a
// time, each from a read made under the same lock.
func (s *Store) MarkJudged(ctx context.Context, device, mark string) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO nudge_marks (device, snapshot) VALUES ($1, $2::pg_snapshot)
		ON CONFLICT (device) DO UPDATE SET snapshot = EXCLUDED.snapshot`, device, mark); err != nil {
		return fmt.Errorf("record judged mark: %w", err)
	}
	return nil
}

// ActiveDevices implements ports.CaptionSource, devices sorted.
func (s *Store) ActiveDevices(ctx context.Context, since time.Time) ([]string, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT DISTINCT device COLLATE "C" FROM captions WHERE end_at >= $1 ORDER BY 1`, since.UTC())
	if err != nil {
		return nil, fmt.Errorf("query active devices: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("query active devices: %w", err)
	}
	return out, nil
}

// CreateIntervention implements ports.InterventionStore.
func (s *Store) CreateIntervention(ctx context.Context, rec ports.Intervention) (ports.Intervention, error) {
	ids := rec.CaptionIDs
	if ids == nil {
		ids = []string{}
	}
	bioIDs := rec.BiometricIDs
	if bioIDs == nil {
		bioIDs = []string{}
	}
	var id int64
	err := s.pool.QueryRow(ctx, `INSERT INTO interventions
		(device, time, engine, verdict, reasoning, caption_ids, model, prompt_tokens, completion_tokens,
		 nudge, status, delivered_at, attempts, error, biometric_ids)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) RETURNING id`,
		rec.Device, rec.Time.UTC(), rec.Engine, string(rec.Verdict), rec.Reasoning, ids, rec.Model,
		rec.PromptTokens, rec.CompletionTokens, rec.Nudge, string(rec.Status), nullableTime(rec.DeliveredAt),
		rec.Attempts, rec.Error, bioIDs).Scan(&id)
	if err != nil {
		return ports.Intervention{}, fmt.Errorf("insert intervention: %w", err)
	}
	rec.ID = strconv.FormatInt(id, 10)
	rec.Time = rec.Time.UTC().Truncate(time.Microsecond)
	if !rec.DeliveredAt.IsZero() {
		rec.DeliveredAt = rec.DeliveredAt.UTC().Truncate(time.Microsecond)
	}
	rec.CaptionIDs, rec.BiometricIDs = slices.Clone(ids), slices.Clone(bioIDs)
	return rec, nil
}

// UpdateDelivery implements ports.InterventionStore.
func (s *Store) UpdateDelivery(ctx context.Context, id string, u ports.DeliveryUpdate) error {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return fmt.Errorf("intervention %q not found", id)
	}
	tag, err := s.pool.Exec(ctx,
		`UPDATE interventions SET status = $1, delivered_at = $2, attempts = $3, error = $4 WHERE id = $5`,
		string(u.Status), nullableTime(u.DeliveredAt), u.Attempts, u.Error, n)
	if err != nil {
		return fmt.Errorf("update intervention delivery: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("intervention %q not found", id)
	}
	return nil
}

// ListInterventions implements ports.InterventionStore: newest (time, then
// id) first, keyset-paged.
func (s *Store) ListInterventions(ctx context.Context, q ports.InterventionQuery) (ports.InterventionPage, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.Device != "" {
		where = append(where, "device = "+arg(q.Device))
	}
	if q.Devices != nil {
		where = append(where, "device = ANY("+arg(q.Devices)+"::text[])")
	}
	if !q.Since.IsZero() {
		where = append(where, "time >= "+arg(q.Since.UTC()))
	}
	if q.Cursor != "" {
		t, id, err := ports.ParseInterventionCursor(q.Cursor)
		if err != nil {
			return ports.InterventionPage{}, err
		}
		where = append(where, fmt.Sprintf("(time, id) < (%s, %s)", arg(t), arg(id)))
	}
	limit := q.EffectiveLimit()
	query := `SELECT id, device, time, engine, verdict, reasoning, caption_ids, model, prompt_tokens,
		completion_tokens, nudge, status, delivered_at, attempts, error, biometric_ids FROM interventions`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY time DESC, id DESC LIMIT " + arg(limit+1) // one more says whether another page exists

	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return ports.InterventionPage{}, fmt.Errorf("query interventions: %w", err)
	}
	defer rows.Close()
	page := ports.InterventionPage{Items: make([]ports.Intervention, 0, min(limit, 64))}
	var lastID int64
	for rows.Next() {
		var r ports.Intervention
		var id int64
		var verdict, status string
		var delivered *time.Time
		if err := rows.Scan(&id, &r.Device, &r.Time, &r.Engine, &verdict, &r.Reasoning, &r.CaptionIDs, &r.Model,
			&r.PromptTokens, &r.CompletionTokens, &r.Nudge, &status, &delivered, &r.Attempts, &r.Error, &r.BiometricIDs); err != nil {
			return ports.InterventionPage{}, fmt.Errorf("read intervention row: %w", err)
		}
		r.ID, r.Time = strconv.FormatInt(id, 10), r.Time.UTC()
		r.Verdict, r.Status = ports.Verdict(verdict), ports.DeliveryStatus(status)
		if r.CaptionIDs == nil {
			r.CaptionIDs = []string{}
		}
		if r.BiometricIDs == nil {
			r.BiometricIDs = []string{}
		}
		if delivered != nil {
			r.DeliveredAt = delivered.UTC()
		}
		if len(page.Items) == limit {
			page.NextCursor = ports.InterventionCursor(page.Items[limit-1].Time, lastID)
			break
		}
		page.Items, lastID = append(page.Items, r), id
	}
	if err := rows.Err(); err != nil {
		return ports.InterventionPage{}, fmt.Errorf("query interventions: %w", err)
	}
	return page, nil
}

// LastDelivered implements ports.InterventionStore.
func (s *Store) LastDelivered(ctx context.Context, device string) (time.Time, error) {
	var last *time.Time
	if err := s.pool.QueryRow(ctx, `SELECT max(delivered_at) FROM interventions
		WHERE device = $1 AND status = 'delivered'`, device).Scan(&last); err != nil {
		return time.Time{}, fmt.Errorf("query last delivery: %w", err)
	}
	if last == nil {
		return time.Time{}, nil
	}
	return last.UTC(), nil
}

func nullableTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC()
}
