// Package gateway is the original's Cloudflare Worker rewritten as a Go
// reverse proxy (`foresight gateway --upstream URL`): /health is public,
// everything else needs the magic word (adapters/frontend/edgegate), and the
// gateway's own secrets (Poke key, Modal credentials) are added as request
// headers on plain requests and on WebSocket upgrades alike, which fixes the
// Worker's defect of forwarding upgrades without them.
//
// WebSocket traffic is relayed byte for byte by net/http/httputil's
// ReverseProxy once the upstream has answered 101, so frames are never
// buffered whole and close codes pass through untouched.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/foresight-vision/foresight/adapters/frontend/edgegate"
	"github.com/foresight-vision/foresight/adapters/inference/modal/modalheader"
	"github.com/foresight-vision/foresight/adapters/protocol/wire"
)

// Names of the Modal headers that carry secrets to the upstream: the Modal
// adapter's own list, so they cannot drift apart (Poke's is
// wire.HeaderPokeAPIKey).
const (
	HeaderModalTokenID     = modalheader.TokenID
	HeaderModalTokenSecret = modalheader.TokenSecret
	HeaderModalAppName     = modalheader.AppName
	HeaderModalClassName   = modalheader.ClassName
)

// Environment variables the gateway reads its secrets from (see SecretsFromEnv).
const (
	EnvPokeAPIKey       = "FORESIGHT_POKE_API_KEY"
	EnvModalTokenID     = "FORESIGHT_MODAL_TOKEN_ID"
	EnvModalTokenSecret = "FORESIGHT_MODAL_TOKEN_SECRET"
	EnvModalAppName     = "FORESIGHT_MODAL_APP_NAME"
	EnvModalClassName   = "FORESIGHT_MODAL_CLASS_NAME"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxConns              = 10000
	DefaultDialTimeout           = 5 * time.Second
	DefaultResponseHeaderTimeout = 60 * time.Second
	DefaultIdleConnTimeout       = 90 * time.Second
	DefaultShutdownTimeout       = 10 * time.Second
)

// Bodies of the gateway's own error replies: short, and never an internal
// error string.
const (
	bodyUnavailable = "upstream unavailable"
	bodyTimeout     = "upstream timeout"
	bodyOverloaded  = "over capacity"
	bodyClosing     = "shutting down"
)

// Secrets are added to every forwarded request as headers, each only when
// non-empty. Client-supplied x-poke-* and x-modal-* headers are always
// removed first, whether or not the gateway has a value to put in their place.
type Secrets struct {
	PokeAPIKey       string // -> x-poke-api-key
	ModalTokenID     string // -> x-modal-token-id
	ModalTokenSecret string // -> x-modal-token-secret
	ModalAppName     string // -> x-modal-app-name
	ModalClassName   string // -> x-modal-class-name
}

// SecretsFromEnv reads Secrets from the FORESIGHT_* variables above through
// getenv (os.Getenv in production); values are trimmed.
func SecretsFromEnv(getenv func(string) string) Secrets {
	get := func(k string) string { return strings.TrimSpace(getenv(k)) }
	return Secrets{
		PokeAPIKey:       get(EnvPokeAPIKey),
		ModalTokenID:     get(EnvModalTokenID),
		ModalTokenSecret: get(EnvModalTokenSecret),
		ModalAppName:     get(EnvModalAppName),
		ModalClassName:   get(EnvModalClassName),
	}
}

// headers lists the non-empty secrets as canonical header name/value pairs.
func (s Secrets) headers() [][2]string {
	all := [][2]string{
		{wire.HeaderPokeAPIKey, s.PokeAPIKey},
		{HeaderModalTokenID, s.ModalTokenID},
		{HeaderModalTokenSecret, s.ModalTokenSecret},
		{HeaderModalAppName, s.ModalAppName},
		{HeaderModalClassName, s.ModalClassName},
	}
	var out [][2]string
	for _, kv := range all {
		if kv[1] != "" {
			out = append(out, [2]string{http.CanonicalHeaderKey(kv[0]), kv[1]})
		}
	}
	return out
}

// Config configures a Gateway.
type Config struct {
	// Upstream is the server's base URL (http, https, ws or wss; ws/wss are
	// treated as http/https). A path prefix is joined in front of request
	// paths. Required.
	Upstream string
	// MagicWord is the shared secret clients must send. Empty means every
	// non-public request is denied (403), as the Worker did.
	MagicWord string
	// Secrets are injected as headers into forwarded requests.
	Secrets Secrets
	// UpstreamMagicWord, when set, is sent to the upstream in x-magic-word
	// on every forwarded request. The client's word is always removed, so an
	// upstream that runs its own in-process gate needs this (it may differ
	// from MagicWord). Empty: the upstream gets no word.
	UpstreamMagicWord string
	// PublicPaths pass without the word (exact match on the decoded path).
	// nil means ["/health"].
	PublicPaths []string
	// MaxConns bounds the requests in flight, WebSocket relays included;
	// one over it gets 503. 0 means DefaultMaxConns.
	MaxConns int
	// DialTimeout bounds connecting to the upstream. 0 means DefaultDialTimeout.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for the upstream's response
	// headers (the 101 of an upgrade too); over it the client gets 504.
	// 0 means DefaultResponseHeaderTimeout.
	ResponseHeaderTimeout time.Duration
	// IdleConnTimeout is how long an idle upstream keep-alive connection is
	// kept. 0 means DefaultIdleConnTimeout.
	IdleConnTimeout time.Duration
	// ShutdownTimeout is how long Serve lets plain requests finish after its
	// context ends, before cutting everything. 0 means DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Logger is for upstream failures and denials (never secrets or the
	// word). nil means slog.Default().
	Logger *slog.Logger
}

// Gateway is an http.Handler that gates, decorates and forwards requests to
// the upstream. Build it with New; release it with Close.
type Gateway struct {
	handler   http.Handler
	sem       chan struct{}
	transport *http.Transport
	log       *slog.Logger
	shutdown  time.Duration

	// ctx ends when Close is called; every proxied request (and so every
	// WebSocket relay, which net/http no longer tracks once hijacked) is
	// tied to it.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex // guards closed and wg.Add against Close and Wait
	closed bool
	wg     sync.WaitGroup // requests in flight
}

// New validates cfg and builds a Gateway.
func New(cfg Config) (*Gateway, error) {
	target, err := parseUpstream(cfg.Upstream)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	maxConns := cfg.MaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	public := cfg.PublicPaths
	if public == nil {
		public = []string{wire.PathHealth}
	}

	// HTTP/1.1 only towards the upstream (no ForceAttemptHTTP2): WebSocket
	// upgrades need it. No proxy from the environment: secrets go straight
	// to the upstream.
	transport := &http.Transport{
		DialContext: (&net.Dialer{
			Timeout:   orDefault(cfg.DialTimeout, DefaultDialTimeout),
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       orDefault(cfg.IdleConnTimeout, DefaultIdleConnTimeout),
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: orDefault(cfg.ResponseHeaderTimeout, DefaultResponseHeaderTimeout),
		ExpectContinueTimeout: time.Second,
	}

	secrets := cfg.Secrets.headers()
	upstreamWord := cfg.UpstreamMagicWord
	upstreamWordKey := http.CanonicalHeaderKey(edgegate.Header)
	proxy := &httputil.ReverseProxy{
		// Rewrite (not Director): inbound X-Forwarded-* and hop-by-hop
		// headers are already gone when it runs, so a client cannot spoof
		// X-Forwarded-For, and the Upgrade header of a WebSocket handshake is
		// kept, so secrets reach the upgrade as they reach plain requests.
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
			// A client's credentials never pass: the gateway's own
			// secrets, or none, reach the server.
			stripCredentialHeaders(pr.Out.Header)
			for _, kv := range secrets {
				pr.Out.Header[kv[0]] = []string{kv[1]}
			}
			if upstreamWord != "" {
				pr.Out.Header[upstreamWordKey] = []string{upstreamWord}
			}
		},
		Transport:    transport,
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandler: errorHandler(log),
	}

	ctx, cancel := context.WithCancel(context.Background())
	g := &Gateway{
		sem:       make(chan struct{}, maxConns),
		transport: transport,
		log:       log,
		shutdown:  orDefault(cfg.ShutdownTimeout, DefaultShutdownTimeout),
		ctx:       ctx,
		cancel:    cancel,
	}
	gate := edgegate.New(edgegate.Config{
		MagicWord:   cfg.MagicWord,
		Required:    true,
		PublicPaths: public,
		Logger:      log,
	})
	// Gate first, so strangers are turned away without taking a slot.
	g.handler = gate.Wrap(g.limit(proxy))
	return g, nil
}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.handler.ServeHTTP(w, r)
}

// InFlight returns the number of requests being proxied now, WebSocket
// relays included.
func (g *Gateway) InFlight() int { return len(g.sem) }

// Close ends every request in flight, WebSocket relays included, and closes
// idle upstream connections. Afterwards the Gateway answers 503 "shutting
// down" (403 to requests without the word). It is safe to call more than
// once.
func (g *Gateway) Close() error {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
	g.cancel()
	g.transport.CloseIdleConnections()
	return nil
}

// Wait blocks, after Close, until every request in flight has finished, or
// until ctx ends. Before Close it returns at once (new requests could still
// arrive).
func (g *Gateway) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		g.mu.Lock() // no Add may race with Wait once closed is set
		closed := g.closed
		g.mu.Unlock()
		if closed {
			g.wg.Wait()
		}
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("gateway wait: %w", ctx.Err())
	}
}

// limit admits at most cap(g.sem) requests at a time and ties each to the
// gateway's lifetime. The slot is held until next returns, which for a
// WebSocket is when ReverseProxy's relay of the hijacked connection ends.
func (g *Gateway) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			plain(w, http.StatusServiceUnavailable, bodyClosing)
			return
		}
		g.wg.Add(1)
		g.mu.Unlock()
		defer g.wg.Done()

		select {
		case g.sem <- struct{}{}:
		default:
			g.log.Warn("gateway over capacity", "path", r.URL.Path, "limit", cap(g.sem))
			w.Header().Set("Retry-After", "1")
			plain(w, http.StatusServiceUnavailable, bodyOverloaded)
			return
		}
		defer func() { <-g.sem }()

		ctx, cancel := context.WithCancel(r.Context())
		stop := context.AfterFunc(g.ctx, cancel)
		defer stop()
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// NewServer returns an http.Server for h with timeouts that protect against
// slow clients without cutting long-lived WebSockets: there is deliberately
// no ReadTimeout or WriteTimeout (they would end every stream after a fixed
// time).
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// Serve serves g on ln until ctx ends, then shuts down: no new connections,
// plain requests get up to Config.ShutdownTimeout to finish, then g is closed,
// which ends WebSocket relays too. It returns nil after a shutdown caused by
// ctx, or the server's error.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	srv := NewServer(ln.Addr().String(), g)
	srv.ErrorLog = slog.NewLogLogger(g.log.Handler(), slog.LevelWarn)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()

	select {
	case err := <-errc:
		_ = g.Close()
		return fmt.Errorf("gateway serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), g.shutdown)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		g.log.Warn("gateway shutdown timed out; closing remaining connections", "err", err)
	}
	_ = g.Close()
	_ = srv.Close()
	<-errc // http.ErrServerClosed
	wctx, wcancel := context.WithTimeout(context.Background(), g.shutdown)
	defer wcancel()
	if err := g.Wait(wctx); err != nil {
		g.log.Warn("gateway requests still running after shutdown", "err", err)
	}
	return nil
}

// ListenAndServe listens on addr (":8081" form) and calls Serve.
func (g *Gateway) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("gateway listen on %s: %w", addr, err)
	}
	g.log.Info("gateway listening", "addr", ln.Addr().String())
	return g.Serve(ctx, ln)
}

// stripCredentialHeaders removes every x-poke-* and x-modal-* header, so a
// client can never pass its own credentials or model app through the
// gateway, even for a secret the gateway does not hold.
func stripCredentialHeaders(h http.Header) {
	for name := range h {
		l := strings.ToLower(name)
		if strings.HasPrefix(l, "x-poke-") || strings.HasPrefix(l, "x-modal-") {
			delete(h, name)
		}
	}
}

// errorHandler answers upstream failures with a short fixed body (the error
// itself goes to the log only): 504 for a timeout, 502 otherwise.
func errorHandler(log *slog.Logger) func(http.ResponseWriter, *http.Request, error) {
	return func(w http.ResponseWriter, r *http.Request, err error) {
		if errors.Is(err, context.Canceled) {
			// The client left or the gateway is closing: nobody reads a reply.
			log.Debug("gateway request cancelled", "path", r.URL.Path, "err", err)
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		status, body := http.StatusBadGateway, bodyUnavailable
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			status, body = http.StatusGatewayTimeout, bodyTimeout
		}
		log.Warn("gateway upstream request failed",
			"path", r.URL.Path, "remote", r.RemoteAddr, "status", status, "err", err)
		plain(w, status, body)
	}
}

func plain(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func parseUpstream(raw string) (*url.URL, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, errors.New("gateway: upstream URL is required")
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, fmt.Errorf("gateway: parse upstream URL: %w", err)
	}
	switch u.Scheme {
	case "http", "https":
	case "ws":
		u.Scheme = "http"
	case "wss":
		u.Scheme = "https"
	default:
		return nil, fmt.Errorf("gateway: upstream URL %q: scheme must be http, https, ws or wss", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("gateway: upstream URL %q has no host", u.Redacted())
	}
	if u.User != nil {
		return nil, errors.New("gateway: upstream URL must not contain user info")
	}
	u.Fragment = ""
	return u, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}
