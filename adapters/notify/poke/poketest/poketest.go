// Package poketest provides a fake Poke webhook for tests, in the manner of
// net/http/httptest: a loopback HTTP server that records every request and
// can be told to fail, reject keys, reply with arbitrary bodies or stall.
//
// By default it accepts any Bearer token on POST WebhookPath with a JSON body
// {"message": "<string>"} and replies 200 with DefaultReply.
package poketest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// WebhookPath is the path Poke's inbound-SMS webhook is served on.
const WebhookPath = "/api/v1/inbound-sms/webhook"

// DefaultReply is the body of a successful reply unless SetReply changes it.
const DefaultReply = `{"success":true,"message":"Message queued for delivery"}`

// Request is one request the fake received, recorded before any delay or
// failure is applied (so rejected requests are recorded too).
type Request struct {
	Method        string
	Path          string
	Authorization string // the raw Authorization header, e.g. "Bearer k"
	ContentType   string
	Accept        string
	// Message is the decoded "message" field; empty when the body was not
	// a JSON object with a string message (see Body).
	Message string
	// Body is the raw request body.
	Body []byte
}

type reply struct {
	status int
	body   string
}

// Server is a fake Poke. Its methods are safe for concurrent use.
type Server struct {
	srv *httptest.Server

	mu       sync.Mutex
	reqs     []Request
	def      reply   // reply used when no one-shot failure is queued
	next     []reply // one-shot replies queued by FailNext, oldest first
	delay    time.Duration
	validKey string

	done      chan struct{} // closed by Close, ends pending delays
	closeOnce sync.Once
}

// NewServer starts a fake Poke on 127.0.0.1. Callers must Close it.
func NewServer() *Server {
	s := &Server{
		def:  reply{status: http.StatusOK, body: DefaultReply},
		done: make(chan struct{}),
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	return s
}

// URL returns the webhook URL, to use as the poke client's Config.URL.
func (s *Server) URL() string { return s.srv.URL + WebhookPath }

// BaseURL returns the server root, e.g. "http://127.0.0.1:40123".
func (s *Server) BaseURL() string { return s.srv.URL }

// Close ends pending delays, then shuts the server down and waits for its
// handlers to return. It is safe to call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.done)
		s.srv.Close()
	})
}

// Requests returns a copy of the requests received so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.reqs))
	copy(out, s.reqs)
	return out
}

// SetReply makes every later accepted request get 200 with body. The body
// need not be valid JSON (to test clients); replies that are valid JSON are
// sent as application/json, others as text/plain.
func (s *Server) SetReply(body string) {
	s.SetStatus(http.StatusOK, body)
}

// SetStatus makes every later accepted request get code with body, until
// changed again. Use it for lasting failures such as an outage.
func (s *Server) SetStatus(code int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.def = reply{status: code, body: body}
}

// FailNext queues a one-shot reply: the next accepted request gets code
// with body, then the server returns to its usual reply. Calls queue up.
func (s *Server) FailNext(code int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next = append(s.next, reply{status: code, body: body})
}

// SetDelay makes every later request wait d before it is answered. The wait
// ends early when the client gives up or the server closes, so a stalled
// client leaks nothing.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// SetValidKey makes the server accept only "Bearer <key>" and answer 401 to
// any other token. An empty key accepts any non-empty token again.
func (s *Server) SetValidKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.validKey = key
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	rec := Request{
		Method:        r.Method,
		Path:          r.URL.Path,
		Authorization: r.Header.Get("Authorization"),
		ContentType:   r.Header.Get("Content-Type"),
		Accept:        r.Header.Get("Accept"),
		Body:          body,
	}
	var msg struct {
		Message *string `json:"message"`
	}
	msgOK := json.Unmarshal(body, &msg) == nil && msg.Message != nil
	if msgOK {
		rec.Message = *msg.Message
	}

	s.mu.Lock()
	s.reqs = append(s.reqs, rec)
	delay, validKey := s.delay, s.validKey
	s.mu.Unlock()

	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		case <-s.done:
			t.Stop()
			return
		}
	}

	switch {
	case r.URL.Path != WebhookPath:
		write(w, http.StatusNotFound, `{"error":"Not Found"}`)
		return
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", http.MethodPost)
		write(w, http.StatusMethodNotAllowed, `{"error":"Method Not Allowed"}`)
		return
	}
	token, ok := strings.CutPrefix(rec.Authorization, "Bearer ")
	if !ok || token == "" || (validKey != "" && token != validKey) {
		write(w, http.StatusUnauthorized, `{"error":"Unauthorized"}`)
		return
	}
	if !msgOK {
		write(w, http.StatusBadRequest, `{"error":"message is required"}`)
		return
	}

	s.mu.Lock()
	rep := s.def
	if len(s.next) > 0 {
		rep, s.next = s.next[0], s.next[1:]
	}
	s.mu.Unlock()
	write(w, rep.status, rep.body)
}

func write(w http.ResponseWriter, status int, body string) {
	if json.Valid([]byte(body)) {
		w.Header().Set("Content-Type", "application/json")
	} else {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}
