package pgtest_test

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/store/postgres/pgtest"
)

func TestStopThenRestartKeepsTheData(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	conn, err := pgx.Connect(t.Context(), dsn)
	require.NoError(t, err)
	_, err = conn.Exec(t.Context(), "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)")
	require.NoError(t, err)

	srv.Stop(t)
	_, err = conn.Exec(t.Context(), "SELECT 1")
	assert.Error(t, err, "the session ended with the server")
	_ = conn.Close(t.Context())
	_, err = pgx.Connect(t.Context(), dsn)
	require.Error(t, err, "nothing accepts connections while stopped")

	srv.Restart(t)
	conn, err = pgx.Connect(t.Context(), dsn)
	require.NoError(t, err)
	defer func() { _ = conn.Close(t.Context()) }()
	var v int
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT v FROM kept").Scan(&v))
	assert.Equal(t, 42, v)
}
