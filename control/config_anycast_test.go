package control

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pwgate/pwgate/control/anycast"
	"github.com/pwgate/pwgate/control/bgp"
)

const announcerYAML = `bgp:
  asn: 65101
  router_id: 10.1.0.2
  neighbors:
    - address: 10.1.0.1
      asn: 65000
      families: [ipv4-unicast, ipv6-unicast]
      export:
        - action: permit
          prefix: 192.0.2.80/32
        - action: deny
anycast:
  vips:
    - prefix: 192.0.2.80/32
      check:
        http: http://127.0.0.1:8080/health
        status: 204
      interval: 500ms
      timeout: 200ms
      rise: 2
      fall: 3
      med: 100
      communities: ["65000:80", no-export]
      large_communities: ["4200000000:1:80"]
      drain: 30
      drain_med: 1000
    - prefix: 2001:db8:80::80
      check:
        tcp: "[::1]:80"
stats:
  socket: /run/pwgate/a.sock
`

const forwarderYAML = `bgp:
  asn: 65000
  router_id: 10.1.0.1
  neighbors:
    - address: 10.1.0.2
      asn: 65101
      default_originate: true
anycast:
  forward:
    interfaces: [eth1, eth2]
    vips: [192.0.2.80/32]
`

func TestParseAnycast(t *testing.T) {
	c, err := Parse("a.yaml", []byte(announcerYAML))
	if err != nil {
		t.Fatal(err)
	}
	if !c.AnycastOnly() {
		t.Error("not anycast only")
	}
	vs := c.AnycastVIPs()
	if len(vs) != 2 {
		t.Fatalf("%d VIPs", len(vs))
	}
	v := vs[0]
	if v.Prefix != netip.MustParsePrefix("192.0.2.80/32") || v.Interval != 500*time.Millisecond || v.Timeout != 200*time.Millisecond ||
		v.Rise != 2 || v.Fall != 3 || v.MED != 100 || !v.HasMED || v.Drain != 30*time.Second || v.DrainMED != 1000 ||
		len(v.Communities) != 2 || v.Communities[0] != 65000<<16|80 || v.Communities[1] != 0xFFFFFF01 ||
		v.LargeCommunities[0] != (bgp.LargeCommunity{Global: 4200000000, Local1: 1, Local2: 80}) {
		t.Errorf("VIP %+v", v)
	}
	if h, ok := v.Check.(*anycast.HTTPCheck); !ok || h.Status != 204 {
		t.Errorf("check %v", v.Check)
	}
	w := vs[1]
	if w.Prefix.Bits() != 128 || w.Interval != 2*time.Second || w.Timeout != 2*time.Second || w.DrainMED != DefaultDrainMED || w.HasMED {
		t.Errorf("defaults %+v", w)
	}
	if n := c.BGP.Neighbors[0]; len(n.Families) != 2 || n.Families[1] != bgp.IPv6Unicast {
		t.Errorf("families %v", n.Families)
	}
	f, err := Parse("f.yaml", []byte(forwarderYAML))
	if err != nil {
		t.Fatal(err)
	}
	// Without families, a neighbor's are its address's unicast family.
	if n := f.BGP.Neighbors[0]; len(n.Families) != 1 || n.Families[0] != bgp.IPv4Unicast {
		t.Errorf("default families %v", n.Families)
	}
	if !f.BGP.resolved()[0].DefaultOriginate || !f.speakerConfig(false).Neighbors[0].DefaultOriginate {
		t.Error("default_originate not read")
	}
	if fw := f.Anycast.Forward; fw.TableSize != anycast.DefaultTableSize || len(fw.Interfaces) != 2 || fw.VIPs[0] != v.Prefix {
		t.Errorf("forward %+v", fw)
	}
}

func TestParseAnycastErrors(t *testing.T) {
	an := func(old, new string) string { return strings.Replace(announcerYAML, old, new, 1) }
	fw := func(old, new string) string { return strings.Replace(forwarderYAML, old, new, 1) }
	tests := []struct{ name, yaml, want string }{
		{"no bgp", "anycast:\n  forward:\n    interfaces: [a]\n    vips: [192.0.2.80/32]\n", "needs a bgp section"},
		{"empty", an("anycast:\n  vips:", "anycast: {}\nx:\n  vips:"), "unknown key"},
		{"no prefix", an("    - prefix: 192.0.2.80/32\n      check:", "    - check:"), "prefix: missing"},
		{"host bits", an("192.0.2.80/32\n      check", "192.0.2.80/24\n      check"), "host bits set"},
		{"vip twice", an("2001:db8:80::80", "192.0.2.80"), "is also anycast.vips[0]"},
		{"no check", an("      check:\n        tcp: \"[::1]:80\"\n", ""), "check: missing"},
		{"two checks", an("        status: 204\n", "        status: 204\n        tcp: 127.0.0.1:80\n"), "a second check"},
		{"status on tcp", an("        tcp: \"[::1]:80\"\n", "        tcp: \"[::1]:80\"\n        status: 200\n"), "only for http checks"},
		{"bad url", an("http://127.0.0.1:8080/health", "ftp://x/"), "not an http:// or https:// URL"},
		{"bad tcp", an("\"[::1]:80\"", "localhost"), "not HOST:PORT"},
		{"missing program", an("        tcp: \"[::1]:80\"\n", "        exec: /no/such/check\n"), "exec:"},
		{"bad interval", an("interval: 500ms", "interval: soon"), "not a duration"},
		{"timeout above interval", an("timeout: 200ms", "timeout: 2s"), "longer than the interval"},
		{"fall 0", an("fall: 3", "fall: 0"), "out of range"},
		{"bad med", an("med: 100", "med: -1"), "not a MED"},
		{"bad community", an("\"65000:80\"", "\"65536:80\""), "not a community"},
		{"bad large community", an("4200000000:1:80", "1:2"), "not a large community"},
		{"drain_med without drain", an("      drain: 30\n", ""), "without drain"},
		{"next hop version", an("    - prefix: 2001:db8:80::80\n", "    - prefix: 2001:db8:80::80\n      next_hop: 10.1.0.2\n"), "not of the VIP's IP version"},
		{"family not carried", an("      families: [ipv4-unicast, ipv6-unicast]\n", ""), "no bgp neighbor carries ipv6-unicast"},
		{"forwarded family not carried", fw("[192.0.2.80/32]", "[192.0.2.80/32, 2001:db8:80::80/128]"), "no bgp neighbor carries ipv6-unicast"},
		{"pseudowire key", an("stats:", "peer:\n  mac: 02:00:00:00:00:01\nstats:"), "not without a mode"},
		{"no forward interfaces", fw("    interfaces: [eth1, eth2]\n", ""), "interfaces: missing"},
		{"no forward vips", fw("    vips: [192.0.2.80/32]\n", ""), "vips: missing"},
		{"vip twice in forward", fw("[192.0.2.80/32]", "[192.0.2.80/32, 192.0.2.80/32]"), "twice"},
		{"table not prime", fw("    vips:", "    table_size: 65536\n    vips:"), "not a prime"},
		{"table too small", fw("    vips:", "    table_size: 7\n    vips:"), "out of range"},
		{"default_originate not a boolean", fw("default_originate: true", "default_originate: maybe"), "not true or false"},
		{"default_originate unnumbered", fw("    - address: 10.1.0.2\n      asn: 65101\n      default_originate: true", "    - interface: eth9\n      asn: 65101\n      default_originate: true"), "default_originate needs the neighbor's address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.yaml)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// Anycast beside a pseudowire: one file, one BGP section; the forwarder
// keeps off the pseudowire's ports, and adding, removing or changing the
// forwarder needs a restart.
func TestParseAnycastBesidePseudowire(t *testing.T) {
	yaml := ethYAML + strings.Replace(forwarderYAML, "interfaces: [eth1, eth2]", "interfaces: [c0, s1]", 1)
	c, err := Parse("pw.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if c.AnycastOnly() || c.Anycast.Forward == nil || c.Downlink != "dl0" {
		t.Fatalf("parsed %+v", c)
	}
	if _, err := Parse("pw.yaml", []byte(strings.Replace(yaml, "[c0, s1]", "[c0, ul0]", 1))); err == nil || !strings.Contains(err.Error(), "ul0 is the pseudowire's port") {
		t.Errorf("forwarding on the uplink: %v", err)
	}
	plain, err := Parse("pw.yaml", []byte(ethYAML))
	if err != nil {
		t.Fatal(err)
	}
	withBGP, err := Parse("pw.yaml", []byte(ethYAML+strings.Replace(announcerYAML, "stats:\n  socket: /run/pwgate/a.sock\n", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	other, err := Parse("pw.yaml", []byte(strings.Replace(yaml, "[c0, s1]", "[c0, s2]", 1)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		from, to *Config
		want     string
	}{{plain, c, "bgp (adding"}, {c, other, "anycast.forward"}, {withBGP, c, "anycast.forward"}, {c, c, ""}, {withBGP, withBGP, ""}} {
		if got := tc.from.Reloadable(tc.to); got != tc.want && !strings.HasPrefix(got, tc.want) || tc.want == "" && got != "" {
			t.Errorf("reloadable: %q, want %q", got, tc.want)
		}
	}
}

// anycast.forward.neighbors names the neighbors whose paths may name
// servers and next_hop whether a path's next hop must be its neighbor's
// address; both change on a reload (issue 21 finding 5).
func TestParseAnycastForwardTrust(t *testing.T) {
	yaml := strings.Replace(forwarderYAML, "      default_originate: true\n",
		"      default_originate: true\n    - address: 10.1.0.3\n      asn: 65103\n    - interface: eth9\n      asn: 65109\n      families: [ipv6-unicast]\n", 1)
	c, err := Parse("f.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if tr := c.anycastTrust(); len(tr.Neighbors) != 0 || len(tr.Interfaces) != 0 || tr.AnyNextHop {
		t.Errorf("default trust %+v: want every neighbor, next hop the neighbor's", tr)
	}
	listed := strings.Replace(yaml, "    vips: [192.0.2.80/32]\n", "    vips: [192.0.2.80/32]\n    neighbors: [10.1.0.2, eth9]\n    next_hop: any\n", 1)
	d, err := Parse("f.yaml", []byte(listed))
	if err != nil {
		t.Fatal(err)
	}
	tr := d.anycastTrust()
	if len(tr.Neighbors) != 1 || tr.Neighbors[0] != netip.MustParseAddr("10.1.0.2") || len(tr.Interfaces) != 1 || tr.Interfaces[0] != "eth9" || !tr.AnyNextHop {
		t.Errorf("trust %+v", tr)
	}
	if got := c.Reloadable(d); got != "" {
		t.Errorf("changing anycast.forward.neighbors and next_hop needs %q", got)
	}
	if got := d.Reloadable(c); got != "" {
		t.Errorf("removing anycast.forward.neighbors and next_hop needs %q", got)
	}
	// Errors name the file, the line and the key.
	for _, tc := range []struct{ name, old, new, want string }{
		{"not a neighbor", "    vips: [192.0.2.80/32]\n", "    vips: [192.0.2.80/32]\n    neighbors:\n      - 10.1.0.2\n      - 10.1.0.254\n",
			`f.yaml:19: anycast.forward.neighbors[1]: "10.1.0.254" is not the address or interface of a bgp neighbor`},
		{"not an interface of a neighbor", "    vips: [192.0.2.80/32]\n", "    vips: [192.0.2.80/32]\n    neighbors: [eth8]\n",
			`f.yaml:17: anycast.forward.neighbors[0]: "eth8" is not the address or interface of a bgp neighbor`},
		{"twice", "    vips: [192.0.2.80/32]\n", "    vips: [192.0.2.80/32]\n    neighbors: [10.1.0.3, eth9, 10.1.0.3]\n",
			"f.yaml:17: anycast.forward.neighbors[2]: 10.1.0.3 twice"},
		{"bad next_hop", "    vips: [192.0.2.80/32]\n", "    vips: [192.0.2.80/32]\n    next_hop: self\n",
			`f.yaml:17: anycast.forward.next_hop: "self" is not neighbor`},
	} {
		_, err := Parse("f.yaml", []byte(strings.Replace(yaml, tc.old, tc.new, 1)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}
