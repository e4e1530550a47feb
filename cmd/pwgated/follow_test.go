package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/control/client"
)

// TestFollowPeer runs two pwgates with keepalives (100 ms, down after
// 300 ms) and link-loss forwarding: each measures the round trip; when
// the far pwgated is killed, or the access network between them drops
// everything (the uplinks' links staying up),
// the near one takes its LAN port down (the host sees NO-CARRIER) within
// the timeout and a few ticks, and brings it back once the peer is heard
// for the hold; frames cross again after the port was down and up (the
// AF_XDP socket on it keeps working); and pwgated stopped while the port is
// down leaves it up. In eth mode, and in ip6 mode inside WireGuard.
func TestFollowPeer(t *testing.T) {
	for _, o := range []lab.SitesOptions{{Mode: "eth"}, {Mode: "ip6", WireGuard: true}} {
		name := o.Mode
		if o.WireGuard {
			name += "+wireguard"
		}
		t.Run(name, func(t *testing.T) { testFollowPeer(t, o) })
	}
}

func testFollowPeer(t *testing.T, o lab.SitesOptions) {
	hold := time.Second
	o.STP, o.Keepalive, o.FollowPeer = true, [2]time.Duration{100 * time.Millisecond, 300 * time.Millisecond}, &hold
	s := buildSites(t, o)
	startSites(t, s)
	path := func(site *lab.Site) *client.PeerPath {
		st, err := client.FetchStatus(site.Socket, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if st.Path == nil {
			t.Fatalf("%s: no path in the status", site.Name)
		}
		return st.Path
	}
	for _, site := range []*lab.Site{s.A, s.B} {
		waitFor(t, site.Name+" measures the round trip", 5*time.Second, func() bool { p := path(site); return p.State == "up" && p.RTT > 0 })
		p := path(site)
		t.Logf("%s: rtt %.3f ms, jitter %.3f ms, loss %.1f%%", site.Name, p.RTT*1000, p.Jitter*1000, p.Loss*100)
	}
	// The host's side of the link: what a LAN switch sees.
	carrier := func(site *lab.Site) bool {
		out, _ := s.Exec(site.Host, "ip", "link", "show", site.HostIf)
		return !strings.Contains(out, "NO-CARRIER")
	}
	// Two faults: the far pwgated killed (and started again), the access
	// network cut (and mended).
	for _, fault := range []struct {
		name      string
		cut, mend func()
		bothDown  bool // both ends notice
	}{
		{"far pwgated killed", func() {
			s.B.Proc.Signal(syscall.SIGKILL)
			s.B.Proc.Wait(5 * time.Second)
		}, func() {
			if err := s.StartPwgated(s.B); err != nil {
				t.Fatal(err)
			}
		}, false},
		// The access network stops carrying anything between the
		// sites while the uplinks' links stay up: a path that dies
		// beyond the carrier (the hub's port to site a taken out of the
		// hub; the router's routes to both uplink addresses blackholed).
		{"access network cut", func() { netScript(t, s, cut[o.Mode]) }, func() { netScript(t, s, mend[o.Mode]) }, true},
	} {
		t.Run(fault.name, func(t *testing.T) {
			before, _ := s.Counters(s.A)
			start := time.Now()
			fault.cut()
			waitFor(t, "site a's LAN port down", 3*time.Second, func() bool { return !carrier(s.A) }, func() string { return fmt.Sprintf("%+v", *path(s.A)) })
			took := time.Since(start)
			t.Logf("site a's LAN port down %v after the fault", took.Round(time.Millisecond))
			if took > 1500*time.Millisecond {
				t.Errorf("LAN port down only after %v (timeout 300 ms)", took)
			}
			if p := path(s.A); p.State != "silent" || p.FollowPeer == nil || !p.FollowPeer.LANDown {
				t.Errorf("site a's path while the peer is gone: %+v %+v", p, p.FollowPeer)
			}
			if fault.bothDown {
				waitFor(t, "site b's LAN port down", 3*time.Second, func() bool { return !carrier(s.B) })
			}
			after, _ := s.Counters(s.A)
			if d := after["dl_follow_peer_downs"] - before["dl_follow_peer_downs"]; d != 1 {
				t.Errorf("dl_follow_peer_downs rose by %d, want 1", d)
			}
			time.Sleep(500 * time.Millisecond)
			if carrier(s.A) {
				t.Error("LAN port came back while the peer is still gone")
			}
			fault.mend()
			back := time.Now()
			waitFor(t, "LAN ports up again", 10*time.Second, func() bool { return carrier(s.A) && carrier(s.B) })
			if d := time.Since(back); d < hold {
				t.Errorf("LAN port up %v after the peer returned, before the hold of %v", d, hold)
			}
			if err := s.WaitForwarding(15 * time.Second); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "pings cross again", 10*time.Second, func() bool {
				_, err := ping(s, s.A.Host, "-c", "1", s.B.HostIP)
				return err == nil
			})
		})
	}
	// What systemd does when pwgated dies: pwgated --stopped
	// (ExecStopPost) takes its LAN port down at once; the next pwgated
	// keeps it down until the peer is heard for the hold.
	t.Run("crashed under systemd", func(t *testing.T) {
		s.B.Proc.Signal(syscall.SIGKILL)
		s.B.Proc.Wait(5 * time.Second)
		if out, err := s.Exec(s.B.PW, pwgatedBin, "--stopped", "--config", s.B.Config); err != nil {
			t.Fatalf("pwgated --stopped: %v\n%s", err, out)
		}
		if carrier(s.B) {
			t.Fatal("site b's LAN port still up after pwgated --stopped")
		}
		if err := s.StartPwgated(s.B); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		time.Sleep(300 * time.Millisecond)
		if carrier(s.B) {
			t.Error("the new pwgated brought its LAN port up before the hold")
		}
		waitFor(t, "site b's LAN port up", 10*time.Second, func() bool { return carrier(s.B) })
		t.Logf("site b's LAN port up %v after pwgated started", time.Since(start).Round(time.Millisecond))
		if err := s.WaitForwarding(15 * time.Second); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("stopped while down", func(t *testing.T) {
		s.B.Proc.Signal(syscall.SIGKILL)
		s.B.Proc.Wait(5 * time.Second)
		waitFor(t, "site a's LAN port down", 3*time.Second, func() bool { return !carrier(s.A) })
		if code, err := s.StopPwgated(s.A); err != nil || code != 0 {
			t.Fatalf("pwgated a: exit %d, %v", code, err)
		}
		if out, _ := s.Exec(s.A.PW, "ip", "link", "show", "dl0"); !strings.Contains(out, "state UP") && !strings.Contains(out, ",UP") {
			t.Errorf("dl0 not up after pwgated stopped:\n%s", out)
		}
		if !carrier(s.A) {
			t.Error("the host sees no carrier after pwgated stopped")
		}
	})
}

var (
	cut = map[string][]string{"eth": {"ip link set dev a nomaster"},
		"ip6": {"ip -6 route add blackhole " + lab.AddrA + "/128", "ip -6 route add blackhole " + lab.AddrB + "/128"}}
	mend = map[string][]string{"eth": {"ip link set dev a master br0"},
		"ip6": {"ip -6 route del blackhole " + lab.AddrA + "/128", "ip -6 route del blackhole " + lab.AddrB + "/128"}}
)

func netScript(t *testing.T, s *lab.Sites, cmds []string) {
	if err := s.Script("net", cmds...); err != nil {
		t.Fatal(err)
	}
}

// waitFor waits until ok; when it times out, the failure says what
// each of state says.
func waitFor(t *testing.T, what string, timeout time.Duration, ok func() bool, state ...func() string) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !ok(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			var ss []string
			for _, f := range state {
				ss = append(ss, f())
			}
			t.Fatalf("%s: not after %v %s", what, timeout, strings.Join(ss, "; "))
		}
	}
}

// TestStoppedFlag: pwgated --stopped (systemd's ExecStopPost) says nothing
// and succeeds for a file it cannot read (pwgated has said why it
// stopped), and for a clean stop; it fails, saying why, when it cannot take
// the LAN port down.
func TestStoppedFlag(t *testing.T) {
	if pwgatedBin == "" {
		t.Skip("needs root (pwgated is built by TestMain as root)")
	}
	dir := t.TempDir()
	bad, good := filepath.Join(dir, "bad.yaml"), filepath.Join(dir, "good.yaml")
	os.WriteFile(bad, []byte("mode: ethernet\n"), 0o644)
	os.WriteFile(good, []byte("mode: eth\ndownlink:\n  interface: nosuch9\n  follow_peer: true\nuplink:\n  interface: ul0\npeer:\n  mac: 02:00:00:00:00:02\n  keepalive:\n    interval: 100ms\n"), 0o644)
	for _, tt := range []struct {
		file, result string
		code         int
		want         string
	}{
		{bad, "exit-code", 0, ""},
		{good, "success", 0, ""},
		{good, "signal", 1, "follow_peer: taking nosuch9 down after pwgated stopped (signal): Link not found"},
	} {
		cmd := exec.Command(pwgatedBin, "--stopped", "--config", tt.file)
		cmd.Env = append(os.Environ(), "SERVICE_RESULT="+tt.result)
		out, _ := cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != tt.code || !strings.Contains(string(out), tt.want) || (tt.want == "" && len(out) != 0) {
			t.Errorf("%s, %s: exit %d: %q", filepath.Base(tt.file), tt.result, cmd.ProcessState.ExitCode(), out)
		}
	}
}
