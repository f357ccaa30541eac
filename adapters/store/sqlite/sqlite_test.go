package sqlite_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
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

// TestOpenRefusesAReadOnlyFile: a migrated file SQLite can only open
// read-only is refused at open, not found out by every write failing later.
func TestOpenRefusesAReadOnlyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "foresight.db")
	s, err := sqlite.Open(t.Context(), path)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	makeReadOnly(t, path)

	_, err = sqlite.Open(t.Context(), path)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is not writable")
}

// makeReadOnly makes path unwritable even for root (chattr +i), or by its
// mode otherwise; it skips the test where neither holds.
func makeReadOnly(t *testing.T, path string) {
	t.Helper()
	if err := exec.Command("chattr", "+i", path).Run(); err == nil {
		t.Cleanup(func() { _ = exec.Command("chattr", "-i", path).Run() })
	} else {
		require.NoError(t, os.Chmod(path, 0o444))
	}
	if f, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
		_ = f.Close()
		t.Skip("cannot make a file read-only here (root without chattr)")
	}
}

func TestAskContract(t *testing.T) {
	captionstest.RunAsk(t, func(t *testing.T) captionstest.AskStore {
		s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "foresight.db"))
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		return s
	})
}
