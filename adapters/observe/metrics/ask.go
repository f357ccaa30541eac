package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// AskBuckets are the bounds, in seconds, of retrieval and model time: a
// retrieval takes milliseconds, a model answer seconds.
var AskBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// AskMetrics counts questions; it implements domain.AskObserver.
type AskMetrics struct {
	questions *prometheus.CounterVec
	retrieval *prometheus.HistogramVec
	model     prometheus.Observer
}

// NewAskMetrics registers the ask metrics on reg (Metrics.Registry).
func NewAskMetrics(reg prometheus.Registerer) *AskMetrics {
	m := &AskMetrics{
		questions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: "ask_questions_total",
			Help: "Questions answered by POST /ask, by retrieval (text, hybrid) and outcome (ok, empty, error, timeout)."}, []string{"retrieval", "outcome"}),
		retrieval: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: Namespace, Name: "ask_retrieval_seconds",
			Help: "Time to retrieve a question's captions (everything but the model call), by retrieval.", Buckets: AskBuckets}, []string{"retrieval"}),
	}
	model := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: Namespace, Name: "ask_model_seconds",
		Help: "Time the ask model took to answer (failures included).", Buckets: AskBuckets})
	reg.MustRegister(m.questions, m.retrieval, model)
	m.model = model
	return m
}

// Asked implements domain.AskObserver.
func (m *AskMetrics) Asked(retrieval, outcome string, retrievalTime, modelTime time.Duration) {
	m.questions.WithLabelValues(retrieval, outcome).Inc()
	m.retrieval.WithLabelValues(retrieval).Observe(retrievalTime.Seconds())
	if outcome != "empty" {
		m.model.Observe(modelTime.Seconds())
	}
}

// IndexerMetrics counts caption embeddings; it implements domain.IndexerObserver.
type IndexerMetrics struct{ queued, done, failed prometheus.Counter }

// NewIndexerMetrics registers the embeddings metrics on reg.
func NewIndexerMetrics(reg prometheus.Registerer) *IndexerMetrics {
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help})
		reg.MustRegister(c)
		return c
	}
	return &IndexerMetrics{
		queued: counter("embeddings_queued_total", "Stored captions found without a vector and sent to be embedded."),
		done:   counter("embeddings_done_total", "Caption vectors stored."),
		failed: counter("embeddings_failed_total", "Captions whose embedding batch failed (retried with backoff)."),
	}
}

func (m *IndexerMetrics) EmbeddingsQueued(n int) { m.queued.Add(float64(n)) }
func (m *IndexerMetrics) EmbeddingsDone(n int)   { m.done.Add(float64(n)) }
func (m *IndexerMetrics) EmbeddingsFailed(n int) { m.failed.Add(float64(n)) }
