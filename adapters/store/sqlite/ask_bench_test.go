package sqlite_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/foresight-vision/foresight/adapters/store/sqlite"
	"github.com/foresight-vision/foresight/ports"
	"github.com/foresight-vision/foresight/ports/captionstest"
)

// go test -run '^$' -bench 'NearestCaptions' ./adapters/store/sqlite
// FORESIGHT_BENCH_VECTORS (default 20000) captions of one device, each with
// a FORESIGHT_BENCH_DIMS (default 384) dimension vector; one brute-force
// scan of them all per question. Logs the vector bytes per caption.
func BenchmarkNearestCaptions(b *testing.B) {
	n, dims := envInt("FORESIGHT_BENCH_VECTORS", 20000), envInt("FORESIGHT_BENCH_DIMS", 384)
	path := filepath.Join(b.TempDir(), "bench.db")
	s, err := sqlite.Open(b.Context(), path)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	rng := rand.New(rand.NewPCG(1, 2))
	vec := func() ports.Vector {
		v := make(ports.Vector, dims)
		for i := range v {
			v[i] = rng.Float32() - 0.5
		}
		return v
	}
	const batch = 1000
	for i := 0; i < n; i += batch {
		caps := make([]ports.Caption, 0, batch)
		vecs := make([]ports.CaptionVector, 0, batch)
		for j := i; j < min(i+batch, n); j++ {
			c := captionstest.Make(j, "kit", "s1", fmt.Sprintf("caption %d", j))
			caps, vecs = append(caps, c), append(vecs, ports.CaptionVector{CaptionID: c.ID, Vector: vec()})
		}
		if err := s.SaveCaptions(b.Context(), caps); err != nil {
			b.Fatal(err)
		}
		if err := s.SaveCaptionVectors(b.Context(), "m", vecs); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Checkpoint(b.Context()); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d captions with %d-dim vectors: %d bytes on disk in all; vector blob %d bytes a caption", n, dims, fi.Size(), 4*dims)
	q := ports.VectorSearch{Device: "kit", Since: time.Unix(0, 0), Until: time.Now().Add(time.Hour), Model: "m", Vector: vec(), Limit: 40}
	b.ResetTimer()
	for b.Loop() {
		got, err := s.NearestCaptions(b.Context(), q)
		if err != nil || len(got) != 40 {
			b.Fatal(err, len(got))
		}
	}
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}
