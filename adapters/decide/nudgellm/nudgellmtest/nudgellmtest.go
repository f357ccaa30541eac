// Package nudgellmtest is a fake OpenAI-compatible chat completion server on
// loopback, for testing the nudge decider and what is built on it. Like
// net/http/httptest, it is meant to be imported by tests.
package nudgellmtest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
)

// Request is one chat completion request the server received.
type Request struct {
	Path          string
	Authorization string
	// Body is the decoded JSON body; Raw the bytes as sent.
	Body map[string]any
	Raw  []byte
}

// Messages returns the request's messages as role and content pairs.
func (r Request) Messages() [][2]string {
	msgs, _ := r.Body["messages"].([]any)
	out := make([][2]string, 0, len(msgs))
	for _, m := range msgs {
		mm, _ := m.(map[string]any)
		role, _ := mm["role"].(string)
		content, _ := mm["content"].(string)
		out = append(out, [2]string{role, content})
	}
	return out
}

// Server answers POST …/chat/completions as the script says: by default
// with the content {"decision":"no","reasoning":"nothing to do","nudge":null}.
type Server struct {
	srv *httptest.Server

	mu       sync.Mutex
	requests []Request
	content  string
	refusal  string
	status   int
	errBody  string
	stall    bool
	model    string
}

// NewServer starts a server; Close it when done.
func NewServer() *Server {
	s := &Server{content: `{"decision":"no","reasoning":"nothing to do","nudge":null}`, model: "fake-model"}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// BaseURL is the API root to configure clients with.
func (s *Server) BaseURL() string { return s.srv.URL + "/v1" }

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// AnswerContent makes later replies carry content as the assistant's
// message (status 200).
func (s *Server) AnswerContent(content string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.content, s.refusal, s.status, s.stall = content, "", 0, false
}

// AnswerRefusal makes later replies refuse with text (status 200, no content).
func (s *Server) AnswerRefusal(text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.content, s.refusal, s.status, s.stall = "", text, 0, false
}

// AnswerYes makes later replies decide yes with nudge.
func (s *Server) AnswerYes(nudge string) {
	b, _ := json.Marshal(map[string]any{"decision": "yes", "reasoning": "the wearer could use a nudge", "nudge": nudge})
	s.AnswerContent(string(b))
}

// AnswerNo makes later replies decide no.
func (s *Server) AnswerNo() {
	s.AnswerContent(`{"decision":"no","reasoning":"nothing to do","nudge":null}`)
}

// AnswerStatus makes later replies fail with status and an OpenAI-shaped
// error carrying message.
func (s *Server) AnswerStatus(status int, message string) {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": message, "type": "invalid_request_error"}})
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.errBody, s.stall = status, string(b), false
}

// Stall makes later requests hang until the client gives up.
func (s *Server) Stall() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stall = true
}

// Requests returns the requests received, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	req := Request{Path: r.URL.Path, Authorization: r.Header.Get("Authorization"), Raw: raw}
	_ = json.Unmarshal(raw, &req.Body)
	s.mu.Lock()
	s.requests = append(s.requests, req)
	content, refusal, status, errBody, stall, model := s.content, s.refusal, s.status, s.errBody, s.stall, s.model
	s.mu.Unlock()

	if r.Method != http.MethodPost || r.URL.Path != "/v1/chat/completions" {
		http.Error(w, `{"error":{"message":"not found"}}`, http.StatusNotFound)
		return
	}
	if stall {
		<-r.Context().Done()
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if status != 0 {
		w.WriteHeader(status)
		_, _ = io.WriteString(w, errBody)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": model,
		"choices": []any{map[string]any{
			"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": content, "refusal": refusal},
		}},
		"usage": map[string]any{"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150},
	})
}
