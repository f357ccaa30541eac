package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/foresight-vision/foresight/ports"
)

// The caption store is also the nudge loop's caption source and audit trail,
// in the same file. One process runs the loop over a SQLite file, so its
// evaluation lock is domain.LocalEvaluationLock.
var (
	_ ports.CaptionSource     = (*Store)(nil)
	_ ports.InterventionStore = (*Store)(nil)
)

// RecentCaptions implements ports.CaptionSource: the device's captions whose
// chunk ended at or after since, oldest first, at most the newest
// ports.MaxRecentCaptions of them.
func (s *Store) RecentCaptions(ctx context.Context, device string, since time.Time) ([]ports.CaptionRef, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT id, end_us, caption FROM captions
		WHERE device = ? AND end_us >= ? ORDER BY end_us DESC, id DESC LIMIT ?`,
		device, since.UnixMicro(), ports.MaxRecentCaptions)
	if err != nil {
		return nil, fmt.Errorf("query recent captions: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []ports.CaptionRef
	for rows.Next() {
		var c ports.CaptionRef
		var endUS int64
		if err := rows.Scan(&c.ID, &endUS, &c.Text); err != nil {
			return nil, fmt.Errorf("read recent caption: %w", err)
		}
		c.Time = time.UnixMicro(endUS).UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query recent captions: %w", err)
	}
	slices.Reverse(out)
	return out, nil
}

// ActiveDevices implements ports.CaptionSource, devices sorted.
func (s *Store) ActiveDevices(ctx context.Context, since time.Time) ([]string, error) {
	rows, err := s.read.QueryContext(ctx,
		`SELECT DISTINCT device FROM captions WHERE end_us >= ? ORDER BY device`, since.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("query active devices: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("read active device: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
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
	idsJSON, err := json.Marshal(ids)
	if err != nil {
		return ports.Intervention{}, fmt.Errorf("encode caption ids: %w", err)
	}
	var id int64
	err = s.write.QueryRowContext(ctx, `INSERT INTO interventions
		(device, time_us, engine, verdict, reasoning, caption_ids, model, prompt_tokens, completion_tokens,
		 nudge, status, delivered_at_us, attempts, error)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		rec.Device, rec.Time.UnixMicro(), rec.Engine, string(rec.Verdict), rec.Reasoning, string(idsJSON), rec.Model,
		rec.PromptTokens, rec.CompletionTokens, rec.Nudge, string(rec.Status), nullableMicros(rec.DeliveredAt),
		rec.Attempts, rec.Error).Scan(&id)
	if err != nil {
		return ports.Intervention{}, fmt.Errorf("insert intervention: %w", err)
	}
	rec.ID = strconv.FormatInt(id, 10)
	rec.Time = rec.Time.UTC().Truncate(time.Microsecond)
	rec.DeliveredAt = truncateTime(rec.DeliveredAt)
	rec.CaptionIDs = slices.Clone(ids)
	return rec, nil
}

// UpdateDelivery implements ports.InterventionStore.
func (s *Store) UpdateDelivery(ctx context.Context, id string, u ports.DeliveryUpdate) error {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil {
		return fmt.Errorf("intervention %q not found", id)
	}
	res, err := s.write.ExecContext(ctx,
		`UPDATE interventions SET status = ?, delivered_at_us = ?, attempts = ?, error = ? WHERE id = ?`,
		string(u.Status), nullableMicros(u.DeliveredAt), u.Attempts, u.Error, n)
	if err != nil {
		return fmt.Errorf("update intervention delivery: %w", err)
	}
	if rows, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update intervention delivery: %w", err)
	} else if rows == 0 {
		return fmt.Errorf("intervention %q not found", id)
	}
	return nil
}

// ListInterventions implements ports.InterventionStore: newest (time, then
// id) first, keyset-paged.
func (s *Store) ListInterventions(ctx context.Context, q ports.InterventionQuery) (ports.InterventionPage, error) {
	var where []string
	var args []any
	if q.Device != "" {
		where, args = append(where, "device = ?"), append(args, q.Device)
	}
	if q.Devices != nil {
		where, args = deviceIn(where, args, q.Devices)
	}
	if !q.Since.IsZero() {
		where, args = append(where, "time_us >= ?"), append(args, q.Since.UnixMicro())
	}
	if q.Cursor != "" {
		t, id, err := ports.ParseInterventionCursor(q.Cursor)
		if err != nil {
			return ports.InterventionPage{}, err
		}
		where, args = append(where, "(time_us, id) < (?, ?)"), append(args, t.UnixMicro(), id)
	}
	limit := q.EffectiveLimit()
	query := `SELECT id, device, time_us, engine, verdict, reasoning, caption_ids, model, prompt_tokens,
		completion_tokens, nudge, status, delivered_at_us, attempts, error FROM interventions`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY time_us DESC, id DESC LIMIT ?"
	args = append(args, limit+1) // one more says whether another page exists

	rows, err := s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return ports.InterventionPage{}, fmt.Errorf("query interventions: %w", err)
	}
	defer func() { _ = rows.Close() }()
	page := ports.InterventionPage{Items: make([]ports.Intervention, 0, min(limit, 64))}
	var lastID int64
	for rows.Next() {
		var r ports.Intervention
		var id, timeUS int64
		var verdict, status, idsJSON string
		var deliveredUS sql.NullInt64
		if err := rows.Scan(&id, &r.Device, &timeUS, &r.Engine, &verdict, &r.Reasoning, &idsJSON, &r.Model,
			&r.PromptTokens, &r.CompletionTokens, &r.Nudge, &status, &deliveredUS, &r.Attempts, &r.Error); err != nil {
			return ports.InterventionPage{}, fmt.Errorf("read intervention row: %w", err)
		}
		if err := json.Unmarshal([]byte(idsJSON), &r.CaptionIDs); err != nil {
			return ports.InterventionPage{}, fmt.Errorf("read intervention %d caption ids: %w", id, err)
		}
		r.ID, r.Time = strconv.FormatInt(id, 10), time.UnixMicro(timeUS).UTC()
		r.Verdict, r.Status = ports.Verdict(verdict), ports.DeliveryStatus(status)
		if deliveredUS.Valid {
			r.DeliveredAt = time.UnixMicro(deliveredUS.Int64).UTC()
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
	var last sql.NullInt64
	err := s.read.QueryRowContext(ctx, `SELECT max(delivered_at_us) FROM interventions
		WHERE device = ? AND status = 'delivered'`, device).Scan(&last)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, fmt.Errorf("query last delivery: %w", err)
	}
	if !last.Valid {
		return time.Time{}, nil
	}
	return time.UnixMicro(last.Int64).UTC(), nil
}

func nullableMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMicro()
}

func truncateTime(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Microsecond)
}

// deviceIn adds "device IN (…)" for a device set; an empty set matches
// nothing.
func deviceIn(where []string, args []any, devices []string) ([]string, []any) {
	if len(devices) == 0 {
		return append(where, "0"), args
	}
	marks := strings.TrimSuffix(strings.Repeat("?,", len(devices)), ",")
	for _, d := range devices {
		args = append(args, d)
	}
	return append(where, "device IN ("+marks+")"), args
}
