package app

// NudgeLLMAPIKeyForTest is the key the nudge model would be sent.
func NudgeLLMAPIKeyForTest(c Config) string { return c.nudgeLLMConfig().APIKey }
