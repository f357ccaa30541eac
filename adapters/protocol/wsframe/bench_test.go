package wsframe_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"testing"

	"github.com/gobwas/ws"

	"github.com/foresight-vision/foresight/adapters/protocol/wsframe"
)

// BenchmarkReadMessage reads one binary message of each size from memory
// against a budget, as the server does: B/op is what reading costs in
// allocation per frame (the frame's own bytes are the floor).
func BenchmarkReadMessage(b *testing.B) {
	for _, size := range []int{2 << 10, 20_000, 512 << 10, 4 << 20} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			frame := clientFrame(ws.OpBinary, true, make([]byte, size))
			r := bytes.NewReader(frame)
			br := bufio.NewReaderSize(r, 4096)
			budget := &capBudget{limit: 1 << 40}
			s := wsframe.NewServer(noDeadlines{}, br, bufio.NewWriter(io.Discard), wsframe.ServerConfig{Budget: budget})
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(frame)
				br.Reset(r)
				msg, err := s.ReadMessage()
				if err != nil || len(msg) != size {
					b.Fatalf("read %d bytes: %v", len(msg), err)
				}
			}
		})
	}
}
