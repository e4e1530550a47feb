package main

import (
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/control/client"
)

// Unnumbered sessions as the operators run them: every BGP session
// between the anycast servers and the box in front of them over IPv6
// link-local addresses learned from router advertisements, the IPv4 VIP
// carried with an IPv6 next hop (RFC 8950).
//
// With FRR 8.4 in front ("neighbor IFNAME interface remote-as external"):
// FRR learns both VIPs from each announcer, installs the IPv4 VIP in its
// kernel "via inet6 fe80::…", the client reaches the VIP through it, and
// a server whose check fails is withdrawn within interval × fall.
//
// With pwgate's forwarder in front (started before any server, so that it
// waits for them): it learns the three servers' paths, resolves their
// link-local next hops, spreads flows over them, and follows a server
// whose link-local address changes.
func TestUnnumbered(t *testing.T) {
	t.Run("frr", func(t *testing.T) {
		a := newAnycast(t, lab.AnycastOptions{Forwarder: "frr", Unnumbered: true, Interval: 500 * time.Millisecond, Fall: 3, Rise: 2})
		toolBin(t, "pwctl")
		routeVia := func(vip string, n int) (string, bool) {
			family := "-4"
			if strings.Contains(vip, ":") {
				family = "-6"
			}
			route, _ := a.Exec("fwd", "ip", family, "route", "show", vip)
			via := "via inet6 fe80::"
			if family == "-6" {
				via = "via fe80::"
			}
			return route, strings.Count(route, via) == n && (n > 1) == strings.Contains(route, "nexthop")
		}
		wait := func(n int, within time.Duration) time.Duration {
			t.Helper()
			start := time.Now()
			var r4, r6 string
			for deadline := start.Add(within); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				var ok4, ok6 bool
				r4, ok4 = routeVia(lab.AnycastVIP, n)
				r6, ok6 = routeVia(lab.AnycastVIP6, n)
				if ok4 && ok6 {
					return time.Since(start)
				}
			}
			sum, _ := a.Vtysh("fwd", "show bgp summary")
			t.Fatalf("FRR's kernel routes do not have %d link-local next hops after %v:\n%s\n%s\n%s", n, within, r4, r6, sum)
			return 0
		}
		wait(3, 30*time.Second)
		for _, s := range a.Servers {
			out, _, code := pwctlRun("--socket", s.Socket, "bgp")
			if code != 0 || !strings.Contains(out, "if:eth0 (fe80::") || !strings.Contains(out, "established") {
				t.Errorf("%s: pwctl bgp:\n%s", s.Name, out)
			}
		}
		spread(t, a, 60, 1)
		got := requestsTo(t, a, lab.AnycastVIP6, 10)
		if got[""] > 0 {
			t.Errorf("requests to the IPv6 VIP failed: %v", got)
		}

		a.Servers[2].Service.Signal(syscall.SIGKILL)
		// interval × fall, and FRR's own work.
		took := wait(2, 10*time.Second)
		t.Logf("withdrawn from FRR's kernel %v after the service died (checks every 500ms, fall 3)", took)
		if took > 3*time.Second {
			t.Errorf("the VIP was withdrawn %v after the service died, more than interval × fall (1.5 s) and 1.5 s", took)
		}
	})

	t.Run("pwgate", func(t *testing.T) {
		a := newAnycast(t, lab.AnycastOptions{Forwarder: "pwgate", Unnumbered: true, Interval: 500 * time.Millisecond, Fall: 3, Rise: 2})
		toolBin(t, "pwctl")
		for vip := range 2 {
			f, err := a.WaitServersOf(vip, 3, 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range f.Servers {
				nh, err := netip.ParseAddr(s.NextHop)
				if err != nil || !nh.IsLinkLocalUnicast() || nh.Zone() != s.Port {
					t.Errorf("VIP %s: server %+v: want a link-local next hop on its port", f.Prefix, s)
				}
			}
		}
		spread(t, a, 90, 10)
		route, _ := a.Exec("fwd", "ip", "route", "show", lab.AnycastVIP)
		if strings.Count(route, "via inet6 fe80::") != 3 {
			t.Errorf("the forwarder's kernel route to the VIP:\n%s", route)
		}
		out, _, _ := pwctlRun("--socket", a.FwdSock, "bgp")
		for _, s := range a.Servers {
			if !strings.Contains(out, "if:"+s.Port+" (fe80::") {
				t.Errorf("pwctl bgp does not show %s:\n%s", s.Port, out)
			}
		}

		// Server 1's link-local address changes (a new MAC, as when a
		// server is replaced): the forwarder's session follows it.
		s := a.Servers[0]
		old := peerAddr(t, a.FwdSock, "if:"+s.Port)
		if err := a.Script(s.NS, "ip link set eth0 down", "ip link set eth0 address 02:00:00:00:91:01", "ip link set eth0 up",
			"ip addr replace "+s.Addr+"/24 dev eth0", "ip route replace default via "+s.Gateway,
			"ip -6 addr replace "+s.Addr6+"/64 dev eth0 nodad", "ip -6 route replace default via "+s.Gateway6); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		var now string
		for deadline := start.Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if now = peerAddr(t, a.FwdSock, "if:"+s.Port); now != old && now != "" {
				break
			}
		}
		if now == old || now == "" {
			t.Fatalf("the session stayed at %s after the server's link-local address changed", old)
		}
		if _, err := a.WaitServers(3, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: session moved from %s to %s, the server back in the table %v after its address changed", s.Port, old, now, time.Since(start))
		spread(t, a, 90, 10)
	})
}

// peerAddr returns the address of neighbor key in pwgated's status when
// its session is established, or "".
func peerAddr(t *testing.T, socket, key string) string {
	t.Helper()
	st, err := client.FetchStatus(socket, time.Second)
	if err != nil || st.BGP == nil {
		return ""
	}
	for _, n := range st.BGP.Neighbors {
		if n.Neighbor == key && n.State == "established" {
			return n.Address
		}
	}
	return ""
}

// An EVPN VTEP whose l2vpn-evpn session with the FRR site runs over IPv6
// link-local addresses (pwgate's "interface: ul0", FRR's "neighbor ul0
// interface peer-group fabric"): the routes' next hops are the VTEP
// addresses, the hosts reach each other.
func TestEVPNUnnumbered(t *testing.T) {
	e := newEVPN(t, lab.EVPNOptions{FRR: true, Unnumbered: true})
	if err := e.WaitSessions(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	// FRR floods VNI 101 to pwgate's VTEP address: its IMET route's next
	// hop came through the link-local session.
	if err := e.WaitFRRFlood(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	// pwgate's side of the routes (FRR's MACs and flood list) may still be
	// arriving: the first ping waits for them.
	evpnPingWithin(t, e, e.A, e.C.HostIP, 10*time.Second)
	evpnPing(t, e, e.C, e.A.HostIP)
	st := evpnStatus(t, e.A)
	if n := st.BGP.Neighbors; len(n) != 1 || n[0].Neighbor != "if:ul0" || !strings.HasPrefix(n[0].Address, "fe80::") || !strings.HasSuffix(n[0].Address, "%ul0") {
		t.Errorf("pwgate's neighbors: %+v", n)
	}
	found := false
	for _, v := range st.EVPN.VTEPs {
		found = found || v.Address == e.C.VTEP && v.Resolved
	}
	if !found {
		t.Errorf("pwgate does not have FRR's VTEP %s: %+v", e.C.VTEP, st.EVPN.VTEPs)
	}
	out, _ := e.Vtysh(e.C, "show bgp l2vpn evpn summary")
	if !strings.Contains(out, "ul0") {
		t.Errorf("FRR's summary:\n%s", out)
	}
}
