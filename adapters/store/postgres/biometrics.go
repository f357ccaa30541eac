package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/foresight-vision/foresight/ports"
)

var (
	_ ports.BiometricStore  = (*Store)(nil)
	_ ports.BiometricSource = (*Store)(nil)
)

const insertBiometric = `INSERT INTO biometrics
	(device, window_id, start_at, end_at, duration_us, quality, hr_mean, hr_min, hr_max, hr_std,
	 movement_intensity, alert_level, susceptibility, features, risk, stored_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
	ON CONFLICT (device, window_id) DO NOTHING`

// SaveBiometrics implements ports.BiometricWriter: one transaction per
// batch, sent as one pipeline.
func (s *Store) SaveBiometrics(ctx context.Context, windows []ports.BiometricWindow) error {
	if len(windows) == 0 {
		return nil
	}
	batch := &pgx.Batch{}
	for _, w := range windows {
		features, err := json.Marshal(featuresOrEmpty(w.Features))
		if err != nil {
			return fmt.Errorf("encode biometric features: %w", err)
		}
		var risk, alert any
		if len(w.Risk) > 0 {
			risk = string(w.Risk)
		}
		if w.AlertLevel != "" {
			alert = w.AlertLevel
		}
		batch.Queue(insertBiometric, w.Device, w.WindowID, w.Start.UTC(), w.End().UTC(), w.Duration.Microseconds(),
			w.Features["qualityScore"], w.Features["hrMean"], w.Features["hrMin"], w.Features["hrMax"],
			w.Features["hrStd"], w.Features["movementIntensity"], alert, w.Susceptibility,
			string(features), risk, w.StoredAt.UTC())
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin biometric batch: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("insert biometric windows: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit biometric batch: %w", err)
	}
	return nil
}

func featuresOrEmpty(f map[string]*float64) map[string]*float64 {
	if f == nil {
		return map[string]*float64{}
	}
	return f
}

// BiometricStoredAt implements ports.BiometricStore.
func (s *Store) BiometricStoredAt(ctx context.Context, device, windowID string) (time.Time, bool, error) {
	var at time.Time
	err := s.pool.QueryRow(ctx, `SELECT stored_at FROM biometrics WHERE device = $1 AND window_id = $2`,
		device, windowID).Scan(&at)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return time.Time{}, false, nil
	case err != nil:
		return time.Time{}, false, fmt.Errorf("query biometric window: %w", err)
	}
	return at.UTC(), true, nil
}

// QueryBiometrics implements ports.BiometricStore: newest (start, then
// insertion) first, keyset-paged; the cursor's id is the row's seq.
func (s *Store) QueryBiometrics(ctx context.Context, q ports.BiometricQuery) (ports.BiometricPage, error) {
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if q.Device != "" {
		where = append(where, "device = "+arg(q.Device))
	}
	if !q.Since.IsZero() {
		where = append(where, "start_at >= "+arg(q.Since.UTC()))
	}
	if !q.Until.IsZero() {
		where = append(where, "start_at < "+arg(q.Until.UTC()))
	}
	if q.Cursor != "" {
		cur, err := ports.ParseCaptionCursor(q.Cursor)
		if err != nil {
			return ports.BiometricPage{}, err
		}
		seq, err := strconv.ParseInt(cur.ID, 10, 64)
		if err != nil {
			return ports.BiometricPage{}, fmt.Errorf("%w: not a biometric cursor", ports.ErrBadCaptionCursor)
		}
		where = append(where, fmt.Sprintf("(start_at, seq) < (%s, %s)", arg(cur.Start), arg(seq)))
	}
	limit := q.EffectiveLimit()
	query := `SELECT seq, device, window_id, start_at, duration_us, alert_level, susceptibility, features::text,
		risk::text, stored_at FROM biometrics`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY start_at DESC, seq DESC LIMIT " + arg(limit+1)
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return ports.BiometricPage{}, fmt.Errorf("query biometrics: %w", err)
	}
	defer rows.Close()
	page := ports.BiometricPage{Windows: make([]ports.BiometricWindow, 0, min(limit, 64))}
	var lastSeq int64
	for rows.Next() {
		var w ports.BiometricWindow
		var seq, durUS int64
		var alert, risk *string
		var features string
		if err := rows.Scan(&seq, &w.Device, &w.WindowID, &w.Start, &durUS, &alert, &w.Susceptibility,
			&features, &risk, &w.StoredAt); err != nil {
			return ports.BiometricPage{}, fmt.Errorf("read biometric row: %w", err)
		}
		if len(page.Windows) == limit {
			last := page.Windows[limit-1]
			page.NextCursor = ports.CaptionCursor{Start: last.Start, ID: strconv.FormatInt(lastSeq, 10)}.String()
			break
		}
		if err := json.Unmarshal([]byte(features), &w.Features); err != nil {
			return ports.BiometricPage{}, fmt.Errorf("read biometric features: %w", err)
		}
		w.Start, w.StoredAt, w.Duration = w.Start.UTC(), w.StoredAt.UTC(), time.Duration(durUS)*time.Microsecond
		if alert != nil {
			w.AlertLevel = *alert
		}
		if risk != nil {
			w.Risk = json.RawMessage(*risk)
		}
		page.Windows, lastSeq = append(page.Windows, w), seq
	}
	if err := rows.Err(); err != nil {
		return ports.BiometricPage{}, fmt.Errorf("query biometrics: %w", err)
	}
	return page, nil
}

// DeleteBiometricsBefore implements ports.BiometricStore.
func (s *Store) DeleteBiometricsBefore(ctx context.Context, t time.Time, limit int) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM biometrics WHERE seq IN
		(SELECT seq FROM biometrics WHERE start_at < $1 ORDER BY start_at LIMIT $2)`, t.UTC(), max(limit, 1))
	if err != nil {
		return 0, fmt.Errorf("delete old biometric windows: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// DeleteDeviceBiometrics implements ports.BiometricStore.
func (s *Store) DeleteDeviceBiometrics(ctx context.Context, device string, since, until time.Time, limit int) (int, error) {
	lo, hi := time.Unix(-62135596800, 0), time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC) // open bounds
	if !since.IsZero() {
		lo = since
	}
	if !until.IsZero() {
		hi = until
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM biometrics WHERE seq IN (SELECT seq FROM biometrics
		WHERE device = $1 AND start_at >= $2 AND start_at < $3 LIMIT $4)`, device, lo.UTC(), hi.UTC(), max(limit, 1))
	if err != nil {
		return 0, fmt.Errorf("delete device biometric windows: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// RecentBiometrics implements ports.BiometricSource, as RecentCaptions: the
// mark is the read's own snapshot.
func (s *Store) RecentBiometrics(ctx context.Context, device string, since, unjudgedSince time.Time) (ports.BiometricSet, error) {
	if unjudgedSince.After(since) {
		unjudgedSince = since
	}
	rows, err := s.pool.Query(ctx, `WITH m AS (SELECT (SELECT snapshot FROM biometric_marks WHERE device = $1) AS snap)
		SELECT window_id, end_at, alert_level, features, new, pg_current_snapshot()::text FROM (
			SELECT b.window_id, b.end_at, b.alert_level, b.features::text AS features, b.seq,
				(m.snap IS NULL OR NOT pg_visible_in_snapshot(b.ins_xid, m.snap)) AS new
			FROM biometrics b, m WHERE b.device = $1 AND b.end_at >= $3) w
		WHERE end_at >= $2 OR new
		ORDER BY end_at DESC, seq DESC LIMIT $4`,
		device, since.UTC(), unjudgedSince.UTC(), ports.MaxRecentBiometrics)
	if err != nil {
		return ports.BiometricSet{}, fmt.Errorf("query recent biometrics: %w", err)
	}
	var out ports.BiometricSet
	out.Windows, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (ports.BiometricRef, error) {
		var w ports.BiometricRef
		var alert *string
		var features string
		if err := row.Scan(&w.ID, &w.Time, &alert, &features, &w.New, &out.Mark); err != nil {
			return w, err
		}
		w.Time = w.Time.UTC()
		if alert != nil {
			w.AlertLevel = *alert
		}
		var all map[string]*float64
		if err := json.Unmarshal([]byte(features), &all); err != nil {
			return w, fmt.Errorf("read biometric features: %w", err)
		}
		w.Features = make(map[string]float64, len(all))
		for k, v := range all {
			if v != nil {
				w.Features[k] = *v
			}
		}
		return w, nil
	})
	if err != nil {
		return ports.BiometricSet{}, fmt.Errorf("query recent biometrics: %w", err)
	}
	slices.Reverse(out.Windows)
	return out, nil
}

// MarkBiometricsJudged implements ports.BiometricSource; called under the
// device's evaluation lock, as MarkJudged.
func (s *Store) MarkBiometricsJudged(ctx context.Context, device, mark string) error {
	if _, err := s.pool.Exec(ctx, `INSERT INTO biometric_marks (device, snapshot) VALUES ($1, $2::pg_snapshot)
		ON CONFLICT (device) DO UPDATE SET snapshot = EXCLUDED.snapshot`, device, mark); err != nil {
		return fmt.Errorf("record judged biometric mark: %w", err)
	}
	return nil
}

// ActiveBiometricDevices implements ports.BiometricSource, devices sorted.
func (s *Store) ActiveBiometricDevices(ctx context.Context, since time.Time) ([]string, error) {
	rows, err := s.pool.Query(ctx,
		`SELECT DISTINCT device COLLATE "C" FROM biometrics WHERE end_at >= $1 ORDER BY 1`, since.UTC())
	if err != nil {
		return nil, fmt.Errorf("query active biometric devices: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("query active biometric devices: %w", err)
	}
	return out, nil
}
