package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/foresight-vision/foresight/adapters/store/sqlite"
	"github.com/foresight-vision/foresight/ports/devicedatatest"
)

func TestDeviceDataContract(t *testing.T) {
	devicedatatest.Run(t, devicedatatest.Harness{
		NewLocation: func(t *testing.T) string { return filepath.Join(t.TempDir(), "foresight.db") },
		Open: func(ctx context.Context, loc string) (devicedatatest.Store, error) {
			return sqlite.Open(ctx, loc)
		},
	})
}
