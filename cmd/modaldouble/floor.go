package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	pb "github.com/modal-labs/libmodal/modal-go/proto/modal_proto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// floorConfig paces the RPC floor client: streams callers, each making a
// pair of unary calls once per interval, for duration.
type floorConfig struct {
	url      string
	streams  int
	interval time.Duration
	duration time.Duration
}

// runFloor measures what two plain grpc-go unary calls cost this process in
// CPU, at the rate a model server makes its chunk calls: a modal-go chunk
// call is two unary RPCs (FunctionMap, then FunctionGetOutputs), so this is
// the floor under any Modal call however thin the adapter. The calls are
// AuthTokenGet, the cheapest RPC the double serves, over a connection with
// modal-go's window sizes and the same grpc-go, but without modal-go's
// interceptors (headers, auth token, retry, timeout) or its message-size
// options, and with gRPC's default buffer pool (this command does not set
// the binary's): a real modal-go call costs at least this, so the floor errs
// low.
func runFloor(cfg floorConfig) (string, error) {
	target, ok := strings.CutPrefix(cfg.url, "http://")
	if !ok {
		return "", fmt.Errorf("floor: want an http:// URL, got %q", cfg.url)
	}
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<20),
		grpc.WithInitialConnWindowSize(64<<20),
	)
	if err != nil {
		return "", fmt.Errorf("floor: dial: %w", err)
	}
	defer conn.Close()
	client := pb.NewModalClientClient(conn)
	ctx := metadata.AppendToOutgoingContext(context.Background(),
		"x-modal-token-id", "ak-floor", "x-modal-token-secret", "as-floor")
	if _, err := client.AuthTokenGet(ctx, &pb.AuthTokenGetRequest{}); err != nil {
		return "", fmt.Errorf("floor: first call: %w", err)
	}

	var pairs, failures atomic.Int64
	var wg sync.WaitGroup
	c0, t0 := processCPU(), time.Now()
	deadline := t0.Add(cfg.duration)
	for i := range cfg.streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the callers over one interval, as streams' chunks are.
			time.Sleep(time.Duration(i) * cfg.interval / time.Duration(cfg.streams))
			tick := time.NewTicker(cfg.interval)
			defer tick.Stop()
			for time.Now().Before(deadline) {
				_, err1 := client.AuthTokenGet(ctx, &pb.AuthTokenGetRequest{})
				_, err2 := client.AuthTokenGet(ctx, &pb.AuthTokenGetRequest{})
				if err1 != nil || err2 != nil {
					failures.Add(1)
				} else {
					pairs.Add(1)
				}
				<-tick.C
			}
		}()
	}
	wg.Wait()
	cpu := processCPU() - c0
	n := max(pairs.Load(), 1)
	return fmt.Sprintf("rpc floor: %d pairs (%d failed) in %v, cpu %v, %.1f us per pair",
		pairs.Load(), failures.Load(), time.Since(t0).Round(time.Millisecond), cpu.Round(time.Millisecond),
		float64(cpu.Microseconds())/float64(n)), nil
}

// processCPU is the user and system time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
