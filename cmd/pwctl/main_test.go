package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/controltest"
	"github.com/pwgate/pwgate/control/statsrv"
	"github.com/pwgate/pwgate/dataplane/stats"
)

func pwctl(args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

func TestStatsText(t *testing.T) {
	d := controltest.Start(t)
	d.Set(stats.ULRxBPDUs, 12)
	d.Set(stats.DLTxBytes, 123456789)
	out, _, code := pwctl("--socket", d.Socket, "stats")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != int(stats.NumCounters) {
		t.Fatalf("exit %d, %d lines:\n%s", code, len(lines), out)
	}
	// One counter a line, aligned, the reference's twelve first; each line
	// matches the pattern Telegraf's gpwstats input parses.
	telegraf := regexp.MustCompile(`^(\S+)\s+(\d+)$`)
	width := len(lines[0])
	for i, l := range lines {
		if len(l) != width || !telegraf.MatchString(l) {
			t.Errorf("line %d %q not aligned or not name-value", i, l)
		}
	}
	if !strings.HasPrefix(lines[2], "pwgate.ul_rx_bpdus ") || !strings.HasSuffix(lines[2], " 12") ||
		!strings.HasPrefix(lines[10], "pwgate.dl_tx_bytes") || !strings.HasSuffix(lines[10], " 123456789") {
		t.Errorf("order or values wrong:\n%s", out)
	}
}

func TestStatsJSON(t *testing.T) {
	d := controltest.Start(t)
	d.Set(stats.ULRxPackets, 7)
	out, _, code := pwctl("--socket", d.Socket, "stats", "--json")
	var m map[string]uint64
	if code != 0 || json.Unmarshal([]byte(out), &m) != nil || m["ul_rx_packets"] != 7 || len(m) != int(stats.NumCounters) {
		t.Fatalf("exit %d: %s", code, out)
	}
}

func TestStatus(t *testing.T) {
	d := controltest.Start(t)
	bpdu := time.Now().Add(-1500 * time.Millisecond)
	d.SetStatus(client.Status{Mode: "ip6", Peer: "2001:db8:b::b", Local: "2001:db8:a::a", NextHop: "02:00:00:00:0f:0a", Via: "fe80::1",
		Ready: true, Started: time.Now().Add(-90 * time.Second), LastBPDU: client.BPDUTimes{UL: &bpdu}, Uplink: "ul0", UplinkMTU: 1500})
	d.SetStatus(client.Status{Mode: "ip6", Peer: "2001:db8:b::b", Local: "2001:db8:a::a", NextHop: "02:00:00:00:0f:0a", Via: "fe80::1",
		Ready: true, Started: time.Now().Add(-90 * time.Second), LastBPDU: client.BPDUTimes{UL: &bpdu}, Uplink: "ul0", UplinkMTU: 1500,
		XDPBind: "copy", NICChanges: []string{"dl0 rx-vlan-hw-parse off"},
		Runtime: client.Runtime{GOMAXPROCS: 3, HeapBytes: 3 << 20, RSSBytes: 30 << 20, RSSAnonBytes: 20 << 20, RSSFileBytes: 10 << 20, GoHeldBytes: 8 << 20, OSThreads: 7, GCCycles: 2, Goroutines: 12, FDs: 20,
			Threads: []client.Thread{{Name: "main", Allowed: []int{0}, LastCore: -1}, {Name: "encap", TID: 101, Allowed: []int{1, 2, 3, 5}, LastCore: 1}}}})
	out, _, code := pwctl("--socket", d.Socket, "status")
	for _, want := range []string{"mode ip6", "peer 2001:db8:b::b", "next hop 02:00:00:00:0f:0a via fe80::1", "ready yes",
		"uptime 1m30s", "last BPDU from uplink 1.5s ago, from LAN never", "uplink ul0 (MTU 1500)", "xdp bind copy",
		"port settings dl0 rx-vlan-hw-parse off (until exit)", "GOMAXPROCS 3", "main goroutine cores 0",
		"encap goroutine cores 1-3,5, last ran on 1 (thread 101)",
		"memory heap 3.0 MiB, resident 30.0 MiB (20.0 MiB own, 10.0 MiB of files), Go holds 8.0 MiB, 2 GC cycles, 12 goroutines, 7 threads, 20 open files"} {
		if !regexp.MustCompile(`(?m)^` + strings.ReplaceAll(regexp.QuoteMeta(want), " ", " +") + `$`).MatchString(out) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if code != 0 {
		t.Errorf("exit %d", code)
	}
	out, _, _ = pwctl("--socket", d.Socket, "status", "--json")
	var s client.Status
	if json.Unmarshal([]byte(out), &s) != nil || s.Peer != "2001:db8:b::b" || s.LastBPDU.UL == nil {
		t.Errorf("status --json: %s", out)
	}
}

// A VTEP's and an anycast pwgated's status show what they have instead
// of a single next hop.
func TestStatusPath(t *testing.T) {
	d := controltest.Start(t)
	since := time.Date(2026, 12, 5, 10, 0, 0, 0, time.Local)
	for _, tt := range []struct {
		path client.PeerPath
		want []string
	}{
		{client.PeerPath{State: "up", RTT: 0.0012, Jitter: 0.0001, Loss: 0.02, HeardAgo: 0.02, KeepaliveAgo: 0.05, Interval: 0.1, Timeout: 0.3},
			[]string{"path up, rtt 1.2ms, jitter 100µs, loss 2.0% (last 10 s), heard 20ms ago; keepalives every 100ms, down after 300ms"}},
		{client.PeerPath{State: "silent", Loss: 1, HeardAgo: -1, KeepaliveAgo: -1, Interval: 0.1, Timeout: 0.3,
			FollowPeer: &client.FollowPeerStatus{LANDown: true, Since: since, Downs: 3, Hold: 2, Error: "no such device"}},
			[]string{"path SILENT, loss 100.0% (last 10 s), never heard; keepalives every 100ms, down after 300ms",
				"follow peer LAN port DOWN (the peer is not heard, or does not hear us) since 2026-12-05 10:00:00, taken down 3 times, hold 2s; cannot change the port: no such device"}},
		{client.PeerPath{State: "one-way", HeardAgo: 0.01, KeepaliveAgo: 0.5, Interval: 1, Timeout: 3},
			[]string{"path ONE-WAY (the peer does not hear us), loss 0.0% (last 10 s), heard 10ms ago; keepalives every 1s, down after 3s"}},
		{client.PeerPath{State: "up", HeardAgo: 0.01, KeepaliveAgo: -1, Interval: 1, Timeout: 3, Warning: "the peer sends no keepalives: configure peer.keepalive there too"},
			[]string{"path up, loss 0.0% (last 10 s), heard 10ms ago; keepalives every 1s, down after 3s; WARNING: the peer sends no keepalives: configure peer.keepalive there too"}},
	} {
		d.SetStatus(client.Status{Mode: "eth", Ready: true, Path: &tt.path})
		out, _, _ := pwctl("--socket", d.Socket, "status")
		for _, want := range tt.want {
			if !regexp.MustCompile(`(?m)^` + strings.Replace(regexp.QuoteMeta(want), " ", " +", 2) + `$`).MatchString(out) {
				t.Errorf("status lacks %q:\n%s", want, out)
			}
		}
	}
}

// TestStatusLLDP: a line per neighbour, a port's trouble, or that nothing
// was heard on it.
func TestStatusLLDP(t *testing.T) {
	d := controltest.Start(t)
	d.SetStatus(client.Status{Mode: "eth", Ready: true, LLDP: &client.LLDP{Interval: 30,
		Ports: []client.LLDPPort{{Name: "dl0"}, {Name: "ul0"}, {Name: "enp1s0", Error: "lldp: route ip+net: no such network interface"}},
		Neighbors: []client.LLDPNeighbor{
			{Port: "dl0", ChassisID: "00:1b:21:0a:0b:0c", PortID: "Gi0/3", PortDesc: "to pwgate", SystemName: "sw1", Age: 12.4},
			{Port: "dl0", ChassisID: "02:00:00:00:00:01", PortID: "eth0", Mgmt: []string{"192.0.2.2"}, Age: 1},
		}}})
	out, _, _ := pwctl("--socket", d.Socket, "status")
	for _, want := range []string{
		"lldp  dl0: sw1 port Gi0/3 (to pwgate), chassis 00:1b:21:0a:0b:0c, 12s ago",
		"lldp  dl0: chassis 02:00:00:00:00:01 port eth0, address 192.0.2.2, 1s ago",
		"lldp  ul0: no neighbour heard",
		"lldp  enp1s0: lldp: route ip+net: no such network interface",
	} {
		if !regexp.MustCompile(`(?m)^` + strings.Replace(regexp.QuoteMeta(want), "  ", " +", 1) + `$`).MatchString(out) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

func TestStatusOtherModes(t *testing.T) {
	d := controltest.Start(t)
	d.SetStatus(client.Status{Mode: "vxlan", Peer: "vxlan 10.0.0.1", Uplink: "ul0", UplinkMTU: 1500, Ready: true,
		EVPN: &client.EVPN{VTEPs: []client.VTEP{{Address: "10.0.0.2", Resolved: true}, {Address: "10.0.0.3"}}},
		BGP:  &client.BGP{Neighbors: []client.Neighbor{{Neighbor: "10.0.0.2", State: "established"}, {Neighbor: "10.0.0.3", State: "active"}}}})
	out, _, _ := pwctl("--socket", d.Socket, "status")
	for _, want := range []string{"remote VTEPs +2, 1 with their next hop resolved \\(pwctl evpn\\)", "bgp +1 of 2 sessions established"} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("vxlan status lacks %q:\n%s", want, out)
		}
	}
	if regexp.MustCompile(`(?m)^next hop`).MatchString(out) {
		t.Errorf("a VTEP's status shows a single next hop:\n%s", out)
	}
	d.SetStatus(client.Status{Mode: "anycast", Ready: true, Anycast: &client.Anycast{VIPs: []client.AnycastVIP{{Announced: true}, {}}}})
	out, _, _ = pwctl("--socket", d.Socket, "status")
	if !strings.Contains(out, "1 of 2 VIPs announced, 0 forwarded") || strings.Contains(out, "downlink") || strings.Contains(out, "xdp bind") {
		t.Errorf("anycast status:\n%s", out)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--socket", filepath.Join(dir, "none.sock"), "stats"}, 1, "pwctl: cannot reach pwgated at " + filepath.Join(dir, "none.sock") + ": is it running?"},
		{[]string{"--socket", filepath.Join(dir, "none.sock"), "status"}, 1, "is it running?"},
		{nil, 2, "usage: pwctl"},
		{[]string{"reboot"}, 2, `unknown command "reboot"`},
		{[]string{"stats", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--config", filepath.Join(dir, "none.yaml"), "stats"}, 2, "no such file"},
		{[]string{"--bogus"}, 2, "flag provided but not defined"},
	} {
		_, errOut, code := pwctl(tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d %q, want %d with %q", tt.args, code, errOut, tt.code, tt.want)
		}
	}
}

func TestGPWStatsPersonality(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gpw.sock")
	d := controltest.Start(t)
	d.Set(stats.ULRxBPDUs, 42)
	srv, err := statsrv.ServeGPW(path, "", d)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var out bytes.Buffer
	if code := gpwstats(&out, path); code != 0 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	// The reference tool's exact format: "gpwstats.ul_rx_bpdus   %20lld".
	want := "gpwstats.ul_rx_bpdus   " + strings.Repeat(" ", 18) + "42\n"
	lines := strings.SplitAfter(out.String(), "\n")
	if len(lines) != 13 || lines[2] != want || !strings.HasPrefix(lines[11], "gpwstats.dl_tx_errors  ") {
		t.Errorf("output:\n%s", out.String())
	}
	out.Reset()
	if code := gpwstats(&out, path+".none"); code != 255 || out.String() != "connect failed\n" {
		t.Errorf("no daemon: %d %q", code, out.String())
	}
}
