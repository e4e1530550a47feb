package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/control/client"
)

// TestLLDP runs pwgated's LLDP against lldpd (Debian's) on site a's LAN
// host: each sees the other (pwgate's system name and port in lldpd's
// table, lldpd's in pwctl status); the host's LLDPDUs stop at pwgate
// instead of crossing the pseudowire (none reaches site b's host); and when
// pwgated stops, its last LLDPDU (TTL 0) removes it from lldpd's table.
func TestLLDP(t *testing.T) {
	lldpd, err := exec.LookPath("lldpd")
	if err != nil {
		t.Skip("lldpd not installed (make deps)")
	}
	s := buildSites(t, lab.SitesOptions{Mode: "eth"})
	for _, site := range []*lab.Site{s.A, s.B} {
		f, err := os.OpenFile(site.Config, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "lldp:\n  interval: 1s\n  system_name: pwgate-site-%s\n", site.Name)
		f.Close()
	}
	startSites(t, s)
	// lldpd on hosta's eth0 (privilege separation chroots to /run/lldpd,
	// which its systemd unit would make), sending every second.
	if _, err := os.Stat("/run/lldpd"); os.IsNotExist(err) {
		if err := os.Mkdir("/run/lldpd", 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll("/run/lldpd") })
	}
	// Its socket in a directory lldpcli can enter once it dropped
	// privileges (a test's temporary directory is root's only).
	dir, err := os.MkdirTemp("/run", "pwgate-lldpd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	sock := filepath.Join(dir, "lldpd.socket")
	conf := filepath.Join(dir, "lldpd.conf")
	os.WriteFile(conf, []byte("configure system hostname lldpd-hosta\nconfigure lldp tx-interval 1\n"), 0o644)
	if _, err := s.Start(s.A.Host, lldpd, "-d", "-u", sock, "-I", s.A.HostIf, "-O", conf); err != nil {
		t.Fatal(err)
	}
	lldpcli := func() string {
		out, _ := s.Exec(s.A.Host, "lldpcli", "-u", sock, "-f", "keyvalue", "show", "neighbors", "details")
		return out
	}
	waitFor(t, "lldpd hears pwgate", 20*time.Second, func() bool {
		out := lldpcli()
		return strings.Contains(out, ".chassis.name=pwgate-site-a") && strings.Contains(out, ".port.ifname=dl0")
	}, lldpcli)
	out := lldpcli()
	t.Logf("lldpd on hosta:\n%s", out)
	if !strings.Contains(out, "pwgate ") || !strings.Contains(out, "eth mode") {
		t.Errorf("lldpd does not show pwgate's system description:\n%s", out)
	}
	neighbors := func(site *lab.Site) []client.LLDPNeighbor {
		st, err := client.FetchStatus(site.Socket, 2*time.Second)
		if err != nil || st.LLDP == nil {
			t.Fatalf("%s: status %v, lldp %v", site.Name, err, st.LLDP)
		}
		return st.LLDP.Neighbors
	}
	waitFor(t, "pwgate hears lldpd", 20*time.Second, func() bool {
		for _, n := range neighbors(s.A) {
			if n.Port == "dl0" && n.SystemName == "lldpd-hosta" {
				return true
			}
		}
		return false
	}, func() string { return fmt.Sprintf("%+v", neighbors(s.A)) })
	t.Logf("site a's LLDP neighbours: %+v", neighbors(s.A))
	if out, err := s.Exec("", toolBin(t, "pwctl"), "--socket", s.A.Socket, "status"); err != nil || !strings.Contains(out, "dl0: lldpd-hosta port ") {
		t.Errorf("pwctl status: %v\n%s", err, out)
	}
	// Nothing of hosta's LLDP reaches hostb: listen there for three of
	// lldpd's intervals.
	if out, err := s.Exec(s.B.Host, "timeout", "3", "tcpdump", "-i", s.B.HostIf, "-nn", "-e", "-l", "ether", "proto", "0x88cc"); err != nil && !strings.Contains(err.Error(), "exit status 124") {
		t.Fatalf("tcpdump: %v\n%s", err, out)
	} else if strings.Contains(out, "lldpd-hosta") || hostMACIn(t, s, out) {
		t.Errorf("hosta's LLDP crossed the pseudowire:\n%s", out)
	}
	for _, n := range neighbors(s.B) {
		if n.SystemName == "lldpd-hosta" {
			t.Errorf("site b hears hosta's lldpd: %+v", n)
		}
	}
	counters, _ := s.Counters(s.A)
	t.Logf("site a: lldp_tx %d, lldp_rx %d, lldp_rx_bad %d", counters["lldp_tx"], counters["lldp_rx"], counters["lldp_rx_bad"])
	if counters["lldp_tx"] == 0 || counters["lldp_rx"] == 0 || counters["lldp_rx_bad"] != 0 {
		t.Errorf("counters %v", counters)
	}
	// pwgated stops: its TTL 0 takes it out of lldpd's table at once.
	if code, err := s.StopPwgated(s.A); err != nil || code != 0 {
		t.Fatalf("stop: %d %v", code, err)
	}
	waitFor(t, "lldpd forgets pwgate", 3*time.Second, func() bool { return !strings.Contains(lldpcli(), "pwgate-site-a") }, lldpcli)
}

// hostMACIn reports whether tcpdump's lines show hosta's MAC as a source.
func hostMACIn(t *testing.T, s *lab.Sites, out string) bool {
	mac, err := s.Exec(s.A.Host, "cat", "/sys/class/net/"+s.A.HostIf+"/address")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(out, strings.TrimSpace(mac)+" >")
}
