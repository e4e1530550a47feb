package xsk

import (
	"os/exec"
	"strings"
	"testing"
)

// TestOnlySockets: the socket package makes sockets and nothing else; the
// XDP programs that steer frames to them are the layer above's business.
func TestOnlySockets(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Skipf("go list: %v\n%s", err, out)
	}
	for _, p := range strings.Fields(string(out)) {
		if p != "github.com/pwgate/pwgate/dataplane/xsk" && !strings.HasPrefix(p, "golang.org/x/sys/") {
			t.Errorf("xsk depends on %s", p)
		}
	}
}
