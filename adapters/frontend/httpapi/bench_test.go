package httpapi_test

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/domain"
)

// BenchmarkAppendAck is the ack encoding of a frame without a result.
func BenchmarkAppendAck(b *testing.B) {
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		buf = httpapi.AppendAck(buf[:0], domain.Ack{Frame: int64(i), Bytes: 20_000})
	}
}

// BenchmarkReadAndAck is one frame through a real loopback WebSocket: the
// client writes a pre-masked 20 KB binary frame and reads its ack; the
// server reads, unmasks, runs the domain and writes the ack. The client
// side allocates nothing, so allocs/op are the server's: the frame's own
// buffer, plus (amortised) the chunk cut once a second.
func BenchmarkReadAndAck(b *testing.B) {
	h := httpapi.NewStreamHandler(httpapi.StreamHandlerConfig{})
	srv := httptest.NewServer(h)
	defer srv.Close()
	conn, br, _, err := ws.Dial(context.Background(), "ws"+strings.TrimPrefix(srv.URL, "http"))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	frame, err := ws.CompileFrame(ws.MaskFrame(ws.NewBinaryFrame(make([]byte, 20_000))))
	if err != nil {
		b.Fatal(err)
	}
	var hdrBuf [ws.MaxHeaderSize]byte
	ack := make([]byte, 256)
	roundTrip := func() {
		if _, err := conn.Write(frame); err != nil {
			b.Fatal(err)
		}
		hdr, err := ws.ReadHeaderBuffer(r, hdrBuf[:ws.MaxHeaderSize-2])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(r, ack[:hdr.Length]); err != nil {
			b.Fatal(err)
		}
	}
	roundTrip() // the handshake and first allocations are not the loop's
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	b.ResetTimer()
	for b.Loop() {
		roundTrip()
	}
	b.StopTimer()
	_ = conn.Close()
	_ = h.Shutdown(context.Background())
}
