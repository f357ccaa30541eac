package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/inference/modal/modaltest"
	"github.com/foresight-vision/foresight/adapters/protocol/visionclient"
	"github.com/foresight-vision/foresight/adapters/store/postgres/pgtest"
	"github.com/foresight-vision/foresight/adapters/store/sqlite"
	"github.com/foresight-vision/foresight/app"
	"github.com/foresight-vision/foresight/ports"
)

// These tests run the whole server with the Modal double (so captions come
// through the real SDK) and a real caption store. They set environment
// variables, so none is parallel.

// captionFake is the Modal double answering every chunk with a caption
// that holds a word unique to it ("shotN") and words they share.
func captionFake(t *testing.T) *modaltest.Server {
	t.Helper()
	fake := modaltest.New(t)
	fake.SetEnv(t)
	var n atomic.Int64
	fake.SetReply(func(c modaltest.Call) (any, error) {
		reply, err := modaltest.DefaultReply(c)
		if m, ok := reply.(map[string]any); ok && c.Method == modaltest.MethodInferChunk {
			m["caption"] = fmt.Sprintf("shot%d the wearer pours coffee", n.Add(1))
		}
		return reply, err
	})
	return fake
}

// startWithStore starts a server with server-held Modal credentials, chunks
// as often as frames allow, and the caption store at databaseURL. The
// caller stops it (stopInstance), so a test can stop it mid-stream.
func startWithStore(t *testing.T, databaseURL string, env ...string) *app.Instance {
	t.Helper()
	base := []string{"MODAL_TOKEN_ID", "ak-server", "MODAL_TOKEN_SECRET", "as-server", "VISION_CHUNK_SECONDS", "0",
		"FORESIGHT_DATABASE_URL", databaseURL}
	cfg, err := app.LoadConfig([]string{"--addr", "127.0.0.1:0"}, envOf(append(base, env...)...), nil)
	require.NoError(t, err)
	inst, err := app.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	return inst
}

func stopInstance(t *testing.T, inst *app.Instance) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	require.NoError(t, inst.Stop(ctx))
}

// streamUntil streams frames as device until n acks have carried a
// caption, and returns those captions.
func streamUntil(t *testing.T, inst *app.Instance, device string, n int) []string {
	t.Helper()
	conn := dialDevice(t, inst, device)
	defer func() { _ = conn.Close() }()
	var seen []string
	for frames := 0; len(seen) < n; frames++ {
		require.Less(t, frames, 20_000, "too few captions: %v", seen)
		ack := sendFrame(t, conn)
		if ack.HasCaption {
			seen = append(seen, ack.Caption)
		}
		if frames%4 == 3 {
			time.Sleep(2 * time.Millisecond) // a camera's pace, loosely
		}
	}
	return seen
}

func dialDevice(t *testing.T, inst *app.Instance, device string) *visionclient.Conn {
	t.Helper()
	target := wsURL(inst, "")
	if device != "" {
		target += "?device=" + url.QueryEscape(device)
	}
	conn, err := visionclient.Dial(context.Background(), target, visionclient.Options{HandshakeTimeout: 10 * time.Second})
	require.NoError(t, err)
	return conn
}

func sendFrame(t *testing.T, conn *visionclient.Conn) visionclient.Ack {
	t.Helper()
	require.NoError(t, conn.SendFrame([]byte("jpeg-bytes")))
	ack, err := conn.ReadAck()
	require.NoError(t, err)
	return ack
}

type storedCaption struct {
	ID       string `json:"id"`
	Device   string `json:"device"`
	StreamID string `json:"stream_id"`
	Caption  string `json:"caption"`
	Backend  string `json:"backend"`
	Model    string `json:"model"`
}

// listCaptions pages through GET /captions with query and returns every
// caption, newest first.
func listCaptions(t *testing.T, base string, query url.Values) []storedCaption {
	t.Helper()
	var all []storedCaption
	for {
		status, body := get(t, base+"/captions?"+query.Encode())
		require.Equal(t, http.StatusOK, status, body)
		var page struct {
			Captions   []storedCaption `json:"captions"`
			NextCursor *string         `json:"next_cursor"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &page))
		all = append(all, page.Captions...)
		if page.NextCursor == nil {
			return all
		}
		query.Set("cursor", *page.NextCursor)
	}
}

func texts(captions []storedCaption) []string {
	out := make([]string, len(captions))
	for i, c := range captions {
		out[i] = c.Caption
	}
	return out
}

// queryStore reads the captions of device straight from a SQLite file.
func queryStore(t *testing.T, path, device string) []string {
	t.Helper()
	store, err := sqlite.Open(context.Background(), path)
	require.NoError(t, err)
	defer func() { require.NoError(t, store.Close()) }()
	var out []string
	q := ports.CaptionQuery{Device: device, Limit: ports.MaxCaptionLimit}
	for {
		page, err := store.QueryCaptions(context.Background(), q)
		require.NoError(t, err)
		for _, c := range page.Captions {
			out = append(out, c.Text)
		}
		if page.NextCursor == "" {
			return out
		}
		q.Cursor = page.NextCursor
	}
}

func TestCaptionsAreListedSearchedAndSurviveARestart(t *testing.T) {
	captionFake(t)
	path := filepath.Join(t.TempDir(), "memory", "foresight.db") // the folder is created
	inst := startWithStore(t, "sqlite:"+path)
	seen := streamUntil(t, inst, "kitchen", 5)
	other := streamUntil(t, inst, "", 1) // a client naming no device is "default"

	// The recorder writes a batch at least every second.
	require.Eventually(t, func() bool {
		return len(listCaptions(t, inst.URL(), url.Values{"device": {"kitchen"}})) == len(seen)
	}, 10*time.Second, 20*time.Millisecond)
	listed := listCaptions(t, inst.URL(), url.Values{"device": {"kitchen"}})
	assert.ElementsMatch(t, seen, texts(listed))
	// A stored caption names its backend and model as /status does.
	code, body := get(t, inst.URL()+"/status")
	require.Equal(t, http.StatusOK, code)
	var status struct{ Backend, Model string }
	require.NoError(t, json.Unmarshal([]byte(body), &status))
	assert.Equal(t, "gemma3", status.Backend)
	assert.Equal(t, status.Backend, listed[0].Backend)
	assert.Equal(t, status.Model, listed[0].Model)
	assert.NotEmpty(t, listed[0].Model)
	assert.Equal(t, "kitchen", listed[0].Device)

	word := strings.Fields(seen[2])[0] // shotN: this caption's own word
	found := listCaptions(t, inst.URL(), url.Values{"q": {word}})
	require.Len(t, found, 1)
	assert.Equal(t, seen[2], found[0].Caption)
	stopInstance(t, inst)

	again := startWithStore(t, "sqlite:"+path)
	defer stopInstance(t, again)
	assert.ElementsMatch(t, seen, texts(listCaptions(t, again.URL(), url.Values{"device": {"kitchen"}})), "kept across a restart")
	assert.ElementsMatch(t, other, texts(listCaptions(t, again.URL(), url.Values{"device": {"default"}})))
	assert.Len(t, listCaptions(t, again.URL(), url.Values{"q": {"coffee"}}), len(seen)+len(other))
	assert.Equal(t, []string{seen[2]}, texts(listCaptions(t, again.URL(), url.Values{"q": {word}})))
}

func TestGracefulStopMidStreamKeepsEveryCaptionSeen(t *testing.T) {
	captionFake(t)
	path := filepath.Join(t.TempDir(), "foresight.db")
	inst := startWithStore(t, "sqlite:"+path)
	conn := dialDevice(t, inst, "glasses-1")
	defer func() { _ = conn.Close() }()
	var seen []string
	for len(seen) < 20 {
		if ack := sendFrame(t, conn); ack.HasCaption {
			seen = append(seen, ack.Caption)
		}
	}

	// SIGTERM's path: Stop while the stream is open and captions keep coming.
	stopped := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		stopped <- inst.Stop(ctx)
	}()
	for {
		if err := conn.SendFrame([]byte("jpeg-bytes")); err != nil {
			break
		}
		ack, err := conn.ReadAck()
		if err != nil {
			var ce *visionclient.CloseError
			if errors.As(err, &ce) {
				assert.Equal(t, 1001, ce.Code)
			}
			break
		}
		if ack.HasCaption {
			seen = append(seen, ack.Caption)
		}
	}
	require.NoError(t, <-stopped)
	assert.Subset(t, queryStore(t, path, "glasses-1"), seen, "every caption the client saw is stored")
}

func TestTwoInstancesShareOnePostgres(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := postgresURL(t, pg.NewDatabase(t))
	captionFake(t)
	a := startWithStore(t, dsn)
	defer stopInstance(t, a)
	b := startWithStore(t, dsn)
	defer stopInstance(t, b)

	seenA := streamUntil(t, a, "left", 3)
	seenB := streamUntil(t, b, "right", 3)
	require.Eventually(t, func() bool {
		return len(listCaptions(t, b.URL(), url.Values{"device": {"left"}})) == len(seenA) &&
			len(listCaptions(t, a.URL(), url.Values{"device": {"right"}})) == len(seenB)
	}, 10*time.Second, 20*time.Millisecond, "each instance lists the other's captions")
	assert.ElementsMatch(t, seenA, texts(listCaptions(t, b.URL(), url.Values{"device": {"left"}})))
	assert.ElementsMatch(t, seenB, texts(listCaptions(t, a.URL(), url.Values{"device": {"right"}})))
	word := strings.Fields(seenB[1])[0]
	assert.Equal(t, []string{seenB[1]}, texts(listCaptions(t, a.URL(), url.Values{"q": {word}})), "search through the other instance")
}

// postgresURL turns pgtest's key=value DSN into the postgres:// URL that
// FORESIGHT_DATABASE_URL takes (the socket folder as the host parameter).
func postgresURL(t *testing.T, dsn string) string {
	t.Helper()
	kv := map[string]string{}
	for field := range strings.FieldsSeq(dsn) {
		k, v, ok := strings.Cut(field, "=")
		require.True(t, ok, dsn)
		kv[k] = v
	}
	q := url.Values{"host": {kv["host"]}, "port": {kv["port"]}, "sslmode": {kv["sslmode"]}}
	return (&url.URL{Scheme: "postgres", User: url.User(kv["user"]), Path: "/" + kv["dbname"], RawQuery: q.Encode()}).String()
}

func TestNoStoreKeepsNothingAndSaysSo(t *testing.T) {
	captionFake(t)
	dir := t.TempDir()
	t.Chdir(dir) // were anything written to the default data/, it would be here
	inst := startWithStore(t, "none")
	defer stopInstance(t, inst)
	assert.NotEmpty(t, streamUntil(t, inst, "kitchen", 2), "captions still reach the client")
	status, body := get(t, inst.URL()+"/captions")
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.JSONEq(t, `{"detail":"caption store is off (FORESIGHT_DATABASE_URL=none)"}`, body)
	entries, err := filepath.Glob(filepath.Join(dir, "*"))
	require.NoError(t, err)
	assert.Empty(t, entries, "nothing written")
}

func TestCaptionsSitBehindTheMagicWord(t *testing.T) {
	inst := startServer(t, "MAGIC_WORD", "w", "FORESIGHT_DATABASE_URL", "sqlite:"+filepath.Join(t.TempDir(), "f.db"))
	status, _ := get(t, inst.URL()+"/captions")
	assert.Equal(t, http.StatusForbidden, status)
	status, body := get(t, inst.URL()+"/captions?magic_word=w")
	assert.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"captions":[],"next_cursor":null}`, body)
}

func TestBadDeviceIsRefusedBeforeTheUpgrade(t *testing.T) {
	inst := startServer(t)
	resp, err := http.Get(inst.URL() + "/vision/stream?device=" + url.QueryEscape("no spaces/allowed"))
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	var body map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	assert.Contains(t, body["detail"], "device")
}

func TestDatabaseURLSettings(t *testing.T) {
	for _, tt := range []struct{ url, kind, target string }{
		{app.DefaultDatabaseURL, app.StoreSQLite, "data/foresight.db"},
		{"sqlite:///var/lib/f.db", app.StoreSQLite, "/var/lib/f.db"},
		{"none", app.StoreNone, ""},
		{"postgres://u:p@db/f", app.StorePostgres, "postgres://u:p@db/f"},
		{"postgresql://db/f", app.StorePostgres, "postgresql://db/f"},
	} {
		kind, target, err := app.ParseDatabaseURL(tt.url)
		require.NoError(t, err, tt.url)
		assert.Equal(t, tt.kind, kind, tt.url)
		assert.Equal(t, tt.target, target, tt.url)
	}
	for _, bad := range []string{"sqlite:", "mysql://u:hunter2@db/f", "data/foresight.db"} {
		_, err := app.LoadConfig(nil, envOf("FORESIGHT_DATABASE_URL", bad), nil)
		require.Error(t, err, bad)
		assert.NotContains(t, err.Error(), "hunter2")
	}
	assert.Equal(t, "postgres://u:xxxxx@db/f", app.RedactDatabaseURL("postgres://u:hunter2@db/f"))
	assert.NotContains(t, app.RedactDatabaseURL("postgres://db/f?password=hunter2&sslmode=disable"), "hunter2")
	assert.NotContains(t, app.RedactDatabaseURL("host=db password=hunter2"), "hunter2")

	c, err := app.LoadConfig(nil, envOf(), nil)
	require.NoError(t, err)
	assert.Equal(t, app.DefaultDatabaseURL, c.DatabaseURL)
	assert.Equal(t, 720*time.Hour, c.CaptionRetention)
	assert.Equal(t, 10000, c.CaptionQueue)
	c, err = app.LoadConfig([]string{"--caption-retention", "0", "--caption-queue", "5"}, envOf(), nil)
	require.NoError(t, err)
	assert.Zero(t, c.CaptionRetention, "0 keeps captions forever")
	assert.Equal(t, 5, c.CaptionQueue)
}
