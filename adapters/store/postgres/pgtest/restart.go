package pgtest

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Stop shuts the server down (fast: open sessions are ended) and waits
// until it is gone, so a test can see what its clients do without a
// database. Restart brings it back on the same data and socket.
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	bin, cred := s.tools(tb)
	stop := command(cred, s.dir, filepath.Join(bin, "pg_ctl"), "stop", "-D", filepath.Join(s.dir, "data"),
		"-m", "fast", "-w", "-t", "30")
	if out, err := stop.CombinedOutput(); err != nil {
		tb.Fatalf("pgtest: pg_ctl stop: %v\n%s", err, out)
	}
}

// Restart starts the server again after Stop, on the same data folder,
// socket and port, waits until it accepts connections, and stops it when
// tb ends.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	bin, cred := s.tools(tb)
	logFile, err := os.OpenFile(filepath.Join(s.dir, "postgres.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	// The same settings Start uses.
	server := command(cred, s.dir, filepath.Join(bin, "postgres"), "-D", filepath.Join(s.dir, "data"),
		"-k", s.dir, "-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200")
	server.Stdout, server.Stderr = logFile, logFile
	if err := server.Start(); err != nil {
		_ = logFile.Close()
		tb.Fatalf("pgtest: restart postgres: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- server.Wait() }()
	tb.Cleanup(func() {
		_ = server.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = server.Process.Kill()
			<-exited
		}
		_ = logFile.Close()
	})

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err == nil {
			_ = conn.Close(ctx)
			return
		}
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
			tb.Fatalf("pgtest: restarted postgres exited: %v\n%s", err, log)
		case <-ctx.Done():
			log, _ := os.ReadFile(filepath.Join(s.dir, "postgres.log"))
			tb.Fatalf("pgtest: restarted postgres not ready after %v: %v\n%s", startTimeout, err, log)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tools finds the binaries and the user Start ran the server with.
func (s *Server) tools(tb testing.TB) (bin string, cred *syscall.Credential) {
	tb.Helper()
	bin, err := FindBinDir()
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	cred, err = credential()
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	return bin, cred
}
