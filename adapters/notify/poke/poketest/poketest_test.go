package poketest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/notify/poke"
	"github.com/foresight-vision/foresight/adapters/notify/poke/poketest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Example shows a test pointing the Poke client at the fake, checking what
// was sent and making the next call fail.
func Example() {
	srv := poketest.NewServer()
	defer srv.Close()

	client, err := poke.New(poke.Config{URL: srv.URL()}, nil)
	if err != nil {
		panic(err)
	}
	defer client.CloseIdleConnections()

	reply, err := client.Notify(context.Background(), "test-key", "Someone is at the door")
	fmt.Println(string(reply), err)

	got := srv.Requests()[0]
	fmt.Println(got.Authorization, got.Message)

	srv.FailNext(http.StatusInternalServerError, `{"error":"boom"}`)
	_, err = client.Notify(context.Background(), "test-key", "again")
	fmt.Println(err)

	// Output:
	// {"success":true,"message":"Message queued for delivery"} <nil>
	// Bearer test-key Someone is at the door
	// poke upstream returned 500 Internal Server Error
}

func post(t *testing.T, url, auth, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	require.NoError(t, err)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

func TestServerRejections(t *testing.T) {
	srv := poketest.NewServer()
	defer srv.Close()
	defer http.DefaultClient.CloseIdleConnections()

	resp, _ := post(t, srv.URL(), "", `{"message":"x"}`)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _ = post(t, srv.URL(), "Basic abc", `{"message":"x"}`)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, _ = post(t, srv.URL(), "Bearer k", `{"msg":"x"}`)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp, _ = post(t, srv.URL(), "Bearer k", `not json`)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	resp, _ = post(t, srv.BaseURL()+"/elsewhere", "Bearer k", `{"message":"x"}`)
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)

	resp, err := http.Get(srv.URL())
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode)

	srv.SetValidKey("good")
	resp, _ = post(t, srv.URL(), "Bearer bad", `{"message":"x"}`)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, body := post(t, srv.URL(), "Bearer good", `{"message":"x"}`)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.JSONEq(t, poketest.DefaultReply, body)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))

	reqs := srv.Requests()
	require.Len(t, reqs, 8, "rejected requests are recorded too")
	assert.Equal(t, "", reqs[2].Message)
	assert.Equal(t, `{"msg":"x"}`, string(reqs[2].Body))
	assert.Equal(t, http.MethodGet, reqs[5].Method)
	assert.Equal(t, "/elsewhere", reqs[4].Path)
}

func TestServerReplyKnobs(t *testing.T) {
	srv := poketest.NewServer()
	defer srv.Close()
	defer http.DefaultClient.CloseIdleConnections()

	srv.SetReply("plain")
	resp, body := post(t, srv.URL(), "Bearer k", `{"message":"x"}`)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "plain", body)
	assert.Contains(t, resp.Header.Get("Content-Type"), "text/plain")

	srv.SetStatus(http.StatusTeapot, `{"t":1}`)
	srv.FailNext(http.StatusInternalServerError, "a")
	srv.FailNext(http.StatusBadGateway, "b")
	var codes []int
	for range 3 {
		resp, _ := post(t, srv.URL(), "Bearer k", `{"message":"x"}`)
		codes = append(codes, resp.StatusCode)
	}
	assert.Equal(t, []int{500, 502, 418}, codes)
}

// A delayed request ends when the server closes, so Close never hangs on
// SetDelay and no handler goroutine outlives the server (goleak checks).
func TestServerCloseEndsDelay(t *testing.T) {
	srv := poketest.NewServer()
	srv.SetDelay(time.Hour)
	done := make(chan error, 1)
	go func() {
		resp, err := http.Post(srv.URL(), "application/json", strings.NewReader(`{"message":"x"}`))
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	require.Eventually(t, func() bool { return len(srv.Requests()) == 1 }, 5*time.Second, time.Millisecond)
	srv.Close()
	srv.Close() // idempotent
	<-done
	http.DefaultClient.CloseIdleConnections()
}
