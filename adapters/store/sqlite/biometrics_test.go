package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/foresight-vision/foresight/adapters/store/sqlite"
	"github.com/foresight-vision/foresight/ports/biometricstest"
)

func TestBiometricsContract(t *testing.T) {
	biometricstest.Run(t, biometricstest.Harness{
		NewLocation: func(t *testing.T) string { return filepath.Join(t.TempDir(), "foresight.db") },
		Open: func(ctx context.Context, loc string) (biometricstest.Store, error) {
			return sqlite.Open(ctx, loc)
		},
	})
}
