package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/adapters/protocol/wire"
	"github.com/foresight-vision/foresight/adapters/store/sqlite"
	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/domain/domaintest"
	"github.com/foresight-vision/foresight/ports"
)

// captionBackend answers every chunk with a fresh caption; every fifth
// call fails instead.
func captionBackend() *domaintest.Backend {
	var n atomic.Int64
	return &domaintest.Backend{Infer: func(_ context.Context, c ports.Chunk) (ports.Result, error) {
		i := n.Add(1)
		if i%5 == 0 {
			return ports.Result{}, errors.New("CUDA out of memory")
		}
		return ports.Result{Caption: fmt.Sprintf("caption %d", i), ChunkStartS: 0.25, ChunkEndS: 0.75,
			LatencyMS: 12.5, TokensGenerated: 3, Set: ports.ResultAll}, nil
	}}
}

// sink keeps what the stream handler hands on.
type sink struct {
	mu       sync.Mutex
	captions []ports.Caption
}

func (s *sink) Record(c ports.Caption) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.captions = append(s.captions, c)
}

func (s *sink) all() []ports.Caption {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ports.Caption(nil), s.captions...)
}

// dialURL is dial to another URL of the same server.
func (s *streamServer) dialURL(target string, header http.Header) *client {
	s.t.Helper()
	saved := s.url
	defer func() { s.url = saved }()
	s.url = target
	return s.dial(header)
}

// captionsOn streams frames on c until n acks have carried a caption and
// returns them; every ack must be the next frame's, whatever else happens.
// sent counts the frames sent on c so far.
func captionsOn(t *testing.T, c *client, n int, sent *int64) (captions []string, errs int) {
	t.Helper()
	for start := *sent; len(captions) < n; {
		*sent++
		frame := *sent
		require.Less(t, frame-start, int64(50_000), "too few captions")
		c.send([]byte("jpeg"))
		a := c.readAck()
		require.Equal(t, frame, a.Frame, "acks in order, one per frame")
		require.Equal(t, 4, a.Bytes)
		if a.Caption != nil {
			captions = append(captions, *a.Caption)
		}
		if a.InferenceError != nil {
			errs++
		}
		if frame%4 == 0 {
			time.Sleep(time.Millisecond) // let the background call finish
		}
	}
	return captions, errs
}

func TestStreamHandsEachCaptionOnWithItsDevice(t *testing.T) {
	rec := &sink{}
	s := newStreamServer(t, httpapi.StreamHandlerConfig{Backend: captionBackend(), Stream: domain.StreamConfig{
		Captions: rec, BackendName: "modal", ModelName: "gemma3"}})

	base := s.url
	byQuery, errs := captionsOn(t, s.dialURL(base+"?device=kitchen", nil), 6, new(int64))
	assert.Positive(t, errs, "inference errors reach the client")
	byHeader, _ := captionsOn(t, s.dialURL(base, http.Header{wire.HeaderDevice: {"glasses.2"}}), 2, new(int64))
	bare, _ := captionsOn(t, s.dialURL(base, nil), 2, new(int64))
	both, _ := captionsOn(t, s.dialURL(base+"?device=q-wins", http.Header{wire.HeaderDevice: {"header"}}), 1, new(int64))

	kept := rec.all()
	byDevice := map[string][]string{}
	ids := map[string]bool{}
	started := time.Now()
	for _, c := range kept {
		byDevice[c.Device] = append(byDevice[c.Device], c.Text)
		assert.False(t, ids[c.ID], "caption ids are unique")
		ids[c.ID] = true
		assert.True(t, strings.HasPrefix(c.ID, c.StreamID+"-"), c.ID)
		assert.Equal(t, "modal", c.Backend)
		assert.Equal(t, "gemma3", c.Model)
		assert.Equal(t, 12.5, c.LatencyMS)
		assert.Equal(t, int64(3), c.Tokens)
		assert.Equal(t, 0.25, c.ChunkStartS)
		assert.Equal(t, 500*time.Millisecond, c.End.Sub(c.Start), "wall-clock bounds from the chunk offsets")
		assert.WithinDuration(t, started, c.Start, time.Minute)
	}
	assert.Equal(t, byQuery, byDevice["kitchen"], "exactly the captions the client saw, in order; errors are not captions")
	assert.Equal(t, byHeader, byDevice["glasses.2"])
	assert.Equal(t, bare, byDevice[domain.DefaultDevice], "a client naming no device is the default one")
	assert.Equal(t, both, byDevice["q-wins"], "the query parameter wins over the header")
	assert.Len(t, byDevice, 4)
}

func TestBadDeviceGets400BeforeTheUpgrade(t *testing.T) {
	rec := &sink{}
	s := newStreamServer(t, httpapi.StreamHandlerConfig{Stream: domain.StreamConfig{Captions: rec}})
	httpURL := "http" + strings.TrimPrefix(s.url, "ws")
	for _, bad := range []string{"no spaces", "slash/no", strings.Repeat("a", 65), "ünï", "semi;colon"} {
		t.Run("query "+bad, func(t *testing.T) {
			resp, err := http.Get(httpURL + "?device=" + url.QueryEscape(bad))
			require.NoError(t, err)
			defer resp.Body.Close()
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			var body map[string]string
			require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
			assert.Equal(t, "invalid device: "+domain.ErrBadDevice.Error(), body["detail"])
		})
	}
	for _, header := range []string{"bad device", ""} {
		d := ws.Dialer{Header: ws.HandshakeHeaderHTTP(http.Header{wire.HeaderDevice: {header}})}
		_, _, _, err := d.Dial(context.Background(), s.url)
		var se ws.StatusError
		require.ErrorAs(t, err, &se, "a WebSocket client sees the refusal as the handshake's status (header %q)", header)
		assert.Equal(t, http.StatusBadRequest, int(se), "header %q", header)
	}
	assert.Zero(t, s.handler.ActiveStreams())
	assert.Empty(t, rec.all(), "nothing recorded under the default device")
}

// TestEmptyDeviceGets400: an empty device= (or empty header) is refused
// with a reason, not taken as the default device.
func TestEmptyDeviceGets400(t *testing.T) {
	s := newStreamServer(t, httpapi.StreamHandlerConfig{Stream: domain.StreamConfig{Captions: &sink{}}})
	httpURL := "http" + strings.TrimPrefix(s.url, "ws")
	for _, target := range []string{httpURL + "?device=", httpURL + "?device=&other=1"} {
		resp, err := http.Get(target)
		require.NoError(t, err)
		var body map[string]string
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		_ = resp.Body.Close()
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode, target)
		assert.Contains(t, body["detail"], "device is empty", target)
	}
	req, err := http.NewRequest(http.MethodGet, httpURL, nil)
	require.NoError(t, err)
	req.Header[wire.HeaderDevice] = []string{""}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "an empty header")
}

// outage wraps a real store: while held, SaveCaptions blocks (a database
// gone away, connections hanging) until released or cancelled.
type outage struct {
	ports.CaptionStore
	mu      sync.Mutex
	held    chan struct{} // nil when up
	tries   atomic.Int64
	entered chan struct{}
	once    sync.Once
}

func (o *outage) hold() {
	o.mu.Lock()
	o.held = make(chan struct{})
	o.mu.Unlock()
}

func (o *outage) release() {
	o.mu.Lock()
	close(o.held)
	o.held = nil
	o.mu.Unlock()
}

func (o *outage) SaveCaptions(ctx context.Context, cs []ports.Caption) error {
	o.tries.Add(1)
	o.mu.Lock()
	held := o.held
	o.mu.Unlock()
	if held != nil {
		o.once.Do(func() { close(o.entered) })
		select {
		case <-held:
			return errors.New("connection reset by peer") // the write in flight is lost; the recorder retries it
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return o.CaptionStore.SaveCaptions(ctx, cs)
}

// depthWatch records the deepest queue the recorder reports and its drops.
type depthWatch struct {
	domain.NopRecorderObserver
	deepest atomic.Int64
	dropped atomic.Int64
}

func (d *depthWatch) CaptionQueueDepth(n int) {
	for {
		old := d.deepest.Load()
		if int64(n) <= old || d.deepest.CompareAndSwap(old, int64(n)) {
			return
		}
	}
}
func (d *depthWatch) CaptionsDropped(n int) { d.dropped.Add(int64(n)) }

func TestStoreOutageChangesNoAckAndTheQueueBoundHolds(t *testing.T) {
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "captions.db"))
	require.NoError(t, err)
	defer func() { require.NoError(t, store.Close()) }()
	db := &outage{CaptionStore: store, entered: make(chan struct{})}
	const bound = 8
	watch := &depthWatch{}
	recorder := domain.NewRecorder(db, domain.RecorderConfig{QueueSize: bound, BatchSize: 4,
		FlushInterval: 5 * time.Millisecond, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond, Observer: watch})
	s := newStreamServer(t, httpapi.StreamHandlerConfig{Backend: captionBackend(), Stream: domain.StreamConfig{Captions: recorder}})
	c := s.dial(nil)
	var sent int64

	db.hold()
	during, _ := captionsOn(t, c, 5*bound, &sent) // captionsOn checks every ack
	<-db.entered                                  // a write is stuck in the database
	db.release()
	after, _ := captionsOn(t, c, 3, &sent)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, recorder.Close(ctx), "every queued caption is written once the store is back")

	page, err := store.QueryCaptions(ctx, ports.CaptionQuery{Limit: ports.MaxCaptionLimit})
	require.NoError(t, err)
	var stored []string
	for _, row := range page.Captions {
		stored = append(stored, row.Text)
	}
	seen := append(append([]string(nil), during...), after...)
	assert.Subset(t, seen, stored)
	assert.Subset(t, stored, after, "the captions after the outage are all kept")
	assert.Contains(t, stored, during[len(during)-1], "the newest are kept, the oldest dropped")
	assert.LessOrEqual(t, watch.deepest.Load(), int64(bound), "the queue never held more than its bound")
	assert.Equal(t, int64(len(seen)-len(stored)), watch.dropped.Load(), "every caption not stored is counted as dropped")
	assert.Positive(t, watch.dropped.Load())
	assert.Greater(t, db.tries.Load(), int64(1), "the stuck write was retried")
}
