package app_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/foresight-vision/foresight/app"
)

func TestAskModelKeyFallsBackOnlyToTheSameHost(t *testing.T) {
	load := func(kv ...string) app.Config {
		cfg, err := app.LoadConfig(nil, envOf(append([]string{"FORESIGHT_OPENAI_BASE_URL", "http://10.0.0.1:8000/v1",
			"FORESIGHT_OPENAI_API_KEY", "sk-caption", "FORESIGHT_OPENAI_MODEL", "vlm"}, kv...)...), nil)
		require.NoError(t, err)
		return cfg
	}
	same := load().AskChatConfig()
	assert.Equal(t, "http://10.0.0.1:8000/v1", same.BaseURL)
	assert.Equal(t, "sk-caption", same.APIKey, "same host: the key is shared")
	assert.Equal(t, "vlm", same.Model)

	other := load("FORESIGHT_ASK_BASE_URL", "http://10.0.0.2:8000/v1", "FORESIGHT_ASK_MODEL", "llm").AskChatConfig()
	assert.Empty(t, other.APIKey, "another host never gets the caption backend's key")
	assert.Equal(t, "llm", other.Model)

	own := load("FORESIGHT_ASK_BASE_URL", "http://10.0.0.2:8000/v1", "FORESIGHT_ASK_API_KEY", "sk-ask").AskChatConfig()
	assert.Equal(t, "sk-ask", own.APIKey)

	emb := load("FORESIGHT_ASK_BASE_URL", "http://10.0.0.2:8000/v1", "FORESIGHT_ASK_API_KEY", "sk-ask",
		"FORESIGHT_EMBEDDINGS_MODEL", "emb").EmbeddingsConfig()
	assert.Equal(t, "http://10.0.0.2:8000/v1", emb.BaseURL)
	assert.Equal(t, "sk-ask", emb.APIKey, "the ask model's host: its key")
	emb = load("FORESIGHT_EMBEDDINGS_BASE_URL", "http://10.0.0.3/v1", "FORESIGHT_EMBEDDINGS_MODEL", "emb").EmbeddingsConfig()
	assert.Empty(t, emb.APIKey, "a third host gets no key")
	assert.Empty(t, load().EmbeddingsConfig().Model, "embeddings are off unless a model is named")
}
