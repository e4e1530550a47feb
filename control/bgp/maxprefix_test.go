package bgp

import (
	"net/netip"
	"testing"
)

// TestDefaultMaxPrefix: every family of every neighbor has a prefix limit,
// the configured one or the family's default (issue 21 finding 3: without
// one, 100,000 MAC routes grew pwgated by 700 MiB).
func TestDefaultMaxPrefix(t *testing.T) {
	g := &GoBGP{}
	for _, tc := range []struct {
		max  int
		f    Family
		want uint32
	}{
		{0, EVPN, DefaultMaxPrefixEVPN},
		{0, IPv4Unicast, DefaultMaxPrefixUnicast},
		{0, IPv6Unicast, DefaultMaxPrefixUnicast},
		{50, EVPN, 50},
		{300_000, IPv4Unicast, 300_000},
	} {
		n := Neighbor{Address: netip.MustParseAddr("192.0.2.2"), ASN: 65001, Families: []Family{tc.f}, MaxPrefix: tc.max}
		p := g.peer(n, Config{ASN: 65000, RouterID: netip.MustParseAddr("192.0.2.1")})
		if len(p.AfiSafis) != 1 || p.AfiSafis[0].PrefixLimits == nil || p.AfiSafis[0].PrefixLimits.MaxPrefixes != tc.want {
			t.Errorf("max_prefix %d, %v: %+v, want %d", tc.max, tc.f, p.AfiSafis, tc.want)
		}
	}
}
