package main

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/dataplane/frame"
)

// waitIP waits until site s's forwarding database gives mac the address
// ip (a MAC+IP route, or the LAN host's own).
func waitIP(t *testing.T, s *lab.EVPNSite, mac, ip string, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, e := range fdbOf(t, s) {
			if e.MAC == mac && slices.Contains(e.IPs, ip) {
				// The data path's address table follows within 200 ms.
				time.Sleep(300 * time.Millisecond)
				return
			}
		}
	}
	t.Fatalf("site %s does not know %s at %s after %v: %+v", s.Name, ip, mac, timeout, fdbOf(t, s))
}

// asksFor returns the captured ARP requests and neighbour solicitations
// from mac for ip.
func asksFor(frames [][]byte, mac string, ip netip.Addr) int {
	n := 0
	for _, f := range frames {
		if len(f) < 14 || frame.Ethernet(f).Src().String() != mac {
			continue
		}
		switch {
		case len(f) >= 42 && frame.Ethernet(f).EtherType() == frame.EtherTypeARP && binary.BigEndian.Uint16(f[20:]) == 1:
			if netip.AddrFrom4([4]byte(f[38:42])) == ip {
				n++
			}
		case len(f) >= 78 && frame.Ethernet(f).EtherType() == frame.EtherTypeIPv6 && f[20] == 58 && f[54] == 135:
			if netip.AddrFrom16([16]byte(f[62:78])) == ip {
				n++
			}
		}
	}
	return n
}

// linkLocalOf returns the IPv6 link-local address of ifname in ns.
func linkLocalOf(t *testing.T, e *lab.EVPN, ns, ifname string) netip.Addr {
	t.Helper()
	out, err := e.Exec(ns, "ip", "-6", "-o", "addr", "show", "dev", ifname, "scope", "link")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range strings.Fields(out) {
		if p, err := netip.ParsePrefix(w); err == nil && p.Addr().IsLinkLocalUnicast() {
			return p.Addr()
		}
	}
	t.Fatalf("no link-local address on %s in %s: %s", ifname, ns, out)
	return netip.Addr{}
}

// testEVPNSuppress: with suppression on (the default with EVPN), host A's
// ARP request for host B's address is answered by pwgate A from B's MAC+IP
// route and reaches neither remote LAN (tcpdump on hosts B and C, the FRR
// site's bridge running neigh_suppress too); IPv6 the same with a
// neighbour solicitation for B's link-local address; when B's address
// moves to a new MAC, A's next ARP is answered with the new one.
func testEVPNSuppress(t *testing.T, e *lab.EVPN) {
	ma, mb := hostMAC(t, e, e.A.Host, "eth0"), hostMAC(t, e, e.B.Host, "eth0")
	waitIP(t, e.A, mb, e.B.HostIP, 5*time.Second)
	neighOfA := func(ip string) string {
		out, _ := e.Exec(e.A.Host, "ip", "neigh", "show", ip, "dev", "eth0")
		return out
	}
	ask := func(what string, ip netip.Addr, counter string, ping ...string) {
		t.Helper()
		before := counters(t, e.A)[counter]
		filter := "arp"
		if ip.Is6() {
			filter = "icmp6"
		}
		stopB := captureNS(t, e.Lab, e.B.Host, "eth0", filter)
		stopC := captureNS(t, e.Lab, e.C.Host, "eth0", filter)
		if err := e.Script(e.A.Host, "ip neigh flush dev eth0"); err != nil {
			t.Fatal(err)
		}
		evpnPing(t, e, e.A, ip.String(), ping...)
		got := counters(t, e.A)[counter] - before
		fb, fc := stopB(), stopC()
		if got == 0 {
			t.Errorf("%s: %s did not count", what, counter)
		}
		if n, m := asksFor(fb, ma, ip), asksFor(fc, ma, ip); n+m > 0 {
			t.Errorf("%s: %d of host A's asks for %s reached host B's LAN, %d host C's", what, n, ip, m)
		}
		t.Logf("%s: answered by pwgate A (%s +%d), none reached the remote LANs", what, counter, got)
	}
	ask("ARP", netip.MustParseAddr(e.B.HostIP), "evpn_arp_suppressed")
	if !strings.Contains(neighOfA(e.B.HostIP), mb) {
		t.Errorf("host A's neighbour entry for B: %s", neighOfA(e.B.HostIP))
	}

	// IPv6: B's address, announced when B asks for A's.
	gA, gB := netip.MustParseAddr("fd00:77::1"), netip.MustParseAddr("fd00:77::2")
	if err := e.Script(e.A.Host, "ip -6 addr add "+gA.String()+"/64 dev eth0 nodad"); err != nil {
		t.Fatal(err)
	}
	if err := e.Script(e.B.Host, "ip -6 addr add "+gB.String()+"/64 dev eth0 nodad"); err != nil {
		t.Fatal(err)
	}
	evpnPing(t, e, e.B, gA.String())
	waitIP(t, e.A, mb, gB.String(), 5*time.Second)
	ask("ND", gB, "evpn_nd_suppressed")

	// A link-local address (a host's default router's, perhaps) is
	// asked of everyone: pwgate's answer could not say "router".
	llA, llB := linkLocalOf(t, e, e.A.Host, "eth0"), linkLocalOf(t, e, e.B.Host, "eth0")
	evpnPing(t, e, e.B, llA.String()+"%eth0")
	waitIP(t, e.A, mb, llB.String(), 5*time.Second)
	flooded := counters(t, e.A)["evpn_nd_flooded"]
	if err := e.Script(e.A.Host, "ip -6 neigh flush dev eth0"); err != nil {
		t.Fatal(err)
	}
	evpnPing(t, e, e.A, llB.String()+"%eth0")
	if counters(t, e.A)["evpn_nd_flooded"] == flooded {
		t.Error("a solicitation for a link-local address was not flooded")
	}

	// B's address moves to a new MAC (a replaced host): its MAC+IP route
	// moves, and A's next ARP is answered with the new MAC.
	newMAC := "02:00:00:00:b0:0b"
	if err := e.Script(e.B.Host, "ip link set eth0 address "+newMAC, "ip neigh flush dev eth0"); err != nil {
		t.Fatal(err)
	}
	// The steps after this one find the hosts as they were: B's MAC, and
	// every host's neighbour entries (a later step pings at once after a
	// restart, when a flood list may still be on its way).
	defer func() {
		// B's MAC back: its address moves back with B's next ARP (the
		// same move again), then the hosts forget the other MAC.
		if err := e.Script(e.B.Host, "ip link set eth0 address "+mb, "ip neigh flush dev eth0"); err != nil {
			t.Error(err)
		}
		e.Exec(e.B.Host, "ping", "-c", "2", "-W", "1", e.A.HostIP)
		waitIP(t, e.A, mb, e.B.HostIP, 5*time.Second)
		for _, s := range e.Sites {
			if err := e.Script(s.Host, "ip neigh flush dev eth0"); err != nil {
				t.Error(err)
			}
		}
		for _, from := range e.Sites {
			for _, to := range e.Sites {
				if from != to {
					evpnPing(t, e, from, to.HostIP)
				}
			}
		}
	}()
	// B's ARP for A announces the address with the new MAC (the ping
	// itself may fail: A's host still has the old MAC for B).
	e.Exec(e.B.Host, "ping", "-c", "2", "-W", "1", e.A.HostIP)
	waitIP(t, e.A, newMAC, e.B.HostIP, 5*time.Second)
	ask("ARP after the move", netip.MustParseAddr(e.B.HostIP), "evpn_arp_suppressed")
	if !strings.Contains(neighOfA(e.B.HostIP), newMAC) {
		t.Errorf("host A's neighbour entry for B after the move: %s", neighOfA(e.B.HostIP))
	}
	// An unknown address is flooded, and counted.
	before := counters(t, e.A)["evpn_arp_flooded"]
	e.Exec(e.A.Host, "ping", "-c", "1", "-W", "1", "10.77.0.99")
	if counters(t, e.A)["evpn_arp_flooded"] == before {
		t.Error("an ARP request for an unknown address was not counted as flooded")
	}
}
