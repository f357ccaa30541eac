package pgtest_test

import (
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/store/postgres/pgtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestStartServesARealDatabase(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	conn, err := pgx.Connect(t.Context(), dsn)
	require.NoError(t, err)
	defer func() { _ = conn.Close(t.Context()) }()
	var version string
	require.NoError(t, conn.QueryRow(t.Context(), "SHOW server_version").Scan(&version))
	assert.NotEmpty(t, version)
	var db string
	require.NoError(t, conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&db))
	assert.Equal(t, "test_1", db)
	assert.NotEqual(t, dsn, srv.NewDatabase(t), "each database is new")
}
