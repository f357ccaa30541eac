package domain_test

import (
	"context"
	"fmt"
	"time"

	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/domain/domaintest"
	"github.com/foresight-vision/foresight/ports"
)

// captioner is an importing service's own inference port implementation.
type captioner struct{}

func (captioner) OpenSession(context.Context, ports.SessionRequest) (ports.InferenceSession, error) {
	return captioner{}, nil
}

func (captioner) InferChunk(_ context.Context, c ports.Chunk) (ports.Result, error) {
	return ports.Result{Caption: fmt.Sprintf("%d frames from %.1fs to %.1fs", len(c.Frames), c.StartS, c.EndS), Set: ports.ResultCaption}, nil
}

func (captioner) Close(context.Context) error { return nil }

// Drive a stream with your own inference backend and a clock you control.
// Each one-second chunk receives 10 frames; the model is sent 6 of them
// (DefaultMaxFramesPerChunk), picked evenly, first and last included.
func ExampleStartStream() {
	ctx := context.Background()
	clock := domaintest.NewClock()
	cfg := domain.DefaultStreamConfig() // the server's tuning: a chunk at most every second
	cfg.Clock = clock
	stream := domain.StartStream(captioner{}, ports.SessionRequest{StreamID: "demo"}, cfg)
	defer stream.Close(ctx)

	for range 25 {
		clock.Advance(100 * time.Millisecond)
		ack := stream.HandleFrame([]byte("jpeg"))
		if !ack.Result.Empty() {
			fmt.Printf("frame %d: %v\n", ack.Frame, ack.Result.Caption)
		}
		stream.Await(ctx) // a real camera's pace gives calls time; here we wait
	}
	// Output:
	// frame 11: 6 frames from 0.0s to 1.0s
	// frame 21: 6 frames from 1.0s to 2.0s
}
