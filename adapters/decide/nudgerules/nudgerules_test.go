package nudgerules_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/adapters/decide/nudgerules"
	"github.com/foresight-vision/foresight/ports"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func write(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
	return path
}

func window(texts ...string) ports.NudgeInput {
	in := ports.NudgeInput{Device: "dev1", Now: time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)}
	for i, s := range texts {
		in.Captions = append(in.Captions, ports.CaptionRef{ID: string(rune('a' + i)), Time: in.Now.Add(-time.Duration(len(texts)-i) * time.Second), Text: s, New: true})
	}
	return in
}

const yamlRules = `
rules:
  - name: donut
    match: '\bdonuts?\b'
    message: Grab an apple instead.
  - name: sitting
    match: sitting
    message: Stand up and stretch.
`

func TestYAMLFirstMatchingRuleFires(t *testing.T) {
	d, err := nudgerules.Load(write(t, "rules.yaml", yamlRules))
	require.NoError(t, err)
	ctx := context.Background()

	dec, err := d.Decide(ctx, window("The wearer is SITTING at a desk.", "They pick up a Donut."))
	require.NoError(t, err)
	assert.True(t, dec.Deliver)
	assert.Equal(t, "Grab an apple instead.", dec.Message, "rule order wins over caption order")
	assert.Equal(t, "rules", dec.Engine)
	assert.Equal(t, "donut", dec.Model)
	assert.Contains(t, dec.Reasoning, `rule "donut" matched caption b`)

	dec, err = d.Decide(ctx, window("sitting on a bench"))
	require.NoError(t, err)
	assert.Equal(t, "Stand up and stretch.", dec.Message)

	dec, err = d.Decide(ctx, window("walking in the park", "donutshop sign")) // \b keeps "donutshop" out
	require.NoError(t, err)
	assert.False(t, dec.Deliver)
	assert.Empty(t, dec.Message)
	assert.Equal(t, "no rule matched 2 captions", dec.Reasoning)
}

func TestJSONByExtensionAndByContent(t *testing.T) {
	const js = `{"rules":[{"name":"soda","match":"soda|cola","message":"Water is the better pick."}]}`
	for _, name := range []string{"rules.json", "rules"} {
		d, err := nudgerules.Load(write(t, name, js))
		require.NoError(t, err, name)
		dec, err := d.Decide(context.Background(), window("A can of COLA on the table."))
		require.NoError(t, err)
		assert.True(t, dec.Deliver, name)
		assert.Equal(t, "Water is the better pick.", dec.Message)
	}
	d, err := nudgerules.Load(write(t, "rules.txt", yamlRules))
	require.NoError(t, err, "no known extension and not JSON: YAML")
	assert.Len(t, d.Rules(), 2)
}

func TestBrokenFilesNameTheFileAndTheRule(t *testing.T) {
	cases := []struct {
		name, file, content string
		want                []string
	}{
		{"bad regexp", "r.yaml", "rules:\n  - name: ok\n    match: a\n    message: m\n  - name: junk food\n    match: '(fries'\n    message: m\n",
			[]string{`rule 2 "junk food": match: error parsing regexp`}},
		{"no message", "r.yaml", "rules:\n  - name: donut\n    match: donut\n", []string{`rule 1 "donut": no message`}},
		{"no match", "r.json", `{"rules":[{"name":"x","message":"m"}]}`, []string{`rule 1 "x": no match expression`}},
		{"no name", "r.yaml", "rules:\n  - match: a\n    message: m\n", []string{"rule 1: no name"}},
		{"twice", "r.yaml", "rules:\n  - {name: a, match: a, message: m}\n  - {name: a, match: b, message: m}\n", []string{`rule 2 "a": name used twice`}},
		{"unknown field yaml", "r.yaml", "rules:\n  - name: a\n    regex: a\n    message: m\n", []string{"decode YAML", "regex"}},
		{"unknown field json", "r.json", `{"rules":[{"name":"a","match":"a","message":"m","mesage":"x"}]}`, []string{"decode JSON", "mesage"}},
		{"bad json", "r.json", `{"rules":[`, []string{"decode JSON"}},
		{"two json values", "r.json", `{"rules":[{"name":"a","match":"a","message":"m"}]} {}`, []string{"more than one value"}},
		{"bad yaml", "r.yaml", "rules: [\n", []string{"decode YAML"}},
		{"empty", "r.yaml", "", []string{"the file is empty"}},
		{"no rules", "r.yaml", "rules: []\n", []string{"no rules"}},
		{"a bare list", "r.yaml", "- name: a\n  match: a\n  message: m\n", []string{"decode YAML"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := write(t, tc.file, tc.content)
			_, err := nudgerules.Load(path)
			require.Error(t, err)
			assert.Contains(t, err.Error(), path, "the error names the file")
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestMissingAndHugeFiles(t *testing.T) {
	_, err := nudgerules.Load(filepath.Join(t.TempDir(), "absent.yaml"))
	require.ErrorContains(t, err, "absent.yaml")

	huge := "rules:\n" + strings.Repeat("# padding padding padding\n", 50_000)
	_, err = nudgerules.Load(write(t, "huge.yaml", huge))
	require.ErrorContains(t, err, "larger than")
}

func TestDecideHonoursContext(t *testing.T) {
	d, err := nudgerules.Load(write(t, "r.yaml", yamlRules))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = d.Decide(ctx, window("donut"))
	require.ErrorIs(t, err, context.Canceled)
}

func TestReasoningQuotesALongCaptionShort(t *testing.T) {
	d, err := nudgerules.New([]nudgerules.Rule{{Name: "x", Match: "x", Message: "m"}})
	require.NoError(t, err)
	dec, err := d.Decide(context.Background(), window("x"+strings.Repeat("y", 5000)))
	require.NoError(t, err)
	assert.Less(t, len(dec.Reasoning), 400)
}

func TestTheDocumentedExampleLoads(t *testing.T) {
	d, err := nudgerules.Load(filepath.Join("..", "..", "..", "docs", "examples", "nudge-rules.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, d.Rules())

	cases := map[string]string{
		"The wearer holds a glazed donut over a paper bag.":               "sugary snack",
		"A tray with a burger and fries sits on the table.":               "fast food",
		"The wearer is lighting a cigarette outside.":                     "smoking",
		"The wearer looks at their phone while crossing a busy street.":   "risky crossing",
		"The wearer is sitting on the couch watching television.":         "long sitting",
		"The wearer walks through a park with trees and a lake.":          "",
		"The wearer chops carrots and peppers on a wooden cutting board.": "",
	}
	for caption, rule := range cases {
		dec, err := d.Decide(context.Background(), window(caption))
		require.NoError(t, err)
		assert.Equal(t, rule != "", dec.Deliver, caption)
		assert.Equal(t, rule, dec.Model, caption)
	}
}

// TestRulesMatchOnlyNewCaptions: a judged caption that matched before is
// context; it does not fire again beside a new caption that matches nothing.
func TestRulesMatchOnlyNewCaptions(t *testing.T) {
	d, err := nudgerules.Load(write(t, "rules.yaml", yamlRules))
	require.NoError(t, err)
	in := window("The wearer eats a donut.", "The wearer reads a book.")
	in.Captions[0].New = false
	dec, err := d.Decide(t.Context(), in)
	require.NoError(t, err)
	assert.False(t, dec.Deliver, dec.Reasoning)
	in.Captions[0].New = true
	dec, err = d.Decide(t.Context(), in)
	require.NoError(t, err)
	assert.True(t, dec.Deliver)
}
