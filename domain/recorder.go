package domain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/foresight-vision/foresight/ports"
)

// Recorder defaults.
const (
	DefaultRecorderQueueSize     = 10_000
	DefaultRecorderBatchSize     = 256
	DefaultRecorderFlushInterval = 200 * time.Millisecond
	DefaultRecorderRetryMin      = 100 * time.Millisecond
	DefaultRecorderRetryMax      = 10 * time.Second
)

// RecorderObserver receives the recorder's counters. Calls come from the
// Record caller and from the writer goroutine; they must be cheap and
// safe for concurrent use.
type RecorderObserver interface {
	// CaptionRecorded counts one Record call (a caption handed in).
	CaptionRecorded()
	// CaptionsStored counts rows a batch wrote.
	CaptionsStored(n int)
	// CaptionsDropped counts rows given up: dropped for the bound, or
	// still queued when Close ran out of time.
	CaptionsDropped(n int)
	// CaptionBatch reports one SaveCaptions call: its rows, how long it
	// took and its error (nil on success).
	CaptionBatch(rows int, took time.Duration, err error)
	// CaptionQueueDepth reports the rows waiting, in flight included.
	CaptionQueueDepth(n int)
}

// NopRecorderObserver ignores everything.
type NopRecorderObserver struct{}

func (NopRecorderObserver) CaptionRecorded()                       {}
func (NopRecorderObserver) CaptionsStored(int)                     {}
func (NopRecorderObserver) CaptionsDropped(int)                    {}
func (NopRecorderObserver) CaptionBatch(int, time.Duration, error) {}
func (NopRecorderObserver) CaptionQueueDepth(int)                  {}

// RecorderConfig configures a Recorder. Zero fields take the defaults above.
type RecorderConfig struct {
	// QueueSize bounds the captions held in memory, the batch being
	// written included. Past it the oldest are dropped.
	QueueSize int
	// BatchSize is the most rows one SaveCaptions call gets.
	BatchSize int
	// FlushInterval is the longest a caption waits for its batch to fill.
	FlushInterval time.Duration
	// RetryMin and RetryMax bound the backoff between failed batches.
	RetryMin time.Duration
	RetryMax time.Duration
	Clock    Clock
	Observer RecorderObserver
	// Logger gets one line per drop burst and per store outage; nil discards.
	Logger *slog.Logger
}

func (c RecorderConfig) withDefaults() RecorderConfig {
	if c.QueueSize <= 0 {
		c.QueueSize = DefaultRecorderQueueSize
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultRecorderBatchSize
	}
	// A batch in flight may hold at most half the queue, so a caption that
	// arrives while it is written displaces an older queued one rather than
	// being the one lost.
	c.BatchSize = min(c.BatchSize, max(c.QueueSize/2, 1))
	if c.FlushInterval <= 0 {
		c.FlushInterval = DefaultRecorderFlushInterval
	}
	if c.RetryMin <= 0 {
		c.RetryMin = DefaultRecorderRetryMin
	}
	if c.RetryMax < c.RetryMin {
		c.RetryMax = max(DefaultRecorderRetryMax, c.RetryMin)
	}
	if c.Clock == nil {
		c.Clock = SystemClock{}
	}
	if c.Observer == nil {
		c.Observer = NopRecorderObserver{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Recorder hands captions to a ports.CaptionWriter off the ack path: Record
// only queues, and one goroutine writes batches, retrying with backoff while
// the store fails. It is a ports.CaptionSink, safe for concurrent use.
type Recorder struct {
	cfg    RecorderConfig
	writer ports.CaptionWriter

	mu        sync.Mutex
	queue     captionRing     // waiting, oldest first
	held      []ports.Caption // the batch being written or retried; older than queue
	inFlight  bool            // a SaveCaptions call holds held: it may not shrink
	flushDue  bool
	timerOn   bool
	stopTimer func() bool
	started   bool // Start has run: the writer goroutine owns done
	closing   bool
	stopped   bool // the writer has exited (or Close ran before Start): Record drops
	dropping  bool // inside a drop burst (since the last successful batch)
	burst     int  // rows dropped in the current burst

	wake    chan struct{} // wakes the writer; buffer 1
	runCtx  context.Context
	abandon context.CancelFunc // cancels runCtx when Close runs out of time
	done    chan struct{}
}

var _ ports.CaptionSink = (*Recorder)(nil)

// NewRecorder starts a recorder writing to w.
func NewRecorder(w ports.CaptionWriter, cfg RecorderConfig) *Recorder {
	r := PrepareRecorder(cfg)
	r.Start(w)
	return r
}

// PrepareRecorder returns a recorder that queues what Record hands it, within
// QueueSize, but writes nothing until Start gives it its writer: a server
// hands it to its streams when it is built, and opens the store later.
func PrepareRecorder(cfg RecorderConfig) *Recorder {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &Recorder{
		cfg:     cfg,
		queue:   newCaptionRing(cfg.QueueSize),
		wake:    make(chan struct{}, 1),
		runCtx:  ctx,
		abandon: cancel,
		done:    make(chan struct{}),
	}
}

// Start begins writing the queued captions, and every later one, to w. Only
// the first call counts, and none after Close.
func (r *Recorder) Start(w ports.CaptionWriter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.started || r.closing {
		return
	}
	r.started = true
	r.writer = w
	go r.run()
}

// Record queues c for writing. It never blocks on the store: when the
// queue is full the oldest caption not being written right now is dropped.
func (r *Recorder) Record(c ports.Caption) {
	r.cfg.Observer.CaptionRecorded()
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		r.cfg.Observer.CaptionsDropped(1)
		return
	}
	dropped := 0
	if r.queue.len()+len(r.held) >= r.cfg.QueueSize {
		dropped = 1
		switch {
		case !r.inFlight && len(r.held) > 0:
			r.held = r.held[1:]
			r.queue.push(c)
		case r.queue.len() > 0:
			r.queue.popFront()
			r.queue.push(c)
		default: // everything held is being written right now: the newcomer goes
		}
	} else {
		r.queue.push(c)
	}
	firstDrop := false
	if dropped > 0 {
		r.burst += dropped
		if !r.dropping {
			r.dropping, firstDrop = true, true
		}
	}
	depth := r.queue.len() + len(r.held)
	r.mu.Unlock()
	if dropped > 0 {
		r.cfg.Observer.CaptionsDropped(dropped)
		if firstDrop {
			r.cfg.Logger.Warn("caption queue full: dropping the oldest captions until the store catches up",
				"queue_size", r.cfg.QueueSize)
		}
	}
	r.cfg.Observer.CaptionQueueDepth(depth)
	r.wakeWriter()
}

// Close writes every queued caption and stops the writer. When ctx ends
// first, the write in progress is abandoned, the rest are counted as
// dropped and an error says how many were lost; so are those queued by a
// recorder that was never started. Record after Close drops.
func (r *Recorder) Close(ctx context.Context) error {
	r.mu.Lock()
	r.closing = true
	started := r.started
	if !started {
		r.stopped = true
	}
	r.mu.Unlock()
	if started {
		r.wakeWriter()
		select {
		case <-r.done:
		case <-ctx.Done():
			r.abandon()
			<-r.done
		}
	}
	r.abandon()
	r.mu.Lock()
	lost := r.queue.len() + len(r.held)
	r.queue = newCaptionRing(0)
	r.held = nil
	r.mu.Unlock()
	if lost > 0 {
		r.cfg.Observer.CaptionsDropped(lost)
		r.cfg.Observer.CaptionQueueDepth(0)
		// Said here, with the count, whatever the caller does with the error.
		r.cfg.Logger.Error("caption recorder stopped with captions unwritten", "dropped", lost, "err", context.Cause(ctx))
		if !started {
			return fmt.Errorf("caption recorder closed before it was started, with %d captions unwritten", lost)
		}
		return fmt.Errorf("caption recorder closed with %d captions unwritten: %w", lost, context.Cause(ctx))
	}
	return nil
}

func (r *Recorder) wakeWriter() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *Recorder) run() {
	defer close(r.done)
	defer func() {
		r.mu.Lock()
		r.stopped = true
		if r.timerOn {
			r.stopTimer()
			r.timerOn = false
		}
		r.mu.Unlock()
	}()
	for {
		if !r.nextBatch() {
			return
		}
		if !r.writeHeld() {
			return
		}
	}
}

// nextBatch waits until a batch is due and moves it into held. It reports
// false when the recorder is closing with nothing left, or abandoned.
func (r *Recorder) nextBatch() bool {
	for {
		r.mu.Lock()
		n := r.queue.len()
		if len(r.held) > 0 {
			r.mu.Unlock()
			return true
		}
		if n >= r.cfg.BatchSize || (n > 0 && (r.flushDue || r.closing)) {
			r.held = r.queue.popN(min(n, r.cfg.BatchSize))
			r.flushDue = false
			if r.timerOn {
				r.stopTimer()
				r.timerOn = false
			}
			r.mu.Unlock()
			return true
		}
		if n == 0 && r.closing {
			r.stopped = true
			r.mu.Unlock()
			return false
		}
		if n > 0 && !r.timerOn {
			r.timerOn = true
			r.stopTimer = r.cfg.Clock.AfterFunc(r.cfg.FlushInterval, func() {
				r.mu.Lock()
				r.flushDue, r.timerOn = true, false
				r.mu.Unlock()
				r.wakeWriter()
			})
		}
		r.mu.Unlock()
		select {
		case <-r.wake:
		case <-r.runCtx.Done():
			return false
		}
	}
}

// writeHeld writes held until it succeeds, is dropped to nothing, or the
// recorder is abandoned (false).
func (r *Recorder) writeHeld() bool {
	backoff := r.cfg.RetryMin
	failing := false
	for {
		r.mu.Lock()
		if len(r.held) == 0 {
			r.mu.Unlock()
			return true
		}
		batch := r.held
		r.inFlight = true
		r.mu.Unlock()

		start := r.cfg.Clock.Now()
		err := r.writer.SaveCaptions(r.runCtx, batch)
		took := r.cfg.Clock.Now().Sub(start)
		r.cfg.Observer.CaptionBatch(len(batch), took, err)

		r.mu.Lock()
		r.inFlight = false
		if err == nil {
			r.held = nil
			burst := r.burst
			r.dropping, r.burst = false, 0
			depth := r.queue.len()
			r.mu.Unlock()
			r.cfg.Observer.CaptionsStored(len(batch))
			r.cfg.Observer.CaptionQueueDepth(depth)
			if failing {
				r.cfg.Logger.Info("caption store is back; writing the queued captions")
			}
			if burst > 0 {
				r.cfg.Logger.Warn("caption drop burst ended", "dropped", burst)
			}
			return true
		}
		r.mu.Unlock()
		if r.runCtx.Err() != nil {
			return false
		}
		if !failing {
			failing = true
			r.cfg.Logger.Warn("caption store write failed; keeping the rows and retrying", "err", err, "rows", len(batch))
		}
		if !r.sleep(backoff) {
			return false
		}
		backoff = min(2*backoff, r.cfg.RetryMax)
	}
}

// sleep waits d on the Clock; false means the recorder was abandoned.
func (r *Recorder) sleep(d time.Duration) bool { return sleepClock(r.runCtx, r.cfg.Clock, d) }

// captionRing is a fixed-capacity FIFO of captions.
type captionRing struct {
	buf  []ports.Caption
	head int
	n    int
}

func newCaptionRing(capacity int) captionRing {
	return captionRing{buf: make([]ports.Caption, capacity)}
}

func (q *captionRing) len() int { return q.n }

func (q *captionRing) push(c ports.Caption) {
	q.buf[(q.head+q.n)%len(q.buf)] = c
	q.n++
}

func (q *captionRing) popFront() {
	q.buf[q.head] = ports.Caption{}
	q.head = (q.head + 1) % len(q.buf)
	q.n--
}

// popN removes and returns the k oldest captions in a fresh slice.
func (q *captionRing) popN(k int) []ports.Caption {
	out := make([]ports.Caption, k)
	for i := range out {
		out[i] = q.buf[q.head]
		q.popFront()
	}
	return out
}

// DefaultDevice is the device of a stream that names none.
const DefaultDevice = "default"

// ErrBadDevice is wrapped by DeviceID's error.
var ErrBadDevice = errors.New("device id must be 1-64 characters of A-Z a-z 0-9 . _ -")

// DevicePattern is the rule for device ids, as a regular expression.
const DevicePattern = `^[A-Za-z0-9._-]{1,64}$`

// ValidDevice reports whether s is a well-formed device id (DevicePattern).
func ValidDevice(s string) bool {
	if len(s) < 1 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9', b == '.', b == '_', b == '-':
		default:
			return false
		}
	}
	return true
}

// DeviceID vets the device a client named: empty means DefaultDevice.
func DeviceID(raw string) (string, error) {
	if raw == "" {
		return DefaultDevice, nil
	}
	if !ValidDevice(raw) {
		return "", ErrBadDevice
	}
	return raw, nil
}
