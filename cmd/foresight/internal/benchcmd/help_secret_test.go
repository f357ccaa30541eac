package benchcmd

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestHelpDoesNotPrintTheMagicWord(t *testing.T) {
	t.Setenv("MAGIC_WORD", "hunter2")
	var out bytes.Buffer
	_ = Run(context.Background(), []string{"--help"}, &out, &out)
	assert.Contains(t, out.String(), "magic-word")
	assert.NotContains(t, out.String(), "hunter2")
}
