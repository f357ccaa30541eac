package postgres

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/foresight-vision/foresight/ports"
)

// releaseTimeout bounds the COMMIT that ends an evaluation's claim; it runs
// on a fresh context, since the evaluation's own may have ended.
const releaseTimeout = 10 * time.Second

// nudgeLockSeed seeds the hash of a device into its advisory lock key, apart
// from other users of advisory locks (arbitrary: "nudge" in ASCII).
const nudgeLockSeed int64 = 0x6e75646765

// EvaluationLock is the ports.EvaluationLock of instances sharing one
// database. TryAcquire opens a transaction and takes a transaction-level
// advisory lock keyed by the device (a 64-bit hash of it): while one
// evaluation holds it, another, on any instance, is told "busy" at once.
// Under that lock it claims the slot in the device's nudge_schedule row
// (only if later than the one stored), and the transaction commits on
// release, so the claim outlives the instance: an instance ticking late, or
// restarted, finds the slot taken. If the instance dies mid-way, the
// transaction rolls back and lock and row are free again at once. Only the
// lock holder touches the row, so nobody ever waits on its row lock.
//
// It has its own small pool: each evaluation in progress holds one
// connection in a transaction, and sharing the store's pool could leave
// the evaluation itself no connection to read with. The pool has one
// connection per evaluation the loop can have in progress
// (domain.NudgeConfig.MaxEvaluations), so TryAcquire never waits for one:
// a smaller pool would make evaluations queue in Begin until their
// deadline, a larger one is never used.
type EvaluationLock struct {
	pool *pgxpool.Pool
}

var _ ports.EvaluationLock = (*EvaluationLock)(nil)

// minLockConns is the floor of the lock's pool: migrate holds one
// connection for its lock while goose takes another, so a pool of one would
// never open.
const minLockConns = 2

// OpenEvaluationLock connects with dsn (the caption store's) and applies the
// migrations, which create nudge_schedule. conns sizes the pool: the most
// evaluations in progress at once on this instance, which the loop bounds
// (domain.NudgeConfig.MaxEvaluations); it must be at least 1, and the pool
// has at least minLockConns for the migrations.
func OpenEvaluationLock(ctx context.Context, dsn string, conns int) (*EvaluationLock, error) {
	if conns < 1 || conns > math.MaxInt32 {
		return nil, fmt.Errorf("evaluation lock: %d connections: want at least 1", conns)
	}
	pool, err := openPool(ctx, dsn, int32(max(conns, minLockConns)))
	if err != nil {
		return nil, err
	}
	return &EvaluationLock{pool: pool}, nil
}

// Close closes the lock's pool; every release must have been called.
func (l *EvaluationLock) Close() error {
	l.pool.Close()
	return nil
}

// TryAcquire implements ports.EvaluationLock.
func (l *EvaluationLock) TryAcquire(ctx context.Context, device string, slot time.Time) (func(), bool, error) {
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("begin the evaluation claim: %w", err)
	}
	rollback := func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		defer cancel()
		_ = tx.Rollback(rctx)
	}
	var locked bool
	if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtextextended($1, $2))`,
		device, nudgeLockSeed).Scan(&locked); err != nil {
		rollback()
		return nil, false, fmt.Errorf("take the evaluation lock: %w", err)
	}
	if !locked { // an evaluation of the device is in progress somewhere
		rollback()
		return nil, false, nil
	}
	if !slot.IsZero() {
		tag, err := tx.Exec(ctx, `INSERT INTO nudge_schedule AS s (device, last_slot) VALUES ($1, $2)
			ON CONFLICT (device) DO UPDATE SET last_slot = EXCLUDED.last_slot
			WHERE s.last_slot IS NULL OR s.last_slot < EXCLUDED.last_slot`, device, slot.UTC())
		if err != nil {
			rollback()
			return nil, false, fmt.Errorf("claim the slot: %w", err)
		}
		if tag.RowsAffected() == 0 { // this slot, or a later one, was claimed already
			rollback()
			return nil, false, nil
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			cctx, cancel := context.WithTimeout(context.Background(), releaseTimeout)
			defer cancel()
			// A failed commit rolls back: the slot is unclaimed, yet it has
			// passed by the time another instance could take it.
			_ = tx.Commit(cctx)
		})
	}, true, nil
}
