package openai_test

import (
	"context"
	"testing"

	"github.com/foresight-vision/foresight/adapters/inference/openai"
	"github.com/foresight-vision/foresight/adapters/inference/openai/openaitest"
	"github.com/foresight-vision/foresight/ports"
)

// BenchmarkInferChunk is one chunk of 6 frames of 60 kB (a 640x480 JPEG)
// through the backend to the loopback double: the request's encoding, the
// round trip and the reply's decoding. The double's own decoding is included.
func BenchmarkInferChunk(b *testing.B) {
	srv := openaitest.NewServer()
	defer srv.Close()
	backend, err := openai.New(openai.Config{BaseURL: srv.URL, Model: "m"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer backend.Close()
	sess, err := backend.OpenSession(context.Background(), ports.SessionRequest{StreamID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer sess.Close(context.Background())
	frames := make([][]byte, 6)
	var size int64
	for i := range frames {
		frames[i] = append(jpeg("frame"), make([]byte, 60<<10)...)
		size += int64(len(frames[i]))
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := sess.InferChunk(context.Background(), ports.Chunk{Frames: frames, StartS: float64(i), EndS: float64(i + 1)}); err != nil {
			b.Fatal(err)
		}
	}
}
