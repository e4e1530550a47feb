package bgp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"
	"github.com/pwgate/pwgate/dataplane/frame"
)

// pair is two embedded GoBGP speakers in session over loopback
// (127.0.0.1 and 127.0.0.2, an unprivileged port): no root, no namespace.
type pair struct {
	a, b   *GoBGP
	ca, cb Config
	mu     sync.Mutex
	got    []Update // what b received
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newPair(t *testing.T, gr bool) *pair { t.Helper(); return newPairLogged(t, gr, quiet()) }

// newPairLogged is newPair with speaker a logging to log.
func newPairLogged(t *testing.T, gr bool, log *slog.Logger) *pair {
	t.Helper()
	port := freePort(t)
	a1, a2 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	fams := []Family{EVPN, IPv4Unicast, IPv6Unicast}
	p := &pair{a: NewGoBGP(log), b: NewGoBGP(quiet())}
	p.ca = Config{ASN: 4200000001, RouterID: a1, ListenAddrs: []netip.Addr{a1}, ListenPort: port, GracefulRestart: gr, RestartTime: 120,
		Neighbors: []Neighbor{{Address: a2, ASN: 4200000002, Port: port, Source: a1, Families: fams, HoldTime: 9, Description: "b"}}}
	p.cb = Config{ASN: 4200000002, RouterID: a2, ListenAddrs: []netip.Addr{a2}, ListenPort: port, GracefulRestart: gr, RestartTime: 120,
		Neighbors: []Neighbor{{Address: a1, ASN: 4200000001, Port: port, Source: a2, Families: fams, HoldTime: 9, Description: "a"}}}
	if err := p.a.Start(p.ca, func([]Update) {}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.a.Stop(false) })
	if err := p.b.Start(p.cb, func(us []Update) {
		p.mu.Lock()
		p.got = append(p.got, us...)
		p.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.b.Stop(false) })
	waitFor(t, "session up", func() bool { return established(p.a) && established(p.b) })
	return p
}

func established(s *GoBGP) bool {
	ps := s.Peers()
	return len(ps) == 1 && ps[0].State == "established"
}

// waitFor waits a minute at most: after a NOTIFICATION a session takes
// two of GoBGP's rounds (5 s idle, then 1 to 2 s to connect) to come back.
func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// last returns b's latest update for id, if any.
func (p *pair) last(id string) (Update, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.got) - 1; i >= 0; i-- {
		if p.got[i].ID() == id {
			return p.got[i], true
		}
	}
	return Update{}, false
}

func TestGoBGPRoutesRoundTrip(t *testing.T) {
	p := newPair(t, false)
	vtep := netip.MustParseAddr("2001:db8::a")
	mac := frame.MAC{0x02, 0, 0, 0, 0, 0xa1}
	routes := []Route{
		{Kind: MACIP, RD: AutoRD(p.ca.RouterID, 0), MAC: mac, VNI: 101, RTs: []RT{AutoRT(p.ca.ASN, 101)}, Seq: 3, NextHop: vtep},
		// GoBGP gives a MAC's routes the same sequence (RFC 7432 §15).
		{Kind: MACIP, RD: AutoRD(p.ca.RouterID, 0), MAC: mac, IP: netip.MustParseAddr("192.0.2.7"), VNI: 101, RTs: []RT{AutoRT(p.ca.ASN, 101)}, Seq: 3, NextHop: vtep},
		{Kind: IMET, RD: AutoRD(p.ca.RouterID, 1), VNI: 202, RTs: []RT{{ASN: 65000, Value: 202}}, Pwgate: true, NextHop: vtep},
		{Kind: IMET, RD: AutoRD(p.ca.RouterID, 2), VNI: 303, RTs: []RT{{ASN: 65000, Value: 303}}, NextHop: netip.MustParseAddr("192.0.2.1")},
		{Kind: Prefix, Prefix: netip.MustParsePrefix("198.51.100.0/24"), NextHop: netip.MustParseAddr("127.0.0.1"),
			MED: 20, HasMED: true, Communities: []uint32{GracefulShutdown, 65000<<16 | 7}, LargeCommunities: []LargeCommunity{{Global: 4200000001, Local1: 1, Local2: 2}}},
		{Kind: Prefix, Prefix: netip.MustParsePrefix("2001:db8:aaaa::/48"), NextHop: netip.MustParseAddr("2001:db8::1")},
	}
	for _, r := range routes {
		if err := p.a.Announce(r); err != nil {
			t.Fatalf("announce %s: %v", r.ID(), err)
		}
	}
	for _, r := range routes {
		waitFor(t, "route "+r.ID(), func() bool { _, ok := p.last(r.ID()); return ok })
		u, _ := p.last(r.ID())
		if u.Withdraw || u.Peer != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("%s: withdraw %v from %v", r.ID(), u.Withdraw, u.Peer)
		}
		want := r
		if r.Kind == Prefix {
			want.LocalPref = 0 // eBGP carries none
		}
		got := u.Route
		slices.Sort(got.Communities)
		slices.Sort(want.Communities)
		if got.String() != want.String() {
			t.Errorf("received\n %s\nwant\n %s", got.String(), want.String())
		}
	}
	// The same ID replaces: a new sequence number reaches b.
	moved := routes[0]
	moved.Seq = 4
	if err := p.a.Announce(moved); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "moved MAC", func() bool { u, _ := p.last(moved.ID()); return u.Seq == 4 })

	if err := p.a.Withdraw(routes[2]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "IMET withdrawn", func() bool { u, _ := p.last(routes[2].ID()); return u.Withdraw })
	if err := p.a.Withdraw(routes[2]); err != nil {
		t.Errorf("withdrawing twice: %v", err)
	}
	ps := p.b.Peers()
	if ps[0].Received[EVPN] != 3 || ps[0].Received[IPv4Unicast] != 1 || ps[0].Received[IPv6Unicast] != 1 || ps[0].Description != "a" || ps[0].ASN != 4200000001 {
		t.Errorf("b's peer state: %+v", ps[0])
	}
	if ps[0].Since.IsZero() || time.Since(ps[0].Since) > time.Minute {
		t.Errorf("session since %v", ps[0].Since)
	}
}

func TestGoBGPReconfigureKeepsSessions(t *testing.T) {
	p := newPair(t, false)
	since := p.a.Peers()[0].Since
	// The same neighbors, a new one: the session stays up.
	c := p.ca
	c.Neighbors = append(slices.Clone(c.Neighbors), Neighbor{Address: netip.MustParseAddr("127.0.0.3"), ASN: 65003, Port: 1, Families: []Family{EVPN}})
	if err := p.a.Reconfigure(c); err != nil {
		t.Fatal(err)
	}
	ps := p.a.Peers()
	if len(ps) != 2 {
		t.Fatalf("%d peers after adding one", len(ps))
	}
	for _, s := range ps {
		if s.Key == "127.0.0.2" && (s.State != "established" || !s.Since.Equal(since)) {
			t.Errorf("unchanged neighbor's session changed: %+v (was up since %v)", s, since)
		}
	}
	// Removed: the session goes down on both sides.
	c.Neighbors = c.Neighbors[1:]
	if err := p.a.Reconfigure(c); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to see the session end", func() bool { return !established(p.b) })
	if ps := p.a.Peers(); len(ps) != 1 || ps[0].Key != "127.0.0.3" {
		t.Errorf("peers after removing b: %+v", ps)
	}
	// A changed neighbor (new hold time) is reset and comes back.
	c = p.ca
	c.Neighbors = slices.Clone(c.Neighbors)
	if err := p.a.Reconfigure(c); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "session back", func() bool { return established(p.a) })
	c.Neighbors[0].HoldTime = 30
	if err := p.a.Reconfigure(c); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "session back after a change", func() bool { return established(p.a) })
}

func TestGoBGPStopWithdraws(t *testing.T) {
	p := newPair(t, false)
	r := Route{Kind: Prefix, Prefix: netip.MustParsePrefix("198.51.100.0/24"), NextHop: netip.MustParseAddr("127.0.0.1")}
	if err := p.a.Announce(r); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "route", func() bool { _, ok := p.last(r.ID()); return ok })
	p.a.Stop(false) // Cease: b withdraws at once
	waitFor(t, "withdraw", func() bool { u, _ := p.last(r.ID()); return u.Withdraw })
}

func TestGoBGPBadConfig(t *testing.T) {
	s := NewGoBGP(quiet())
	err := s.Start(Config{ASN: 65001, RouterID: netip.MustParseAddr("127.0.0.1"), ListenPort: -1,
		Neighbors: []Neighbor{{Address: netip.MustParseAddr("127.0.0.2"), ASN: 65002, Families: []Family{EVPN}, HoldTime: 1}}}, func([]Update) {})
	if err == nil {
		t.Error("a hold time of 1 s (RFC 4271: 0 or at least 3) was accepted")
	}
	s.Stop(false)
	if err := NewGoBGP(quiet()).Announce(Route{Kind: MACIP, RD: "nonsense"}); err == nil {
		t.Error("a bad RD was accepted")
	}
}

func TestGoBGPFilters(t *testing.T) {
	p := newPair(t, false)
	// a exports no 198.51.100.0/24 and nothing with RT 65000:9 to b;
	// b imports no flood routes from a.
	ca := p.ca
	ca.Neighbors = slices.Clone(ca.Neighbors)
	ca.Neighbors[0].Export = []Rule{
		{Permit: false, Kind: PrefixRoutes, Prefix: netip.MustParsePrefix("198.51.100.0/24")},
		{Permit: false, HasRT: true, RT: RT{ASN: 65000, Value: 9}},
	}
	if err := p.a.Reconfigure(ca); err != nil {
		t.Fatal(err)
	}
	cb := p.cb
	cb.Neighbors = slices.Clone(cb.Neighbors)
	cb.Neighbors[0].Import = []Rule{{Permit: false, Kind: IMETRoutes}}
	if err := p.b.Reconfigure(cb); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "sessions after the filters", func() bool { return established(p.a) && established(p.b) })
	vtep := netip.MustParseAddr("192.0.2.1")
	nh := netip.MustParseAddr("127.0.0.1")
	denied := []Route{
		{Kind: Prefix, Prefix: netip.MustParsePrefix("198.51.100.128/25"), NextHop: nh},
		{Kind: MACIP, RD: "127.0.0.1:9", MAC: frame.MAC{2, 0, 0, 0, 0, 9}, VNI: 9, RTs: []RT{{ASN: 65000, Value: 9}}, NextHop: vtep},
		{Kind: IMET, RD: "127.0.0.1:1", VNI: 1, RTs: []RT{{ASN: 65000, Value: 1}}, NextHop: vtep},
	}
	allowed := []Route{
		{Kind: Prefix, Prefix: netip.MustParsePrefix("203.0.113.0/24"), NextHop: nh},
		{Kind: MACIP, RD: "127.0.0.1:1", MAC: frame.MAC{2, 0, 0, 0, 0, 1}, VNI: 1, RTs: []RT{{ASN: 65000, Value: 1}}, NextHop: vtep},
	}
	for _, r := range append(slices.Clone(denied), allowed...) {
		if err := p.a.Announce(r); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range allowed {
		waitFor(t, r.ID(), func() bool { u, ok := p.last(r.ID()); return ok && !u.Withdraw })
	}
	time.Sleep(time.Second)
	for _, r := range denied {
		if u, ok := p.last(r.ID()); ok && !u.Withdraw {
			t.Errorf("filtered route reached b: %v", u.Route)
		}
	}
	// Bad filters are refused.
	ca.Neighbors[0].Export = []Rule{{Kind: MACIPRoutes}}
	if err := p.a.Reconfigure(ca); err == nil {
		t.Error("an export filter by MAC route type was accepted")
	}
}

func TestGoBGPNoTransit(t *testing.T) {
	// b learns a's route and must not pass it on to c.
	port := freePort(t)
	addr := func(i byte) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 0, i}) }
	fams := []Family{IPv4Unicast}
	var mu sync.Mutex
	var got []Update
	sp := map[byte]*GoBGP{}
	for _, x := range []struct {
		me    byte
		peers []byte
	}{{1, []byte{2}}, {2, []byte{1, 3}}, {3, []byte{2}}} {
		c := Config{ASN: 65000 + uint32(x.me), RouterID: addr(x.me), ListenAddrs: []netip.Addr{addr(x.me)}, ListenPort: port}
		for _, o := range x.peers {
			c.Neighbors = append(c.Neighbors, Neighbor{Address: addr(o), ASN: 65000 + uint32(o), Port: port, Source: addr(x.me), Families: fams})
		}
		s := NewGoBGP(quiet())
		watch := func([]Update) {}
		if x.me == 3 {
			watch = func(us []Update) { mu.Lock(); got = append(got, us...); mu.Unlock() }
		}
		if err := s.Start(c, watch); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Stop(false) })
		sp[x.me] = s
	}
	waitFor(t, "sessions", func() bool {
		ps := sp[2].Peers()
		return len(ps) == 2 && ps[0].State == "established" && ps[1].State == "established"
	})
	if err := sp[1].Announce(Route{Kind: Prefix, Prefix: netip.MustParsePrefix("198.51.100.0/24"), NextHop: addr(1)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to get a's route", func() bool { return sp[2].Peers()[0].Received[IPv4Unicast]+sp[2].Peers()[1].Received[IPv4Unicast] == 1 })
	// b's own route reaches c: the session works.
	if err := sp[2].Announce(Route{Kind: Prefix, Prefix: netip.MustParsePrefix("203.0.113.0/24"), NextHop: addr(2)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "c to get b's route", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) > 0 })
	time.Sleep(time.Second)
	mu.Lock()
	defer mu.Unlock()
	for _, u := range got {
		if u.Prefix == netip.MustParsePrefix("198.51.100.0/24") {
			t.Errorf("b passed a's route on to c: %v", u.Route)
		}
	}
}

func TestRuleMatches(t *testing.T) {
	macip := &Route{Kind: MACIP, RTs: []RT{{ASN: 1, Value: 2}}, IP: netip.MustParseAddr("10.1.2.3")}
	imet := &Route{Kind: IMET, RTs: []RT{{ASN: 1, Value: 3}}}
	pfx := &Route{Kind: Prefix, Prefix: netip.MustParsePrefix("10.1.0.0/16")}
	for _, c := range []struct {
		r    Rule
		want [3]bool
	}{
		{Rule{}, [3]bool{true, true, true}},
		{Rule{Kind: MACIPRoutes}, [3]bool{true, false, false}},
		{Rule{Kind: IMETRoutes}, [3]bool{false, true, false}},
		{Rule{Kind: EVPNRoutes}, [3]bool{true, true, false}},
		{Rule{Kind: PrefixRoutes}, [3]bool{false, false, true}},
		{Rule{HasRT: true, RT: RT{ASN: 1, Value: 3}}, [3]bool{false, true, false}},
		{Rule{Prefix: netip.MustParsePrefix("10.0.0.0/8")}, [3]bool{true, false, true}},
		{Rule{Prefix: netip.MustParsePrefix("10.1.2.0/24")}, [3]bool{true, false, false}},
	} {
		for i, r := range []*Route{macip, imet, pfx} {
			if got := matches(&c.r, r); got != c.want[i] {
				t.Errorf("%+v matches %v: %v", c.r, r, got)
			}
		}
	}
	if Permitted([]Rule{{Permit: false, Kind: IMETRoutes}, {Permit: true}}, imet) || !Permitted(nil, imet) {
		t.Error("Permitted")
	}
}

func TestPassiveSide(t *testing.T) {
	a1, a2 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	if passive(Neighbor{Address: a2, Source: a1}) || !passive(Neighbor{Address: a1, Source: a2}) {
		t.Error("the higher address must wait, the lower connect")
	}
	if passive(Neighbor{Address: a1}) { // the kernel's source toward 127.0.0.1 is itself: not higher
		t.Error("passive toward ourselves")
	}
	// Unnumbered: our link-local address on the interface against the
	// neighbor's (TestUnnumbered/pwgate has two pwgates decide); lo has
	// none, so pwgated connects, whatever Source says.
	if passive(Neighbor{Interface: "lo", Source: a2, Address: netip.MustParseAddr("fe80::1%lo")}) {
		t.Error("passive without a link-local address of ours")
	}
}

// A neighbor that does not connect to the passive side (FRR refused
// before we knew it, and waiting its 120 s connect-retry; here a GoBGP
// that only listens) is connected to after PassiveWait, and the session
// comes up.
func TestPassiveFallsBack(t *testing.T) {
	defer func(w time.Duration) { PassiveWait = w }(PassiveWait)
	PassiveWait = time.Second
	port := freePort(t)
	a1, a2 := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")
	b := server.NewBgpServer(server.LoggerOption(&logger{l: quiet()}))
	go b.Serve()
	t.Cleanup(b.Stop)
	ctx := context.Background()
	if err := b.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: 65001, RouterId: a1.String(), ListenPort: int32(port), ListenAddresses: []string{a1.String()}}}); err != nil {
		t.Fatal(err)
	}
	if err := b.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: a2.String(), PeerAsn: 65002},
		Transport: &api.Transport{PassiveMode: true, LocalAddress: a1.String(), RemotePort: uint32(port)},
	}}); err != nil {
		t.Fatal(err)
	}
	a := NewGoBGP(quiet())
	if err := a.Start(Config{ASN: 65002, RouterID: a2, ListenAddrs: []netip.Addr{a2}, ListenPort: port,
		Neighbors: []Neighbor{{Address: a1, ASN: 65001, Port: port, Source: a2, Families: []Family{IPv4Unicast}}}}, func([]Update) {}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Stop(false) })
	start := time.Now()
	waitFor(t, "the session after the passive side connected", func() bool { return established(a) })
	if took := time.Since(start); took < PassiveWait {
		t.Errorf("up after %v, before the passive side gave up waiting", took)
	}
	waitFor(t, "the neighbor no longer waited for", func() bool {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.waiting) == 0
	})
}

// BenchmarkMove announces a MAC from a new VTEP and withdraws it from the
// old, with 10,000 of our MAC routes in the table (the cost of one MAC
// move at the originator; GoBGP's UUID withdrawal made it grow with the
// table).
func BenchmarkMove(b *testing.B) {
	s := NewGoBGP(quiet())
	if err := s.Start(Config{ASN: 65001, RouterID: netip.MustParseAddr("127.0.0.1"), ListenPort: -1}, func([]Update) {}); err != nil {
		b.Fatal(err)
	}
	defer s.Stop(false)
	vt := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")}
	route := func(i, v int, seq uint32) Route {
		return Route{Kind: MACIP, RD: fmt.Sprintf("192.0.2.%d:1", v+1), MAC: frame.MAC{2, 0, 0, 0, byte(i >> 8), byte(i)}, VNI: 101,
			RTs: []RT{{ASN: 65001, Value: 101}}, Seq: seq, NextHop: vt[v]}
	}
	for i := range 10000 {
		if err := s.Announce(route(i, 0, 0)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for n := 0; b.Loop(); n++ {
		i, from, seq := n%10000, (n/10000)%2, uint32(n/10000)
		if err := s.Announce(route(i, 1-from, seq+1)); err != nil {
			b.Fatal(err)
		}
		if err := s.Withdraw(route(i, from, seq)); err != nil {
			b.Fatal(err)
		}
	}
}

// The collector hears every announcer's path to a VIP, not only the best,
// and each one's withdrawal, also when a session ends.
func TestGoBGPMultipath(t *testing.T) {
	port := freePort(t)
	addr := func(i byte) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 0, i}) }
	fams := []Family{IPv4Unicast}
	vip := netip.MustParsePrefix("192.0.2.80/32")
	var mu sync.Mutex
	paths := map[netip.Addr]Update{}
	cc := Config{ASN: 65010, RouterID: addr(10), ListenAddrs: []netip.Addr{addr(10)}, ListenPort: port}
	for i := byte(1); i <= 3; i++ {
		cc.Neighbors = append(cc.Neighbors, Neighbor{Address: addr(i), ASN: 65000 + uint32(i), Port: port, Source: addr(10), Families: fams})
	}
	col := NewGoBGP(quiet())
	if err := col.Start(cc, func(us []Update) {
		mu.Lock()
		defer mu.Unlock()
		for _, u := range us {
			if u.Kind != Prefix || u.Prefix != vip {
				continue
			}
			if u.Withdraw {
				delete(paths, u.Peer)
			} else {
				paths[u.Peer] = u
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { col.Stop(false) })
	var sp []*GoBGP
	for i := byte(1); i <= 3; i++ {
		s := NewGoBGP(quiet())
		c := Config{ASN: 65000 + uint32(i), RouterID: addr(i), ListenAddrs: []netip.Addr{addr(i)}, ListenPort: port,
			Neighbors: []Neighbor{{Address: addr(10), ASN: 65010, Port: port, Source: addr(i), Families: fams}}}
		if err := s.Start(c, func([]Update) {}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Stop(false) })
		sp = append(sp, s)
	}
	// Routes only once every speaker has started: GoBGP's StartBgp writes
	// a package variable that a running server's update processing reads
	// (a race between servers in one process; pwgated has one).
	for i, s := range sp {
		if err := s.Announce(Route{Kind: Prefix, Prefix: vip, NextHop: netip.IPv4Unspecified(), MED: uint32(i + 1), HasMED: true}); err != nil {
			t.Fatal(err)
		}
	}
	count := func(want int) func() bool {
		return func() bool { mu.Lock(); defer mu.Unlock(); return len(paths) == want }
	}
	waitFor(t, "three paths", count(3))
	mu.Lock()
	for peer, u := range paths {
		if u.NextHop != peer || u.MED != uint32(peer.As4()[3]) {
			t.Errorf("path from %s: %v", peer, u.Route)
		}
	}
	mu.Unlock()
	// A path whose attributes change stays, with the new ones.
	if err := sp[2].Announce(Route{Kind: Prefix, Prefix: vip, NextHop: netip.IPv4Unspecified(), MED: 1000, HasMED: true, Communities: []uint32{GracefulShutdown}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the changed path", func() bool { mu.Lock(); defer mu.Unlock(); return paths[addr(3)].MED == 1000 })
	time.Sleep(500 * time.Millisecond)
	if n := len(paths); n != 3 {
		t.Fatalf("%d paths after one changed", n)
	}
	if err := sp[0].Withdraw(Route{Kind: Prefix, Prefix: vip}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two paths after a withdrawal", count(2))
	sp[1].Stop(false)
	waitFor(t, "one path after a session ended", count(1))
}

// A default route goes to the neighbor with DefaultOriginate, past its
// export rules, and to no other neighbor; it goes away with the knob.
func TestGoBGPDefaultOriginate(t *testing.T) {
	port := freePort(t)
	addr := func(i byte) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 0, i}) }
	fams := []Family{IPv4Unicast}
	var mu sync.Mutex
	got := map[netip.Addr]bool{} // who has a default route
	cc := Config{ASN: 65000, RouterID: addr(1), ListenAddrs: []netip.Addr{addr(1)}, ListenPort: port}
	for i := byte(2); i <= 3; i++ {
		cc.Neighbors = append(cc.Neighbors, Neighbor{Address: addr(i), ASN: 65000 + uint32(i), Port: port, Source: addr(1), Families: fams,
			DefaultOriginate: i == 2, Export: []Rule{{Permit: false}}}) // deny everything else
	}
	// The neighbors start first: a originates its default route as it
	// starts (see TestGoBGPMultipath on starting servers while others run).
	for i := byte(2); i <= 3; i++ {
		s := NewGoBGP(quiet())
		c := Config{ASN: 65000 + uint32(i), RouterID: addr(i), ListenAddrs: []netip.Addr{addr(i)}, ListenPort: port,
			Neighbors: []Neighbor{{Address: addr(1), ASN: 65000, Port: port, Source: addr(i), Families: fams}}}
		if err := s.Start(c, func(us []Update) {
			mu.Lock()
			defer mu.Unlock()
			for _, u := range us {
				if u.Prefix.Bits() == 0 {
					got[addr(i)] = !u.Withdraw
				}
			}
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Stop(false) })
	}
	a := NewGoBGP(quiet())
	if err := a.Start(cc, func([]Update) {}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Stop(false) })
	has := func(i byte) bool { mu.Lock(); defer mu.Unlock(); return got[addr(i)] }
	waitFor(t, "the default route at the neighbor that asked for it", func() bool { return has(2) })
	waitFor(t, "both sessions", func() bool {
		ps := a.Peers()
		return len(ps) == 2 && ps[0].State == "established" && ps[1].State == "established"
	})
	time.Sleep(time.Second)
	if has(3) {
		t.Error("the default route reached a neighbor without default_originate")
	}
	cc.Neighbors[0].DefaultOriginate = false
	if err := a.Reconfigure(cc); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the default route withdrawn", func() bool { return !has(2) })
	// An unnumbered neighbor's applies at the address heard on its
	// interface (setExportPolicy names it by that address).
	bad := cc
	bad.Neighbors = []Neighbor{{Interface: "eth0", ASN: 65002, Families: fams, DefaultOriginate: true}}
	if err := bad.Validate(); err != nil {
		t.Errorf("default_originate on an unnumbered neighbor: %v", err)
	}
	bad.Neighbors = []Neighbor{{Address: addr(2), ASN: 65002, Families: []Family{EVPN}, DefaultOriginate: true}}
	if err := bad.Validate(); err == nil {
		t.Error("default_originate without a unicast family was taken")
	}
}

// TestGoBGPStopWhileReceiving stops a speaker while its neighbor sends
// updates. GoBGP v3.37's StopBgp clears the global configuration that a
// session's receive goroutine reads for each UPDATE; Stop ends the
// sessions first and waits until GoBGP has freed them, which it reports
// in a warning when it cannot (and the race detector, in CI's unit step,
// when the two meet).
func TestGoBGPStopWhileReceiving(t *testing.T) {
	for round := 0; round < 3; round++ {
		var warned warnings
		p := newPairLogged(t, false, slog.New(&warned))
		done := make(chan struct{})
		var wg sync.WaitGroup
		for g := byte(0); g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					select {
					case <-done:
						return
					default:
					}
					r := Route{Kind: Prefix, Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, g, byte(i)}), 32), NextHop: netip.IPv4Unspecified()}
					p.b.Announce(r)
					if i%2 == 1 {
						p.b.Withdraw(r)
					}
				}
			}()
		}
		waitFor(t, "updates", func() bool { return p.a.Peers()[0].Received[IPv4Unicast] > 0 })
		start := time.Now()
		p.a.Stop(false)
		took := time.Since(start)
		close(done)
		wg.Wait()
		if w := warned.get(); slices.Contains(w, "bgp: sessions not ended in time at stop") || took >= endWait {
			t.Fatalf("stop took %v, warned %q", took, w)
		}
		p.b.Stop(false)
	}
}

// TestGoBGPStopFreesIdleSessions: Stop waits for neighbors that have no
// session too (GoBGP frees them as it does established ones), and does
// not wait long for them.
func TestGoBGPStopFreesIdleSessions(t *testing.T) {
	var warned warnings
	s := NewGoBGP(slog.New(&warned))
	a := netip.MustParseAddr("127.0.0.1")
	if err := s.Start(Config{ASN: 65001, RouterID: a, ListenAddrs: []netip.Addr{a}, ListenPort: freePort(t),
		Neighbors: []Neighbor{{Address: netip.MustParseAddr("127.0.0.9"), ASN: 65009, Port: freePort(t), Source: a, Families: []Family{IPv4Unicast}}}}, func([]Update) {}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	s.Stop(false)
	if took, w := time.Since(start), warned.get(); slices.Contains(w, "bgp: sessions not ended in time at stop") || took >= endWait {
		t.Fatalf("stop took %v, warned %q", took, w)
	}
}

// warnings is a slog.Handler that keeps the messages of warnings and
// errors.
type warnings struct {
	mu  sync.Mutex
	got []string
}

func (w *warnings) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got = append(w.got, r.Message)
	return nil
}
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }
func (w *warnings) get() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.got)
}
