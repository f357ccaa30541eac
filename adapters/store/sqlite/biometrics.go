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

var (
	_ ports.BiometricStore  = (*Store)(nil)
	_ ports.BiometricSource = (*Store)(nil)
)

const insertBiometric = `INSERT INTO biometrics
	(device, window_id, start_us, end_us, duration_us, quality, hr_mean, hr_min, hr_max, hr_std,
	 movement_intensity, alert_level, susceptibility, features, risk, stored_at_us)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (device, window_id) DO NOTHING`

// SaveBiometrics implements ports.BiometricWriter: one transaction per batch.
func (s *Store) SaveBiometrics(ctx context.Context, windows []ports.BiometricWindow) error {
	if len(windows) == 0 {
		return nil
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin biometric batch: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	stmt, err := tx.PrepareContext(ctx, insertBiometric)
	if err != nil {
		return fmt.Errorf("prepare biometric insert: %w", err)
	}
	defer func() { _ = stmt.Close() }()
	for _, w := range windows {
		features, err := json.Marshal(featuresOrEmpty(w.Features))
		if err != nil {
			return fmt.Errorf("encode biometric features: %w", err)
		}
		var risk any
		if len(w.Risk) > 0 {
			risk = string(w.Risk)
		}
		var alert any
		if w.AlertLevel != "" {
			alert = w.AlertLevel
		}
		if _, err := stmt.ExecContext(ctx, w.Device, w.WindowID, w.Start.UnixMicro(), w.End().UnixMicro(),
			w.Duration.Microseconds(), w.Features["qualityScore"], w.Features["hrMean"], w.Features["hrMin"],
			w.Features["hrMax"], w.Features["hrStd"], w.Features["movementIntensity"], alert, w.Susceptibility,
			string(features), risk, w.StoredAt.UnixMicro()); err != nil {
			return fmt.Errorf("insert biometric window: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
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
	var us int64
	err := s.read.QueryRowContext(ctx, `SELECT stored_at_us FROM biometrics WHERE device = ? AND window_id = ?`,
		device, windowID).Scan(&us)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return time.Time{}, false, nil
	case err != nil:
		return time.Time{}, false, fmt.Errorf("query biometric window: %w", err)
	}
	return time.UnixMicro(us).UTC(), true, nil
}

// QueryBiometrics implements ports.BiometricStore: newest (start, then
// insertion) first, keyset-paged; the cursor's id is the row's seq.
func (s *Store) QueryBiometrics(ctx context.Context, q ports.BiometricQuery) (ports.BiometricPage, error) {
	var where []string
	var args []any
	if q.Device != "" {
		where, args = append(where, "device = ?"), append(args, q.Device)
	}
	if !q.Since.IsZero() {
		where, args = append(where, "start_us >= ?"), append(args, q.Since.UnixMicro())
	}
	if !q.Until.IsZero() {
		where, args = append(where, "start_us < ?"), append(args, q.Until.UnixMicro())
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
		where, args = append(where, "(start_us, seq) < (?, ?)"), append(args, cur.Start.UnixMicro(), seq)
	}
	limit := q.EffectiveLimit()
	query := `SELECT seq, device, window_id, start_us, duration_us, alert_level, susceptibility, features, risk, stored_at_us
		FROM biometrics`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY start_us DESC, seq DESC LIMIT ?"
	args = append(args, limit+1)
	rows, err := s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return ports.BiometricPage{}, fmt.Errorf("query biometrics: %w", err)
	}
	defer func() { _ = rows.Close() }()
	page := ports.BiometricPage{Windows: make([]ports.BiometricWindow, 0, min(limit, 64))}
	var lastSeq int64
	for rows.Next() {
		var w ports.BiometricWindow
		var seq, startUS, durUS, storedUS int64
		var alert, risk sql.NullString
		var features string
		if err := rows.Scan(&seq, &w.Device, &w.WindowID, &startUS, &durUS, &alert, &w.Susceptibility,
			&features, &risk, &storedUS); err != nil {
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
		w.Start, w.Duration = time.UnixMicro(startUS).UTC(), time.Duration(durUS)*time.Microsecond
		w.AlertLevel, w.StoredAt = alert.String, time.UnixMicro(storedUS).UTC()
		if risk.Valid {
			w.Risk = json.RawMessage(risk.String)
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
	return s.execCount(ctx, "delete old biometric windows",
		`DELETE FROM biometrics WHERE seq IN (SELECT seq FROM biometrics WHERE start_us < ? ORDER BY start_us LIMIT ?)`,
		t.UnixMicro(), max(limit, 1))
}

// DeleteDeviceBiometrics implements ports.BiometricStore.
func (s *Store) DeleteDeviceBiometrics(ctx context.Context, device string, since, until time.Time, limit int) (int, error) {
	lo, hi := int64(-1<<63), int64(1<<63-1)
	if !since.IsZero() {
		lo = since.UnixMicro()
	}
	if !until.IsZero() {
		hi = until.UnixMicro()
	}
	return s.execCount(ctx, "delete device biometric windows",
		`DELETE FROM biometrics WHERE seq IN (SELECT seq FROM biometrics
			WHERE device = ? AND start_us >= ? AND start_us < ? LIMIT ?)`, device, lo, hi, max(limit, 1))
}

func (s *Store) execCount(ctx context.Context, what, query string, args ...any) (int, error) {
	res, err := s.write.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return int(n), nil
}

// RecentBiometrics implements ports.BiometricSource, as RecentCaptions: the
// mark is biometrics.seq, the insertion order of the single writer.
func (s *Store) RecentBiometrics(ctx context.Context, device string, since, unjudgedSince time.Time) (ports.BiometricSet, error) {
	rows, err := s.read.QueryContext(ctx, `WITH m AS (
			SELECT coalesce((SELECT seq FROM biometric_marks WHERE device = ?1), 0) AS mark,
			       (SELECT coalesce(max(seq), 0) FROM biometrics) AS top)
		SELECT b.window_id, b.end_us, b.alert_level, b.features, (b.seq > m.mark OR m.mark > m.top) AS new, m.top
		FROM biometrics b, m
		WHERE b.device = ?1 AND b.end_us >= ?3 AND (b.end_us >= ?2 OR b.seq > m.mark OR m.mark > m.top)
		ORDER BY b.end_us DESC, b.seq DESC LIMIT ?4`,
		device, since.UnixMicro(), min(since.UnixMicro(), unjudgedSince.UnixMicro()), ports.MaxRecentBiometrics)
	if err != nil {
		return ports.BiometricSet{}, fmt.Errorf("query recent biometrics: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out ports.BiometricSet
	for rows.Next() {
		var w ports.BiometricRef
		var endUS, top int64
		var alert sql.NullString
		var features string
		if err := rows.Scan(&w.ID, &endUS, &alert, &features, &w.New, &top); err != nil {
			return ports.BiometricSet{}, fmt.Errorf("read recent biometric window: %w", err)
		}
		if w.Features, err = numericFeatures(features); err != nil {
			return ports.BiometricSet{}, err
		}
		w.Time, w.AlertLevel = time.UnixMicro(endUS).UTC(), alert.String
		out.Windows = append(out.Windows, w)
		out.Mark = strconv.FormatInt(top, 10)
	}
	if err := rows.Err(); err != nil {
		return ports.BiometricSet{}, fmt.Errorf("query recent biometrics: %w", err)
	}
	slices.Reverse(out.Windows)
	return out, nil
}

// numericFeatures decodes the stored features, leaving out the nulls.
func numericFeatures(raw string) (map[string]float64, error) {
	var all map[string]*float64
	if err := json.Unmarshal([]byte(raw), &all); err != nil {
		return nil, fmt.Errorf("read biometric features: %w", err)
	}
	out := make(map[string]float64, len(all))
	for k, v := range all {
		if v != nil {
			out[k] = *v
		}
	}
	return out, nil
}

// MarkBiometricsJudged implements ports.BiometricSource, as MarkJudged.
func (s *Store) MarkBiometricsJudged(ctx context.Context, device, mark string) error {
	seq, err := strconv.ParseInt(mark, 10, 64)
	if err != nil || seq < 0 {
		return fmt.Errorf("judged biometric mark %q is not one this store gave out", mark)
	}
	if _, err := s.write.ExecContext(ctx, `INSERT INTO biometric_marks (device, seq) VALUES (?1, ?2)
		ON CONFLICT (device) DO UPDATE SET seq = ?2
		WHERE biometric_marks.seq < ?2 OR biometric_marks.seq > (SELECT coalesce(max(seq), 0) FROM biometrics)`,
		device, seq); err != nil {
		return fmt.Errorf("record judged biometric mark: %w", err)
	}
	return nil
}

// ActiveBiometricDevices implements ports.BiometricSource, devices sorted.
func (s *Store) ActiveBiometricDevices(ctx context.Context, since time.Time) ([]string, error) {
	rows, err := s.read.QueryContext(ctx,
		`SELECT DISTINCT device FROM biometrics WHERE end_us >= ? ORDER BY device`, since.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("query active biometric devices: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var out []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("read active biometric device: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query active biometric devices: %w", err)
	}
	return out, nil
}
