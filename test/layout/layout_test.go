// Package layout checks the module's import graph against the layering the
// code is organised by (spec R-08, ARCHITECTURE.md): the daemons talk to each
// other only over the network, shared code never reaches back into a daemon,
// and each main wraps only its own daemon.
package layout

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/ournsq/nsq/test/internal/daemons"
)

const module = "github.com/ournsq/nsq"

// imports maps each package of the module (without tests) to what it imports.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...")
	cmd.Dir = daemons.ModuleRoot(t)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	graph := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		graph[f[0]] = f[1:]
	}
	return graph
}

func TestImportLayering(t *testing.T) {
	graph := imports(t)
	forbidden := map[string][]string{ // importer (prefix) → what it must not import (prefixes)
		module + "/nsqd":            {module + "/nsqlookupd", module + "/apps/", module + "/test/", module + "/bench/"},
		module + "/nsqlookupd":      {module + "/nsqd", module + "/apps/", module + "/test/", module + "/bench/"},
		module + "/internal/":       {module + "/nsqd", module + "/nsqlookupd", module + "/apps/", module + "/test/", module + "/bench/"},
		module + "/apps/nsqd":       {module + "/nsqlookupd"},
		module + "/apps/nsqlookupd": {module + "/nsqd"},
	}
	checked := 0
	for pkg, deps := range graph {
		for importer, bans := range forbidden {
			if pkg != importer && !(strings.HasSuffix(importer, "/") && strings.HasPrefix(pkg, importer)) {
				continue
			}
			checked++
			for _, dep := range deps {
				for _, ban := range bans {
					if dep == ban || strings.HasPrefix(dep, strings.TrimSuffix(ban, "/")+"/") {
						t.Errorf("%s imports %s", pkg, dep)
					}
				}
			}
		}
	}
	// the daemons, their mains and at least one internal package were seen
	if checked < 5 {
		t.Fatalf("checked %d packages; the module layout changed (go list found %d)", checked, len(graph))
	}
}
