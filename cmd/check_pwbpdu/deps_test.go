package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestSmallDependencies keeps the plugin small: it may use the standard
// library and pwgate's stdlib-only protocol packages, nothing else (no
// eBPF, netlink, Prometheus or YAML, which made it 11.5 MB).
func TestSmallDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Skipf("go list: %v\n%s", err, out)
	}
	allowed := map[string]bool{
		"github.com/pwgate/pwgate/cmd/check_pwbpdu":      true,
		"github.com/pwgate/pwgate/control/client":        true,
		"github.com/pwgate/pwgate/control/client/plugin": true,
		"github.com/pwgate/pwgate/dataplane/stats":       true,
	}
	for _, p := range strings.Fields(string(out)) {
		if !allowed[p] {
			t.Errorf("check_pwbpdu depends on %s", p)
		}
	}
}
