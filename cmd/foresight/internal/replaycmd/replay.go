// Package replaycmd implements `foresight replay`: the Go counterpart of the
// original scripts/replay_video_to_vision_ws.py. It streams a local video (via
// ffmpeg) or a folder of JPEG files to /vision/stream in lock-step (send a
// frame, wait for its ack), printing what the original printed.
package replaycmd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/foresight-vision/foresight/adapters/protocol/visionclient"
	"github.com/foresight-vision/foresight/adapters/protocol/wire"
	"github.com/foresight-vision/foresight/internal/settings"
)

// Options are the replay settings; flags and env vars fill them.
type Options struct {
	// URL of the stream (env VISION_WS_URL); http(s) becomes ws(s), an empty
	// path or "/" becomes /vision/stream.
	URL string
	// Video is a local video file decoded with ffmpeg (env VIDEO_PATH).
	Video string
	// FramesDir is a folder of .jpg/.jpeg files sent in name order instead of
	// a video (no ffmpeg needed).
	FramesDir string
	// MagicWord is sent as query parameter magic_word (env MAGIC_WORD).
	MagicWord string
	// Token is an access token sent as "Authorization: Bearer" on the
	// upgrade (env FORESIGHT_TOKEN); never printed.
	Token string
	// FPS is ffmpeg's sampling rate and the send cadence (default 3). Zero or
	// less: the video's own rate (ffprobe), else 15.
	FPS float64
	// JPEGQuality 0..100 maps to ffmpeg -q:v 31..2 (default 85 -> 6).
	JPEGQuality int
	// MaxFrames stops after that many acked frames; 0 means no limit.
	MaxFrames int
	// LogEvery prints an "ack" line every N frames (default 30; 0 disables).
	LogEvery int
	// NoSleep sends as fast as acks come back instead of at FPS.
	NoSleep bool
}

// maxMessageBytes is the original's websockets max_size (16 MB).
const maxMessageBytes = 16_000_000

// Run parses args (without the "replay" word) and replays. Usage errors and
// failures are returned; --help prints usage to stderr and returns nil. An
// interrupted run (ctx done) still prints the summary line and returns nil.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	opts, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	return replay(ctx, opts, stdout)
}

// Settings is the replay command's settings table (internal/settings,
// docs/configuration.md): the original script's options and defaults.
var Settings = []settings.Setting[Options]{
	{Flag: "url", Envs: []string{"VISION_WS_URL"}, Help: "WebSocket URL for /vision/stream; http(s):// is turned into ws(s)://",
		Apply: settings.String(func(o *Options) *string { return &o.URL })},
	{Flag: "video", Envs: []string{"VIDEO_PATH"}, Help: "local video path, decoded with ffmpeg",
		Apply: settings.String(func(o *Options) *string { return &o.Video })},
	{Flag: "frames", Help: "folder of .jpg/.jpeg files to send in name order instead of --video (no ffmpeg needed)",
		Apply: settings.String(func(o *Options) *string { return &o.FramesDir })},
	// The flag has no default: --help must never print the secret.
	{Flag: "magic-word", Envs: []string{"MAGIC_WORD"}, Secret: true, Help: "magic word to pass as query param ?magic_word=...",
		Apply: settings.String(func(o *Options) *string { return &o.MagicWord })},
	{Flag: "token", Envs: []string{"FORESIGHT_TOKEN"}, Secret: true, Help: "access token (foresight token create), sent as Authorization: Bearer on the upgrade; prefer the variable, a flag shows in the process list",
		Apply: settings.String(func(o *Options) *string { return &o.Token })},
	{Flag: "fps", Default: "3", Help: "sample/send FPS; <= 0 uses the video's rate",
		Apply: settings.Float(math.Inf(-1), func(o *Options) *float64 { return &o.FPS })},
	{Flag: "jpeg-quality", Default: "85", Help: "JPEG quality [0-100], mapped to ffmpeg -q:v 31..2",
		Apply: func(o *Options, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("not a whole number: %q", v)
			}
			o.JPEGQuality = n // clamped to 0-100 where it is used, as the original
			return nil
		}},
	{Flag: "max-frames", Default: "0", Help: "stop after N frames (0 = no limit)",
		Apply: settings.IntAtLeast(0, func(o *Options) *int { return &o.MaxFrames })},
	{Flag: "log-every", Default: "30", Help: "print ack every N frames (0 = never)",
		Apply: settings.IntAtLeast(0, func(o *Options) *int { return &o.LogEvery })},
	{Flag: "no-sleep", Default: "false", Help: "send as fast as possible instead of realtime cadence",
		Apply: settings.Bool(func(o *Options) *bool { return &o.NoSleep })},
}

func parse(args []string, stderr io.Writer) (Options, error) {
	fs := flag.NewFlagSet("foresight replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: foresight replay --url URL (--video FILE | --frames DIR) [flags]\n\n"+
			"Replay a local video or folder of JPEG frames to the /vision/stream websocket endpoint.\n\n")
		settings.PrintTable(fs.Output(), Settings)
	}
	var o Options
	if err := settings.Load(&o, Settings, fs, args, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, fmt.Errorf("replay: %w", err)
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("replay: unexpected arguments %q", fs.Args())
	}
	switch {
	case o.URL == "":
		return o, errors.New("replay: missing --url (or VISION_WS_URL)")
	case o.Video == "" && o.FramesDir == "":
		return o, errors.New("replay: missing --video (or VIDEO_PATH) or --frames DIR")
	case o.FramesDir != "" && isSet(fs, "video"):
		return o, errors.New("replay: use either --video or --frames, not both")
	}
	if o.FramesDir != "" {
		o.Video = "" // --frames wins over a VIDEO_PATH left in the environment
	}
	return o, nil
}

func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}

func replay(ctx context.Context, o Options, stdout io.Writer) error {
	wsURL, err := visionclient.NormalizeURL(o.URL)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	sendFPS := o.FPS
	if sendFPS <= 0 {
		sendFPS = probeFPS(ctx, o.Video)
	}

	var src frameSource
	if o.FramesDir != "" {
		src, err = newDirSource(o.FramesDir, maxMessageBytes)
	} else {
		src, err = newFFmpegSource(ctx, o.Video, o.FPS, o.JPEGQuality, maxMessageBytes)
	}
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	defer src.Close()

	conn, err := visionclient.Dial(ctx, wsURL, visionclient.Options{
		MagicWord:       o.MagicWord,
		Token:           o.Token,
		MaxMessageBytes: maxMessageBytes,
	})
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	// A dead peer must not hang a blocked read forever once ctx is done.
	stop := context.AfterFunc(ctx, func() { _ = conn.Abort() })
	defer stop()

	var sent, events int64
	runErr := func() error {
		for {
			frame, err := src.Next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := conn.SendFrame(frame); err != nil {
				return err
			}
			ack, err := conn.ReadAck()
			if err != nil {
				return fmt.Errorf("read ack: %w", err)
			}
			sent++
			if o.LogEvery > 0 && sent%int64(o.LogEvery) == 0 {
				fmt.Fprintf(stdout, "ack {'frame': %s, 'bytes': %s}\n", pyField(ack, wire.AckFrame), pyField(ack, wire.AckBytes))
			}
			if ack.HasResult() {
				events++
				repr, err := pyReprJSON(ack.Raw)
				if err != nil {
					repr = string(ack.Raw)
				}
				fmt.Fprintf(stdout, "inference %s\n", repr)
			}
			if o.MaxFrames > 0 && sent >= int64(o.MaxFrames) {
				return nil
			}
			if !o.NoSleep {
				t := time.NewTimer(time.Duration(float64(time.Second) / sendFPS))
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-t.C:
				}
			}
		}
	}()
	if ctx.Err() != nil {
		runErr = nil // interrupted: finish with the summary like a normal end
		_ = conn.Abort()
	} else {
		_ = conn.Close()
	}
	if runErr != nil {
		return fmt.Errorf("replay: %w", runErr)
	}
	if err := src.Close(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("replay: %w", err)
	}
	// Unlike the original, the printed URL never carries the magic word.
	_, err = Summary{SentFrames: sent, InferenceEvents: events, SendFPS: sendFPS, URL: visionclient.RedactURL(wsURL)}.WriteTo(stdout)
	return err
}

// pyField renders one ack field as Python would print ack.get(name).
func pyField(a visionclient.Ack, name string) string {
	v, ok := a.Fields[name]
	if !ok {
		return "None"
	}
	s, err := pyReprJSON([]byte(jsonOf(v)))
	if err != nil {
		return "None"
	}
	return s
}

func jsonOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case fmt.Stringer: // json.Number
		return x.String()
	case string:
		return pyJSONString(x)
	case bool:
		if x {
			return "true"
		}
		return "false"
	default:
		return "null"
	}
}

// probeFPS asks ffprobe for the video's frame rate like the original
// (r_frame_rate of the first video stream); anything missing, unparsable or
// <= 1 gives 15.
func probeFPS(ctx context.Context, video string) float64 {
	const fallback = 15.0
	if video == "" {
		return fallback
	}
	fps, err := ffprobeRate(ctx, video)
	if err != nil || fps <= 1 {
		return fallback
	}
	return fps
}

func ffprobeRate(ctx context.Context, video string) (float64, error) {
	out, err := runFFprobe(ctx, video)
	if err != nil {
		return 0, err
	}
	out = strings.TrimSpace(out)
	var num, den float64
	if n, _ := fmt.Sscanf(out, "%g/%g", &num, &den); n == 2 {
		if den > 0 {
			return num / den, nil
		}
		return 0, errors.New("zero denominator")
	}
	var f float64
	if _, err := fmt.Sscanf(out, "%g", &f); err != nil {
		return 0, fmt.Errorf("parse ffprobe rate %q: %w", out, err)
	}
	return f, nil
}

func runFFprobe(ctx context.Context, video string) (string, error) {
	path, err := exec.LookPath("ffprobe")
	if err != nil {
		return "", fmt.Errorf("find ffprobe: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "-v", "error", "-select_streams", "v:0",
		"-show_entries", "stream=r_frame_rate", "-of", "default=nokey=1:noprint_wrappers=1", video).Output()
	if err != nil {
		return "", fmt.Errorf("run ffprobe: %w", err)
	}
	return string(out), nil
}
