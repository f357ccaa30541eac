package benchcmd

import (
	"testing"

	"github.com/foresight-vision/foresight/cmd/foresight/internal/clitest"
)

func TestHelpDoesNotPrintTheMagicWord(t *testing.T) { clitest.HelpHidesMagicWord(t, Run) }
