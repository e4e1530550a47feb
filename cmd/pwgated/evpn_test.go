package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/control/client"
)

// newEVPN builds the EVPN lab and starts the pwgate sites.
func newEVPN(t *testing.T, o lab.EVPNOptions) *lab.EVPN {
	t.Helper()
	l := newLab(t)
	o.Pwgated, o.Dir = pwgatedBin, t.TempDir()
	if o.FRR {
		if _, err := os.Stat("/usr/lib/frr/bgpd"); err != nil {
			t.Fatal("FRR is not installed (make deps installs it)")
		}
	}
	e, err := lab.NewEVPN(l, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, s := range e.Sites {
			if s.Proc != nil {
				t.Logf("pwgated %s log:\n%s", s.Name, s.Proc.Out.String())
			}
			out, _ := e.Exec(s.NS, "ss", "-tan")
			t.Logf("site %s TCP:\n%s", s.Name, out)
			if s.FRR {
				out, _ := e.Vtysh(s, "show bgp l2vpn evpn route")
				t.Logf("FRR's EVPN routes:\n%s", out)
			}
		}
	})
	var pw []*lab.EVPNSite
	for _, s := range e.Sites {
		if !s.FRR {
			pw = append(pw, s)
		}
	}
	if err := e.StartPwgated(pw...); err != nil {
		t.Fatal(err)
	}
	return e
}

func evpnStatus(t *testing.T, s *lab.EVPNSite) *client.Status {
	t.Helper()
	st, err := client.FetchStatus(s.Socket, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st.EVPN == nil {
		t.Fatalf("site %s: no evpn status", s.Name)
	}
	return &st
}

func fdbOf(t *testing.T, s *lab.EVPNSite) []client.FDBEntry {
	t.Helper()
	f, err := client.FetchFDB(s.Socket, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// waitFDB waits until site s's FDB has mac in vni pointing at vtep
// ("local" or an address).
func waitFDB(t *testing.T, s *lab.EVPNSite, vni uint32, mac, vtep string, timeout time.Duration) client.FDBEntry {
	t.Helper()
	var last []client.FDBEntry
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		last = fdbOf(t, s)
		for _, e := range last {
			if e.VNI == vni && e.MAC == mac && e.VTEP == vtep {
				return e
			}
		}
	}
	t.Fatalf("site %s: %s in VNI %d not at %s after %v; fdb %+v", s.Name, mac, vni, vtep, timeout, last)
	return client.FDBEntry{}
}

func hostMAC(t *testing.T, e *lab.EVPN, ns, ifname string) string {
	t.Helper()
	out, err := e.Exec(ns, "cat", "/sys/class/net/"+ifname+"/address")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

func evpnPing(t *testing.T, e *lab.EVPN, from *lab.EVPNSite, to string, args ...string) {
	t.Helper()
	out, err := e.Exec(from.Host, append([]string{"ping", "-q", "-W", "1", "-c", "3", "-i", "0.2"}, append(args, to)...)...)
	if err != nil {
		t.Fatalf("%s -> %s: %v\n%s", from.Name, to, err, out)
	}
}

// evpnPingWithin pings like evpnPing until one succeeds or d passes: the
// first ping after the sessions come up, while the routes of the far
// site may still be on their way.
func evpnPingWithin(t *testing.T, e *lab.EVPN, from *lab.EVPNSite, to string, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(200 * time.Millisecond) {
		out, err := e.Exec(from.Host, "ping", "-q", "-W", "1", "-c", "3", "-i", "0.2", to)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s -> %s: %v\n%s", from.Name, to, err, out)
		}
	}
}

func counters(t *testing.T, s *lab.EVPNSite) map[string]uint64 {
	t.Helper()
	cs, err := client.FetchCounters(s.Socket, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]uint64{}
	for _, c := range cs {
		m[c.Name] = c.Value
	}
	return m
}

// TestVXLANStatic: two pwgates with static remotes and learning from
// frames, IPv4 underlay; bad VXLAN input.
func TestVXLANStatic(t *testing.T) {
	e := newEVPN(t, lab.EVPNOptions{Static: true})
	t.Run("ping", func(t *testing.T) {
		evpnPing(t, e, e.A, e.B.HostIP)
		evpnPing(t, e, e.B, e.A.HostIP)
	})
	t.Run("vlan", func(t *testing.T) { testVXLANVLAN(t, e) })
	t.Run("fdb", func(t *testing.T) {
		ma, mb := hostMAC(t, e, e.A.Host, "eth0"), hostMAC(t, e, e.B.Host, "eth0")
		waitFDB(t, e.A, 101, ma, "local", time.Second)
		got := waitFDB(t, e.A, 101, mb, e.B.VTEP, time.Second)
		if got.Origin != "data" {
			t.Errorf("remote MAC learned as %q, want data", got.Origin)
		}
		st := evpnStatus(t, e.A)
		if len(st.EVPN.VNIs) != 2 || len(st.EVPN.VTEPs) != 1 || !st.EVPN.VTEPs[0].Static || !st.EVPN.VTEPs[0].Resolved {
			t.Errorf("evpn status %+v", st.EVPN)
		}
		if st.EVPN.VNIs[0].MaxFrame != 1500+14-50 {
			t.Errorf("largest frame %d, want 1464 (1500-byte IPv4 underlay)", st.EVPN.VNIs[0].MaxFrame)
		}
		for _, cmd := range [][]string{{"fdb"}, {"evpn"}} {
			out, err := e.Exec("", append([]string{toolBin(t, "pwctl"), "--socket", e.A.Socket}, cmd...)...)
			if err != nil || !strings.Contains(out, mb) && cmd[0] == "fdb" {
				t.Errorf("pwctl %s: %v\n%s", cmd[0], err, out)
			}
		}
	})
	t.Run("too big", func(t *testing.T) {
		for _, l := range [][2]string{{e.A.Host, "eth0"}, {e.A.NS, "dl0"}} {
			e.Exec(l[0], "ip", "link", "set", l[1], "mtu", "1600")
			defer e.Exec(l[0], "ip", "link", "set", l[1], "mtu", fmt.Sprint(lab.EVPNHostMTU))
		}
		before := counters(t, e.A)["dl_drop_vxlan_too_big"]
		e.Exec(e.A.Host, "ping", "-q", "-c", "2", "-W", "1", "-M", "do", "-s", "1500", e.B.HostIP)
		if got := counters(t, e.A)["dl_drop_vxlan_too_big"] - before; got < 2 {
			t.Errorf("dl_drop_vxlan_too_big rose by %d for two 1528-byte frames", got)
		}
	})
	t.Run("bad input", func(t *testing.T) { testVXLANBadInput(t, e) })
}

// vxlanPacket builds an IPv4 VXLAN packet from src to site's VTEP.
func vxlanPacket(dstMAC []byte, src, dst string, vni uint32, payload []byte) []byte {
	inner := append(make([]byte, 8), payload...)
	inner[0] = 0x08
	binary.BigEndian.PutUint32(inner[4:], vni<<8)
	udp := make([]byte, 8)
	binary.BigEndian.PutUint16(udp[0:], 40000)
	binary.BigEndian.PutUint16(udp[2:], 4789)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(inner)))
	ip := make([]byte, 20)
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(inner)))
	copy(ip[12:], net.ParseIP(src).To4())
	copy(ip[16:], net.ParseIP(dst).To4())
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	eth := append(append(append([]byte{}, dstMAC...), 0x02, 0, 0, 0, 0, 0x99), 0x08, 0x00)
	return append(append(append(eth, ip...), udp...), inner...)
}

func testVXLANBadInput(t *testing.T, e *lab.EVPN) {
	ulMAC := mustMAC(hostMAC(t, e, e.A.NS, "ul0"))
	inner := make([]byte, 60)
	copy(inner, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x42, 0x08, 0x00})
	before := counters(t, e.A)
	frames := [][]byte{
		vxlanPacket(ulMAC, "10.0.0.99", e.A.VTEP, 101, inner),        // unknown VTEP: XDP drops it
		vxlanPacket(ulMAC, e.B.VTEP, e.A.VTEP, 999, inner),           // VNI not configured
		vxlanPacket(ulMAC, e.B.VTEP, e.A.VTEP, 101, nil)[:14+20+8+4], // truncated
	}
	// The truncated one's IP length must say what it has.
	tr := frames[2]
	binary.BigEndian.PutUint16(tr[14+2:], uint16(20+8+4))
	binary.BigEndian.PutUint16(tr[14+20+4:], 8+4)
	binary.BigEndian.PutUint16(tr[14+10:], 0)
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(tr[14+i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(tr[14+10:], ^uint16(sum))
	if err := e.Do("net", func() error { return lab.SendRaw("a", frames...) }); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"ul_drop_wrong_peer": 1, "ul_drop_no_vni": 1, "ul_drop_vxlan_truncated": 1}
	var after map[string]uint64
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		after = counters(t, e.A)
		ok := true
		for k, n := range want {
			ok = ok && after[k]-before[k] >= n
		}
		if ok {
			break
		}
	}
	for k, n := range want {
		if after[k]-before[k] < n {
			t.Errorf("%s rose by %d, want %d", k, after[k]-before[k], n)
		}
	}
	// Still working.
	evpnPing(t, e, e.A, e.B.HostIP)
}

// testVXLANVLAN sends frames tagged with VLAN 20 (VNI 202) and other VLANs
// from host A: VLAN 20's arrive at host B tagged 20, crossing as VNI 202
// without the tag; others are dropped (no VNI).
func testVXLANVLAN(t *testing.T, e *lab.EVPN) {
	src := []byte{0x02, 0xcc, 0, 0, 0, 0x20}
	var frames [][]byte
	for _, vlan := range []uint16{lab.EVPNVLAN, 30} {
		for _, size := range []int{64, 1000} {
			f := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, src...)
			f = binary.BigEndian.AppendUint16(f, 0x8100)
			f = binary.BigEndian.AppendUint16(f, vlan)
			f = binary.BigEndian.AppendUint16(f, 0x88b5)
			for len(f) < size {
				f = append(f, byte(len(f)))
			}
			frames = append(frames, f)
		}
	}
	before := counters(t, e.A)["dl_drop_no_vni"]
	stopWire := captureNS(t, e.Lab, "net", "b", "udp port 4789")
	stop := captureNS(t, e.Lab, e.B.Host, "eth0", "ether src 02:cc:00:00:00:20")
	if err := e.Do(e.A.Host, func() error { return lab.SendRaw("eth0", frames...) }); err != nil {
		t.Fatal(err)
	}
	got, wire := stop(), stopWire()
	if len(got) != 2 {
		t.Fatalf("%d of 2 VLAN 20 frames arrived", len(got))
	}
	for i, g := range got {
		if !bytes.Equal(g, frames[i]) {
			t.Errorf("frame %d arrived as %x", i, g)
		}
	}
	n202 := 0
	for _, p := range wire {
		// Ethernet, IPv4 (20), UDP (8): the VNI is in bytes 4..6 of VXLAN.
		if len(p) > 14+20+8+8 && binary.BigEndian.Uint32(p[14+20+8+4:])>>8 == lab.EVPNVLANVNI {
			inner := p[14+20+8+8:]
			if binary.BigEndian.Uint16(inner[12:]) == 0x8100 {
				t.Errorf("VNI 202 carries the VLAN tag: %x", inner[:16])
			}
			n202++
		}
	}
	if n202 < 2 {
		t.Errorf("%d VXLAN packets with VNI 202 on the wire, want 2", n202)
	}
	if d := counters(t, e.A)["dl_drop_no_vni"] - before; d != 2 {
		t.Errorf("dl_drop_no_vni rose by %d, want 2 (VLAN 30)", d)
	}
}

// TestEVPN: two pwgates and an FRR 8.4 site set up as an operator's
// (kernel VXLAN, bridge, advertise-all-vni, iBGP peer group, IPv4 VTEPs),
// all in one AS with a four-byte number.
func TestEVPN(t *testing.T) {
	e := newEVPN(t, lab.EVPNOptions{FRR: true})
	if err := e.WaitSessions(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitFRRFlood(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		f    func(*testing.T, *lab.EVPN)
	}{
		{"ping", testEVPNPing},
		{"frr sees pwgate's routes", testEVPNFRRRoutes},
		{"fdbs", testEVPNFDBs},
		{"arp and nd suppression", testEVPNSuppress},
		{"mobility", testEVPNMobility},
		{"graceful restart", testEVPNGracefulRestart},
		{"sigterm without graceful restart", testEVPNStop},
	}
	for _, st := range steps {
		if !t.Run(st.name, func(t *testing.T) { st.f(t, e) }) {
			return
		}
	}
}

func testEVPNPing(t *testing.T, e *lab.EVPN) {
	for _, from := range e.Sites {
		for _, to := range e.Sites {
			if from != to {
				evpnPing(t, e, from, to.HostIP)
			}
		}
	}
	// IPv6 neighbour discovery (multicast solicitations) to link-local
	// addresses, between every pair.
	for _, from := range e.Sites {
		for _, to := range e.Sites {
			if from == to {
				continue
			}
			ll, err := hostLinkLocal(e, to)
			if err != nil {
				t.Fatal(err)
			}
			evpnPing(t, e, from, ll+"%eth0", "-6")
		}
	}
}

func hostLinkLocal(e *lab.EVPN, s *lab.EVPNSite) (string, error) {
	out, err := e.Exec(s.Host, "ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link")
	if err != nil {
		return "", err
	}
	f := strings.Fields(out)
	for i, w := range f {
		if w == "inet6" && i+1 < len(f) {
			return strings.Split(f[i+1], "/")[0], nil
		}
	}
	return "", fmt.Errorf("%s: no link-local address: %s", s.Host, out)
}

// frrRoutes returns FRR's EVPN routes as "show bgp l2vpn evpn route json"
// gives them: RD → prefix → paths.
type frrPath struct {
	RouteType int    `json:"routeType"`
	MAC       string `json:"mac"`
	IP        string `json:"ip"`
	NextHops  []struct {
		IP string `json:"ip"`
	} `json:"nexthops"`
	ExtComm struct {
		String string `json:"string"`
	} `json:"extendedCommunity"`
	Label    string `json:"vni"`
	OriginIP string `json:"originatorIp"`
	Valid    bool   `json:"valid"`
	Stale    bool   `json:"stale"`
	Bestpath bool   `json:"bestpath"`
	PeerID   string `json:"peerId"`
}

func frrRoutes(t *testing.T, e *lab.EVPN) map[string]map[string][]frrPath {
	t.Helper()
	var raw map[string]any
	if err := e.VtyshJSON(e.C, "show bgp l2vpn evpn route json", &raw); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string][]frrPath{}
	for rd, v := range raw {
		m, ok := v.(map[string]any)
		if !ok {
			continue
		}
		for pfx, pv := range m {
			pm, ok := pv.(map[string]any)
			if !ok {
				continue
			}
			b, _ := json.Marshal(pm["paths"])
			var paths [][]frrPath
			if json.Unmarshal(b, &paths) != nil {
				continue
			}
			if out[rd] == nil {
				out[rd] = map[string][]frrPath{}
			}
			for _, p := range paths {
				out[rd][pfx] = append(out[rd][pfx], p...)
			}
		}
	}
	return out
}

func testEVPNFRRRoutes(t *testing.T, e *lab.EVPN) {
	ma := hostMAC(t, e, e.A.Host, "eth0")
	var routes map[string]map[string][]frrPath
	var imet, macip, withIP *frrPath
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		routes = frrRoutes(t, e)
		imet, macip, withIP = nil, nil, nil
		for pfx, ps := range routes[e.A.RouterID+":1"] {
			for i := range ps {
				switch {
				case strings.HasPrefix(pfx, "[3]"):
					imet = &ps[i]
				case strings.HasPrefix(pfx, "[2]") && strings.Contains(pfx, ma) && strings.Contains(pfx, e.A.HostIP):
					withIP = &ps[i] // learned from the host's ARP
				case strings.HasPrefix(pfx, "[2]") && strings.Contains(pfx, ma):
					macip = &ps[i]
				}
			}
		}
		if imet != nil && macip != nil && withIP != nil {
			break
		}
	}
	if imet == nil || macip == nil || withIP == nil {
		t.Fatalf("FRR lacks pwgate A's routes (RD %s:1): flood %v, MAC %v, MAC+IP %v; all: %+v", e.A.RouterID, imet, macip, withIP, routes)
	}
	// FRR 8.4's auto RT for AS 4200000000 is 59904:101.
	for what, p := range map[string]*frrPath{"flood": imet, "MAC": macip} {
		if !strings.Contains(p.ExtComm.String, "RT:59904:101") || !strings.Contains(p.ExtComm.String, "ET:8") {
			t.Errorf("%s route's communities %q, want RT:59904:101 and ET:8 (VXLAN)", what, p.ExtComm.String)
		}
		if len(p.NextHops) == 0 || p.NextHops[0].IP != e.A.VTEP || !p.Valid {
			t.Errorf("%s route: next hops %+v valid %v, want %s", what, p.NextHops, p.Valid, e.A.VTEP)
		}
	}
	// The VNI (label) and FRR's kernel FDB.
	out, err := e.Vtysh(e.C, "show bgp l2vpn evpn route rd "+e.A.RouterID+":1 mac "+ma)
	if err != nil || !strings.Contains(out, "Label1: 101") && !strings.Contains(out, "VNI 101") && !strings.Contains(out, "101") {
		t.Errorf("FRR's view of A's MAC route: %v\n%s", err, out)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		out, _ := e.Exec(e.C.NS, "bridge", "fdb", "show", "dev", "vxlan101")
		if strings.Contains(out, ma+" dst "+e.A.VTEP) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("FRR's kernel FDB does not point %s at %s:\n%s", ma, e.A.VTEP, out)
		}
	}
}

func testEVPNFDBs(t *testing.T, e *lab.EVPN) {
	mc := hostMAC(t, e, e.C.Host, "eth0")
	for _, s := range []*lab.EVPNSite{e.A, e.B} {
		got := waitFDB(t, s, 101, mc, e.C.VTEP, 5*time.Second)
		if got.Origin != "evpn" {
			t.Errorf("site %s: FRR host's MAC origin %q", s.Name, got.Origin)
		}
		// FRR's bridge address comes as a MAC+IP route (advertise-svi-ip).
		svi := hostMAC(t, e, e.C.NS, "br101")
		if got := waitFDB(t, s, 101, svi, e.C.VTEP, 5*time.Second); !slices.Contains(got.IPs, lab.SVIAddr) {
			t.Errorf("site %s: FRR's SVI %s without its IP: %+v", s.Name, svi, got)
		}
		st := evpnStatus(t, s)
		if len(st.EVPN.VNIs[0].Flood) != 2 {
			t.Errorf("site %s floods VNI 101 to %v, want the two other VTEPs", s.Name, st.EVPN.VNIs[0].Flood)
		}
		if st.EVPN.VNIs[0].RT != "59904:101" || st.EVPN.VNIs[0].RD != s.RouterID+":1" {
			t.Errorf("site %s: VNI 101 RT %s RD %s", s.Name, st.EVPN.VNIs[0].RT, st.EVPN.VNIs[0].RD)
		}
		if st.BGP == nil || len(st.BGP.Neighbors) != 2 {
			t.Errorf("site %s: bgp %+v", s.Name, st.BGP)
		}
	}
	out, err := e.Exec("", toolBin(t, "pwctl"), "--socket", e.A.Socket, "bgp")
	if err != nil || strings.Count(out, "established") != 2 {
		t.Errorf("pwctl bgp: %v\n%s", err, out)
	}
	out, err = e.Exec("", toolBin(t, "check_pwbgp"), "--socket", e.A.Socket, "--family", "l2vpn-evpn")
	if err != nil || !strings.HasPrefix(out, "BGP OK - 2 of 2 sessions established") {
		t.Errorf("check_pwbgp: %v\n%s", err, out)
	}
}

// testEVPNMobility moves host A's MAC and address to site B: traffic
// follows within 2 s, B announces the MAC with a higher sequence, A and
// FRR agree.
func testEVPNMobility(t *testing.T, e *lab.EVPN) {
	ma := hostMAC(t, e, e.A.Host, "eth0")
	seq0 := waitFDB(t, e.A, 101, ma, "local", time.Second).Seq
	// The host leaves A...
	if err := e.Script(e.A.Host, "ip link set eth0 down"); err != nil {
		t.Fatal(err)
	}
	defer e.Script(e.A.Host, "ip link set eth0 up")
	// ...and shows up at B: a macvlan with its MAC and address on B's LAN.
	if err := e.Script(e.B.Host, "ip link add mob link eth0 address "+ma+" type macvlan mode bridge",
		"ip addr add 10.77.0.11/24 dev mob", "ip link set mob up"); err != nil {
		t.Fatal(err)
	}
	defer e.Script(e.B.Host, "ip link del mob")
	start := time.Now()
	if _, err := e.Start(e.B.Host, "ping", "-c", "3", "-i", "0.2", "-W", "1", "-I", "mob", e.C.HostIP); err != nil {
		t.Fatal(err)
	}
	got := waitFDB(t, e.A, 101, ma, e.B.VTEP, 2*time.Second)
	t.Logf("site A points the moved MAC at B after %v", time.Since(start).Round(time.Millisecond))
	if got.Seq <= seq0 {
		t.Errorf("sequence after the move %d, before %d", got.Seq, seq0)
	}
	waitFDB(t, e.B, 101, ma, "local", time.Second)
	// FRR agrees: its kernel FDB and best route point at B.
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, _ := e.Exec(e.C.NS, "bridge", "fdb", "show", "dev", "vxlan101")
		if strings.Contains(out, ma+" dst "+e.B.VTEP) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("FRR's kernel FDB does not follow the move:\n%s", out)
		}
	}
	out, _ := e.Vtysh(e.C, "show evpn mac vni 101 mac "+ma)
	if !strings.Contains(out, e.B.VTEP) {
		t.Errorf("FRR's EVPN MAC table:\n%s", out)
	}
	evpnPing(t, e, e.C, "10.77.0.11")
	if c := counters(t, e.A)["evpn_macs_moved"]; c == 0 {
		t.Error("site A counted no move")
	}
}

// testEVPNGracefulRestart stops pwgate A with SIGTERM (graceful restart is
// on by default): FRR keeps A's routes while A is away, and A comes back
// saying it restarts.
func testEVPNGracefulRestart(t *testing.T, e *lab.EVPN) {
	if code, err := stopSite(e, e.A); err != nil || code != 0 {
		t.Fatalf("SIGTERM: exit %d, %v", code, err)
	}
	time.Sleep(3 * time.Second)
	rs := frrRoutes(t, e)
	if len(rs[e.A.RouterID+":1"]) == 0 {
		t.Fatalf("FRR dropped A's routes at once, despite graceful restart: %v", rs)
	}
	if err := e.StartPwgated(e.A); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(e.A.Proc.Out.String(), "restarting gracefully") {
		t.Errorf("A did not restart gracefully:\n%s", e.A.Proc.Out.String())
	}
	if err := e.WaitSessions(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		stale := false
		for _, ps := range frrRoutes(t, e)[e.A.RouterID+":1"] {
			for _, p := range ps {
				stale = stale || p.Stale
			}
		}
		if !stale {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("FRR still marks A's routes stale after A came back")
		}
	}
	evpnPing(t, e, e.A, e.C.HostIP)
}

// testEVPNStop: without graceful restart, SIGTERM withdraws at once.
func testEVPNStop(t *testing.T, e *lab.EVPN) {
	conf, err := os.ReadFile(e.B.Config)
	if err != nil {
		t.Fatal(err)
	}
	c := strings.Replace(string(conf), "  router_id:", "  graceful_restart: false\n  router_id:", 1)
	if err := os.WriteFile(e.B.Config, []byte(c), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, err := stopSite(e, e.B); err != nil || code != 0 {
		t.Fatalf("SIGTERM: exit %d, %v", code, err)
	}
	if err := e.StartPwgated(e.B); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitSessions(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if code, err := stopSite(e, e.B); err != nil || code != 0 {
		t.Fatalf("SIGTERM: exit %d, %v", code, err)
	}
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if len(frrRoutes(t, e)[e.B.RouterID+":1"]) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("FRR kept B's routes after B stopped without graceful restart")
		}
	}
	// Nothing left behind.
	out, _ := e.Exec(e.B.NS, "ip", "link", "show", "ul0")
	if strings.Contains(out, "xdp") {
		t.Errorf("XDP left on ul0: %s", out)
	}
}

func stopSite(e *lab.EVPN, s *lab.EVPNSite) (int, error) {
	if err := s.Proc.Signal(syscall.SIGTERM); err != nil {
		return -1, err
	}
	return s.Proc.Wait(15 * time.Second)
}

// TestEVPNIPv6: pwgate A and B with IPv6 VTEPs over the routed IPv6 access
// network (radvd), BGP EVPN over IPv6: what FRR cannot do.
//
// Site A also announces an anycast VIP on the same BGP speaker (the
// appliance as one box): B receives it beside the EVPN routes, which go
// on as before.
func TestEVPNIPv6(t *testing.T) {
	const vip = "2001:db8:80::80"
	e := newEVPN(t, lab.EVPNOptions{IPv6: true, Split: true, Families: []string{"l2vpn-evpn", "ipv6-unicast"},
		Extra: func(s *lab.EVPNSite) string {
			if s.Name != "a" {
				return ""
			}
			return "anycast:\n  vips:\n    - prefix: " + vip + "/128\n      check:\n        exec: \"true\"\n      interval: 300ms\n      rise: 1\n"
		}})
	if err := e.WaitSessions(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		st := evpnStatus(t, e.B)
		if len(st.BGP.Neighbors) == 1 && st.BGP.Neighbors[0].Received["ipv6-unicast"] == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B does not receive A's VIP: %+v", st.BGP.Neighbors)
		}
	}
	if st := evpnStatus(t, e.A); st.Anycast == nil || len(st.Anycast.VIPs) != 1 || st.Anycast.VIPs[0].State != "up" {
		t.Errorf("A's anycast: %+v", st.Anycast)
	}
	evpnPing(t, e, e.A, e.B.HostIP)
	evpnPing(t, e, e.B, e.A.HostIP)
	mb := hostMAC(t, e, e.B.Host, "eth0")
	got := waitFDB(t, e.A, 101, mb, lab.AddrB, 2*time.Second)
	if got.Origin != "evpn" {
		t.Errorf("B's host MAC at A: %+v", got)
	}
	st := evpnStatus(t, e.A)
	if len(st.EVPN.VTEPs) != 1 || !st.EVPN.VTEPs[0].Pwgate || st.EVPN.VTEPs[0].NextHop != lab.RouterMACA {
		t.Errorf("VTEPs %+v (want B, pwgate, via the router %s)", st.EVPN.VTEPs, lab.RouterMACA)
	}
	// split: pwgate carries 1500-byte IP packets whole over the 1500-byte
	// underlay, in two pieces.
	for _, l := range [][2]string{{e.A.Host, "eth0"}, {e.A.NS, "dl0"}, {e.B.Host, "eth0"}, {e.B.NS, "dl0"}} {
		e.Exec(l[0], "ip", "link", "set", l[1], "mtu", "1500")
	}
	before := counters(t, e.B)["ul_rx_reassembled"]
	evpnPing(t, e, e.A, e.B.HostIP, "-M", "do", "-s", "1472")
	if got := counters(t, e.B)["ul_rx_reassembled"] - before; got < 3 {
		t.Errorf("B reassembled %d frames, want 3 or more", got)
	}
}

// TestEVPNWireGuard: the three sites with the VTEPs and BGP inside
// WireGuard, as the operator runs them (router ID = WireGuard address, LAN
// MTU 1370): pwgate's embedded WireGuard, wireguard-go on FRR's site.
func TestEVPNWireGuard(t *testing.T) {
	e := newEVPN(t, lab.EVPNOptions{FRR: true, WireGuard: true, HostMTU: 1370})
	if err := e.WaitSessions(45 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := e.WaitFRRFlood(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	wire := captureNS(t, e.Lab, "net", "br0", "")
	for _, step := range []struct {
		name string
		f    func(*testing.T, *lab.EVPN)
	}{{"ping", testEVPNPing}, {"frr sees pwgate's routes", testEVPNFRRRoutes}, {"fdbs", testEVPNFDBs}, {"mobility", testEVPNMobility}} {
		if !t.Run(step.name, func(t *testing.T) { step.f(t, e) }) {
			return
		}
	}
	// Full-size frames for the LAN's MTU cross whole.
	evpnPing(t, e, e.A, e.C.HostIP, "-M", "do", "-s", "1342")
	// On the wire: WireGuard only (and ARP for the underlay).
	for _, p := range wire() {
		if len(p) < 14+20+8 || binary.BigEndian.Uint16(p[12:]) != 0x0800 {
			continue
		}
		if p[14+9] != 17 || binary.BigEndian.Uint16(p[14+20:]) != lab.WGPort && binary.BigEndian.Uint16(p[14+22:]) != lab.WGPort {
			t.Fatalf("not WireGuard on the wire: proto %d, ports %d → %d", p[14+9], binary.BigEndian.Uint16(p[14+20:]), binary.BigEndian.Uint16(p[14+22:]))
		}
	}
	st := evpnStatus(t, e.A)
	if st.WireGuard == nil || st.EVPN.VNIs[0].MaxFrame != 1440-36 {
		t.Errorf("largest frame %d, want 1404 (tunnel MTU 1440 less VXLAN over IPv4 without Ethernet, 36)", st.EVPN.VNIs[0].MaxFrame)
	}
}
