package app_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/app"
	"github.com/foresight-vision/foresight/internal/testlog"
)

// TestUngatedServerBeyondLoopbackWarns: with no magic word, a server that
// others can reach says at start that everything, stored captions included,
// is open; on loopback, or with a word, it does not.
func TestUngatedServerBeyondLoopbackWarns(t *testing.T) {
	const warning = "no magic word is set"
	for _, tc := range []struct {
		name string
		addr string
		env  []string
		warn bool
	}{
		{"all interfaces, no word", ":0", nil, true},
		{"loopback, no word", "127.0.0.1:0", nil, false},
		{"all interfaces, a word", ":0", []string{"MAGIC_WORD", "open-sesame"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := append([]string{"FORESIGHT_DATABASE_URL", "none"}, tc.env...)
			cfg, err := app.LoadConfig([]string{"--addr", tc.addr}, envOf(env...), nil)
			require.NoError(t, err)
			logs := &testlog.Buffer{}
			inst, err := app.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(logs, nil)))
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			require.NoError(t, inst.Stop(ctx))
			if tc.warn {
				assert.Contains(t, logs.String(), warning)
			} else {
				assert.NotContains(t, logs.String(), warning)
			}
			assert.NotContains(t, logs.String(), "open-sesame")
		})
	}
}
