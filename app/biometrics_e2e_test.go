package app_test

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// appWindow is the wearer app's upload as the shared doc describes it:
// every feature field, the heart ones null (no PPG signal), a later app's
// field, and the risk prediction.
const appWindow = `{
 "windowId": "win-0001", "timestamp": 1773478800000, "durationMs": 10000, "qualityScore": 0.82,
 "ppgSampleCount": 0, "accelSampleCount": 520, "peakCount": null, "validRRCount": null,
 "hrMean": null, "hrStd": null, "hrMin": null, "hrMax": null,
 "meanRR": null, "sdnn": null, "rmssd": null, "sdsd": null, "medianRR": null, "rangeRR": null, "iqrRR": null,
 "pnn50": null, "pnn20": null, "cvnn": null, "cvsd": null, "sd1": null, "sd2": null, "sd1sd2": null, "poincareArea": null,
 "accelMeanX": 0.01, "accelMeanY": -0.02, "accelMeanZ": 0.98, "accelStdX": 0.1, "accelStdY": 0.1, "accelStdZ": 0.05,
 "accelMagnitudeMean": 1.01, "accelMagnitudeStd": 0.12, "accelMagnitudeMax": 1.9,
 "movementIntensity": 0.34, "accelEnergy": 12.5, "skinTempC": 33.1,
 "riskPrediction": {
  "timestamp": 1773478810000,
  "riskAssessment": {
   "stress": {"level": 2, "label": "moderate", "confidence": 0.7, "probabilities": [0.1, 0.2, 0.7]},
   "health": {"level": 0, "label": "low", "confidence": 0.9, "probabilities": [0.9, 0.1]},
   "sleepFatigue": {"level": 1, "label": "mild", "confidence": 0.6, "probabilities": [0.4, 0.6]},
   "cognitiveFatigue": {"level": 1, "label": "mild", "confidence": 0.5, "probabilities": [0.5, 0.5]},
   "physicalExertion": {"level": 0, "label": "low", "confidence": 0.8, "probabilities": [0.8, 0.2]}
  },
  "overallSusceptibility": 0.62, "timeToRiskMinutes": 45,
  "timeToRiskRange": {"lower": 30, "upper": 60, "confidenceInterval": "90%"},
  "alertLevel": "MODERATE ALERT", "modelConfidence": {"average": 0.7, "min": 0.5}
 }
}`

// upload posts body as the app does (magic word in x-magic-word; no
// device) plus the device header when device is set.
func upload(t *testing.T, base, device, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/biometrics/upload", strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-magic-word", "w")
	if device != "" {
		req.Header.Set("x-foresight-device", device)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out map[string]any
	require.NoError(t, json.Unmarshal(raw, &out), string(raw))
	return resp.StatusCode, out
}

type listedWindow struct {
	Device         string              `json:"device"`
	WindowID       string              `json:"window_id"`
	Start          time.Time           `json:"start"`
	DurationMS     float64             `json:"duration_ms"`
	StoredAt       time.Time           `json:"stored_at"`
	Features       map[string]*float64 `json:"features"`
	AlertLevel     *string             `json:"alert_level"`
	Susceptibility *float64            `json:"susceptibility"`
	RiskPrediction json.RawMessage     `json:"risk_prediction"`
}

// listBiometrics polls GET /biometrics until it lists want windows (the
// writer batches), then returns them.
func listBiometrics(t *testing.T, base, query string, want int) []listedWindow {
	t.Helper()
	var page struct {
		Biometrics []listedWindow `json:"biometrics"`
	}
	require.Eventually(t, func() bool {
		status, body := get(t, base+"/biometrics?magic_word=w&"+query)
		require.Equal(t, http.StatusOK, status, body)
		require.NoError(t, json.Unmarshal([]byte(body), &page))
		return len(page.Biometrics) >= want
	}, nudgeWait, 20*time.Millisecond)
	return page.Biometrics
}

// TestTheAppsUploadIsStoredOnceListedExportedAndDeleted: the app's request
// (nulls, an unknown field, riskPrediction present and null) is answered as
// the original did, a repeated windowId is one row answered with the same
// storedAt, and the window is listed, exported and deleted with the device.
func TestTheAppsUploadIsStoredOnceListedExportedAndDeleted(t *testing.T) {
	inst := startServer(t, "MAGIC_WORD", "w", "FORESIGHT_DATABASE_URL", "sqlite:"+filepath.Join(t.TempDir(), "f.db"))
	base := inst.URL()

	status, first := upload(t, base, "", appWindow)
	require.Equal(t, http.StatusOK, status, first)
	assert.Equal(t, true, first["success"])
	assert.Equal(t, "win-0001", first["windowId"])
	require.IsType(t, float64(0), first["storedAt"])
	status, again := upload(t, base, "", appWindow)
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, first, again, "a repeat is answered the same way")

	noRisk := strings.Replace(strings.Replace(appWindow, `"win-0001"`, `"win-0002"`, 1),
		`"riskPrediction": {`, `"riskPrediction": null, "old": {`, 1)
	status, second := upload(t, base, "", noRisk)
	require.Equal(t, http.StatusOK, status, second)
	status, other := upload(t, base, "kit-2", appWindow)
	require.Equal(t, http.StatusOK, status, other)

	windows := listBiometrics(t, base, "device=default", 2)
	require.Len(t, windows, 2, "the repeated windowId is one row")
	byID := map[string]listedWindow{}
	for _, w := range windows {
		byID[w.WindowID] = w
	}
	w := byID["win-0001"]
	assert.Equal(t, "default", w.Device)
	assert.Equal(t, time.UnixMilli(1773478800000).UTC(), w.Start.UTC())
	assert.InDelta(t, 10000, w.DurationMS, 1e-9)
	assert.Equal(t, int64(first["storedAt"].(float64)), w.StoredAt.UnixMilli())
	require.Contains(t, w.Features, "hrMean")
	assert.Nil(t, w.Features["hrMean"], "null is kept as null")
	require.NotNil(t, w.Features["movementIntensity"])
	assert.InDelta(t, 0.34, *w.Features["movementIntensity"], 1e-9)
	require.NotNil(t, w.Features["skinTempC"], "an unknown numeric field is kept")
	require.NotNil(t, w.AlertLevel)
	assert.Equal(t, "MODERATE ALERT", *w.AlertLevel)
	assert.InDelta(t, 0.62, *w.Susceptibility, 1e-9)
	assert.Contains(t, string(w.RiskPrediction), `"timeToRiskRange"`)
	w2 := byID["win-0002"]
	assert.Nil(t, w2.AlertLevel)
	assert.Nil(t, w2.Susceptibility)
	assert.JSONEq(t, "null", string(w2.RiskPrediction))
	assert.Len(t, listBiometrics(t, base, "device=kit-2", 1), 1, "the same windowId on another device is its own window")

	status, body := get(t, base+"/devices/default/export?magic_word=w")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, 2, strings.Count(body, `"kind":"biometric"`))
	assert.Contains(t, body, `"biometric":2`)

	status, body = send(t, http.MethodDelete, base+"/devices/default/memory?magic_word=w", "")
	require.Equal(t, http.StatusOK, status, body)
	assert.Contains(t, body, `"biometrics":2`)
	status, body = get(t, base+"/biometrics?magic_word=w&device=default")
	require.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"biometrics":[],"next_cursor":null}`, body)
}

// TestBadUploadsGetTheir422: each bad input is answered 422 in FastAPI's
// shape, naming the field; nothing is stored.
func TestBadUploadsGetTheir422(t *testing.T) {
	inst := startServer(t, "MAGIC_WORD", "w", "FORESIGHT_DATABASE_URL", "sqlite:"+filepath.Join(t.TempDir(), "f.db"))
	base := inst.URL()
	for _, tc := range []struct {
		name, body string
		loc        []any
		typ        string
	}{
		{"missing windowId", `{"timestamp": 1}`, []any{"body", "windowId"}, "missing"},
		{"numeric windowId", `{"windowId": 7}`, []any{"body", "windowId"}, "string_type"},
		{"string timestamp", `{"windowId": "a", "timestamp": "noon"}`, []any{"body", "timestamp"}, "float_type"},
		{"string feature", `{"windowId": "a", "hrMean": "fast"}`, []any{"body", "hrMean"}, "float_type"},
		{"object feature", `{"windowId": "a", "movementIntensity": {}}`, []any{"body", "movementIntensity"}, "float_type"},
		{"array body", `[{"windowId": "a"}]`, []any{"body"}, "model_attributes_type"},
		{"not JSON", `{"windowId": `, []any{"body", float64(0)}, "json_invalid"},
		{"over 64 KiB", `{"windowId": "a", "pad": "` + strings.Repeat("x", 65<<10) + `"}`, []any{"body"}, "too_long"},
		{"unknown alert level", `{"windowId": "a", "riskPrediction": {"alertLevel": "PANIC"}}`, []any{"body", "riskPrediction", "alertLevel"}, "enum"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := upload(t, base, "", tc.body)
			require.Equal(t, http.StatusUnprocessableEntity, status, body)
			detail, ok := body["detail"].([]any)
			require.True(t, ok, body)
			require.NotEmpty(t, detail)
			entry := detail[0].(map[string]any)
			assert.Equal(t, tc.loc, entry["loc"])
			assert.Equal(t, tc.typ, entry["type"])
			assert.NotEmpty(t, entry["msg"])
		})
	}
	status, body := upload(t, base, "bad device!", `{"windowId": "a"}`)
	assert.Equal(t, http.StatusUnprocessableEntity, status, body)
	status, body2 := get(t, base+"/biometrics?magic_word=w")
	require.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"biometrics":[],"next_cursor":null}`, body2)
}
