package postgres_test

import (
	"context"
	"testing"

	"github.com/foresight-vision/foresight/adapters/store/postgres"
	"github.com/foresight-vision/foresight/adapters/store/postgres/pgtest"
	"github.com/foresight-vision/foresight/ports/nudgestest"
)

func TestNudgeContract(t *testing.T) {
	srv := pgtest.Start(t)
	nudgestest.Run(t, nudgestest.Harness{
		NewLocation: func(t *testing.T) string { return srv.NewDatabase(t) },
		Open: func(ctx context.Context, loc string) (nudgestest.Store, error) {
			return postgres.Open(ctx, loc)
		},
	})
}
