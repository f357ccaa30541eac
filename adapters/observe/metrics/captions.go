package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CaptionBatchBuckets are the caption batch write bounds in seconds: a
// local SQLite batch takes a millisecond or so, a stuck database is cut off
// by the caller's context.
var CaptionBatchBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// RecorderMetrics counts what the caption recorder (domain.Recorder) does;
// it implements domain.RecorderObserver. All methods are safe for concurrent
// use and do not allocate.
type RecorderMetrics struct {
	recorded prometheus.Counter
	stored   prometheus.Counter
	dropped  prometheus.Counter
	batchOK  prometheus.Observer
	batchErr prometheus.Observer
	depth    prometheus.Gauge
}

// NewRecorderMetrics registers the caption metrics on reg (Metrics.Registry).
func NewRecorderMetrics(reg prometheus.Registerer) *RecorderMetrics {
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help})
		reg.MustRegister(c)
		return c
	}
	r := &RecorderMetrics{
		recorded: counter("captions_recorded_total", "Captions delivered on acks and handed to the caption store's queue."),
		stored:   counter("captions_stored_total", "Captions written to the caption store."),
		dropped:  counter("captions_dropped_total", "Captions given up: the queue was full (oldest dropped), or still queued when a stop ran out of time."),
	}
	batches := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "caption_batch_duration_seconds",
		Help:    "Caption store batch writes (one transaction each), by result.",
		Buckets: CaptionBatchBuckets,
	}, []string{"result"})
	reg.MustRegister(batches)
	r.batchOK = batches.WithLabelValues("ok")
	r.batchErr = batches.WithLabelValues("error")
	r.depth = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "caption_queue_depth",
		Help: "Captions waiting to be written, the batch in flight included.",
	})
	reg.MustRegister(r.depth)
	return r
}

func (r *RecorderMetrics) CaptionRecorded()        { r.recorded.Inc() }
func (r *RecorderMetrics) CaptionsStored(n int)    { r.stored.Add(float64(n)) }
func (r *RecorderMetrics) CaptionsDropped(n int)   { r.dropped.Add(float64(n)) }
func (r *RecorderMetrics) CaptionQueueDepth(n int) { r.depth.Set(float64(n)) }

func (r *RecorderMetrics) CaptionBatch(_ int, took time.Duration, err error) {
	if err != nil {
		r.batchErr.Observe(took.Seconds())
		return
	}
	r.batchOK.Observe(took.Seconds())
}
