package app_test

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/adapters/inference/openai"
	"github.com/foresight-vision/foresight/app"
	"github.com/foresight-vision/foresight/domain"
)

func envOf(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestConfigDefaults(t *testing.T) {
	c, err := app.LoadConfig(nil, envOf(), nil)
	require.NoError(t, err)
	assert.Equal(t, ":8080", c.Addr)
	assert.Equal(t, 15*time.Second, c.ShutdownTimeout)
	assert.Equal(t, time.Second, c.ChunkInterval)
	assert.Equal(t, 120, c.MaxBufferFrames)
	assert.Equal(t, int64(64<<20), c.MaxBufferBytes)
	assert.Equal(t, domain.DefaultPrompt, c.Prompt)
	assert.Equal(t, 30*time.Second, c.InferenceTimeout)
	assert.Equal(t, int64(16<<20), c.MaxFrameBytes)
	assert.Equal(t, 60*time.Second, c.IdleTimeout)
	assert.Equal(t, 10000, c.MaxStreams)
	assert.Equal(t, "https://poke.com/api/v1/inbound-sms/webhook", c.PokeURL)
	assert.Equal(t, 10*time.Second, c.PokeTimeout)
	assert.Equal(t, []string{"/", "/health", "/metrics"}, c.PublicPaths)
	assert.Equal(t, "gemma3", c.InferenceBackend)
	assert.True(t, c.ModalSendSessionID)
	assert.False(t, c.TrustClientCredentials)
	assert.False(t, c.Pprof)
	// The scene gate is off; its tuning matches the domain's defaults.
	assert.False(t, c.SkipUnchanged)
	assert.False(t, c.RejectUnusable)
	assert.Equal(t, domain.DefaultChangeThreshold, c.ChangeThreshold)
	assert.Equal(t, domain.DefaultMaxSkip, c.MaxSkip)
	assert.InDelta(t, domain.DefaultDarkLuma, c.DarkLuma, 0)
	assert.InDelta(t, domain.DefaultBlurSharpness, c.BlurSharpness, 0)
	assert.Zero(t, c.SceneSampleFrames)
	assert.Equal(t, "https://api.openai.com/v1", c.OpenAIBaseURL)
	assert.Empty(t, c.OpenAIAPIKey)
	assert.Empty(t, c.OpenAIModel)
	assert.Equal(t, 64, c.OpenAIMaxTokens)
	assert.Equal(t, 0.2, c.OpenAITemperature)
	assert.Equal(t, 6, c.CaptionHistory)
	assert.Equal(t, openai.DefaultConfig().Temperature, c.OpenAITemperature, "the adapter's default is the setting's")
	assert.Equal(t, openai.DefaultConfig().CaptionHistory, c.CaptionHistory)
	// The library's defaults constructor is the server's defaults.
	d := domain.DefaultStreamConfig()
	assert.Equal(t, d.ChunkInterval, c.ChunkInterval)
	assert.Equal(t, d.MaxFramesPerChunk, c.MaxFramesPerChunk)
	assert.Equal(t, d.MaxBufferFrames, c.MaxBufferFrames)
	assert.Equal(t, d.MaxBufferBytes, c.MaxBufferBytes)
	assert.Equal(t, d.InferenceTimeout, c.InferenceTimeout)
	assert.Equal(t, d.Scene.ChangeThreshold, c.ChangeThreshold)
	assert.Equal(t, d.Scene.MaxSkip, c.MaxSkip)
	assert.InDelta(t, d.Scene.DarkLuma, c.DarkLuma, 0)
	assert.InDelta(t, d.Scene.BlurSharpness, c.BlurSharpness, 0)
	assert.Equal(t, domain.DefaultMaxFramesPerChunk, c.MaxFramesPerChunk, "unset: the gemma3 backend's default")
}

func TestConfigSources(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		env   func(string) string
		check func(t *testing.T, c app.Config)
	}{
		{"PORT is honoured", nil, envOf("PORT", "9999"), func(t *testing.T, c app.Config) { assert.Equal(t, ":9999", c.Addr) }},
		{"FORESIGHT_ADDR beats PORT", nil, envOf("PORT", "9999", "FORESIGHT_ADDR", "127.0.0.1:1"), func(t *testing.T, c app.Config) {
			assert.Equal(t, "127.0.0.1:1", c.Addr)
		}},
		{"flag beats env", []string{"--addr", ":7"}, envOf("FORESIGHT_ADDR", ":8"), func(t *testing.T, c app.Config) { assert.Equal(t, ":7", c.Addr) }},
		{"nudge cooldown 0 means none", nil, envOf("FORESIGHT_NUDGE_COOLDOWN", "0"), func(t *testing.T, c app.Config) {
			assert.Equal(t, time.Duration(0), c.NudgeCooldown)
		}},
		{"nudge cooldown 0s means none too", nil, envOf("FORESIGHT_NUDGE_COOLDOWN", "0s"), func(t *testing.T, c app.Config) {
			assert.Equal(t, time.Duration(0), c.NudgeCooldown)
		}},
		{"chunk seconds zero means no minimum", nil, envOf("VISION_CHUNK_SECONDS", "0"), func(t *testing.T, c app.Config) {
			assert.Equal(t, time.Duration(0), c.ChunkInterval)
		}},
		{"negative chunk seconds clamp to zero", nil, envOf("VISION_CHUNK_SECONDS", "-3"), func(t *testing.T, c app.Config) {
			assert.Equal(t, time.Duration(0), c.ChunkInterval)
		}},
		{"frames per chunk unset follows the backend given by flag", []string{"--inference-backend", "streamingvlm"}, envOf(), func(t *testing.T, c app.Config) {
			assert.Equal(t, 0, c.MaxFramesPerChunk, "the legacy app sees every frame")
		}},
		{"frames per chunk unset follows the backend given by env", nil, envOf("FORESIGHT_INFERENCE_BACKEND", "openai", "FORESIGHT_OPENAI_MODEL", "m"), func(t *testing.T, c app.Config) {
			assert.Equal(t, domain.DefaultMaxFramesPerChunk, c.MaxFramesPerChunk)
		}},
		{"frames per chunk given wins over the backend's default", nil, envOf("FORESIGHT_INFERENCE_BACKEND", "streamingvlm", "FORESIGHT_MAX_FRAMES_PER_CHUNK", "4"), func(t *testing.T, c app.Config) {
			assert.Equal(t, 4, c.MaxFramesPerChunk)
		}},
		{"fractional chunk seconds", nil, envOf("VISION_CHUNK_SECONDS", "0.25"), func(t *testing.T, c app.Config) {
			assert.Equal(t, 250*time.Millisecond, c.ChunkInterval)
		}},
		{"buffer frames min 1", nil, envOf("VISION_MAX_BUFFER_FRAMES", "0"), func(t *testing.T, c app.Config) { assert.Equal(t, 1, c.MaxBufferFrames) }},
		{"plain seconds as durations", nil, envOf("FORESIGHT_INFERENCE_TIMEOUT", "5"), func(t *testing.T, c app.Config) {
			assert.Equal(t, 5*time.Second, c.InferenceTimeout)
		}},
		{"first env name wins", nil, envOf("MODAL_TOKEN_ID", "a", "FORESIGHT_MODAL_TOKEN_ID", "b"), func(t *testing.T, c app.Config) {
			assert.Equal(t, "a", c.ModalTokenID)
		}},
		{"fallback env name", nil, envOf("FORESIGHT_MODAL_TOKEN_ID", "b", "FORESIGHT_MAGIC_WORD", "w"), func(t *testing.T, c app.Config) {
			assert.Equal(t, "b", c.ModalTokenID)
			assert.Equal(t, "w", c.MagicWord)
		}},
		{"values are trimmed", nil, envOf("FORESIGHT_POKE_API_KEY", " k \n"), func(t *testing.T, c app.Config) { assert.Equal(t, "k", c.PokeAPIKey) }},
		{"bare boolean flag", []string{"--pprof", "--metrics=false"}, envOf(), func(t *testing.T, c app.Config) {
			assert.True(t, c.Pprof)
			assert.False(t, c.Metrics)
		}},
		{"scene gate settings", nil, envOf("FORESIGHT_SKIP_UNCHANGED", "true", "FORESIGHT_CHANGE_THRESHOLD", "64",
			"FORESIGHT_MAX_SKIP", "3", "FORESIGHT_REJECT_UNUSABLE", "1", "FORESIGHT_DARK_LUMA", "0",
			"FORESIGHT_BLUR_SHARPNESS", "12.5", "FORESIGHT_SCENE_SAMPLE_FRAMES", "3"), func(t *testing.T, c app.Config) {
			assert.True(t, c.SkipUnchanged)
			assert.Equal(t, 64, c.ChangeThreshold)
			assert.Equal(t, 3*time.Second, c.MaxSkip)
			assert.True(t, c.RejectUnusable)
			assert.Zero(t, c.DarkLuma)
			assert.InDelta(t, 12.5, c.BlurSharpness, 0)
			assert.Equal(t, 3, c.SceneSampleFrames)
		}},
		{"openai settings", []string{"--inference-backend", "openai", "--openai-model", "gemma3:4b", "--max-frames-per-chunk", "0"},
			envOf("FORESIGHT_OPENAI_BASE_URL", "http://127.0.0.1:11434/v1", "OPENAI_BASE_URL", "http://other/v1", "OPENAI_API_KEY", "k",
				"FORESIGHT_OPENAI_TEMPERATURE", "0", "FORESIGHT_CAPTION_HISTORY", "0"), func(t *testing.T, c app.Config) {
				assert.Equal(t, "openai", c.InferenceBackend)
				assert.Equal(t, "gemma3:4b", c.OpenAIModel)
				assert.Equal(t, "http://127.0.0.1:11434/v1", c.OpenAIBaseURL, "FORESIGHT_ wins over OPENAI_")
				assert.Empty(t, c.OpenAIAPIKey, "the shell's OPENAI_API_KEY is not sent to a server FORESIGHT_OPENAI_BASE_URL names")
				assert.Equal(t, 0.0, c.OpenAITemperature)
				assert.Equal(t, 0, c.CaptionHistory)
				assert.Equal(t, 0, c.MaxFramesPerChunk)
			}},
		{"backend is case-insensitive", nil, envOf("FORESIGHT_INFERENCE_BACKEND", "StreamingVLM"), func(t *testing.T, c app.Config) {
			assert.Equal(t, "streamingvlm", c.InferenceBackend)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := app.LoadConfig(tt.args, tt.env, nil)
			require.NoError(t, err)
			tt.check(t, c)
		})
	}
}

func TestConfigRejectsBadValues(t *testing.T) {
	for _, kv := range [][2]string{
		{"FORESIGHT_SHUTDOWN_TIMEOUT", "soon"},
		{"FORESIGHT_WS_IDLE_TIMEOUT", "-1s"},
		{"VISION_CHUNK_SECONDS", "NaN"},
		{"VISION_MAX_BUFFER_BYTES", "0"},
		{"FORESIGHT_MAX_STREAMS", "0"},
		{"FORESIGHT_INFERENCE_BACKEND", "gpt"},
		{"FORESIGHT_TRUST_CLIENT_CREDENTIALS", "maybe"},
		{"FORESIGHT_LOG_LEVEL", "loud"},
		{"FORESIGHT_SKIP_UNCHANGED", "sometimes"},
		{"FORESIGHT_CHANGE_THRESHOLD", "0"},
		{"FORESIGHT_CHANGE_THRESHOLD", "65"},
		{"FORESIGHT_MAX_SKIP", "0"},
		{"FORESIGHT_DARK_LUMA", "-1"},
		{"FORESIGHT_BLUR_SHARPNESS", "NaN"},
		{"FORESIGHT_SCENE_SAMPLE_FRAMES", "-2"},
		{"FORESIGHT_MAX_FRAMES_PER_CHUNK", "-2"},
		{"FORESIGHT_OPENAI_MAX_TOKENS", "0"},
		{"FORESIGHT_OPENAI_TEMPERATURE", "-1"},
		{"FORESIGHT_CAPTION_HISTORY", "lots"},
	} {
		t.Run(kv[0], func(t *testing.T) {
			_, err := app.LoadConfig(nil, envOf(kv[0], kv[1]), nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), kv[0], "the error names the setting")
		})
	}
	_, err := app.LoadConfig([]string{"extra"}, envOf(), nil)
	assert.Error(t, err)
	_, err = app.LoadConfig(nil, envOf("FORESIGHT_MAX_TOTAL_BUFFER_BYTES", "1000", "FORESIGHT_MAX_FRAME_BYTES", "2000"), nil)
	assert.ErrorContains(t, err, "FORESIGHT_MAX_TOTAL_BUFFER_BYTES")
}

// Issue 10 defect 3: settings under which a lone, well-behaved stream could
// not work are refused, naming the values and why.
func TestFrameMemorySettingsThatCannotWorkAreRefused(t *testing.T) {
	// The reported setup: a 4 MiB budget with the default 64 MiB per-stream buffer.
	_, err := app.LoadConfig(nil, envOf("FORESIGHT_MAX_TOTAL_BUFFER_BYTES", "4194304", "FORESIGHT_MAX_FRAME_BYTES", "524288"), nil)
	require.Error(t, err)
	assert.ErrorContains(t, err, "VISION_MAX_BUFFER_BYTES (67108864)")
	assert.ErrorContains(t, err, "FORESIGHT_MAX_TOTAL_BUFFER_BYTES (4194304)")

	// A message as large as the whole budget could never be read: reading
	// it takes about half as much again.
	_, err = app.LoadConfig(nil, envOf("FORESIGHT_MAX_TOTAL_BUFFER_BYTES", "4194304", "FORESIGHT_MAX_FRAME_BYTES", "4194304",
		"VISION_MAX_BUFFER_BYTES", "1048576"), nil)
	require.Error(t, err)
	assert.ErrorContains(t, err, "FORESIGHT_MAX_FRAME_BYTES (4194304)")
	assert.ErrorContains(t, err, "must be at least 6291456")

	c, err := app.LoadConfig(nil, envOf("FORESIGHT_MAX_TOTAL_BUFFER_BYTES", "4194304", "FORESIGHT_MAX_FRAME_BYTES", "524288",
		"VISION_MAX_BUFFER_BYTES", "1048576"), nil)
	require.NoError(t, err)
	assert.Equal(t, int64(4194304), c.MaxTotalBufferBytes)
}

func TestHelpListsEverySetting(t *testing.T) {
	var out bytes.Buffer
	_, err := app.LoadConfig([]string{"--help"}, envOf(), &out)
	require.ErrorIs(t, err, flag.ErrHelp)
	for _, s := range app.Settings {
		for _, e := range s.Envs {
			assert.Contains(t, out.String(), e)
		}
		if s.Flag != "" {
			assert.Contains(t, out.String(), "--"+s.Flag)
		}
		if s.Default != "" {
			assert.Contains(t, out.String(), s.Default)
		}
	}
	assert.Contains(t, out.String(), "PORT")
}

// Each row of the server table says the setting's real default: the literal
// (in backticks) when it has one, a description (unset, per backend, another
// flag it falls back to) when it has none.
func TestConfigurationDocStatesEveryDefault(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	require.NoError(t, err)
	server, _, found := strings.Cut(string(doc), "## Gateway")
	require.True(t, found, "the server table comes before the gateway's")
	defaults := map[string]string{}
	for _, line := range strings.Split(server, "\n") {
		cells := strings.Split(line, " | ")
		if len(cells) < 4 || !strings.HasPrefix(cells[0], "| `--") {
			continue
		}
		flag := strings.Trim(strings.TrimPrefix(cells[0], "| "), "`")
		defaults[flag] = cells[2]
	}
	for _, s := range app.Settings {
		if s.Flag == "" {
			continue
		}
		cell, ok := defaults["--"+s.Flag]
		if !assert.True(t, ok, "docs/configuration.md has no row for --%s", s.Flag) {
			continue
		}
		if s.Default == "" {
			// A backticked flag names a fallback, not a literal default.
			literal := strings.HasPrefix(cell, "`") && !strings.HasPrefix(cell, "`--")
			assert.False(t, literal, "--%s has no default, but the docs give %s", s.Flag, cell)
			continue
		}
		assert.Equal(t, "`"+s.Default+"`", cell, "default of --%s", s.Flag)
	}
}

func TestConfigurationDocCoversEverySetting(t *testing.T) {
	doc, err := os.ReadFile("../docs/configuration.md")
	require.NoError(t, err)
	for _, s := range app.Settings {
		for _, e := range s.Envs {
			assert.True(t, strings.Contains(string(doc), "`"+e+"`"), "docs/configuration.md must document %s", e)
		}
		if s.Flag != "" {
			assert.True(t, strings.Contains(string(doc), "--"+s.Flag), "docs/configuration.md must document --%s", s.Flag)
		}
	}
	for _, secret := range []string{"FORESIGHT_POKE_API_KEY", "MAGIC_WORD", "MODAL_TOKEN_SECRET", "FORESIGHT_OPENAI_API_KEY"} {
		assert.True(t, strings.Contains(string(doc), secret))
	}
}

// TestShellOpenAIKeyStaysWithOpenAI: OPENAI_API_KEY, a fallback, is sent to
// OpenAI or to the OPENAI_BASE_URL exported beside it, never to a third
// party named by FORESIGHT_OPENAI_BASE_URL.
func TestShellOpenAIKeyStaysWithOpenAI(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"default base URL is OpenAI", []string{"OPENAI_API_KEY", "sk-shell"}, "sk-shell"},
		{"paired OPENAI_BASE_URL", []string{"OPENAI_API_KEY", "sk-shell", "OPENAI_BASE_URL", "http://127.0.0.1:8000/v1"}, "sk-shell"},
		{"third party named by FORESIGHT_OPENAI_BASE_URL", []string{"OPENAI_API_KEY", "sk-shell", "FORESIGHT_OPENAI_BASE_URL", "https://api.example.net/v1"}, ""},
		{"own key for the third party", []string{"OPENAI_API_KEY", "sk-shell", "FORESIGHT_OPENAI_API_KEY", "sk-own", "FORESIGHT_OPENAI_BASE_URL", "https://api.example.net/v1"}, "sk-own"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := app.LoadConfig(nil, envOf(tc.env...), nil)
			require.NoError(t, err)
			assert.Equal(t, tc.want, c.OpenAIAPIKey)
		})
	}
}

func TestDatabasePasswordIsRefusedOnTheCommandLine(t *testing.T) {
	_, err := app.LoadConfig([]string{"--database-url", "postgres://u:hunter2@127.0.0.1/db"}, envOf(), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "FORESIGHT_DATABASE_URL")
	assert.NotContains(t, err.Error(), "hunter2")
	c, err := app.LoadConfig(nil, envOf("FORESIGHT_DATABASE_URL", "postgres://u:hunter2@127.0.0.1/db"), nil)
	require.NoError(t, err, "the environment may carry it")
	assert.Equal(t, "postgres://u:hunter2@127.0.0.1/db", c.DatabaseURL)
	_, err = app.LoadConfig([]string{"--database-url", "postgres://u@127.0.0.1/db"}, envOf(), nil)
	require.NoError(t, err, "no password, no secret")
}

func TestNudgePrefixNoneSendsTheMessageAlone(t *testing.T) {
	c, err := app.LoadConfig(nil, envOf("FORESIGHT_NUDGE_PREFIX", "none"), nil)
	require.NoError(t, err)
	assert.Empty(t, c.NudgePrefix)
}

// TestNudgeModelKeyStaysWithItsHost: the caption backend's OpenAI key is the
// nudge model's fallback only when both are served by the same host.
func TestNudgeModelKeyStaysWithItsHost(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"same server", []string{"FORESIGHT_OPENAI_API_KEY", "sk-captions"}, "sk-captions"},
		{"another host", []string{"FORESIGHT_OPENAI_API_KEY", "sk-captions", "FORESIGHT_NUDGE_LLM_BASE_URL", "https://nudges.example.net/v1"}, ""},
		{"its own key", []string{"FORESIGHT_OPENAI_API_KEY", "sk-captions", "FORESIGHT_NUDGE_LLM_BASE_URL", "https://nudges.example.net/v1", "FORESIGHT_NUDGE_LLM_API_KEY", "sk-nudges"}, "sk-nudges"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := app.LoadConfig(nil, envOf(tc.env...), nil)
			require.NoError(t, err)
			assert.Equal(t, tc.want, app.NudgeLLMAPIKeyForTest(c))
		})
	}
}
