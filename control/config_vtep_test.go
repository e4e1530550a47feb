package control

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/pwgate/pwgate/bpf"
	"github.com/pwgate/pwgate/control/evpn"
)

// TestVTEPPrefixes: vxlan.vtep_prefixes and a neighbor's (inherited from
// its peer group) reach the controller; without them the default is
// anywhere, flagged for a warning.
func TestVTEPPrefixes(t *testing.T) {
	c, err := Parse("f.yaml", []byte(evpnYAML))
	if err != nil {
		t.Fatal(err)
	}
	if p, anywhere := c.vtepPrefixes(); p != nil || !anywhere {
		t.Errorf("default on a routed underlay: %v, anywhere %v", p, anywhere)
	}
	y := strings.Replace(evpnYAML, "  mac_aging: 120\n", "  mac_aging: 120\n  vtep_prefixes: [10.0.0.0/24, 10.1.0.0/16]\n", 1)
	y = strings.Replace(y, "      hold_time: 30\n", "      hold_time: 30\n      vtep_prefixes: [10.3.0.0/16]\n", 1)
	y = strings.Replace(y, "      keepalive: 3\n", "      keepalive: 3\n      vtep_prefixes: [10.2.0.0/16]\n", 1)
	if c, err = Parse("f.yaml", []byte(y)); err != nil {
		t.Fatal(err)
	}
	e := c.evpnConfig(c.VTEPAddr())
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24"), netip.MustParsePrefix("10.1.0.0/16")}
	if !slices.Equal(e.VTEPPrefixes, want) {
		t.Errorf("vtep_prefixes %v, want %v", e.VTEPPrefixes, want)
	}
	n2, n3 := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	if g := e.NeighborVTEPs[n2]; len(g) != 1 || g[0].String() != "10.2.0.0/16" {
		t.Errorf("10.0.0.2 (from its group): %v", g)
	}
	if g := e.NeighborVTEPs[n3]; len(g) != 1 || g[0].String() != "10.3.0.0/16" {
		t.Errorf("10.0.0.3 (its own): %v", g)
	}
}

// TestVTEPPrefixesOverWireGuard: inside WireGuard the default is the
// peers' allowed_ips.
func TestVTEPPrefixesOverWireGuard(t *testing.T) {
	y := `mode: vxlan
downlink:
  interface: dl0
uplink:
  interface: ul0
local:
  address: 10.99.0.1/24
wireguard:
  private_key_file: /etc/pwgate/wg.key
  addresses: [10.99.0.1/24]
  peers:
    - public_key: "` + wgKeyB + `"
      endpoint: "192.0.2.2:51820"
      allowed_ips: [10.99.0.2/32, 10.99.1.0/24]
vxlan:
  vnis:
    - vni: 101
bgp:
  asn: 65000
  router_id: 10.99.0.1
  neighbors:
    - address: 10.99.0.2
      asn: 65000
`
	c, err := Parse("f.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	p, anywhere := c.vtepPrefixes()
	if anywhere || len(p) != 2 || p[1].String() != "10.99.1.0/24" {
		t.Errorf("inside WireGuard: %v, anywhere %v", p, anywhere)
	}
}

func TestVTEPPrefixesErrors(t *testing.T) {
	ev := func(old, new string) string { return strings.Replace(evpnYAML, old, new, 1) }
	for _, tc := range []struct{ name, yaml, want string }{
		{"not a prefix", ev("  mac_aging: 120\n", "  mac_aging: 120\n  vtep_prefixes: [10.0.0.1]\n"), "not a prefix"},
		{"host bits", ev("  mac_aging: 120\n", "  mac_aging: 120\n  vtep_prefixes: [10.0.0.1/24]\n"), "not a prefix"},
		{"other version", ev("  mac_aging: 120\n", "  mac_aging: 120\n  vtep_prefixes: [2001:db8::/32]\n"), "vxlan.vtep_prefixes[0]: 2001:db8::/32 is not of the same IP version"},
		{"neighbor other version", ev("      hold_time: 30\n", "      hold_time: 30\n      vtep_prefixes: [2001:db8::/32]\n"), "bgp.neighbors[1].vtep_prefixes[0]"},
		{"neighbor by interface", ev("    - address: 10.0.0.2\n      peer_group: evpn\n", "    - interface: ul0\n      peer_group: evpn\n      vtep_prefixes: [10.0.0.0/24]\n"), "needs the neighbor's address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestVTEPLimitIsTheMapSize: the controller's VTEP limit is the XDP peer
// map's size, so that a full set of VTEPs always fits the map.
func TestVTEPLimitIsTheMapSize(t *testing.T) {
	if evpn.DefaultMaxVTEPs != bpf.MaxPeers {
		t.Errorf("evpn.DefaultMaxVTEPs %d, bpf.MaxPeers %d", evpn.DefaultMaxVTEPs, bpf.MaxPeers)
	}
}
