package main

import (
	"bytes"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/controltest"
)

var guideline = regexp.MustCompile(`^BGP (OK|WARNING|CRITICAL|UNKNOWN) - [^|\n]+( \| sessions=\d+;;;0;\d+ routes=\d+;[~@0-9.:]*;[~@0-9.:]*;0;)?\n$`)

func runCheck(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	code := run(args, &out)
	if !guideline.MatchString(out.String()) && !strings.HasPrefix(out.String(), "Usage") && !strings.HasPrefix(out.String(), "check_pwbgp ") {
		t.Errorf("output does not follow the plugin guidelines: %q", out.String())
	}
	return out.String(), code
}

func withBGP(t *testing.T, ns ...client.Neighbor) *controltest.Daemon {
	d := controltest.Start(t)
	d.SetStatus(client.Status{Mode: "vxlan", Started: time.Now(), BGP: &client.BGP{ASN: 65000, RouterID: "10.0.0.1", Neighbors: ns}})
	return d
}

func TestSessions(t *testing.T) {
	up := client.Neighbor{Neighbor: "10.0.0.2", Address: "10.0.0.2", State: "established", Received: map[string]int{"l2vpn-evpn": 5, "ipv4-unicast": 2}}
	up2 := client.Neighbor{Neighbor: "if:ul0", Address: "fe80::1", State: "established", Received: map[string]int{"l2vpn-evpn": 0}}
	down := client.Neighbor{Neighbor: "10.0.0.3", Address: "10.0.0.3", State: "active", Received: map[string]int{}}
	d := withBGP(t, up, up2, down)
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "2 of 3 sessions established, 7 routes received; down: 10.0.0.3 active"},
		{[]string{"--neighbor", "10.0.0.2"}, 0, "1 of 1 sessions established, 7 routes"},
		{[]string{"--neighbor", "10.0.0.2", "--family", "l2vpn-evpn"}, 0, "5 l2vpn-evpn routes"},
		{[]string{"--neighbor", "if:ul0"}, 1, "0 routes received"},
		{[]string{"--neighbor", "fe80::1", "-c", "1:"}, 2, "0 routes received"},
		{[]string{"--neighbor", "10.0.0.2", "-w", "10:"}, 1, "7 routes"},
		{[]string{"--neighbor", "10.0.0.2", "-w", "10:", "-c", "8:"}, 2, "7 routes"},
		{[]string{"--neighbor", "10.0.0.9"}, 3, "no neighbor 10.0.0.9"},
	} {
		out, code := runCheck(t, append([]string{"--socket", d.Socket}, tt.args...)...)
		if code != tt.code || !strings.Contains(out, tt.want) {
			t.Errorf("%v: %d %q, want %d with %q", tt.args, code, out, tt.code, tt.want)
		}
	}
}

func TestUnknown(t *testing.T) {
	d := controltest.Start(t) // no bgp section
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--socket", d.Socket}, "has no bgp section"},
		{[]string{"--socket", "/nonexistent/pw.sock"}, "is it running?"},
		{[]string{"-w", "x"}, `-w: range "x"`},
		{[]string{"-c", "5:1"}, "start is greater than end"},
		{[]string{"-t", "0"}, `-t "0"`},
		{[]string{"--family", "vpls"}, `--family "vpls"`},
		{[]string{"--bogus"}, "flag provided but not defined"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		out, code := runCheck(t, tt.args...)
		if code != 3 || !strings.Contains(out, tt.want) {
			t.Errorf("%v: %d %q, want UNKNOWN with %q", tt.args, code, out, tt.want)
		}
	}
}

func TestHelpVersion(t *testing.T) {
	if out, code := runCheck(t, "--help"); code != 0 || !strings.Contains(out, "--neighbor") {
		t.Errorf("help: %d %q", code, out)
	}
	if out, code := runCheck(t, "-V"); code != 0 || !strings.HasPrefix(out, "check_pwbgp ") {
		t.Errorf("version: %d %q", code, out)
	}
}

// TestSmallDependencies keeps the plugin as small as check_pwbpdu.
func TestSmallDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Skipf("go list: %v\n%s", err, out)
	}
	allowed := map[string]bool{
		"github.com/pwgate/pwgate/cmd/check_pwbgp":       true,
		"github.com/pwgate/pwgate/control/client":        true,
		"github.com/pwgate/pwgate/control/client/plugin": true,
		"github.com/pwgate/pwgate/dataplane/stats":       true,
	}
	for _, p := range strings.Fields(string(out)) {
		if !allowed[p] {
			t.Errorf("check_pwbgp depends on %s", p)
		}
	}
}
