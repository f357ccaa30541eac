package openai

import (
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

	sdk "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/foresight-vision/foresight/ports"
)

// Backend opens one session per stream over a shared HTTP client. It is safe
// for concurrent use.
type Backend struct {
	cfg         Config
	host        string
	completions sdk.ChatCompletionService
	http        *http.Client
	ownsClient  bool
	log         *slog.Logger
	redact      redactor

	rateLimited   atomic.Int64
	droppedChunks atomic.Int64
}

// Stats counts what the backend held back.
type Stats struct {
	// RateLimitedReplies counts 429 replies.
	RateLimitedReplies int64
	// DroppedChunks counts chunks not sent because their stream was
	// waiting out a Retry-After.
	DroppedChunks int64
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
	opts := []option.RequestOption{
		option.WithBaseURL(cfg.BaseURL),
		option.WithHTTPClient(b.http),
		// A retry the SDK made on its own would hide a failure and hammer
		// a server that asked for a pause; the next chunk is the retry.
		option.WithMaxRetries(0),
		option.WithMiddleware(b.checkReply),
	}
	if cfg.APIKey != "" {
		opts = append(opts, option.WithAPIKey(cfg.APIKey))
	}
	// The service is built directly, not through sdk.NewClient, so that no
	// OPENAI_* variable of the environment (key, organization, custom
	// headers) is picked up behind the configuration's back.
	b.completions = sdk.NewChatCompletionService(opts...)
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
	return Stats{RateLimitedReplies: b.rateLimited.Load(), DroppedChunks: b.droppedChunks.Load()}
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

// checkReply runs under the SDK on every attempt. It turns a non-2xx reply
// into a StatusError from a bounded read of its body (the SDK would read it
// whole and keep it), and bounds a 2xx body.
func (b *Backend) checkReply(req *http.Request, next option.MiddlewareNext) (*http.Response, error) {
	res, err := next(req)
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

// toResult is the one place a reply becomes the ack's fields.
func toResult(r reply) ports.Result {
	return ports.Result{
		"caption":          r.caption,
		"chunk_start_s":    r.startS,
		"chunk_end_s":      r.endS,
		"latency_ms":       r.latency.Milliseconds(),
		"tokens_generated": r.tokensGenerated,
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
		return nil, fmt.Errorf("%w: chunk not sent, retry in %s", ErrRateLimited, s.waitUntil.Sub(now).Round(100*time.Millisecond))
	}
	parts := make([]sdk.ChatCompletionContentPartUnionParam, 0, 1+len(chunk.Frames))
	parts = append(parts, sdk.TextContentPart(buildPrompt(chunk.StartS, chunk.EndS, s.history.entries, resolveTask(chunk.Prompt, b.cfg.Prompt))))
	for _, frame := range chunk.Frames {
		if len(frame) < len(jpegMagic) || string(frame[:len(jpegMagic)]) != string(jpegMagic) {
			continue // as the Gemma app skips frames that do not decode
		}
		parts = append(parts, sdk.ImageContentPart(sdk.ChatCompletionContentPartImageImageURLParam{
			URL: "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(frame),
		}))
	}
	if len(parts) == 1 {
		return nil, fmt.Errorf("none of the %d frames in the chunk is a JPEG", len(chunk.Frames))
	}
	params := sdk.ChatCompletionNewParams{
		Model:       b.cfg.Model,
		Messages:    []sdk.ChatCompletionMessageParamUnion{sdk.UserMessage(parts)},
		MaxTokens:   sdk.Int(int64(b.cfg.MaxTokens)),
		Temperature: sdk.Float(b.cfg.Temperature),
	}
	completion, err := b.completions.New(ctx, params)
	if err != nil {
		return nil, s.callError(ctx, err)
	}
	var raw string
	if len(completion.Choices) > 0 {
		raw = completion.Choices[0].Message.Content
	}
	caption := collapseWhitespace(raw)
	s.history.add(chunk.StartS, chunk.EndS, caption)
	return toResult(reply{
		caption:         caption,
		startS:          chunk.StartS,
		endS:            chunk.EndS,
		latency:         time.Since(started),
		tokensGenerated: completion.Usage.CompletionTokens,
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
			b.log.Warn("model server rate limited the stream", "stream_id", s.streamID, "retry_after", serr.RetryAfter)
		} else {
			b.log.Warn("model call failed", "stream_id", s.streamID, "err", serr)
		}
		return serr
	}
	var netErr net.Error // every transport failure of http.Client.Do is a *url.Error, a net.Error
	if errors.As(err, &netErr) {
		uerr := &UnreachableError{Host: b.host, Reason: b.redact.clean(unreachableReason(err)), err: err}
		b.log.Warn("model call failed", "stream_id", s.streamID, "err", uerr)
		return uerr
	}
	// Anything else (a reply that does not parse, a body too large) is
	// described without the SDK's text, which may quote the body.
	b.log.Warn("model call failed", "stream_id", s.streamID, "err", b.redact.clean(err.Error()))
	return fmt.Errorf("model server sent a reply that could not be read: %s", b.redact.clean(err.Error()))
}

// Close forgets the stream's history; nothing remote is held.
func (s *session) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.history.entries = nil
	return nil
}
