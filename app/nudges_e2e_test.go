package app_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/decide/nudgellm/nudgellmtest"
	"github.com/foresight-vision/foresight/adapters/inference/modal/modaltest"
	"github.com/foresight-vision/foresight/adapters/notify/poke/poketest"
	"github.com/foresight-vision/foresight/adapters/store/postgres/pgtest"
	"github.com/foresight-vision/foresight/app"
	"github.com/foresight-vision/foresight/domain"
)

// These tests run the whole server with the nudge loop on: captions come
// from streaming frames through the Modal double, land in a real store,
// and the loop reads them there and sends nudges to the Poke double. They
// set environment variables, so none is parallel. They wait on conditions,
// never on durations.

// nudgeWait is how long a condition may take: generous, since the loop
// ticks every nudgeInterval and captions are written in batches.
const (
	nudgeWait     = 30 * time.Second
	nudgeInterval = "300ms"
	// nudgeWindow reaches past the recorder's batching (a caption may wait
	// a second to be written), so every tick finds the stream's captions.
	nudgeWindow = "3s"
	donutRules  = `rules:
  - name: sugary snack
    match: '\bdonuts?\b'
    message: "How about some fruit instead?"
`
	donutNudge = "How about some fruit instead?"
)

// donutFake is the Modal double captioning every chunk "the wearer eats a
// donut".
func donutFake(t *testing.T) {
	t.Helper()
	fake := modaltest.New(t)
	fake.SetEnv(t)
	var n atomic.Int64
	fake.SetReply(func(c modaltest.Call) (any, error) {
		reply, err := modaltest.DefaultReply(c)
		if m, ok := reply.(map[string]any); ok && c.Method == modaltest.MethodInferChunk {
			m["caption"] = "the wearer eats a donut, shot " + strings.Repeat("i", int(n.Add(1)%5)+1)
		}
		return reply, err
	})
}

func rulesFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yaml")
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func pokeFake(t *testing.T) *poketest.Server {
	t.Helper()
	fake := poketest.NewServer()
	t.Cleanup(fake.Close)
	return fake
}

// nudgeEnv is the environment of a server with a short nudge loop.
func nudgeEnv(poke *poketest.Server, env ...string) []string {
	return append([]string{"FORESIGHT_POKE_URL", poke.URL(), "FORESIGHT_POKE_API_KEY", "server-poke-key",
		"FORESIGHT_NUDGE_INTERVAL", nudgeInterval, "FORESIGHT_NUDGE_WINDOW", nudgeWindow,
		// The loop's look-up reaches back the inference timeout beyond the
		// window (captions land late); the double answers in milliseconds.
		"FORESIGHT_INFERENCE_TIMEOUT", "2s"}, env...)
}

// streamInBackground streams frames as device until the returned stop is
// called.
func streamInBackground(t *testing.T, inst *app.Instance, device string) (stop func()) {
	t.Helper()
	conn := dialDevice(t, inst, device)
	quit, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-quit:
				return
			default:
			}
			if conn.SendFrame([]byte("jpeg-bytes")) != nil {
				return
			}
			if _, err := conn.ReadAck(); err != nil {
				return
			}
			time.Sleep(10 * time.Millisecond) // a camera's pace, loosely
		}
	}()
	var once atomic.Bool
	stop = func() {
		if once.CompareAndSwap(false, true) {
			close(quit)
			<-finished
			_ = conn.Close()
		}
	}
	t.Cleanup(stop)
	return stop
}

type interventionRecord struct {
	ID         string   `json:"id"`
	Device     string   `json:"device"`
	Time       string   `json:"time"`
	Engine     string   `json:"engine"`
	Decision   string   `json:"decision"`
	Reasoning  string   `json:"reasoning"`
	CaptionIDs []string `json:"caption_ids"`
	// BiometricIDs are the biometric windows the decision saw.
	BiometricIDs []string `json:"biometric_ids"`
	Model        *string  `json:"model"`
	Nudge        *string  `json:"nudge"`
	Status       string   `json:"status"`
	DeliveredAt  *string  `json:"delivered_at"`
	Attempts     int      `json:"attempts"`
	Error        *string  `json:"error"`
}

func (r interventionRecord) time(t *testing.T) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, r.Time)
	require.NoError(t, err)
	return at
}

func (r interventionRecord) deliveredAt(t *testing.T) time.Time {
	t.Helper()
	require.NotNil(t, r.DeliveredAt, "record %s has no delivered_at", r.ID)
	at, err := time.Parse(time.RFC3339Nano, *r.DeliveredAt)
	require.NoError(t, err)
	return at
}

// listInterventions pages through GET /interventions for device and
// returns every record, newest first.
func listInterventions(t *testing.T, base, device string) []interventionRecord {
	t.Helper()
	query := url.Values{"device": {device}, "limit": {"500"}}
	var all []interventionRecord
	for {
		status, body := get(t, base+"/interventions?"+query.Encode())
		require.Equal(t, http.StatusOK, status, body)
		var page struct {
			Interventions []interventionRecord `json:"interventions"`
			NextCursor    *string              `json:"next_cursor"`
		}
		require.NoError(t, json.Unmarshal([]byte(body), &page))
		all = append(all, page.Interventions...)
		if page.NextCursor == nil {
			return all
		}
		query.Set("cursor", *page.NextCursor)
	}
}

func withStatus(records []interventionRecord, status string) []interventionRecord {
	var out []interventionRecord
	for _, r := range records {
		if r.Status == status {
			out = append(out, r)
		}
	}
	return out
}

func withDecision(records []interventionRecord, decision string) []interventionRecord {
	var out []interventionRecord
	for _, r := range records {
		if r.Decision == decision {
			out = append(out, r)
		}
	}
	return out
}

func postRun(t *testing.T, base, device string) (int, string) {
	t.Helper()
	resp, err := http.Post(base+"/interventions/run?device="+url.QueryEscape(device), "application/json", nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

// waitCaptionsAged waits, once streaming has stopped, until the device has
// no captions left in the window (a manual run answers 404): from then on
// no evaluation of it decides anything.
func waitCaptionsAged(t *testing.T, inst *app.Instance, device string) {
	t.Helper()
	require.Eventually(t, func() bool {
		status, _ := postRun(t, inst.URL(), device)
		return status == http.StatusNotFound
	}, nudgeWait, 50*time.Millisecond, "the captions of %s age out of the window", device)
}

func TestNudgeRulesSendOneNudgeThenWaitForTheCooldown(t *testing.T) {
	donutFake(t)
	poke := pokeFake(t)
	inst := startWithStore(t, "sqlite:"+filepath.Join(t.TempDir(), "f.db"), nudgeEnv(poke,
		"FORESIGHT_NUDGES", "rules", "FORESIGHT_NUDGE_RULES", rulesFile(t, donutRules), "FORESIGHT_NUDGE_COOLDOWN", "2s")...)
	defer stopInstance(t, inst)
	stream := streamInBackground(t, inst, "kitchen")

	require.Eventually(t, func() bool { return len(poke.Requests()) >= 1 }, nudgeWait, 20*time.Millisecond, "the first nudge reaches Poke")
	first := poke.Requests()[0]
	assert.Equal(t, domain.DefaultNudgePrefix+donutNudge, first.Message, "the rule's message, prefixed")
	assert.Equal(t, "Bearer server-poke-key", first.Authorization)

	require.Eventually(t, func() bool { return len(poke.Requests()) >= 2 }, nudgeWait, 20*time.Millisecond, "a second nudge once the cooldown has passed")
	stream()
	waitCaptionsAged(t, inst, "kitchen")

	records := listInterventions(t, inst.URL(), "kitchen")
	delivered := withStatus(records, "delivered")
	require.Len(t, delivered, len(poke.Requests()), "one Poke request per delivered decision: %+v", records)
	// Newest first: delivered[len-1] is the first nudge, delivered[len-2] the second.
	firstAt, secondAt := delivered[len(delivered)-1].deliveredAt(t), delivered[len(delivered)-2].deliveredAt(t)
	assert.GreaterOrEqual(t, secondAt.Sub(firstAt), 2*time.Second, "the second nudge waited for the cooldown")
	var heldBack int
	for _, r := range withStatus(records, "suppressed: cooldown") {
		if at := r.time(t); at.After(firstAt) && at.Before(secondAt) {
			heldBack++
		}
		assert.Equal(t, "yes", r.Decision, "the rule still matched; the cooldown held it back")
	}
	assert.Positive(t, heldBack, "decisions within the cooldown were recorded and held back")
	for _, r := range records {
		assert.Equal(t, "rules", r.Engine)
		assert.NotEmpty(t, r.CaptionIDs, "each decision names the captions it saw")
		if r.Decision == "yes" {
			require.NotNil(t, r.Nudge)
			assert.Equal(t, donutNudge, *r.Nudge)
		}
	}
}

func TestNudgeLLMYesNoAndMalformedAreAllRecorded(t *testing.T) {
	donutFake(t)
	poke := pokeFake(t)
	model := nudgellmtest.NewServer()
	defer model.Close()
	model.AnswerYes("Swap the donut for an apple.")
	dbPath := filepath.Join(t.TempDir(), "f.db")
	inst := startWithStore(t, "sqlite:"+dbPath, nudgeEnv(poke,
		// A longer interval: a decision is recorded only if the model answers
		// within 9/10 of it, and this test counts every call's record.
		"FORESIGHT_NUDGES", "llm", "FORESIGHT_NUDGE_COOLDOWN", "1h", "FORESIGHT_NUDGE_INTERVAL", "1s",
		"FORESIGHT_NUDGE_LLM_BASE_URL", model.BaseURL(), "FORESIGHT_NUDGE_LLM_MODEL", "judge-1",
		"FORESIGHT_NUDGE_LLM_API_KEY", "llm-key")...)
	stream := streamInBackground(t, inst, "kitchen")

	require.Eventually(t, func() bool { return len(poke.Requests()) >= 1 }, nudgeWait, 20*time.Millisecond, "the yes reaches Poke")
	model.AnswerNo()
	require.Eventually(t, func() bool {
		return len(withDecision(listInterventions(t, inst.URL(), "kitchen"), "no")) > 0
	}, nudgeWait, 20*time.Millisecond)
	model.AnswerContent("Sure! Here is my answer: yes")
	require.Eventually(t, func() bool {
		return len(withDecision(listInterventions(t, inst.URL(), "kitchen"), "error")) > 0
	}, nudgeWait, 20*time.Millisecond)
	stream()
	waitCaptionsAged(t, inst, "kitchen")

	requests := model.Requests()
	records := listInterventions(t, inst.URL(), "kitchen")
	assert.Len(t, records, len(requests), "every model call's decision is listed")
	require.Len(t, poke.Requests(), 1, "the nudge reaches Poke once (the cooldown holds the later yeses)")
	assert.Equal(t, domain.DefaultNudgePrefix+"Swap the donut for an apple.", poke.Requests()[0].Message)
	assert.Equal(t, "Bearer llm-key", requests[0].Authorization)
	assert.Equal(t, "judge-1", requests[0].Body["model"])

	require.Len(t, withStatus(records, "delivered"), 1)
	for _, r := range records {
		assert.Equal(t, "llm", r.Engine)
		switch r.Decision {
		case "yes":
			assert.Contains(t, []string{"delivered", "suppressed: cooldown"}, r.Status)
		case "no":
			assert.Equal(t, "none", r.Status)
			assert.Nil(t, r.Nudge)
		case "error":
			assert.Equal(t, "none", r.Status, "a malformed reply delivers nothing")
			require.NotNil(t, r.Error)
			assert.NotEmpty(t, *r.Error)
		default:
			t.Errorf("unexpected decision %q", r.Decision)
		}
	}
	assert.NotEmpty(t, withDecision(records, "no"))
	assert.NotEmpty(t, withDecision(records, "error"))
	stopInstance(t, inst)

	// With nudges off, the decisions are still listed.
	off := startWithStore(t, "sqlite:"+dbPath)
	defer stopInstance(t, off)
	assert.Len(t, listInterventions(t, off.URL(), "kitchen"), len(records))
	status, body := postRun(t, off.URL(), "kitchen")
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Contains(t, body, "nudges are off: set FORESIGHT_NUDGES")
}

func TestNudgesOnTwoInstancesOnOnePostgresDeliverOncePerDecision(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := postgresURL(t, pg.NewDatabase(t))
	donutFake(t)
	poke := pokeFake(t)
	env := nudgeEnv(poke, "FORESIGHT_NUDGES", "rules", "FORESIGHT_NUDGE_RULES", rulesFile(t, donutRules),
		"FORESIGHT_NUDGE_COOLDOWN", "0") // no cooldown: every slot decides and delivers
	a := startWithStore(t, dsn, env...)
	b := startWithStore(t, dsn, env...)
	stream := streamInBackground(t, a, "kitchen") // both instances see its captions in the database

	require.Eventually(t, func() bool { return len(poke.Requests()) >= 4 }, nudgeWait, 20*time.Millisecond)
	stream()
	stopInstance(t, a)
	stopInstance(t, b)

	again := startWithStore(t, dsn)
	defer stopInstance(t, again)
	records := listInterventions(t, again.URL(), "kitchen")
	interval, err := time.ParseDuration(nudgeInterval)
	require.NoError(t, err)
	slots := map[time.Time]string{}
	attempts := 0
	for _, r := range records {
		slot := r.time(t).Truncate(interval)
		assert.NotContains(t, slots, slot, "one decision per slot across both instances: %s and %s", slots[slot], r.ID)
		slots[slot] = r.ID
		attempts += r.Attempts
	}
	// Every Poke request is an attempt of a recorded decision (an attempt
	// cut short by the stop may never have reached Poke), and each delivered
	// decision reached Poke once: one nudge per decision, not two.
	requests := len(poke.Requests())
	assert.GreaterOrEqual(t, attempts, requests, "every Poke request is an attempt of one decision: %+v", records)
	delivered, failedAttempts := len(withStatus(records, "delivered")), 0
	for _, r := range withStatus(records, "failed") {
		failedAttempts += r.Attempts // cut short by the stop, possibly after Poke took it
	}
	assert.GreaterOrEqual(t, requests, delivered, "%+v", records)
	assert.LessOrEqual(t, requests, delivered+failedAttempts, "no Poke request beyond the decisions' attempts: %+v", records)
	assert.GreaterOrEqual(t, delivered, 3, "several slots delivered")
}

func TestNudgePokeOutageDelaysButNeverDuplicates(t *testing.T) {
	donutFake(t)
	poke := pokeFake(t)
	poke.SetStatus(http.StatusServiceUnavailable, `{"error":"down"}`)
	inst := startWithStore(t, "sqlite:"+filepath.Join(t.TempDir(), "f.db"), nudgeEnv(poke,
		"FORESIGHT_NUDGES", "rules", "FORESIGHT_NUDGE_RULES", rulesFile(t, donutRules), "FORESIGHT_NUDGE_COOLDOWN", "1h")...)
	defer stopInstance(t, inst)
	stream := streamInBackground(t, inst, "kitchen")

	require.Eventually(t, func() bool {
		return len(withStatus(listInterventions(t, inst.URL(), "kitchen"), "failed")) >= 2
	}, nudgeWait, 20*time.Millisecond, "decisions made during the outage are recorded as failed")
	poke.SetStatus(http.StatusOK, poketest.DefaultReply)
	require.Eventually(t, func() bool {
		return len(withStatus(listInterventions(t, inst.URL(), "kitchen"), "delivered")) >= 1
	}, nudgeWait, 20*time.Millisecond, "the nudge goes out once Poke is back")
	stream()
	waitCaptionsAged(t, inst, "kitchen")

	records := listInterventions(t, inst.URL(), "kitchen")
	delivered := withStatus(records, "delivered")
	require.Len(t, delivered, 1, "delivered once, never twice: %+v", records)
	attempts := 0
	for _, r := range records {
		attempts += r.Attempts
		assert.Equal(t, "yes", r.Decision, "no decision lost: each is recorded with its verdict")
		switch r.Status {
		case "failed":
			require.NotNil(t, r.Error)
			if r.Attempts == 0 {
				// The interval's deadline came before the first attempt
				// could be marked (a loaded machine): nothing was sent.
				assert.Contains(t, *r.Error, "mark sending")
			} else {
				assert.Contains(t, *r.Error, "deliver")
			}
		case "delivered", "suppressed: cooldown":
		default:
			t.Errorf("unexpected status %q of %s", r.Status, r.ID)
		}
		if r.Status == "suppressed: cooldown" {
			assert.True(t, r.time(t).After(delivered[0].time(t)), "only decisions after the delivery are held back")
		}
	}
	// An attempt cut short at the interval's end may never reach Poke, so
	// the records may count more attempts than Poke saw, never fewer.
	assert.GreaterOrEqual(t, attempts, len(poke.Requests()), "every Poke request is an attempt the records account for")
	assert.Equal(t, domain.DefaultNudgePrefix+donutNudge, poke.Requests()[len(poke.Requests())-1].Message, "the last request is the one delivered")
}

func TestNudgeRunWithoutAPokeKeyRecordsSkipped(t *testing.T) {
	donutFake(t)
	poke := pokeFake(t)
	inst := startWithStore(t, "sqlite:"+filepath.Join(t.TempDir(), "f.db"),
		"FORESIGHT_POKE_URL", poke.URL(), "FORESIGHT_NUDGE_INTERVAL", "1h", "FORESIGHT_NUDGE_WINDOW", "1h",
		"FORESIGHT_NUDGES", "rules", "FORESIGHT_NUDGE_RULES", rulesFile(t, donutRules))
	defer stopInstance(t, inst)

	status, body := postRun(t, inst.URL(), "kitchen")
	assert.Equal(t, http.StatusNotFound, status, "no captions yet: %s", body)
	streamUntil(t, inst, "kitchen", 3)
	require.Eventually(t, func() bool {
		status, body = postRun(t, inst.URL(), "kitchen")
		return status == http.StatusOK
	}, nudgeWait, 20*time.Millisecond, "the captions are written")
	var rec interventionRecord
	require.NoError(t, json.Unmarshal([]byte(body), &rec), body)
	assert.Equal(t, "yes", rec.Decision)
	assert.Equal(t, "skipped: no key", rec.Status)
	require.NotNil(t, rec.Nudge)
	assert.Equal(t, donutNudge, *rec.Nudge)
	assert.Empty(t, poke.Requests(), "nothing is sent without the server's key")
	listed := listInterventions(t, inst.URL(), "kitchen")
	require.NotEmpty(t, listed)
	assert.Equal(t, rec.ID, listed[0].ID, "the run's decision is recorded")

	status, _ = postRun(t, inst.URL(), "no spaces/allowed")
	assert.Equal(t, http.StatusUnprocessableEntity, status)
}

func TestNudgeRoutesSitBehindTheMagicWord(t *testing.T) {
	inst := startServer(t, "MAGIC_WORD", "w", "FORESIGHT_DATABASE_URL", "sqlite:"+filepath.Join(t.TempDir(), "f.db"))
	status, _ := get(t, inst.URL()+"/interventions")
	assert.Equal(t, http.StatusForbidden, status)
	status, body := get(t, inst.URL()+"/interventions?magic_word=w")
	assert.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"interventions":[],"next_cursor":null}`, body, "nudges off still lists")
	status, _ = postRun(t, inst.URL(), "kitchen")
	assert.Equal(t, http.StatusForbidden, status)
	resp, err := http.Post(inst.URL()+"/interventions/run?device=kitchen&magic_word=w", "application/json", nil)
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "nudges off: a run is refused, clearly")
	var detail map[string]string
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&detail))
	assert.Equal(t, "nudges are off: set FORESIGHT_NUDGES to rules or llm", detail["detail"])
}

func TestNudgeSettingsThatCannotWorkStopTheStart(t *testing.T) {
	_, err := app.LoadConfig(nil, envOf("FORESIGHT_NUDGES", "rules", "FORESIGHT_NUDGE_RULES", "r.yaml", "FORESIGHT_DATABASE_URL", "none"), nil)
	require.Error(t, err)
	assert.ErrorContains(t, err, "FORESIGHT_DATABASE_URL")
	_, err = app.LoadConfig(nil, envOf("FORESIGHT_NUDGES", "rules"), nil)
	assert.ErrorContains(t, err, "FORESIGHT_NUDGE_RULES")
	_, err = app.LoadConfig(nil, envOf("FORESIGHT_NUDGES", "llm"), nil)
	assert.ErrorContains(t, err, "FORESIGHT_NUDGE_LLM_MODEL")
	_, err = app.LoadConfig(nil, envOf("FORESIGHT_NUDGES", "sometimes"), nil)
	assert.Error(t, err)
	_, err = app.LoadConfig(nil, envOf("FORESIGHT_NUDGE_LLM_RESPONSE_FORMAT", "xml"), nil)
	assert.Error(t, err)

	// The llm settings fall back to the OpenAI backend's.
	c, err := app.LoadConfig(nil, envOf("FORESIGHT_NUDGES", "llm", "OPENAI_API_KEY", "k", "FORESIGHT_OPENAI_MODEL", "m"), nil)
	require.NoError(t, err)
	assert.Equal(t, "llm", c.Nudges)
	assert.Equal(t, 60*time.Second, c.NudgeInterval)
	assert.Equal(t, 10*time.Minute, c.NudgeCooldown)
	assert.Equal(t, domain.DefaultNudgePrefix, c.NudgePrefix)

	broken := rulesFile(t, "rules:\n  - name: ok\n    match: fine\n    message: hi\n  - name: junk food\n    match: '(unclosed'\n    message: hi\n")
	cfg, err := app.LoadConfig([]string{"--addr", "127.0.0.1:0"}, envOf("FORESIGHT_DATABASE_URL", "sqlite:"+filepath.Join(t.TempDir(), "f.db"),
		"FORESIGHT_NUDGES", "rules", "FORESIGHT_NUDGE_RULES", broken), nil)
	require.NoError(t, err)
	_, err = app.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	require.Error(t, err)
	assert.ErrorContains(t, err, `junk food`)
	assert.ErrorContains(t, err, broken)
}

func TestNudgeStartUpLineSaysWhatRunsAndHoldsNoSecret(t *testing.T) {
	poke := pokeFake(t)
	model := nudgellmtest.NewServer()
	defer model.Close()
	_, logs := startLogged(t, "FORESIGHT_DATABASE_URL", "sqlite:"+filepath.Join(t.TempDir(), "f.db"),
		"FORESIGHT_POKE_URL", poke.URL(), "FORESIGHT_POKE_API_KEY", "pk-secret-123",
		"FORESIGHT_NUDGES", "llm", "FORESIGHT_NUDGE_LLM_BASE_URL", model.BaseURL(), "FORESIGHT_NUDGE_LLM_MODEL", "judge-1",
		"FORESIGHT_NUDGE_LLM_API_KEY", "llm-secret-456", "FORESIGHT_NUDGE_INTERVAL", "30s")
	var line string
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, "nudges on") {
			line = l
		}
	}
	require.NotEmpty(t, line, logs.String())
	for _, want := range []string{"engine=llm", "interval=30s", "window=30s", "cooldown=10m0s", "delivery_key=true", "shared_lock=false"} {
		assert.Contains(t, line, want)
	}
	assert.NotContains(t, logs.String(), "pk-secret-123")
	assert.NotContains(t, logs.String(), "llm-secret-456")

	_, offLogs := startLogged(t)
	assert.Contains(t, offLogs.String(), "nudges off")
	assert.NotContains(t, offLogs.String(), "nudges on")
}

func TestNudgeMetricsCountDecisions(t *testing.T) {
	donutFake(t)
	poke := pokeFake(t)
	inst := startWithStore(t, "sqlite:"+filepath.Join(t.TempDir(), "f.db"), nudgeEnv(poke,
		"FORESIGHT_NUDGES", "rules", "FORESIGHT_NUDGE_RULES", rulesFile(t, donutRules), "FORESIGHT_NUDGE_COOLDOWN", "1h")...)
	defer stopInstance(t, inst)
	stream := streamInBackground(t, inst, "kitchen")
	require.Eventually(t, func() bool { return len(poke.Requests()) >= 1 }, nudgeWait, 20*time.Millisecond)
	stream()
	require.Eventually(t, func() bool {
		_, body := get(t, inst.URL()+"/metrics")
		return strings.Contains(body, `foresight_nudge_decisions_total{engine="rules",outcome="delivered"} 1`) &&
			strings.Contains(body, `foresight_nudge_delivery_attempts_total{outcome="ok"} 1`)
	}, nudgeWait, 20*time.Millisecond, "the delivered decision and its attempt are counted")
}

// TestNudgeLoopRunsInOneProcessPerSQLiteFile: a second server on the same
// SQLite file does not run the loop (its lock and cooldown memory are
// per process, so it would deliver again): it says so, and answers manual
// runs 503; once the first stops, a new one takes the loop.
func TestNudgeLoopRunsInOneProcessPerSQLiteFile(t *testing.T) {
	poke := pokeFake(t)
	db := "sqlite:" + filepath.Join(t.TempDir(), "f.db")
	env := append([]string{"FORESIGHT_DATABASE_URL", db}, nudgeEnv(poke, "FORESIGHT_NUDGES", "rules",
		"FORESIGHT_NUDGE_RULES", rulesFile(t, donutRules))...)
	first, firstLogs := startLogged(t, env...)
	assert.Contains(t, firstLogs.String(), "nudges on")

	second, secondLogs := startLogged(t, env...)
	assert.Contains(t, secondLogs.String(), "nudges off in this process: another process runs the nudge loop on this SQLite file")
	assert.NotContains(t, secondLogs.String(), "nudges on")
	status, body := postRun(t, second.URL(), "kitchen")
	assert.Equal(t, http.StatusServiceUnavailable, status, body)
	assert.Contains(t, body, "another process runs the nudge loop")
	status, _ = postRun(t, first.URL(), "kitchen")
	assert.Equal(t, http.StatusNotFound, status, "the first runs it: no captions yet")

	stopInstance(t, first)
	_, thirdLogs := startLogged(t, env...)
	assert.Contains(t, thirdLogs.String(), "nudges on", "the lock is free once the first stopped")
}
