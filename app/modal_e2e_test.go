package app_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/frontend/gateway"
	"github.com/foresight-vision/foresight/adapters/inference/modal/modaltest"
	"github.com/foresight-vision/foresight/app"
)

// These tests run the whole server against the Modal test double through
// the real modal-go SDK. They set environment variables, so none is parallel.

func startWithModal(t *testing.T, env ...string) (*app.Instance, *modaltest.Server) {
	t.Helper()
	fake := modaltest.New(t)
	fake.SetEnv(t)
	base := []string{"MODAL_TOKEN_ID", "ak-server", "MODAL_TOKEN_SECRET", "as-server", "VISION_CHUNK_SECONDS", "0"}
	return startServer(t, append(base, env...)...), fake
}

type streamClient struct {
	t    *testing.T
	conn net.Conn
}

func dialStream(t *testing.T, inst *app.Instance, header http.Header) *streamClient {
	t.Helper()
	d := ws.Dialer{Header: ws.HandshakeHeaderHTTP(header)}
	conn, _, _, err := d.Dial(context.Background(), wsURL(inst, ""))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return &streamClient{t: t, conn: conn}
}

// frame sends one frame and returns its ack.
func (c *streamClient) frame(payload []byte) map[string]any {
	c.t.Helper()
	require.NoError(c.t, wsutil.WriteClientBinary(c.conn, payload))
	require.NoError(c.t, c.conn.SetReadDeadline(time.Now().Add(10*time.Second)))
	data, _, err := wsutil.ReadServerData(c.conn)
	require.NoError(c.t, err)
	var ack map[string]any
	require.NoError(c.t, json.Unmarshal(data, &ack))
	return ack
}

// until sends frames (pausing briefly between them, as a camera would)
// until an ack has key, and returns that ack and every ack with a result.
// It gives up after 20 s, which only a broken server needs; maxFrames is a
// second, looser stop for the same case.
func (c *streamClient) until(key string, maxFrames int) (map[string]any, []map[string]any) {
	c.t.Helper()
	var events []map[string]any
	deadline := time.Now().Add(20 * time.Second)
	for range maxFrames * 10 {
		if time.Now().After(deadline) {
			break
		}
		ack := c.frame([]byte("jpeg-bytes"))
		if len(ack) > 2 {
			events = append(events, ack)
		}
		if _, ok := ack[key]; ok {
			return ack, events
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("no ack with %q in %d frames; results seen: %v", key, maxFrames, events)
	return nil, nil
}

func TestModalCaptionsEndToEnd(t *testing.T) {
	inst, fake := startWithModal(t)
	c := dialStream(t, inst, nil)
	ack, _ := c.until("caption", 400)
	assert.Contains(t, ack["caption"], "chunk 1:")
	assert.Contains(t, ack, "chunk_start_s")
	assert.Contains(t, ack, "chunk_end_s")
	assert.Contains(t, ack, "latency_ms", "measured when the reply has none")

	calls := fake.CallsTo(modaltest.MethodInferChunk)
	require.NotEmpty(t, calls)
	assert.Equal(t, modaltest.Gemma3App, calls[0].App)
	assert.Equal(t, modaltest.Gemma3Class, calls[0].Class)
	assert.True(t, calls[0].HasSessionID)
	assert.Equal(t, ack["chunk_end_s"], calls[0].EndS)
}

func TestModalStreamsHaveTheirOwnSessionIDs(t *testing.T) {
	inst, fake := startWithModal(t)
	a, b := dialStream(t, inst, nil), dialStream(t, inst, nil)
	a.until("caption", 400)
	b.until("caption", 400)
	ids := map[string]bool{}
	for _, call := range fake.CallsTo(modaltest.MethodInferChunk) {
		ids[call.SessionID] = true
	}
	assert.Len(t, ids, 2)
	assert.Equal(t, 1, fake.AuthTokenGets(), "streams share one Modal client")
}

func TestModalOpenFailureReachesClientOnce(t *testing.T) {
	inst, fake := startWithModal(t, "MODAL_CLASS_NAME", "NoSuchClass")
	c := dialStream(t, inst, nil)
	ack, _ := c.until("inference_error", 400)
	assert.Contains(t, ack["inference_error"], "open inference session")
	for range 20 {
		ack := c.frame([]byte("x"))
		assert.NotContains(t, ack, "inference_error")
		assert.NotContains(t, ack, "caption")
	}
	assert.Empty(t, fake.CallsTo(modaltest.MethodInferChunk))
}

func TestModalRemoteFailureThenCaptions(t *testing.T) {
	inst, fake := startWithModal(t)
	fake.QueueBehavior(modaltest.Behavior{Fail: "CUDA out of memory"})
	c := dialStream(t, inst, nil)
	ack, _ := c.until("inference_error", 400)
	assert.Contains(t, ack["inference_error"], "CUDA out of memory")
	c.until("caption", 400)
}

func TestModalHungCallTimesOut(t *testing.T) {
	inst, fake := startWithModal(t, "FORESIGHT_INFERENCE_TIMEOUT", "300ms")
	fake.QueueBehavior(modaltest.Behavior{Hang: true})
	c := dialStream(t, inst, nil)
	ack, _ := c.until("inference_error", 2000)
	assert.Equal(t, "inference timed out after 300ms", ack["inference_error"])
	c.until("caption", 400) // the next chunk went
	require.NoError(t, fake.WaitFor(context.Background(), func() bool { return len(fake.Cancellations()) == 1 }))
}

func TestModalCloseOncePerStream(t *testing.T) {
	inst, fake := startWithModal(t)
	dropped := dialStream(t, inst, nil)
	dropped.until("caption", 400)
	require.NoError(t, dropped.conn.Close()) // abrupt: no close frame
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, fake.WaitFor(ctx, func() bool { return len(fake.CallsTo(modaltest.MethodClose)) == 1 }))

	open := dialStream(t, inst, nil)
	open.until("caption", 400)
	require.NoError(t, inst.Stop(ctx)) // shutdown closes the open stream's session
	closes := fake.CallsTo(modaltest.MethodClose)
	require.Len(t, closes, 2)
	assert.NotEqual(t, closes[0].SessionID, closes[1].SessionID)
}

func TestModalLegacyPresetAndOriginalApps(t *testing.T) {
	inst, fake := startWithModal(t, "FORESIGHT_INFERENCE_BACKEND", "streamingvlm", "FORESIGHT_MODAL_SEND_SESSION_ID", "false")
	c := dialStream(t, inst, nil)
	c.until("caption", 400)
	call := fake.CallsTo(modaltest.MethodInferChunk)[0]
	assert.Equal(t, modaltest.StreamingVLMApp, call.App)
	assert.Equal(t, modaltest.StreamingVLMClass, call.Class)
	assert.False(t, call.HasSessionID, "apps deployed from the original code take no session_id")
}

func TestClientModalHeadersWhenServerHoldsCredentials(t *testing.T) {
	header := http.Header{"X-Modal-Class-Name": {"StrangersClass"}, "X-Modal-Token-Id": {"ak-stranger"}, "X-Modal-Token-Secret": {"as-stranger"}}
	t.Run("ignored by default", func(t *testing.T) {
		inst, fake := startWithModal(t)
		c := dialStream(t, inst, header)
		c.until("caption", 400)
		call := fake.CallsTo(modaltest.MethodInferChunk)[0]
		assert.Equal(t, modaltest.Gemma3Class, call.Class)
		assert.Equal(t, "ak-server", call.TokenID)
	})
	t.Run("used when trusted", func(t *testing.T) {
		inst, fake := startWithModal(t, "FORESIGHT_TRUST_CLIENT_CREDENTIALS", "true")
		c := dialStream(t, inst, header)
		ack, _ := c.until("inference_error", 400)
		assert.Contains(t, ack["inference_error"], "StrangersClass")
		lookups := fake.Lookups()
		require.NotEmpty(t, lookups)
		assert.Equal(t, "ak-stranger", lookups[0].TokenID)
	})
	t.Run("used when the server holds none", func(t *testing.T) {
		fake := modaltest.New(t)
		fake.SetEnv(t)
		inst := startServer(t, "VISION_CHUNK_SECONDS", "0")
		c := dialStream(t, inst, http.Header{"X-Modal-Token-Id": {"ak-gw"}, "X-Modal-Token-Secret": {"as-gw"}})
		c.until("caption", 400)
		assert.Equal(t, "ak-gw", fake.CallsTo(modaltest.MethodInferChunk)[0].TokenID)
	})
}

// The original's Worker dropped its secret headers on WebSocket upgrades;
// through our gateway the stream gets the gateway's Modal credentials.
func TestGatewayInjectsModalCredentialsOnTheStream(t *testing.T) {
	fake := modaltest.New(t)
	fake.SetEnv(t)
	fake.AllowCredentials("ak-gateway", "as-gateway")
	server := startServer(t, "VISION_CHUNK_SECONDS", "0") // holds no Modal secrets
	gw, err := gateway.New(gateway.Config{
		Upstream:  server.URL(),
		MagicWord: "sesame",
		Secrets:   gateway.Secrets{ModalTokenID: "ak-gateway", ModalTokenSecret: "as-gateway"},
		Logger:    slog.New(slog.DiscardHandler),
	})
	require.NoError(t, err)
	front := httptest.NewServer(gw)
	defer front.Close()
	defer gw.Close()

	d := ws.Dialer{Header: ws.HandshakeHeaderHTTP(http.Header{"X-Modal-Token-Id": {"ak-stranger"}, "X-Modal-Token-Secret": {"as-stranger"}})}
	conn, _, _, err := d.Dial(context.Background(), "ws"+strings.TrimPrefix(front.URL, "http")+"/vision/stream?magic_word=sesame")
	require.NoError(t, err)
	defer conn.Close()
	c := &streamClient{t: t, conn: conn}
	ack, _ := c.until("caption", 400)
	assert.Contains(t, ack["caption"], "chunk")
	assert.Equal(t, "ak-gateway", fake.CallsTo(modaltest.MethodInferChunk)[0].TokenID, "the gateway's secret, not the client's")
}
