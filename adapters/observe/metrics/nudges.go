package metrics

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/foresight-vision/foresight/ports"
)

// NudgeModelBuckets are the decider latency bounds in seconds: the rules
// engine answers in microseconds, a model call in up to the interval.
var NudgeModelBuckets = []float64{0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60}

// Label values of the nudge metrics; anything else counts as "other".
var (
	nudgeEngines         = []string{"rules", "llm"}
	nudgeOutcomes        = []string{"no", "error", "delivered", "failed", "suppressed_cooldown", "skipped_no_key"}
	nudgeAttemptOutcomes = []string{"ok", "error"}
)

// NudgeMetrics is the Prometheus ports.NudgeObserver, on a Metrics' registry.
type NudgeMetrics struct {
	decisions        map[string]map[string]prometheus.Counter // engine -> outcome
	attempts         map[string]prometheus.Counter
	latency          map[string]prometheus.Observer
	promptTokens     map[string]prometheus.Counter
	completionTokens map[string]prometheus.Counter
}

var _ ports.NudgeObserver = (*NudgeMetrics)(nil)

// NewNudgeMetrics registers the nudge loop's metrics on m's registry; call
// it once per Metrics (a second call fails: the names are taken).
func NewNudgeMetrics(m *Metrics) (*NudgeMetrics, error) {
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "nudge_decisions_total",
		Help: "Recorded nudge decisions, by engine and final outcome."}, []string{"engine", "outcome"})
	attempts := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "nudge_delivery_attempts_total",
		Help: "Calls to the notifier (Poke) for nudges, by outcome."}, []string{"outcome"})
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "nudge_model_seconds",
		Help: "Latency of nudge decider calls, by engine.", Buckets: NudgeModelBuckets}, []string{"engine"})
	tokens := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "nudge_tokens_total",
		Help: "Model tokens used by nudge decisions, by engine and kind (prompt, completion)."}, []string{"engine", "kind"})
	for _, c := range []prometheus.Collector{decisions, attempts, latency, tokens} {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("register nudge metrics: %w", err)
		}
	}
	n := &NudgeMetrics{
		decisions: map[string]map[string]prometheus.Counter{}, attempts: map[string]prometheus.Counter{},
		latency: map[string]prometheus.Observer{}, promptTokens: map[string]prometheus.Counter{},
		completionTokens: map[string]prometheus.Counter{},
	}
	// Every series pre-created, so each shows 0 and the hot path never allocates.
	for _, e := range append(nudgeEngines, other) {
		n.decisions[e] = map[string]prometheus.Counter{}
		for _, o := range append(nudgeOutcomes, other) {
			n.decisions[e][o] = decisions.WithLabelValues(e, o)
		}
		n.latency[e] = latency.WithLabelValues(e)
		n.promptTokens[e] = tokens.WithLabelValues(e, "prompt")
		n.completionTokens[e] = tokens.WithLabelValues(e, "completion")
	}
	for _, o := range append(nudgeAttemptOutcomes, other) {
		n.attempts[o] = attempts.WithLabelValues(o)
	}
	return n, nil
}

// NudgeDecided implements ports.NudgeObserver.
func (n *NudgeMetrics) NudgeDecided(engine, outcome string) {
	pick(pick(n.decisions, engine), outcome).Inc()
}

// NudgeDeliveryAttempt implements ports.NudgeObserver.
func (n *NudgeMetrics) NudgeDeliveryAttempt(outcome string) { pick(n.attempts, outcome).Inc() }

// NudgeModelCall implements ports.NudgeObserver.
func (n *NudgeMetrics) NudgeModelCall(engine string, d time.Duration, promptTokens, completionTokens int) {
	pick(n.latency, engine).Observe(d.Seconds())
	if promptTokens > 0 {
		pick(n.promptTokens, engine).Add(float64(promptTokens))
	}
	if completionTokens > 0 {
		pick(n.completionTokens, engine).Add(float64(completionTokens))
	}
}
