package nudgellm_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/foresight-vision/foresight/adapters/decide/nudgellm"
	"github.com/foresight-vision/foresight/ports"
)

// TestUserMessageCarriesTheBodyCompactly: the window's biometric windows
// follow the captions, one short line each with the features present and
// the alert level; a window without signal says so.
func TestUserMessageCarriesTheBodyCompactly(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	in := ports.NudgeInput{Device: "kit", Now: now,
		Captions: []ports.CaptionRef{{ID: "c1", Time: now.Add(-20 * time.Second), Text: "a desk", New: true}},
		Biometrics: []ports.BiometricRef{
			{ID: "w1", Time: now.Add(-10 * time.Second), Features: map[string]float64{"hrMean": 131.4, "hrMin": 120, "hrMax": 140, "movementIntensity": 0.05, "sdnn": 42, "accelEnergy": 9}, AlertLevel: "HIGH ALERT"},
			{ID: "w2", Time: now, Features: map[string]float64{}},
		}}
	msg := nudgellm.UserMessage(in)
	assert.Contains(t, msg, "Their body, from the wrist sensor, oldest first (2 windows; hr in beats per minute):\n")
	assert.Contains(t, msg, "[11:59:50] hr 131 min 120 max 140 sdnn 42 ms movement 0.05, alert HIGH ALERT\n")
	assert.Contains(t, msg, "[12:00:00] no heart or movement signal\n")
	assert.Less(t, len(msg), 600, "compact, not a JSON dump")
	assert.NotContains(t, nudgellm.UserMessage(ports.NudgeInput{Now: now, Captions: in.Captions}), "wrist")
}
