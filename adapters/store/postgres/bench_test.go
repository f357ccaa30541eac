package postgres_test

import (
	"strconv"
	"testing"

	"github.com/foresight-vision/foresight/adapters/store/postgres"
	"github.com/foresight-vision/foresight/adapters/store/postgres/pgtest"
	"github.com/foresight-vision/foresight/ports/captionstest"
)

// go test -run '^$' -bench 'SaveCaptions' ./adapters/store/postgres
func BenchmarkSaveCaptions(b *testing.B) {
	srv := pgtest.Start(b)
	for _, size := range []int{1, 64, 256} {
		b.Run("batch="+strconv.Itoa(size), func(b *testing.B) {
			s, err := postgres.Open(b.Context(), srv.NewDatabase(b))
			if err != nil {
				b.Fatal(err)
			}
			defer func() { _ = s.Close() }()
			captionstest.BenchSave(b, s, size)
		})
	}
}

// go test -run '^$' -bench 'Search1M' -benchtime 2s ./adapters/store/postgres
// Seeds 1,000,000 captions first (minutes), so it runs only when named.
func BenchmarkSearch1M(b *testing.B) {
	if !captionstest.NamedExplicitly("Search1M") {
		b.Skip("seeds a million captions: run with -bench Search1M")
	}
	srv := pgtest.Start(b)
	s, err := postgres.Open(b.Context(), srv.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	took := captionstest.Seed(b, s, captionstest.SeededRows)
	if err := s.Analyze(b.Context()); err != nil {
		b.Fatal(err)
	}
	bytes, err := s.DiskBytes(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d captions in %v (%.0f rows/s); %d bytes on disk (table, TOAST and indexes), %.0f bytes/row",
		captionstest.SeededRows, took, float64(captionstest.SeededRows)/took.Seconds(), bytes, float64(bytes)/captionstest.SeededRows)
	captionstest.BenchQueries(b, s)
}

// nice go test -run '^$' -bench 'CommonWord1M' -benchtime 200x -timeout 60m ./adapters/store/postgres
// (and CommonWord3M): 90 % of the captions hold "wearer". Seeds first, so
// each runs only when named.
func BenchmarkCommonWord1M(b *testing.B) { benchCommonWord(b, "CommonWord1M", 1_000_000) }
func BenchmarkCommonWord3M(b *testing.B) { benchCommonWord(b, "CommonWord3M", 3_000_000) }

func benchCommonWord(b *testing.B, name string, rows int) {
	if !captionstest.NamedExplicitly(name) {
		b.Skip("seeds millions of captions: run with -bench " + name)
	}
	srv := pgtest.Start(b)
	s, err := postgres.Open(b.Context(), srv.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	took := captionstest.SeedWith(b, s, rows, captionstest.SyntheticCommon)
	if err := s.Analyze(b.Context()); err != nil {
		b.Fatal(err)
	}
	b.Logf("seeded %d captions in %v", rows, took)
	captionstest.BenchCommonWord(b, s)
}
