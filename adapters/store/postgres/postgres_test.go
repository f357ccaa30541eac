package postgres_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/store/postgres"
	"github.com/foresight-vision/foresight/adapters/store/postgres/pgtest"
	"github.com/foresight-vision/foresight/ports"
	"github.com/foresight-vision/foresight/ports/captionstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestContract(t *testing.T) {
	srv := pgtest.Start(t)
	captionstest.Run(t, captionstest.Harness{
		NewLocation: func(t *testing.T) string { return srv.NewDatabase(t) },
		Open: func(ctx context.Context, loc string) (ports.CaptionStore, error) {
			return postgres.Open(ctx, loc)
		},
	})
}

func TestOpenNeverEchoesTheDSN(t *testing.T) {
	_, err := postgres.Open(t.Context(), "postgres://user:hunter2@[::1/db?sslmode=bogus")
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "hunter2")
}

// TestOpenRefusesAReadOnlyDatabase: a database the store can read but not
// write (here every transaction read-only, as on a standby) is refused at
// open, not found out by every caption write failing later.
func TestOpenRefusesAReadOnlyDatabase(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	s, err := postgres.Open(t.Context(), dsn) // migrated while writable
	require.NoError(t, err)
	require.NoError(t, s.Close())

	_, err = postgres.Open(t.Context(), dsn+" default_transaction_read_only=on")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "not writable")
	assert.Contains(t, err.Error(), "read-only transaction")
}

func TestAskContract(t *testing.T) {
	srv := pgtest.Start(t)
	captionstest.RunAsk(t, func(t *testing.T) captionstest.AskStore {
		s, err := postgres.Open(t.Context(), srv.NewDatabase(t))
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	})
}
