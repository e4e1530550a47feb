package config

import (
	"strings"
	"testing"
)

// TestVTEPPrefixesOverWireGuard: inside WireGuard the default is the
// peers' allowed_ips.
func TestVTEPPrefixesOverWireGuard(t *testing.T) {
	y := strings.Replace(vxlanInWGYAML, "allowed_ips: [10.99.0.2/32]", "allowed_ips: [10.99.0.2/32, 10.99.1.0/24]", 1) + `bgp:
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
	p, anywhere := c.VTEPPrefixList()
	if anywhere || len(p) != 2 || p[1].String() != "10.99.1.0/24" {
		t.Errorf("inside WireGuard: %v, anywhere %v", p, anywhere)
	}
}

func TestVTEPPrefixesErrors(t *testing.T) {
	ev := func(old, new string) string { return strings.Replace(evpnYAML, old, new, 1) }
	testRefused(t, []refusal{
		{"not a prefix", ev("  mac_aging: 120\n", "  mac_aging: 120\n  vtep_prefixes: [10.0.0.1]\n"), "not a prefix"},
		{"host bits", ev("  mac_aging: 120\n", "  mac_aging: 120\n  vtep_prefixes: [10.0.0.1/24]\n"), "not a prefix"},
		{"other version", ev("  mac_aging: 120\n", "  mac_aging: 120\n  vtep_prefixes: [2001:db8::/32]\n"), "vxlan.vtep_prefixes[0]: 2001:db8::/32 is not of the same IP version"},
		{"neighbor other version", ev("      hold_time: 30\n", "      hold_time: 30\n      vtep_prefixes: [2001:db8::/32]\n"), "bgp.neighbors[1].vtep_prefixes[0]"},
		{"neighbor by interface", ev("    - address: 10.0.0.2\n      peer_group: evpn\n", "    - interface: ul0\n      peer_group: evpn\n      vtep_prefixes: [10.0.0.0/24]\n"), "needs the neighbor's address"},
	})
}
