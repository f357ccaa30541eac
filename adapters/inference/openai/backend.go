package openai

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	sdk "github.com/sashabaranov/go-openai"

	"github.com/foresight-vision/foresight/ports"
)

// Backend opens one session per stream over a shared HTTP client. It is safe
// for concurrent use.
type Backend struct {
	cfg        Config
	host       string
	client     *sdk.Client
	http       *http.Client
	ownsClient bool
	log        *slog.Logger
	redact     redactor

	rateLimited       atomic.Int64
	droppedChunks     atomic.Int64
	incompleteReplies atomic.Int64
}

// Stats counts what the backend held back.
type Stats struct {
	// RateLimitedReplies counts 429 replies.
	RateLimitedReplies int64
	// DroppedChunks counts chunks not sent because their stream was
	// waiting out a Retry-After.
	DroppedChunks int64
	// IncompleteReplies counts 2xx replies dropped as failures: no finish
	// reason (the server stopped the model early) or an empty caption.
	IncompleteReplies int64
}

// New checks cfg and builds the backend. It makes no request: a server that
// is down shows up in the first chunk's error.
func New(cfg Config, logger *slog.Logger) (*Backend, error) {
	cfg, base, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b := &Backend{
		cfg:    cfg,
		host:   base.Host,
		http:   cfg.HTTPClient,
		log:    logger.With("component", "openai"),
		redact: redactor{secret: cfg.APIKey},
	}
	if b.http == nil {
		b.http = newHTTPClient(cfg.DialTimeout)
		b.ownsClient = true
	}
	// The SDK sets no Authorization header for an empty key, reads no
	// environment variable and makes no retry of its own (the next chunk
	// is the retry); every request goes through checkReply.
	sdkCfg := sdk.DefaultConfig(cfg.APIKey)
	sdkCfg.BaseURL = cfg.BaseURL
	sdkCfg.HTTPClient = doerFunc(b.checkReply)
	b.client = sdk.NewClientWithConfig(sdkCfg)
	return b, nil
}

func newHTTPClient(dialTimeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   dialTimeout,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   32,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}}
}

// Model is the configured model name (for a status page).
func (b *Backend) Model() string { return b.cfg.Model }

// Host is the base URL's host (for a status page; the URL itself is not
// shown).
func (b *Backend) Host() string { return b.host }

// Stats reports the counters so far.
func (b *Backend) Stats() Stats {
	return Stats{
		RateLimitedReplies: b.rateLimited.Load(),
		DroppedChunks:      b.droppedChunks.Load(),
		IncompleteReplies:  b.incompleteReplies.Load(),
	}
}

// Close releases the idle connections of the backend's own client; call it
// after every session is closed.
func (b *Backend) Close() error {
	if b.ownsClient {
		b.http.CloseIdleConnections()
	}
	return nil
}

// OpenSession starts a stream's session: its own caption history and
// rate-limit state. It makes no request.
func (b *Backend) OpenSession(_ context.Context, req ports.SessionRequest) (ports.InferenceSession, error) {
	return &session{b: b, streamID: req.StreamID, history: captionHistory{max: b.cfg.CaptionHistory}}, nil
}

// doerFunc lets a function stand for the SDK's HTTP client.
type doerFunc func(*http.Request) (*http.Response, error)

func (f doerFunc) Do(req *http.Request) (*http.Response, error) { return f(req) }

// checkReply carries every request of the SDK. It turns a non-2xx reply into
// a StatusError from a bounded read of its body (the SDK would read it whole
// and quote it), keeps the Retry-After of a 429, and bounds a 2xx body.
func (b *Backend) checkReply(req *http.Request) (*http.Response, error) {
	if b.cfg.Temperature == 0 {
		if err := sendZeroTemperature(req); err != nil {
			return nil, err
		}
	}
	res, err := b.http.Do(req)
	if err != nil {
		return nil, err
	}
	if res.StatusCode >= 200 && res.StatusCode <= 299 {
		res.Body = &cappedBody{rc: res.Body, left: b.cfg.MaxResponseBytes}
		return res, nil
	}
	body, _ := io.ReadAll(io.LimitReader(res.Body, maxErrorBody))
	_ = res.Body.Close()
	serr := &StatusError{StatusCode: res.StatusCode, Reason: b.redact.clean(errorReason(body, res.Header.Get("Content-Type")))}
	if res.StatusCode == http.StatusTooManyRequests {
		wait, ok := retryAfter(res.Header, b.cfg.Now())
		if !ok {
			wait = DefaultRateLimitWait
		}
		serr.RetryAfter = min(wait, b.cfg.MaxRetryAfter)
	}
	return nil, serr
}

// sendZeroTemperature puts "temperature":0 into the request body. The SDK's
// field is omitempty, so a greedy configuration would otherwise send no
// temperature and get the server's default (often 0.8 or 1). The body is
// the SDK's json.Marshal of the request: an object that starts with '{'
// and has no temperature key when the field is zero.
func sendZeroTemperature(req *http.Request) error {
	if req.Body == nil {
		return nil
	}
	body, err := io.ReadAll(req.Body)
	_ = req.Body.Close()
	if err != nil {
		return fmt.Errorf("reading the request body: %w", err)
	}
	if len(body) == 0 || body[0] != '{' {
		return errors.New("request body is not a JSON object")
	}
	const field = `"temperature":0`
	rewritten := make([]byte, 0, len(body)+len(field)+1)
	rewritten = append(rewritten, '{')
	rewritten = append(rewritten, field...)
	if rest := bytes.TrimSpace(body[1:]); len(rest) > 0 && rest[0] != '}' {
		rewritten = append(rewritten, ',')
	}
	rewritten = append(rewritten, body[1:]...)
	req.Body = io.NopCloser(bytes.NewReader(rewritten))
	req.ContentLength = int64(len(rewritten))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(rewritten)), nil }
	return nil
}

// cappedBody fails a read past its limit instead of growing without bound.
type cappedBody struct {
	rc   io.ReadCloser
	left int64
}

func (c *cappedBody) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errReplyTooLarge
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.rc.Read(p)
	c.left -= int64(n)
	return n, err
}

func (c *cappedBody) Close() error { return c.rc.Close() }

// session is one stream's state. The domain never calls it concurrently; the
// mutex only keeps that assumption from being load-bearing.
type session struct {
	b        *Backend
	streamID string

	mu        sync.Mutex
	history   captionHistory
	waitUntil time.Time // no request before this (a 429's Retry-After)
}

// reply is what one chunk's call produced, before it becomes a ports.Result.
type reply struct {
	caption         string
	startS, endS    float64
	latency         time.Duration
	tokensGenerated int64
}

// toResult is the one place a reply becomes the ack's fields: every typed
// field, always, as the Gemma app replies.
func toResult(r reply) ports.Result {
	return ports.Result{
		Caption:         r.caption,
		ChunkStartS:     r.startS,
		ChunkEndS:       r.endS,
		LatencyMS:       float64(r.latency.Milliseconds()),
		TokensGenerated: r.tokensGenerated,
		Set:             ports.ResultAll,
	}
}

// jpegMagic starts every JPEG file (SOI and the next marker's 0xFF).
var jpegMagic = []byte{0xFF, 0xD8, 0xFF}

// InferChunk sends the chunk's frames in one request and returns its caption.
func (s *session) InferChunk(ctx context.Context, chunk ports.Chunk) (ports.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.b
	started := time.Now()
	if len(chunk.Frames) == 0 {
		// As the Gemma app: an empty chunk is answered without the model.
		return toResult(reply{startS: chunk.StartS, endS: chunk.EndS}), nil
	}
	if now := b.cfg.Now(); now.Before(s.waitUntil) {
		b.droppedChunks.Add(1)
		return ports.Result{}, fmt.Errorf("%w: chunk not sent, retry in %s", ErrRateLimited, s.waitUntil.Sub(now).Round(100*time.Millisecond))
	}
	parts := make([]sdk.ChatMessagePart, 0, 1+len(chunk.Frames))
	parts = append(parts, sdk.ChatMessagePart{
		Type: sdk.ChatMessagePartTypeText,
		Text: buildPrompt(chunk.StartS, chunk.EndS, s.history.entries, resolveTask(chunk.Prompt, b.cfg.Prompt)),
	})
	for _, frame := range chunk.Frames {
		if len(frame) < len(jpegMagic) || string(frame[:len(jpegMagic)]) != string(jpegMagic) {
			continue // as the Gemma app skips frames that do not decode
		}
		parts = append(parts, sdk.ChatMessagePart{
			Type:     sdk.ChatMessagePartTypeImageURL,
			ImageURL: &sdk.ChatMessageImageURL{URL: "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(frame)},
		})
	}
	if len(parts) == 1 {
		return ports.Result{}, fmt.Errorf("none of the %d frames in the chunk is a JPEG", len(chunk.Frames))
	}
	request := sdk.ChatCompletionRequest{
		Model:       b.cfg.Model,
		Messages:    []sdk.ChatCompletionMessage{{Role: sdk.ChatMessageRoleUser, MultiContent: parts}},
		Temperature: float32(b.cfg.Temperature), // zero is sent by checkReply
		//lint:ignore SA1019 max_tokens on purpose, as docs/providers.md says: the models and compatible servers we target accept it; reasoning models refuse it
		MaxTokens: b.cfg.MaxTokens,
	}
	completion, err := b.client.CreateChatCompletion(ctx, request)
	if err != nil {
		return ports.Result{}, s.callError(ctx, err)
	}
	var raw string
	var finish sdk.FinishReason
	if len(completion.Choices) > 0 {
		raw, finish = completion.Choices[0].Message.Content, completion.Choices[0].FinishReason
	}
	caption := collapseWhitespace(raw)
	// A reply without a finish reason was cut off by the server (Ollama
	// stops a model that repeats itself and still answers 200, with the
	// partial text and every usage field 0); it and an empty caption are
	// failures, kept out of the store and the stream's history.
	if finish == "" || finish == sdk.FinishReasonNull {
		b.incompleteReplies.Add(1)
		b.log.Debug("model reply dropped", "stream_id", s.streamID, "err", ErrStoppedEarly)
		return ports.Result{}, ErrStoppedEarly
	}
	if caption == "" {
		b.incompleteReplies.Add(1)
		b.log.Debug("model reply dropped", "stream_id", s.streamID, "err", ErrEmptyCaption, "finish_reason", string(finish))
		return ports.Result{}, ErrEmptyCaption
	}
	s.history.add(chunk.StartS, chunk.EndS, caption)
	return toResult(reply{
		caption:         caption,
		startS:          chunk.StartS,
		endS:            chunk.EndS,
		latency:         time.Since(started),
		tokensGenerated: int64(completion.Usage.CompletionTokens),
	}), nil
}

// callError turns a failed call into an error safe to show the client, and
// starts the stream's wait after a 429.
func (s *session) callError(ctx context.Context, err error) error {
	b := s.b
	if ctxErr := ctx.Err(); ctxErr != nil {
		// The domain tells a timeout from a closed stream by the context's
		// cause; the SDK's own text is not needed.
		return fmt.Errorf("model call abandoned: %w", ctxErr)
	}
	var serr *StatusError
	if errors.As(err, &serr) {
		if serr.StatusCode == http.StatusTooManyRequests {
			b.rateLimited.Add(1)
			s.waitUntil = b.cfg.Now().Add(serr.RetryAfter)
			b.log.Debug("model server rate limited the stream", "stream_id", s.streamID, "retry_after", serr.RetryAfter)
		} else {
			b.log.Debug("model call failed", "stream_id", s.streamID, "err", serr)
		}
		return serr
	}
	var netErr net.Error // every transport failure of http.Client.Do is a *url.Error, a net.Error
	if errors.As(err, &netErr) {
		uerr := &UnreachableError{Host: b.host, Reason: b.redact.clean(unreachableReason(err)), err: err}
		b.log.Debug("model call failed", "stream_id", s.streamID, "err", uerr)
		return uerr
	}
	if refusal := sdkRefusal(err); refusal != nil {
		// The SDK checks some requests itself (reasoning models refuse
		// max_tokens) and sends nothing; its text names the rule.
		b.log.Debug("model call not sent", "stream_id", s.streamID, "err", refusal)
		return fmt.Errorf("model call not sent: %w", refusal)
	}
	// Anything else (a reply that does not parse, a body too large) is
	// described without the SDK's text, which may quote the body; the
	// cleaned text goes to the debug log only.
	b.log.Debug("model call failed", "stream_id", s.streamID, "err", b.redact.clean(err.Error()))
	if errors.Is(err, errReplyTooLarge) {
		return fmt.Errorf("%w: %w", errUnreadableReply, errReplyTooLarge)
	}
	return errUnreadableReply
}

// Close forgets the stream's history; nothing remote is held.
func (s *session) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.history.entries = nil
	return nil
}

// errUnreadableReply stands for every failure the adapter cannot name
// safely: a fixed text, since the SDK's may quote the reply body.
var errUnreadableReply = errors.New("model server sent a reply that could not be read")

// errReplyTooLarge is cappedBody's own fixed text, safe to show.
var errReplyTooLarge = errors.New("reply body too large")

// sdkRefusals are the SDK's errors for a request it declines to send; their
// texts are fixed and safe to show.
var sdkRefusals = []error{
	sdk.ErrChatCompletionInvalidModel,
	sdk.ErrContentFieldsMisused,
	sdk.ErrReasoningModelMaxTokensDeprecated,
	sdk.ErrReasoningModelLimitationsLogprobs,
	sdk.ErrReasoningModelLimitationsOther,
	sdk.ErrReasoningEffortUnsupported,
	sdk.ErrReasoningToolsRequireResponses,
	sdk.ErrReasoningSamplingUnsupported,
}

// sdkRefusal is the SDK's refusal that err is or wraps, or nil.
func sdkRefusal(err error) error {
	for _, refusal := range sdkRefusals {
		if errors.Is(err, refusal) {
			return refusal
		}
	}
	return nil
}
