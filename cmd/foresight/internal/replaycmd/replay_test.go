package replaycmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/domain/domaintest"
	"github.com/foresight-vision/foresight/ports"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type server struct {
	url     string // http:// base, as a user would paste it
	backend *domaintest.Backend
	mu      sync.Mutex
	magic   []string
}

func (s *server) magicWords() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.magic...)
}

// startServer runs the real stream handler; every chunk is answered with a
// caption so inference events show up.
func startServer(t *testing.T) *server {
	t.Helper()
	s := &server{backend: &domaintest.Backend{Infer: func(_ context.Context, c ports.Chunk) (ports.Result, error) {
		return ports.Result{Caption: fmt.Sprintf("saw %d frames", len(c.Frames)), LatencyMS: 1, Set: ports.ResultCaption | ports.ResultLatency}, nil
	}}}
	h := httpapi.NewStreamHandler(httpapi.StreamHandlerConfig{
		Backend: s.backend,
		Stream:  domain.StreamConfig{},
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.magic = append(s.magic, r.URL.Query().Get("magic_word"))
		s.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		assert.NoError(t, h.Shutdown(ctx))
		srv.Close()
	})
	s.url = srv.URL
	return s
}

// writeJPEGs writes n small real JPEG files named so that name order is
// frame order, and returns the folder.
func writeJPEGs(t *testing.T, n int) (string, [][]byte) {
	t.Helper()
	dir := t.TempDir()
	var all [][]byte
	for i := range n {
		img := image.NewRGBA(image.Rect(0, 0, 32, 24))
		for x := range 32 {
			for y := range 24 {
				img.Set(x, y, color.RGBA{uint8(i * 40), uint8(x * 8), uint8(y * 10), 255})
			}
		}
		var b bytes.Buffer
		require.NoError(t, jpeg.Encode(&b, img, &jpeg.Options{Quality: 80}))
		require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.jpg", i)), b.Bytes(), 0o600))
		all = append(all, b.Bytes())
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("ignored"), 0o600))
	return dir, all
}

type summary struct {
	SentFrames      int     `json:"sent_frames"`
	InferenceEvents int     `json:"inference_events"`
	SendFPS         float64 `json:"send_fps"`
	URL             string  `json:"url"`
}

func run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	err := Run(ctx, args, &out, &errb)
	return out.String(), errb.String(), err
}

func lastLine(t *testing.T, out string) summary {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	var s summary
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &s), "last line %q", lines[len(lines)-1])
	return s
}

func TestReplayFramesFolder(t *testing.T) {
	srv := startServer(t)
	dir, frames := writeJPEGs(t, 6)
	// Real cadence (10 fps), not --no-sleep: captions come back on a later
	// ack, so the tool must give the server's background call a moment, as
	// a camera does.
	out, _, err := run(t, "--url", srv.url, "--frames", dir, "--magic-word", "s3cret", "--fps", "10", "--log-every", "2")
	require.NoError(t, err)

	s := lastLine(t, out)
	assert.Equal(t, 6, s.SentFrames)
	assert.Equal(t, "ws"+strings.TrimPrefix(srv.url, "http")+"/vision/stream", s.URL)
	assert.NotContains(t, out, "s3cret", "the magic word must never be printed")
	assert.Equal(t, []string{"s3cret"}, srv.magicWords(), "the magic word goes in the query")
	// The summary is Python's json.dumps layout, fps a float.
	assert.Regexp(t, `^\{"sent_frames": 6, "inference_events": \d+, "send_fps": 10\.0, "url": "ws://127\.0\.0\.1:\d+/vision/stream"\}$`,
		strings.Split(strings.TrimRight(out, "\n"), "\n")[strings.Count(strings.TrimRight(out, "\n"), "\n")])
	// Progress lines every 2 frames, Python dict repr.
	for _, f := range []int{2, 4, 6} {
		assert.Contains(t, out, fmt.Sprintf("ack {'frame': %d, 'bytes': %d}\n", f, len(frames[f-1])))
	}
	assert.NotContains(t, out, "ack {'frame': 3,")
	// Every event line is counted and looks like the original's print.
	events := strings.Count(out, "\ninference {") + boolInt(strings.HasPrefix(out, "inference {"))
	assert.Equal(t, s.InferenceEvents, events)
	assert.Positive(t, events, "a caption should come back within 6 frames")
	assert.Regexp(t, `inference \{'frame': \d+, 'bytes': \d+, 'caption': 'saw \d+ frames', 'latency_ms': 1\}`, out)

	// The server got exactly the files, in name order.
	var got [][]byte
	for _, sess := range srv.backend.Sessions() {
		for _, c := range sess.Chunks() {
			got = append(got, c.Frames...)
		}
	}
	require.NotEmpty(t, got)
	for i, f := range got {
		// bytes.Equal: a failed assert.Equal would print both JPEGs as numbers.
		assert.True(t, i < len(frames) && bytes.Equal(frames[i], f), "frame %d: %d bytes, not the file's", i, len(f))
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestReplayMaxFramesAndEnvDefaults(t *testing.T) {
	srv := startServer(t)
	dir, _ := writeJPEGs(t, 5)
	t.Setenv("VISION_WS_URL", srv.url+"/")
	t.Setenv("MAGIC_WORD", "from-env")
	t.Setenv("VIDEO_PATH", "/nonexistent.mp4") // --frames wins over the env video
	out, _, err := run(t, "--frames", dir, "--max-frames", "3", "--fps", "200", "--log-every", "0")
	require.NoError(t, err)
	s := lastLine(t, out)
	assert.Equal(t, 3, s.SentFrames)
	assert.Equal(t, 200.0, s.SendFPS)
	assert.NotContains(t, out, "ack {")
	assert.Equal(t, []string{"from-env"}, srv.magicWords())
}

func TestReplayVideoWithFFmpeg(t *testing.T) {
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg is not on PATH: install it (apt-get install ffmpeg; `make test-deps` does) to test --video")
	}
	video := filepath.Join(t.TempDir(), "x.mp4")
	gen := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi",
		"-i", "testsrc=size=64x48:rate=10", "-t", "1", "-pix_fmt", "yuv420p", video)
	outb, err := gen.CombinedOutput()
	require.NoError(t, err, "generate test video: %s", outb)

	srv := startServer(t)
	// Real cadence, so the server's session is open before the last frame.
	out, _, err := run(t, "--url", srv.url, "--video", video, "--fps", "5", "--log-every", "1")
	require.NoError(t, err)
	s := lastLine(t, out)
	assert.InDelta(t, 5, s.SentFrames, 1, "1 s of video sampled at 5 fps")
	assert.Equal(t, 5.0, s.SendFPS)
	// Every frame the server saw is a complete, decodable 64x48 JPEG.
	n := 0
	for _, sess := range srv.backend.Sessions() {
		for _, c := range sess.Chunks() {
			for _, f := range c.Frames {
				cfg, err := jpeg.DecodeConfig(bytes.NewReader(f))
				require.NoError(t, err)
				assert.Equal(t, 64, cfg.Width)
				assert.Equal(t, 48, cfg.Height)
				n++
			}
		}
	}
	assert.Positive(t, n)

	// --max-frames stops ffmpeg early without an error.
	out, _, err = run(t, "--url", srv.url, "--video", video, "--fps", "10", "--no-sleep", "--max-frames", "2")
	require.NoError(t, err)
	assert.Equal(t, 2, lastLine(t, out).SentFrames)

	// A file ffmpeg cannot decode is reported with ffmpeg's own message.
	bad := filepath.Join(t.TempDir(), "bad.mp4")
	require.NoError(t, os.WriteFile(bad, []byte("not a video"), 0o600))
	_, _, err = run(t, "--url", srv.url, "--video", bad, "--no-sleep")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "ffmpeg failed with code")
}

func TestReplayVideoWithoutFFmpeg(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // a PATH with no ffmpeg on it
	video := filepath.Join(t.TempDir(), "x.mp4")
	require.NoError(t, os.WriteFile(video, []byte("x"), 0o600))
	_, _, err := run(t, "--url", "ws://127.0.0.1:1", "--video", video)
	require.ErrorIs(t, err, ErrFFmpegMissing)
	assert.Contains(t, err.Error(), "apt-get install ffmpeg")
	assert.Contains(t, err.Error(), "--frames")
}

func TestReplayUsageErrors(t *testing.T) {
	t.Setenv("VISION_WS_URL", "")
	t.Setenv("VIDEO_PATH", "")
	t.Setenv("MAGIC_WORD", "")
	dir, _ := writeJPEGs(t, 1)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--frames", dir}, "missing --url (or VISION_WS_URL)"},
		{[]string{"--url", "ws://127.0.0.1:1"}, "missing --video (or VIDEO_PATH) or --frames DIR"},
		{[]string{"--url", "ftp://h", "--frames", dir}, "unsupported URL scheme"},
		{[]string{"--url", "ws://127.0.0.1:1", "--frames", dir, "--video", "v.mp4"}, "either --video or --frames"},
		{[]string{"--url", "ws://127.0.0.1:1", "--frames", t.TempDir()}, "no .jpg or .jpeg files"},
		{[]string{"--fps", "abc"}, `config --fps (set by --fps): not a number: "abc"`},
		{[]string{"--max-frames", "-1"}, "--max-frames"},
		{[]string{"--url", "ws://127.0.0.1:1", "--frames", dir, "extra"}, "unexpected arguments"},
	} {
		_, _, err := run(t, tc.args...)
		require.Error(t, err, tc.args)
		assert.Contains(t, err.Error(), tc.want, tc.args)
	}
	_, stderr, err := run(t, "--help")
	require.NoError(t, err)
	for _, flag := range []string{"-url", "-video", "-frames", "-magic-word", "-fps", "-jpeg-quality", "-max-frames", "-log-every", "-no-sleep"} {
		assert.Contains(t, stderr, flag)
	}
}

func TestReplayInterruptedPrintsSummary(t *testing.T) {
	srv := startServer(t)
	dir, _ := writeJPEGs(t, 3)
	ctx, cancel := context.WithCancel(context.Background())
	out := &firstAckWriter{firstAck: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"--url", srv.url, "--frames", dir, "--fps", "0.01", "--log-every", "1"}, out, &bytes.Buffer{})
	}()
	// Cancel once the first frame's ack is printed (the tool then sleeps
	// 100 s before the next), not after a guessed delay that a loaded
	// machine may not honour.
	select {
	case <-out.firstAck:
	case err := <-done:
		t.Fatalf("replay ended before its first ack: %v", err)
	}
	cancel()
	require.NoError(t, <-done)
	assert.Equal(t, 1, lastLine(t, out.String()).SentFrames)
}

// firstAckWriter collects Run's stdout and closes firstAck once an ack line
// has been written.
type firstAckWriter struct {
	mu       sync.Mutex
	buf      bytes.Buffer
	firstAck chan struct{}
	once     sync.Once
}

func (w *firstAckWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.buf.Write(p)
	if strings.Contains(w.buf.String(), "ack {") {
		w.once.Do(func() { close(w.firstAck) })
	}
	return n, err
}

func (w *firstAckWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func TestFFmpegQScale(t *testing.T) {
	// Python: max(2, min(31, 31 - round(q/100*29))) with round-half-even.
	for q, want := range map[int]int{85: 6, 100: 2, 0: 31, -5: 31, 150: 2, 50: 17, 1: 31, 99: 2, 70: 11} {
		assert.Equal(t, want, ffmpegQScale(q), "quality %d", q)
	}
	assert.Equal(t, []string{"-hide_banner", "-loglevel", "error", "-i", "v.mp4", "-vf", "fps=2.5",
		"-f", "image2pipe", "-vcodec", "mjpeg", "-q:v", "6", "-"}, ffmpegArgs("v.mp4", 2.5, 85))
	assert.NotContains(t, ffmpegArgs("v.mp4", 0, 85), "-vf")
}

func TestJPEGSplitter(t *testing.T) {
	a := []byte{0xff, 0xd8, 1, 2, 0xff, 3, 0xff, 0xd9}
	b := []byte{0xff, 0xd8, 0xff, 0xd9}
	c := append([]byte{0xff, 0xd8}, append(bytes.Repeat([]byte{7}, 200000), 0xff, 0xd9)...)
	stream := bytes.Join([][]byte{{9, 9, 0xff}, a, {0, 0}, b, c, {0xff, 0xd8, 5}}, nil) // junk and a truncated tail
	for name, r := range map[string]func() *jpegSplitter{
		"whole":    func() *jpegSplitter { return newJPEGSplitter(bytes.NewReader(stream), 1<<20) },
		"one-byte": func() *jpegSplitter { return newJPEGSplitter(iotest.OneByteReader(bytes.NewReader(stream)), 1<<20) },
	} {
		s := r()
		var got [][]byte
		for {
			f, err := s.Next()
			if err != nil {
				assert.ErrorIs(t, err, io.EOF, name)
				break
			}
			got = append(got, f)
		}
		assert.Equal(t, [][]byte{a, b, c}, got, name)
	}
	s := newJPEGSplitter(bytes.NewReader(c), 1000)
	_, err := s.Next()
	assert.ErrorContains(t, err, "larger than 1000 bytes")
}

func TestPythonFormatting(t *testing.T) {
	for raw, want := range map[string]string{
		`{"frame":3,"bytes":10,"caption":"it's a \"cat\"","latency_ms":12.5,"ok":true,"x":null}`: `{'frame': 3, 'bytes': 10, 'caption': 'it\'s a "cat"', 'latency_ms': 12.5, 'ok': True, 'x': None}`,
		`{"caption":"it's","chunk_start_s":1.0,"chunk_end_s":2,"e":1e20,"s":1e-7}`:               `{'caption': "it's", 'chunk_start_s': 1.0, 'chunk_end_s': 2, 'e': 1e+20, 's': 1e-07}`,
		`{"inference_error":"bad\nthing\\ \u00e9 \u0001","l":[1,"a",{}]}`:                        `{'inference_error': 'bad\nthing\\ é \x01', 'l': [1, 'a', {}]}`,
	} {
		got, err := pyReprJSON([]byte(raw))
		require.NoError(t, err)
		assert.Equal(t, want, got)
	}
	for f, want := range map[float64]string{3: "3.0", 2.5: "2.5", 0.1: "0.1", 1e16: "1e+16", 123456789012345.0: "123456789012345.0", 0.0001: "0.0001", 0.00001: "1e-05"} {
		assert.Equal(t, want, pyFloat(f))
	}
	var b bytes.Buffer
	_, err := Summary{SentFrames: 4, InferenceEvents: 1, SendFPS: 3, URL: "wss://h/vision/stream?a=é"}.WriteTo(&b)
	require.NoError(t, err)
	assert.Equal(t, `{"sent_frames": 4, "inference_events": 1, "send_fps": 3.0, "url": "wss://h/vision/stream?a=\u00e9"}`+"\n", b.String())
}
