// Package poke is the ports.Notifier adapter for Poke (https://poke.com): it
// posts a message to Poke's inbound-SMS webhook with the caller's API key and
// hands back Poke's JSON reply. Poke then delivers the text to the key owner's
// phone as an iMessage/SMS.
//
// One Client holds one reused *http.Client with bounded dial, TLS, header and
// overall timeouts. Every upstream failure is returned as an *UpstreamError
// whose text is short, fixed and safe to show to an HTTP client: it never
// contains the API key or the upstream body.
package poke

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/foresight-vision/foresight/ports"
)

const (
	// DefaultURL is Poke's inbound-SMS webhook.
	DefaultURL = "https://poke.com/api/v1/inbound-sms/webhook"
	// DefaultTimeout bounds one whole Notify call (connect, send, read reply).
	DefaultTimeout = 10 * time.Second
	// MaxReplyBytes caps how much of a reply is read; a bigger 2xx reply is
	// an error rather than an unbounded allocation.
	MaxReplyBytes = 1 << 20

	// logBodyBytes caps the upstream body excerpt written to debug/warn logs.
	logBodyBytes = 512
)

// Config configures a Client. The zero value is usable: every empty field
// takes its default.
type Config struct {
	// URL is the webhook to POST to; it must be an absolute http or https
	// URL. Default DefaultURL (env FORESIGHT_POKE_URL).
	URL string
	// Timeout bounds one whole Notify call, including reading the reply.
	// Zero means DefaultTimeout (env FORESIGHT_POKE_TIMEOUT); negative is
	// an error.
	Timeout time.Duration
	// HTTPClient, when set, is used instead of the client New builds (for
	// tests or custom transports). Timeout still applies through the
	// request context.
	HTTPClient *http.Client
}

// ErrNoAPIKey is returned by Notify when the API key is empty (or blank).
var ErrNoAPIKey = errors.New("poke API key not configured")

// ErrInvalidAPIKey is returned by Notify when the API key cannot be sent in
// an HTTP header (it contains control characters).
var ErrInvalidAPIKey = errors.New("poke API key is malformed")

// UpstreamError reports that Poke could not be reached or did not accept the
// message. Error() is short and fixed per kind, so it is safe to show to a
// client (the HTTP front end uses it as a 502 detail).
type UpstreamError struct {
	// Status is the upstream HTTP status, or 0 when no response arrived
	// (network error, timeout, cancellation).
	Status int
	// Reason is a short fixed phrase such as "returned 401 Unauthorized",
	// "timed out", "unreachable", "returned invalid JSON".
	Reason string

	// cause is the underlying error, for errors.Is/As (e.g.
	// context.DeadlineExceeded). It is deliberately left out of Error():
	// transport errors can carry addresses and other details.
	cause error
}

// Error returns e.g. "poke upstream returned 401 Unauthorized".
func (e *UpstreamError) Error() string { return "poke upstream " + e.Reason }

// Unwrap returns the underlying cause, if any.
func (e *UpstreamError) Unwrap() error { return e.cause }

// Timeout reports whether the call ran out of time.
func (e *UpstreamError) Timeout() bool { return e.Reason == reasonTimeout }

const (
	reasonTimeout     = "timed out"
	reasonCanceled    = "request canceled"
	reasonUnreachable = "unreachable"
	reasonInvalidJSON = "returned invalid JSON"
	reasonTooLarge    = "reply too large"
	reasonReadFailed  = "reply could not be read"
)

// Client sends messages through Poke. It is safe for concurrent use.
type Client struct {
	url     string
	timeout time.Duration
	http    *http.Client
	log     *slog.Logger
}

var _ ports.Notifier = (*Client)(nil)

// New validates cfg, fills in defaults and builds a Client. A nil logger
// means slog.Default().
func New(cfg Config, logger *slog.Logger) (*Client, error) {
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.URL == "" {
		cfg.URL = DefaultURL
	}
	if err := validateURL(cfg.URL); err != nil {
		return nil, fmt.Errorf("poke config: %w", err)
	}
	switch {
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("poke config: timeout %v is negative", cfg.Timeout)
	case cfg.Timeout == 0:
		cfg.Timeout = DefaultTimeout
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = newHTTPClient(cfg.Timeout)
	}
	return &Client{url: cfg.URL, timeout: cfg.Timeout, http: hc, log: logger.With("component", "poke")}, nil
}

func validateURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("parse URL %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("URL %q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return fmt.Errorf("URL %q: missing host", raw)
	}
	return nil
}

// newHTTPClient builds the one client every call reuses, so connections are
// pooled and no stage of a call can hang without bound.
func newHTTPClient(timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: min(5*time.Second, timeout), KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   min(5*time.Second, timeout),
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          32,
		MaxIdleConnsPerHost:   16,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		// A webhook that redirects is misconfigured; following it would
		// resend the Bearer token to wherever it points.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// URL returns the webhook the client posts to.
func (c *Client) URL() string { return c.url }

// CloseIdleConnections releases pooled keep-alive connections (call it on
// shutdown). The Client stays usable.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// Notify posts message to Poke on behalf of apiKey and returns Poke's JSON
// reply. A 2xx reply with an empty body returns the JSON literal null: the
// upstream accepted the message, and reporting a failure could make the
// caller resend it.
//
// Errors: ErrNoAPIKey or ErrInvalidAPIKey for an unusable key (nothing is
// sent); otherwise *UpstreamError for a non-2xx status, a 2xx reply that is
// not JSON or exceeds MaxReplyBytes, a network error, a timeout (Config.Timeout
// or ctx's deadline) or cancellation of ctx.
func (c *Client) Notify(ctx context.Context, apiKey, message string) (json.RawMessage, error) {
	apiKey = strings.TrimSpace(apiKey)
	if apiKey == "" {
		return nil, ErrNoAPIKey
	}
	if strings.ContainsFunc(apiKey, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, ErrInvalidAPIKey
	}
	body, err := json.Marshal(struct {
		Message string `json:"message"`
	}{message})
	if err != nil {
		return nil, fmt.Errorf("encode poke request: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build poke request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")

	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.fail(0, classify(err), err, nil, apiKey, start)
	}
	defer resp.Body.Close()

	// Read one byte past the cap to tell "exactly the cap" from "too big".
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxReplyBytes+1))
	if err != nil {
		reason := classify(err)
		if reason == reasonUnreachable {
			reason = reasonReadFailed
		}
		return nil, c.fail(resp.StatusCode, reason, err, nil, apiKey, start)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, c.fail(resp.StatusCode, statusReason(resp.StatusCode), nil, raw, apiKey, start)
	}
	if len(raw) > MaxReplyBytes {
		return nil, c.fail(resp.StatusCode, reasonTooLarge, nil, nil, apiKey, start)
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		raw = []byte("null")
	}
	if !json.Valid(raw) {
		return nil, c.fail(resp.StatusCode, reasonInvalidJSON, nil, raw, apiKey, start)
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "poke message sent",
		slog.Int("status", resp.StatusCode),
		slog.Int("reply_bytes", len(raw)),
		slog.Duration("elapsed", time.Since(start)))
	return json.RawMessage(raw), nil
}

func statusReason(code int) string {
	if text := http.StatusText(code); text != "" {
		return fmt.Sprintf("returned %d %s", code, text)
	}
	return fmt.Sprintf("returned status %d", code)
}

// classify names a failure from Do or from reading the body. Both the
// caller's deadline and Config.Timeout count as "timed out"; only the caller's
// cancellation is "request canceled".
func classify(err error) string {
	var nerr net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &nerr) && nerr.Timeout():
		return reasonTimeout
	case errors.Is(err, context.Canceled):
		return reasonCanceled
	}
	return reasonUnreachable
}

// fail logs a failed call and builds its error. Details (transport error,
// body excerpt) go to the log only, with the key scrubbed in case the upstream
// echoes it; transport errors name the URL, never headers.
func (c *Client) fail(status int, reason string, cause error, body []byte, apiKey string, start time.Time) *UpstreamError {
	attrs := []slog.Attr{
		slog.Int("status", status),
		slog.String("reason", reason),
		slog.Duration("elapsed", time.Since(start)),
	}
	if len(body) > 0 {
		attrs = append(attrs, slog.String("body", redactThenCut(string(body), apiKey, logBodyBytes)))
	}
	if cause != nil {
		attrs = append(attrs, slog.String("err", redactThenCut(cause.Error(), apiKey, logBodyBytes)))
	}
	c.log.LogAttrs(context.Background(), slog.LevelWarn, "poke request failed", attrs...)
	return &UpstreamError{Status: status, Reason: reason, cause: cause}
}

// redactThenCut hides secret in s and only then cuts it to at most limit
// bytes: cutting first would leave a secret straddling the cut unredacted.
func redactThenCut(s, secret string, limit int) string {
	if secret != "" {
		s = strings.ReplaceAll(s, secret, "[redacted]")
	}
	if len(s) > limit {
		s = s[:limit]
	}
	return s
}
