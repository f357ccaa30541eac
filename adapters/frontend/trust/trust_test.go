package trust_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/frontend/trust"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestHonourClient(t *testing.T) {
	tests := []struct {
		name        string
		trustClient bool
		serverHolds bool
		want        bool
	}{
		{"server has none: the client's is used", false, false, true},
		{"server has its own: the server's wins", false, true, false},
		{"trusted clients win over the server's", true, true, true},
		{"trusted, server has none", true, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, trust.New(tt.trustClient).HonourClient(tt.serverHolds))
		})
	}
}

func TestPick(t *testing.T) {
	tests := []struct {
		name           string
		trustClient    bool
		server, client string
		want           string
	}{
		{"neither", false, "", "", ""},
		{"client only", false, "", "c", "c"},
		{"server only", false, "s", "", "s"},
		{"both, untrusted: server", false, "s", "c", "s"},
		{"both, trusted: client", true, "s", "c", "c"},
		{"trusted but client empty: server", true, "s", "", "s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, trust.New(tt.trustClient).Pick(tt.server, tt.client))
		})
	}
}

func TestZeroValueIsTheSafeDefault(t *testing.T) {
	assert.Equal(t, trust.New(false), trust.Policy{})
}
