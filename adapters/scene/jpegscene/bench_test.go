package jpegscene_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/foresight-vision/foresight/adapters/scene/jpegscene"
	"github.com/foresight-vision/foresight/domain"
)

// BenchmarkSceneGateChunk is the server CPU the features add per chunk: one
// SceneGate.Review over a 1 s chunk of 10 distinct frames (10 fps), decoding
// with jpegscene. At one chunk per second per stream, ns/op ÷ 1000 is the
// µs of CPU per second per stream, reported as µs/stream-s; cores/1k-streams
// is that times 1,000 streams.
func BenchmarkSceneGateChunk(b *testing.B) {
	settings := []struct {
		name string
		cfg  domain.SceneConfig
	}{
		{"off", gateWith(false, false, 0)},
		{"skip", gateWith(true, false, 0)},
		{"reject", gateWith(false, true, 0)},
		{"both", gateWith(true, true, 0)},
		{"both-sample3", gateWith(true, true, 3)},
	}
	for _, s := range sizes {
		chunk := make([][]byte, 10)
		for i := range chunk {
			chunk[i] = encode(b, scene(s.w, s.h, 1, i*2), 80)
		}
		for _, set := range settings {
			b.Run(fmt.Sprintf("%dx%d/%s", s.w, s.h, set.name), func(b *testing.B) {
				gate := domain.NewSceneGate(set.cfg, jpegscene.Analyzer{})
				now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
				b.ReportAllocs()
				for b.Loop() {
					now = now.Add(time.Second)
					gate.Review(now, chunk)
				}
				perChunk := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
				b.ReportMetric(perChunk/1e3, "µs/stream-s")
				b.ReportMetric(perChunk*1000/1e9, "cores/1k-streams")
			})
		}
	}
}
