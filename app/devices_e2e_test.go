package app_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/store/postgres/pgtest"
	"github.com/foresight-vision/foresight/app"
	"github.com/foresight-vision/foresight/domain"
	"github.com/foresight-vision/foresight/internal/testlog"
)

// These tests run the whole server over real HTTP with a wearer's own data:
// device Poke keys (set by the CLI and over HTTP), export and deletion.

func serverKey(t *testing.T) string {
	t.Helper()
	raw := make([]byte, 32)
	_, err := rand.Read(raw)
	require.NoError(t, err)
	return base64.StdEncoding.EncodeToString(raw)
}

// startLoggedWithStore is startWithStore with its logs kept.
func startLoggedWithStore(t *testing.T, databaseURL string, env ...string) (*app.Instance, *testlog.Buffer) {
	t.Helper()
	base := []string{"MODAL_TOKEN_ID", "ak-server", "MODAL_TOKEN_SECRET", "as-server", "VISION_CHUNK_SECONDS", "0",
		"FORESIGHT_DATABASE_URL", databaseURL}
	cfg, err := app.LoadConfig([]string{"--addr", "127.0.0.1:0"}, envOf(append(base, env...)...), nil)
	require.NoError(t, err)
	logs := &testlog.Buffer{}
	inst, err := app.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	require.NoError(t, err)
	return inst, logs
}

// deviceCLI runs `foresight device args…` with env, as the binary does.
func deviceCLI(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := app.DeviceCommand(t.Context(), args, envOf(env...), &out)
	return out.String(), err
}

func keyFile(t *testing.T, key string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "poke.key")
	require.NoError(t, os.WriteFile(path, []byte(key+"\n"), 0o600))
	return path
}

func send(t *testing.T, method, target, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, target, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestEachWearersNudgesGoWithTheirOwnPokeKey(t *testing.T) {
	donutFake(t)
	poke := pokeFake(t)
	secret := serverKey(t)
	dbURL := "sqlite:" + filepath.Join(t.TempDir(), "f.db")
	const aliceKey, bobKey, serverPokeKey = "pk-alice-0123456789", "pk-bob-9876543210", "server-poke-key"

	// Set on a stopped server, through the command.
	cliEnv := []string{"FORESIGHT_DATABASE_URL", dbURL, "FORESIGHT_SECRET_KEY", secret}
	out, err := deviceCLI(t, cliEnv, "set", "alice", "--poke-key-file", keyFile(t, aliceKey))
	require.NoError(t, err)
	assert.Contains(t, out, "device alice: poke key set")
	assert.NotContains(t, out, aliceKey)

	inst, logs := startLoggedWithStore(t, dbURL, nudgeEnv(poke,
		"FORESIGHT_NUDGES", "rules", "FORESIGHT_NUDGE_RULES", rulesFile(t, donutRules), "FORESIGHT_NUDGE_COOLDOWN", "1h",
		"FORESIGHT_SECRET_KEY", secret)...)
	defer stopInstance(t, inst)

	// Set on the running server, by its admin.
	status, body := send(t, http.MethodPut, inst.URL()+"/devices/bob/poke-key", `{"poke_api_key":"`+bobKey+`"}`)
	require.Equal(t, http.StatusOK, status, body)
	assert.JSONEq(t, `{"device":"bob","poke_key":"set"}`, body)

	// One device at a time, so each Poke request is known to be its nudge.
	// Under load a delivery can be retried (Poke took it, the answer came
	// too late), so a device may send more than one: all with its key.
	want := []string{"Bearer " + aliceKey, "Bearer " + bobKey, "Bearer " + serverPokeKey}
	for i, device := range []string{"alice", "bob", "carol"} {
		before := len(poke.Requests())
		stop := streamInBackground(t, inst, device)
		require.Eventually(t, func() bool { return len(poke.Requests()) > before }, nudgeWait, 20*time.Millisecond, "%s's nudge", device)
		stop()
		waitCaptionsAged(t, inst, device) // from here no evaluation of it runs
		for _, r := range poke.Requests()[before:] {
			assert.Equal(t, want[i], r.Authorization, "%s's nudges go with %s", device, want[i])
			assert.Equal(t, domain.DefaultNudgePrefix+donutNudge, r.Message)
		}
		assert.NotEmpty(t, withStatus(listInterventions(t, inst.URL(), device), "delivered"))
	}

	// Export: the device's captions and decisions, nothing of another's.
	resp, err := http.Get(inst.URL() + "/devices/alice/export")
	require.NoError(t, err)
	exported, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "application/x-ndjson", resp.Header.Get("Content-Type"))
	assert.Contains(t, resp.Header.Get("Content-Disposition"), "attachment")
	kinds := map[string]int{}
	for line := range strings.Lines(string(exported)) {
		var rec map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &rec), line)
		kinds[rec["kind"].(string)]++
		assert.Equal(t, "alice", rec["device"], line)
	}
	assert.Equal(t, len(listCaptions(t, inst.URL(), url.Values{"device": {"alice"}, "limit": {"500"}})), kinds["caption"])
	assert.Equal(t, len(listInterventions(t, inst.URL(), "alice")), kinds["intervention"])
	assert.Positive(t, kinds["caption"])
	assert.Positive(t, kinds["intervention"])
	assert.Equal(t, 1, kinds["end"])

	// No Poke key anywhere a client or an operator can read.
	var seen strings.Builder
	for _, path := range []string{"/metrics", "/interventions?limit=500", "/captions?limit=500", "/devices/bob/export", "/devices/carol/export"} {
		_, body := get(t, inst.URL()+path)
		seen.WriteString(body)
	}
	seen.Write(exported)
	seen.WriteString(logs.String())
	var help bytes.Buffer
	_, err = app.LoadConfig([]string{"--help"}, envOf("FORESIGHT_POKE_API_KEY", serverPokeKey, "FORESIGHT_SECRET_KEY", secret), &help)
	require.ErrorIs(t, err, flag.ErrHelp)
	seen.WriteString(help.String())
	deviceHelp, err := deviceCLI(t, append(cliEnv, "FORESIGHT_SECRET_KEY_PREVIOUS", secret), "set", "--help")
	require.ErrorIs(t, err, flag.ErrHelp)
	assert.Contains(t, deviceHelp, "FORESIGHT_SECRET_KEY")
	seen.WriteString(deviceHelp)
	status, body = send(t, http.MethodDelete, inst.URL()+"/devices/bob/poke-key", "")
	require.Equal(t, http.StatusOK, status)
	seen.WriteString(body)
	for _, key := range []string{aliceKey, bobKey, serverPokeKey, secret} {
		assert.NotContains(t, seen.String(), key, "a key leaked")
	}
	assert.Contains(t, logs.String(), "device poke key set", "the log says what happened, without the key")
}

func TestADeviceKeyThatDoesNotOpenFailsItsNudgeUntilRekeyed(t *testing.T) {
	donutFake(t)
	poke := pokeFake(t)
	oldSecret, newSecret := serverKey(t), serverKey(t)
	dbURL := "sqlite:" + filepath.Join(t.TempDir(), "f.db")
	const aliceKey = "pk-alice-rotating"
	_, err := deviceCLI(t, []string{"FORESIGHT_DATABASE_URL", dbURL, "FORESIGHT_SECRET_KEY", oldSecret},
		"set", "alice", "--poke-key-file", keyFile(t, aliceKey))
	require.NoError(t, err)
	manual := func(secretEnv ...string) *app.Instance {
		inst, _ := startLoggedWithStore(t, dbURL, append([]string{"FORESIGHT_POKE_URL", poke.URL(),
			"FORESIGHT_POKE_API_KEY", "server-poke-key", "FORESIGHT_NUDGE_INTERVAL", "1h", "FORESIGHT_NUDGE_WINDOW", "1h",
			"FORESIGHT_NUDGE_COOLDOWN", "0", "FORESIGHT_NUDGES", "rules", "FORESIGHT_NUDGE_RULES", rulesFile(t, donutRules),
			"FORESIGHT_MANUAL_RUNS_PER_MINUTE", "100000"}, secretEnv...)...) // run polls until the captions are in
		return inst
	}
	run := func(inst *app.Instance) interventionRecord {
		t.Helper()
		var status int
		var body string
		require.Eventually(t, func() bool {
			status, body = postRun(t, inst.URL(), "alice")
			return status != http.StatusNotFound
		}, nudgeWait, 20*time.Millisecond, "the captions are written")
		require.Equal(t, http.StatusOK, status, body)
		var rec interventionRecord
		require.NoError(t, json.Unmarshal([]byte(body), &rec), body)
		return rec
	}

	// Rotated without the previous key: alice's key does not open.
	inst := manual("FORESIGHT_SECRET_KEY", newSecret)
	streamUntil(t, inst, "alice", 3)
	rec := run(inst)
	assert.Equal(t, "failed", rec.Status)
	require.NotNil(t, rec.Error)
	assert.Equal(t, domain.DeviceKeyUnreadable, *rec.Error)
	assert.Empty(t, poke.Requests(), "never sent with the server's key instead")
	stopInstance(t, inst)

	// The rotation done right: rekey with both, then the new key alone opens it.
	env := []string{"FORESIGHT_DATABASE_URL", dbURL, "FORESIGHT_SECRET_KEY", newSecret}
	_, err = deviceCLI(t, env, "rekey")
	require.Error(t, err, "without the previous key the old seal is reported unreadable")
	out, err := deviceCLI(t, append(env, "FORESIGHT_SECRET_KEY_PREVIOUS", oldSecret), "rekey")
	require.NoError(t, err)
	assert.Contains(t, out, "rekey: 1 re-encrypted")
	out, err = deviceCLI(t, env, "rekey")
	require.NoError(t, err)
	assert.Contains(t, out, "0 re-encrypted under server key")
	assert.Contains(t, out, "1 already under it")

	inst = manual("FORESIGHT_SECRET_KEY", newSecret)
	defer stopInstance(t, inst)
	streamUntil(t, inst, "alice", 3) // new evidence: the first decision judged the old captions
	rec = run(inst)
	assert.Equal(t, "delivered", rec.Status, "%+v", rec)
	require.Len(t, poke.Requests(), 1)
	assert.Equal(t, "Bearer "+aliceKey, poke.Requests()[0].Authorization)
}

func TestDeviceKeysNeedTheServerKey(t *testing.T) {
	dbURL := "sqlite:" + filepath.Join(t.TempDir(), "f.db")
	_, err := deviceCLI(t, []string{"FORESIGHT_DATABASE_URL", dbURL}, "set", "alice", "--poke-key-file", keyFile(t, "pk-1"))
	assert.ErrorContains(t, err, "FORESIGHT_SECRET_KEY")
	inst := startWithStore(t, dbURL)
	defer stopInstance(t, inst)
	status, body := send(t, http.MethodPut, inst.URL()+"/devices/alice/poke-key", `{"poke_api_key":"pk-1"}`)
	assert.Equal(t, http.StatusServiceUnavailable, status)
	assert.Contains(t, body, "set FORESIGHT_SECRET_KEY")

	_, err = app.LoadConfig(nil, envOf("FORESIGHT_SECRET_KEY", "too-short-to-be-a-key"), nil)
	assert.ErrorContains(t, err, "FORESIGHT_SECRET_KEY")
	assert.NotContains(t, err.Error(), "too-short-to-be-a-key")
	_, err = app.LoadConfig(nil, envOf("FORESIGHT_SECRET_KEY_PREVIOUS", serverKey(t)), nil)
	assert.ErrorContains(t, err, "without FORESIGHT_SECRET_KEY")
}

type exportedCaption struct {
	ID      string `json:"id"`
	Device  string `json:"device"`
	Start   string `json:"start"`
	Caption string `json:"caption"`
}

func listAll(t *testing.T, base string, query url.Values) []exportedCaption {
	t.Helper()
	query.Set("limit", "500")
	status, body := get(t, base+"/captions?"+query.Encode())
	require.Equal(t, http.StatusOK, status, body)
	var page struct {
		Captions []exportedCaption `json:"captions"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &page))
	return page.Captions
}

func TestDeletedRangeIsGoneFromCaptionsAndSearch(t *testing.T) {
	for name, dbURL := range map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "f.db") },
		"postgres": func(t *testing.T) string { return postgresURL(t, pgtest.Start(t).NewDatabase(t)) },
	} {
		t.Run(name, func(t *testing.T) {
			captionFake(t)
			inst := startWithStore(t, dbURL(t))
			defer stopInstance(t, inst)
			streamUntil(t, inst, "alice", 8)
			streamUntil(t, inst, "bob", 3)
			var alice []exportedCaption
			require.Eventually(t, func() bool {
				alice = listAll(t, inst.URL(), url.Values{"device": {"alice"}})
				return len(alice) >= 8 && len(listAll(t, inst.URL(), url.Values{"device": {"bob"}})) >= 3
			}, nudgeWait, 20*time.Millisecond, "the captions are written")
			bobBefore := listAll(t, inst.URL(), url.Values{"device": {"bob"}})

			// Newest first: delete [alice[5].start, alice[1].start), i.e. alice[2..5].
			since, until := alice[5].Start, alice[1].Start
			parse := func(s string) time.Time {
				at, err := time.Parse(time.RFC3339Nano, s)
				require.NoError(t, err)
				return at
			}
			require.True(t, parse(until).After(parse(since)))
			var gone, kept []exportedCaption
			for _, c := range alice {
				if at := parse(c.Start); !at.Before(parse(since)) && at.Before(parse(until)) {
					gone = append(gone, c)
				} else {
					kept = append(kept, c)
				}
			}
			require.NotEmpty(t, gone)
			status, body := send(t, http.MethodDelete, inst.URL()+"/devices/alice/memory?"+url.Values{"since": {since}, "until": {until}}.Encode(), "")
			require.Equal(t, http.StatusOK, status, body)
			var counts struct {
				Device        string `json:"device"`
				Captions      int    `json:"captions"`
				Interventions int    `json:"interventions"`
			}
			require.NoError(t, json.Unmarshal([]byte(body), &counts))
			assert.Equal(t, "alice", counts.Device)
			assert.Equal(t, len(gone), counts.Captions)

			ids := func(cs []exportedCaption) []string {
				var out []string
				for _, c := range cs {
					out = append(out, c.ID)
				}
				return out
			}
			assert.Equal(t, ids(kept), ids(listAll(t, inst.URL(), url.Values{"device": {"alice"}})))
			for _, c := range gone {
				word := strings.Fields(c.Caption)[0] // "shotN", unique to the caption
				assert.Empty(t, listAll(t, inst.URL(), url.Values{"q": {word}}), "%s is not found by search", word)
				assert.NotContains(t, ids(listAll(t, inst.URL(), url.Values{"q": {"coffee"}})), c.ID)
			}
			for _, c := range kept {
				assert.Equal(t, []string{c.ID}, ids(listAll(t, inst.URL(), url.Values{"q": {strings.Fields(c.Caption)[0]}, "device": {"alice"}})))
			}
			assert.Equal(t, ids(bobBefore), ids(listAll(t, inst.URL(), url.Values{"device": {"bob"}})), "another device is untouched")

			// No range: everything of the device.
			status, body = send(t, http.MethodDelete, inst.URL()+"/devices/alice/memory", "")
			require.Equal(t, http.StatusOK, status, body)
			assert.Empty(t, listAll(t, inst.URL(), url.Values{"device": {"alice"}}))
			assert.True(t, slices.Equal(ids(bobBefore), ids(listAll(t, inst.URL(), url.Values{"device": {"bob"}}))))
		})
	}
}
