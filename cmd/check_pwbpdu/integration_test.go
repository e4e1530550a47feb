package main

// The plugin against two real pwgated processes whose hosts' bridges speak
// STP across the pseudowire. Needs root; skipped with -short.

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/control/client"
)

var bins = map[string]string{}

func TestMain(m *testing.M) {
	code := func() int {
		if !lab.IsRoot() {
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "pwgate-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		os.Chmod(dir, 0o755)
		for _, name := range []string{"pwgated", "pwctl", "check_pwbpdu"} {
			bins[name] = filepath.Join(dir, name)
			if out, err := exec.Command("go", "build", "-o", bins[name], "github.com/pwgate/pwgate/cmd/"+name).CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "build %s: %v\n%s", name, err, out)
				return 1
			}
		}
		return m.Run()
	}()
	os.Exit(code)
}

func TestWithPwgated(t *testing.T) {
	if testing.Short() || !lab.IsRoot() {
		t.Skip("integration test: needs root for network namespaces and XDP, and not -short")
	}
	l := lab.New(fmt.Sprintf("pwm%d-", os.Getpid()))
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	dir := t.TempDir()
	// An ordinary user reaches the sockets through these below: only the
	// sockets' own mode and group may stand in the way.
	os.Chmod(dir, 0o755)
	os.Chmod(filepath.Dir(dir), 0o755)
	s, err := lab.NewSites(l, lab.SitesOptions{Mode: "eth", Pwgated: bins["pwgated"], Dir: dir, STP: true,
		Stats: func(site *lab.Site) string {
			st := fmt.Sprintf("  gpwstats_socket: %s/gpw%s.sock\n  prometheus: 127.0.0.1:9469\n", dir, site.Name)
			if site.Name == "b" {
				st += "  group: nogroup\n"
			}
			return st
		}})
	if err != nil {
		t.Fatal(err)
	}
	for _, site := range []*lab.Site{s.A, s.B} {
		if err := s.StartPwgated(site); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WaitForwarding(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	// Host A's bridge is root: its BPDUs reach site B from the uplink.
	plugin := func(args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command(bins["check_pwbpdu"], append([]string{"--socket", s.B.Socket}, args...)...)
		out, err := cmd.Output()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		checkOutput(t, string(out))
		return string(out), code
	}

	t.Run("ok while BPDUs flow", func(t *testing.T) {
		out, code := plugin()
		if code != OK || !strings.HasPrefix(out, "BPDU OK - ") {
			t.Fatalf("exit %d: %s", code, out)
		}
		if out, code := plugin("--max-age", "3"); code != OK {
			t.Fatalf("--max-age: exit %d: %s", code, out)
		}
	})

	t.Run("metrics move with traffic", func(t *testing.T) {
		metric := func() float64 {
			out, err := s.Exec(s.A.PW, "curl", "-sf", "http://127.0.0.1:9469/metrics")
			if err != nil {
				t.Fatal(err)
			}
			m := regexp.MustCompile(`(?m)^pwgate_dl_rx_packets_total (\S+)$`).FindStringSubmatch(out)
			if m == nil || !strings.Contains(out, `pwgate_last_bpdu_timestamp_seconds{direction="dl"}`) {
				t.Fatalf("metrics:\n%s", out)
			}
			v, _ := strconv.ParseFloat(m[1], 64)
			return v
		}
		before := metric()
		if out, err := s.Exec(s.A.Host, "ping", "-c", "5", "-i", "0.2", s.B.HostIP); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if after := metric(); after < before+5 {
			t.Fatalf("pwgate_dl_rx_packets_total went from %v to %v over 5 pings", before, after)
		}
	})

	t.Run("reference protocol", func(t *testing.T) {
		before, err := client.FetchCounters(s.A.Socket, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c, err := net.Dial("unix", filepath.Join(dir, "gpwa.sock"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte{0, 0, 0, 0})
		b := make([]byte, 96)
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatal(err)
		}
		after, _ := client.FetchCounters(s.A.Socket, time.Second)
		for i := 0; i < 12; i++ {
			v := binary.NativeEndian.Uint64(b[8*i:])
			if v < before[i].Value || v > after[i].Value {
				t.Errorf("%s: reference protocol says %d, pwctl %d..%d", before[i].Name, v, before[i].Value, after[i].Value)
			}
		}
	})

	t.Run("socket permissions", func(t *testing.T) {
		for _, site := range []*lab.Site{s.A, s.B} {
			fi, err := os.Stat(site.Socket)
			if err != nil || fi.Mode().Perm() != 0o660 {
				t.Fatalf("%s: %v %v, want 0660", site.Socket, fi.Mode(), err)
			}
		}
		// nobody is not in site A's socket group (root) but is in site
		// B's (nogroup).
		out, err := exec.Command("runuser", "-u", "nobody", "--", bins["pwctl"], "--socket", s.A.Socket, "stats").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "permission denied on "+s.A.Socket) {
			t.Errorf("pwctl as nobody on a root-only socket: %v\n%s", err, out)
		}
		out, err = exec.Command("runuser", "-u", "nobody", "--", bins["pwctl"], "--socket", s.B.Socket, "status").CombinedOutput()
		if err != nil || !regexp.MustCompile(`(?m)^ready +yes$`).Match(out) {
			t.Errorf("pwctl as nobody, in the socket group: %v\n%s", err, out)
		}
	})

	t.Run("critical when the far bridge stops STP", func(t *testing.T) {
		if _, err := s.Exec(s.A.Host, "ip", "link", "set", "dev", "br0", "type", "bridge", "stp_state", "0"); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		out, code := plugin()
		if code != Critical || !strings.HasPrefix(out, "BPDU CRITICAL - 0 BPDUs in 5s") {
			t.Fatalf("first interval after STP stopped: exit %d: %s", code, out)
		}
		if d := time.Since(start); d > 7*time.Second {
			t.Errorf("took %v", d)
		}
		out, code = plugin("--max-age", "3")
		if code != Critical || !strings.Contains(out, "last BPDU from the uplink") {
			t.Fatalf("--max-age after the age passed: exit %d: %s", code, out)
		}
	})

	t.Run("unknown when the daemon is gone", func(t *testing.T) {
		if code, err := s.StopPwgated(s.B); err != nil || code != 0 {
			t.Fatalf("stop: %d %v", code, err)
		}
		out, code := plugin()
		if code != Unknown || !strings.HasPrefix(out, "BPDU UNKNOWN - cannot reach pwgated at "+s.B.Socket) {
			t.Fatalf("exit %d: %s", code, out)
		}
	})
}
