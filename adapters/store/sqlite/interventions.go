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
// in the same file. One process runs the loop over a SQLite file
// (LockNudgeLoop enforces it), so its evaluation lock is
// domain.LocalEvaluationLock.
var (
	_ ports.CaptionSource     = (*Store)(nil)
	_ ports.InterventionStore = (*Store)(nil)
)

// ErrNudgeLoopHeld: another process (or another open in this one) runs the
// nudge loop on this SQLite file.
var ErrNudgeLoopHeld = errors.New("another process runs the nudge loop on this SQLite file")

// NudgeLoopLockPath is the lock file beside the database at path that the
// process running the nudge loop holds.
func NudgeLoopLockPath(path string) string { return path + ".nudge-lock" }

// LockNudgeLoop takes, without waiting, the exclusive lock (flock on
// NudgeLoopLockPath) that makes one process the only one running the nudge
// loop on the database at path: domain.LocalEvaluationLock, its cooldown
// memory and the slot it claims are in memory, so two loops on one file
// would each deliver. ErrNudgeLoopHeld while it is held elsewhere. The lock
// lasts until release is called, or the process ends (a crash frees it).
func LockNudgeLoop(path string) (release func(), err error) {
	release, err = tryLockFile(NudgeLoopLockPath(path))
	if err != nil && !errors.Is(err, ErrNudgeLoopHeld) {
		return nil, fmt.Errorf("nudge loop lock: %w", err)
	}
	return release, err
}

// RecentCaptions implements ports.CaptionSource: the device's captions whose
// chunk ended at or after since, and the unjudged ones that ended at or
// after unjudgedSince, oldest first, at most the newest
// ports.MaxRecentCaptions of them.
//
// The mark is captions.seq, the insertion order: one writer at a time
// assigns it, so every caption stored after a read has a higher seq than
// any the read saw. Without AUTOINCREMENT a seq may be given out again once
// every caption above it is deleted (retention emptying the table): a mark
// above the table's highest seq is then stale, and everything is new.
func (s *Store) RecentCaptions(ctx context.Context, device string, since, unjudgedSince time.Time) (ports.CaptionWindow, error) {
	rows, err := s.read.QueryContext(ctx, `WITH m AS (
			SELECT coalesce((SELECT seq FROM nudge_marks WHERE device = ?1), 0) AS mark,
			       (SELECT coalesce(max(seq), 0) FROM captions) AS top)
		SELECT c.seq, c.id, c.end_us, c.caption, (c.seq > m.mark OR m.mark > m.top) AS new, m.top
		FROM captions c, m
		WHERE c.device = ?1 AND c.end_us >= ?3 AND (c.end_us >= ?2 OR c.seq > m.mark OR m.mark > m.top)
		ORDER BY c.end_us DESC, c.id DESC LIMIT ?4`,
		device, since.UnixMicro(), min(since.UnixMicro(), unjudgedSince.UnixMicro()), ports.MaxRecentCaptions)
	if err != nil {
		return ports.CaptionWindow{}, fmt.Errorf("query recent captions: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out ports.CaptionWindow
	for rows.Next() {
		var c ports.CaptionRef
		var seq, endUS, top int64
		if err := rows.Scan(&seq, &c.ID, &endUS, &c.Text, &c.New, &top); err != nil {
			return ports.CaptionWindow{}, fmt.Errorf("read recent caption: %w", err)
		}
		c.Time = time.UnixMicro(endUS).UTC()
		out.Captions = append(out.Captions, c)
		// The highest seq stored when the read began covers every caption
		// the read could see (and others' that are no use any more).
		out.Mark = strconv.FormatInt(top, 10)
	}
	if err := rows.Err(); err != nil {
		return ports.CaptionWindow{}, fmt.Errorf("query recent captions: %w", err)
	}
	slices.Reverse(out.Captions)
	return out, nil
}

// MarkJudged implements ports.CaptionSource. The mark only moves forward,
// unless the one stored is stale (above every seq in the table).
func (s *Store) MarkJudged(ctx context.Context, device, mark string) error {
	seq, err := strconv.ParseInt(mark, 10, 64)
	if err != nil || seq < 0 {
		return fmt.Errorf("judged mark %q is not one this store gave out", mark)
	}
	if _, err := s.write.ExecContext(ctx, `INSERT INTO nudge_marks (device, seq) VALUES (?1, ?2)
		ON CONFLICT (device) DO UPDATE SET seq = ?2
		WHERE nudge_marks.seq < ?2 OR nudge_marks.seq > (SELECT coalesce(max(seq), 0) FROM captions)`,
		device, seq); err != nil {
		return fmt.Errorf("record judged mark: %w", err)
	}
	return nil
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
	bioIDs := rec.BiometricIDs
	if bioIDs == nil {
		bioIDs = []string{}
	}
	bioJSON, err := json.Marshal(bioIDs)
	if err != nil {
		return ports.Intervention{}, fmt.Errorf("encode biometric ids: %w", err)
	}
	var id int64
	err = s.write.QueryRowContext(ctx, `INSERT INTO interventions
		(device, time_us, engine, verdict, reasoning, caption_ids, model, prompt_tokens, completion_tokens,
		 nudge, status, delivered_at_us, attempts, error, biometric_ids)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		rec.Device, rec.Time.UnixMicro(), rec.Engine, string(rec.Verdict), rec.Reasoning, string(idsJSON), rec.Model,
		rec.PromptTokens, rec.CompletionTokens, rec.Nudge, string(rec.Status), nullableMicros(rec.DeliveredAt),
		rec.Attempts, rec.Error, string(bioJSON)).Scan(&id)
	if err != nil {
		return ports.Intervention{}, fmt.Errorf("insert intervention: %w", err)
	}
	rec.ID = strconv.FormatInt(id, 10)
	rec.Time = rec.Time.UTC().Truncate(time.Microsecond)
	rec.DeliveredAt = truncateTime(rec.DeliveredAt)
	rec.CaptionIDs, rec.BiometricIDs = slices.Clone(ids), slices.Clone(bioIDs)
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
		completion_tokens, nudge, status, delivered_at_us, attempts, error, biometric_ids FROM interventions`
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
		var verdict, status, idsJSON, bioJSON string
		var deliveredUS sql.NullInt64
		if err := rows.Scan(&id, &r.Device, &timeUS, &r.Engine, &verdict, &r.Reasoning, &idsJSON, &r.Model,
			&r.PromptTokens, &r.CompletionTokens, &r.Nudge, &status, &deliveredUS, &r.Attempts, &r.Error, &bioJSON); err != nil {
			return ports.InterventionPage{}, fmt.Errorf("read intervention row: %w", err)
		}
		if err := json.Unmarshal([]byte(idsJSON), &r.CaptionIDs); err != nil {
			return ports.InterventionPage{}, fmt.Errorf("read intervention %d caption ids: %w", id, err)
		}
		if err := json.Unmarshal([]byte(bioJSON), &r.BiometricIDs); err != nil {
			return ports.InterventionPage{}, fmt.Errorf("read intervention %d biometric ids: %w", id, err)
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
