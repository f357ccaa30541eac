// Package openaichat answers questions and embeds captions through any
// OpenAI-compatible server: Chat (ports.Chat) streams a chat completion,
// Embedder (ports.Embedder) calls /embeddings.
package openaichat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/foresight-vision/foresight/ports"
)

// DefaultTimeout bounds one model call.
const DefaultTimeout = 60 * time.Second

// Bounds on what is read from the server.
const (
	// maxAnswerBytes bounds a streamed answer: a few sentences are asked for.
	maxAnswerBytes = 64 << 10
	// maxReplyBytes bounds a reply body (an embeddings batch is the largest).
	maxReplyBytes = 32 << 20
	// maxErrorBytes bounds an error body, which the SDK reads whole.
	maxErrorBytes = 64 << 10
)

// Config names the server and model.
type Config struct {
	// BaseURL is the API root, e.g. https://api.openai.com/v1.
	BaseURL string
	// APIKey is sent as a bearer token; empty sends none.
	APIKey string
	Model  string
	// Timeout bounds one call; zero means DefaultTimeout.
	Timeout time.Duration
}

type client struct {
	cfg       Config
	sdk       *openai.Client
	transport *http.Transport
}

func newClient(what string, cfg Config) (*client, error) {
	if strings.TrimSpace(cfg.BaseURL) == "" {
		return nil, fmt.Errorf("%s: no base URL", what)
	}
	if strings.TrimSpace(cfg.Model) == "" {
		return nil, fmt.Errorf("%s: no model", what)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	// The SDK reads no environment variable and makes no retry; calls are
	// bounded by their context.
	sdkCfg := openai.DefaultConfig(cfg.APIKey)
	sdkCfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	sdkCfg.HTTPClient = boundedDoer{client: &http.Client{Transport: transport}}
	return &client{cfg: cfg, sdk: openai.NewClientWithConfig(sdkCfg), transport: transport}, nil
}

// Close releases idle connections.
func (c *client) Close() { c.transport.CloseIdleConnections() }

// Chat is ports.Chat over a streamed chat completion.
type Chat struct{ *client }

var _ ports.Chat = (*Chat)(nil)

// NewChat checks cfg and builds the chat client. Call Close when done.
func NewChat(cfg Config) (*Chat, error) {
	c, err := newClient("ask model", cfg)
	if err != nil {
		return nil, err
	}
	return &Chat{c}, nil
}

// Model is the configured model's name.
func (c *Chat) Model() string { return c.cfg.Model }

// Complete implements ports.Chat: the answer streams, each piece to onDelta.
func (c *Chat) Complete(ctx context.Context, messages []ports.ChatMessage, onDelta func(string)) (ports.ChatReply, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req := openai.ChatCompletionRequest{Model: c.cfg.Model, Temperature: 0.2}
	for _, m := range messages {
		req.Messages = append(req.Messages, openai.ChatCompletionMessage{Role: m.Role, Content: m.Content})
	}
	stream, err := c.sdk.CreateChatCompletionStream(ctx, req)
	if err != nil {
		return ports.ChatReply{}, classify(ctx, err)
	}
	defer func() { _ = stream.Close() }()
	reply := ports.ChatReply{Model: c.cfg.Model}
	var text strings.Builder
	for {
		chunk, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return ports.ChatReply{}, classify(ctx, err)
		}
		if chunk.Model != "" {
			reply.Model = chunk.Model
		}
		for _, choice := range chunk.Choices {
			delta := choice.Delta.Content
			if delta == "" {
				continue
			}
			if text.Len()+len(delta) > maxAnswerBytes {
				return ports.ChatReply{}, fmt.Errorf("%w: the answer ran past %d bytes", ports.ErrChatFailed, maxAnswerBytes)
			}
			text.WriteString(delta)
			if onDelta != nil {
				onDelta(delta)
			}
		}
	}
	reply.Text = text.String()
	if strings.TrimSpace(reply.Text) == "" {
		return ports.ChatReply{}, fmt.Errorf("%w: an empty answer", ports.ErrChatFailed)
	}
	return reply, nil
}

// Embedder is ports.Embedder over /embeddings.
type Embedder struct{ *client }

var _ ports.Embedder = (*Embedder)(nil)

// NewEmbedder checks cfg and builds the embeddings client. Call Close when done.
func NewEmbedder(cfg Config) (*Embedder, error) {
	c, err := newClient("embeddings model", cfg)
	if err != nil {
		return nil, err
	}
	return &Embedder{c}, nil
}

// Model implements ports.Embedder.
func (e *Embedder) Model() string { return e.cfg.Model }

// Embed implements ports.Embedder: one request for all texts.
func (e *Embedder) Embed(ctx context.Context, texts []string) ([]ports.Vector, error) {
	if len(texts) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	res, err := e.sdk.CreateEmbeddings(ctx, openai.EmbeddingRequestStrings{Input: texts, Model: openai.EmbeddingModel(e.cfg.Model)})
	if err != nil {
		return nil, classify(ctx, err)
	}
	if len(res.Data) != len(texts) {
		return nil, fmt.Errorf("%w: %d embeddings for %d texts", ports.ErrChatFailed, len(res.Data), len(texts))
	}
	out := make([]ports.Vector, len(texts))
	dims := -1
	for _, d := range res.Data {
		if d.Index < 0 || d.Index >= len(texts) || out[d.Index] != nil {
			return nil, fmt.Errorf("%w: embedding index %d out of place", ports.ErrChatFailed, d.Index)
		}
		if dims >= 0 && len(d.Embedding) != dims || len(d.Embedding) == 0 {
			return nil, fmt.Errorf("%w: embeddings of differing or no dimensions", ports.ErrChatFailed)
		}
		dims = len(d.Embedding)
		out[d.Index] = d.Embedding
	}
	return out, nil
}

// classify wraps err as a timeout or a failure, with a short text that
// holds nothing of the request (the key is in its headers, the captions in
// its body) and at most a little of the server's reply.
func classify(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return ports.ErrChatTimeout
	}
	var apiErr *openai.APIError
	if errors.As(err, &apiErr) {
		return fmt.Errorf("%w: HTTP %d", ports.ErrChatFailed, apiErr.HTTPStatusCode)
	}
	var reqErr *openai.RequestError
	if errors.As(err, &reqErr) {
		return fmt.Errorf("%w: HTTP %d", ports.ErrChatFailed, reqErr.HTTPStatusCode)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%w: %w", ports.ErrChatFailed, ctx.Err())
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		// A *url.Error quotes the URL; say only that the server was not reached.
		return fmt.Errorf("%w: the server could not be reached", ports.ErrChatFailed)
	}
	return fmt.Errorf("%w: unusable reply", ports.ErrChatFailed)
}

// boundedDoer caps what the SDK can read of a reply body.
type boundedDoer struct{ client *http.Client }

func (d boundedDoer) Do(req *http.Request) (*http.Response, error) {
	res, err := d.client.Do(req)
	if err != nil {
		return nil, err
	}
	limit := int64(maxReplyBytes)
	if res.StatusCode < 200 || res.StatusCode > 299 {
		limit = maxErrorBytes
	}
	res.Body = &cappedBody{rc: res.Body, left: limit}
	return res, nil
}

// cappedBody fails a read past its limit instead of growing without bound.
type cappedBody struct {
	rc   io.ReadCloser
	left int64
}

func (c *cappedBody) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errors.New("reply body too large")
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.rc.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *cappedBody) Close() error { return c.rc.Close() }
