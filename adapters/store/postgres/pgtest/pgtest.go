// Package pgtest starts a throwaway PostgreSQL server from the binaries of
// Debian's postgresql package, for tests: initdb into a temporary folder,
// listen on a Unix socket there only (no TCP port), stop and delete it when
// the test ends. Where the binaries are missing the test is skipped and says
// why. Run as root (as on CI), the server runs as the unprivileged postgres
// user (else nobody), since PostgreSQL refuses to run as root.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// startTimeout bounds initdb plus waiting for the server to accept connections.
const startTimeout = 60 * time.Second

// Server is one running throwaway cluster.
type Server struct {
	dir     string // holds data/, the socket and the log
	port    int
	dbCount atomic.Int64
}

// FindBinDir returns the folder holding initdb and postgres: the one on PATH,
// else the newest /usr/lib/postgresql/*/bin.
func FindBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, dir := range dirs {
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	return "", errors.New("no initdb/postgres on PATH or under /usr/lib/postgresql/*/bin (install Debian's postgresql package)")
}

func versionOf(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// Start starts a cluster for tb and stops it in tb.Cleanup. It skips tb
// when PostgreSQL is not installed; any other failure fails tb.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := FindBinDir()
	if err != nil {
		tb.Skipf("pgtest: skipping, no PostgreSQL: %v", err)
	}
	cred, err := credential()
	if err != nil {
		tb.Skipf("pgtest: skipping: %v", err)
	}
	// Our own folder rather than tb.TempDir(): its parents must be
	// traversable by the server's user, and the socket path short (< 108 bytes).
	tmp := os.TempDir()
	if len(tmp) > 60 {
		tmp = "/tmp"
	}
	dir, err := os.MkdirTemp(tmp, "pgtest-")
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			tb.Fatalf("pgtest: hand the folder to uid %d: %v", cred.Uid, err)
		}
	}
	s := &Server{dir: dir, port: 5432}
	data := filepath.Join(dir, "data")

	initdb := command(cred, dir, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		tb.Skipf("pgtest: skipping, initdb failed: %v\n%s", err, out)
	}

	logFile, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	server := command(cred, dir, filepath.Join(bin, "postgres"), "-D", data,
		"-k", dir, "-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=", // the Unix socket only
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200")
	server.Stdout, server.Stderr = logFile, logFile
	if err := server.Start(); err != nil {
		_ = logFile.Close()
		tb.Fatalf("pgtest: start postgres: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- server.Wait() }()
	stop := func() {
		_ = server.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = server.Process.Kill()
			<-exited
		}
		_ = logFile.Close()
	}
	tb.Cleanup(stop)

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err == nil {
			_ = conn.Close(ctx)
			return s
		}
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
			tb.Fatalf("pgtest: postgres exited: %v\n%s", err, log)
		case <-ctx.Done():
			log, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
			tb.Fatalf("pgtest: postgres not ready after %v: %v\n%s", startTimeout, err, log)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// DSN is the connection string for database db as the superuser.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("host=%s port=%d user=postgres dbname=%s sslmode=disable", s.dir, s.port, db)
}

// NewDatabase creates an empty database and returns its DSN.
func (s *Server) NewDatabase(tb testing.TB) string {
	tb.Helper()
	name := fmt.Sprintf("test_%d", s.dbCount.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		tb.Fatalf("pgtest: connect: %v", err)
	}
	defer func() { _ = conn.Close(ctx) }()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	return s.DSN(name)
}

// credential says whom to run the server as: nil (ourselves) unless we
// are root, then the postgres user, else nobody.
func credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 == nil && err2 == nil {
			return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
		}
	}
	return nil, errors.New("running as root and no postgres or nobody user to run PostgreSQL as")
}

func command(cred *syscall.Credential, dir, name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	// A clean environment: the server's user may not read our HOME or TMPDIR.
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir, "TMPDIR=" + dir, "LC_ALL=C"}
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	return cmd
}

// String names the server for test logs.
func (s *Server) String() string { return "pgtest " + strings.TrimPrefix(s.dir, os.TempDir()) }
