package main

// Integration tests: real pwgated processes in network namespaces, real
// hosts with STP bridges, and in ip6 mode a real router with radvd. They
// need root and skip without it.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/dataplane/frame/frametest"
)

var pwgatedBin string

func TestMain(m *testing.M) {
	if os.Getenv(speakerEnv) != "" {
		os.Exit(runSpeaker())
	}
	if lab.IsRoot() {
		dir, err := os.MkdirTemp("", "pwgated-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		pwgatedBin = filepath.Join(dir, "pwgated")
		if out, err := exec.Command("go", "build", "-o", pwgatedBin, ".").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build pwgated: %v\n%s", err, out)
			os.Exit(1)
		}
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

var labSeq atomic.Int32

// newLab returns a lab that is torn down when the test ends, however it
// ends.
func newLab(t *testing.T) *lab.Lab {
	t.Helper()
	if testing.Short() || !lab.IsRoot() {
		t.Skip("integration test: needs root for network namespaces and XDP, and not -short")
	}
	l := lab.New(fmt.Sprintf("pwt%d-%d-", os.Getpid(), labSeq.Add(1)))
	if testing.Verbose() {
		l.Log = t.Logf
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("tear down: %v", err)
		}
	})
	return l
}

func newSites(t *testing.T, mode string) *lab.Sites {
	t.Helper()
	s := buildSites(t, lab.SitesOptions{Mode: mode, STP: true})
	startSites(t, s)
	return s
}

// buildSites builds a two-site lab (o's binary and directory filled in)
// whose appliances' logs are shown when the test fails.
func buildSites(t *testing.T, o lab.SitesOptions) *lab.Sites {
	t.Helper()
	l := newLab(t)
	o.Pwgated, o.Dir = pwgatedBin, t.TempDir()
	s, err := lab.NewSites(l, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, site := range []*lab.Site{s.A, s.B} {
				if site.Proc != nil {
					t.Logf("pwgated %s log:\n%s", site.Name, site.Proc.Out.String())
				}
			}
		}
	})
	return s
}

// startSites starts both appliances and waits until frames cross.
func startSites(t *testing.T, s *lab.Sites) {
	t.Helper()
	for _, site := range []*lab.Site{s.A, s.B} {
		if err := s.StartPwgated(site); err != nil {
			t.Fatal(err)
		}
	}
	for _, site := range []*lab.Site{s.A, s.B} {
		if err := s.WaitReady(site, 20*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WaitForwarding(15 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestEthMode(t *testing.T) { runSuite(t, newSites(t, "eth")) }

func TestIP6Mode(t *testing.T) { runSuite(t, newSites(t, "ip6")) }

func runSuite(t *testing.T, s *lab.Sites) {
	steps := []struct {
		name string
		f    func(*testing.T, *lab.Sites)
	}{
		{"port settings", testPortSettings},
		{"reference frames", testReferenceFrames},
		{"ping", testPing},
		{"xdp counters", testXDPCounters},
		{"fragmented ping", testFragmentedPing},
		{"vlan", testVLAN},
		{"extension headers", testExtensionHeaders},
		{"next hop change", testNextHopChange},
		{"broadcast and multicast", testBroadcastMulticast},
		{"iperf3", testIperf},
		{"bpdus", testBPDUs},
		{"stranger", testStranger},
		{"reload", testReload},
		{"config apply", testConfigApply},
		{"sigterm", testSIGTERM},
	}
	for _, st := range steps {
		if !t.Run(st.name, func(t *testing.T) { st.f(t, s) }) {
			return // later steps need a working pseudowire
		}
	}
}

func ping(s *lab.Sites, ns string, args ...string) (string, error) {
	return s.Exec(ns, append([]string{"ping", "-q", "-W", "1"}, args...)...)
}

func testPing(t *testing.T, s *lab.Sites) {
	for _, p := range [][2]*lab.Site{{s.A, s.B}, {s.B, s.A}} {
		if out, err := ping(s, p[0].Host, "-c", "3", "-i", "0.2", p[1].HostIP); err != nil {
			t.Fatalf("%s -> %s: %v\n%s", p[0].Name, p[1].Name, err, out)
		}
	}
}

// testFragmentedPing sends 1600-byte IP packets (1614-byte frames) with
// don't-fragment: only the pseudowire's own split carries them.
func testFragmentedPing(t *testing.T, s *lab.Sites) {
	before, _ := s.Counters(s.A)
	for _, p := range [][2]*lab.Site{{s.A, s.B}, {s.B, s.A}} {
		if out, err := ping(s, p[0].Host, "-M", "do", "-s", "1572", "-c", "3", "-i", "0.2", p[1].HostIP); err != nil {
			t.Fatalf("%s -> %s: %v\n%s", p[0].Name, p[1].Name, err, out)
		}
	}
	after, _ := s.Counters(s.A)
	if d := after["ul_tx_fragments"] - before["ul_tx_fragments"]; d < 12 {
		t.Errorf("site A sent %d fragments for 6 large frames", d)
	}
	if d := after["ul_rx_reassembled"] - before["ul_rx_reassembled"]; d < 6 {
		t.Errorf("site A reassembled %d of 6 large frames", d)
	}
}

// testVLAN sends 802.1Q- and 802.1ad-tagged frames, small and large enough
// to be split, from each host's link and compares what the far host's link
// receives. (This kernel has no 802.1Q devices, so the hosts' own stacks
// cannot tag; the frames are real frames on the real links all the same.)
func testVLAN(t *testing.T, s *lab.Sites) {
	for _, p := range [][2]*lab.Site{{s.A, s.B}, {s.B, s.A}} {
		src := []byte{0x02, 0xcc, 0, 0, 0, p[0].Name[0]}
		frames := frametest.Tagged(src)
		stop := capture(t, s, p[1].Host, p[1].HostIf, fmt.Sprintf("ether src %x:%x:%x:%x:%x:%x", src[0], src[1], src[2], src[3], src[4], src[5]))
		if err := s.Do(p[0].Host, func() error { return lab.SendRaw(p[0].HostIf, frames...) }); err != nil {
			t.Fatal(err)
		}
		got := stop()
		if len(got) != len(frames) {
			t.Fatalf("%s -> %s: %d of %d tagged frames arrived", p[0].Name, p[1].Name, len(got), len(frames))
		}
		for i := range got {
			if !bytes.Equal(got[i], frames[i]) {
				t.Errorf("%s -> %s: tagged frame %d arrived as %x", p[0].Name, p[1].Name, i, got[i])
			}
		}
	}
}

func testBroadcastMulticast(t *testing.T, s *lab.Sites) {
	out, err := s.Exec(s.A.Host, "ping", "-b", "-c", "2", "-i", "0.3", "-W", "1", "10.77.0.255")
	if err != nil || !strings.Contains(out, "from "+s.B.HostIP) {
		t.Fatalf("broadcast ping not answered by host B: %v\n%s", err, out)
	}
	ll, err := linkLocal(s, s.B.Host, s.B.LANIf)
	if err != nil {
		t.Fatal(err)
	}
	out, err = s.Exec(s.A.Host, "ping", "-6", "-c", "3", "-i", "0.3", "-W", "1", "ff02::1%"+s.A.LANIf)
	if !strings.Contains(out, "from "+ll) {
		t.Fatalf("IPv6 all-nodes multicast ping not answered by host B (%s): %v\n%s", ll, err, out)
	}
}

func linkLocal(s *lab.Sites, ns, ifname string) (string, error) {
	out, err := s.Exec(ns, "ip", "-6", "-o", "addr", "show", "dev", ifname, "scope", "link")
	if err != nil {
		return "", err
	}
	f := strings.Fields(out)
	for i, w := range f {
		if w == "inet6" && i+1 < len(f) {
			return strings.Split(f[i+1], "/")[0], nil
		}
	}
	return "", fmt.Errorf("no link-local address on %s: %s", ifname, out)
}

// testIperf runs TCP both ways and checks that no second went by without
// data: a stall in reassembly or buffer recycling would show as a zero.
func testIperf(t *testing.T, s *lab.Sites) {
	for _, reverse := range []bool{false, true} {
		srv, err := s.Start(s.B.Host, "iperf3", "-s", "-1", "-B", s.B.HostIP)
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"iperf3", "-c", s.B.HostIP, "-t", "4", "-J", "--connect-timeout", "3000"}
		if reverse {
			args = append(args, "-R")
		}
		var out string
		for i := 0; i < 30; i++ { // until the server listens
			if out, err = s.Exec(s.A.Host, args...); !strings.Contains(out, "unable to connect") {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("iperf3 (reverse=%v): %v\n%s", reverse, err, out)
		}
		var r struct {
			Intervals []struct {
				Sum struct {
					Bps float64 `json:"bits_per_second"`
				} `json:"sum"`
			} `json:"intervals"`
			End struct {
				Received struct {
					Bps float64 `json:"bits_per_second"`
				} `json:"sum_received"`
			} `json:"end"`
		}
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("iperf3 output: %v", err)
		}
		if len(r.Intervals) < 4 {
			t.Fatalf("iperf3 reported %d intervals:\n%s", len(r.Intervals), out)
		}
		for i, iv := range r.Intervals {
			if iv.Sum.Bps < 1e6 {
				t.Errorf("reverse=%v: interval %d carried %.0f bit/s: a stall", reverse, i, iv.Sum.Bps)
			}
		}
		t.Logf("iperf3 reverse=%v: %.0f Mbit/s", reverse, r.End.Received.Bps/1e6)
		srv.Wait(5 * time.Second)
	}
}

// testBPDUs checks that each site's bridge hears the other's BPDUs through
// the pseudowire, and that both appliances count them. In 802.1D only the
// root's ports send BPDUs on a link: host A's bridge is root by its
// priority; then host B's is made root.
func testBPDUs(t *testing.T, s *lab.Sites) {
	for _, root := range []*lab.Site{s.A, s.B} {
		other := s.B
		if root == s.B {
			other = s.A
			if _, err := s.Exec(root.Host, "ip", "link", "set", "dev", "br0", "type", "bridge", "priority", "0"); err != nil {
				t.Fatal(err)
			}
			defer s.Exec(root.Host, "ip", "link", "set", "dev", "br0", "type", "bridge", "priority", "32768")
		}
		rootID, err := s.Exec(root.Host, "cat", "/sys/class/net/br0/bridge/bridge_id")
		if err != nil {
			t.Fatal(err)
		}
		r0, _ := s.Counters(root)
		o0, _ := s.Counters(other)
		deadline := time.Now().Add(15 * time.Second)
		for {
			seen, _ := s.Exec(other.Host, "cat", "/sys/class/net/br0/bridge/root_id")
			r1, _ := s.Counters(root)
			o1, _ := s.Counters(other)
			if strings.TrimSpace(seen) == strings.TrimSpace(rootID) && r1["dl_rx_bpdus"] >= r0["dl_rx_bpdus"]+2 &&
				o1["ul_rx_bpdus"] >= o0["ul_rx_bpdus"]+2 && r1["dl_last_bpdu"] > 0 && o1["ul_last_bpdu"] > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("bridge %s does not see %s as root (sees %s, root is %s), or BPDUs not counted: %s dl_rx_bpdus %d->%d, %s ul_rx_bpdus %d->%d",
					other.Name, root.Name, strings.TrimSpace(seen), strings.TrimSpace(rootID),
					root.Name, r0["dl_rx_bpdus"], r1["dl_rx_bpdus"], other.Name, o0["ul_rx_bpdus"], o1["ul_rx_bpdus"])
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// testStranger sends a pseudowire packet to B from someone who is not A;
// B's XDP program drops and counts it.
func testStranger(t *testing.T, s *lab.Sites) {
	before, _ := s.Counters(s.B)
	inner := bytes.Repeat([]byte{0x5a}, 60)
	var err error
	if s.Opt.Mode == "eth" {
		pkt := append(mustMAC(lab.ULMAC), 0x02, 0x66, 0x66, 0x66, 0x66, 0x66, 0x96, 0xfc, 0, 0)
		err = s.Do("net", func() error { return lab.SendRaw("b", append(pkt, inner...)) })
	} else {
		err = s.Do("net", func() error {
			c, err := net.ListenPacket("ip6:252", "")
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.WriteTo(append([]byte{0, 0}, inner...), &net.IPAddr{IP: net.ParseIP(lab.AddrB)})
			return err
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		after, _ := s.Counters(s.B)
		if after["ul_drop_wrong_peer"] > before["ul_drop_wrong_peer"] {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stranger's packet not counted: ul_drop_wrong_peer %d -> %d", before["ul_drop_wrong_peer"], after["ul_drop_wrong_peer"])
		}
	}
}

func mustMAC(s string) []byte {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// testReload: a bad file on SIGHUP changes nothing; a good one changes the
// peer without a restart.
func testReload(t *testing.T, s *lab.Sites) {
	a := s.A
	good, err := os.ReadFile(a.Config)
	if err != nil {
		t.Fatal(err)
	}
	hup := func(content string) {
		t.Helper()
		if err := os.WriteFile(a.Config, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := a.Proc.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	waitLog := func(what string, n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); strings.Count(a.Proc.Out.String(), what) < n; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("log does not say %q %d times:\n%s", what, n, a.Proc.Out.String())
			}
		}
	}
	pid := a.Proc.Cmd.Process.Pid
	hup(string(good) + "bogus_key: 1\n")
	waitLog("reload failed", 1)
	if !strings.Contains(a.Proc.Out.String(), "bogus_key: unknown key") {
		t.Errorf("reload error does not name the key:\n%s", a.Proc.Out.String())
	}
	testPing(t, s)

	other := map[string]string{"eth": "02:70:63:61:70:99", "ip6": "2001:db8:b::99"}[s.Opt.Mode]
	hup(s.ConfigFor(a, other))
	waitLog("msg=reloaded", 1)
	if st, err := client.FetchStatus(a.Socket, time.Second); err != nil || st.Peer != other {
		t.Fatalf("status after reload: peer %q, %v", st.Peer, err)
	}
	if out, err := ping(s, a.Host, "-c", "2", "-i", "0.2", s.B.HostIP); err == nil {
		t.Fatalf("ping crosses with the peer changed to %s:\n%s", other, out)
	}
	hup(string(good))
	waitLog("msg=reloaded", 2)
	if err := s.WaitReady(a, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	testPing(t, s)
	if a.Proc.Cmd.Process.Pid != pid || a.Proc.Exited() {
		t.Fatal("pwgated restarted during reload")
	}
}

// testConfigApply changes site A's configuration as pwctl config does:
// a change that cuts the pseudowire, applied with a confirmation window
// and not confirmed, rolls itself back and traffic returns; a confirmed
// change stays; a file that fails the check never reaches the box.
func testConfigApply(t *testing.T, s *lab.Sites) {
	a := s.A
	good, err := os.ReadFile(a.Config)
	if err != nil {
		t.Fatal(err)
	}
	do := func(q client.ConfigRequest) (client.ConfigAnswer, error) {
		q.Who = "e2e test"
		return client.ConfigDo(a.Socket, q, time.Minute)
	}
	other := map[string]string{"eth": "02:70:63:61:70:99", "ip6": "2001:db8:b::99"}[s.Opt.Mode]
	const window = 3 * time.Second
	applied := time.Now()
	ans, err := do(client.ConfigRequest{Verb: "apply", File: s.ConfigFor(a, other), Confirm: window.Seconds(), Message: "cut"})
	if err != nil || ans.Pending == nil {
		t.Fatalf("apply: %+v, %v", ans, err)
	}
	if st, err := client.FetchStatus(a.Socket, time.Second); err != nil || st.Peer != other || st.ConfigPending == nil {
		t.Fatalf("status after apply: peer %q, pending %v, %v", st.Peer, st.ConfigPending, err)
	}
	if out, err := ping(s, a.Host, "-c", "2", "-i", "0.2", s.B.HostIP); err == nil {
		t.Fatalf("ping crosses with the peer changed to %s:\n%s", other, out)
	}
	// Not confirmed: back within the window and one reload.
	for {
		if _, err := ping(s, a.Host, "-c", "1", s.B.HostIP); err == nil {
			break
		}
		if time.Since(applied) > window+10*time.Second {
			t.Fatalf("traffic did not return %v after an unconfirmed change:\n%s", time.Since(applied), a.Proc.Out.String())
		}
	}
	t.Logf("traffic back %v after a change with a %v window", time.Since(applied).Round(100*time.Millisecond), window)
	if b, _ := os.ReadFile(a.Config); !bytes.Equal(b, good) {
		t.Fatalf("the file after the rollback:\n%s", b)
	}
	if !strings.Contains(a.Proc.Out.String(), "change rolled back") {
		t.Errorf("the rollback is not logged:\n%s", a.Proc.Out.String())
	}
	// Confirmed: it stays after its window.
	kept := string(good) + "# confirmed change\n"
	if ans, err = do(client.ConfigRequest{Verb: "apply", File: kept, Confirm: 1, Message: "kept"}); err != nil {
		t.Fatal(err)
	}
	if _, err := do(client.ConfigRequest{Verb: "confirm"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	if b, _ := os.ReadFile(a.Config); string(b) != kept {
		t.Fatalf("a confirmed change did not stay:\n%s", b)
	}
	st, err := client.FetchStatus(a.Socket, time.Second)
	if err != nil || st.ConfigRevision != ans.Revision || st.ConfigPending != nil {
		t.Errorf("status: revision %d (want %d), pending %v, %v", st.ConfigRevision, ans.Revision, st.ConfigPending, err)
	}
	// A bad file: refused with the check's error, the file untouched.
	if _, err := do(client.ConfigRequest{Verb: "apply", File: kept + "bogus_key: 1\n"}); err == nil || !strings.Contains(err.Error(), "bogus_key: unknown key") {
		t.Errorf("a bad file: %v", err)
	}
	if b, _ := os.ReadFile(a.Config); string(b) != kept {
		t.Fatalf("a bad file reached the configuration:\n%s", b)
	}
	h, err := do(client.ConfigRequest{Verb: "history"})
	if err != nil || len(h.History) != 3 || !h.History[0].Running || h.History[0].Message != "kept" || h.History[1].Message != "cut" {
		t.Errorf("history %+v, %v", h.History, err)
	}
	testPing(t, s)
	// Back to the file the suite started with, for the steps after.
	if _, err := do(client.ConfigRequest{Verb: "apply", File: string(good)}); err != nil {
		t.Fatal(err)
	}
}

// testSIGTERM: both appliances stop with status 0 and leave no XDP program,
// no process and no socket behind, and the port settings they changed are
// back.
func testSIGTERM(t *testing.T, s *lab.Sites) {
	for _, site := range []*lab.Site{s.A, s.B} {
		code, err := s.StopPwgated(site)
		if err != nil || code != 0 {
			t.Fatalf("pwgated %s: exit %d, %v\n%s", site.Name, code, err, site.Proc.Out.String())
		}
		if out, _ := s.Exec(site.PW, "ip", "link", "show"); strings.Contains(out, "xdp") {
			t.Errorf("XDP program left on %s:\n%s", site.PW, out)
		}
		if on := offload(t, s, site.PW, "dl0", "rx-vlan-offload"); on != "on" {
			t.Errorf("%s: dl0 rx-vlan-offload %s after exit, want on again", site.PW, on)
		}
		if out, _ := s.Exec(site.PW, "ip", "link", "show", "dl0"); strings.Contains(out, "PROMISC") || !strings.Contains(out, "mtu 1500 ") {
			t.Errorf("%s: dl0 still promiscuous or not back at MTU 1500 after exit:\n%s", site.PW, out)
		}
		if _, err := os.Stat(site.Socket); err == nil {
			t.Errorf("socket %s left behind", site.Socket)
		}
	}
	if out, err := exec.Command("pgrep", "-f", pwgatedBin).Output(); err == nil {
		t.Errorf("pwgated processes left: %s", out)
	}
}

// capture runs tcpdump on ifname in namespace ns until stop is called, and
// returns the frames it saw.
func capture(t *testing.T, s *lab.Sites, ns, ifname, filter string) (stop func() [][]byte) {
	t.Helper()
	return captureNS(t, s.Lab, ns, ifname, filter)
}

// captureNS captures on ifname in namespace ns until stop is called.
func captureNS(t *testing.T, l *lab.Lab, ns, ifname, filter string) (stop func() [][]byte) {
	t.Helper()
	file := filepath.Join(t.TempDir(), fmt.Sprintf("%s-%s.pcap", ns, ifname))
	p, err := l.Start(ns, "tcpdump", "--immediate-mode", "-i", ifname, "-U", "-s", "0", "-w", file, filter)
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(p.Out.String(), "listening on"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) || p.Exited() {
			t.Fatalf("tcpdump did not start: %s", p.Out.String())
		}
	}
	return func() [][]byte {
		time.Sleep(300 * time.Millisecond)
		p.Signal(syscall.SIGINT)
		p.Wait(5 * time.Second)
		frames, err := frametest.ReadPcap(file)
		if err != nil {
			t.Fatal(err)
		}
		return frames
	}
}

var refSrc = []byte{0x02, 0xaa, 0, 0, 0, 0x01}

// ours picks, from captured uplink packets, the reference frames' pieces:
// those whose inner source is the captures' host A, and the second halves
// that follow them.
func ours(pkts [][]byte, ov int) [][]byte {
	var out [][]byte
	prevFirst := -1
	for _, p := range pkts {
		if len(p) < ov {
			continue
		}
		cw := binary.LittleEndian.Uint16(p[ov-2:])
		switch {
		case cw&0xc000 == 0xc000:
			if prevFirst == int(cw&0x3fff) {
				out = append(out, p)
			}
			prevFirst = -1
		case len(p) >= ov+12 && bytes.Equal(p[ov+6:ov+12], refSrc):
			out = append(out, p)
			prevFirst = -1
			if cw&0x8000 != 0 {
				prevFirst = int(cw & 0x3fff)
			}
		}
	}
	return out
}

// sameButID compares packets byte for byte except the fragment ID bits.
func sameButID(t *testing.T, what string, got, want [][]byte, ov int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d packets, the reference has %d", what, len(got), len(want))
	}
	for i := range got {
		g, w := bytes.Clone(got[i]), bytes.Clone(want[i])
		if len(g) >= ov && len(w) >= ov {
			g[ov-2], g[ov-1] = 0, g[ov-1]&0xc0
			w[ov-2], w[ov-1] = 0, w[ov-1]&0xc0
		}
		if !bytes.Equal(g, w) {
			t.Errorf("%s: packet %d differs from the reference:\n got %x\nwant %x", what, i+1, g, w)
		}
	}
}

// testReferenceFrames sends the reference captures' five frames into
// site A's LAN and compares what crosses the access network and what site B
// delivers with what the reference sent and delivered.
func testReferenceFrames(t *testing.T, s *lab.Sites) {
	mode := s.Opt.Mode
	ov, filter := 16, "ether proto 0x96fc"
	if mode == "ip6" {
		ov, filter = 56, "ip6 proto 252"
	}
	if mode == "ip6" {
		// The router resolves B's address first: while it resolves, the
		// kernel keeps only three packets for it and drops the rest.
		s.Exec("net", "ping", "-6", "-c", "1", "-W", "1", lab.AddrB)
	}
	stopUL := capture(t, s, "net", "a", filter)
	var stopULIn func() [][]byte
	if mode == "ip6" {
		stopULIn = capture(t, s, "net", "b", filter)
	}
	stopDL := capture(t, s, s.B.Host, s.B.HostIf, "ether src 02:aa:00:00:00:01")
	in := frametest.Reference(t, mode+"-a-dl-in")
	if err := s.Do(s.A.Host, func() error { return lab.SendRaw(s.A.HostIf, in...) }); err != nil {
		t.Fatal(err)
	}
	sameButID(t, "uplink of A", ours(stopUL(), ov), frametest.Reference(t, mode+"-a-ul-out"), ov)
	if stopULIn != nil {
		sameButID(t, "uplink of B after the router", ours(stopULIn(), ov), frametest.Reference(t, "ip6-b-ul-in"), ov)
	}
	got, want := stopDL(), frametest.Reference(t, mode+"-b-dl-out")
	if len(got) != len(want) {
		t.Fatalf("B delivered %d frames, the reference %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Errorf("B delivered frame %d as %x", i+1, got[i])
		}
	}
}

// offload returns "on" or "off" for feature (as ethtool -k names it) of
// ifname in namespace ns.
func offload(t *testing.T, s *lab.Sites, ns, ifname, feature string) string {
	t.Helper()
	out, err := s.Exec(ns, "ethtool", "-k", ifname)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == feature+":" {
			return f[1]
		}
	}
	t.Fatalf("ethtool -k %s has no %s:\n%s", ifname, feature, out)
	return ""
}

// testPortSettings: the LAN port's VLAN offload (on by default on veth, as
// on igb) is off while pwgated runs, so that tags reach XDP; the status
// says so. testVLAN then checks tagged frames byte for byte, testSIGTERM
// that the setting is back after exit.
func testPortSettings(t *testing.T, s *lab.Sites) {
	for _, site := range []*lab.Site{s.A, s.B} {
		if on := offload(t, s, site.PW, "dl0", "rx-vlan-offload"); on != "off" {
			t.Errorf("%s: dl0 rx-vlan-offload %s while pwgated runs", site.PW, on)
		}
		st, err := client.FetchStatus(site.Socket, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if out, _ := s.Exec(site.PW, "ip", "link", "show", "dl0"); !strings.Contains(out, "PROMISC") {
			t.Errorf("%s: dl0 not promiscuous while pwgated runs:\n%s", site.PW, out)
		}
		if !slices.Contains(st.NICChanges, "dl0 rx-vlan-hw-parse off") || !slices.Contains(st.NICChanges, "dl0 promisc on") ||
			!slices.Contains(st.NICChanges, "dl0 mtu 1600 (was 1500)") || st.XDPBind != "copy" {
			t.Errorf("%s: status says port settings %v, bind %q", site.PW, st.NICChanges, st.XDPBind)
		}
		if !strings.Contains(site.Proc.Out.String(), "setting=\"dl0 rx-vlan-hw-parse off\"") {
			t.Errorf("%s: the change is not logged:\n%s", site.PW, site.Proc.Out.String())
		}
	}
}

// testXDPCounters: the XDP programs' own counts are exported: the
// pseudowire packets steered to pwgated, and the uplink's other frames
// (neighbour discovery, router advertisements) passed to the kernel.
func testXDPCounters(t *testing.T, s *lab.Sites) {
	for _, site := range []*lab.Site{s.A, s.B} {
		c, err := s.Counters(site)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"ul_xdp_to_socket", "ul_xdp_to_kernel", "dl_xdp_to_socket"} {
			if c[name] == 0 {
				t.Errorf("%s: %s is 0", site.Name, name)
			}
		}
		if c["ul_xdp_to_socket"] < c["ul_rx_packets"] {
			t.Errorf("%s: XDP steered %d packets, pwgated received %d", site.Name, c["ul_xdp_to_socket"], c["ul_rx_packets"])
		}
	}
}

// testExtensionHeaders: a pseudowire packet from the peer's address behind
// an IPv6 destination options header is dropped in XDP and counted, not
// passed to the kernel (which would answer the peer with an ICMPv6 error).
func testExtensionHeaders(t *testing.T, s *lab.Sites) {
	if s.Opt.Mode != "ip6" {
		t.Skip("ip6 mode only")
	}
	before, _ := s.Counters(s.B)
	pkt := append(mustMAC(lab.ULMAC), mustMAC(lab.RouterMACB)...)
	pkt = append(pkt, 0x86, 0xdd)
	ip := make([]byte, 40)
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], 8+2+60)
	ip[6], ip[7] = 60, 63 // destination options, then hop limit
	copy(ip[8:], net.ParseIP(lab.AddrA))
	copy(ip[24:], net.ParseIP(lab.AddrB))
	pkt = append(pkt, ip...)
	pkt = append(pkt, 252, 0, 1, 4, 0, 0, 0, 0) // next header 252, PadN
	pkt = append(pkt, 0, 0)
	pkt = append(pkt, bytes.Repeat([]byte{0x5a}, 60)...)
	if err := s.Do("net", func() error { return lab.SendRaw("b", pkt) }); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		after, _ := s.Counters(s.B)
		if after["ul_drop_ext_headers"] == before["ul_drop_ext_headers"]+1 {
			// The hosts' bridges' BPDUs cross the pseudowire meanwhile
			// (every 2 s): whatever else pwgated received is this packet.
			rx, bpdus := after["ul_rx_packets"]-before["ul_rx_packets"], after["ul_rx_bpdus"]-before["ul_rx_bpdus"]
			if rx != bpdus {
				t.Errorf("the packet reached pwgated too: %d packets received, %d of them BPDUs", rx, bpdus)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ul_drop_ext_headers %d -> %d", before["ul_drop_ext_headers"], after["ul_drop_ext_headers"])
		}
	}
}

// testNextHopChange: the router's MAC changes; once the kernel's
// neighbour entry has the new MAC (here set as a router advertisement
// would), pwgated sends to it within 100 ms, and traffic crosses again.
func testNextHopChange(t *testing.T, s *lab.Sites) {
	if s.Opt.Mode != "ip6" {
		t.Skip("ip6 mode only")
	}
	st, err := client.FetchStatus(s.A.Socket, time.Second)
	if err != nil || st.NextHop != lab.RouterMACA || st.Via == "" {
		t.Fatalf("status before: next hop %s via %s, %v", st.NextHop, st.Via, err)
	}
	for _, mac := range []string{"02:00:00:00:0f:1a", lab.RouterMACA} {
		if _, err := s.Exec("net", "ip", "link", "set", "dev", "a", "address", mac); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if _, err := s.Exec(s.A.PW, "ip", "-6", "neigh", "replace", st.Via, "lladdr", mac, "dev", "ul0", "nud", "stale"); err != nil {
			t.Fatal(err)
		}
		for {
			now, err := client.FetchStatus(s.A.Socket, time.Second)
			if err == nil && now.NextHop == mac {
				break
			}
			if time.Since(start) > 100*time.Millisecond {
				t.Fatalf("next hop %s, not %s, %v after the neighbour entry changed", now.NextHop, mac, time.Since(start))
			}
			time.Sleep(2 * time.Millisecond)
		}
		t.Logf("next hop %s followed after %v", mac, time.Since(start))
		testPing(t, s)
	}
}

// TestPortGone: a port's link going down and up is logged and counted. A
// port removed under a running pwgated (a NIC unplugged,
// its driver unbound; here the veth deleted) leaves its AF_XDP socket dead
// for good. pwgated exits with status 1 within seconds, saying which port,
// for systemd to start it again on the port that is there then; it does
// not go on turning on a dead socket while its watchdog is fed.
func TestPortGone(t *testing.T) {
	s := newSites(t, "eth")
	// A link that goes down and comes back is logged and counted.
	if err := s.Script(s.A.PW, "ip link set ul0 down"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if err := s.Script(s.A.PW, "ip link set ul0 up"); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitForwarding(15 * time.Second); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Counters(s.A); err != nil || c["ul_link_downs"] != 1 || c["dl_link_downs"] != 0 {
		t.Errorf("after the uplink went down once: ul_link_downs %d, dl_link_downs %d (%v)", c["ul_link_downs"], c["dl_link_downs"], err)
	}
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(100 * time.Millisecond) { // looked at every second
		out := s.A.Proc.Out.String()
		if strings.Contains(out, `msg="port link down" port=ul0`) && strings.Contains(out, `msg="port link up" port=ul0`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the link's changes are not logged:\n%s", out)
		}
	}
	if _, err := s.Exec(s.A.PW, "ip", "link", "del", "ul0"); err != nil {
		t.Fatal(err)
	}
	code, err := s.A.Proc.Wait(5 * time.Second)
	if err != nil || code != 1 {
		t.Fatalf("pwgated a after its uplink went away: exit %d, %v\n%s", code, err, s.A.Proc.Out.String())
	}
	if out := s.A.Proc.Out.String(); !strings.Contains(out, "port ul0 went away") {
		t.Errorf("the log does not say which port went away:\n%s", out)
	}
	if out, _ := s.Exec(s.A.PW, "ip", "link", "show"); strings.Contains(out, "xdp") {
		t.Errorf("XDP program left:\n%s", out)
	}
	if out, _ := s.Exec(s.A.PW, "ip", "link", "show", "dl0"); strings.Contains(out, "PROMISC") || !strings.Contains(out, "mtu 1500 ") {
		t.Errorf("dl0 not put back:\n%s", out)
	}
	// Started again (as systemd does, with the unit's --wait-ports) while
	// the port is still missing, it waits for it, and takes the new one.
	p, err := s.Start(s.A.PW, pwgatedBin, "--config", s.A.Config, "--wait-ports", "30s")
	if err != nil {
		t.Fatal(err)
	}
	s.A.Proc = p
	time.Sleep(time.Second)
	if p.Exited() || !strings.Contains(p.Out.String(), "waiting for a port that is not there") {
		t.Fatalf("pwgated with --wait-ports and its uplink missing:\n%s", p.Out.String())
	}
	if err := s.Veth(s.A.PW, "ul0", "net", "a", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Script(s.A.PW, "ip link set dev ul0 address "+lab.ULMAC); err != nil {
		t.Fatal(err)
	}
	if err := s.Script("net", "ip link set dev a master br0"); err != nil {
		t.Fatal(err)
	}
	if err := lab.WaitPwgated(p, s.A.Socket, true, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitForwarding(15 * time.Second); err != nil {
		t.Fatalf("after the port came back: %v\n%s", err, p.Out.String())
	}
}
