// Package postgres keeps captions in PostgreSQL through pgx (pgxpool), for
// deployments where several server instances share one history. Search is a
// generated tsvector column with a GIN index, queried with plainto_tsquery
// over ports.SearchWords. The schema comes from versioned migrations embedded in
// the binary (goose), applied under an advisory lock so instances starting
// together do not race.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/foresight-vision/foresight/ports"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLockID is the pg_advisory_lock key held while migrating
// (arbitrary; "foresight" in ASCII, truncated to fit an int64).
const migrationLockID int64 = 0x666f726573696768

// SearchConfig is the text search configuration captions are indexed with.
const SearchConfig = "english"

// Store is a ports.CaptionStore on a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
	// searchSlots admits half the pool's connections to searches at once,
	// so a plain listing never waits behind them.
	searchSlots chan struct{}
}

var _ ports.CaptionStore = (*Store)(nil)

// Open connects with dsn (a postgres:// URL or key=value string) and applies
// the migrations.
func Open(ctx context.Context, dsn string) (*Store, error) {
	pool, err := openPool(ctx, dsn, 0)
	if err != nil {
		return nil, err
	}
	return &Store{pool: pool, searchSlots: make(chan struct{}, max(1, pool.Config().MaxConns/2))}, nil
}

// openPool connects a pool with dsn, holding at most maxConns connections
// (zero: pgx's default) and none idle at the least, and applies the
// migrations.
func openPool(ctx context.Context, dsn string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message may echo the DSN, password included: say only what failed.
		return nil, fmt.Errorf("parse the postgres connection string: invalid")
	}
	cfg.MinConns = 0
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	if err := checkWritable(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres database is not writable: %w", err)
	}
	return pool, nil
}

// migrate applies the migrations while holding a session advisory lock, so
// a second instance waits for the first and then finds nothing to do.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	lockConn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer lockConn.Release()
	if _, err := lockConn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLockID); err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	defer func() {
		// A fresh context: the lock must go even when ctx has ended.
		unlockCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := lockConn.Exec(unlockCtx, "SELECT pg_advisory_unlock($1)", migrationLockID); err != nil {
			_ = lockConn.Conn().Close(unlockCtx) // closing the session drops the lock too
		}
	}()
	db := stdlib.OpenDBFromPool(pool)
	defer func() { _ = db.Close() }()
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return err
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, sub, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("postgres migrations: %w", err)
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("apply postgres migrations: %w", err)
	}
	return nil
}

// Close closes the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// SaveCaptions implements ports.CaptionWriter: the whole batch in one
// multi-row INSERT (arrays unnested server-side), one round trip, one
// transaction.
func (s *Store) SaveCaptions(ctx context.Context, captions []ports.Caption) error {
	if len(captions) == 0 {
		return nil
	}
	n := len(captions)
	var (
		ids, devices, streams, texts, backends, models = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		starts, ends                                   = make([]time.Time, n), make([]time.Time, n)
		chunkStarts, chunkEnds, latencies              = make([]float64, n), make([]float64, n), make([]float64, n)
		tokens                                         = make([]int64, n)
	)
	for i, c := range captions {
		ids[i], devices[i], streams[i], texts[i], backends[i], models[i] = c.ID, c.Device, c.StreamID, c.Text, c.Backend, c.Model
		starts[i], ends[i] = c.Start.UTC(), c.End.UTC()
		chunkStarts[i], chunkEnds[i], latencies[i], tokens[i] = c.ChunkStartS, c.ChunkEndS, c.LatencyMS, c.Tokens
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO captions
		(id, device, stream_id, start_at, end_at, chunk_start_s, chunk_end_s, caption, latency_ms, tokens, backend, model)
		SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[],
			$6::float8[], $7::float8[], $8::text[], $9::float8[], $10::int8[], $11::text[], $12::text[])
		ON CONFLICT (id) DO NOTHING`,
		ids, devices, streams, starts, ends, chunkStarts, chunkEnds, texts, latencies, tokens, backends, models)
	if err != nil {
		return fmt.Errorf("insert caption batch: %w", err)
	}
	return nil
}

// QueryCaptions implements ports.CaptionReader. A search walks the time
// index newest first, testing each caption's stored tsvector, and stops
// after a full page or ports.SearchScanRows captions (a common word: cost
// follows the page); when that leaves the page short and the words match at
// most ports.SearchIndexRows captions in all, it takes them from the GIN
// index instead (a rare word: cost follows the matches). Searches share searchSlots, half the pool, so
// listings always find a connection.
func (s *Store) QueryCaptions(ctx context.Context, q ports.CaptionQuery) (ports.CaptionPage, error) {
	if err := q.Validate(); err != nil {
		return ports.CaptionPage{}, err
	}
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
	if q.StreamID != "" {
		where = append(where, "stream_id = "+arg(q.StreamID))
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
			return ports.CaptionPage{}, err
		}
		where = append(where, fmt.Sprintf("(start_at, id) < (%s, %s)", arg(cur.Start), arg(cur.ID)))
	}
	limit := q.EffectiveLimit()
	if strings.TrimSpace(q.Text) == "" {
		return s.page(ctx, selectCaptions+whereClause(where)+newestFirst+" LIMIT "+arg(limit+1), args, limit)
	}
	words := ports.SearchWords(q.Text)
	if len(words) == 0 {
		return ports.CaptionPage{}, nil // no word to look for: nothing matches
	}
	select {
	case s.searchSlots <- struct{}{}:
		defer func() { <-s.searchSlots }()
	case <-ctx.Done():
		return ports.CaptionPage{}, fmt.Errorf("wait for a search slot: %w", ctx.Err())
	}
	// The words are letters and digits only, so plainto_tsquery reads each
	// as one word (stemmed, all required), never as an operator.
	searchText := strings.Join(words, " ")
	tsquery := func(placeholder string) string {
		return fmt.Sprintf("plainto_tsquery('%s', %s)", SearchConfig, placeholder)
	}
	// The walk first: at most SearchScanRows captions newest first, each
	// tested against its stored tsvector, until limit+1 of them match. For a
	// common word it fills the page within a few dozen rows. The outer ORDER
	// BY is the window's own, so no sort keeps the LIMIT from stopping early.
	filters := slices.Clone(args)
	window := strings.Replace(selectCaptions, "SELECT "+captionColumns, "SELECT "+captionColumns+", search", 1) +
		whereClause(where) + newestFirst + " LIMIT " + arg(ports.SearchScanRows)
	walk := "SELECT " + captionColumns + " FROM (" + window + ") AS w WHERE search @@ " + tsquery(arg(searchText)) +
		newestFirst + " LIMIT " + arg(limit+1)
	page, err := s.page(ctx, walk, args, limit)
	if err != nil || page.NextCursor != "" {
		return page, err
	}
	var last ports.CaptionCursor
	err = s.pool.QueryRow(ctx, "SELECT start_at, id FROM captions"+whereClause(where)+newestFirst+
		" LIMIT 1 OFFSET "+strconv.Itoa(ports.SearchScanRows-1), filters...).Scan(&last.Start, &last.ID)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return page, nil // the walk reached the end: nothing older to find
	case err != nil:
		return ports.CaptionPage{}, fmt.Errorf("find where the search walk stopped: %w", err)
	}
	// A short page. When the words match few captions in all, the GIN index
	// gives a full page at a cost that follows them; otherwise the page stays
	// short and goes on from the last caption the walk examined. The SQLite
	// store decides in the other order; the pages are the same.
	var matches int
	// A materialized CTE is read lazily, so the LIMIT stops the count early.
	if err := s.pool.QueryRow(ctx, "WITH m AS MATERIALIZED (SELECT 1 FROM captions WHERE search @@ "+tsquery("$1")+
		") SELECT count(*) FROM (SELECT 1 FROM m LIMIT $2) AS bounded", searchText, ports.SearchIndexRows+1).Scan(&matches); err != nil {
		return ports.CaptionPage{}, fmt.Errorf("count caption matches: %w", err)
	}
	if matches > ports.SearchIndexRows {
		last.Start = last.Start.UTC()
		page.NextCursor = last.String()
		return page, nil
	}
	// Left alone, the planner walks the time index newest first and tests
	// each row against the words, hoping to fill the page early: a full scan
	// for a rare or absent word. Materializing the matches first makes it
	// take them from the GIN index, so the cost follows the number of
	// matches, which is bounded here.
	args = filters
	match := "search @@ " + tsquery(arg(searchText))
	query := "WITH matches AS MATERIALIZED (" + selectCaptions + whereClause(append(where, match)) +
		") SELECT " + captionColumns + " FROM matches" + newestFirst + " LIMIT " + arg(limit+1)
	return s.page(ctx, query, args, limit)
}

const (
	captionColumns = `id, device, stream_id, start_at, end_at, chunk_start_s, chunk_end_s, caption, latency_ms, tokens, backend, model`
	selectCaptions = "SELECT " + captionColumns + " FROM captions"
	newestFirst    = " ORDER BY start_at DESC, id DESC"
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
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return ports.CaptionPage{}, fmt.Errorf("query captions: %w", err)
	}
	defer rows.Close()
	page := ports.CaptionPage{Captions: make([]ports.Caption, 0, min(limit, 64))}
	for rows.Next() {
		var c ports.Caption
		if err := rows.Scan(&c.ID, &c.Device, &c.StreamID, &c.Start, &c.End, &c.ChunkStartS, &c.ChunkEndS,
			&c.Text, &c.LatencyMS, &c.Tokens, &c.Backend, &c.Model); err != nil {
			return ports.CaptionPage{}, fmt.Errorf("read caption row: %w", err)
		}
		c.Start, c.End = c.Start.UTC(), c.End.UTC()
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

// DeleteCaptionsBefore implements ports.CaptionPruner.
func (s *Store) DeleteCaptionsBefore(ctx context.Context, t time.Time, limit int) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM captions WHERE id IN
		(SELECT id FROM captions WHERE start_at < $1 ORDER BY start_at LIMIT $2)`, t.UTC(), max(limit, 1))
	if err != nil {
		return 0, fmt.Errorf("delete old captions: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// Analyze refreshes the planner's statistics of the captions table
// (autovacuum does this on its own; benchmarks call it after a bulk load).
func (s *Store) Analyze(ctx context.Context) error {
	if _, err := s.pool.Exec(ctx, "VACUUM ANALYZE captions"); err != nil {
		return fmt.Errorf("analyze captions: %w", err)
	}
	return nil
}

// DiskBytes is what the captions table takes on disk, indexes included.
func (s *Store) DiskBytes(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, "SELECT pg_total_relation_size('captions')").Scan(&n); err != nil {
		return 0, fmt.Errorf("measure captions: %w", err)
	}
	return n, nil
}

// checkWritable runs a caption insert of no rows and rolls back: the
// executor still refuses it in a read-only transaction (a standby,
// default_transaction_read_only) and without the right to insert captions. With the migrations all applied
// such a database opens fine, then fails every caption write: refused here,
// at start, rather than found out by a recorder retrying until the stop.
func checkWritable(ctx context.Context, pool *pgxpool.Pool) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := tx.Exec(ctx, "INSERT INTO captions (id) SELECT id FROM captions WHERE false"); err != nil {
		return err
	}
	return nil
}
