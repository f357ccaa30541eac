package metrics_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/adapters/observe/metrics"
	"github.com/foresight-vision/foresight/adapters/protocol/visionclient"
	"github.com/foresight-vision/foresight/ports"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var _ httpapi.Observer = (*metrics.Metrics)(nil)

// scrape fetches the exposition text over HTTP and returns series -> value,
// the series key being the metric name plus its label set as printed.
func scrape(t *testing.T, h http.Handler) map[string]float64 {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, resp.Header.Get("Content-Type"), "text/plain")
	return parseExposition(t, resp.Body)
}

func parseExposition(t *testing.T, r io.Reader) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		require.Positive(t, i, "line %q", line)
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, "line %q", line)
		out[line[:i]] = v
	}
	require.NoError(t, sc.Err())
	return out
}

func TestZeroValuesAndRuntimeCollectors(t *testing.T) {
	m := metrics.New()
	got := scrape(t, m.Handler())
	for _, series := range []string{
		"foresight_streams_active",
		"foresight_frames_received_total",
		`foresight_streams_rejected_total{reason="limit"}`,
		`foresight_inference_calls_total{outcome="timeout"}`,
		`foresight_poke_sends_total{outcome="upstream_error"}`,
		`foresight_ws_closes_total{code="1000"}`,
		`foresight_chunks_skipped_total{reason="unchanged"}`,
		`foresight_chunks_skipped_total{reason="dark"}`,
		"foresight_frames_rejected_total",
	} {
		v, ok := got[series]
		assert.True(t, ok, "series %s missing", series)
		assert.Zero(t, v, series)
	}
	assert.Contains(t, got, "go_goroutines")
	assert.Contains(t, got, "process_resident_memory_bytes")
}

func TestObserverMethodsShowInScrape(t *testing.T) {
	m := metrics.New()
	m.StreamOpened()
	m.StreamOpened()
	m.StreamOpened()
	m.StreamClosed(1000)
	m.StreamClosed(1006)
	m.StreamClosed(4001)
	m.StreamClosed(1)
	m.StreamRejected("limit")
	m.StreamRejected("limit")
	m.StreamRejected("bogus")
	for range 5 {
		m.FrameReceived(100)
	}
	m.AckSent()
	m.AckSent()
	m.ChunkCut(3, 300, 10, 1000)
	m.ChunkCut(2, 200, 2, 200)
	rateLimited, dropped := int64(0), int64(0)
	m.WatchInferenceBackend(func() (int64, int64) { return rateLimited, dropped })
	rateLimited, dropped = 4, 7 // read at scrape time
	m.FramesDropped(4, 4000)
	m.InferenceDone(ports.OutcomeOK, 70*time.Millisecond)
	m.InferenceDone(ports.OutcomeOK, 3*time.Second)
	m.InferenceDone(ports.OutcomeTimeout, 45*time.Second)
	m.InferenceDone("weird", time.Second)
	m.PokeSent("ok")
	m.PokeSent("no_key")
	m.PokeSent("nonsense")
	m.ChunkSkipped("unchanged", 6, 600)
	m.ChunkSkipped("unchanged", 6, 600)
	m.ChunkSkipped("dark", 4, 40)
	m.ChunkSkipped("made-up", 1, 1)
	m.FramesRejected(4)
	m.FramesRejected(2)

	got := scrape(t, m.Handler())
	want := map[string]float64{
		"foresight_streams_active":                                               -1, // 3 opened, 4 closed
		"foresight_streams_opened_total":                                         3,
		`foresight_ws_closes_total{code="1000"}`:                                 1,
		`foresight_ws_closes_total{code="1006"}`:                                 1,
		`foresight_ws_closes_total{code="4001"}`:                                 1,
		`foresight_ws_closes_total{code="other"}`:                                1,
		`foresight_streams_rejected_total{reason="limit"}`:                       2,
		`foresight_streams_rejected_total{reason="other"}`:                       1,
		"foresight_frames_received_total":                                        5,
		"foresight_frame_bytes_received_total":                                   500,
		"foresight_acks_sent_total":                                              2,
		"foresight_chunks_total":                                                 2,
		"foresight_chunk_frames_total":                                           5,
		"foresight_chunk_bytes_total":                                            500,
		"foresight_chunk_received_frames_total":                                  12,
		"foresight_chunk_received_bytes_total":                                   1200,
		"foresight_inference_rate_limited_total":                                 4,
		"foresight_inference_dropped_chunks_total":                               7,
		"foresight_dropped_frames_total":                                         4,
		"foresight_dropped_bytes_total":                                          4000,
		`foresight_inference_calls_total{outcome="ok"}`:                          2,
		`foresight_inference_calls_total{outcome="timeout"}`:                     1,
		`foresight_inference_calls_total{outcome="other"}`:                       1,
		`foresight_inference_duration_seconds_count{outcome="ok"}`:               2,
		`foresight_inference_duration_seconds_bucket{outcome="ok",le="0.1"}`:     1,
		`foresight_inference_duration_seconds_bucket{outcome="ok",le="4"}`:       2,
		`foresight_inference_duration_seconds_bucket{outcome="timeout",le="30"}`: 0,
		`foresight_inference_duration_seconds_bucket{outcome="timeout",le="60"}`: 1,
		`foresight_poke_sends_total{outcome="ok"}`:                               1,
		`foresight_poke_sends_total{outcome="no_key"}`:                           1,
		`foresight_poke_sends_total{outcome="other"}`:                            1,
		`foresight_chunks_skipped_total{reason="unchanged"}`:                     2,
		`foresight_chunks_skipped_total{reason="dark"}`:                          1,
		`foresight_chunks_skipped_total{reason="blurred"}`:                       0,
		`foresight_chunks_skipped_total{reason="other"}`:                         1,
		"foresight_skipped_chunk_frames_total":                                   17,
		"foresight_frames_rejected_total":                                        6,
	}
	for series, v := range want {
		g, ok := got[series]
		if assert.True(t, ok, "series %s missing", series) {
			assert.InDelta(t, v, g, 1e-9, series)
		}
	}
	assert.InDelta(t, 3.07, got[`foresight_inference_duration_seconds_sum{outcome="ok"}`], 1e-9)
	// The streaming gauge was not leaked into another registry.
	assert.Zero(t, scrape(t, metrics.New().Handler())["foresight_streams_opened_total"])
}

func TestConcurrentUse(t *testing.T) {
	m := metrics.New()
	done := make(chan struct{})
	for range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 1000 {
				m.FrameReceived(10)
				m.AckSent()
				m.StreamClosed(1000)
			}
		}()
	}
	for range 8 {
		<-done
	}
	got := scrape(t, m.Handler())
	assert.Equal(t, 8000.0, got["foresight_frames_received_total"])
	assert.Equal(t, 80000.0, got["foresight_frame_bytes_received_total"])
	assert.Equal(t, 8000.0, got[`foresight_ws_closes_total{code="1000"}`])
}

func TestRealStreamIsCounted(t *testing.T) {
	m := metrics.New()
	h := httpapi.NewStreamHandler(httpapi.StreamHandlerConfig{Observer: m})
	srv := httptest.NewServer(h)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, h.Shutdown(ctx))
		srv.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := visionclient.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/vision/stream", visionclient.Options{})
	require.NoError(t, err)
	for range 7 {
		require.NoError(t, c.SendFrame(make([]byte, 300)))
		_, err := c.ReadAck()
		require.NoError(t, err)
	}
	assert.Equal(t, 1.0, scrape(t, m.Handler())["foresight_streams_active"])
	require.NoError(t, c.Close())
	require.Eventually(t, func() bool {
		return scrape(t, m.Handler())[`foresight_ws_closes_total{code="1000"}`] == 1
	}, 5*time.Second, 10*time.Millisecond)
	got := scrape(t, m.Handler())
	assert.Equal(t, 7.0, got["foresight_frames_received_total"])
	assert.Equal(t, 2100.0, got["foresight_frame_bytes_received_total"])
	assert.Equal(t, 7.0, got["foresight_acks_sent_total"])
	assert.Equal(t, 1.0, got["foresight_streams_opened_total"])
	assert.Zero(t, got["foresight_streams_active"])
}
