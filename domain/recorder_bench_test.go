package domain_test

import (
	"context"
	"testing"

	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/ports"
)

type discardWriter struct{}

func (discardWriter) SaveCaptions(context.Context, []ports.Caption) error { return nil }

// BenchmarkRecorderRecord is the cost Record adds to the ack path.
func BenchmarkRecorderRecord(b *testing.B) {
	rec := domain.NewRecorder(discardWriter{}, domain.RecorderConfig{})
	c := caption(1)
	b.ReportAllocs()
	for b.Loop() {
		rec.Record(c)
	}
	b.StopTimer()
	if err := rec.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRecorderRecordParallel has every core recording at once.
func BenchmarkRecorderRecordParallel(b *testing.B) {
	rec := domain.NewRecorder(discardWriter{}, domain.RecorderConfig{})
	c := caption(1)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec.Record(c)
		}
	})
	b.StopTimer()
	if err := rec.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
}
