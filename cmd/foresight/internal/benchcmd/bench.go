// Package benchcmd implements `foresight bench`, a load generator for
// /vision/stream: many concurrent streams sending fixed-size frames at a set
// rate, measuring how fast acks come back.
//
// A run has two phases: connect (dials spread over --ramp, then connections
// held idle for --idle), then stream for --duration. Latency is only measured
// while streaming, so the connection storm does not pollute it.
package benchcmd

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/foresight-vision/foresight/adapters/protocol/visionclient"
	"github.com/foresight-vision/foresight/adapters/protocol/wire"
	"github.com/foresight-vision/foresight/internal/settings"
)

// Options are the load settings; flags fill them.
type Options struct {
	// URL of the stream endpoint (http(s) URLs are turned into ws(s)).
	URL string
	// Conns is the number of concurrent streams.
	Conns int
	// FPS is the send rate per stream.
	FPS float64
	// FrameBytes is the size of every frame.
	FrameBytes int
	// Duration is how long the streams send frames.
	Duration time.Duration
	// Mode is "lockstep" (send, wait for the ack, send) or "pipelined"
	// (send at FPS regardless of acks; acks matched to sends by number).
	Mode string
	// MagicWord is sent as query parameter magic_word.
	MagicWord string
	// Token is an access token sent as "Authorization: Bearer" on the
	// upgrade (env FORESIGHT_TOKEN); never printed.
	Token string
	// Ramp spreads the dials over this long (avoids SYN floods at 1000s).
	Ramp time.Duration
	// Idle holds the connected streams open without sending for this long
	// before streaming (to measure idle memory on the server).
	Idle time.Duration
	// JSON prints the report as one JSON object.
	JSON bool
}

// Modes.
const (
	ModeLockstep  = "lockstep"
	ModePipelined = "pipelined"
)

// drainTimeout bounds the wait for outstanding acks after the last send.
const drainTimeout = 5 * time.Second

// Latency is the ack latency summary, in milliseconds.
type Latency struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// Report is the result of a run; --json prints it as is.
type Report struct {
	URL             string  `json:"url"`
	Mode            string  `json:"mode"`
	Conns           int     `json:"conns"`
	FPS             float64 `json:"fps"`
	FrameBytes      int     `json:"frame_bytes"`
	DurationS       float64 `json:"duration_s"`
	Connected       int64   `json:"connected"`
	Failed          int64   `json:"failed"`
	FramesSent      int64   `json:"frames_sent"`
	Acks            int64   `json:"acks"`
	Captions        int64   `json:"captions"`
	InferenceErrors int64   `json:"inference_errors"`
	TransportErrors int64   `json:"transport_errors"`
	ElapsedS        float64 `json:"elapsed_s"`
	FramesPerS      float64 `json:"throughput_fps"`
	MBPerS          float64 `json:"throughput_mb_s"`
	Latency         Latency `json:"ack_latency"`
	FirstError      string  `json:"first_error,omitempty"`
}

// Run parses args (without the "bench" word) and runs the load. --help
// prints usage to stderr and returns nil.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	rep, err := bench(ctx, o, stderr)
	if err != nil {
		return err
	}
	if o.JSON {
		enc := json.NewEncoder(stdout)
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("bench: write report: %w", err)
		}
		return nil
	}
	printReport(stdout, rep)
	return nil
}

// Settings is the bench command's settings table (internal/settings,
// docs/configuration.md).
var Settings = []settings.Setting[Options]{
	{Flag: "url", Default: "ws://127.0.0.1:8080/vision/stream", Help: "WebSocket URL of /vision/stream",
		Apply: settings.String(func(o *Options) *string { return &o.URL })},
	{Flag: "conns", Default: "10", Help: "concurrent streams",
		Apply: settings.IntAtLeast(1, func(o *Options) *int { return &o.Conns })},
	{Flag: "fps", Default: "10", Help: "frames per second per stream",
		Apply: func(o *Options, v string) error {
			if err := settings.Float(0, func(o *Options) *float64 { return &o.FPS })(o, v); err != nil {
				return err
			}
			if o.FPS <= 0 {
				return fmt.Errorf("must be positive: %q", v)
			}
			return nil
		}},
	{Flag: "frame-bytes", Default: "20000", Help: "bytes per frame",
		Apply: settings.IntAtLeast(0, func(o *Options) *int { return &o.FrameBytes })},
	{Flag: "duration", Default: "10s", Help: "how long to stream",
		Apply: settings.Duration(func(o *Options) *time.Duration { return &o.Duration })},
	{Flag: "mode", Default: ModeLockstep, Help: "lockstep (wait for each ack) or pipelined (send at --fps, match acks by frame number)",
		Apply: func(o *Options, v string) error {
			if v != ModeLockstep && v != ModePipelined {
				return fmt.Errorf("--mode must be %s or %s, not %q", ModeLockstep, ModePipelined, v)
			}
			o.Mode = v
			return nil
		}},
	// The flag has no default: --help must never print the secret.
	{Flag: "magic-word", Envs: []string{"MAGIC_WORD"}, Secret: true, Help: "magic word, sent as query param",
		Apply: settings.String(func(o *Options) *string { return &o.MagicWord })},
	{Flag: "token", Envs: []string{"FORESIGHT_TOKEN"}, Secret: true, Help: "access token (foresight token create), sent as Authorization: Bearer on the upgrade; prefer the variable, a flag shows in the process list",
		Apply: settings.String(func(o *Options) *string { return &o.Token })},
	{Flag: "ramp", Default: "0s", Help: "spread connection set-up over this long (use ~1s per 500 conns)",
		Apply: settings.NonNegativeDuration(func(o *Options) *time.Duration { return &o.Ramp })},
	{Flag: "idle", Default: "0s", Help: "keep the connected streams idle this long before streaming",
		Apply: settings.NonNegativeDuration(func(o *Options) *time.Duration { return &o.Idle })},
	{Flag: "json", Default: "false", Help: "print the report as one JSON object",
		Apply: settings.Bool(func(o *Options) *bool { return &o.JSON })},
}

func parse(args []string, stderr io.Writer) (Options, error) {
	fs := flag.NewFlagSet("foresight bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: foresight bench [flags]\n\nLoad-test /vision/stream and report ack latency and throughput.\n\n")
		settings.PrintTable(fs.Output(), Settings)
	}
	var o Options
	if err := settings.Load(&o, Settings, fs, args, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, fmt.Errorf("bench: %w", err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("bench: unexpected arguments %q", fs.Args())
	}
	u, err := visionclient.NormalizeURL(o.URL)
	if err != nil {
		return o, fmt.Errorf("bench: %w", err)
	}
	o.URL = u
	return o, nil
}

// run holds the shared counters of one bench run.
type run struct {
	o     Options
	frame []byte
	lat   histogram

	connected, failed          atomic.Int64
	sent, acks, captions       atomic.Int64
	inferenceErrs, transportEr atomic.Int64
	firstErr                   atomic.Pointer[string]
}

func (r *run) fail(err error) {
	r.transportEr.Add(1)
	s := err.Error()
	r.firstErr.CompareAndSwap(nil, &s)
}

func (r *run) onAck(a visionclient.Ack) {
	r.acks.Add(1)
	if a.HasCaption {
		r.captions.Add(1)
	}
	if _, ok := a.Fields[wire.AckInferenceError]; ok {
		r.inferenceErrs.Add(1)
	}
}

func bench(ctx context.Context, o Options, stderr io.Writer) (Report, error) {
	r := &run{o: o, frame: make([]byte, o.FrameBytes)}
	_, _ = rand.Read(r.frame)
	if len(r.frame) >= 4 { // look like a JPEG to anyone peeking
		copy(r.frame, []byte{0xff, 0xd8})
		copy(r.frame[len(r.frame)-2:], []byte{0xff, 0xd9})
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	prog := newProgress(stderr, r)
	defer prog.stop()

	// Phase 1: connect, spread over the ramp.
	conns := make([]*visionclient.Conn, o.Conns)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range conns {
		if o.Ramp > 0 {
			at := start.Add(time.Duration(int64(o.Ramp) * int64(i) / int64(o.Conns)))
			if !sleepUntil(ctx, at) {
				break
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
			defer dcancel()
			c, err := visionclient.Dial(dctx, o.URL, visionclient.Options{MagicWord: o.MagicWord, Token: o.Token})
			if err != nil {
				r.failed.Add(1)
				s := err.Error()
				r.firstErr.CompareAndSwap(nil, &s)
				return
			}
			r.connected.Add(1)
			conns[i] = c
		}()
	}
	wg.Wait()
	prog.phase("idle")
	sleepUntil(ctx, time.Now().Add(o.Idle))

	// Phase 2: stream until the deadline, each stream starting at a random
	// offset within one frame interval so they do not send in lock-step.
	prog.phase("stream")
	interval := time.Duration(float64(time.Second) / o.FPS)
	streamStart := time.Now()
	end := streamStart.Add(o.Duration)
	for i, c := range conns {
		if c == nil {
			continue
		}
		wg.Add(1)
		offset := time.Duration(int64(interval) * int64(i%997) / 997)
		go func() {
			defer wg.Done()
			if o.Mode == ModePipelined {
				r.pipelined(ctx, c, streamStart.Add(offset), end, interval)
			} else {
				r.lockstep(ctx, c, streamStart.Add(offset), end, interval)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(streamStart)
	prog.stop()

	rep := Report{
		URL: visionclient.RedactURL(o.URL), Mode: o.Mode, Conns: o.Conns, FPS: o.FPS,
		FrameBytes: o.FrameBytes, DurationS: o.Duration.Seconds(),
		Connected: r.connected.Load(), Failed: r.failed.Load(),
		FramesSent: r.sent.Load(), Acks: r.acks.Load(), Captions: r.captions.Load(),
		InferenceErrors: r.inferenceErrs.Load(), TransportErrors: r.transportEr.Load(),
		ElapsedS: elapsed.Seconds(),
		Latency: Latency{
			P50: ms(r.lat.quantile(0.50)), P90: ms(r.lat.quantile(0.90)), P99: ms(r.lat.quantile(0.99)),
			Max: ms(r.lat.max()), Mean: ms(r.lat.mean()),
		},
	}
	if s := r.firstErr.Load(); s != nil {
		rep.FirstError = *s
	}
	// Over the measured time: the requested duration leaves out waiting
	// for the last acks, and a cancelled run streams for less.
	if secs := elapsed.Seconds(); secs > 0 {
		rep.FramesPerS = float64(rep.Acks) / secs
		rep.MBPerS = float64(rep.Acks) * float64(o.FrameBytes) / 1e6 / secs
	}
	return rep, nil
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// sleepUntil waits until t or ctx is done; it reports whether ctx is alive.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// lockstep sends a frame, waits for its ack, and sends the next at the
// following tick (immediately if the ack came back late, without catching up).
func (r *run) lockstep(ctx context.Context, c *visionclient.Conn, first, end time.Time, interval time.Duration) {
	stop := context.AfterFunc(ctx, func() { _ = c.Abort() })
	defer stop()
	next := first
	for sleepUntil(ctx, next) && time.Now().Before(end) {
		t0 := time.Now()
		if err := c.SendFrame(r.frame); err != nil {
			if ctx.Err() == nil {
				r.fail(err)
			}
			_ = c.Abort()
			return
		}
		r.sent.Add(1)
		a, err := c.ReadAck()
		if err != nil {
			if ctx.Err() == nil {
				r.fail(fmt.Errorf("read ack: %w", err))
			}
			_ = c.Abort()
			return
		}
		r.lat.record(time.Since(t0))
		r.onAck(a)
		next = next.Add(interval)
		if now := time.Now(); next.Before(now) {
			next = now
		}
	}
	if err := c.Close(); err != nil && ctx.Err() == nil {
		r.fail(err)
	}
}

// ringSize bounds the acks a pipelined stream may owe; past it the writer
// skips ticks instead of queueing without bound.
const ringSize = 1024

// pipelined sends on a fixed tick from one goroutine and reads acks on
// another, matching each ack to its send time by frame number.
func (r *run) pipelined(ctx context.Context, c *visionclient.Conn, first, end time.Time, interval time.Duration) {
	stop := context.AfterFunc(ctx, func() { _ = c.Abort() })
	defer stop()
	var sendAt [ringSize]atomic.Int64
	var sent, acked atomic.Int64
	allAcked := make(chan struct{}, 1)
	writerDone := make(chan struct{})
	readerDone := make(chan struct{})

	go func() {
		defer close(readerDone)
		for {
			a, err := c.ReadAck()
			if err != nil {
				select {
				case <-writerDone:
					if acked.Load() == sent.Load() {
						return // everything acked: this is our own Close ending the read
					}
				default:
				}
				if ctx.Err() == nil {
					r.fail(fmt.Errorf("read ack: %w", err))
				}
				_ = c.Abort()
				return
			}
			if a.Frame >= 1 && a.Frame <= sent.Load() {
				r.lat.record(time.Duration(time.Now().UnixNano() - sendAt[(a.Frame-1)%ringSize].Load()))
			}
			r.onAck(a)
			if n := acked.Add(1); n == sent.Load() {
				select {
				case <-writerDone:
					select {
					case allAcked <- struct{}{}:
					default:
					}
				default:
				}
			}
		}
	}()

	next := first
	for sleepUntil(ctx, next) && time.Now().Before(end) {
		next = next.Add(interval)
		if now := time.Now(); next.Before(now) {
			next = now
		}
		n := sent.Load()
		if n-acked.Load() >= ringSize {
			continue // too far behind: skip this tick
		}
		sendAt[n%ringSize].Store(time.Now().UnixNano())
		sent.Store(n + 1) // before the send, so a fast ack finds it
		if err := c.SendFrame(r.frame); err != nil {
			sent.Store(n)
			if ctx.Err() == nil {
				r.fail(err)
			}
			_ = c.Abort()
			break
		}
		r.sent.Add(1)
	}
	close(writerDone)
	if acked.Load() < sent.Load() {
		t := time.NewTimer(drainTimeout)
		select {
		case <-allAcked:
		case <-readerDone:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	if err := c.Close(); err != nil && ctx.Err() == nil {
		r.fail(err)
	}
	<-readerDone
}

func printReport(w io.Writer, r Report) {
	fmt.Fprintf(w, "url              %s\n", r.URL)
	fmt.Fprintf(w, "mode             %s, %d streams x %g fps x %d B for %gs\n", r.Mode, r.Conns, r.FPS, r.FrameBytes, r.DurationS)
	fmt.Fprintf(w, "streams          %d connected, %d failed\n", r.Connected, r.Failed)
	fmt.Fprintf(w, "frames           %d sent, %d acked, %d captions\n", r.FramesSent, r.Acks, r.Captions)
	fmt.Fprintf(w, "errors           %d inference, %d transport\n", r.InferenceErrors, r.TransportErrors)
	fmt.Fprintf(w, "throughput       %.1f frames/s, %.2f MB/s\n", r.FramesPerS, r.MBPerS)
	fmt.Fprintf(w, "ack latency      p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms (mean %.3f ms)\n",
		r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max, r.Latency.Mean)
	if r.FirstError != "" {
		fmt.Fprintf(w, "first error      %s\n", r.FirstError)
	}
}
