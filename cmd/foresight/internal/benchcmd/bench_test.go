package benchcmd

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/adapters/observe/metrics"
	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/domain/domaintest"
	"github.com/foresight-vision/foresight/ports"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func startServer(t *testing.T, cfg httpapi.StreamHandlerConfig) string {
	t.Helper()
	h := httpapi.NewStreamHandler(cfg)
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, h.Shutdown(ctx))
		srv.Close()
	})
	return srv.URL // http://, normalised by the tool
}

func runJSON(t *testing.T, args ...string) (Report, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	require.NoError(t, Run(ctx, append(args, "--json"), &out, &errb))
	var rep Report
	require.NoError(t, json.Unmarshal(out.Bytes(), &rep), out.String())
	assert.Equal(t, 1, strings.Count(strings.TrimSpace(out.String()), "\n")+1, "exactly one JSON line")
	return rep, errb.String()
}

func TestBenchBothModes(t *testing.T) {
	for _, mode := range []string{ModeLockstep, ModePipelined} {
		t.Run(mode, func(t *testing.T) {
			m := metrics.New()
			url := startServer(t, httpapi.StreamHandlerConfig{
				Observer: m,
				Backend: &domaintest.Backend{Infer: func(context.Context, ports.Chunk) (ports.Result, error) {
					return ports.Result{Caption: "x", Set: ports.ResultCaption}, nil
				}},
				Stream: domain.StreamConfig{ChunkInterval: 50 * time.Millisecond},
			})
			rep, _ := runJSON(t, "--url", url, "--conns", "3", "--fps", "50", "--frame-bytes", "1000",
				"--duration", "300ms", "--mode", mode, "--magic-word", "shh")
			assert.Equal(t, mode, rep.Mode)
			assert.EqualValues(t, 3, rep.Connected)
			assert.Zero(t, rep.Failed)
			assert.Positive(t, rep.FramesSent)
			assert.Equal(t, rep.FramesSent, rep.Acks, "every frame acked")
			assert.Zero(t, rep.TransportErrors, rep.FirstError)
			assert.Zero(t, rep.InferenceErrors)
			assert.Positive(t, rep.Captions, "50 ms chunks over 300 ms must yield captions")
			assert.Positive(t, rep.Latency.Max)
			assert.LessOrEqual(t, rep.Latency.P50, rep.Latency.P99)
			assert.LessOrEqual(t, rep.Latency.P99, rep.Latency.Max)
			assert.Positive(t, rep.FramesPerS)
			assert.InEpsilon(t, float64(rep.Acks)/rep.ElapsedS, rep.FramesPerS, 1e-9, "throughput is over the measured time")
			assert.InDelta(t, rep.FramesPerS*1000/1e6, rep.MBPerS, 1e-9)
			assert.NotContains(t, rep.URL, "shh")
			assert.True(t, strings.HasSuffix(rep.URL, "/vision/stream"), rep.URL)
		})
	}
}

func TestBenchTextReportAndProgress(t *testing.T) {
	url := startServer(t, httpapi.StreamHandlerConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	require.NoError(t, Run(ctx, []string{"--url", url, "--conns", "2", "--duration", "1200ms", "--mode", "pipelined"}, &out, &errb))
	for _, want := range []string{"streams          2 connected, 0 failed", "ack latency      p50", "throughput", "0 inference, 0 transport"} {
		assert.Contains(t, out.String(), want)
	}
	assert.Contains(t, errb.String(), "streams 2/2", "a progress line each second")
	assert.NotContains(t, errb.String(), "\r", "no carriage returns when stderr is not a terminal")
}

func TestBenchUnreachableServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now
	rep, _ := runJSON(t, "--url", "ws://"+addr, "--conns", "2", "--duration", "100ms")
	assert.EqualValues(t, 2, rep.Failed)
	assert.Zero(t, rep.Connected)
	assert.Zero(t, rep.FramesSent)
	assert.NotEmpty(t, rep.FirstError)
}

func TestBenchCancelStopsEverything(t *testing.T) {
	url := startServer(t, httpapi.StreamHandlerConfig{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"--url", url, "--conns", "4", "--duration", "1h", "--mode", "pipelined", "--json"}, &bytes.Buffer{}, &bytes.Buffer{})
	}()
	time.Sleep(300 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("bench did not stop on cancel")
	}
}

func TestBenchUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--conns", "0"}, "--conns"},
		{[]string{"--fps", "0"}, "--fps"},
		{[]string{"--duration", "0s"}, "--duration"},
		{[]string{"--mode", "burst"}, "--mode must be"},
		{[]string{"--url", "ftp://x"}, "unsupported URL scheme"},
		{[]string{"--frame-bytes", "-1"}, "--frame-bytes"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		err := Run(context.Background(), tc.args, &bytes.Buffer{}, &bytes.Buffer{})
		require.Error(t, err, tc.args)
		assert.Contains(t, err.Error(), tc.want)
	}
	var errb bytes.Buffer
	require.NoError(t, Run(context.Background(), []string{"--help"}, &bytes.Buffer{}, &errb))
	for _, f := range []string{"-conns", "-fps", "-frame-bytes", "-duration", "-mode", "-magic-word", "-ramp", "-json", "-idle"} {
		assert.Contains(t, errb.String(), f)
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	assert.Zero(t, h.quantile(0.99))
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Millisecond)
	}
	for q, want := range map[float64]time.Duration{0.5: 500 * time.Millisecond, 0.9: 900 * time.Millisecond, 0.99: 990 * time.Millisecond} {
		got := h.quantile(q)
		assert.GreaterOrEqual(t, got, want, q)
		assert.InEpsilon(t, float64(want), float64(got), 0.035, q)
	}
	assert.Equal(t, time.Second, h.max())
	assert.Equal(t, time.Second, h.quantile(1))
	assert.Equal(t, 500500*time.Microsecond, h.mean())
	// Buckets tile the range with no gaps or overlaps.
	for us := int64(0); us < 1<<20; us++ {
		b := bucketOf(us)
		if us > upperBound(b) || (b > 0 && us <= upperBound(b-1)) {
			t.Fatalf("%d µs lands in bucket %d (%d..%d)", us, b, upperBound(b-1)+1, upperBound(b))
		}
	}
	assert.Less(t, bucketOf(1<<62), numBuckets)
}
