package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/inference/modal/modaltest"
	"github.com/foresight-vision/foresight/adapters/protocol/visionclient"
	"github.com/foresight-vision/foresight/adapters/store/sqlite"
	"github.com/foresight-vision/foresight/ports"
)

// childEnv, when set, makes this test binary run main() instead of its
// tests: the SIGTERM test starts itself as the real server process, with
// main's own signal handling, without a separate go build.
const childEnv = "FORESIGHT_TEST_RUN_MAIN"

func init() {
	if os.Getenv(childEnv) == "1" {
		main() // exits
	}
}

// seenCaption is a caption as the client saw it on an ack.
type seenCaption struct {
	text         string
	startS, endS float64
}

func TestSIGTERMMidStreamKeepsEveryCaptionSeen(t *testing.T) {
	fake := modaltest.New(t)
	var n atomic.Int64
	fake.SetReply(func(c modaltest.Call) (any, error) {
		reply, err := modaltest.DefaultReply(c)
		if m, ok := reply.(map[string]any); ok && c.Method == modaltest.MethodInferChunk {
			m["caption"] = fmt.Sprintf("shot%d the wearer pours coffee", n.Add(1))
		}
		return reply, err
	})
	self, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	db := filepath.Join(dir, "f.db")
	addr := freeAddr(t)

	// A clean environment: nothing of the developer's FORESIGHT_* or
	// ~/.modal.toml reaches the server.
	server := exec.Command(self, "serve", "--addr", addr)
	server.Env = []string{
		childEnv + "=1",
		"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + dir,
		"FORESIGHT_DATABASE_URL=sqlite:" + db,
		"VISION_CHUNK_SECONDS=0.2",
		"FORESIGHT_SHUTDOWN_TIMEOUT=15s",
		"MODAL_SERVER_URL=" + fake.URL(),
		"MODAL_TOKEN_ID=ak-server", "MODAL_TOKEN_SECRET=as-server",
		"MODAL_CONFIG_PATH=" + filepath.Join(dir, "no-modal.toml"),
	}
	var logs bytes.Buffer // read only after Wait
	server.Stdout, server.Stderr = &logs, &logs
	require.NoError(t, server.Start())
	exited := make(chan error, 1)
	go func() { exited <- server.Wait() }()
	t.Cleanup(func() { // a failed test still leaves no process behind
		select {
		case <-exited:
		default:
			_ = server.Process.Kill()
			<-exited
		}
	})

	waitHealthy(t, addr, exited)
	conn, err := visionclient.Dial(context.Background(), "ws://"+addr+"/vision/stream?device=glasses-1",
		visionclient.Options{HandshakeTimeout: 10 * time.Second})
	require.NoError(t, err)
	defer func() { _ = conn.Close() }()

	var seen []seenCaption
	note := func(ack visionclient.Ack) {
		if ack.HasCaption {
			seen = append(seen, seenCaption{ack.Caption, number(ack.Fields["chunk_start_s"]), number(ack.Fields["chunk_end_s"])})
		}
	}
	// Stream until several captions were seen and, just after one arrived,
	// captions still wait in the store's queue: the signal then lands
	// while there is something to lose.
	for frames := 0; ; frames++ {
		require.Less(t, frames, 20_000, "too few captions, or never one queued: %v", seen)
		require.NoError(t, conn.SendFrame([]byte("jpeg-bytes")))
		ack, err := conn.ReadAck()
		require.NoError(t, err)
		note(ack)
		if ack.HasCaption && len(seen) >= 5 && metricValue(t, addr, "foresight_caption_queue_depth") > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond) // a camera's pace, loosely: chunks of 0.2 s hold frames
	}
	seenBefore := len(seen)

	// SIGTERM while the stream is open; keep streaming until the server closes it.
	require.NoError(t, server.Process.Signal(syscall.SIGTERM))
	closeCode, acksAfter := 0, 0
	for ; acksAfter < 100_000; acksAfter++ {
		if err := conn.SendFrame([]byte("jpeg-bytes")); err != nil {
			break
		}
		ack, err := conn.ReadAck()
		if err != nil {
			var ce *visionclient.CloseError
			if errors.As(err, &ce) {
				closeCode = ce.Code
			}
			break
		}
		note(ack)
	}

	select {
	case err := <-exited:
		exited <- err // for the cleanup
		require.NoError(t, err, "exit status 0 after SIGTERM\n%s", logs.String())
	case <-time.After(30 * time.Second): // past the 15 s shutdown timeout
		t.Fatalf("the server did not exit after SIGTERM")
	}
	http.DefaultClient.CloseIdleConnections()
	if closeCode != 0 {
		assert.Equal(t, 1001, closeCode, "the stream is closed as going away")
	}

	stored := storedCaptions(t, db, "glasses-1")
	require.NotEmpty(t, seen)
	for _, c := range seen {
		got, ok := stored[c.text]
		if assert.True(t, ok, "caption %q seen by the client is stored\n%s", c.text, logs.String()) {
			assert.InDelta(t, c.startS, got.ChunkStartS, 1e-9, c.text)
			assert.InDelta(t, c.endS, got.ChunkEndS, 1e-9, c.text)
		}
	}
	t.Logf("%d captions seen (%d after SIGTERM, on %d acks; close code %d), %d stored",
		len(seen), len(seen)-seenBefore, acksAfter, closeCode, len(stored))
}

// waitHealthy polls /health until the server answers, it exits, or a
// deadline passes.
func waitHealthy(t *testing.T, addr string, exited chan error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + addr + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				http.DefaultClient.CloseIdleConnections()
				return
			}
		}
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("the server exited before it was healthy: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("the server was not healthy within 30 s")
}

// storedCaptions reads every caption of device from the SQLite file, by text.
func storedCaptions(t *testing.T, path, device string) map[string]ports.Caption {
	t.Helper()
	store, err := sqlite.Open(context.Background(), path)
	require.NoError(t, err)
	defer func() { require.NoError(t, store.Close()) }()
	out := map[string]ports.Caption{}
	q := ports.CaptionQuery{Device: device, Limit: ports.MaxCaptionLimit}
	for {
		page, err := store.QueryCaptions(context.Background(), q)
		require.NoError(t, err)
		for _, c := range page.Captions {
			out[c.Text] = c
		}
		if page.NextCursor == "" {
			return out
		}
		q.Cursor = page.NextCursor
	}
}

// metricValue reads one unlabelled sample from GET /metrics (-1 when absent).
func metricValue(t *testing.T, addr, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err, line)
			return f
		}
	}
	return -1
}

// number reads an ack's JSON number field.
func number(v any) float64 {
	n, ok := v.(interface{ Float64() (float64, error) })
	if !ok {
		return -1
	}
	f, _ := n.Float64()
	return f
}
