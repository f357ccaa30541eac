package app_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/notify/poke/poketest"
	"github.com/foresight-vision/foresight/app"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startServer runs the whole app on a loopback port. It keeps no captions
// unless env names a FORESIGHT_DATABASE_URL, so no test writes data/.
func startServer(t *testing.T, env ...string) *app.Instance {
	t.Helper()
	cfg, err := app.LoadConfig([]string{"--addr", "127.0.0.1:0"}, envOf(append([]string{"FORESIGHT_DATABASE_URL", "none"}, env...)...), nil)
	require.NoError(t, err)
	inst, err := app.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		assert.NoError(t, inst.Stop(ctx))
	})
	return inst
}

func wsURL(inst *app.Instance, query string) string {
	return "ws" + strings.TrimPrefix(inst.URL(), "http") + "/vision/stream" + query
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func TestServerEndToEnd(t *testing.T) {
	fake := poketest.NewServer()
	defer fake.Close()
	inst := startServer(t, "FORESIGHT_POKE_URL", fake.URL(), "FORESIGHT_POKE_API_KEY", "server-key")

	status, body := get(t, inst.URL()+"/health")
	assert.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"status":"ok"}`, body)

	conn, _, _, err := ws.Dial(context.Background(), wsURL(inst, ""))
	require.NoError(t, err)
	defer conn.Close()
	for i := 1; i <= 3; i++ {
		require.NoError(t, wsutil.WriteClientBinary(conn, make([]byte, i*10)))
		data, op, err := wsutil.ReadServerData(conn)
		require.NoError(t, err)
		assert.Equal(t, ws.OpText, op)
		var ack map[string]any
		require.NoError(t, json.Unmarshal(data, &ack))
		assert.Equal(t, map[string]any{"frame": float64(i), "bytes": float64(i * 10)}, ack)
	}

	resp, err := http.Post(inst.URL()+"/poke/send", "application/json", strings.NewReader(`{"message":"hi"}`))
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	require.Len(t, fake.Requests(), 1)
	assert.Equal(t, "Bearer server-key", fake.Requests()[0].Authorization)
}

func TestMagicWordGate(t *testing.T) {
	inst := startServer(t, "MAGIC_WORD", "open sesame")
	status, _ := get(t, inst.URL()+"/health")
	assert.Equal(t, http.StatusOK, status, "health stays public")

	status, body := get(t, inst.URL()+"/nope")
	assert.Equal(t, http.StatusForbidden, status)
	assert.Equal(t, "forbidden", body)

	_, _, _, err := ws.Dial(context.Background(), wsURL(inst, ""))
	var se ws.StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusForbidden, int(se))

	conn, _, _, err := ws.Dial(context.Background(), wsURL(inst, "?magic_word=open%20sesame"))
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, wsutil.WriteClientBinary(conn, []byte{1}))
	_, _, err = wsutil.ReadServerData(conn)
	require.NoError(t, err)
}

func TestStopClosesOpenStreams(t *testing.T) {
	cfg, err := app.LoadConfig([]string{"--addr", "127.0.0.1:0"}, envOf("FORESIGHT_DATABASE_URL", "none"), nil)
	require.NoError(t, err)
	inst, err := app.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	conn, _, _, err := ws.Dial(context.Background(), wsURL(inst, ""))
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, wsutil.WriteClientBinary(conn, []byte{1}))
	_, _, err = wsutil.ReadServerData(conn)
	require.NoError(t, err)

	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stopped <- inst.Stop(ctx)
	}()
	_, _, err = wsutil.ReadServerData(conn)
	var closed wsutil.ClosedError
	require.ErrorAs(t, err, &closed)
	assert.Equal(t, ws.StatusGoingAway, closed.Code)
	require.NoError(t, <-stopped)
}

func TestMetricsAndPprof(t *testing.T) {
	inst := startServer(t, "MAGIC_WORD", "w", "FORESIGHT_PPROF", "true")
	conn, _, _, err := ws.Dial(context.Background(), wsURL(inst, "?magic_word=w"))
	require.NoError(t, err)
	require.NoError(t, wsutil.WriteClientBinary(conn, make([]byte, 100)))
	_, _, err = wsutil.ReadServerData(conn)
	require.NoError(t, err)
	require.NoError(t, conn.Close())

	// The server counts an ack once its write returns, which may be just
	// after the client has read it.
	require.Eventually(t, func() bool {
		status, body := get(t, inst.URL()+"/metrics") // public by default
		return status == http.StatusOK &&
			strings.Contains(body, "foresight_frames_received_total 1\n") &&
			strings.Contains(body, "foresight_acks_sent_total 1\n") &&
			strings.Contains(body, `foresight_ws_closes_total{code="1006"} 1`) &&
			strings.Contains(body, "foresight_frame_memory_limit_bytes 2.147483648e+09")
	}, 5*time.Second, 10*time.Millisecond, "metrics count the stream")

	status, _ := get(t, inst.URL()+"/debug/pprof/heap")
	assert.Equal(t, http.StatusForbidden, status, "pprof sits behind the magic word")
	status, body := get(t, inst.URL()+"/debug/pprof/?magic_word=w")
	assert.Equal(t, http.StatusOK, status)
	assert.Contains(t, body, "goroutine")
	status, _ = get(t, inst.URL()+"/debug/pprof/cmdline?magic_word=w")
	assert.Equal(t, http.StatusOK, status)
}

func TestPprofOffByDefault(t *testing.T) {
	inst := startServer(t)
	status, _ := get(t, inst.URL()+"/debug/pprof/")
	assert.Equal(t, http.StatusNotFound, status)
}

func TestLivePageIsServedPublicly(t *testing.T) {
	inst := startServer(t, "MAGIC_WORD", "w")
	status, body := get(t, inst.URL()+"/")
	assert.Equal(t, http.StatusOK, status, "the page holds no secret; the stream behind it needs the word")
	assert.Contains(t, body, "<html")
}

func TestSoftMemoryLimitFollowsTheFrameBudgetWhileServing(t *testing.T) {
	if os.Getenv("GOMEMLIMIT") != "" {
		t.Skip("GOMEMLIMIT is set: the server leaves the runtime's limit alone")
	}
	before := debug.SetMemoryLimit(-1)
	cfg, err := app.LoadConfig([]string{"--addr", "127.0.0.1:0"}, envOf("FORESIGHT_DATABASE_URL", "none", "FORESIGHT_MAX_TOTAL_BUFFER_BYTES", "268435456"), nil)
	require.NoError(t, err)
	assert.Equal(t, int64(256<<20+32<<20+32<<20), cfg.SoftMemoryLimit(), "auto: budget + 1/8 + 32 MiB")
	inst, err := app.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	assert.Equal(t, cfg.SoftMemoryLimit(), debug.SetMemoryLimit(-1))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, inst.Stop(ctx))
	assert.Equal(t, before, debug.SetMemoryLimit(-1), "restored when the server stops")

	off, err := app.LoadConfig(nil, envOf("FORESIGHT_MEMORY_LIMIT", "off"), nil)
	require.NoError(t, err)
	assert.Zero(t, off.SoftMemoryLimit())
	fixed, err := app.LoadConfig(nil, envOf("FORESIGHT_MEMORY_LIMIT", "1000000000"), nil)
	require.NoError(t, err)
	assert.Equal(t, int64(1000000000), fixed.SoftMemoryLimit())
	_, err = app.LoadConfig(nil, envOf("FORESIGHT_MEMORY_LIMIT", "lots"), nil)
	assert.ErrorContains(t, err, "FORESIGHT_MEMORY_LIMIT")
}
