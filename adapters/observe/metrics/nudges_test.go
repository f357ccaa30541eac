package metrics_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/observe/metrics"
)

func TestNudgeMetricsCountDecisionsDeliveriesAndModelCalls(t *testing.T) {
	m := metrics.New()
	n, err := metrics.NewNudgeMetrics(m)
	require.NoError(t, err)
	_, err = metrics.NewNudgeMetrics(m)
	assert.Error(t, err, "a second registration on one registry is refused, not a panic")

	before := scrape(t, m.Handler())
	assert.Equal(t, 0.0, before[`foresight_nudge_decisions_total{engine="llm",outcome="delivered"}`], "pre-created at 0")
	assert.Contains(t, before, `foresight_nudge_delivery_attempts_total{outcome="error"}`)

	n.NudgeDecided("llm", "delivered")
	n.NudgeDecided("llm", "delivered")
	n.NudgeDecided("rules", "suppressed_cooldown")
	n.NudgeDecided("mystery", "weird") // unbounded values collapse into "other"
	n.NudgeDeliveryAttempt("error")
	n.NudgeDeliveryAttempt("ok")
	n.NudgeDeliveryAttempt("ok")
	n.NudgeModelCall("llm", 1500*time.Millisecond, 120, 30)
	n.NudgeModelCall("rules", 20*time.Microsecond, 0, 0)

	got := scrape(t, m.Handler())
	for series, want := range map[string]float64{
		`foresight_nudge_decisions_total{engine="llm",outcome="delivered"}`:             2,
		`foresight_nudge_decisions_total{engine="rules",outcome="suppressed_cooldown"}`: 1,
		`foresight_nudge_decisions_total{engine="other",outcome="other"}`:               1,
		`foresight_nudge_decisions_total{engine="llm",outcome="no"}`:                    0,
		`foresight_nudge_delivery_attempts_total{outcome="ok"}`:                         2,
		`foresight_nudge_delivery_attempts_total{outcome="error"}`:                      1,
		`foresight_nudge_tokens_total{engine="llm",kind="prompt"}`:                      120,
		`foresight_nudge_tokens_total{engine="llm",kind="completion"}`:                  30,
		`foresight_nudge_tokens_total{engine="rules",kind="prompt"}`:                    0,
		`foresight_nudge_model_seconds_count{engine="llm"}`:                             1,
		`foresight_nudge_model_seconds_sum{engine="llm"}`:                               1.5,
		`foresight_nudge_model_seconds_bucket{engine="llm",le="1"}`:                     0,
		`foresight_nudge_model_seconds_bucket{engine="llm",le="2"}`:                     1,
		`foresight_nudge_model_seconds_bucket{engine="rules",le="0.001"}`:               1,
	} {
		assert.Equal(t, want, got[series], series)
	}
	families, err := m.Registry().Gather()
	require.NoError(t, err, "the registry gathers cleanly")
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	assert.Subset(t, names, []string{"foresight_nudge_decisions_total", "foresight_nudge_delivery_attempts_total",
		"foresight_nudge_model_seconds", "foresight_nudge_tokens_total"})
}
