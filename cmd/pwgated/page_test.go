package main

import (
	"encoding/json"
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

// TestStatusPage loads site a's status page (stats.http on a management
// port) in headless Chromium from a lab box on the management network,
// after 25 s of traffic: the figures match pwctl status --json, the
// counters are no later than pwctl stats read after, and the graphs are
// drawn. PWGATE_SCREENSHOT=FILE keeps a screenshot.
func TestStatusPage(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (make deps installs it)")
	}
	const mgmt = "192.168.88.1:8080"
	s := buildSites(t, lab.SitesOptions{Mode: "eth", STP: true, Keepalive: [2]time.Duration{100 * time.Millisecond, 300 * time.Millisecond},
		Stats: func(site *lab.Site) string {
			if site == nil || site.Name != "a" {
				return ""
			}
			return "  http: " + mgmt + "\n"
		}})
	if err := s.AddNS("mgmt"); err != nil {
		t.Fatal(err)
	}
	if err := s.Veth(s.A.PW, "mgmt0", "mgmt", "eth0", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Script(s.A.PW, "ip addr add 192.168.88.1/24 dev mgmt0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Script("mgmt", "ip addr add 192.168.88.2/24 dev eth0"); err != nil {
		t.Fatal(err)
	}
	startSites(t, s)
	// Traffic for the graphs: two samples 10 s apart after the first.
	if out, err := ping(s, s.A.Host, "-c", "100", "-i", "0.25", s.B.HostIP); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	dir := t.TempDir()
	shot := filepath.Join(dir, "page.png")
	args := []string{browser, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=" + filepath.Join(dir, "profile"),
		"--window-size=1200,1900", "--virtual-time-budget=5000", "--run-all-compositor-stages-before-draw"}
	dom, err := s.Exec("mgmt", append(args, "--dump-dom", "http://"+mgmt+"/")...)
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, dom)
	}
	st, err := client.FetchStatus(s.A.Socket, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	counters, err := s.Counters(s.A)
	if err != nil {
		t.Fatal(err)
	}
	text := func(id string) string {
		m := regexp.MustCompile(`id="` + id + `"[^>]*>([^<]*)<`).FindStringSubmatch(dom)
		if m == nil {
			t.Errorf("the page has no %s:\n%s", id, dom)
			return ""
		}
		return m[1]
	}
	for id, want := range map[string]string{"mode": st.Mode, "peer": st.Peer, "downlink": st.Downlink, "xdp_bind": st.XDPBind,
		"version": st.Version + " (pid " + strconv.Itoa(st.PID) + ")", "ready": "yes"} {
		if got := text(id); got != want {
			t.Errorf("page's %s %q, pwctl status --json says %q", id, got, want)
		}
	}
	if p := text("path"); !strings.HasPrefix(p, "up, rtt ") {
		t.Errorf("page's path %q", p)
	}
	for _, c := range []string{"ul_rx_packets", "dl_rx_packets", "peer_keepalives_rx"} {
		got, err := strconv.ParseUint(text("c_"+c), 10, 64)
		if err != nil || got == 0 || got > counters[c] {
			t.Errorf("page's %s %q, pwctl stats says %d after", c, text("c_"+c), counters[c])
		}
	}
	if n := strings.Count(dom, `class="uplot`); n < 4 {
		t.Errorf("%d graphs drawn, want the port rates, drops, BPDU age, round trip and loss:\n%s", n, dom)
	}
	if _, err := s.Exec("mgmt", append(args, "--screenshot="+shot, "http://"+mgmt+"/")...); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(shot); err != nil || fi.Size() < 10000 {
		t.Fatalf("screenshot: %v", err)
	}
	if keep := os.Getenv("PWGATE_SCREENSHOT"); keep != "" {
		b, _ := os.ReadFile(shot)
		os.WriteFile(keep, b, 0o644)
	}
	var h struct {
		T []int64 `json:"t"`
	}
	out, err := s.Exec("mgmt", "curl", "-sf", "http://"+mgmt+"/history.json")
	if err != nil || json.Unmarshal([]byte(out), &h) != nil || len(h.T) < 2 {
		t.Errorf("history.json: %v %s", err, out)
	}
}
