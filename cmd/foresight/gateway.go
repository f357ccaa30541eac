package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/foresight-vision/foresight/adapters/frontend/gateway"
	"github.com/foresight-vision/foresight/internal/settings"
)

// gatewayConfig is what `foresight gateway` reads from flags and environment.
type gatewayConfig struct {
	Upstream          string
	Addr              string
	MaxConns          int
	DialTimeout       time.Duration
	HeaderTimeout     time.Duration
	LogLevel          slog.Level
	MagicWord         string
	UpstreamMagicWord string
}

// gatewaySettings is the gateway's settings table (docs/configuration.md).
// The injected secrets are read by gateway.SecretsFromEnv.
var gatewaySettings = []settings.Setting[gatewayConfig]{
	{Flag: "upstream", Envs: []string{"FORESIGHT_GATEWAY_UPSTREAM"}, Help: "server base URL, e.g. http://127.0.0.1:8080 (required)",
		Apply: settings.String(func(c *gatewayConfig) *string { return &c.Upstream })},
	{Flag: "addr", Envs: []string{"FORESIGHT_GATEWAY_ADDR"}, Default: ":8081", Help: "listen address",
		Apply: settings.String(func(c *gatewayConfig) *string { return &c.Addr })},
	{Flag: "max-conns", Envs: []string{"FORESIGHT_GATEWAY_MAX_CONNS"}, Default: fmt.Sprint(gateway.DefaultMaxConns), Help: "requests and WebSocket relays in flight; more get 503",
		Apply: settings.IntAtLeast(1, func(c *gatewayConfig) *int { return &c.MaxConns })},
	{Flag: "dial-timeout", Default: gateway.DefaultDialTimeout.String(), Help: "limit on connecting to the upstream",
		Apply: settings.Duration(func(c *gatewayConfig) *time.Duration { return &c.DialTimeout })},
	{Flag: "response-header-timeout", Default: gateway.DefaultResponseHeaderTimeout.String(), Help: "limit on the upstream's response headers; over it 504",
		Apply: settings.Duration(func(c *gatewayConfig) *time.Duration { return &c.HeaderTimeout })},
	{Flag: "log-level", Envs: []string{"FORESIGHT_LOG_LEVEL"}, Default: "info", Help: "debug, info, warn or error",
		Apply: func(c *gatewayConfig, v string) error { return c.LogLevel.UnmarshalText([]byte(v)) }},
	{Envs: []string{"MAGIC_WORD", "FORESIGHT_MAGIC_WORD"}, Secret: true, Help: "required on every path but /health; unset means every such request gets 403",
		Apply: settings.String(func(c *gatewayConfig) *string { return &c.MagicWord })},
	{Envs: []string{"FORESIGHT_UPSTREAM_MAGIC_WORD"}, Secret: true, Help: "sent as x-magic-word to a server that runs its own gate",
		Apply: settings.String(func(c *gatewayConfig) *string { return &c.UpstreamMagicWord })},
}

// runGateway is `foresight gateway`: the standalone edge proxy that stands
// where the original's Cloudflare Worker stood.
func runGateway(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("foresight gateway", flag.ContinueOnError)
	fs.SetOutput(stdout)
	fs.Usage = func() {
		fmt.Fprintln(stdout, "Usage: foresight gateway --upstream URL [flags]")
		fmt.Fprintln(stdout, "\nSecrets injected as headers, each only when set: FORESIGHT_POKE_API_KEY,")
		fmt.Fprintln(stdout, "FORESIGHT_MODAL_TOKEN_ID, FORESIGHT_MODAL_TOKEN_SECRET, FORESIGHT_MODAL_APP_NAME,")
		fmt.Fprintln(stdout, "FORESIGHT_MODAL_CLASS_NAME. A flag beats the environment.")
		fmt.Fprintln(stdout)
		settings.PrintTable(stdout, gatewaySettings)
	}
	var cfg gatewayConfig
	if err := settings.Load(&cfg, gatewaySettings, fs, args, os.Getenv); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	g, err := gateway.New(gateway.Config{
		Upstream:              strings.TrimSpace(cfg.Upstream),
		MagicWord:             cfg.MagicWord,
		UpstreamMagicWord:     cfg.UpstreamMagicWord,
		Secrets:               gateway.SecretsFromEnv(os.Getenv),
		MaxConns:              cfg.MaxConns,
		DialTimeout:           cfg.DialTimeout,
		ResponseHeaderTimeout: cfg.HeaderTimeout,
		ShutdownTimeout:       10 * time.Second,
		Logger:                logger,
	})
	if err != nil {
		return err
	}
	return g.ListenAndServe(ctx, cfg.Addr)
}
