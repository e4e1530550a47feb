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

var guideline = regexp.MustCompile(`^PATH (OK|WARNING|CRITICAL|UNKNOWN) - [^|\n]+( \| rtt=[0-9.]+ms;[~@0-9.:]*;[~@0-9.:]*;0; loss=[0-9.]+%;[~@0-9.:]*;[~@0-9.:]*;0;100 jitter=[0-9.]+ms;;;0;)?\n$`)

func runCheck(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	code := run(args, &out)
	if !guideline.MatchString(out.String()) && !strings.HasPrefix(out.String(), "Usage") && !strings.HasPrefix(out.String(), "check_pwpath ") {
		t.Errorf("output does not follow the plugin guidelines: %q", out.String())
	}
	return out.String(), code
}

func TestPath(t *testing.T) {
	d := controltest.Start(t)
	for _, tt := range []struct {
		path client.PeerPath
		args []string
		code int
		want string
	}{
		{client.PeerPath{State: "up", RTT: 0.0012, Jitter: 0.0001, Loss: 0}, nil, 0,
			"peer 02:00:00:00:00:0b up, rtt 1.20 ms, jitter 0.10 ms, loss 0.0% | rtt=1.200ms;50;200;0; loss=0.0%;5;20;0;100 jitter=0.100ms;;;0;"},
		{client.PeerPath{State: "up", RTT: 0.060}, nil, 1, "rtt 60.00 ms"},
		{client.PeerPath{State: "up", RTT: 0.300}, nil, 2, "rtt 300.00 ms"},
		{client.PeerPath{State: "up", RTT: 0.001, Loss: 0.1}, nil, 1, "loss 10.0%"},
		{client.PeerPath{State: "up", RTT: 0.001, Loss: 0.5}, nil, 2, "loss 50.0%"},
		{client.PeerPath{State: "up", RTT: 0.001, Loss: 0.1}, []string{"-w", "5,20%", "-c", "10,50%"}, 0, "loss 10.0%"},
		{client.PeerPath{State: "up", RTT: 0.001}, []string{"-w", "2:,5%"}, 1, "rtt 1.00 ms"},
		{client.PeerPath{State: "silent", Loss: 1, HeardAgo: 2.5}, nil, 2, "; nothing heard for 2.5s"},
		{client.PeerPath{State: "silent", Loss: 1, HeardAgo: -1}, nil, 2, "nothing heard for ever"},
		{client.PeerPath{State: "one-way", RTT: 0.001}, nil, 2, "the peer does not hear us"},
		{client.PeerPath{State: "waiting", HeardAgo: -1}, nil, 0, "waiting"},
		{client.PeerPath{State: "up", Warning: "the peer sends no keepalives: configure peer.keepalive there too"}, nil, 1, "; the peer sends no keepalives"},
	} {
		d.SetStatus(client.Status{Mode: "eth", Peer: "02:00:00:00:00:0b", Started: time.Now(), Path: &tt.path})
		out, code := runCheck(t, append([]string{"--socket", d.Socket}, tt.args...)...)
		if code != tt.code || !strings.Contains(out, tt.want) {
			t.Errorf("%+v %v: %d %q, want %d with %q", tt.path, tt.args, code, out, tt.code, tt.want)
		}
	}
}

func TestUnknown(t *testing.T) {
	d := controltest.Start(t) // no keepalives
	d.SetStatus(client.Status{Mode: "eth", Started: time.Now()})
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--socket", d.Socket}, "sends no keepalives"},
		{[]string{"--socket", "/nonexistent/pw.sock"}, "is it running?"},
		{[]string{"-w", "50"}, `-w "50": want RTT,LOSS%`},
		{[]string{"-w", "50,5"}, `-w "50,5": want RTT,LOSS%`},
		{[]string{"-w", "x,5%"}, `-w: range "x"`},
		{[]string{"-c", "50,9:1%"}, "start is greater than end"},
		{[]string{"-t", "0"}, `-t "0"`},
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
	if out, code := runCheck(t, "--help"); code != 0 || !strings.Contains(out, "RTT,LOSS%") {
		t.Errorf("help: %d %q", code, out)
	}
	if out, code := runCheck(t, "-V"); code != 0 || !strings.HasPrefix(out, "check_pwpath ") {
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
		"github.com/pwgate/pwgate/cmd/check_pwpath":      true,
		"github.com/pwgate/pwgate/control/client":        true,
		"github.com/pwgate/pwgate/control/client/plugin": true,
		"github.com/pwgate/pwgate/dataplane/stats":       true,
	}
	for _, p := range strings.Fields(string(out)) {
		if !allowed[p] {
			t.Errorf("check_pwpath depends on %s", p)
		}
	}
}
