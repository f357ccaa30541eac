// Command foresight is the Foresight server and its companion tools.
//
//	foresight [serve] [flags]   run the server (the default)
//	foresight help              list commands; `foresight serve --help` lists every setting
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/foresight-vision/foresight/app"
	"github.com/foresight-vision/foresight/cmd/foresight/internal/benchcmd"
	"github.com/foresight-vision/foresight/cmd/foresight/internal/replaycmd"
	"github.com/foresight-vision/foresight/cmd/foresight/internal/tokencmd"
)

// command is one subcommand.
type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the server (default)", serve},
		{"gateway", "run the edge proxy in front of a server", runGateway},
		{"replay", "stream a video or a folder of JPEGs to a server, as glasses would", replaycmd.Run},
		{"bench", "load-test /vision/stream and report ack latency and throughput", benchcmd.Run},
		{"device", "set, remove or re-encrypt a device's own Poke key", deviceCmd},
		{"token", "create, list and revoke access tokens (create --device ID | --admin)", tokencmd.Run},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	// After the first signal starts a graceful stop, a second one kills the
	// process at once, as the default handler does.
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	name := "serve"
	if len(args) > 0 && (args[0] == "" || args[0][0] != '-') {
		name, args = args[0], args[1:]
	}
	if name == "help" {
		usage(stdout)
		return 0
	}
	if name == "serve" && len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
		usage(stdout) // `foresight --help` shows the commands first, then serve's settings
		fmt.Fprintln(stdout)
	}
	for _, c := range commands() {
		if c.name == name {
			err := c.run(ctx, args, stdout, stderr)
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				return 0
			default:
				fmt.Fprintf(stderr, "foresight %s: %v\n", name, err)
				return 1
			}
		}
	}
	fmt.Fprintf(stderr, "foresight: unknown command %q\n\n", name)
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: foresight <command> [flags]")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun `foresight <command> --help` for a command's flags.")
}

func deviceCmd(ctx context.Context, args []string, stdout, _ io.Writer) error {
	return app.DeviceCommand(ctx, args, os.Getenv, stdout)
}

func serve(ctx context.Context, args []string, stdout, _ io.Writer) error {
	cfg, err := app.LoadConfig(args, os.Getenv, stdout)
	if err != nil {
		return err
	}
	return app.Run(ctx, cfg)
}
