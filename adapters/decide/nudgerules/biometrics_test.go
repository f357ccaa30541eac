package nudgerules_test

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/decide/nudgerules"
	"github.com/foresight-vision/foresight/ports"
)

const bodyRules = `
rules:
  - name: racing heart
    biometric: hrMean > 120
    windows: 2
    message: Your heart is racing. Sit down and breathe slowly for a minute.
  - name: high alert
    alert: high alert
    message: Take a break now.
  - name: stressed snack
    match: '\bdonuts?\b'
    biometric: "hrMean >= 100"
    message: Stress snacking? Try a glass of water first.
`

func bodyWindow(id string, hr float64, alert string, isNew bool) ports.BiometricRef {
	return ports.BiometricRef{ID: id, Features: map[string]float64{"hrMean": hr}, AlertLevel: alert, New: isNew}
}

// TestBiometricRulesNeedTheirWindowsAndNewEvidence: a heart rate rule
// fires once enough windows meet it and one of them is new; judged windows
// complete it but never fire it alone; an alert rule takes its level and
// above; a rule with both kinds needs both.
func TestBiometricRulesNeedTheirWindowsAndNewEvidence(t *testing.T) {
	d, err := nudgerules.Load(write(t, "r.yaml", bodyRules))
	require.NoError(t, err)

	in := window()
	in.Biometrics = []ports.BiometricRef{bodyWindow("w1", 130, "", true)}
	dec, err := d.Decide(t.Context(), in)
	require.NoError(t, err)
	assert.False(t, dec.Deliver, "one window is not two")
	assert.Equal(t, "no rule matched 0 captions and 1 biometric windows", dec.Reasoning)

	in.Biometrics = []ports.BiometricRef{bodyWindow("w1", 130, "", false), bodyWindow("w2", 125, "LOW ALERT", true)}
	dec, err = d.Decide(t.Context(), in)
	require.NoError(t, err)
	assert.True(t, dec.Deliver)
	assert.Equal(t, "racing heart", dec.Model)
	assert.Contains(t, dec.Reasoning, "2 biometric windows met hrMean > 120 (w1, w2)")

	in.Biometrics = []ports.BiometricRef{bodyWindow("w1", 130, "", false), bodyWindow("w2", 125, "", false), bodyWindow("w3", 70, "", true)}
	dec, err = d.Decide(t.Context(), in)
	require.NoError(t, err)
	assert.False(t, dec.Deliver, "judged windows alone fire nothing")

	in.Biometrics = []ports.BiometricRef{bodyWindow("w4", 70, "CRITICAL ALERT", true)}
	dec, err = d.Decide(t.Context(), in)
	require.NoError(t, err)
	assert.Equal(t, "high alert", dec.Model, "critical is at least high")
	in.Biometrics = []ports.BiometricRef{bodyWindow("w5", 70, "MODERATE ALERT", true)}
	dec, err = d.Decide(t.Context(), in)
	require.NoError(t, err)
	assert.False(t, dec.Deliver)

	in = window("the wearer eats a donut")
	dec, err = d.Decide(t.Context(), in)
	require.NoError(t, err)
	assert.False(t, dec.Deliver, "the snack rule needs the heart too")
	in.Biometrics = []ports.BiometricRef{{ID: "w6", Features: map[string]float64{}, New: true}}
	dec, err = d.Decide(t.Context(), in)
	require.NoError(t, err)
	assert.False(t, dec.Deliver, "a window without the field does not meet it")
	in.Biometrics = []ports.BiometricRef{bodyWindow("w7", 104, "", false)}
	dec, err = d.Decide(t.Context(), in)
	require.NoError(t, err)
	assert.Equal(t, "stressed snack", dec.Model, "the new caption is the new evidence")
}

func TestBadBiometricRulesAreRefused(t *testing.T) {
	for name, tc := range map[string]struct{ rules, want string }{
		"bad condition": {`{"rules":[{"name":"x","biometric":"hrMean is high","message":"m"}]}`, `rule 1 "x": biometric`},
		"bad number":    {`{"rules":[{"name":"x","biometric":"hrMean > fast","message":"m"}]}`, `is not a number`},
		"bad alert":     {`{"rules":[{"name":"x","alert":"PANIC","message":"m"}]}`, `alert "PANIC"`},
		"lone windows":  {`{"rules":[{"name":"x","match":"a","windows":2,"message":"m"}]}`, `windows counts biometric windows`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := nudgerules.Load(write(t, "r.json", tc.rules))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// TestBiometricExampleFileLoads keeps docs/examples/nudge-rules-biometrics.yaml valid.
func TestBiometricExampleFileLoads(t *testing.T) {
	d, err := nudgerules.Load(filepath.Join("..", "..", "..", "docs", "examples", "nudge-rules-biometrics.yaml"))
	require.NoError(t, err)
	assert.Len(t, d.Rules(), 4)
}
