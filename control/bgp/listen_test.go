package bgp

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
)

func TestSessionSources(t *testing.T) {
	a3, a5 := netip.MustParseAddr("127.0.0.3"), netip.MustParseAddr("127.0.0.5")
	ns := []Neighbor{
		{Address: netip.MustParseAddr("127.0.0.2"), Source: a3},
		{Address: netip.MustParseAddr("127.0.0.4"), Source: a3},
		{Address: a5}, // the kernel's choice
		{Interface: "lo", Source: netip.MustParseAddr("127.0.0.9")}, // unnumbered: connected to
	}
	want := []netip.Addr{a3}
	if k := kernelSource(a5); k.IsValid() {
		want = append(want, k)
	}
	slices.SortFunc(want, netip.Addr.Compare)
	want = slices.Compact(want)
	if got := SessionSources(ns); !slices.Equal(got, want) {
		t.Errorf("session sources %v, want %v", got, want)
	}
	if !listens([]netip.Addr{netip.IPv4Unspecified()}, a3) || listens([]netip.Addr{netip.IPv6Unspecified()}, a3) || listens([]netip.Addr{a5}, a3) {
		t.Error("listens")
	}
}

// twoSpeakers starts speakers at 127.0.0.1 and .2 in eBGP session, each
// with ttl hops of TTL security toward the other, without ListenAddrs.
func twoSpeakers(t *testing.T, ttl [2]int) []*GoBGP {
	return twoSpeakersHold(t, ttl, 0)
}

// twoSpeakersHold is twoSpeakers with hold time hold (0: GoBGP's 90 s).
func twoSpeakersHold(t *testing.T, ttl [2]int, hold int) []*GoBGP {
	t.Helper()
	port := freePort(t)
	a1, a2 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	var sp []*GoBGP
	for i, x := range [][2]netip.Addr{{a1, a2}, {a2, a1}} {
		s := NewGoBGP(quiet())
		c := Config{ASN: 65000 + uint32(x[0].As4()[3]), RouterID: x[0], ListenPort: port,
			Neighbors: []Neighbor{{Address: x[1], ASN: 65000 + uint32(x[1].As4()[3]), Port: port, Source: x[0],
				Families: []Family{IPv4Unicast}, TTLSecurity: ttl[i], HoldTime: hold, Keepalive: hold / 3}}}
		if err := s.Start(c, func([]Update) {}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Stop(false) })
		sp = append(sp, s)
	}
	return sp
}

// Without bgp.listen, GoBGP listens on the sessions' source addresses,
// not on every address (issue 21, finding 10); the sessions come up.
func TestGoBGPDefaultListen(t *testing.T) {
	sp := twoSpeakers(t, [2]int{})
	waitFor(t, "session up", func() bool { return established(sp[0]) && established(sp[1]) })
	g, err := sp[0].s.GetBgp(t.Context(), &api.GetBgpRequest{})
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(int(g.Global.ListenPort))
	for _, a := range []string{"127.0.0.1", "127.0.0.2"} {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(a, port), time.Second)
		if err != nil {
			t.Errorf("not listening on the session source %s: %v", a, err)
			continue
		}
		c.Close()
	}
	for _, a := range []string{"127.0.0.4", "::1"} {
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(a, port), time.Second); err == nil {
			c.Close()
			t.Errorf("listening on %s, which no session uses", a)
		}
	}
}

func TestPeerTTLSecurity(t *testing.T) {
	g := NewGoBGP(quiet())
	n := Neighbor{Address: netip.MustParseAddr("192.0.2.2"), ASN: 65002, Families: []Family{IPv4Unicast}}
	if p := g.peer(n, Config{}); p.TtlSecurity != nil {
		t.Errorf("TTL security without ttl_security: %v", p.TtlSecurity)
	}
	for hops, min := range map[int]uint32{1: 255, 2: 254, 254: 2} {
		n.TTLSecurity = hops
		if p := g.peer(n, Config{}); p.TtlSecurity == nil || !p.TtlSecurity.Enabled || p.TtlSecurity.TtlMin != min {
			t.Errorf("%d hops: %v, want minimum TTL %d", hops, p.TtlSecurity, min)
		}
	}
	c := Config{ASN: 65001, RouterID: netip.MustParseAddr("192.0.2.1"), Neighbors: []Neighbor{n}}
	for _, bad := range []func(*Neighbor){
		func(n *Neighbor) { n.TTLSecurity = 255 },
		func(n *Neighbor) { n.TTLSecurity = -1 },
		func(n *Neighbor) { n.TTLSecurity, n.Multihop = 1, 2 },
	} {
		c.Neighbors = []Neighbor{n}
		bad(&c.Neighbors[0])
		if err := c.Validate(); err == nil {
			t.Errorf("accepted %+v", c.Neighbors[0])
		}
	}
}

// With ttl_security (GTSM) on both sides the session comes up; with it
// only at the side that waits (127.0.0.2, the higher address), the other
// side's packets (eBGP: TTL 1) are dropped and it does not stay up.
// GoBGP sets the minimum TTL on a connection after accepting it, so an
// OPEN and KEEPALIVE that arrived before can bring it up for a moment
// (seen under load); the hold time (3 s) then ends it, as no later packet
// gets through. Without GTSM it would stay up the whole 10 s.
func TestGoBGPTTLSecurity(t *testing.T) {
	both := twoSpeakers(t, [2]int{1, 1})
	one := twoSpeakersHold(t, [2]int{0, 1}, 3)
	waitFor(t, "the session with TTL security on both sides", func() bool { return established(both[0]) && established(both[1]) })
	var up, longest time.Duration
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if established(one[0]) || established(one[1]) {
			up += 100 * time.Millisecond
			longest = max(longest, up)
		} else {
			up = 0
		}
	}
	if longest > 5*time.Second {
		t.Errorf("a session with TTL 1 packets stayed up %v under TTL security (hold time 3 s)", longest)
	}
}

// A session source that is not this host's yet (no route at boot, an
// address in duplicate address detection) cannot be bound: every address
// of its version is listened on instead, since two pwgates that only
// connect never meet (TestEVPNIPv6 found it); an unnumbered neighbor's
// session comes to our link-local address, taken by "::".
func TestDefaultListenFallback(t *testing.T) {
	g := NewGoBGP(quiet())
	a := netip.MustParseAddr
	for _, tc := range []struct {
		ns   []Neighbor
		want []netip.Addr
	}{
		{[]Neighbor{{Address: a("127.0.0.2"), Source: a("127.0.0.1")}}, []netip.Addr{a("127.0.0.1")}},
		{[]Neighbor{{Address: a("127.0.0.2"), Source: a("127.0.0.1")}, {Address: a("192.0.2.2"), Source: a("192.0.2.1")}},
			[]netip.Addr{a("0.0.0.0")}},
		{[]Neighbor{{Address: a("127.0.0.2"), Source: a("127.0.0.1")}, {Address: a("2001:db8::2"), Source: a("2001:db8::1")}},
			[]netip.Addr{a("127.0.0.1"), a("::")}},
		{[]Neighbor{{Interface: "lo"}}, []netip.Addr{a("::")}},
	} {
		if got := g.defaultListen(tc.ns); !slices.Equal(got, tc.want) {
			t.Errorf("%+v: listening on %v, want %v", tc.ns, got, tc.want)
		}
	}
}
