package doccheck_test

import (
	"bufio"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const module = "github.com/foresight-vision/foresight"

// pkg is what `go list -json` says of one package.
type pkg struct {
	ImportPath string
	Imports    []string
}

// listPackages runs `go list -json ./...` at the module root.
func listPackages(t *testing.T) []pkg {
	t.Helper()
	// go test puts its own GOROOT/bin first on the test's PATH.
	cmd := exec.Command("go", "list", "-json", "./...")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.Output()
	require.NoError(t, err, "go list")
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else {
			require.NoError(t, err)
		}
		p.ImportPath = strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// documentedTree is the first column of the code block under "## The tree".
func documentedTree(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "docs", "architecture.md"))
	require.NoError(t, err)
	defer f.Close()
	var paths []string
	section, inBlock := false, false
	for sc := bufio.NewScanner(f); sc.Scan(); {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			section = line == "## The tree"
		case section && strings.HasPrefix(line, "```"):
			if inBlock {
				return paths
			}
			inBlock = true
		case section && inBlock && strings.TrimSpace(line) != "":
			paths = append(paths, strings.Fields(line)[0])
		}
	}
	t.Fatal("docs/architecture.md has no code block under \"## The tree\"")
	return nil
}

// TestArchitectureTreeIsGoList: the tree a newcomer reads is the module's
// package list, no package missing and none invented.
func TestArchitectureTreeIsGoList(t *testing.T) {
	var listed []string
	for _, p := range listPackages(t) {
		listed = append(listed, p.ImportPath)
	}
	documented := documentedTree(t)
	slices.Sort(listed)
	slices.Sort(documented)
	assert.Equal(t, listed, documented, "docs/architecture.md's tree against go list ./...")
}

// TestImportRule holds the packages to docs/architecture.md's import rule.
func TestImportRule(t *testing.T) {
	driven := []string{"adapters/inference/", "adapters/store/", "adapters/notify/", "adapters/decide/",
		"adapters/answer/", "adapters/scene/", "adapters/secret/", "adapters/observe/"}
	isDriven := func(p string) bool {
		return slices.ContainsFunc(driven, func(d string) bool { return strings.HasPrefix(p+"/", d) })
	}
	isDriving := func(p string) bool { return strings.HasPrefix(p, "adapters/frontend/") }
	for _, p := range listPackages(t) {
		for _, imp := range p.Imports {
			own, ok := strings.CutPrefix(imp, module+"/")
			if !ok && imp == module {
				own, ok = "", true
			}
			switch {
			case p.ImportPath == "ports" || p.ImportPath == "domain":
				assert.True(t, ok || !strings.Contains(strings.Split(imp, "/")[0], "."), "%s imports %s: only the standard library (and ports)", p.ImportPath, imp)
				if ok {
					assert.Contains(t, []string{"ports"}, own, "%s imports %s", p.ImportPath, own)
				}
			case strings.HasPrefix(imp, "go.uber.org/fx"):
				assert.Equal(t, "app", p.ImportPath, "only app imports fx, not %s", p.ImportPath)
			}
			if !ok {
				continue
			}
			if strings.HasPrefix(p.ImportPath, "adapters/") {
				assert.NotEqual(t, "app", own, "%s imports app", p.ImportPath)
				// modalheader is stdlib names only: the gateway sets the headers it reads.
				if isDriving(p.ImportPath) && !strings.HasSuffix(p.ImportPath, "test") && own != "adapters/inference/modal/modalheader" {
					assert.False(t, isDriven(own), "driving %s imports driven %s", p.ImportPath, own)
				}
				if isDriven(p.ImportPath) && !strings.HasSuffix(p.ImportPath, "test") {
					assert.False(t, isDriving(own), "driven %s imports driving %s", p.ImportPath, own)
				}
			}
		}
	}
}
