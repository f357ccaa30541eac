// Package openaichattest is a fake OpenAI-compatible server on an httptest
// server for the ask feature: /v1/chat/completions (plain or streamed as
// server-sent events) answers scripted text and records each request's
// messages; /v1/embeddings answers vectors from a tiny concept table, so
// texts that share a meaning but no word ("lunch", "sandwich") come out
// near each other.
package openaichattest

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
	"unicode"
)

// MaxBodyBytes bounds a request body; larger ones get 413.
const MaxBodyBytes = 8 << 20

// Message is one chat message as received.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ChatRequest is one chat completion request received.
type ChatRequest struct {
	Model         string
	Authorization string
	Stream        bool
	Messages      []Message
}

// User is the last user message's text.
func (r ChatRequest) User() string {
	for i := len(r.Messages) - 1; i >= 0; i-- {
		if r.Messages[i].Role == "user" {
			return r.Messages[i].Content
		}
	}
	return ""
}

// ChatResponse scripts one answer.
type ChatResponse struct {
	// Pieces are the answer's parts, one streamed event each; joined when
	// the request is not streamed.
	Pieces []string
	// Status, when not 0 or 200, fails the request with it and Body.
	Status int
	Body   string
	// Stall holds the request until the client gives up or the server closes.
	Stall bool
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL to configure, ending in "/v1".
	URL string

	srv     *httptest.Server
	closing chan struct{}

	mu          sync.Mutex
	chats       []ChatRequest
	respond     func(ChatRequest) ChatResponse
	embedInputs [][]string
	embedFail   int // the next embedFail embeddings requests answer 500
	embedAuth   []string
}

// NewServer starts a server on 127.0.0.1. Until told otherwise it answers
// every question with "It is in caption [1]." in three pieces.
func NewServer() *Server {
	s := &Server{closing: make(chan struct{})}
	s.respond = func(ChatRequest) ChatResponse {
		return ChatResponse{Pieces: []string{"It is ", "in caption ", "[1]."}}
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL + "/v1"
	return s
}

// Close releases stalled requests and shuts the server down.
func (s *Server) Close() {
	s.mu.Lock()
	select {
	case <-s.closing:
	default:
		close(s.closing)
	}
	s.mu.Unlock()
	s.srv.Close()
}

// Respond sets how chat requests are answered.
func (s *Server) Respond(f func(ChatRequest) ChatResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.respond = f
}

// Chats returns the chat requests so far, oldest first.
func (s *Server) Chats() []ChatRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ChatRequest(nil), s.chats...)
}

// EmbedInputs returns the inputs of each embeddings request so far.
func (s *Server) EmbedInputs() [][]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]string(nil), s.embedInputs...)
}

// EmbedAuthorizations returns the Authorization header of each embeddings request.
func (s *Server) EmbedAuthorizations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.embedAuth...)
}

// FailEmbeddings makes the next n embeddings requests answer 500.
func (s *Server) FailEmbeddings(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.embedFail = n
}

// WaitEmbedded polls (bounded by ctx) until the texts embedded so far hold
// every one of want.
func (s *Server) WaitEmbedded(ctx context.Context, want ...string) error {
	for {
		got := map[string]bool{}
		for _, in := range s.EmbedInputs() {
			for _, t := range in {
				got[t] = true
			}
		}
		missing := ""
		for _, w := range want {
			if !got[w] {
				missing = w
				break
			}
		}
		if missing == "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%q was not embedded: %w", missing, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	switch strings.TrimPrefix(r.URL.Path, "/v1") {
	case "/chat/completions":
		s.chat(w, r, body)
	case "/embeddings":
		s.embeddings(w, r, body)
	default:
		http.Error(w, "no route "+r.URL.Path, http.StatusNotFound)
	}
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request, body []byte) {
	var in struct {
		Model    string    `json:"model"`
		Stream   bool      `json:"stream"`
		Messages []Message `json:"messages"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.Model == "" || len(in.Messages) == 0 {
		http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
		return
	}
	req := ChatRequest{Model: in.Model, Authorization: r.Header.Get("Authorization"), Stream: in.Stream, Messages: in.Messages}
	s.mu.Lock()
	s.chats = append(s.chats, req)
	respond := s.respond
	s.mu.Unlock()
	resp := respond(req)
	if resp.Stall {
		select {
		case <-r.Context().Done():
		case <-s.closing:
		}
		return
	}
	if resp.Status != 0 && resp.Status != http.StatusOK {
		if resp.Body == "" {
			resp.Body = `{"error":{"message":"scripted failure","type":"server_error"}}`
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.Status)
		_, _ = io.WriteString(w, resp.Body)
		return
	}
	if !in.Stream {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"id": "chatcmpl-test", "object": "chat.completion", "model": in.Model,
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": strings.Join(resp.Pieces, "")}}},
		})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	flusher, _ := w.(http.Flusher)
	for _, p := range resp.Pieces {
		event, _ := json.Marshal(map[string]any{
			"id": "chatcmpl-test", "object": "chat.completion.chunk", "model": in.Model,
			"choices": []any{map[string]any{"index": 0, "delta": map[string]any{"content": p}}},
		})
		_, _ = fmt.Fprintf(w, "data: %s\n\n", event)
		if flusher != nil {
			flusher.Flush()
		}
	}
	_, _ = io.WriteString(w, "data: [DONE]\n\n")
}

func (s *Server) embeddings(w http.ResponseWriter, r *http.Request, body []byte) {
	var in struct {
		Model string   `json:"model"`
		Input []string `json:"input"`
	}
	if err := json.Unmarshal(body, &in); err != nil || in.Model == "" || len(in.Input) == 0 {
		http.Error(w, `{"error":{"message":"bad request"}}`, http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	fail := s.embedFail > 0
	if fail {
		s.embedFail--
	} else {
		s.embedInputs = append(s.embedInputs, in.Input)
		s.embedAuth = append(s.embedAuth, r.Header.Get("Authorization"))
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if fail {
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"error":{"message":"scripted failure","type":"server_error"}}`)
		return
	}
	data := make([]any, len(in.Input))
	for i, text := range in.Input {
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": Embed(text)}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "model": in.Model, "data": data})
}

// Concepts are the meanings the double's vectors know: each word of a
// concept adds to that concept's dimension.
var Concepts = [][]string{
	{"eat", "ate", "eating", "food", "meal", "lunch", "breakfast", "dinner", "sandwich", "pizza", "salad", "apple", "hungry", "bites", "snack"},
	{"keys", "key", "keychain", "keyring"},
	{"coffee", "tea", "drink", "drank", "espresso", "mug", "cup", "thirsty", "beverage"},
	{"desk", "laptop", "computer", "keyboard", "monitor", "work", "office", "typing"},
	{"street", "park", "walk", "walking", "outside", "tree", "crossing"},
	{"car", "bus", "bike", "train", "drive", "driving"},
	{"dog", "cat", "pet", "bird", "animal"},
	{"book", "read", "reading", "page", "novel"},
}

// hashedDims spread the words of no concept, weakly, so every text has a
// vector and unrelated texts are not all identical.
const hashedDims = 8

// Dims is the length of the double's vectors.
var Dims = len(Concepts) + hashedDims

var conceptOf = func() map[string]int {
	m := map[string]int{}
	for i, words := range Concepts {
		for _, w := range words {
			m[w] = i
		}
	}
	return m
}()

// Embed is the double's vector of text, of unit length.
func Embed(text string) []float32 {
	v := make([]float64, Dims)
	for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
		if i, ok := conceptOf[w]; ok {
			v[i] += 1
			continue
		}
		h := fnv.New32a()
		_, _ = h.Write([]byte(w))
		v[len(Concepts)+int(h.Sum32()%hashedDims)] += 0.1
	}
	var norm float64
	for _, x := range v {
		norm += x * x
	}
	out := make([]float32, Dims)
	if norm == 0 {
		return out // the empty text
	}
	norm = math.Sqrt(norm)
	for i, x := range v {
		out[i] = float32(x / norm)
	}
	return out
}
