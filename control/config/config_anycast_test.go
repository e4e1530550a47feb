package config

import (
	"strings"
	"testing"
)

var announcerYAML = testYAML("announcer.yaml")

var forwarderYAML = testYAML("forwarder.yaml")

func TestParseAnycastErrors(t *testing.T) {
	an := func(old, new string) string { return strings.Replace(announcerYAML, old, new, 1) }
	fw := func(old, new string) string { return strings.Replace(forwarderYAML, old, new, 1) }
	testRefused(t, []refusal{
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
	})
}

// An unnumbered neighbor takes what a numbered one does: default_originate
// and export filters apply at the address learned on its interface.
func TestUnnumberedNeighbor(t *testing.T) {
	y := strings.Replace(forwarderYAML, "    - address: 10.1.0.2\n      asn: 65101\n      default_originate: true",
		"    - interface: eth9\n      asn: 65101\n      default_originate: true\n      export:\n        - action: deny\n          prefix: 10.0.0.0/8", 1)
	c, err := Parse("f.yaml", []byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if n := c.BGP.Neighbors[0]; n.Interface != "eth9" || !n.DefaultOriginate || len(n.Export) != 1 || len(n.Families) != 2 {
		t.Fatalf("%+v", n)
	}
	// But not TCP-MD5 (GoBGP cannot key a zoned address).
	y = strings.Replace(y, "      default_originate: true\n", "      default_originate: true\n      password: secret\n", 1)
	if _, err := Parse("f.yaml", []byte(y)); err == nil || !strings.Contains(err.Error(), "password") {
		t.Fatalf("a password on an unnumbered neighbor: %v", err)
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

func TestClockWait(t *testing.T) {
	c, err := Parse("a", []byte(strings.Replace(announcerYAML, "anycast:\n", "anycast:\n  clock_wait: 2m\n", 1)))
	if err != nil || c.Anycast.ClockWait != 2*60e9 {
		t.Fatalf("clock_wait: %v %v", c, err)
	}
	if c, _ := Parse("a", []byte(announcerYAML)); c.Anycast.ClockWait != 0 {
		t.Errorf("default clock_wait %v, want 0", c.Anycast.ClockWait)
	}
}
