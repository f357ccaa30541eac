package app

import "github.com/foresight-vision/foresight/adapters/answer/openaichat"

// AskChatConfig and EmbeddingsConfig expose the fallbacks to tests.
func (c Config) AskChatConfig() openaichat.Config    { return c.askChatConfig() }
func (c Config) EmbeddingsConfig() openaichat.Config { return c.embeddingsConfig() }
