// Package clitest holds checks shared by the tests of the foresight
// subcommands.
package clitest

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
)

// RunFunc is a subcommand's entry point.
type RunFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// HelpHidesMagicWord checks that --help names the magic-word flag but never
// prints the value it would default to from MAGIC_WORD.
func HelpHidesMagicWord(t *testing.T, run RunFunc) {
	t.Helper()
	t.Setenv("MAGIC_WORD", "hunter2")
	var out bytes.Buffer
	_ = run(context.Background(), []string{"--help"}, &out, &out)
	assert.Contains(t, out.String(), "magic-word")
	assert.NotContains(t, out.String(), "hunter2")
}
