package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/foresight-vision/foresight/adapters/gateway"
)

// runGateway is `foresight gateway`: the standalone edge proxy that stands
// where the original's Cloudflare Worker stood.
func runGateway(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("foresight gateway", flag.ContinueOnError)
	fs.SetOutput(stdout)
	env := func(name, def string) string {
		if v := strings.TrimSpace(os.Getenv(name)); v != "" {
			return v
		}
		return def
	}
	upstream := fs.String("upstream", env("FORESIGHT_GATEWAY_UPSTREAM", ""), "server base URL, e.g. http://127.0.0.1:8080 (env FORESIGHT_GATEWAY_UPSTREAM; required)")
	addr := fs.String("addr", env("FORESIGHT_GATEWAY_ADDR", ":8081"), "listen address (env FORESIGHT_GATEWAY_ADDR)")
	maxConns := fs.Int("max-conns", envInt("FORESIGHT_GATEWAY_MAX_CONNS", gateway.DefaultMaxConns), "requests and WebSocket relays in flight; more get 503 (env FORESIGHT_GATEWAY_MAX_CONNS)")
	dialTimeout := fs.Duration("dial-timeout", gateway.DefaultDialTimeout, "limit on connecting to the upstream")
	headerTimeout := fs.Duration("response-header-timeout", gateway.DefaultResponseHeaderTimeout, "limit on the upstream's response headers; over it 504")
	logLevel := fs.String("log-level", env("FORESIGHT_LOG_LEVEL", "info"), "debug, info, warn or error (env FORESIGHT_LOG_LEVEL)")
	fs.Usage = func() {
		fmt.Fprintln(stdout, "Usage: foresight gateway --upstream URL [flags]")
		fmt.Fprintln(stdout, "\nThe magic word (MAGIC_WORD or FORESIGHT_MAGIC_WORD) is required on every path but /health;")
		fmt.Fprintln(stdout, "without one configured every such request gets 403. Secrets injected as headers, each only")
		fmt.Fprintln(stdout, "when set: FORESIGHT_POKE_API_KEY, FORESIGHT_MODAL_TOKEN_ID, FORESIGHT_MODAL_TOKEN_SECRET,")
		fmt.Fprintln(stdout, "FORESIGHT_MODAL_APP_NAME, FORESIGHT_MODAL_CLASS_NAME. FORESIGHT_UPSTREAM_MAGIC_WORD is sent")
		fmt.Fprintln(stdout, "to a server that runs its own gate.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	g, err := gateway.New(gateway.Config{
		Upstream:              *upstream,
		MagicWord:             env("MAGIC_WORD", env("FORESIGHT_MAGIC_WORD", "")),
		UpstreamMagicWord:     env("FORESIGHT_UPSTREAM_MAGIC_WORD", ""),
		Secrets:               gateway.SecretsFromEnv(os.Getenv),
		MaxConns:              *maxConns,
		DialTimeout:           *dialTimeout,
		ResponseHeaderTimeout: *headerTimeout,
		ShutdownTimeout:       10 * time.Second,
		Logger:                logger,
	})
	if err != nil {
		return err
	}
	return g.ListenAndServe(ctx, *addr)
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(strings.TrimSpace(os.Getenv(name))); err == nil {
		return n
	}
	return def
}
