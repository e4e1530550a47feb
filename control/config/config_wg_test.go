package config

import (
	"net/netip"
	"strings"
	"testing"
)

const wgKeyB = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="

// wgYAML is site A of the lab with the pseudowire inside WireGuard.
const wgYAML = `mode: ip6
downlink:
  interface: dl0
uplink:
  interface: ul0
peer:
  address: fd00:77::2
wireguard:
  private_key_file: /etc/pwgate/wg.key
  listen_port: 51820
  addresses: [fd00:77::1/64, 10.77.255.1/31]
  peers:
    - public_key: "` + wgKeyB + `"
      endpoint: "site-b.example.net:51820"
      allowed_ips: [fd00:77::2/128, 10.77.255.0/32]
      persistent_keepalive: 25
`

func TestParseWireGuard(t *testing.T) {
	c, err := Parse("f.yaml", []byte(wgYAML))
	if err != nil {
		t.Fatal(err)
	}
	w := c.WireGuard
	if w == nil || w.ListenPort != 51820 || w.Interface != DefaultWGInterface || len(w.Addresses) != 2 || len(w.Peers) != 1 {
		t.Fatalf("%+v", w)
	}
	p := w.Peers[0]
	if p.PublicKey.String() != wgKeyB || p.Endpoint != "site-b.example.net:51820" || len(p.AllowedIPs) != 2 || p.PersistentKeepalive != 25 {
		t.Fatalf("peer %+v", p)
	}
	if !c.OverWireGuard() || c.WGSource() != netip.MustParseAddr("fd00:77::1") || w.BindXDP {
		t.Fatalf("over wireguard %v, source %v, bind xdp %v", c.OverWireGuard(), c.WGSource(), w.BindXDP)
	}
	// bind: xdp; then a change of it, or of the port under it, needs a
	// restart (the uplink's XDP program), a port change under the
	// kernel's socket does not.
	xdp, err := Parse("f.yaml", []byte(strings.Replace(wgYAML, "  listen_port: 51820\n", "  listen_port: 51820\n  bind: xdp\n", 1)))
	if err != nil || !xdp.WireGuard.BindXDP {
		t.Fatalf("bind: xdp: %v", err)
	}
	if got := c.Reloadable(xdp); got != "wireguard.bind" {
		t.Errorf("kernel to xdp: Reloadable says %q", got)
	}
	port := func(yaml string) *Config {
		c, err := Parse("f.yaml", []byte(strings.Replace(yaml, "listen_port: 51820", "listen_port: 51821", 1)))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if got := xdp.Reloadable(port(strings.Replace(wgYAML, "  listen_port: 51820\n", "  listen_port: 51820\n  bind: xdp\n", 1))); !strings.HasPrefix(got, "wireguard.listen_port") {
		t.Errorf("port under xdp: Reloadable says %q", got)
	}
	if got := c.Reloadable(port(wgYAML)); got != "" {
		t.Errorf("port under the kernel's socket: Reloadable says %q", got)
	}
	// The same peer outside the allowed IPs: WireGuard for the host only,
	// the pseudowire over plain IPv6 (which needs local.*).
	plain := strings.Replace(wgYAML, "address: fd00:77::2\n", "address: 2001:db8:b::b\nlocal:\n  token: ::a\n", 1)
	if c, err := Parse("f.yaml", []byte(plain)); err != nil || c.OverWireGuard() {
		t.Fatalf("plain pseudowire beside WireGuard: over %v, %v", c != nil && c.OverWireGuard(), err)
	}
}

func TestParseWireGuardErrors(t *testing.T) {
	rep := func(old, new string) string { return strings.Replace(wgYAML, old, new, 1) }
	tests := []struct{ name, yaml, want string }{
		{"bad key", rep(wgKeyB, "abc"), "f.yaml:13: wireguard.peers[0].public_key: not a WireGuard key"},
		{"bad endpoint", rep("site-b.example.net:51820", "site-b.example.net"), `f.yaml:14: wireguard.peers[0].endpoint: "site-b.example.net" is not host:port`},
		{"bad port", rep("site-b.example.net:51820", "site-b:0"), "port \"0\" is not a number from 1 to 65535"},
		{"ipv6 endpoint without brackets", rep("site-b.example.net:51820", "2001:db8::1:51820"), "is not host:port"},
		{"bad host", rep("site-b.example.net:51820", "site_b!:51820"), "neither an IP address nor a host name"},
		{"bad allowed ip", rep("10.77.255.0/32", "10.77.255.0"), `f.yaml:15: wireguard.peers[0].allowed_ips[1]: "10.77.255.0" is not a prefix`},
		{"host bits", rep("10.77.255.0/32", "10.77.255.1/31"), "10.77.255.1/31 has host bits set (did you mean 10.77.255.0/31?)"},
		{"allowed ips not a list", rep("allowed_ips: [fd00:77::2/128, 10.77.255.0/32]", "allowed_ips: fd00:77::2/128"), "wireguard.peers[0].allowed_ips: want a list"},
		{"unknown peer key", rep("persistent_keepalive: 25", "keepalive: 25"), "f.yaml:16: wireguard.peers[0].keepalive: unknown key"},
		{"no key file", rep("  private_key_file: /etc/pwgate/wg.key\n", ""), "wireguard.private_key_file: missing"},
		{"relative key file", rep("/etc/pwgate/wg.key", "wg.key"), `wireguard.private_key_file: "wg.key" is not an absolute path`},
		{"bad port number", rep("listen_port: 51820", "listen_port: 70000"), "wireguard.listen_port: 70000 is out of range 1..65535"},
		{"bad address", rep("10.77.255.1/31", "10.77.255.1"), `wireguard.addresses[1]: "10.77.255.1" is not an address with a prefix length`},
		{"no peers", rep(wgYAML[strings.Index(wgYAML, "  peers:"):], ""), "wireguard: peers: at least one peer"},
		{"peer without allowed ips", rep("      allowed_ips: [fd00:77::2/128, 10.77.255.0/32]\n", ""), "wireguard.peers[0]: allowed_ips: missing"},
		{"two peers, one key", wgYAML + `    - public_key: "` + wgKeyB + `"
      allowed_ips: [fd00:77::3/128]
`, "wireguard.peers[1].public_key: the same key as wireguard.peers[0]"},
		{"overlapping allowed ips", wgYAML + `    - public_key: "` + strings.Replace(wgKeyB, "H", "J", 1) + `"
      allowed_ips: [fd00:77::/64]
`, "wireguard.peers[1].allowed_ips: fd00:77::/64 overlaps fd00:77::2/128 of wireguard.peers[0]"},
		{"no ipv6 overlay address", rep("addresses: [fd00:77::1/64, 10.77.255.1/31]", "addresses: [10.77.255.1/31]"), "needs an IPv6 overlay address"},
		{"local with the pseudowire inside", rep("  address: fd00:77::2\n", "  address: fd00:77::2\nlocal:\n  token: ::a\n"), "local.token: not with the pseudowire inside WireGuard"},
		{"interface is the uplink", rep("  listen_port: 51820\n", "  listen_port: 51820\n  interface: ul0\n"), "wireguard.interface: ul0 is already the downlink or uplink"},
		{"bad bind", rep("  listen_port: 51820\n", "  listen_port: 51820\n  bind: dpdk\n"), `wireguard.bind: "dpdk" is neither kernel nor xdp`},
		{"xdp bind beside a plain pseudowire", strings.Replace(rep("  listen_port: 51820\n", "  listen_port: 51820\n  bind: xdp\n"), "address: fd00:77::2\n", "address: 2001:db8:b::b\nlocal:\n  token: ::a\n", 1),
			"wireguard.bind: xdp needs the pseudowire or VXLAN inside WireGuard"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}
