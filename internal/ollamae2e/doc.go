// Package ollamae2e holds the end-to-end tests of Foresight against a real
// model server: `ollama serve` with a tiny random-weight Gemma 3 vision
// model (internal/ollamatest), on loopback. Its tests assert on the wire,
// the errors and the records, never on what the random model says.
package ollamae2e
