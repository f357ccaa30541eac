// Command modaldouble runs the Modal test double (adapters/modal/modaltest)
// as a standalone process, so `foresight serve` can be load-tested with
// inference on, without Modal: point the server at it with
// MODAL_SERVER_URL (printed on the first line of stdout) and any non-empty
// MODAL_TOKEN_ID and MODAL_TOKEN_SECRET. It runs until SIGINT or SIGTERM.
// See docs/benchmarks.md ("Inference on against off").
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/foresight-vision/foresight/adapters/modal/modaltest"
)

func main() {
	delay := flag.Duration("delay", 0, "how long each infer_chunk call takes")
	flag.Parse()
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
