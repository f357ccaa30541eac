// Package sqlite keeps captions in an embedded SQLite database
// (modernc.org/sqlite: pure Go, no cgo), with WAL, a busy timeout, one writer
// connection, a small read pool and an FTS5 index for text search. The
// schema comes from versioned migrations embedded in the binary (goose).
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/foresight-vision/foresight/ports"
)

//go:embed migrations/*.sql
var migrations embed.FS

// BusyTimeout is how long a statement waits for another connection's lock.
const BusyTimeout = 5 * time.Second

// Read pool tuning: each reader maps up to ReadMmapBytes of the file and
// caches up to ReadCacheKiB of pages.
const (
	ReadMmapBytes = 256 << 20
	ReadCacheKiB  = 16 << 10
)

// readConns bounds the read pool; searchConns of it at most serve
// searches at once, so a plain listing never waits behind them.
const (
	readConns   = 4
	searchConns = 2
)

// Store is a ports.CaptionStore on one SQLite file.
type Store struct {
	write       *sql.DB // one connection: SQLite has one writer at a time anyway
	read        *sql.DB
	searchSlots chan struct{}
}

var _ ports.CaptionStore = (*Store)(nil)

// Open opens (creating it and its folder if need be) the database at path
// and applies the migrations.
func Open(ctx context.Context, path string) (*Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create the database folder: %w", err)
		}
	}
	pragmas := url.Values{"_pragma": {
		fmt.Sprintf("busy_timeout(%d)", BusyTimeout.Milliseconds()),
		"journal_mode(WAL)",
		"synchronous(NORMAL)", // durable at each checkpoint, safe against corruption in WAL mode
	}}
	writeDSN := "file:" + path + "?" + pragmas.Encode() + "&_txlock=immediate"
	write, err := sql.Open("sqlite", writeDSN)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetConnMaxIdleTime(0)
	s := &Store{write: write, searchSlots: make(chan struct{}, searchConns)}
	if err := migrate(ctx, write, path); err != nil {
		_ = write.Close()
		return nil, err
	}
	if err := checkWritable(ctx, write); err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("sqlite %s is not writable: %w", path, err)
	}
	// Readers map the file and cache more pages than the 2 MB default: a
	// text search fetches one row per match, and with a large file read()
	// calls for each page dominate.
	pragmas["_pragma"] = append(pragmas["_pragma"], "query_only(1)",
		fmt.Sprintf("mmap_size(%d)", ReadMmapBytes), fmt.Sprintf("cache_size(-%d)", ReadCacheKiB))
	read, err := sql.Open("sqlite", "file:"+path+"?"+pragmas.Encode())
	if err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("open sqlite %s for reading: %w", path, err)
	}
	read.SetMaxOpenConns(readConns)
	s.read = read
	return s, nil
}

// checkWritable writes to the file and rolls back. A file SQLite could only
// open read-only (its mode, a read-only mount) passes the migrations when
// they are all applied, then fails every caption write: refused here, at
// start, rather than found out by a recorder retrying until the stop.
func checkWritable(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	var version int64
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	// Rewrites the header page with the value it has: a real write.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", version)); err != nil {
		return err
	}
	return nil
}

// migrate brings the schema up to date. A file lock beside the database
// keeps two processes opening one file at once from racing.
func migrate(ctx context.Context, db *sql.DB, path string) error {
	unlock, err := lockFile(path + ".migrate-lock")
	if err != nil {
		return fmt.Errorf("lock for migrations: %w", err)
	}
	defer unlock()
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	provider, err := goose.NewProvider(goose.DialectSQLite3, db, sub, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("sqlite migrations: %w", err)
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("apply sqlite migrations: %w", err)
	}
	return nil
}

// Close closes both pools.
func (s *Store) Close() error {
	return errors.Join(s.read.Close(), s.write.Close())
}

const insertCaption = `INSERT INTO captions
	(id, device, stream_id, start_us, end_us, chunk_start_s, chunk_end_s, caption, latency_ms, tokens, backend, model)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (id) DO NOTHING`

// SaveCaptions implements ports.CaptionWriter: one transaction per batch.
func (s *Store) SaveCaptions(ctx context.Context, captions []ports.Caption) error {
	if len(captions) == 0 {
		return nil
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin caption batch: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	stmt, err := tx.PrepareContext(ctx, insertCaption)
	if err != nil {
		return fmt.Errorf("prepare caption insert: %w", err)
	}
	defer func() { _ = stmt.Close() }()
	for _, c := range captions {
		if _, err := stmt.ExecContext(ctx, c.ID, c.Device, c.StreamID, c.Start.UnixMicro(), c.End.UnixMicro(),
			c.ChunkStartS, c.ChunkEndS, c.Text, c.LatencyMS, c.Tokens, c.Backend, c.Model); err != nil {
			return fmt.Errorf("insert caption: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit caption batch: %w", err)
	}
	return nil
}

// QueryCaptions implements ports.CaptionReader. A search takes its matches
// from the text index when there are at most ports.SearchIndexRows of them
// (a rare word: cost follows the matches); otherwise it walks the time
// index newest first, testing each caption against the index, and stops
// after a full page or ports.SearchScanRows captions (a common word: cost
// follows the page). The Postgres store walks first and counts after; the
// pages are the same. Searches share searchSlots, so listings always find a
// reader free.
func (s *Store) QueryCaptions(ctx context.Context, q ports.CaptionQuery) (ports.CaptionPage, error) {
	if err := q.Validate(); err != nil {
		return ports.CaptionPage{}, err
	}
	var where []string
	var args []any
	if q.Device != "" {
		where, args = append(where, "device = ?"), append(args, q.Device)
	}
	if q.Devices != nil {
		where, args = deviceIn(where, args, q.Devices)
	}
	if q.StreamID != "" {
		where, args = append(where, "stream_id = ?"), append(args, q.StreamID)
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
			return ports.CaptionPage{}, err
		}
		where, args = append(where, "(start_us, id) < (?, ?)"), append(args, cur.Start.UnixMicro(), cur.ID)
	}
	limit := q.EffectiveLimit()
	if strings.TrimSpace(q.Text) == "" {
		return s.page(ctx, selectCaptions+whereClause(where)+newestFirst+" LIMIT ?", append(args, limit+1), limit)
	}
	words := ports.SearchWords(q.Text)
	if len(words) == 0 {
		return ports.CaptionPage{}, nil // no word to look for: nothing matches
	}
	match := matchExpression(words)
	select {
	case s.searchSlots <- struct{}{}:
		defer func() { <-s.searchSlots }()
	case <-ctx.Done():
		return ports.CaptionPage{}, fmt.Errorf("wait for a search slot: %w", ctx.Err())
	}
	var matches int
	if err := s.read.QueryRowContext(ctx,
		"SELECT count(*) FROM (SELECT rowid FROM captions_fts WHERE captions_fts MATCH ? LIMIT ?)",
		match, ports.SearchIndexRows+1).Scan(&matches); err != nil {
		return ports.CaptionPage{}, fmt.Errorf("count caption matches: %w", err)
	}
	if matches <= ports.SearchIndexRows {
		where = append(where, "seq IN (SELECT rowid FROM captions_fts WHERE captions_fts MATCH ?)")
		return s.page(ctx, selectCaptions+whereClause(where)+newestFirst+" LIMIT ?", append(args, match, limit+1), limit)
	}
	// The walk: at most SearchScanRows captions newest first, each probed
	// in the index by rowid, until limit+1 of them match. The window comes
	// out of its co-routine in order and the probe only filters it; an outer
	// ORDER BY would make SQLite sort the whole window and probe every row.
	walk := `SELECT ` + captionColumns + ` FROM (SELECT seq, ` + captionColumns + ` FROM captions` + whereClause(where) +
		newestFirst + ` LIMIT ?) AS w
		WHERE EXISTS (SELECT 1 FROM captions_fts WHERE captions_fts MATCH ? AND rowid = w.seq) LIMIT ?`
	page, err := s.page(ctx, walk, append(slices.Clone(args), ports.SearchScanRows, match, limit+1), limit)
	if err != nil || page.NextCursor != "" {
		return page, err
	}
	// A short page: go on from the last caption the walk examined, if it
	// stopped at its bound rather than at the end.
	var lastUS int64
	var lastID string
	err = s.read.QueryRowContext(ctx, "SELECT start_us, id FROM captions"+whereClause(where)+newestFirst+" LIMIT 1 OFFSET ?",
		append(args, ports.SearchScanRows-1)...).Scan(&lastUS, &lastID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return page, nil
	case err != nil:
		return ports.CaptionPage{}, fmt.Errorf("find where the search walk stopped: %w", err)
	}
	page.NextCursor = ports.CaptionCursor{Start: time.UnixMicro(lastUS).UTC(), ID: lastID}.String()
	return page, nil
}

const (
	captionColumns = `id, device, stream_id, start_us, end_us, chunk_start_s, chunk_end_s, caption, latency_ms, tokens, backend, model`
	selectCaptions = `SELECT ` + captionColumns + ` FROM captions`
	newestFirst    = ` ORDER BY start_us DESC, id DESC`
)

func whereClause(where []string) string {
	if len(where) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(where, " AND ")
}

// page runs query, which selects captionColumns newest first and at most
// limit+1 rows: one more says whether another page exists.
func (s *Store) page(ctx context.Context, query string, args []any, limit int) (ports.CaptionPage, error) {
	rows, err := s.read.QueryContext(ctx, query, args...)
	if err != nil {
		return ports.CaptionPage{}, fmt.Errorf("query captions: %w", err)
	}
	defer func() { _ = rows.Close() }()
	page := ports.CaptionPage{Captions: make([]ports.Caption, 0, min(limit, 64))}
	for rows.Next() {
		var c ports.Caption
		var startUS, endUS int64
		if err := rows.Scan(&c.ID, &c.Device, &c.StreamID, &startUS, &endUS, &c.ChunkStartS, &c.ChunkEndS,
			&c.Text, &c.LatencyMS, &c.Tokens, &c.Backend, &c.Model); err != nil {
			return ports.CaptionPage{}, fmt.Errorf("read caption row: %w", err)
		}
		c.Start, c.End = time.UnixMicro(startUS).UTC(), time.UnixMicro(endUS).UTC()
		page.Captions = append(page.Captions, c)
	}
	if err := rows.Err(); err != nil {
		return ports.CaptionPage{}, fmt.Errorf("query captions: %w", err)
	}
	if len(page.Captions) > limit {
		page.Captions = page.Captions[:limit]
		last := page.Captions[limit-1]
		page.NextCursor = ports.CaptionCursor{Start: last.Start, ID: last.ID}.String()
	}
	return page, nil
}

// matchExpression turns search words into an FTS5 query that cannot be a
// syntax error: each word quoted (SearchWords leaves no quote in a word),
// all of them required.
func matchExpression(words []string) string {
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = `"` + w + `"`
	}
	return strings.Join(quoted, " ")
}

// DeleteCaptionsBefore implements ports.CaptionPruner.
func (s *Store) DeleteCaptionsBefore(ctx context.Context, t time.Time, limit int) (int, error) {
	res, err := s.write.ExecContext(ctx,
		`DELETE FROM captions WHERE seq IN (SELECT seq FROM captions WHERE start_us < ? ORDER BY start_us LIMIT ?)`,
		t.UnixMicro(), max(limit, 1))
	if err != nil {
		return 0, fmt.Errorf("delete old captions: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete old captions: %w", err)
	}
	return int(n), nil
}

// Checkpoint folds the write-ahead log into the database file and truncates
// it (for measuring the file; SQLite also checkpoints on its own).
func (s *Store) Checkpoint(ctx context.Context) error {
	if _, err := s.write.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}
