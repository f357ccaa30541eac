package wire_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/protocol/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPeerMaySend(t *testing.T) {
	allowed := map[wire.CloseCode]bool{}
	for _, c := range []wire.CloseCode{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999} {
		allowed[c] = true
	}
	for c := wire.CloseCode(0); c < 6000; c++ {
		want := allowed[c] || (c >= 3000 && c <= 4999)
		if got := c.PeerMaySend(); got != want {
			t.Errorf("CloseCode(%d).PeerMaySend() = %v, want %v", c, got, want)
		}
	}
}
