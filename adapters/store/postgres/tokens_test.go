package postgres_test

import (
	"context"
	"testing"

	"github.com/foresight-vision/foresight/adapters/store/postgres"
	"github.com/foresight-vision/foresight/adapters/store/postgres/pgtest"
	"github.com/foresight-vision/foresight/ports/accesstest"
)

func TestTokenContract(t *testing.T) {
	srv := pgtest.Start(t)
	accesstest.Run(t, accesstest.Harness{
		NewLocation: func(t *testing.T) string { return srv.NewDatabase(t) },
		Open: func(ctx context.Context, loc string) (accesstest.Store, error) {
			return postgres.Open(ctx, loc)
		},
	})
}
