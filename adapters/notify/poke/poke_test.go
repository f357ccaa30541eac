package poke_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/notify/poke"
	"github.com/foresight-vision/foresight/adapters/notify/poke/poketest"
	"github.com/foresight-vision/foresight/internal/testlog"
	"github.com/foresight-vision/foresight/ports"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testKey = "pk_live_SUPERSECRET_123"

type fixture struct {
	srv  *poketest.Server
	c    *poke.Client
	logs *testlog.Buffer
}

func newFixture(t *testing.T, cfg poke.Config) fixture {
	t.Helper()
	srv := poketest.NewServer()
	t.Cleanup(srv.Close)
	if cfg.URL == "" {
		cfg.URL = srv.URL()
	}
	logs := &testlog.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := poke.New(cfg, logger)
	require.NoError(t, err)
	t.Cleanup(c.CloseIdleConnections)
	return fixture{srv: srv, c: c, logs: logs}
}

// requireUpstream asserts err is an *UpstreamError with the given status and
// text, and that neither the text nor the logs leak the key.
func requireUpstream(t *testing.T, f fixture, err error, status int, text string) *poke.UpstreamError {
	t.Helper()
	require.Error(t, err)
	var uerr *poke.UpstreamError
	require.ErrorAs(t, err, &uerr)
	assert.Equal(t, status, uerr.Status)
	assert.Equal(t, text, err.Error())
	assert.NotContains(t, err.Error(), testKey)
	assert.NotContains(t, f.logs.String(), testKey)
	return uerr
}

// TestClientIsNotifier uses the client through the port the server holds
// it by, and checks the message arrives.
func TestClientIsNotifier(t *testing.T) {
	f := newFixture(t, poke.Config{})
	var n ports.Notifier = f.c
	data, err := n.Notify(context.Background(), testKey, "through the port")
	require.NoError(t, err)
	assert.JSONEq(t, poketest.DefaultReply, string(data))
	reqs := f.srv.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "through the port", reqs[0].Message)
}

// TestFailureLogNeverHoldsTheKey puts the key at every offset around the
// point where the logged body excerpt is cut.
func TestFailureLogNeverHoldsTheKey(t *testing.T) {
	const cut = 512 // logBodyBytes
	for offset := cut - len(testKey) - 2; offset <= cut+2; offset++ {
		f := newFixture(t, poke.Config{})
		body := strings.Repeat("x", offset) + testKey + strings.Repeat("y", 100)
		f.srv.SetStatus(http.StatusInternalServerError, body)
		_, err := f.c.Notify(context.Background(), testKey, "hi")
		require.Error(t, err)
		logs := f.logs.String()
		for i := 0; i+6 <= len(testKey); i++ {
			require.NotContains(t, logs, testKey[i:i+6], "offset %d: part of the key is in the log", offset)
		}
	}
}

func TestNotifySuccess(t *testing.T) {
	f := newFixture(t, poke.Config{})
	msg := `Hello "wearer" <3 ünïcode`
	data, err := f.c.Notify(context.Background(), testKey, msg)
	require.NoError(t, err)
	assert.JSONEq(t, poketest.DefaultReply, string(data))

	reqs := f.srv.Requests()
	require.Len(t, reqs, 1)
	r := reqs[0]
	assert.Equal(t, http.MethodPost, r.Method)
	assert.Equal(t, poketest.WebhookPath, r.Path)
	assert.Equal(t, "Bearer "+testKey, r.Authorization)
	assert.Equal(t, "application/json", r.ContentType)
	assert.Equal(t, "application/json", r.Accept)
	assert.Equal(t, msg, r.Message)
	var body map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &body))
	assert.Equal(t, map[string]any{"message": msg}, body, "body has exactly the message field")
	assert.NotContains(t, f.logs.String(), testKey)
}

func TestNotifyReturnsUpstreamJSONVerbatim(t *testing.T) {
	f := newFixture(t, poke.Config{})
	f.srv.SetReply(`  {"success":true,"id":42,"nested":{"a":[1,2]}}` + "\n")
	data, err := f.c.Notify(context.Background(), testKey, "hi")
	require.NoError(t, err)
	assert.Equal(t, `{"success":true,"id":42,"nested":{"a":[1,2]}}`, string(data))
}

func TestNotifyEmptySuccessBodyIsNull(t *testing.T) {
	f := newFixture(t, poke.Config{})
	f.srv.SetStatus(http.StatusNoContent, "")
	data, err := f.c.Notify(context.Background(), testKey, "hi")
	require.NoError(t, err)
	assert.Equal(t, "null", string(data))
}

func TestNotifyUpstreamErrors(t *testing.T) {
	cases := []struct {
		name   string
		status int
		body   string
		text   string
	}{
		{"500", http.StatusInternalServerError, `{"error":"boom ` + testKey + `"}`, "poke upstream returned 500 Internal Server Error"},
		{"503 plain text", http.StatusServiceUnavailable, "upstream down for key " + testKey, "poke upstream returned 503 Service Unavailable"},
		{"429", http.StatusTooManyRequests, `{"error":"slow down"}`, "poke upstream returned 429 Too Many Requests"},
		{"unknown status", 599, ``, "poke upstream returned status 599"},
		{"non-JSON 200", http.StatusOK, "<html>OK " + testKey + "</html>", "poke upstream returned invalid JSON"},
		{"truncated JSON 200", http.StatusOK, `{"success":tr`, "poke upstream returned invalid JSON"},
		{"too large 200", http.StatusOK, `"` + strings.Repeat("a", poke.MaxReplyBytes) + `"`, "poke upstream reply too large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, poke.Config{})
			f.srv.SetStatus(tc.status, tc.body)
			data, err := f.c.Notify(context.Background(), testKey, "hi")
			assert.Nil(t, data)
			uerr := requireUpstream(t, f, err, tc.status, tc.text)
			assert.False(t, uerr.Timeout())
			assert.NotContains(t, err.Error(), "boom")
			assert.Len(t, f.srv.Requests(), 1)
		})
	}
}

func TestNotifyMaxSizeReplyAccepted(t *testing.T) {
	f := newFixture(t, poke.Config{})
	reply := `"` + strings.Repeat("a", poke.MaxReplyBytes-2) + `"`
	f.srv.SetReply(reply)
	data, err := f.c.Notify(context.Background(), testKey, "hi")
	require.NoError(t, err)
	assert.Len(t, data, poke.MaxReplyBytes)
}

func TestNotifyUnauthorized(t *testing.T) {
	f := newFixture(t, poke.Config{})
	f.srv.SetValidKey("the-right-key")
	_, err := f.c.Notify(context.Background(), testKey, "hi")
	requireUpstream(t, f, err, http.StatusUnauthorized, "poke upstream returned 401 Unauthorized")

	data, err := f.c.Notify(context.Background(), "the-right-key", "hi")
	require.NoError(t, err)
	assert.JSONEq(t, poketest.DefaultReply, string(data))
}

func TestNotifyFailNextIsOneShot(t *testing.T) {
	f := newFixture(t, poke.Config{})
	f.srv.FailNext(http.StatusBadGateway, `{"error":"x"}`)
	_, err := f.c.Notify(context.Background(), testKey, "one")
	requireUpstream(t, f, err, http.StatusBadGateway, "poke upstream returned 502 Bad Gateway")

	_, err = f.c.Notify(context.Background(), testKey, "two")
	require.NoError(t, err)
	reqs := f.srv.Requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "one", reqs[0].Message)
	assert.Equal(t, "two", reqs[1].Message)
}

func TestNotifyTimeout(t *testing.T) {
	f := newFixture(t, poke.Config{Timeout: 100 * time.Millisecond})
	f.srv.SetDelay(time.Minute)
	_, err := f.c.Notify(context.Background(), testKey, "hi")
	uerr := requireUpstream(t, f, err, 0, "poke upstream timed out")
	assert.True(t, uerr.Timeout())
	assert.Len(t, f.srv.Requests(), 1)
}

func TestNotifyTimeoutWithCustomHTTPClient(t *testing.T) {
	// A caller-supplied client without its own timeout still gets Config.Timeout.
	hc := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	f := newFixture(t, poke.Config{Timeout: 100 * time.Millisecond, HTTPClient: hc})
	f.srv.SetDelay(time.Minute)
	_, err := f.c.Notify(context.Background(), testKey, "hi")
	uerr := requireUpstream(t, f, err, 0, "poke upstream timed out")
	assert.ErrorIs(t, uerr, context.DeadlineExceeded)
}

func TestNotifyCallerDeadline(t *testing.T) {
	f := newFixture(t, poke.Config{})
	f.srv.SetDelay(time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := f.c.Notify(ctx, testKey, "hi")
	requireUpstream(t, f, err, 0, "poke upstream timed out")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestNotifyContextCancel(t *testing.T) {
	f := newFixture(t, poke.Config{})
	f.srv.SetDelay(time.Minute)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	errc := make(chan error, 1)
	go func() {
		_, err := f.c.Notify(ctx, testKey, "hi")
		errc <- err
	}()
	// Cancel only once the request is in flight at the server.
	require.Eventually(t, func() bool { return len(f.srv.Requests()) == 1 }, 5*time.Second, time.Millisecond)
	cancel()
	err := <-errc
	requireUpstream(t, f, err, 0, "poke upstream request canceled")
	assert.ErrorIs(t, err, context.Canceled)
}

func TestNotifyAlreadyCanceled(t *testing.T) {
	f := newFixture(t, poke.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := f.c.Notify(ctx, testKey, "hi")
	requireUpstream(t, f, err, 0, "poke upstream request canceled")
	assert.Empty(t, f.srv.Requests())
}

func TestNotifyUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())

	f := newFixture(t, poke.Config{URL: "http://" + addr + "/hook"})
	_, err = f.c.Notify(context.Background(), testKey, "hi")
	uerr := requireUpstream(t, f, err, 0, "poke upstream unreachable")
	assert.False(t, uerr.Timeout())
	assert.NotContains(t, err.Error(), addr, "the address stays in the log, not the error text")
	assert.Contains(t, f.logs.String(), "poke request failed")
}

func TestNotifyDoesNotFollowRedirects(t *testing.T) {
	target := poketest.NewServer()
	defer target.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL(), http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()

	f := newFixture(t, poke.Config{URL: redirect.URL})
	_, err := f.c.Notify(context.Background(), testKey, "hi")
	requireUpstream(t, f, err, http.StatusTemporaryRedirect, "poke upstream returned 307 Temporary Redirect")
	assert.Empty(t, target.Requests(), "the key must not be forwarded to a redirect target")
}

func TestNotifyNoKey(t *testing.T) {
	f := newFixture(t, poke.Config{})
	for _, key := range []string{"", "   ", "\t\n"} {
		_, err := f.c.Notify(context.Background(), key, "hi")
		require.ErrorIs(t, err, poke.ErrNoAPIKey)
		var uerr *poke.UpstreamError
		assert.False(t, errors.As(err, &uerr))
	}
	assert.Empty(t, f.srv.Requests(), "nothing is sent without a key")
}

func TestNotifyMalformedKey(t *testing.T) {
	f := newFixture(t, poke.Config{})
	_, err := f.c.Notify(context.Background(), "abc\r\nX-Evil: 1", "hi")
	require.ErrorIs(t, err, poke.ErrInvalidAPIKey)
	assert.NotContains(t, err.Error(), "abc")
	assert.Empty(t, f.srv.Requests())
}

func TestNotifyTrimsKey(t *testing.T) {
	f := newFixture(t, poke.Config{})
	_, err := f.c.Notify(context.Background(), " "+testKey+"\n", "hi")
	require.NoError(t, err)
	assert.Equal(t, "Bearer "+testKey, f.srv.Requests()[0].Authorization)
}

func TestNotifyConcurrent(t *testing.T) {
	f := newFixture(t, poke.Config{})
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			_, errs[i] = f.c.Notify(context.Background(), testKey, "hi")
		})
	}
	wg.Wait()
	for _, err := range errs {
		assert.NoError(t, err)
	}
	assert.Len(t, f.srv.Requests(), n)
}

func TestNewConfig(t *testing.T) {
	c, err := poke.New(poke.Config{}, nil)
	require.NoError(t, err)
	assert.Equal(t, poke.DefaultURL, c.URL())
	c.CloseIdleConnections()

	bad := []poke.Config{
		{URL: "poke.com/api/v1/inbound-sms/webhook"},
		{URL: "/relative/path"},
		{URL: "ftp://poke.com/hook"},
		{URL: "ws://poke.com/hook"},
		{URL: "http://"},
		{URL: "http://[::1"},
		{URL: "https://poke.com/hook", Timeout: -time.Second},
	}
	for _, cfg := range bad {
		c, err := poke.New(cfg, nil)
		assert.Error(t, err, "config %+v", cfg)
		assert.Nil(t, c)
	}
	for _, u := range []string{"http://127.0.0.1:9/x", "https://poke.com/api/v1/inbound-sms/webhook"} {
		c, err := poke.New(poke.Config{URL: u, Timeout: time.Second}, nil)
		require.NoError(t, err, u)
		assert.Equal(t, u, c.URL())
	}
}

func BenchmarkNotify(b *testing.B) {
	srv := poketest.NewServer()
	defer srv.Close()
	c, err := poke.New(poke.Config{URL: srv.URL()}, slog.New(slog.DiscardHandler))
	require.NoError(b, err)
	defer c.CloseIdleConnections()
	ctx := context.Background()
	for b.Loop() {
		if _, err := c.Notify(ctx, testKey, "hi"); err != nil {
			b.Fatal(err)
		}
	}
}
