package evpn

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/pwgate/pwgate/control/bgp"
	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/stats"
	"github.com/pwgate/pwgate/dataplane/vxlan"
)

// nthMAC is a MAC made of n.
func nthMAC(n int) frame.MAC { return frame.MAC{0x02, 0x77, 0, byte(n >> 16), byte(n >> 8), byte(n)} }

// nthVTEP is an address in 2001:db8:77::/48 made of n.
func nthVTEP(n int) netip.Addr {
	b := netip.MustParseAddr("2001:db8:77::").As16()
	b[14], b[15] = byte(n>>8), byte(n)
	return netip.AddrFrom16(b)
}

// TestRefuseOtherFamily: an IPv4 VTEP on an IPv6 box (and the other way
// round, and a mapped address) is not imported, so that no table names a
// VTEP the encapsulator cannot write (issue 21 finding 1: it panicked).
func TestRefuseOtherFamily(t *testing.T) {
	for _, tc := range []struct {
		local, vtep netip.Addr
	}{
		{ourVTEP, netip.MustParseAddr("192.0.2.7")},
		{netip.MustParseAddr("192.0.2.1"), vtepB},
		{ourVTEP, netip.MustParseAddr("::ffff:192.0.2.7")},
	} {
		f := newFixture(t, Config{Local: tc.local}, true)
		f.receive(t0, imet(tc.vtep, 101, false), macRoute(tc.vtep, macH1, 0))
		tab := f.c.Table().Load()
		if len(tab.VNIs[0].Flood) != 0 || f.where(0, macH1) != "" || len(f.u.vteps) != 0 {
			t.Errorf("local %s: VTEP %s imported: flood %v, XDP %v", tc.local, tc.vtep, tab.VNIs[0].Flood, f.u.vteps)
		}
		if s := f.counters(); s[stats.EVPNNotImportedFamily] != 2 || s[stats.EVPNRoutesNotImported] != 2 {
			t.Errorf("local %s: family %d, total %d, want 2", tc.local, s[stats.EVPNNotImportedFamily], s[stats.EVPNRoutesNotImported])
		}
	}
}

// TestRefuseOutsidePrefixes: VTEPs outside vtep_prefixes (or the
// neighbor's own list) are not imported.
func TestRefuseOutsidePrefixes(t *testing.T) {
	nb1, nb2 := netip.MustParseAddr("2001:db8:ff::1"), netip.MustParseAddr("2001:db8:ff::2")
	f := newFixture(t, Config{VTEPPrefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8::/120")},
		NeighborVTEPs: map[netip.Addr][]netip.Prefix{nb2: {netip.MustParsePrefix("2001:db8:77::/48")}}}, true)
	from := func(u bgp.Update, nb netip.Addr) bgp.Update { u.Peer = nb; return u }
	f.receive(t0,
		from(imet(vtepB, 101, false), nb1),      // inside the global list
		from(imet(nthVTEP(1), 101, false), nb1), // outside it
		from(imet(vtepC, 101, false), nb2),      // outside nb2's own list
		from(imet(nthVTEP(2), 101, false), nb2)) // inside it
	tab := f.c.Table().Load()
	var got []netip.Addr
	for _, i := range tab.VNIs[0].Flood {
		got = append(got, tab.VTEPs[i].Addr)
	}
	if len(got) != 2 || got[0] != vtepB && got[1] != vtepB || got[0] != nthVTEP(2) && got[1] != nthVTEP(2) {
		t.Errorf("flood list %v, want %s and %s", got, vtepB, nthVTEP(2))
	}
	if s := f.counters(); s[stats.EVPNNotImportedVTEPPrefix] != 2 {
		t.Errorf("vtep_prefix %d, want 2", s[stats.EVPNNotImportedVTEPPrefix])
	}
}

// TestVTEPLimit: past MaxVTEPs, routes naming new VTEPs are refused and
// counted once; when VTEPs go, the refused ones are imported (no VTEP is
// refused forever).
func TestVTEPLimit(t *testing.T) {
	f := newFixture(t, Config{MaxVTEPs: 3}, true)
	var us []bgp.Update
	for i := range 5 {
		us = append(us, imet(nthVTEP(i), 101, false))
	}
	f.receive(t0, us...)
	if n := len(f.u.vteps); n != 3 {
		t.Fatalf("%d VTEPs in XDP, want 3", n)
	}
	f.c.Age(t0) // nothing went: nothing retried, nothing counted again
	if s := f.counters(); s[stats.EVPNNotImportedVTEPLimit] != 2 {
		t.Errorf("vtep_limit %d, want 2", s[stats.EVPNNotImportedVTEPLimit])
	}
	// A known VTEP's routes still come in.
	f.receive(t0, macRoute(nthVTEP(0), macH1, 0))
	if f.where(0, macH1) != nthVTEP(0).String() {
		t.Error("a MAC behind a known VTEP was refused")
	}
	w := imet(nthVTEP(1), 101, false)
	w.Withdraw = true
	f.receive(t0, w)
	f.c.Age(t0.Add(agingStep))
	if n := len(f.u.vteps); n != 3 || !contains(f.u.vteps, nthVTEP(3)) && !contains(f.u.vteps, nthVTEP(4)) {
		t.Errorf("after a VTEP went: XDP %v", f.u.vteps)
	}
	if s := f.counters(); s[stats.EVPNNotImportedVTEPLimit] != 2 {
		t.Errorf("vtep_limit %d after the retry, want still 2", s[stats.EVPNNotImportedVTEPLimit])
	}
}

const agingStep = 5 * time.Second

func contains(s []netip.Addr, a netip.Addr) bool {
	for _, x := range s {
		if x == a {
			return true
		}
	}
	return false
}

// TestMACLimitCountsRemote: MACs from EVPN routes count against the MAC
// limit with the LAN's (issue 21 finding 3: 100,000 routes made 100,001
// FDB entries under a limit of 16,384); one MAC takes at most
// maxRoutesPerMAC routes.
func TestMACLimitCountsRemote(t *testing.T) {
	f := newFixture(t, Config{Limit: 4}, true)
	f.lan(0, macH1, t0)
	var us []bgp.Update
	for i := range 10 {
		us = append(us, macRoute(vtepB, nthMAC(i), 0))
	}
	f.receive(t0, us...)
	if n := f.c.Table().Load().Len(); n != 4 {
		t.Errorf("%d MACs in the FDB, want the limit 4", n)
	}
	if s := f.counters(); s[stats.EVPNNotImportedMACLimit] != 7 {
		t.Errorf("mac_limit %d, want 7", s[stats.EVPNNotImportedMACLimit])
	}
	// The LAN cannot add a fifth either.
	f.lan(0, macH2, t0)
	if f.where(0, macH2) != "" || f.counters()[stats.EVPNMACsOverLimit] != 1 {
		t.Errorf("a LAN MAC past the limit: %q, over limit %d", f.where(0, macH2), f.counters()[stats.EVPNMACsOverLimit])
	}
	// A route goes: a refused one takes its place at the next Age.
	w := macRoute(vtepB, nthMAC(0), 0)
	w.Withdraw = true
	f.receive(t0, w)
	f.c.Age(t0.Add(agingStep))
	if n := f.c.Table().Load().Len(); n != 4 || f.where(0, nthMAC(0)) != "" {
		t.Errorf("after a withdrawal: %d MACs, %s at %q", n, nthMAC(0), f.where(0, nthMAC(0)))
	}

	// Many addresses for one MAC.
	g := newFixture(t, Config{}, true)
	us = nil
	for i := range 40 {
		u := macRoute(vtepB, macH2, 0)
		u.IP = netip.AddrFrom4([4]byte{198, 51, 100, byte(i)})
		us = append(us, u)
	}
	g.receive(t0, us...)
	if n := len(g.c.byKey[vxlan.MakeKey(0, macH2)]); n != maxRoutesPerMAC {
		t.Errorf("%d routes kept for one MAC, want %d", n, maxRoutesPerMAC)
	}
}

// TestSetVTEPsRetried: a failed update of the XDP program's VTEP set is
// tried again by Age, not left until the set changes (issue 21: after
// E2BIG every later VTEP was refused forever).
func TestSetVTEPsRetried(t *testing.T) {
	f := newFixture(t, Config{}, true)
	f.u.fail = errors.New("update: key too big for map")
	f.receive(t0, imet(vtepB, 101, false))
	if len(f.u.vteps) != 0 {
		t.Fatal("the failing underlay took the set")
	}
	f.u.mu.Lock()
	f.u.fail = nil
	f.u.mu.Unlock()
	f.c.Age(t0.Add(agingStep))
	if len(f.u.vteps) != 1 || f.u.vteps[0] != vtepB {
		t.Errorf("after the retry: XDP %v", f.u.vteps)
	}
}

// TestNeighborVTEPLimit: one neighbor's routes name at most
// NeighborVTEPLimit VTEPs, so that a site whose routes come later from
// another neighbor still gets in (issue 21: after 2,000 VTEPs from one
// neighbor a real site was never accepted).
func TestNeighborVTEPLimit(t *testing.T) {
	f := newFixture(t, Config{MaxVTEPs: 8, NeighborVTEPLimit: 4}, true)
	hostile, real := netip.MustParseAddr("2001:db8:ff::9"), vtepB
	var us []bgp.Update
	for i := range 20 {
		u := imet(nthVTEP(i), 101, false)
		u.Peer = hostile
		us = append(us, u)
	}
	f.receive(t0, us...)
	site := imet(vtepB, 101, false)
	site.Peer = real
	f.receive(t0, site)
	if n := len(f.u.vteps); n != 5 || !contains(f.u.vteps, vtepB) {
		t.Errorf("XDP %v, want 4 of the neighbor's and %s", f.u.vteps, vtepB)
	}
	if s := f.counters(); s[stats.EVPNNotImportedVTEPLimit] != 16 {
		t.Errorf("vtep_limit %d, want 16", s[stats.EVPNNotImportedVTEPLimit])
	}
	// More routes to a VTEP the neighbor already names still come in.
	m := macRoute(nthVTEP(0), macH1, 0)
	m.Peer = hostile
	f.receive(t0, m)
	if f.where(0, macH1) != nthVTEP(0).String() {
		t.Error("a MAC behind one of the neighbor's VTEPs was refused")
	}
	if _, err := New(Config{Local: ourVTEP, VNIs: []VNI{{ID: 1}}, MaxVTEPs: 8, NeighborVTEPLimit: 9}, f.u, nil, f.c.log); err == nil {
		t.Error("a neighbor's limit above the VTEP limit was accepted")
	}
}

// TestRefusedPathHidesNoOther: two neighbors (route reflectors) pass on
// the same route; one's path is refused (its VTEP is outside that
// neighbor's prefixes), the other's is imported, whichever came first,
// and the refused neighbor's withdrawal leaves the other's in place
// (issue 21, finding 4: one path per route was kept, so the refused one
// could hide or withdraw the permitted one).
func TestRefusedPathHidesNoOther(t *testing.T) {
	nb1, nb2 := netip.MustParseAddr("2001:db8:ff::1"), netip.MustParseAddr("2001:db8:ff::2")
	from := func(u bgp.Update, nb netip.Addr, withdraw bool) bgp.Update {
		u.Peer, u.Withdraw = nb, withdraw
		return u
	}
	for _, first := range []netip.Addr{nb1, nb2} {
		f := newFixture(t, Config{NeighborVTEPs: map[netip.Addr][]netip.Prefix{
			nb1: {netip.MustParsePrefix("2001:db8:77::/48")}, // vtepB is outside
			nb2: {netip.MustParsePrefix(vtepB.String() + "/128")},
		}}, true)
		second := nb1
		if first == nb1 {
			second = nb2
		}
		f.receive(t0, from(imet(vtepB, 101, false), first, false), from(macRoute(vtepB, macH1, 0), first, false))
		f.receive(t0, from(imet(vtepB, 101, false), second, false), from(macRoute(vtepB, macH1, 0), second, false))
		if got := f.where(0, macH1); got != vtepB.String() {
			t.Errorf("%s first: %s is at %q, want %s", first, macH1, got, vtepB)
		}
		f.receive(t0, from(imet(vtepB, 101, false), nb1, true), from(macRoute(vtepB, macH1, 0), nb1, true))
		if got, tab := f.where(0, macH1), f.c.Table().Load(); got != vtepB.String() || len(tab.VNIs[0].Flood) != 1 {
			t.Errorf("%s first, after nb1's withdrawal: %s is at %q, flood %v; want %s", first, macH1, got, tab.VNIs[0].Flood, vtepB)
		}
		if s := f.counters(); s[stats.EVPNNotImportedVTEPPrefix] != 2 {
			t.Errorf("%s first: vtep_prefix %d, want 2", first, s[stats.EVPNNotImportedVTEPPrefix])
		}
		f.receive(t0, from(imet(vtepB, 101, false), nb2, true), from(macRoute(vtepB, macH1, 0), nb2, true))
		if got, tab := f.where(0, macH1), f.c.Table().Load(); got != "" || len(tab.VNIs[0].Flood) != 0 {
			t.Errorf("%s first, after both withdrawals: %s is at %q, flood %v", first, macH1, got, tab.VNIs[0].Flood)
		}
	}
}
