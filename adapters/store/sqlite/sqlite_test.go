package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/store/sqlite"
	"github.com/foresight-vision/foresight/ports"
	"github.com/foresight-vision/foresight/ports/captionstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestContract(t *testing.T) {
	captionstest.Run(t, captionstest.Harness{
		NewLocation: func(t *testing.T) string { return filepath.Join(t.TempDir(), "foresight.db") },
		Open: func(ctx context.Context, loc string) (ports.CaptionStore, error) {
			return sqlite.Open(ctx, loc)
		},
	})
}

func TestOpenCreatesTheFolderAndUsesWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "nested", "foresight.db")
	s, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	require.FileExists(t, path)
	require.FileExists(t, path+"-wal", "journal_mode=WAL leaves a -wal file beside the database")
}

func TestAskContract(t *testing.T) {
	captionstest.RunAsk(t, func(t *testing.T) captionstest.AskStore {
		s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "foresight.db"))
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	})
}
