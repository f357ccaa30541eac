// Package app wires configuration, adapters and the domain into a running
// server with go.uber.org/fx. It is the only package that imports fx.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"go.uber.org/fx"
	"go.uber.org/fx/fxevent"

	"github.com/foresight-vision/foresight/adapters/frontend/access"
	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/adapters/frontend/webui"
	"github.com/foresight-vision/foresight/adapters/notify/poke"
	"github.com/foresight-vision/foresight/adapters/observe/metrics"
	"github.com/foresight-vision/foresight/adapters/scene/jpegscene"
	"github.com/foresight-vision/foresight/domain"
)

// Server is the HTTP server with its stream handler.
type Server struct {
	http   *http.Server
	stream *httpapi.StreamHandler
	logger *slog.Logger
	// ungated: no magic word is set, so whoever reaches the address may
	// read stored captions and status and use every route.
	ungated bool
	// wordOnly: the magic word is accepted (tokens are not required), so
	// whoever holds it reads every wearer's memory.
	wordOnly bool

	mu   sync.Mutex
	addr net.Addr
}

// Addr is the address the server listens on, once started.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Module provides every component of the server for cfg.
func Module(cfg Config, logger *slog.Logger) fx.Option {
	return fx.Options(
		fx.Supply(cfg, logger),
		fx.Provide(
			newObserver,
			newFrameBudget,
			newInferenceBackend,
			newNotifier,
			newCaptionMemory,
			newNudges,
			newAsking,
			newStreamHandler,
			newPokeHandler,
			newHandler,
			newServer,
		),
		fx.Invoke(applyMemoryLimit),
		fx.Invoke(registerLifecycle),
	)
}

// registerLifecycle is the server's start and stop hook (beside
// applyMemoryLimit's, which only sets and restores the soft memory limit):
// open the stores, start listening, and on stop run stopSequence, so the
// order of a graceful stop is written down in one place rather than implied
// by fx's construction order.
func registerLifecycle(lc fx.Lifecycle, s *Server, inf inference, notifier *poke.Client, mem *captionMemory, nud *nudges, ask *asking) {
	steps := stopSequence(s, inf.close, notifier.CloseIdleConnections, nud, mem)
	// The indexer writes to the store: it stops before the store closes.
	steps = insertBefore(steps, "caption recorder", ask.stopSteps()...)
	lc.Append(fx.Hook{
		OnStart: func(ctx context.Context) error {
			// The store opens first: a stream's first caption needs it, and
			// the nudge loop reads it.
			if err := mem.open(ctx); err != nil {
				return err
			}
			abort := func() {
				_ = runStop(ctx, append(append(nud.stopSteps(), ask.stopSteps()...), mem.stopSteps()...), s.logger)
			}
			if err := ask.open(ctx); err != nil {
				abort()
				return err
			}
			if err := nud.open(ctx); err != nil {
				abort()
				return err
			}
			if err := s.start(ctx); err != nil {
				abort()
				return err
			}
			nud.start()
			return nil
		},
		OnStop: func(ctx context.Context) error { return runStop(ctx, steps, s.logger) },
	})
}

// NewLogger builds the server's logger from cfg.
func NewLogger(cfg Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func newNotifier(cfg Config, logger *slog.Logger) (*poke.Client, error) {
	client, err := poke.New(poke.Config{URL: cfg.PokeURL, Timeout: cfg.PokeTimeout}, logger)
	if err != nil {
		return nil, fmt.Errorf("poke client: %w", err)
	}
	return client, nil
}

// applyMemoryLimit sets the Go soft memory limit for the server's life
// (unless GOMEMLIMIT already did): without it the collector lets garbage
// grow to the size of the live heap, so RSS runs to twice the frame budget.
func applyMemoryLimit(lc fx.Lifecycle, cfg Config, logger *slog.Logger) {
	limit := cfg.SoftMemoryLimit()
	if limit <= 0 || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	var previous int64
	lc.Append(fx.Hook{
		OnStart: func(context.Context) error {
			previous = debug.SetMemoryLimit(limit)
			logger.Debug("soft memory limit set", "bytes", limit)
			return nil
		},
		OnStop: func(context.Context) error {
			debug.SetMemoryLimit(previous)
			return nil
		},
	})
}

// newFrameBudget is the frame memory all streams share; metrics watch it.
func newFrameBudget(cfg Config, m *metrics.Metrics) *domain.MemoryBudget {
	budget := domain.NewMemoryBudget(cfg.MaxTotalBufferBytes)
	if m != nil {
		m.WatchFrameMemory(budget.Used, budget.Limit)
	}
	return budget
}

func newStreamHandler(cfg Config, inf inference, budget *domain.MemoryBudget, obs httpapi.Observer, mem *captionMemory, logger *slog.Logger) *httpapi.StreamHandler {
	backendName, modelName := captionLabels(cfg)
	return httpapi.NewStreamHandler(httpapi.StreamHandlerConfig{
		Backend: inf.backend,
		Stream: domain.StreamConfig{
			ChunkInterval:     cfg.ChunkInterval,
			MaxBufferFrames:   cfg.MaxBufferFrames,
			MaxBufferBytes:    cfg.MaxBufferBytes,
			Budget:            budget,
			Prompt:            cfg.Prompt,
			InferenceTimeout:  cfg.InferenceTimeout,
			Scene:             cfg.sceneConfig(),
			Analyzer:          jpegscene.Analyzer{},
			MaxFramesPerChunk: cfg.MaxFramesPerChunk,
			Captions:          mem.sink,
			BackendName:       backendName,
			ModelName:         modelName,
		},
		MaxFrameBytes:  cfg.MaxFrameBytes,
		IdleTimeout:    cfg.IdleTimeout,
		MaxStreams:     cfg.MaxStreams,
		SessionOptions: inf.sessionOptions,
		Observer:       obs,
		Logger:         logger,
	})
}

func newPokeHandler(cfg Config, notifier *poke.Client, obs httpapi.Observer, logger *slog.Logger) *httpapi.PokeHandler {
	return httpapi.NewPokeHandler(httpapi.PokeConfig{
		Notifier:  notifier,
		ServerKey: cfg.PokeAPIKey,
		Trust:     cfg.trustPolicy(),
		Observer:  obs,
		Logger:    logger,
	})
}

// newHandler hands the driving adapter what its routes serve from; the
// route table itself is httpapi.Routes.
func newHandler(cfg Config, stream *httpapi.StreamHandler, pokeHandler *httpapi.PokeHandler, m *metrics.Metrics, mem *captionMemory, nud *nudges, ask *asking, logger *slog.Logger) http.Handler {
	status := statusOf(cfg)
	handlers := httpapi.Handlers{
		Stream:          stream,
		Poke:            pokeHandler,
		Page:            webui.Handler(),
		Status:          &status,
		Pprof:           cfg.Pprof,
		Captions:        mem.captionReader,
		Cursors:         mem.cursorSigner(),
		Interventions:   nud.interventionLister,
		RunIntervention: nud.interventionRunner,
		Ask:             ask,
		DeviceData:      deviceData(cfg, mem, logger),
		Me:              access.MeHandler(),
		ManualRunLimit:  access.NewLimiter(cfg.ManualRunsPerMinute, nil),
		AskLimit:        access.NewLimiter(cfg.AsksPerMinute, nil),
		Biometrics:      &httpapi.BiometricRoutes{Intake: mem.biometricIntake, Store: mem.biometricStore},
		Logger:          logger,
	}
	if m != nil {
		handlers.Metrics = m.Handler()
	}
	router := httpapi.NewRouter(handlers)
	// The gate always strips every credential (token or magic word), so
	// nothing behind it (logs included) sees one, and puts the request's
	// principal in its context for the handlers' scoping (app/access.go).
	return newAccessGate(cfg, mem, logger).Wrap(router)
}

func newServer(cfg Config, handler http.Handler, stream *httpapi.StreamHandler, logger *slog.Logger) *Server {
	s := &Server{
		http: &http.Server{
			Addr:              cfg.Addr,
			Handler:           handler,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		},
		stream:   stream,
		logger:   logger,
		ungated:  cfg.MagicWord == "" && !cfg.RequireTokens,
		wordOnly: cfg.MagicWord != "" && !cfg.RequireTokens,
	}
	return s
}

func (s *Server) start(context.Context) error {
	ln, err := net.Listen("tcp", s.http.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.http.Addr, err)
	}
	s.mu.Lock()
	s.addr = ln.Addr()
	s.mu.Unlock()
	s.logger.Info("listening", "addr", ln.Addr().String())
	if s.ungated && !onLoopback(ln.Addr()) {
		s.logger.Warn("no magic word is set and the server listens beyond this machine: anyone who can reach it may read stored captions and use every route; set MAGIC_WORD or listen on 127.0.0.1",
			"addr", ln.Addr().String())
	}
	if s.wordOnly && !onLoopback(ln.Addr()) {
		s.logger.Warn("the magic word is accepted as an admin credential and the server listens beyond this machine: whoever holds the word reads and acts for every device; give each wearer a token (foresight token create) and set FORESIGHT_REQUIRE_TOKENS=true",
			"addr", ln.Addr().String())
	}
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("server stopped", "err", err)
		}
	}()
	return nil
}

// stopStep is one step of a graceful stop.
type stopStep struct {
	name string
	run  func(ctx context.Context) error
}

// stopSequence is the order of a graceful stop:
//  1. the front end: stop accepting, let plain requests finish, and close
//     open streams with 1001, each stream closing its inference session;
//  2. the visual memory (memory), once no stream can hand in a caption:
//     write every queued caption, stop retention, close the database;
//  3. the inference backend, once no session uses it any more;
//  4. the notifier's idle connections, once no request can send.
func stopSequence(s *Server, closeBackend func() error, closeNotifier func(), nud *nudges, mem *captionMemory) []stopStep {
	steps := []stopStep{{"http server and streams", s.stop}}
	// The nudge loop stops right after the streams, before the store it
	// reads and the notifier it delivers through.
	steps = append(steps, nud.stopSteps()...)
	steps = append(steps, mem.stopSteps()...)
	return append(steps,
		stopStep{"inference backend", func(context.Context) error { return closeBackend() }},
		stopStep{"notifier", func(context.Context) error { closeNotifier(); return nil }},
	)
}

// runStop runs steps in order. Every step runs even when an earlier one
// failed or the deadline has passed (the later ones only release resources
// and are quick), and each sees what is left of ctx.
func runStop(ctx context.Context, steps []stopStep, logger *slog.Logger) error {
	var errs []error
	for _, step := range steps {
		if err := step.run(ctx); err != nil {
			logger.Warn("stop step failed", "step", step.name, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", step.name, err))
		}
	}
	return errors.Join(errs...)
}

// stop stops accepting, closes open streams with 1001 and waits for their
// inference sessions to close, all within ctx.
func (s *Server) stop(ctx context.Context) error {
	s.logger.Info("shutting down", "active_streams", s.stream.ActiveStreams())
	// The streams get a little less than the whole budget, so the steps
	// after this one (the backend, the notifier) still run in time.
	streamCtx := ctx
	if deadline, ok := ctx.Deadline(); ok {
		reserve := min(2*time.Second, time.Until(deadline)/4)
		var cancel context.CancelFunc
		streamCtx, cancel = context.WithDeadline(ctx, deadline.Add(-reserve))
		defer cancel()
	}
	streamErr := make(chan error, 1)
	go func() { streamErr <- s.stream.Shutdown(streamCtx) }()
	err := s.http.Shutdown(ctx)
	if err != nil {
		// Out of time: cut the plain requests still running too.
		_ = s.http.Close()
	}
	return errors.Join(err, <-streamErr)
}

// onLoopback reports whether addr accepts connections from this machine only.
func onLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// Instance is a started server.
type Instance struct {
	app    *fx.App
	Server *Server
}

// URL is the server's base URL (http://host:port).
func (i *Instance) URL() string { return "http://" + i.Server.Addr().String() }

// Stop shuts the server down gracefully within ctx.
func (i *Instance) Stop(ctx context.Context) error { return i.app.Stop(ctx) }

// Start builds and starts a server for cfg. logger may be nil (NewLogger).
func Start(ctx context.Context, cfg Config, logger *slog.Logger) (*Instance, error) {
	if logger == nil {
		logger = NewLogger(cfg)
	}
	inst := &Instance{}
	fxLogger := func() fxevent.Logger {
		l := &fxevent.SlogLogger{Logger: logger}
		l.UseLogLevel(slog.LevelDebug)
		return l
	}
	inst.app = fx.New(Module(cfg, logger), fx.Populate(&inst.Server), fx.WithLogger(fxLogger),
		fx.StopTimeout(cfg.ShutdownTimeout))
	if err := inst.app.Err(); err != nil {
		return nil, fmt.Errorf("build server: %w", err)
	}
	if err := inst.app.Start(ctx); err != nil {
		return nil, fmt.Errorf("start server: %w", err)
	}
	return inst, nil
}

// Run starts a server for cfg and serves until ctx ends (the binary ends it
// on SIGINT or SIGTERM), then shuts down within cfg.ShutdownTimeout.
func Run(ctx context.Context, cfg Config) error {
	logger := NewLogger(cfg)
	startCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	inst, err := Start(startCtx, cfg, logger)
	cancel()
	if err != nil {
		return err
	}
	<-ctx.Done()
	logger.Info("stopping", "timeout", cfg.ShutdownTimeout)
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := inst.Stop(stopCtx); err != nil {
		return fmt.Errorf("graceful stop: %w", err)
	}
	logger.Info("stopped")
	return nil
}
