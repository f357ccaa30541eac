// Package openaitest is a fake OpenAI-compatible chat-completions server on
// an httptest server, in the manner of net/http/httptest: it checks each
// request's shape the way Foresight sends it (one user message: a text part,
// then JPEG frames as data-URL image parts), records what it got, and
// answers with scripted captions, or fails, stalls or rate-limits on demand.
package openaitest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
)

// MaxBodyBytes bounds a request body; larger ones get 413.
const MaxBodyBytes = 32 << 20

const dataURLPrefix = "data:image/jpeg;base64,"

// Request is one well-formed request the server received.
type Request struct {
	Path  string // "/v1/chat/completions" or "/chat/completions"
	Model string
	// Authorization is the header's value; HasAuthorization tells an absent
	// header from an empty one.
	Authorization    string
	HasAuthorization bool
	// Text is the text part of the user message.
	Text string
	// Images are the image parts' bytes, decoded from their data URLs, in order.
	Images      [][]byte
	MaxTokens   int
	Temperature *float64
}

// Response scripts one answer. The zero Response answers with the default
// caption.
type Response struct {
	// Caption is the reply's text (choices[0].message.content).
	Caption string
	// CompletionTokens is usage.completion_tokens; zero means one per word
	// of Caption.
	CompletionTokens int
	// Status, when not 0 or 200, fails the request with it and Body.
	Status int
	// Body is the failure's body; empty means an OpenAI-shaped error.
	Body string
	// RetryAfter is sent as the Retry-After header (seconds or HTTP date).
	RetryAfter string
	// Stall holds the request until the client gives up or the server closes.
	Stall bool
	// StoppedEarly answers as Ollama does when it stops a model that
	// repeats itself: 200 with Caption as the partial reply, finish_reason
	// null and every usage field 0.
	StoppedEarly bool
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL to configure, ending in "/v1".
	URL string

	srv     *httptest.Server
	closing chan struct{}

	mu       sync.Mutex
	requests []Request
	rejected []string
	queue    []Response
	respond  func(Request) Response
	arrived  chan struct{} // closed and replaced on every request
}

// NewServer starts a server on 127.0.0.1. Until told otherwise it answers
// request n (from 1) with the caption "caption n".
func NewServer() *Server {
	s := &Server{closing: make(chan struct{}), arrived: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL + "/v1"
	return s
}

// RootURL is the server's address without "/v1" (it answers there too).
func (s *Server) RootURL() string { return s.srv.URL }

// Close releases stalled requests and shuts the server down.
func (s *Server) Close() {
	select {
	case <-s.closing:
	default:
		close(s.closing)
	}
	s.srv.Close()
}

// Respond sets the answer to requests when no queued Response is left.
func (s *Server) Respond(f func(Request) Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.respond = f
}

// Enqueue queues answers for the next requests, first in first out.
func (s *Server) Enqueue(rs ...Response) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queue = append(s.queue, rs...)
}

// Requests returns the well-formed requests so far, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Rejected returns why each malformed request was refused, oldest first.
func (s *Server) Rejected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.rejected...)
}

// WaitRequests blocks until n well-formed requests have arrived (answered
// or not) or ctx ends.
func (s *Server) WaitRequests(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		got, arrived := len(s.requests), s.arrived
		s.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-arrived:
		case <-ctx.Done():
			return fmt.Errorf("waiting for request %d of %d: %w", got+1, n, ctx.Err())
		}
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/chat/completions" && r.URL.Path != "/chat/completions" {
		s.reject(w, http.StatusNotFound, "no route "+r.URL.Path)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		s.reject(w, http.StatusMethodNotAllowed, "method "+r.Method)
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		s.reject(w, http.StatusUnsupportedMediaType, "content type "+r.Header.Get("Content-Type"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.reject(w, http.StatusRequestEntityTooLarge, "body too large")
			return
		}
		s.reject(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	req, status, why := parse(body)
	if status != 0 {
		s.reject(w, status, why)
		return
	}
	req.Path = r.URL.Path
	req.Authorization = r.Header.Get("Authorization")
	_, req.HasAuthorization = r.Header["Authorization"]

	s.mu.Lock()
	s.requests = append(s.requests, req)
	n := len(s.requests)
	close(s.arrived)
	s.arrived = make(chan struct{})
	var resp Response
	switch {
	case len(s.queue) > 0:
		resp = s.queue[0]
		s.queue = s.queue[1:]
	case s.respond != nil:
		resp = s.respond(req)
	default:
		resp = Response{Caption: "caption " + strconv.Itoa(n)}
	}
	s.mu.Unlock()
	s.answer(w, r, req, resp, n)
}

func (s *Server) answer(w http.ResponseWriter, r *http.Request, req Request, resp Response, n int) {
	if resp.Stall {
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
		return
	}
	if resp.RetryAfter != "" {
		w.Header().Set("Retry-After", resp.RetryAfter)
	}
	if resp.Status != 0 && resp.Status != http.StatusOK {
		body := resp.Body
		if body == "" {
			body = errorJSON(http.StatusText(resp.Status))
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(resp.Status)
		_, _ = io.WriteString(w, body)
		return
	}
	tokens := resp.CompletionTokens
	if tokens == 0 {
		tokens = len(strings.Fields(resp.Caption))
	}
	var finish any = "stop"
	usage := map[string]any{
		"prompt_tokens":     len(req.Images) * 256,
		"completion_tokens": tokens,
		"total_tokens":      len(req.Images)*256 + tokens,
	}
	if resp.StoppedEarly {
		finish = nil
		usage = map[string]any{"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
	}
	reply := map[string]any{
		"id":      "chatcmpl-test-" + strconv.Itoa(n),
		"object":  "chat.completion",
		"created": 1700000000,
		"model":   req.Model,
		"choices": []any{map[string]any{
			"index":         0,
			"message":       map[string]any{"role": "assistant", "content": resp.Caption},
			"finish_reason": finish,
		}},
		"usage": usage,
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(reply)
}

func (s *Server) reject(w http.ResponseWriter, status int, why string) {
	s.mu.Lock()
	s.rejected = append(s.rejected, why)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, errorJSON(why))
}

func errorJSON(message string) string {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{
		"message": message, "type": "invalid_request_error", "param": nil, "code": nil,
	}})
	return string(b)
}

// wire is the part of a chat-completions request Foresight sends.
type wire struct {
	Model       *string   `json:"model"`
	Messages    []message `json:"messages"`
	MaxTokens   *int      `json:"max_tokens"`
	Temperature *float64  `json:"temperature"`
	Stream      bool      `json:"stream"`
}

type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type part struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL *struct {
		URL string `json:"url"`
	} `json:"image_url"`
}

// parse checks the request's shape: 400 for what is not a chat-completions
// request at all, 422 for one that is not the shape Foresight sends.
func parse(body []byte) (Request, int, string) {
	var w wire
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&w); err != nil {
		return Request{}, http.StatusBadRequest, "body is not JSON: " + err.Error()
	}
	if w.Model == nil || *w.Model == "" {
		return Request{}, http.StatusBadRequest, "model is required"
	}
	if len(w.Messages) == 0 {
		return Request{}, http.StatusBadRequest, "messages is required"
	}
	if w.Stream {
		return Request{}, http.StatusUnprocessableEntity, "stream must be off"
	}
	if len(w.Messages) != 1 || w.Messages[0].Role != "user" {
		return Request{}, http.StatusUnprocessableEntity, "want exactly one user message"
	}
	var parts []part
	if err := json.Unmarshal(w.Messages[0].Content, &parts); err != nil {
		return Request{}, http.StatusUnprocessableEntity, "content must be an array of parts"
	}
	if len(parts) < 2 {
		return Request{}, http.StatusUnprocessableEntity, "want a text part and at least one image"
	}
	if parts[0].Type != "text" || strings.TrimSpace(parts[0].Text) == "" {
		return Request{}, http.StatusUnprocessableEntity, "the first part must be non-empty text"
	}
	req := Request{Model: *w.Model, Text: parts[0].Text, Temperature: w.Temperature}
	if w.MaxTokens != nil {
		if *w.MaxTokens <= 0 {
			return Request{}, http.StatusUnprocessableEntity, "max_tokens must be positive"
		}
		req.MaxTokens = *w.MaxTokens
	}
	for i, p := range parts[1:] {
		if p.Type != "image_url" || p.ImageURL == nil {
			return Request{}, http.StatusUnprocessableEntity, fmt.Sprintf("part %d: want image_url", i+1)
		}
		data, ok := strings.CutPrefix(p.ImageURL.URL, dataURLPrefix)
		if !ok {
			return Request{}, http.StatusUnprocessableEntity, fmt.Sprintf("part %d: want a %s… URL", i+1, dataURLPrefix)
		}
		img, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			return Request{}, http.StatusUnprocessableEntity, fmt.Sprintf("part %d: bad base64", i+1)
		}
		if !bytes.HasPrefix(img, []byte{0xFF, 0xD8, 0xFF}) {
			return Request{}, http.StatusUnprocessableEntity, fmt.Sprintf("part %d: not a JPEG", i+1)
		}
		req.Images = append(req.Images, img)
	}
	return req, 0, ""
}
