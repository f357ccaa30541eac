package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/frontend/httpapi"
	"github.com/foresight-vision/foresight/adapters/store/sqlite"
	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/domain/domaintest"
	"github.com/foresight-vision/foresight/ports"
	"github.com/foresight-vision/foresight/ports/nudgestest"
)

// nudgeServer mounts both intervention routes over a real SQLite store and
// a real NudgeLoop on it (a scripted decider, a recording notifier).
type nudgeServer struct {
	srv      *httptest.Server
	store    *sqlite.Store
	clock    *domaintest.Clock
	lock     *domain.LocalEvaluationLock
	decider  *domaintest.Decider
	notifier *domaintest.Notifier
}

func newNudgeServer(t *testing.T) *nudgeServer {
	t.Helper()
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "foresight.db"))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, store.Close()) })
	n := &nudgeServer{store: store, clock: domaintest.NewClock(), lock: domain.NewLocalEvaluationLock(),
		decider: &domaintest.Decider{}, notifier: &domaintest.Notifier{}}
	loop, err := domain.NewNudgeLoop(domain.NudgePorts{Captions: store, Store: store, Decider: n.decider,
		Lock: n.lock, Notifier: n.notifier}, domain.NudgeConfig{APIKey: "key", Clock: n.clock, Cooldown: domain.DefaultNudgeCooldown})
	require.NoError(t, err)
	n.srv = serveInterventions(t, store, loop)
	return n
}

func serveInterventions(t *testing.T, lister httpapi.InterventionLister, runner httpapi.InterventionRunner) *httptest.Server {
	t.Helper()
	logger := slog.New(slog.DiscardHandler)
	srv := httptest.NewServer(httpapi.NewRouter(httpapi.Handlers{
		Interventions:   func() httpapi.InterventionLister { return lister },
		RunIntervention: func() httpapi.InterventionRunner { return runner },
		Logger:          logger,
	}))
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, srv *httptest.Server, method, path string, query url.Values) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path+"?"+query.Encode(), nil)
	require.NoError(t, err)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	return resp.StatusCode, body
}

func TestInterventionsListNewestFirstWithEveryField(t *testing.T) {
	n := newNudgeServer(t)
	ctx := t.Context()
	no, err := n.store.CreateIntervention(ctx, nudgestest.Record(1, "kit", ports.VerdictNo, ports.DeliveryNone))
	require.NoError(t, err)
	yes := nudgestest.Record(2, "kit", ports.VerdictYes, ports.DeliveryDelivered)
	yes.DeliveredAt, yes.Attempts = yes.Time.Add(250*time.Millisecond), 1
	_, err = n.store.CreateIntervention(ctx, yes)
	require.NoError(t, err)
	_, err = n.store.CreateIntervention(ctx, nudgestest.Record(3, "other", ports.VerdictNo, ports.DeliveryNone))
	require.NoError(t, err)

	status, body := call(t, n.srv, http.MethodGet, httpapi.InterventionsPath, url.Values{"device": {"kit"}})
	require.Equal(t, http.StatusOK, status)
	assert.Nil(t, body["next_cursor"])
	list := body["interventions"].([]any)
	require.Len(t, list, 2)
	assert.Equal(t, map[string]any{
		"id": "2", "device": "kit", "time": "2026-03-14T09:00:02Z", "engine": "llm", "decision": "yes",
		"reasoning": "reason 2", "biometric_ids": []any{}, "caption_ids": []any{"cap-0000002", "cap-0000003"}, "model": "gpt-test",
		"prompt_tokens": 102.0, "completion_tokens": 7.0, "nudge": "Drink some water.", "status": "delivered",
		"delivered_at": "2026-03-14T09:00:02.25Z", "attempts": 1.0, "error": nil,
	}, list[0])
	assert.Equal(t, no.ID, list[1].(map[string]any)["id"])
	assert.Nil(t, list[1].(map[string]any)["delivered_at"])

	_, body = call(t, n.srv, http.MethodGet, httpapi.InterventionsPath, url.Values{"since": {"2026-03-14T09:00:02Z"}})
	assert.Len(t, body["interventions"], 2, "since is inclusive")
	_, body = call(t, n.srv, http.MethodGet, httpapi.InterventionsPath, url.Values{"device": {"nobody"}})
	assert.Equal(t, []any{}, body["interventions"], "an empty list, not null")
}

func TestInterventionsCursorPages(t *testing.T) {
	n := newNudgeServer(t)
	for i := range 12 {
		_, err := n.store.CreateIntervention(t.Context(), nudgestest.Record(i, "kit", ports.VerdictNo, ports.DeliveryNone))
		require.NoError(t, err)
	}
	var ids []string
	query := url.Values{"limit": {"5"}}
	for range 10 {
		status, body := call(t, n.srv, http.MethodGet, httpapi.InterventionsPath, query)
		require.Equal(t, http.StatusOK, status)
		for _, r := range body["interventions"].([]any) {
			ids = append(ids, r.(map[string]any)["id"].(string))
		}
		next, _ := body["next_cursor"].(string)
		if next == "" {
			break
		}
		query.Set("cursor", next)
	}
	require.Len(t, ids, 12)
	assert.Equal(t, "12", ids[0])
	assert.Equal(t, "1", ids[11])
}

func TestInterventionsBadParameters(t *testing.T) {
	n := newNudgeServer(t)
	cases := []struct {
		query url.Values
		field string
		typ   string
	}{
		{url.Values{"limit": {"abc"}}, "limit", "int_parsing"},
		{url.Values{"limit": {"0"}}, "limit", "greater_than_equal"},
		{url.Values{"limit": {"501"}}, "limit", "less_than_equal"},
		{url.Values{"since": {"yesterday"}}, "since", "datetime_parsing"},
		{url.Values{"device": {"a b"}}, "device", "string_pattern_mismatch"},
		{url.Values{"device": {strings.Repeat("d", 65)}}, "device", "string_pattern_mismatch"},
		{url.Values{"cursor": {"!!!"}}, "cursor", "value_error"},
		{url.Values{"cursor": {ports.CaptionCursor{Start: time.Now(), ID: "cap-1"}.String()}}, "cursor", "value_error"},
		{url.Values{"cursor": {ports.InterventionCursor(time.Now(), 7)}}, "cursor", "value_error"}, // forged: not sealed by this server
	}
	for _, tc := range cases {
		status, body := call(t, n.srv, http.MethodGet, httpapi.InterventionsPath, tc.query)
		require.Equal(t, http.StatusUnprocessableEntity, status, tc.query.Encode())
		detail := body["detail"].([]any)
		require.Len(t, detail, 1, tc.query.Encode())
		entry := detail[0].(map[string]any)
		assert.Equal(t, tc.typ, entry["type"], tc.query.Encode())
		assert.Equal(t, []any{"query", tc.field}, entry["loc"], tc.query.Encode())
	}
	for _, q := range []url.Values{nil, {"device": {"a/b"}}} {
		status, body := call(t, n.srv, http.MethodPost, httpapi.InterventionsRunPath, q)
		require.Equal(t, http.StatusUnprocessableEntity, status, q.Encode())
		assert.Equal(t, []any{"query", "device"}, body["detail"].([]any)[0].(map[string]any)["loc"])
	}
	status, _ := call(t, n.srv, http.MethodGet, httpapi.InterventionsRunPath, url.Values{"device": {"kit"}})
	assert.Equal(t, http.StatusMethodNotAllowed, status)
}

func TestRunInterventionEvaluatesNowAndAnswersTheDecision(t *testing.T) {
	n := newNudgeServer(t)
	run := func() (int, map[string]any) {
		return call(t, n.srv, http.MethodPost, httpapi.InterventionsRunPath, url.Values{"device": {"kit"}})
	}
	status, body := run()
	require.Equal(t, http.StatusNotFound, status)
	assert.Contains(t, body["detail"], "no new captions in the window")
	assert.Empty(t, n.decider.Inputs(), "no captions, no decider call")

	now := n.clock.Now()
	require.NoError(t, n.store.SaveCaptions(t.Context(), []ports.Caption{{ID: "c1", Device: "kit", StreamID: "s1",
		Start: now.Add(-3 * time.Second), End: now.Add(-time.Second), Text: "The wearer eats a donut"}}))
	n.decider.Answer = domaintest.Yes("Try some fruit instead.")
	status, body = run()
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "yes", body["decision"])
	assert.Equal(t, "delivered", body["status"])
	assert.Equal(t, []any{"c1"}, body["caption_ids"])
	assert.Equal(t, "Try some fruit instead.", body["nudge"])
	require.Len(t, n.notifier.Calls(), 1)

	status, _ = run()
	require.Equal(t, http.StatusNotFound, status, "c1 was judged: nothing new to decide on")

	require.NoError(t, n.store.SaveCaptions(t.Context(), []ports.Caption{{ID: "c2", Device: "kit", StreamID: "s1",
		Start: now.Add(-2 * time.Second), End: now, Text: "The wearer eats another donut"}}))
	status, body = run()
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, "suppressed: cooldown", body["status"], "the cooldown holds for a manual run too")
	assert.Len(t, n.notifier.Calls(), 1)

	release, ok, err := n.lock.TryAcquire(t.Context(), "kit", time.Time{})
	require.NoError(t, err)
	require.True(t, ok)
	status, _ = run()
	assert.Equal(t, http.StatusConflict, status)
	release()

	_, list := call(t, n.srv, http.MethodGet, httpapi.InterventionsPath, nil)
	assert.Len(t, list["interventions"], 2, "every decision is listed")
}

// TestRunInterventionOverTheManualBoundAnswers429: while the loop's one
// manual run is held in the decider, another run, for another device, is
// answered 429 with Retry-After at once.
func TestRunInterventionOverTheManualBoundAnswers429(t *testing.T) {
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "foresight.db"))
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, store.Close()) })
	clock := domaintest.NewClock()
	entered, release := make(chan struct{}, 1), make(chan struct{})
	decider := &domaintest.Decider{Answer: func(ctx context.Context, _ ports.NudgeInput) (ports.NudgeDecision, error) {
		entered <- struct{}{}
		select {
		case <-release:
			return ports.NudgeDecision{Engine: "test"}, nil
		case <-ctx.Done():
			return ports.NudgeDecision{}, context.Cause(ctx)
		}
	}}
	loop, err := domain.NewNudgeLoop(domain.NudgePorts{Captions: store, Store: store, Decider: decider,
		Notifier: &domaintest.Notifier{}}, domain.NudgeConfig{APIKey: "key", Clock: clock, MaxManualRuns: 1})
	require.NoError(t, err)
	srv := serveInterventions(t, store, loop)
	now := clock.Now()
	for _, dev := range []string{"kit", "cat"} {
		require.NoError(t, store.SaveCaptions(t.Context(), []ports.Caption{{ID: "c-" + dev, Device: dev, StreamID: "s-" + dev,
			Start: now.Add(-3 * time.Second), End: now.Add(-time.Second), Text: "The wearer eats a donut"}}))
	}
	// A guard, not a timing check: without the bound a run would wait in
	// the decider, and the test should fail rather than hang.
	client := &http.Client{Timeout: 30 * time.Second}
	post := func(device string) (*http.Response, error) {
		return client.Post(srv.URL+httpapi.InterventionsRunPath+"?device="+device, "", nil)
	}
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer unblock()

	held := make(chan int, 1)
	go func() {
		resp, err := post("kit")
		if err != nil {
			held <- 0
			return
		}
		_ = resp.Body.Close()
		held <- resp.StatusCode
	}()
	select {
	case <-entered:
	case <-time.After(time.Minute): // a guard against a hang, not a timing check
		t.Fatal("the first run never reached the decider")
	}

	resp, err := post("cat")
	require.NoError(t, err)
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, "5", resp.Header.Get("Retry-After"))
	assert.Equal(t, map[string]any{"detail": "too many manual runs in progress: try again in 5 s"}, body)

	unblock()
	assert.Equal(t, http.StatusOK, <-held)
	resp, err = post("cat")
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusOK, resp.StatusCode, "taken once the first run ended")
}

type brokenNudges struct{}

var errSecret = errors.New("dial tcp 10.0.0.5:5432: password=hunter2 refused")

func (brokenNudges) ListInterventions(context.Context, ports.InterventionQuery) (ports.InterventionPage, error) {
	return ports.InterventionPage{}, errSecret
}

func (brokenNudges) RunOnce(context.Context, string) (ports.Intervention, error) {
	return ports.Intervention{}, errSecret
}

func TestInterventionsStoreDownAnswers503WithoutDetails(t *testing.T) {
	srv := serveInterventions(t, brokenNudges{}, brokenNudges{})
	status, body := call(t, srv, http.MethodGet, httpapi.InterventionsPath, nil)
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Equal(t, map[string]any{"detail": "intervention store unavailable"}, body)
	status, body = call(t, srv, http.MethodPost, httpapi.InterventionsRunPath, url.Values{"device": {"kit"}})
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.NotContains(t, body["detail"], "hunter2")
}
