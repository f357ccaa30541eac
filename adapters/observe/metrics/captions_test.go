package metrics_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/observe/metrics"
	"github.com/foresight-vision/foresight/adapters/store/sqlite"
	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/ports"
)

var _ domain.RecorderObserver = (*metrics.RecorderMetrics)(nil)

func TestRecorderMetricsCount(t *testing.T) {
	m := metrics.New()
	r := metrics.NewRecorderMetrics(m.Registry())
	got := scrape(t, m.Handler())
	for _, series := range []string{"foresight_captions_stored_total", "foresight_captions_dropped_total",
		"foresight_captions_recorded_total", "foresight_caption_queue_depth"} {
		assert.Contains(t, got, series)
		assert.Zero(t, got[series], series)
	}
	r.CaptionRecorded()
	r.CaptionsStored(3)
	r.CaptionsDropped(2)
	r.CaptionQueueDepth(7)
	r.CaptionBatch(3, 20*time.Millisecond, nil)
	r.CaptionBatch(3, 2*time.Second, errors.New("down"))
	got = scrape(t, m.Handler())
	assert.Equal(t, 1.0, got["foresight_captions_recorded_total"])
	assert.Equal(t, 3.0, got["foresight_captions_stored_total"])
	assert.Equal(t, 2.0, got["foresight_captions_dropped_total"])
	assert.Equal(t, 7.0, got["foresight_caption_queue_depth"])
	assert.Equal(t, 1.0, got[`foresight_caption_batch_duration_seconds_count{result="ok"}`])
	assert.Equal(t, 1.0, got[`foresight_caption_batch_duration_seconds_bucket{result="ok",le="0.025"}`])
	assert.Equal(t, 1.0, got[`foresight_caption_batch_duration_seconds_count{result="error"}`])
	assert.Equal(t, 0.0, got[`foresight_caption_batch_duration_seconds_bucket{result="error",le="1"}`])
}

// A real recorder over a real SQLite file drives the metrics.
func TestRecorderMetricsFromARealRecorder(t *testing.T) {
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "c.db"))
	require.NoError(t, err)
	defer func() { require.NoError(t, store.Close()) }()
	m := metrics.New()
	rec := domain.NewRecorder(store, domain.RecorderConfig{Observer: metrics.NewRecorderMetrics(m.Registry())})
	for i := range 5 {
		rec.Record(ports.Caption{ID: string(rune('a' + i)), Device: "d", StreamID: "s", Start: time.Now(), End: time.Now(), Text: "hello"})
	}
	require.NoError(t, rec.Close(context.Background()))
	got := scrape(t, m.Handler())
	assert.Equal(t, 5.0, got["foresight_captions_recorded_total"])
	assert.Equal(t, 5.0, got["foresight_captions_stored_total"])
	assert.Equal(t, 0.0, got["foresight_captions_dropped_total"])
	assert.Equal(t, 0.0, got["foresight_caption_queue_depth"])
	assert.Equal(t, 1.0, got[`foresight_caption_batch_duration_seconds_count{result="ok"}`])
}
