//go:build tools

// This file is never compiled. It pins, in this module's go.mod and go.sum,
// the two modules build.sh builds from:
//   - github.com/ollama/ollama: the `ollama` binary itself (go build of the
//     module's main package, at exactly the version go.mod names);
//   - github.com/gen2brain/malgo: only for its miniaudio.h, which Ollama's
//     C++ includes as "miniaudio/miniaudio.h" but whose vendor/ folder the
//     Go module zip leaves out.
package main

import (
	_ "github.com/gen2brain/malgo"
	_ "github.com/ollama/ollama"
)
