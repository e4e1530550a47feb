package bgp

import (
	"fmt"
	"net/netip"
	"runtime/debug"
	"testing"

	"github.com/pwgate/pwgate/dataplane/frame"
)

// TestDefaultMaxPrefix: every family of every neighbor has a prefix limit,
// the configured one or the family's default (issue 21 finding 3: without
// one, 100,000 MAC routes grew pwgated by 700 MiB).
func TestDefaultMaxPrefix(t *testing.T) {
	l := newPrefixLimit()
	a, b := netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	l.configure([]Neighbor{{Address: a, Families: []Family{EVPN, IPv4Unicast}}, {Address: b, Families: []Family{EVPN}, MaxPrefix: 50}})
	for _, tc := range []struct {
		peer netip.Addr
		f    Family
		want int
	}{
		{a, EVPN, DefaultMaxPrefixEVPN},
		{a, IPv4Unicast, DefaultMaxPrefixUnicast},
		{b, EVPN, 50},
		{netip.MustParseAddr("fe80::1"), IPv6Unicast, DefaultMaxPrefixUnicast}, // unnumbered
	} {
		if got := l.limit(tc.peer, tc.f); got != tc.want {
			t.Errorf("%s %v: limit %d, want %d", tc.peer, tc.f, got, tc.want)
		}
	}
}

// TestPrefixLimitOver: a neighbor past its limit is reported once, until
// it is let in again; another family has its own limit.
func TestPrefixLimitOver(t *testing.T) {
	l := newPrefixLimit()
	nb := netip.MustParseAddr("192.0.2.2")
	l.configure([]Neighbor{{Address: nb, Families: []Family{EVPN, IPv4Unicast}, MaxPrefix: 3}})
	if l.over(nb, EVPN, 3) || l.over(nb, IPv4Unicast, 2) {
		t.Fatal("at the limit is over it")
	}
	if !l.over(nb, EVPN, 4) {
		t.Fatal("past the limit is not over it")
	}
	if l.over(nb, EVPN, 5) || l.resetsOf(nb) != 1 {
		t.Fatalf("reported again while down; resets %d", l.resetsOf(nb))
	}
	l.letIn(nb)
	if !l.over(nb, EVPN, 4) || l.resetsOf(nb) != 2 {
		t.Fatalf("after being let in: resets %d", l.resetsOf(nb))
	}
}

// TestGoBGPPrefixLimit: a neighbor that sends more routes than max_prefix
// loses its session (counted in Peers), and what it sent is withdrawn.
func TestGoBGPPrefixLimit(t *testing.T) {
	p := newPair(t, false)
	p.cb.Neighbors[0].MaxPrefix = 5
	if err := p.b.Reconfigure(p.cb); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "session up again", func() bool { return established(p.a) && established(p.b) })
	vtep := netip.MustParseAddr("2001:db8::a")
	for i := range 8 {
		r := Route{Kind: MACIP, RD: AutoRD(p.ca.RouterID, 0), MAC: frame.MAC{2, 0, 0, 0, 0, byte(i)}, VNI: 101, RTs: []RT{AutoRT(p.ca.ASN, 101)}, NextHop: vtep}
		if err := p.a.Announce(r); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the session ended for its limit", func() bool {
		ps := p.b.Peers()
		return len(ps) == 1 && ps[0].LimitResets == 1 && ps[0].State != "established"
	})
	last := Route{Kind: MACIP, RD: AutoRD(p.ca.RouterID, 0), MAC: frame.MAC{2, 0, 0, 0, 0, 0}, VNI: 101}
	waitFor(t, "its routes withdrawn", func() bool { u, ok := p.last(last.ID()); return ok && u.Withdraw })
	if ps := p.b.Peers(); ps[0].Received[EVPN] != 0 {
		t.Errorf("routes kept: %s", fmt.Sprint(ps[0].Received))
	}
}

// TestEagerGC: GOGC is eagerPercent between begin and end, nested, and
// what it was after; a lower one, or GOGC=off, is left alone.
func TestEagerGC(t *testing.T) {
	gogc := func() int { p := debug.SetGCPercent(-1); debug.SetGCPercent(p); return p }
	defer debug.SetGCPercent(debug.SetGCPercent(50))
	var e eagerGC
	e.begin()
	e.begin()
	e.end()
	if p := gogc(); p != eagerPercent {
		t.Errorf("GOGC %d while a session still ends, want %d", p, eagerPercent)
	}
	e.end()
	if p := gogc(); p != 50 {
		t.Errorf("GOGC %d after, want 50 again", p)
	}
	for _, was := range []int{eagerPercent / 2, -1} {
		debug.SetGCPercent(was)
		e.begin()
		if p := gogc(); p != was {
			t.Errorf("GOGC %d: %d between begin and end", was, p)
		}
		e.end()
		if p := gogc(); p != was {
			t.Errorf("GOGC %d: %d after", was, p)
		}
	}
}
