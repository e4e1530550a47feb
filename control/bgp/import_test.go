package bgp

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pwgate/pwgate/dataplane/frame"
)

// Two neighbors send the same routes and one of them is denied by its
// import rules: the permitted neighbor's routes stay, when the denied
// neighbor's arrive (GoBGP would choose those as best: lower router ID)
// and when they are withdrawn. The import rules apply to each path
// before a best one is chosen (issue 21, finding 4).
func TestGoBGPImportPerPath(t *testing.T) {
	port := freePort(t)
	addr := func(i byte) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 0, i}) }
	fams := []Family{EVPN, IPv4Unicast}
	denied, permitted := addr(1), addr(2)

	var mu sync.Mutex
	evpn := map[string]map[netip.Addr]bool{}          // route ID → neighbors with a path
	unicast := map[netip.Prefix]map[netip.Addr]bool{} // prefix → neighbors with a path
	cc := Config{ASN: 65010, RouterID: addr(10), ListenAddrs: []netip.Addr{addr(10)}, ListenPort: port}
	for _, a := range []netip.Addr{denied, permitted} {
		n := Neighbor{Address: a, ASN: 65000 + uint32(a.As4()[3]), Port: port, Source: addr(10), Families: fams}
		if a == denied {
			n.Import = []Rule{{Permit: false}}
		}
		cc.Neighbors = append(cc.Neighbors, n)
	}
	col := NewGoBGP(quiet())
	if err := col.Start(cc, func(us []Update) {
		mu.Lock()
		defer mu.Unlock()
		for _, u := range us {
			switch {
			case u.Kind == Prefix && u.Withdraw:
				delete(unicast[u.Prefix], u.Peer)
			case u.Kind == Prefix:
				if unicast[u.Prefix] == nil {
					unicast[u.Prefix] = map[netip.Addr]bool{}
				}
				unicast[u.Prefix][u.Peer] = true
			case u.Withdraw:
				delete(evpn[u.ID()], u.Peer)
			default:
				if evpn[u.ID()] == nil {
					evpn[u.ID()] = map[netip.Addr]bool{}
				}
				evpn[u.ID()][u.Peer] = true
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { col.Stop(false) })
	sp := map[netip.Addr]*GoBGP{}
	for _, a := range []netip.Addr{denied, permitted} {
		s := NewGoBGP(quiet())
		c := Config{ASN: 65000 + uint32(a.As4()[3]), RouterID: a, ListenAddrs: []netip.Addr{a}, ListenPort: port,
			Neighbors: []Neighbor{{Address: addr(10), ASN: 65010, Port: port, Source: a, Families: fams}}}
		if err := s.Start(c, func([]Update) {}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Stop(false) })
		sp[a] = s
	}
	// The same MAC route (one RD: one originator, reflected by both) and
	// the same prefix.
	mac := Route{Kind: MACIP, RD: "192.0.2.1:1", MAC: frame.MAC{2, 0, 0, 0, 0, 0x41}, VNI: 101, RTs: []RT{{ASN: 65000, Value: 101}},
		NextHop: netip.MustParseAddr("192.0.2.1")}
	pfx := Route{Kind: Prefix, Prefix: netip.MustParsePrefix("198.51.100.0/24"), NextHop: netip.IPv4Unspecified()}
	received := func(from netip.Addr) int {
		n := 0
		for _, p := range col.Peers() {
			if p.Address == from && p.State == "established" {
				n = p.Received[EVPN] + p.Received[IPv4Unicast]
			}
		}
		return n
	}
	check := func(when string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if ps := evpn[mac.ID()]; len(ps) != 1 || !ps[permitted] {
			t.Errorf("%s: paths to the MAC route from %v, want only the permitted neighbor's", when, ps)
		}
		if ps := unicast[pfx.Prefix]; len(ps) != 1 || !ps[permitted] {
			t.Errorf("%s: paths to %s from %v, want only the permitted neighbor's", when, pfx.Prefix, ps)
		}
	}
	for _, r := range []Route{mac, pfx} {
		if err := sp[permitted].Announce(r); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the permitted neighbor's routes", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return evpn[mac.ID()][permitted] && unicast[pfx.Prefix][permitted]
	})
	check("before the denied neighbor's routes")
	waitFor(t, "the denied neighbor's session", func() bool {
		for _, p := range col.Peers() {
			if p.Address == denied && p.State == "established" {
				return true
			}
		}
		return false
	})
	for _, r := range []Route{mac, pfx} {
		if err := sp[denied].Announce(r); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the denied neighbor's routes at GoBGP", func() bool { return received(denied) == 2 })
	time.Sleep(500 * time.Millisecond)
	check("after the denied neighbor's routes")
	for _, r := range []Route{mac, pfx} {
		if err := sp[denied].Withdraw(r); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the denied neighbor's withdrawals at GoBGP", func() bool { return received(denied) == 0 })
	time.Sleep(500 * time.Millisecond)
	check("after the denied neighbor's withdrawals")
	// The permitted neighbor's withdrawal takes the route away.
	if err := sp[permitted].Withdraw(mac); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the MAC route withdrawn", func() bool { mu.Lock(); defer mu.Unlock(); return len(evpn[mac.ID()]) == 0 })
}
