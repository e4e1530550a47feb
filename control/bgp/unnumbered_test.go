package bgp

import (
	"net/netip"
	"os"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// Routes with IPv6 next hops from an unnumbered neighbor, IPv4 ones too
// (RFC 8950): the link-local next hop is the one taken, with the
// neighbor's interface as its zone, whether it comes alone (GoBGP), after
// "::" or after a global address (FRR's two next hops, RFC 2545).
func TestUnnumberedNextHop(t *testing.T) {
	g := NewGoBGP(quiet())
	zones := map[netip.Addr]zone{netip.MustParseAddr("fe80::1"): {ifname: "s1"}}
	g.zones.Store(&zones)
	v4, v6 := bgp.NewIPAddrPrefix(32, "192.0.2.80"), bgp.NewIPv6AddrPrefix(128, "2001:db8:80::80")
	for _, c := range []struct {
		nlri             bgp.AddrPrefixInterface
		global, ll, want string
	}{
		{v4, "fe80::1", "", "fe80::1%s1"},
		{v4, "::", "fe80::1", "fe80::1%s1"},
		{v6, "fe80::1", "", "fe80::1%s1"},
		{v6, "::", "fe80::1", "fe80::1%s1"},
		{v6, "2001:db8::1", "fe80::1", "fe80::1%s1"},
		{v4, "2001:db8::1", "", "2001:db8::1"},
	} {
		nlri := c.nlri
		mp := bgp.NewPathAttributeMpReachNLRI(c.global, []bgp.AddrPrefixInterface{nlri})
		if c.ll != "" {
			mp.LinkLocalNexthop = netip.MustParseAddr(c.ll).AsSlice()
		}
		p, err := apiutil.NewPath(nlri, false, []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(0), mp}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		p.NeighborIp = "fe80::1"
		us := g.updates([]*api.Path{p})
		if len(us) != 1 || us[0].Peer.String() != "fe80::1%s1" || us[0].NextHop.String() != c.want || us[0].Prefix.String() != nlri.String() {
			t.Errorf("next hops %s, %s: %+v", c.global, c.ll, us)
		}
	}
}

// An unnumbered neighbor not heard yet waits outside GoBGP: pwgated
// starts, shows it, and stops.
func TestGoBGPUnnumberedWaits(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs CAP_NET_RAW for the router advertisements' socket (make test runs as root)")
	}
	g := NewGoBGP(quiet())
	c := Config{ASN: 65001, RouterID: netip.MustParseAddr("192.0.2.1"), ListenPort: -1,
		Neighbors: []Neighbor{{Interface: "pwt-none0", ASN: 65000, Families: []Family{IPv4Unicast, IPv6Unicast}, Description: "router"}}}
	if err := g.Start(c, func([]Update) {}); err != nil {
		t.Fatal(err)
	}
	ps := g.Peers()
	if len(ps) != 1 || ps[0].Key != "if:pwt-none0" || ps[0].State != StateNotHeard || ps[0].Description != "router" {
		t.Errorf("peers %+v", ps)
	}
	// Removed by a reload, and added back.
	if err := g.Reconfigure(Config{ASN: c.ASN, RouterID: c.RouterID}); err != nil {
		t.Fatal(err)
	}
	if ps := g.Peers(); len(ps) != 0 {
		t.Errorf("after removing it: %+v", ps)
	}
	if err := g.Reconfigure(c); err != nil {
		t.Fatal(err)
	}
	g.Stop(false)
}
