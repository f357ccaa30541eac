// Command modaldouble runs the Modal test double (adapters/inference/modal/modaltest)
// as a standalone process, so `foresight serve` can be load-tested with
// inference on, without Modal: point the server at it with
// MODAL_SERVER_URL (printed on the first line of stdout) and any non-empty
// MODAL_TOKEN_ID and MODAL_TOKEN_SECRET. It runs until SIGINT or SIGTERM.
//
// With --floor URL it is instead a client of a running double: it makes a
// pair of plain gRPC calls per stream per interval and prints the CPU each
// pair cost, the floor under a modal-go chunk call (two unary RPCs).
// See docs/benchmarks.md ("Inference on against off").
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/foresight-vision/foresight/adapters/inference/modal/modaltest"
)

func main() {
	delay := flag.Duration("delay", 0, "how long each infer_chunk call takes")
	floor := flag.String("floor", "", "measure the RPC floor against the double at this URL instead of serving")
	streams := flag.Int("streams", 500, "with --floor: callers, each making one pair per interval")
	interval := flag.Duration("interval", time.Second, "with --floor: how often each caller makes its pair")
	duration := flag.Duration("duration", 8*time.Second, "with --floor: how long to measure")
	flag.Parse()
	if *floor != "" {
		line, err := runFloor(floorConfig{url: *floor, streams: *streams, interval: *interval, duration: *duration})
		if err != nil {
			fmt.Fprintln(os.Stderr, "modaldouble:", err)
			os.Exit(1)
		}
		fmt.Println(line)
		return
	}
	srv, err := modaltest.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "modaldouble:", err)
		os.Exit(1)
	}
	defer srv.Close()
	srv.SetBehavior(modaltest.Behavior{Delay: *delay})
	srv.SetForgetFrames(true) // a load run would otherwise keep every frame
	fmt.Printf("MODAL_SERVER_URL=%s\n", srv.URL())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
}
