package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/controltest"
	"github.com/pwgate/pwgate/dataplane/stats"
)

// guideline is the output format of the monitoring-plugins developer
// guidelines: "SERVICE STATUS: text | 'label'=value[UOM];[warn];[crit];[min];[max]".
var (
	guideline = regexp.MustCompile(`^BPDU (OK|WARNING|CRITICAL|UNKNOWN) - [^|\n]+( \| (.+))?\n$`)
	perfItem  = regexp.MustCompile(`^('[^'=]+'|[^' =]+)=(-?[0-9.]+)(s|us|ms|%|B|KB|MB|TB|c)?;([~@0-9.:-]*);([~@0-9.:-]*);(-?[0-9.]*);(-?[0-9.]*)$`)
)

// checkOutput parses one plugin output line by the guidelines and returns
// its state word.
func checkOutput(t *testing.T, out string) string {
	t.Helper()
	m := guideline.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("output does not follow the plugin guidelines: %q", out)
	}
	if m[3] != "" {
		for _, item := range strings.Fields(m[3]) {
			if !perfItem.MatchString(item) {
				t.Fatalf("performance data %q does not follow the guidelines", item)
			}
		}
	}
	return m[1]
}

func runPlugin(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	code := run(args, &out, &out)
	return out.String(), code
}

func TestCountingMode(t *testing.T) {
	d := controltest.Start(t)
	step := uint64(0)
	d.OnSnapshot = func(s *stats.Snapshot) { s[stats.ULRxBPDUs] += step }
	for _, tt := range []struct {
		step  uint64
		args  []string
		state string
		code  int
		perf  string
	}{
		{5, nil, "OK", 0, "bpdus=5;4:;1:;0;"},
		{3, nil, "WARNING", 1, "bpdus=3;4:;1:;0;"},
		{0, nil, "CRITICAL", 2, "bpdus=0;4:;1:;0;"},
		{2, []string{"-w", "@1:2", "-c", "10"}, "WARNING", 1, "bpdus=2;@1:2;10;0;"},
		{20, []string{"-w", "@1:2", "-c", "10"}, "CRITICAL", 2, "bpdus=20;@1:2;10;0;"},
		{1, []string{"--direction", "dl"}, "CRITICAL", 2, "bpdus=0;"},
	} {
		step = tt.step
		args := append([]string{"--socket", d.Socket, "-i", "0.05"}, tt.args...)
		out, code := runPlugin(t, args...)
		if code != tt.code || checkOutput(t, out) != tt.state || !strings.Contains(out, "| "+tt.perf) {
			t.Errorf("%v step %d: exit %d, %q", tt.args, tt.step, code, out)
		}
	}
}

func TestMaxAgeMode(t *testing.T) {
	d := controltest.Start(t)
	out, code := runPlugin(t, "--socket", d.Socket, "--max-age", "30")
	if code != Critical || checkOutput(t, out) != "CRITICAL" || !strings.Contains(out, "no BPDU from the uplink since pwgated started") {
		t.Errorf("never: %d %q", code, out)
	}
	recent := time.Now().Add(-2 * time.Second)
	old := time.Now().Add(-time.Minute)
	d.SetStatus(client.Status{Started: time.Now().Add(-time.Hour), LastBPDU: client.BPDUTimes{UL: &recent, DL: &old}})
	start := time.Now()
	out, code = runPlugin(t, "--socket", d.Socket, "--max-age", "30")
	if code != OK || checkOutput(t, out) != "OK" || !strings.Contains(out, "| age=2.") || !strings.Contains(out, ";;30;0;") {
		t.Errorf("recent: %d %q", code, out)
	}
	if time.Since(start) > time.Second {
		t.Error("--max-age slept")
	}
	out, code = runPlugin(t, "--socket", d.Socket, "--max-age", "30", "--direction", "dl")
	if code != Critical || checkOutput(t, out) != "CRITICAL" || !strings.Contains(out, "from the LAN 60.") {
		t.Errorf("old: %d %q", code, out)
	}
}

func TestUnknown(t *testing.T) {
	d := controltest.Start(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--socket", "/nonexistent/pw.sock"}, "cannot reach pwgated at /nonexistent/pw.sock: is it running?"},
		{[]string{"-w", "x"}, `-w: range "x": bad end "x"`},
		{[]string{"-c", "5:1"}, "start is greater than end"},
		{[]string{"-i", "0"}, "-i \"0\": want a number of seconds above 0"},
		{[]string{"-i", "20"}, "must be shorter than the timeout"},
		{[]string{"--max-age", "-3"}, "--max-age"},
		{[]string{"--direction", "up"}, `--direction "up"`},
		{[]string{"--bogus"}, "flag provided but not defined"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"--socket", d.Socket, "-i", "2", "-t", "1.5"}, "must be shorter"},
	} {
		out, code := runPlugin(t, tt.args...)
		if code != Unknown || checkOutput(t, out) != "UNKNOWN" || !strings.Contains(out, tt.want) {
			t.Errorf("%v: exit %d %q, want UNKNOWN with %q", tt.args, code, out, tt.want)
		}
	}
	// The timeout covers a slow daemon too.
	d.OnSnapshot = func(*stats.Snapshot) { time.Sleep(300 * time.Millisecond) }
	out, code := runPlugin(t, "--socket", d.Socket, "-i", "0.1", "-t", "0.2")
	if code != Unknown || !strings.Contains(out, "UNKNOWN") {
		t.Errorf("timeout: %d %q", code, out)
	}
}

func TestHelpVersion(t *testing.T) {
	for _, a := range []string{"-h", "--help"} {
		out, code := runPlugin(t, a)
		if code != OK || !strings.HasPrefix(out, "Usage:\n  check_pwbpdu") || !strings.Contains(out, "--max-age") {
			t.Errorf("%s: %d %q", a, code, out)
		}
	}
	for _, a := range []string{"-V", "--version"} {
		out, code := runPlugin(t, a)
		if code != OK || !regexp.MustCompile(`^check_pwbpdu \S+ \(pwgate\)\n$`).MatchString(out) {
			t.Errorf("%s: %d %q", a, code, out)
		}
	}
}
