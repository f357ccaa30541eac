package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/foresight-vision/foresight/adapters/store/sqlite"
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
