package replaycmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// frameSource yields encoded JPEG frames in order; Next returns io.EOF at
// the end.
type frameSource interface {
	Next() ([]byte, error)
	// Close stops the source early or after the end; it reports a failure of
	// the producer (for example ffmpeg's exit status) only after a complete read.
	Close() error
}

// dirSource reads *.jpg / *.jpeg files from a folder in name order, one at a
// time so a large folder does not sit in memory.
type dirSource struct {
	files []string
	next  int
	max   int64
}

func newDirSource(dir string, maxBytes int64) (*dirSource, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read frames folder: %w", err)
	}
	var files []string
	for _, e := range entries {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if e.Type().IsRegular() && (ext == ".jpg" || ext == ".jpeg") {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("frames folder %s holds no .jpg or .jpeg files", dir)
	}
	sort.Strings(files)
	return &dirSource{files: files, max: maxBytes}, nil
}

func (d *dirSource) Next() ([]byte, error) {
	if d.next >= len(d.files) {
		return nil, io.EOF
	}
	name := d.files[d.next]
	d.next++
	fi, err := os.Stat(name)
	if err != nil {
		return nil, fmt.Errorf("stat frame: %w", err)
	}
	if fi.Size() > d.max {
		return nil, fmt.Errorf("frame %s is %d bytes, over the %d-byte message limit", name, fi.Size(), d.max)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read frame: %w", err)
	}
	return b, nil
}

func (d *dirSource) Close() error { return nil }

// ffmpegQScale maps a JPEG quality 0..100 to ffmpeg's -q:v 31..2 exactly as
// the original: q = clamp(31 - round(quality/100*29), 2, 31), with the
// quality clamped to 0..100 first and Python's round-half-to-even.
// So 85 -> 6, 100 -> 2, 0 -> 31.
func ffmpegQScale(quality int) int {
	quality = max(0, min(100, quality))
	q := 31 - int(math.RoundToEven(float64(quality)/100.0*29))
	return max(2, min(31, q))
}

// ErrFFmpegMissing is returned when --video is used and ffmpeg is not on PATH.
var ErrFFmpegMissing = errors.New("ffmpeg is required for --video but was not found on PATH; " +
	"install it (Debian/Ubuntu: apt-get install ffmpeg) or pass a folder of JPEG files with --frames DIR")

// ffmpegSource runs ffmpeg to decode a video into MJPEG on a pipe and splits
// the stream into JPEG images.
type ffmpegSource struct {
	cmd     *exec.Cmd
	stdout  io.ReadCloser
	stderr  *boundedBuffer
	split   *jpegSplitter
	eof     bool
	closed  bool
	cancel  context.CancelFunc
	waitErr error
}

func ffmpegArgs(video string, fps float64, quality int) []string {
	args := []string{"-hide_banner", "-loglevel", "error", "-i", video}
	if fps > 0 {
		args = append(args, "-vf", "fps="+strconv.FormatFloat(fps, 'f', -1, 64))
	}
	return append(args, "-f", "image2pipe", "-vcodec", "mjpeg", "-q:v", strconv.Itoa(ffmpegQScale(quality)), "-")
}

func newFFmpegSource(ctx context.Context, video string, fps float64, quality int, maxBytes int) (*ffmpegSource, error) {
	path, err := exec.LookPath("ffmpeg")
	if err != nil {
		return nil, ErrFFmpegMissing
	}
	if _, err := os.Stat(video); err != nil {
		return nil, fmt.Errorf("open video: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(ctx, path, ffmpegArgs(video, fps, quality)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("ffmpeg stdout pipe: %w", err)
	}
	stderr := &boundedBuffer{max: 16 << 10}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start ffmpeg: %w", err)
	}
	return &ffmpegSource{
		cmd: cmd, stdout: stdout, stderr: stderr, cancel: cancel,
		split: newJPEGSplitter(stdout, maxBytes),
	}, nil
}

func (f *ffmpegSource) Next() ([]byte, error) {
	if f.eof {
		return nil, io.EOF
	}
	b, err := f.split.Next()
	if errors.Is(err, io.EOF) {
		f.eof = true
		if werr := f.wait(); werr != nil {
			return nil, werr
		}
		return nil, io.EOF
	}
	if err != nil {
		return nil, fmt.Errorf("read ffmpeg output: %w", err)
	}
	return b, nil
}

// wait reaps ffmpeg once and turns a failed exit into an error with its
// stderr.
func (f *ffmpegSource) wait() error {
	if f.closed {
		return f.waitErr
	}
	f.closed = true
	err := f.cmd.Wait()
	f.cancel()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		f.waitErr = fmt.Errorf("ffmpeg failed with code %d: %s", exitErr.ExitCode(), strings.TrimSpace(f.stderr.String()))
	} else if err != nil {
		f.waitErr = fmt.Errorf("wait for ffmpeg: %w", err)
	}
	return f.waitErr
}

// Close stops ffmpeg if frames are left unread (its exit status is then
// meaningless) and reaps it.
func (f *ffmpegSource) Close() error {
	if f.closed {
		return nil
	}
	if !f.eof {
		f.cancel() // kills ffmpeg
		_ = f.stdout.Close()
		_ = f.wait()
		return nil
	}
	return f.wait()
}

// jpegSplitter cuts a concatenation of JPEG images on SOI (FF D8) and EOI
// (FF D9) markers, like the original; bytes before an SOI are skipped. The
// buffer never grows past max+readSize: a longer image is an error.
type jpegSplitter struct {
	r       io.Reader
	buf     []byte
	max     int
	rerr    error
	scanned int // bytes after the SOI already searched for an EOI
}

const readSize = 64 << 10

func newJPEGSplitter(r io.Reader, max int) *jpegSplitter {
	return &jpegSplitter{r: r, max: max}
}

var (
	soi = []byte{0xff, 0xd8}
	eoi = []byte{0xff, 0xd9}
)

func (s *jpegSplitter) Next() ([]byte, error) {
	for {
		if i := bytes.Index(s.buf, soi); i < 0 {
			// Keep a lone trailing 0xFF: a marker may straddle two reads.
			if n := len(s.buf); n > 1 {
				s.buf = append(s.buf[:0], s.buf[n-1])
			}
			s.scanned = 0
		} else {
			if i > 0 {
				s.buf = append(s.buf[:0], s.buf[i:]...)
				s.scanned = 0
			}
			// Resume the EOI search one byte early: a marker may straddle reads.
			from := 2 + max(0, s.scanned-1)
			if j := bytes.Index(s.buf[from:], eoi); j >= 0 {
				end := from + j + 2
				frame := bytes.Clone(s.buf[:end])
				s.buf = append(s.buf[:0], s.buf[end:]...)
				s.scanned = 0
				return frame, nil
			}
			s.scanned = len(s.buf) - 2
			if len(s.buf) > s.max {
				return nil, fmt.Errorf("JPEG image larger than %d bytes (no end marker)", s.max)
			}
		}
		if s.rerr != nil {
			return nil, s.rerr
		}
		if cap(s.buf)-len(s.buf) < readSize {
			nb := make([]byte, len(s.buf), max(2*cap(s.buf), len(s.buf)+readSize))
			copy(nb, s.buf)
			s.buf = nb
		}
		n, err := s.r.Read(s.buf[len(s.buf) : len(s.buf)+readSize])
		s.buf = s.buf[:len(s.buf)+n]
		if err != nil {
			s.rerr = err // io.EOF ends the stream after what is buffered
		}
	}
}

// boundedBuffer keeps the first max bytes written to it (ffmpeg's stderr).
type boundedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
	max int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (b *boundedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
