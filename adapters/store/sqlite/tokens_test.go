package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/foresight-vision/foresight/adapters/store/sqlite"
	"github.com/foresight-vision/foresight/ports/accesstest"
)

func TestTokenContract(t *testing.T) {
	accesstest.Run(t, accesstest.Harness{
		NewLocation: func(t *testing.T) string { return filepath.Join(t.TempDir(), "foresight.db") },
		Open: func(ctx context.Context, loc string) (accesstest.Store, error) {
			return sqlite.Open(ctx, loc)
		},
	})
}
