// Package domaintest provides fakes for testing code built on the domain:
// a Clock the test moves by hand and a scriptable inference backend that
// records what it is asked. Like the standard library's *test packages, it is meant to be
// imported by tests.
package domaintest

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/foresight-vision/foresight/ports"
)

// Clock is a manual clock: time stands still until Advance.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*timer
}

type timer struct {
	at      time.Time
	f       func()
	stopped bool
}

// NewClock returns a Clock set to an arbitrary fixed instant.
func NewClock() *Clock {
	return &Clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc schedules f to run (in its own goroutine) once Advance passes d.
func (c *Clock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.stopped
		t.stopped = true
		return was
	}
}

// Advance moves time forward by d and fires the timers that fall due, in
// order. It waits for the fired functions to return.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*timer
	kept := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stopped:
		case !t.at.After(c.now):
			t.stopped = true
			due = append(due, t)
		default:
			kept = append(kept, t)
		}
	}
	c.timers = kept
	c.mu.Unlock()
	sort.Slice(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, t := range due {
		t.f()
	}
}

// PendingTimers counts the timers not yet fired or stopped.
func (c *Clock) PendingTimers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.stopped {
			n++
		}
	}
	return n
}

// InferFunc answers one chunk; it must honour ctx.
type InferFunc func(ctx context.Context, chunk ports.Chunk) (ports.Result, error)

// Backend is a scriptable ports.InferenceBackend. The zero value opens
// sessions that answer every chunk with an empty result.
type Backend struct {
	// Open, when set, runs before a session is handed out; an error fails
	// the open. It must honour ctx.
	Open func(ctx context.Context, req ports.SessionRequest) error
	// Infer, when set, answers chunks; nil answers ports.Result{}.
	Infer InferFunc

	mu       sync.Mutex
	sessions []*Session
}

// OpenSession implements ports.InferenceBackend.
func (b *Backend) OpenSession(ctx context.Context, req ports.SessionRequest) (ports.InferenceSession, error) {
	if b.Open != nil {
		if err := b.Open(ctx, req); err != nil {
			return nil, err
		}
	}
	s := &Session{req: req, infer: b.Infer}
	b.mu.Lock()
	b.sessions = append(b.sessions, s)
	b.mu.Unlock()
	return s, nil
}

// Sessions returns the sessions opened so far.
func (b *Backend) Sessions() []*Session {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*Session(nil), b.sessions...)
}

// Session is a session opened by Backend; it records its calls.
type Session struct {
	req   ports.SessionRequest
	infer InferFunc

	mu       sync.Mutex
	chunks   []ports.Chunk
	closes   int
	inFlight int
	maxInFly int
}

// Request returns what the session was opened with.
func (s *Session) Request() ports.SessionRequest { return s.req }

// InferChunk implements ports.InferenceSession.
func (s *Session) InferChunk(ctx context.Context, chunk ports.Chunk) (ports.Result, error) {
	s.mu.Lock()
	s.chunks = append(s.chunks, chunk)
	s.inFlight++
	s.maxInFly = max(s.maxInFly, s.inFlight)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	if s.infer == nil {
		return ports.Result{}, nil
	}
	return s.infer(ctx, chunk)
}

// Close implements ports.InferenceSession.
func (s *Session) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closes++
	return nil
}

// Chunks returns the chunks received so far.
func (s *Session) Chunks() []ports.Chunk {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ports.Chunk(nil), s.chunks...)
}

// Closes counts Close calls.
func (s *Session) Closes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closes
}

// MaxConcurrentCalls is the most InferChunk calls seen running at once.
func (s *Session) MaxConcurrentCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFly
}

// Gate is an InferFunc helper: each call blocks until the test releases it
// with a result, or until ctx is done.
type Gate struct {
	ch chan gateReply
}

type gateReply struct {
	res ports.Result
	err error
}

// NewGate returns a Gate.
func NewGate() *Gate { return &Gate{ch: make(chan gateReply)} }

// Infer is the InferFunc: it waits for Release or ctx.
func (g *Gate) Infer(ctx context.Context, _ ports.Chunk) (ports.Result, error) {
	select {
	case r := <-g.ch:
		return r.res, r.err
	case <-ctx.Done():
		return ports.Result{}, context.Cause(ctx)
	}
}

// Release lets one waiting call return res and err; it blocks until a call
// takes it.
func (g *Gate) Release(res ports.Result, err error) { g.ch <- gateReply{res, err} }
