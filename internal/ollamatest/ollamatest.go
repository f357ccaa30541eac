// Package ollamatest starts a real model server for tests, in the manner of
// net/http/httptest: `ollama serve` on a free 127.0.0.1 port, with all its
// state (models, keys, HOME) in the test's temporary folder, serving one
// model: a tiny Gemma 3 vision model with random weights (its answers are
// noise; the server around them is real). The server is stopped, with every
// process it started, when the test ends.
//
// The binary and the model are built by internal/realmodel/build.sh (which
// `make realmodel`, and so `make check`, runs) and found through two
// environment variables, which the Makefile exports from bin/realmodel.env:
//
//	FORESIGHT_OLLAMA_BIN    the ollama binary
//	FORESIGHT_OLLAMA_MODEL  the model, a GGUF file
//
// Where they are missing the test is skipped and says why (the build
// script's reason, when it left one in FORESIGHT_OLLAMA_UNAVAILABLE); with
// CI=true it fails instead, since on CI these tests must run.
//
// This package uses the standard library only: nothing in the main module
// depends on Ollama.
package ollamatest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Environment variables.
const (
	EnvBin         = "FORESIGHT_OLLAMA_BIN"
	EnvModel       = "FORESIGHT_OLLAMA_MODEL"
	EnvUnavailable = "FORESIGHT_OLLAMA_UNAVAILABLE"
)

// ModelName is the name the model is registered under.
const ModelName = "gemma3-tiny-vision"

// Bounds on waiting for the server. Generous: CI has 2 shared cores and
// `go test` runs packages in parallel. They bound a wait; they assert no
// speed.
const (
	startTimeout  = 60 * time.Second // until the HTTP API answers
	createTimeout = 60 * time.Second // upload and register the model
	stopTimeout   = 10 * time.Second // after SIGTERM, before SIGKILL
)

// Server is one running `ollama serve`.
type Server struct {
	// BaseURL is the OpenAI-compatible API, "http://127.0.0.1:PORT/v1":
	// what Foresight's openai backend is given.
	BaseURL string
	// URL is the server's root, "http://127.0.0.1:PORT", for Ollama's own
	// API under /api.
	URL string
	// Model is the name of the model it serves.
	Model string

	dir    string // the server's state, under tb.TempDir()
	pid    int
	client *http.Client
}

// PID is the process id of `ollama serve`, which leads its own process
// group (the model runner it spawns is in it too).
func (s *Server) PID() int { return s.pid }

// Log returns what the server has written to its log so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "ollama.log"))
	return string(b)
}

// Paths returns the binary and the model the environment names, or why
// they cannot be used.
func Paths() (bin, model string, err error) {
	bin, model = os.Getenv(EnvBin), os.Getenv(EnvModel)
	if bin == "" || model == "" {
		why := fmt.Sprintf("%s and %s are not set (run `make realmodel`, then `make test`; or set them to an ollama binary and a GGUF model)", EnvBin, EnvModel)
		if reason := os.Getenv(EnvUnavailable); reason != "" {
			why = "the model server could not be built: " + reason
		}
		return "", "", errors.New(why)
	}
	for _, p := range []string{bin, model} {
		if _, err := os.Stat(p); err != nil {
			return "", "", fmt.Errorf("%v (run `make realmodel` to rebuild the cache)", err)
		}
	}
	return bin, model, nil
}

// unavailable skips tb, or fails it under CI=true.
func unavailable(tb testing.TB, err error) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("ollamatest: no model server, and CI=true requires one: %v", err)
	}
	tb.Skipf("ollamatest: skipping, no model server: %v", err)
}

// Start starts `ollama serve` for tb, registers the model as ModelName and
// stops the server in tb.Cleanup. env adds KEY=VALUE settings for the
// server (OLLAMA_NUM_PARALLEL=4, say). It skips tb when the binary or the
// model is missing (fails it under CI=true); any other failure fails tb.
func Start(tb testing.TB, env ...string) *Server {
	tb.Helper()
	bin, model, err := Paths()
	if err != nil {
		unavailable(tb, err)
	}
	began := time.Now()
	dir := tb.TempDir()
	for _, sub := range []string{"home", "models", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o755); err != nil {
			tb.Fatalf("ollamatest: %v", err)
		}
	}
	s := &Server{dir: dir, Model: ModelName, client: &http.Client{}}
	tb.Cleanup(s.client.CloseIdleConnections)

	// A free port can be taken between our probe and the server's bind;
	// then the server exits at once and we try another.
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("ollamatest: %v", err)
		}
		err = s.start(tb, bin, port, env)
		if err == nil {
			break
		}
		if !errors.Is(err, errExited) || attempt == 3 {
			tb.Fatalf("ollamatest: %v\n%s", err, tail(s.Log(), 4000))
		}
	}
	serving := time.Now()
	if err := s.register(model); err != nil {
		tb.Fatalf("ollamatest: register %s: %v\n%s", model, err, tail(s.Log(), 4000))
	}
	tb.Logf("ollamatest: %s serves %s (pid %d; answering after %v, model registered after %v more)",
		s.BaseURL, s.Model, s.pid, serving.Sub(began).Round(time.Millisecond), time.Since(serving).Round(time.Millisecond))
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("ollamatest: the server's log ends:\n%s", tail(s.Log(), 4000))
		}
	})
	return s
}

var errExited = errors.New("ollama serve exited")

// start runs the server on port and waits until it answers. On error the
// server is stopped.
func (s *Server) start(tb testing.TB, bin string, port int, extra []string) error {
	tb.Helper()
	host := "127.0.0.1:" + strconv.Itoa(port)
	s.URL = "http://" + host
	s.BaseURL = s.URL + "/v1"

	logFile, err := os.OpenFile(filepath.Join(s.dir, "ollama.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child has its own descriptor

	cmd := exec.Command(bin, "serve")
	cmd.Dir = s.dir
	// A clean environment: nothing of the developer's own Ollama (its
	// OLLAMA_HOST, its models) and no proxies; loopback only.
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + filepath.Join(s.dir, "home"),
		"TMPDIR=" + filepath.Join(s.dir, "tmp"),
		"OLLAMA_HOST=" + host,
		"OLLAMA_MODELS=" + filepath.Join(s.dir, "models"),
		"OLLAMA_NO_CLOUD=1",          // no remote models, no web search
		"OLLAMA_NOPRUNE=1",           // nothing to prune in a new folder
		"OLLAMA_CONTEXT_LENGTH=4096", // else it depends on the machine's memory
		"OLLAMA_KEEP_ALIVE=-1",       // keep the model loaded until we stop
		"GIN_MODE=release",           // no route table in the log
	}, extra...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so that stopping it stops the runner it spawns.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s serve: %w", bin, err)
	}
	s.pid = cmd.Process.Pid
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() { stopGroup(cmd.Process.Pid, exited) }

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		err := s.ping(ctx)
		if err == nil {
			tb.Cleanup(stop)
			return nil
		}
		select {
		case <-exited:
			stop()
			return fmt.Errorf("%w before answering: %s", errExited, cmd.ProcessState)
		case <-ctx.Done():
			stop()
			return fmt.Errorf("ollama serve not answering after %v: %v", startTimeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stopGroup ends the process group pgid: SIGTERM, then SIGKILL for what is
// left after stopTimeout, and waits until no process of it remains.
func stopGroup(pgid int, exited <-chan struct{}) {
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(stopTimeout):
	}
	// The runner may outlive the server; and the server may not have
	// stopped.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-exited
	for deadline := time.Now().Add(stopTimeout); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
	}
}

func (s *Server) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/api/version", nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /api/version: %s", resp.Status)
	}
	return nil
}

// register uploads the GGUF file as a blob and creates ModelName from it
// (what `ollama create` does with a Modelfile of `FROM <file>` and
// `PARAMETER num_thread 1`). The model's GGUF carries Gemma 3's chat
// template, which Ollama recognises: the model gets the gemma3-instruct
// template and its <end_of_turn> stop.
func (s *Server) register(model string) error {
	ctx, cancel := context.WithTimeout(context.Background(), createTimeout)
	defer cancel()

	data, err := os.ReadFile(model)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	if _, err := s.call(ctx, http.MethodPost, "/api/blobs/"+digest, "application/octet-stream", bytes.NewReader(data)); err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]any{
		"model": ModelName,
		"files": map[string]string{filepath.Base(model): digest},
		// One thread: ggml's threads wait for each other at every step by
		// spinning, and on a busy machine (2 cores, `go test` building and
		// running other packages) a second thread made each completion
		// about 10 times slower (docs/providers.md, measured).
		"parameters": map[string]any{"num_thread": 1},
		"stream":     false,
	})
	_, err = s.call(ctx, http.MethodPost, "/api/create", "application/json", bytes.NewReader(body))
	return err
}

// call makes one request to the server and returns the body of a 2xx
// answer, or an error with the status and body.
func (s *Server) call(ctx context.Context, method, path, contentType string, body io.Reader) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, s.URL+path, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
