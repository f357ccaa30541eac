// Package metrics exposes what the stream server does in Prometheus format.
// Metrics implements httpapi.Observer (and so ports.StreamObserver) on its own
// registry, so several servers in one process (tests) never collide.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/foresight-vision/foresight/ports"
)

// Namespace prefixes every metric name.
const Namespace = "foresight"

// InferenceBuckets are the latency histogram bounds in seconds: a remote VLM
// answers in 50 ms at best and is cut off by the call timeout (up to a minute).
var InferenceBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60}

// Label values the server is documented to use. Anything else is counted as
// "other" so a bug or a hostile client cannot create unbounded series.
var (
	rejectReasons     = []string{"limit", "shutdown", "handshake", "bad_device"}
	inferenceOutcomes = outcomeLabels(ports.Outcomes())
	pokeOutcomes      = []string{"ok", "no_key", "bad_request", "upstream_error"}
	skipReasons       = []string{"unchanged", "dark", "blurred", "undecodable"}
)

const other = "other"

func outcomeLabels(outcomes []ports.Outcome) []string {
	labels := make([]string, len(outcomes))
	for i, o := range outcomes {
		labels[i] = string(o)
	}
	return labels
}

// Metrics is a Prometheus implementation of httpapi.Observer. All methods are
// safe for concurrent use and do not allocate on the hot path.
type Metrics struct {
	reg *prometheus.Registry

	streamsActive prometheus.Gauge
	streamsOpened prometheus.Counter
	rejected      map[string]prometheus.Counter
	framesRecv    prometheus.Counter
	bytesRecv     prometheus.Counter
	acksSent      prometheus.Counter
	chunks        prometheus.Counter
	chunkFrames   prometheus.Counter
	chunkBytes    prometheus.Counter
	chunkRecvFr   prometheus.Counter
	chunkRecvB    prometheus.Counter
	droppedFrames prometheus.Counter
	droppedBytes  prometheus.Counter
	inference     map[string]prometheus.Counter
	inferenceLat  map[string]prometheus.Observer
	closes        *prometheus.CounterVec
	closeByCode   map[int]prometheus.Counter
	poke          map[string]prometheus.Counter
	skipped       map[string]prometheus.Counter
	skippedFrames prometheus.Counter
	rejectedFrms  prometheus.Counter
}

var _ ports.StreamObserver = (*Metrics)(nil)

// New creates the metrics on a fresh registry that also carries the Go
// runtime and process collectors.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	f := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help})
		reg.MustRegister(c)
		return c
	}
	vec := func(name, help, label string, values []string) map[string]prometheus.Counter {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: Namespace, Name: name, Help: help}, []string{label})
		reg.MustRegister(v)
		m := make(map[string]prometheus.Counter, len(values)+1)
		for _, val := range append(values, other) {
			m[val] = v.WithLabelValues(val) // pre-created so every series shows 0
		}
		return m
	}
	m := &Metrics{reg: reg}
	m.streamsActive = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "streams_active", Help: "Open /vision/stream connections.",
	})
	reg.MustRegister(m.streamsActive)
	m.streamsOpened = f("streams_opened_total", "Streams accepted since start.")
	m.rejected = vec("streams_rejected_total", "Stream upgrades refused before the stream started, by reason.", "reason", rejectReasons)
	m.framesRecv = f("frames_received_total", "Binary frames received on streams.")
	m.bytesRecv = f("frame_bytes_received_total", "Bytes of binary frames received on streams.")
	m.acksSent = f("acks_sent_total", "Acks sent on streams.")
	m.chunks = f("chunks_total", "Chunks cut and handed to the model (or to the scene gate, which may skip them: chunks_skipped_total).")
	m.chunkFrames = f("chunk_frames_total", "Frames in chunks handed to the model.")
	m.chunkBytes = f("chunk_bytes_total", "Bytes in chunks handed to the model.")
	m.chunkRecvFr = f("chunk_received_frames_total", "Frames buffered for chunks before frame selection (chunk_frames_total of them were sent).")
	m.chunkRecvB = f("chunk_received_bytes_total", "Bytes buffered for chunks before frame selection (chunk_bytes_total of them were sent).")
	m.droppedFrames = f("dropped_frames_total", "Frames evicted from full stream buffers.")
	m.droppedBytes = f("dropped_bytes_total", "Bytes evicted from full stream buffers.")
	m.inference = vec("inference_calls_total", "Finished inference calls, by outcome.", "outcome", inferenceOutcomes)
	lat := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "inference_duration_seconds",
		Help:    "Round trip of finished inference calls, by outcome.",
		Buckets: InferenceBuckets,
	}, []string{"outcome"})
	reg.MustRegister(lat)
	m.inferenceLat = make(map[string]prometheus.Observer, len(inferenceOutcomes)+1)
	for _, o := range append(inferenceOutcomes, other) {
		m.inferenceLat[o] = lat.WithLabelValues(o)
	}
	m.closes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "ws_closes_total",
		Help: "Closed streams by WebSocket close code (1006: dropped without a close frame; codes outside 1000-1015 and 3000-4999 count as \"other\").",
	}, []string{"code"})
	reg.MustRegister(m.closes)
	m.closeByCode = make(map[int]prometheus.Counter, 16)
	for code := 1000; code <= 1015; code++ {
		m.closeByCode[code] = m.closes.WithLabelValues(strconv.Itoa(code))
	}
	m.poke = vec("poke_sends_total", "/poke/send requests, by outcome.", "outcome", pokeOutcomes)
	m.skipped = vec("chunks_skipped_total", "Cut chunks the scene gate kept from the model (counted in chunks_total too), by reason.", "reason", skipReasons)
	m.skippedFrames = f("skipped_chunk_frames_total", "Frames in chunks the scene gate kept from the model.")
	m.rejectedFrms = f("frames_rejected_total", "Frames the scene gate left out of chunks as dark, blurred or unreadable.")
	return m
}

// Registry returns the registry, for registering more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func pick[T any](m map[string]T, key string) T {
	if v, ok := m[key]; ok {
		return v
	}
	return m[other]
}

// StreamOpened counts a new stream.
func (m *Metrics) StreamOpened() {
	m.streamsOpened.Inc()
	m.streamsActive.Inc()
}

// StreamClosed ends a stream and counts its close code.
func (m *Metrics) StreamClosed(code int) {
	m.streamsActive.Dec()
	if c, ok := m.closeByCode[code]; ok {
		c.Inc()
		return
	}
	// Registered application codes are bounded (2000 values); anything else
	// is garbage from a broken peer.
	if code >= 3000 && code <= 4999 {
		m.closes.WithLabelValues(strconv.Itoa(code)).Inc()
		return
	}
	m.closes.WithLabelValues(other).Inc()
}

// StreamRejected counts a refused upgrade.
func (m *Metrics) StreamRejected(reason string) { pick(m.rejected, reason).Inc() }

// FrameReceived counts one binary message of n bytes.
func (m *Metrics) FrameReceived(n int) {
	m.framesRecv.Inc()
	m.bytesRecv.Add(float64(n))
}

// AckSent counts one ack.
func (m *Metrics) AckSent() { m.acksSent.Inc() }

// PokeSent counts one /poke/send outcome.
func (m *Metrics) PokeSent(outcome string) { pick(m.poke, outcome).Inc() }

// FramesDropped counts frames evicted from a full buffer.
func (m *Metrics) FramesDropped(frames int, bytes int64) {
	m.droppedFrames.Add(float64(frames))
	m.droppedBytes.Add(float64(bytes))
}

// ChunkCut counts a chunk handed to the model: what was sent, and what was
// buffered before frame selection.
func (m *Metrics) ChunkCut(frames int, bytes int64, receivedFrames int, receivedBytes int64) {
	m.chunks.Inc()
	m.chunkFrames.Add(float64(frames))
	m.chunkBytes.Add(float64(bytes))
	m.chunkRecvFr.Add(float64(receivedFrames))
	m.chunkRecvB.Add(float64(receivedBytes))
}

// ChunkSkipped counts a chunk the scene gate kept from the model.
func (m *Metrics) ChunkSkipped(reason string, frames int, _ int64) {
	pick(m.skipped, reason).Inc()
	m.skippedFrames.Add(float64(frames))
}

// FramesRejected counts frames the scene gate left out as unusable.
func (m *Metrics) FramesRejected(frames int) { m.rejectedFrms.Add(float64(frames)) }

// InferenceDone counts a finished call and records its duration.
func (m *Metrics) InferenceDone(outcome ports.Outcome, d time.Duration) {
	pick(m.inference, string(outcome)).Inc()
	pick(m.inferenceLat, string(outcome)).Observe(d.Seconds())
}

// WatchFrameMemory exports the shared frame-memory budget (a
// domain.MemoryBudget) as gauges read at scrape time.
func (m *Metrics) WatchFrameMemory(used, limit func() int64) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "frame_memory_bytes",
			Help: "Frame bytes held now by all streams (buffers, chunks in flight, messages being read).",
		}, func() float64 { return float64(used()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "frame_memory_limit_bytes",
			Help: "The shared frame-memory budget (FORESIGHT_MAX_TOTAL_BUFFER_BYTES).",
		}, func() float64 { return float64(limit()) }),
	)
}

// WatchInferenceBackend exports a backend's own counters, read at scrape
// time: replies that asked it to slow down (429) and chunks it did not send
// while waiting out their Retry-After.
func (m *Metrics) WatchInferenceBackend(counts func() (rateLimited, droppedChunks int64)) {
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: Namespace, Name: "inference_rate_limited_total",
			Help: "Model server replies of 429 Too Many Requests.",
		}, func() float64 { n, _ := counts(); return float64(n) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: Namespace, Name: "inference_dropped_chunks_total",
			Help: "Chunks not sent because their stream was waiting out a Retry-After.",
		}, func() float64 { _, n := counts(); return float64(n) }),
	)
}
