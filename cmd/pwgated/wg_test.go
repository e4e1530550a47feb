package main

// The pseudowire inside WireGuard, end to end: two pwgated through the
// radvd router, a stock wireguard-go peer, roaming, key rotation, a peer
// with a wrong key, and garbage on the WireGuard port.

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/dataplane/wg"
)

// wgStep is one step of a WireGuard test, run in order on the same sites.
type wgStep struct {
	name string
	f    func(*testing.T, *lab.Sites)
}

// runWG starts both sites' pwgated with the pseudowire inside WireGuard
// (bind: wireguard.bind) and runs steps until one fails.
func runWG(t *testing.T, bind string, steps []wgStep) {
	s := buildSites(t, lab.SitesOptions{Mode: "ip6", STP: true, WireGuard: true, WireGuardBind: bind})
	for _, site := range []*lab.Site{s.A, s.B} {
		if err := s.StartPwgated(site); err != nil {
			t.Fatal(err)
		}
	}
	for _, st := range steps {
		if !t.Run(st.name, func(t *testing.T) { st.f(t, s) }) {
			return
		}
	}
}

func TestWireGuardMode(t *testing.T) {
	runWG(t, "", []wgStep{
		{"session", testWGSession},
		{"ping", testPing},
		{"full-size frames", testWGFullSize},
		{"only udp on the access network", testWGOnlyUDP},
		{"vlan", testVLAN},
		{"host overlay", testWGHostOverlay},
		{"iperf3", testIperf},
		{"bpdus", testBPDUs},
		{"check_pwbpdu", testWGCheckPlugin},
		{"garbage on the port", testWGGarbage},
		{"stock wireguard-go peer", testWGStockPeer},
		{"roaming", testWGRoaming},
		{"key rotation", testWGKeyRotation},
		{"sigterm", testWGSIGTERM},
	})
}

// TestWireGuardXDPBind: both sites with wireguard.bind: xdp, WireGuard's
// UDP on an AF_XDP socket of the uplink: the session, frames of every size,
// only WireGuard on the access network, garbage counted, a stock
// wireguard-go peer (its kernel's socket on the other end), roaming, and
// nothing attached after SIGTERM.
func TestWireGuardXDPBind(t *testing.T) {
	runWG(t, "xdp", []wgStep{
		{"session", testWGXDPSession},
		{"ping", testPing},
		{"full-size frames", testWGFullSize},
		{"only udp on the access network", testWGOnlyUDP},
		{"host overlay", testWGHostOverlay},
		{"garbage on the port", testWGGarbage},
		{"stock wireguard-go peer", testWGStockPeer},
		{"roaming", testWGRoaming},
		{"sigterm", testWGSIGTERM},
	})
}

// testWGXDPSession: the session comes up over the XDP bind, the uplink has
// pwgated's program, and WireGuard's datagrams went through its socket.
func testWGXDPSession(t *testing.T, s *lab.Sites) {
	if err := s.WaitForwarding(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitSession(t, s, 15*time.Second)
	for _, site := range []*lab.Site{s.A, s.B} {
		if out, err := s.Exec(site.PW, "ip", "link", "show", "ul0"); err != nil || !strings.Contains(out, "xdp") {
			t.Fatalf("%s: the uplink has no XDP program:\n%s", site.Name, out)
		}
		c, _ := s.Counters(site)
		if c["wg_rx_datagrams"] == 0 || c["wg_tx_datagrams"] == 0 || c["ul_xdp_to_socket"] == 0 {
			t.Errorf("%s: wg_rx_datagrams %d, wg_tx_datagrams %d, ul_xdp_to_socket %d", site.Name, c["wg_rx_datagrams"], c["wg_tx_datagrams"], c["ul_xdp_to_socket"])
		}
	}
}

// wgStatus returns site's WireGuard status.
func wgStatus(t *testing.T, site *lab.Site) *client.WireGuard {
	t.Helper()
	st, err := client.FetchStatus(site.Socket, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st.WireGuard == nil {
		t.Fatalf("%s: no wireguard in status", site.Name)
	}
	return st.WireGuard
}

func waitSession(t *testing.T, s *lab.Sites, timeout time.Duration) {
	t.Helper()
	for _, site := range []*lab.Site{s.A, s.B} {
		for deadline := time.Now().Add(timeout); !wgStatus(t, site).Session; time.Sleep(100 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no WireGuard session after %v: %+v", site.Name, timeout, wgStatus(t, site))
			}
		}
	}
}

func testWGSession(t *testing.T, s *lab.Sites) {
	// Frames from the LAN (the hosts' bridges' BPDUs) start the handshake.
	if err := s.WaitForwarding(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitSession(t, s, 15*time.Second)
	w := wgStatus(t, s.A)
	if !w.Pseudowire || w.MTU != 1420 || len(w.Peers) != 1 || w.Peers[0].LastHandshake == nil || !w.Peers[0].Pseudowire {
		t.Fatalf("site A: %+v", w)
	}
	st, _ := client.FetchStatus(s.A.Socket, time.Second)
	if !st.Ready || !strings.Contains(st.Via, "WireGuard") {
		t.Fatalf("status: ready %v, via %q", st.Ready, st.Via)
	}
	if out, err := s.Exec(s.A.PW, "ip", "link", "show"); err != nil || strings.Contains(out, "ul0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 xdp") || !strings.Contains(out, "pwwg0") {
		t.Fatalf("uplink has an XDP program or pwwg0 is missing:\n%s", out)
	}
}

// testWGFullSize: 1514- and 1614-byte frames cross with don't-fragment
// both ways, hosts at MTU 1500 and 1600: the tunnel's MTU (1420) does not
// reach the LAN, pwgate splits inside the tunnel.
func testWGFullSize(t *testing.T, s *lab.Sites) {
	before, _ := s.Counters(s.A)
	for _, size := range []string{"1472", "1572"} {
		for _, p := range [][2]*lab.Site{{s.A, s.B}, {s.B, s.A}} {
			if out, err := ping(s, p[0].Host, "-M", "do", "-s", size, "-c", "3", "-i", "0.2", p[1].HostIP); err != nil {
				t.Fatalf("%s -> %s, %s bytes: %v\n%s", p[0].Name, p[1].Name, size, err, out)
			}
		}
	}
	after, _ := s.Counters(s.A)
	if d := after["ul_tx_fragments"] - before["ul_tx_fragments"]; d < 24 {
		t.Errorf("site A sent %d fragments for 12 large frames", d)
	}
}

// testWGOnlyUDP: what crosses the access network between the sites is
// WireGuard's UDP, never a pseudowire packet or an inner frame.
func testWGOnlyUDP(t *testing.T, s *lab.Sites) {
	stop := capture(t, s, "net", "a", "not icmp6")
	if out, err := ping(s, s.A.Host, "-c", "3", "-i", "0.2", "-s", "1400", s.B.HostIP); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	pkts := stop()
	if len(pkts) < 6 {
		t.Fatalf("captured %d packets", len(pkts))
	}
	for i, p := range pkts {
		// Ethernet, IPv6 with next header UDP (17), port 51820 on one side.
		if len(p) < 14+40+8 || p[12] != 0x86 || p[13] != 0xdd || p[14+6] != 17 {
			t.Fatalf("packet %d is not IPv6/UDP: %x", i, p[:min(len(p), 64)])
		}
		sp, dp := int(p[54])<<8|int(p[55]), int(p[56])<<8|int(p[57])
		if sp != lab.WGPort && dp != lab.WGPort {
			t.Fatalf("packet %d: UDP %d -> %d", i, sp, dp)
		}
		if bytes.Contains(p, []byte{0x02, 0xaa, 0, 0, 0, 1}) || bytes.Contains(p, net.ParseIP(s.B.HostIP).To4()) {
			t.Fatalf("packet %d carries something of the inner frame in clear", i)
		}
	}
}

// testWGHostOverlay: the hosts' own traffic over the overlay (pwwg0), as
// with kernel WireGuard.
func testWGHostOverlay(t *testing.T, s *lab.Sites) {
	for _, dst := range []string{lab.OverlayB, lab.Overlay4B} {
		if out, err := ping(s, s.A.PW, "-c", "3", "-i", "0.2", dst); err != nil {
			t.Fatalf("pwa -> %s: %v\n%s", dst, err, out)
		}
	}
	c, _ := s.Counters(s.A)
	if c["wg_host_to_tunnel"] == 0 || c["wg_tunnel_to_host"] == 0 {
		t.Errorf("host counters: %d to, %d from the tunnel", c["wg_host_to_tunnel"], c["wg_tunnel_to_host"])
	}
}

// testWGCheckPlugin: the Nagios check on site B sees site A's bridge's
// BPDUs through the tunnel (A's bridge is root again after testBPDUs made
// B root for a while: the first intervals may still be quiet).
func testWGCheckPlugin(t *testing.T, s *lab.Sites) {
	var out []byte
	var err error
	for i := 0; i < 4; i++ {
		out, err = exec.Command(toolBin(t, "check_pwbpdu"), "--socket", s.B.Socket, "-i", "3", "-w", "1:", "-c", "1:").CombinedOutput()
		if err == nil && strings.HasPrefix(string(out), "BPDU OK") {
			return
		}
	}
	t.Fatalf("check_pwbpdu on site B: %v: %s", err, out)
}

// toolBin builds one of pwgate's commands (../name) once.
func toolBin(t *testing.T, name string) string {
	t.Helper()
	bin := filepath.Join(filepath.Dir(pwgatedBin), name)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if out, err := exec.Command("go", "build", "-o", bin, "../"+name).CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, out)
	}
	return bin
}

// testWGGarbage: truncated and random datagrams on site A's WireGuard
// port are dropped and counted, and the tunnel carries on.
func testWGGarbage(t *testing.T, s *lab.Sites) {
	before, _ := s.Counters(s.A)
	err := s.Do("net", func() error {
		c, err := net.Dial("udp6", fmt.Sprintf("[%s]:%d", lab.AddrA, lab.WGPort))
		if err != nil {
			return err
		}
		defer c.Close()
		msgs := [][]byte{{}, {1}, {1, 0, 0, 0}, append([]byte{1, 0, 0, 0}, make([]byte, 100)...), {4, 0, 0, 0, 1, 2}, {9, 9, 9, 9, 9, 9, 9, 9}}
		for i := 0; i < 200; i++ {
			b := make([]byte, i*7%1500)
			for j := range b {
				b[j] = byte(i*31 + j)
			}
			msgs = append(msgs, b)
		}
		for _, m := range msgs {
			c.Write(m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	after, _ := s.Counters(s.A)
	if d := after["wg_rx_invalid"] - before["wg_rx_invalid"]; d < 150 {
		t.Errorf("wg_rx_invalid rose by %d for ~200 bad datagrams", d)
	}
	if s.A.Proc.Exited() {
		t.Fatal("pwgated exited")
	}
	testPing(t, s)
}

// testWGStockPeer: Debian's wireguard-go and wireguard-tools as a peer of
// site A: keys from wg genkey, a handshake, ping and iperf3 between its
// wg0 and site A's pwwg0. Adding it to site A by a reload leaves the
// session with site B as it was. A peer with a wrong key is then refused
// and counted, and nothing else is disturbed.
func testWGStockPeer(t *testing.T, s *lab.Sites) {
	for _, prog := range []string{"wireguard-go", "wg"} {
		if _, err := exec.LookPath(prog); err != nil {
			t.Skipf("%s not installed (Debian packages wireguard-go, wireguard-tools)", prog)
		}
	}
	// The peer's namespace hangs off the router on 2001:db8:c::/64.
	if err := s.AddNS("wgpeer"); err != nil {
		t.Fatal(err)
	}
	if err := s.Veth("wgpeer", "eth0", "net", "c", 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Script("net", "ip -6 addr add 2001:db8:c::1/64 dev c nodad"); err != nil {
		t.Fatal(err)
	}
	// A lab peer that sends to pwgate finishes its UDP checksums itself, as
	// a NIC would (the XDP bind checks them).
	if err := s.Script("wgpeer", "ip -6 addr add 2001:db8:c::c/64 dev eth0 nodad", "ip -6 route add default via 2001:db8:c::1", "ethtool -K eth0 tx off"); err != nil {
		t.Fatal(err)
	}
	dir := s.Opt.Dir
	priv, err := s.Exec("", "wg", "genkey")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "stock.key")
	os.WriteFile(keyFile, []byte(priv), 0o600)
	pub := strings.TrimSpace(pipe(t, priv, "wg", "pubkey"))
	if _, err := s.Start("wgpeer", "env", "WG_PROCESS_FOREGROUND=1", "wireguard-go", "wg0"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := s.Exec("wgpeer", "wg", "show", "wg0"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("wireguard-go did not come up")
		}
	}
	if err := s.Script("wgpeer",
		fmt.Sprintf("wg set wg0 private-key %s listen-port %d peer %s endpoint [%s]:%d allowed-ips %s/128 persistent-keepalive 25",
			keyFile, lab.WGPort, s.A.WGKey.PublicKey(), lab.AddrA, lab.WGPort, lab.OverlayA),
		"ip -6 addr add fd00:77::3/64 dev wg0 nodad", "ip link set wg0 up"); err != nil {
		t.Fatal(err)
	}
	b0 := wgStatus(t, s.A).Peers[0].LastHandshake
	// Site A learns the peer by a reload.
	conf := strings.Replace(s.ConfigFor(s.A, s.A.Peer), "      persistent_keepalive: 25\n",
		fmt.Sprintf("      persistent_keepalive: 25\n    - public_key: %q\n      allowed_ips: [fd00:77::3/128]\n", pub), 1)
	reloadWith(t, s.A, conf)
	if got := wgStatus(t, s.A).Peers; len(got) != 2 || got[0].LastHandshake == nil || !got[0].LastHandshake.Equal(*b0) {
		t.Fatalf("after adding a peer, site B's session changed: %+v (before %v)", got, b0)
	}
	// The stock peer tried a handshake before site A knew it (its
	// keepalive) and waits 5 s before trying again: allow for that.
	if out, err := ping(s, "wgpeer", "-c", "3", "-i", "0.2", "-w", "12", lab.OverlayA); err != nil {
		t.Fatalf("stock peer -> pwwg0: %v\n%s", err, out)
	}
	srv, err := s.Start(s.A.PW, "iperf3", "-s", "-1", "-B", lab.OverlayA)
	if err != nil {
		t.Fatal(err)
	}
	var out string
	for i := 0; i < 30; i++ {
		if out, err = s.Exec("wgpeer", "iperf3", "-c", lab.OverlayA, "-t", "2", "--connect-timeout", "3000"); !strings.Contains(out, "unable to connect") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("iperf3 from the stock peer: %v\n%s", err, out)
	}
	srv.Wait(5 * time.Second)
	testPing(t, s)

	// A peer with a wrong key: site A does not know this key.
	before, _ := s.Counters(s.A)
	wrong, _ := wg.GenerateKey()
	os.WriteFile(keyFile, []byte(wrong.String()+"\n"), 0o600)
	if err := s.Script("wgpeer", "wg set wg0 private-key "+keyFile); err != nil {
		t.Fatal(err)
	}
	ping(s, "wgpeer", "-c", "2", "-i", "0.5", lab.OverlayA)
	for deadline := time.Now().Add(8 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		after, _ := s.Counters(s.A)
		if after["wg_invalid_handshakes"] > before["wg_invalid_handshakes"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no invalid handshake counted: %d -> %d", before["wg_invalid_handshakes"], after["wg_invalid_handshakes"])
		}
	}
	testPing(t, s)
}

// pipe runs prog with input on stdin.
func pipe(t *testing.T, input string, prog string, args ...string) string {
	t.Helper()
	cmd := exec.Command(prog, args...)
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", prog, err)
	}
	return string(out)
}

// reloadWith writes conf as site's configuration and reloads it.
func reloadWith(t *testing.T, site *lab.Site, conf string) {
	t.Helper()
	count := func(what string) int { return strings.Count(site.Proc.Out.String(), what) }
	ok, failed := count("msg=reloaded"), count("reload failed")
	if err := os.WriteFile(site.Config, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := site.Proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); count("msg=reloaded") == ok; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) || count("reload failed") > failed {
			t.Fatalf("reload of %s did not happen:\n%s", site.Name, site.Proc.Out.String())
		}
	}
}

// testWGRoaming: site B's uplink address changes; B's next packets come
// from the new one, and site A follows (WireGuard roaming): traffic
// resumes and A's status shows the new endpoint.
func testWGRoaming(t *testing.T, s *lab.Sites) {
	if err := s.Script(s.B.PW, "ip -6 addr add 2001:db8:b::bb/64 dev ul0 nodad", "ip -6 addr del "+lab.AddrB+"/64 dev ul0"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		ping(s, s.B.Host, "-c", "1", "-W", "1", s.A.HostIP)
		if ep := wgStatus(t, s.A).Peers[0].Endpoint; ep == "[2001:db8:b::bb]:51820" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("site A's endpoint for B is %q after B moved", wgStatus(t, s.A).Peers[0].Endpoint)
		}
	}
	testPing(t, s)
}

// testWGKeyRotation: both sites get new keys by a reload; the tunnel comes
// back with a new handshake, and a bad key file on a reload changes
// nothing.
func testWGKeyRotation(t *testing.T, s *lab.Sites) {
	// A key file others may read is refused; the running tunnel stays.
	os.Chmod(s.A.WGKeyFile, 0o644)
	n := strings.Count(s.A.Proc.Out.String(), "reload failed")
	s.A.Proc.Signal(syscall.SIGHUP)
	for deadline := time.Now().Add(5 * time.Second); strings.Count(s.A.Proc.Out.String(), "reload failed") == n; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("a group-readable key file was not refused")
		}
	}
	if !strings.Contains(s.A.Proc.Out.String(), "readable by group or others") {
		t.Errorf("the refusal does not say why:\n%s", s.A.Proc.Out.String())
	}
	os.Chmod(s.A.WGKeyFile, 0o600)
	testPing(t, s)

	for _, site := range []*lab.Site{s.A, s.B} {
		k, _ := wg.GenerateKey()
		site.WGKey = k
		if err := os.WriteFile(site.WGKeyFile, []byte(k.String()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// B moved in testWGRoaming; A's configuration follows it.
	confA := strings.Replace(s.ConfigFor(s.A, s.A.Peer), lab.AddrB+"]", "2001:db8:b::bb]", 1)
	reloadWith(t, s.A, confA)
	reloadWith(t, s.B, s.ConfigFor(s.B, s.B.Peer))
	waitSession(t, s, 20*time.Second)
	if got := wgStatus(t, s.A).PublicKey; got != s.A.WGKey.PublicKey().String() {
		t.Fatalf("site A's public key %s, want the new %s", got, s.A.WGKey.PublicKey())
	}
	testPing(t, s)
}

// testWGSIGTERM: both stop cleanly: no XDP program, no pwwg0, no socket.
func testWGSIGTERM(t *testing.T, s *lab.Sites) {
	testSIGTERM(t, s)
	for _, site := range []*lab.Site{s.A, s.B} {
		if out, _ := s.Exec(site.PW, "ip", "link", "show"); strings.Contains(out, "pwwg0") {
			t.Errorf("pwwg0 left in %s:\n%s", site.PW, out)
		}
	}
}
