package app_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/decide/nudgellm/nudgellmtest"
	"github.com/foresight-vision/foresight/domain"
)

const heartRules = `rules:
  - name: racing heart
    biometric: hrMean > 120
    windows: 2
    message: "Your heart is racing: sit down and breathe slowly for a minute."
`

// liveWindow is an upload of a window that starts now, so it is in the
// nudge loop's window.
func liveWindow(id string, hr float64, extra string) string {
	return fmt.Sprintf(`{"windowId": %q, "timestamp": %d, "durationMs": 1000, "qualityScore": 0.9, "hrMean": %g, "hrMin": %g, "hrMax": %g, "movementIntensity": 0.05%s}`,
		id, time.Now().UnixMilli(), hr, hr-4, hr+6, extra)
}

// decisionThatSaw waits for the device's decision whose biometric windows
// include id, and returns every record then.
func decisionThatSaw(t *testing.T, base, device, id string) (interventionRecord, []interventionRecord) {
	t.Helper()
	var found interventionRecord
	var records []interventionRecord
	require.Eventually(t, func() bool {
		records = listInterventions(t, base, device)
		for _, r := range records {
			if slices.Contains(r.BiometricIDs, id) {
				found = r
				return true
			}
		}
		return false
	}, nudgeWait, 20*time.Millisecond, "a decision sees window %s", id)
	return found, records
}

// TestAHeartRateRuleNudgesOnceWhenTheWindowsCrossIt: with the wearer's
// captions silent, two fast-heart windows fire the rule once; the next
// evaluation, with a calm new window beside the judged fast ones, does not
// fire again (no cooldown: the evidence rule alone holds it).
func TestAHeartRateRuleNudgesOnceWhenTheWindowsCrossIt(t *testing.T) {
	poke := pokeFake(t)
	inst := startWithStore(t, "sqlite:"+filepath.Join(t.TempDir(), "f.db"), nudgeEnv(poke,
		"FORESIGHT_NUDGES", "rules", "FORESIGHT_NUDGE_RULES", rulesFile(t, heartRules), "FORESIGHT_NUDGE_COOLDOWN", "0")...)
	defer stopInstance(t, inst)
	base := inst.URL()

	for _, id := range []string{"fast-1", "fast-2"} {
		status, body := upload(t, base, "runner", liveWindow(id, 131, ""))
		require.Equal(t, 200, status, body)
	}
	require.Eventually(t, func() bool { return len(poke.Requests()) >= 1 }, nudgeWait, 20*time.Millisecond, "the nudge reaches Poke")
	assert.Equal(t, domain.DefaultNudgePrefix+"Your heart is racing: sit down and breathe slowly for a minute.", poke.Requests()[0].Message)

	status, body := upload(t, base, "runner", liveWindow("calm-1", 72, ""))
	require.Equal(t, 200, status, body)
	calm, records := decisionThatSaw(t, base, "runner", "calm-1")
	assert.Equal(t, "no", calm.Decision, "judged fast windows do not fire the rule again: %+v", calm)

	require.Len(t, poke.Requests(), 1, "one nudge for one crossing")
	yes := withDecision(records, "yes")
	require.Len(t, yes, 1, "%+v", records)
	assert.Subset(t, yes[0].BiometricIDs, []string{"fast-1", "fast-2"}, "the decision records the windows it saw")
	assert.Contains(t, yes[0].Reasoning, "hrMean > 120")
	assert.Empty(t, yes[0].CaptionIDs, "no captions: the body alone was evaluated")
}

// TestTheLLMDeciderSeesTheBodyAndTheDecisionRecordsIt: the model's
// request carries the window's biometric windows in their compact form,
// and the decision lists their ids.
func TestTheLLMDeciderSeesTheBodyAndTheDecisionRecordsIt(t *testing.T) {
	poke := pokeFake(t)
	model := nudgellmtest.NewServer()
	defer model.Close()
	model.AnswerNo()
	inst := startWithStore(t, "sqlite:"+filepath.Join(t.TempDir(), "f.db"), nudgeEnv(poke,
		"FORESIGHT_NUDGES", "llm", "FORESIGHT_NUDGE_INTERVAL", "1s",
		"FORESIGHT_NUDGE_LLM_BASE_URL", model.BaseURL(), "FORESIGHT_NUDGE_LLM_MODEL", "judge-1")...)
	defer stopInstance(t, inst)

	status, body := upload(t, inst.URL(), "runner", liveWindow("w-alert", 131, `, "riskPrediction": {"alertLevel": "HIGH ALERT", "overallSusceptibility": 0.8}`))
	require.Equal(t, 200, status, body)
	rec, _ := decisionThatSaw(t, inst.URL(), "runner", "w-alert")
	assert.Equal(t, "no", rec.Decision)
	assert.Equal(t, "llm", rec.Engine)

	var prompt string
	for _, r := range model.Requests() {
		for _, m := range r.Messages() {
			if m[0] == "user" && strings.Contains(m[1], "wrist sensor") {
				prompt = m[1]
			}
		}
	}
	require.NotEmpty(t, prompt, "a model request carries the body")
	assert.Contains(t, prompt, "hr 131 min 127 max 137")
	assert.Contains(t, prompt, "movement 0.05")
	assert.Contains(t, prompt, "alert HIGH ALERT")
	assert.NotContains(t, prompt, "{", "compact lines, not JSON")
}
