package postgres_test

import (
	"context"
	"testing"

	"github.com/foresight-vision/foresight/adapters/store/postgres"
	"github.com/foresight-vision/foresight/adapters/store/postgres/pgtest"
	"github.com/foresight-vision/foresight/ports/biometricstest"
)

func TestBiometricsContract(t *testing.T) {
	srv := pgtest.Start(t)
	biometricstest.Run(t, biometricstest.Harness{
		NewLocation: func(t *testing.T) string { return srv.NewDatabase(t) },
		Open: func(ctx context.Context, loc string) (biometricstest.Store, error) {
			return postgres.Open(ctx, loc)
		},
	})
}
