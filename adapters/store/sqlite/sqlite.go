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
	"strings"
	"time"
	"unicode"

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

// readConns bounds the read pool.
const readConns = 4

// Store is a ports.CaptionStore on one SQLite file.
type Store struct {
	write *sql.DB // one connection: SQLite has one writer at a time anyway
	read  *sql.DB
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
	s := &Store{write: write}
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

// QueryCaptions implements ports.CaptionReader.
func (s *Store) QueryCaptions(ctx context.Context, q ports.CaptionQuery) (ports.CaptionPage, error) {
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
	if strings.TrimSpace(q.Text) != "" {
		match := matchExpression(q.Text)
		if match == "" {
			return ports.CaptionPage{}, nil // no word to look for: nothing matches
		}
		where = append(where, "seq IN (SELECT rowid FROM captions_fts WHERE captions_fts MATCH ?)")
		args = append(args, match)
	}
	limit := q.EffectiveLimit()
	query := `SELECT id, device, stream_id, start_us, end_us, chunk_start_s, chunk_end_s, caption, latency_ms, tokens, backend, model
		FROM captions`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY start_us DESC, id DESC LIMIT ?"
	args = append(args, limit+1) // one more says whether another page exists

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

// matchExpression turns free text into an FTS5 query that cannot be a
// syntax error: each word quoted, all of them required.
func matchExpression(text string) string {
	words := strings.FieldsFunc(text, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	for i, w := range words {
		words[i] = `"` + w + `"`
	}
	return strings.Join(words, " ")
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
