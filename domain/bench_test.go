package domain_test

import (
	"context"
	"testing"
	"time"

	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/domain/domaintest"
	"github.com/foresight-vision/foresight/ports"
)

// BenchmarkHandleFrame measures the per-frame path while a call is in
// flight: count, buffer (with drops once full), poll, ack. It should
// allocate nothing: the frame bytes are the caller's.
func BenchmarkHandleFrame(b *testing.B) {
	gate := domaintest.NewGate()
	clock := domaintest.NewClock()
	backend := &domaintest.Backend{Infer: gate.Infer}
	s := domain.StartStream(backend, ports.SessionRequest{}, domain.StreamConfig{Clock: clock})
	s.Await(context.Background())
	frame := make([]byte, 20_000)
	s.HandleFrame(frame) // cuts a chunk whose call hangs until Close
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	b.ResetTimer()
	for b.Loop() {
		s.HandleFrame(frame)
	}
	b.StopTimer()
	s.Close(context.Background())
}

// BenchmarkHandleFrameWithChunks adds a chunk cut and an inference call every
// 10 frames (1 s at 10 fps), as a live stream does.
func BenchmarkHandleFrameWithChunks(b *testing.B) {
	clock := domaintest.NewClock()
	cfg := domain.DefaultStreamConfig() // a live stream's tuning: a chunk a second, 6 frames sent
	cfg.Clock = clock
	s := domain.StartStream(&domaintest.Backend{}, ports.SessionRequest{}, cfg)
	s.Await(context.Background())
	frame := make([]byte, 20_000)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		clock.Advance(100 * time.Millisecond)
		s.HandleFrame(frame)
		s.Await(context.Background())
	}
	b.StopTimer()
	s.Close(context.Background())
}
