package config

import (
	"net/netip"
	"strings"
	"testing"
)

var evpnYAML = testYAML("evpn.yaml")

var staticYAML = testYAML("static.yaml")

func TestParseVXLANErrors(t *testing.T) {
	ev := func(old, new string) string { return strings.Replace(evpnYAML, old, new, 1) }
	st := func(old, new string) string { return strings.Replace(staticYAML, old, new, 1) }
	testRefused(t, []refusal{
		{"no section", "mode: vxlan\ndownlink:\n  interface: a\nuplink:\n  interface: b\n", "mode: vxlan needs a vxlan section"},
		{"section in ip6 mode", strings.Replace(staticYAML, "mode: vxlan", "mode: ip6\npeer:\n  address: 2001:db8:b::b", 1), "vxlan: only for mode: vxlan"},
		{"no vnis", st("  vnis:\n    - vni: 101\n      remotes: [2001:db8:c::c]\n", ""), "vnis: at least one VNI"},
		{"vni zero", st("vni: 101", "vni: 0"), "out of range"},
		{"vni too big", st("vni: 101", "vni: 16777216"), "out of range"},
		{"vni twice", ev("vni: 202", "vni: 101"), "VNI 101 is also vxlan.vnis[0]"},
		{"vlan twice", ev("vlan: 20", "vlan: untagged"), "the untagged LAN already carries VNI 101"},
		{"bad vlan", ev("vlan: 20", "vlan: 4095"), "neither untagged nor a VLAN ID"},
		{"no local", st("local:\n  address: 2001:db8:a::a/64\n", ""), "local.address: missing: our VTEP address"},
		{"token", st("address: 2001:db8:a::a/64", "token: ::a"), "a VTEP needs a fixed address"},
		{"remote is us", st("address: 2001:db8:a::a/64", "address: 2001:db8:b::b"), "2001:db8:b::b is our own VTEP address"},
		{"mixed versions", st("[2001:db8:c::c]", "[192.0.2.3]"), "192.0.2.3 is not of the same IP version"},
		{"no remotes", strings.Replace(st("  remotes: [2001:db8:b::b]\n", ""), "      remotes: [2001:db8:c::c]\n", "", 1), "no remote VTEP"},
		{"peer in vxlan", st("vxlan:", "peer:\n  address: 2001:db8:b::b\nvxlan:"), "peer.address: not in vxlan mode"},
		{"bad split", st("\n  remotes: [2001", "\n  split: always\n  remotes: [2001"), `unknown split "always"`},
		{"bad learning", st("\n  remotes: [2001", "\n  learning: maybe\n  remotes: [2001"), `unknown learning "maybe"`},
		{"rt without bgp", st("vni: 101", "vni: 101\n      route_target: 1:1"), "only with BGP EVPN"},
		{"bad rt", ev("65000:202", "4200000000:202"), "not a route target"},
		{"aging too short", ev("mac_aging: 120", "mac_aging: 1"), "out of range"},

		{"no asn", ev("  asn: 4200000000\n  router_id", "  router_id"), "bgp.asn: missing"},
		{"as_trans", ev("  asn: 4200000000\n  router_id", "  asn: 23456\n  router_id"), "AS_TRANS"},
		{"no router id", ev("  router_id: 10.0.0.1\n", ""), "bgp.router_id: missing"},
		{"ipv6 router id", ev("router_id: 10.0.0.1", "router_id: 2001:db8::1"), "not an IPv4 address"},
		{"no neighbors", ev("  neighbors:\n    - address: 10.0.0.2\n      peer_group: evpn\n    - address: 10.0.0.3\n      peer_group: evpn\n      hold_time: 30\n      password: s3cret\n      export:\n        - action: deny\n          prefix: 192.0.2.0/24\n", ""), "neighbors: at least one"},
		{"unknown group", ev("peer_group: evpn\n    - address: 10.0.0.3", "peer_group: ebpn\n    - address: 10.0.0.3"), `no peer group "ebpn"`},
		{"group twice", ev("  neighbors:", "    - name: evpn\n  neighbors:"), `a second peer group "evpn"`},
		{"address and interface", ev("    - address: 10.0.0.2\n", "    - address: 10.0.0.2\n      interface: ul0\n"), "set exactly one of address and interface"},
		{"no neighbor asn", ev("      asn: 4200000000\n      hold_time: 9", "      hold_time: 9"), "asn: missing (here or in its peer group)"},
		{"hold time 2", ev("hold_time: 30", "hold_time: 2"), "RFC 4271 allows 0 or 3"},
		{"keepalive too long", ev("hold_time: 30", "hold_time: 6"), "more than a third of hold_time"},
		{"family twice", ev("      hold_time: 9\n", "      hold_time: 9\n      families: [l2vpn-evpn, evpn]\n"), "twice"},
		{"bad family", ev("      hold_time: 9\n", "      hold_time: 9\n      families: [l2vpn-vpls]\n"), "unknown address family"},
		{"export by route type", ev("          prefix: 192.0.2.0/24", "          route_type: macip"), "export filters tell only evpn and prefix routes apart"},
		{"bad action", ev("action: deny\n          prefix", "action: drop\n          prefix"), `unknown action "drop"`},
		{"bad prefix", ev("prefix: 192.0.2.0/24", "prefix: 192.0.2.1/24"), "not a prefix"},
		{"bad password", ev("password: s3cret", "password: \"\""), "1 to 80 characters"},
		{"evpn outside vxlan", strings.Replace(wgYAML, "wireguard:", "bgp:\n  asn: 65000\n  router_id: 10.0.0.1\n  neighbors:\n    - address: 10.0.0.2\n      asn: 65000\n      families: [l2vpn-evpn]\nwireguard:", 1), "l2vpn-evpn needs mode: vxlan"},
		{"unknown bgp key", ev("  router_id: 10.0.0.1\n", "  router_id: 10.0.0.1\n  confederation: 1\n"), "unknown key"},
	})
}

func TestVXLANReloadable(t *testing.T) {
	a, err := Parse("f.yaml", []byte(evpnYAML))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ old, new, key string }{
		{"mac_aging: 120", "mac_aging: 300", ""},
		{"    - address: 10.0.0.2\n      peer_group: evpn\n", "", ""},
		{"vni: 202", "vni: 303", ""},
		{"address: 10.0.0.1/24", "address: 10.0.0.9/24", "local (our VTEP address)"},
		{"  asn: 4200000000\n  router_id", "  asn: 4200000001\n  router_id", "bgp.asn and bgp.router_id"},
		{"  mac_aging: 120\n", "  mac_aging: 120\n  mac_limit: 100\n", "vxlan.mac_limit"},
		{"  router_id: 10.0.0.1\n", "  router_id: 10.0.0.1\n  graceful_restart: false\n", "bgp.listen, bgp.port and graceful restart"},
	} {
		b, err := Parse("f.yaml", []byte(strings.Replace(evpnYAML, tc.old, tc.new, 1)))
		if err != nil {
			t.Fatalf("%q: %v", tc.new, err)
		}
		if got := a.Reloadable(b); got != tc.key {
			t.Errorf("%q → %q: Reloadable %q, want %q", tc.old, tc.new, got, tc.key)
		}
	}
}

// vxlanInWGYAML is a VTEP inside WireGuard, without remotes or BGP.
const vxlanInWGYAML = `mode: vxlan
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
      allowed_ips: [10.99.0.2/32]
vxlan:
  vnis:
    - vni: 101
`

func TestParseVXLANOverWireGuard(t *testing.T) {
	y := vxlanInWGYAML + "  remotes: [10.99.0.2]\n"
	c, err := Parse("f.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if !c.OverWireGuard() || !c.inAllowedIPs(netip.MustParseAddr("10.99.0.2")) {
		t.Error("not inside WireGuard")
	}
	if _, err := Parse("f.yaml", []byte(strings.Replace(y, "remotes: [10.99.0.2]", "remotes: [10.99.0.3]", 1))); err == nil || !strings.Contains(err.Error(), "in no wireguard peer's allowed_ips") {
		t.Errorf("a remote outside the tunnel: %v", err)
	}
	// The same VTEP address on the uplink, with WireGuard beside it.
	if c, err := Parse("f.yaml", []byte(strings.Replace(strings.Replace(y, "address: 10.99.0.1/24", "address: 192.0.2.1/24", 1), "remotes: [10.99.0.2]", "remotes: [192.0.2.3]", 1))); err != nil || c.OverWireGuard() {
		t.Errorf("VTEP on the uplink beside WireGuard: %v", err)
	}
}
