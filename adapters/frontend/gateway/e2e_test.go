package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/frontend/gateway"
	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/adapters/inference/modal/modalheader"
	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/ports"
)

// recBackend records the session requests the server opens.
type recBackend struct {
	mu   sync.Mutex
	reqs []ports.SessionRequest
}

func (b *recBackend) OpenSession(_ context.Context, req ports.SessionRequest) (ports.InferenceSession, error) {
	b.mu.Lock()
	b.reqs = append(b.reqs, req)
	b.mu.Unlock()
	return captionSession{}, nil
}

func (b *recBackend) requests() []ports.SessionRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]ports.SessionRequest(nil), b.reqs...)
}

type captionSession struct{}

func (captionSession) InferChunk(context.Context, ports.Chunk) (ports.Result, error) {
	return ports.Result{Caption: "a test scene", Set: ports.ResultCaption}, nil
}
func (captionSession) Close(context.Context) error { return nil }

// recNotifier records the keys Poke would have been called with.
type recNotifier struct {
	mu   sync.Mutex
	keys []string
}

func (n *recNotifier) Notify(_ context.Context, apiKey, _ string) (json.RawMessage, error) {
	n.mu.Lock()
	n.keys = append(n.keys, apiKey)
	n.mu.Unlock()
	return json.RawMessage(`{"ok":true}`), nil
}

// TestEndToEnd runs a WebSocket client through the gateway to the real
// server front end (a server that holds no secrets, as behind a gateway) and
// checks acks in order, that the gateway's Modal credentials (not the
// client's) reach the inference backend, and that the server's close codes
// reach the client.
func TestEndToEnd(t *testing.T) {
	backend := &recBackend{}
	notifier := &recNotifier{}
	stream := httpapi.NewStreamHandler(httpapi.StreamHandlerConfig{
		Backend: backend,
		Stream:  domain.StreamConfig{},
		// The server holds no Modal token, so it honours the headers.
		SessionOptions: func(r *http.Request) map[string]string { return modalheader.SessionOptions(r.Header) },
	})
	poke := httpapi.NewPokeHandler(httpapi.PokeConfig{Notifier: notifier})
	server := httptest.NewServer(httpapi.NewRouter(httpapi.Handlers{Stream: stream, Poke: poke}))
	t.Cleanup(server.Close)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = stream.Shutdown(ctx)
	})
	_, gw := startGateway(t, gateway.Config{Upstream: server.URL, MagicWord: word, Secrets: secrets})
	q := "?magic_word=" + url.QueryEscape(word)

	// Health through the gateway, no word.
	r := do(t, gw, http.MethodGet, "/health", nil)
	assert.Equal(t, http.StatusOK, r.status)
	assert.JSONEq(t, `{"status":"ok"}`, r.body)

	// A stranger cannot open a stream.
	_, err := dialWS(t, gw, "/vision/stream", nil)
	var se ws.StatusError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, http.StatusForbidden, int(se))
	assert.Empty(t, backend.requests())

	// A client with the word (and its own, ignored, credentials) streams.
	c, err := dialWS(t, gw, "/vision/stream"+q, strangerHeaders())
	require.NoError(t, err)
	const n = 40
	for i := 1; i <= n; i++ {
		require.NoError(t, wsutil.WriteClientBinary(c.rw, []byte(strings.Repeat("j", i))))
	}
	captions := 0
	for i := 1; i <= n; i++ {
		msg, err := wsutil.ReadServerText(c.rw)
		require.NoError(t, err)
		var ack map[string]any
		require.NoError(t, json.Unmarshal(msg, &ack), string(msg))
		assert.EqualValues(t, i, ack["frame"], "acks in order")
		assert.EqualValues(t, i, ack["bytes"])
		if ack["caption"] == "a test scene" {
			captions++
		}
	}
	t.Logf("%d of %d acks carried a caption", captions, n)

	reqs := backend.requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, map[string]string{
		"token-id": "ak-id", "token-secret": "as-secret", "app-name": "app", "class-name": "Cls",
	}, reqs[0].Options, "the gateway's credentials reach the stream's session; the client's do not")

	// A normal close: the server echoes the client's code through the gateway.
	require.NoError(t, ws.WriteFrame(c.rw, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")))))
	_, _, err = wsutil.ReadServerData(c.rw)
	var ce wsutil.ClosedError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, ws.StatusNormalClosure, ce.Code)
	require.NoError(t, c.conn.Close())

	// The server's own close (1003 for a text message) reaches the client.
	c2, err := dialWS(t, gw, "/vision/stream", http.Header{"X-Magic-Word": {word}})
	require.NoError(t, err)
	require.NoError(t, wsutil.WriteClientText(c2.rw, []byte("hello")))
	_, _, err = wsutil.ReadServerData(c2.rw)
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, ws.StatusUnsupportedData, ce.Code)
	assert.NotEmpty(t, ce.Reason)
	require.NoError(t, c2.conn.Close())

	// Poke through the gateway uses the gateway's key, not the client's.
	h := strangerHeaders()
	h.Set("Content-Type", "application/json")
	r = do(t, gw, http.MethodPost, "/poke/send"+q, h)
	require.Equal(t, http.StatusOK, r.status, r.body)
	assert.JSONEq(t, `{"success":true,"data":{"ok":true},"error":null}`, r.body)
	notifier.mu.Lock()
	assert.Equal(t, []string{"poke-key"}, notifier.keys)
	notifier.mu.Unlock()

	require.Eventually(t, func() bool { return stream.ActiveStreams() == 0 }, 5*time.Second, 5*time.Millisecond,
		fmt.Sprintf("streams still open: %d", stream.ActiveStreams()))
}
