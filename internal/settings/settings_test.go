package settings_test

import (
	"bytes"
	"flag"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/foresight-vision/foresight/internal/settings"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type conf struct {
	Conns   int
	Wait    time.Duration
	Name    string
	Verbose bool
	Secret  string
}

var table = []settings.Setting[conf]{
	{Flag: "conns", Envs: []string{"T_CONNS"}, Default: "10", Help: "connections",
		Apply: settings.IntAtLeast(1, func(c *conf) *int { return &c.Conns })},
	{Flag: "wait", Envs: []string{"T_WAIT", "T_WAIT_OLD"}, Default: "1s", Help: "wait",
		Apply: settings.Duration(func(c *conf) *time.Duration { return &c.Wait })},
	{Flag: "name", Envs: []string{"T_NAME"}, Help: "name",
		Fallback: func(getenv func(string) string) (string, string) { return getenv("T_FALLBACK"), "T_FALLBACK" },
		Apply:    settings.String(func(c *conf) *string { return &c.Name })},
	{Flag: "verbose", Envs: []string{"T_VERBOSE"}, Default: "false", Help: "talk",
		Apply: settings.Bool(func(c *conf) *bool { return &c.Verbose })},
	{Envs: []string{"T_SECRET"}, Secret: true, Help: "secret",
		Apply: settings.String(func(c *conf) *string { return &c.Secret })},
}

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func load(args []string, getenv func(string) string) (conf, error) {
	var c conf
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	err := settings.Load(&c, table, fs, args, getenv)
	return c, err
}

func TestPrecedence(t *testing.T) {
	c, err := load(nil, env())
	require.NoError(t, err)
	assert.Equal(t, conf{Conns: 10, Wait: time.Second}, c, "defaults")

	c, err = load(nil, env("T_CONNS", " 3 ", "T_WAIT_OLD", "2", "T_FALLBACK", "fb", "T_SECRET", "s"))
	require.NoError(t, err)
	assert.Equal(t, conf{Conns: 3, Wait: 2 * time.Second, Name: "fb", Secret: "s"}, c, "environment, second name, fallback")

	c, err = load([]string{"--conns", "5", "--verbose", "--name", "flag"}, env("T_CONNS", "3", "T_NAME", "env", "T_WAIT", "5ms"))
	require.NoError(t, err)
	assert.Equal(t, conf{Conns: 5, Wait: 5 * time.Millisecond, Name: "flag", Verbose: true}, c, "a flag beats the environment")
}

func TestBadValueNamesFlagAndEnv(t *testing.T) {
	for _, tt := range []struct {
		args []string
		env  []string
		want string
	}{
		{nil, []string{"T_CONNS", "lots"}, `config --conns / T_CONNS (set by T_CONNS): not a whole number: "lots"`},
		{[]string{"--conns", "0"}, nil, `config --conns / T_CONNS (set by --conns): must be at least 1: "0"`},
		{nil, []string{"T_WAIT_OLD", "soon"}, `config --wait / T_WAIT, T_WAIT_OLD (set by T_WAIT_OLD): not a duration: "soon"`},
		{nil, []string{"T_VERBOSE", "maybe"}, `config --verbose / T_VERBOSE (set by T_VERBOSE): not true or false: "maybe"`},
	} {
		_, err := load(tt.args, env(tt.env...))
		assert.EqualError(t, err, tt.want)
	}
}

func TestHelpAndTable(t *testing.T) {
	var out bytes.Buffer
	var c conf
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(&out)
	fs.Usage = func() { settings.PrintTable(&out, table) }
	require.ErrorIs(t, settings.Load(&c, table, fs, []string{"--help"}, env("T_SECRET", "hunter2")), flag.ErrHelp)
	for _, want := range []string{"--conns", "T_CONNS", "(default: 10)", "T_WAIT, T_WAIT_OLD", "(env only)", "T_SECRET"} {
		assert.Contains(t, out.String(), want)
	}
	assert.NotContains(t, out.String(), "hunter2")
}

func TestParsers(t *testing.T) {
	type num struct {
		F float64
		N int64
		S string
	}
	var n num
	f := settings.Float(0, func(c *num) *float64 { return &c.F })
	require.NoError(t, f(&n, "2.5"))
	assert.Equal(t, 2.5, n.F)
	assert.Error(t, f(&n, "NaN"))
	assert.Error(t, f(&n, "-1"))
	p := settings.PositiveInt64(func(c *num) *int64 { return &c.N })
	assert.Error(t, p(&n, "0"))
	require.NoError(t, p(&n, "7"))
	assert.Equal(t, int64(7), n.N)
	o := settings.OneOf(func(c *num) *string { return &c.S }, "a", "b")
	require.NoError(t, o(&n, "B"))
	assert.Equal(t, "b", n.S)
	assert.Error(t, o(&n, "c"))
	var d struct{ D time.Duration }
	nd := settings.NonNegativeDuration(func(c *struct{ D time.Duration }) *time.Duration { return &c.D })
	require.NoError(t, nd(&d, "0"))
	require.NoError(t, nd(&d, "1.5s"))
	assert.Equal(t, 1500*time.Millisecond, d.D)
	assert.Error(t, nd(&d, "-1s"))
}
