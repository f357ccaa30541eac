package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/store/sqlite"
	"github.com/foresight-vision/foresight/ports"
	"github.com/foresight-vision/foresight/ports/captionstest"
	"github.com/foresight-vision/foresight/ports/nudgestest"
)

func TestNudgeContract(t *testing.T) {
	nudgestest.Run(t, nudgestest.Harness{
		NewLocation: func(t *testing.T) string { return filepath.Join(t.TempDir(), "foresight.db") },
		Open: func(ctx context.Context, loc string) (nudgestest.Store, error) {
			return sqlite.Open(ctx, loc)
		},
	})
}

// TestJudgedMarkSurvivesRetentionEmptyingTheTable: with every caption
// deleted, SQLite gives seqs out again from 1; a mark above them all is
// stale, and the new captions are new evidence, not hidden under it.
func TestJudgedMarkSurvivesRetentionEmptyingTheTable(t *testing.T) {
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "foresight.db"))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	var batch []ports.Caption
	for i := range 5 {
		batch = append(batch, captionstest.Make(i, "kit", "s1", "old"))
	}
	require.NoError(t, s.SaveCaptions(t.Context(), batch))
	far := batch[0].End.Add(-time.Hour)
	w, err := s.RecentCaptions(t.Context(), "kit", far, far)
	require.NoError(t, err)
	require.NoError(t, s.MarkJudged(t.Context(), "kit", w.Mark))
	_, err = s.DeleteCaptionsBefore(t.Context(), batch[4].End.Add(time.Hour), 100)
	require.NoError(t, err)

	require.NoError(t, s.SaveCaptions(t.Context(), []ports.Caption{captionstest.Make(100, "kit", "s1", "after")}))
	w, err = s.RecentCaptions(t.Context(), "kit", far, far)
	require.NoError(t, err)
	require.Len(t, w.Captions, 1)
	assert.True(t, w.Captions[0].New)
	require.NoError(t, s.MarkJudged(t.Context(), "kit", w.Mark))
	w, err = s.RecentCaptions(t.Context(), "kit", far, far)
	require.NoError(t, err)
	require.Len(t, w.Captions, 1)
	assert.False(t, w.Captions[0].New, "the reset mark covers it")
}

// TestLockNudgeLoopIsExclusivePerFile: flock belongs to the open file
// description, so two opens in one process conflict as two processes do;
// the lock is per database file, and free again once released.
func TestLockNudgeLoopIsExclusivePerFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "foresight.db")
	release, err := sqlite.LockNudgeLoop(path)
	require.NoError(t, err)
	_, err = sqlite.LockNudgeLoop(path)
	require.ErrorIs(t, err, sqlite.ErrNudgeLoopHeld)

	other, err := sqlite.LockNudgeLoop(filepath.Join(dir, "other.db"))
	require.NoError(t, err, "another file has its own loop")
	other()

	release()
	again, err := sqlite.LockNudgeLoop(path)
	require.NoError(t, err, "free once released")
	again()
}
