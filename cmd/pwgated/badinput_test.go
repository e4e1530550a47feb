package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBadInput: each mistake gets one line on stderr and exit status 2,
// and nothing stays attached or running.
func TestBadInput(t *testing.T) {
	l := newLab(t)
	if err := l.AddNS("x"); err != nil {
		t.Fatal(err)
	}
	if err := l.Veth("x", "dl0", "x", "dlp", 0); err != nil {
		t.Fatal(err)
	}
	if err := l.Veth("x", "ul0", "x", "ulp", 0); err != nil {
		t.Fatal(err)
	}
	// A bridge device has no native XDP support.
	if err := l.Script("x", "ip link add nx0 type bridge", "ip link set dev nx0 up"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	eth := "mode: eth\ndownlink:\n  interface: %s\nuplink:\n  interface: %s\npeer:\n  mac: 02:00:00:00:00:02\nstats:\n  socket: " + dir + "/s.sock\n"
	tests := []struct {
		name, config, want string
	}{
		{"missing interface", fmt.Sprintf(eth, "dl0", "nosuch0"), "uplink nosuch0"},
		{"no native xdp", fmt.Sprintf(eth, "dl0", "nx0"), "no native XDP support"},
		{"core that does not exist", fmt.Sprintf(eth, "dl0", "ul0") + "cores:\n  encap: 4000\n", ":11: cores.encap: core 4000 does not exist"},
		{"peer address of the wrong family", "mode: ip6\ndownlink:\n  interface: dl0\nuplink:\n  interface: ul0\npeer:\n  address: 192.0.2.1\nlocal:\n  token: ::a\n",
			":7: peer.address: 192.0.2.1 is not an IPv6 address"},
		{"unknown key", fmt.Sprintf(eth, "dl0", "ul0") + "pol: busy\n", ":10: pol: unknown key"},
		{"same interface twice", fmt.Sprintf(eth, "ul0", "ul0"), "uplink.interface: the same interface as downlink.interface"},
		{"zero-copy on veth", fmt.Sprintf(eth, "dl0", "ul0") + "xdp_bind: zerocopy\n",
			"xdp_bind: zerocopy: the driver offers no AF_XDP zero-copy: downlink: bind af_xdp socket to dl0 queue 0 in zero-copy mode: operation not supported (drivers: dl0 veth, ul0 veth"},
		{"offloads on with check", fmt.Sprintf(eth, "dl0", "ul0") + "nic_offloads: check\n",
			`dl0 has rx-vlan-hw-parse on, which changes frames before pwgated sees them: run "ethtool -K dl0 rx-vlan-hw-parse off"`},
		{"wireguard key readable by others", strings.Replace(fmt.Sprintf(eth, "dl0", "ul0"), "stats:", wgSection(dir+"/open.key"), 1), "open.key is readable by group or others (mode 0644): chmod 600"},
		{"wireguard key file missing", strings.Replace(fmt.Sprintf(eth, "dl0", "ul0"), "stats:", wgSection(dir+"/none.key"), 1), "wireguard.private_key_file: open " + dir + "/none.key: no such file"},
		{"anycast forwarder on a missing port", anycastForward(dir, "dl0, nosuch0"), "interface nosuch0"},
		{"anycast forwarder on a port without native XDP", anycastForward(dir, "dl0, nx0"), "no native XDP support"},
		{"anycast forwarder on the pseudowire's port", strings.Replace(fmt.Sprintf(eth, "dl0", "ul0"), "stats:", "bgp:\n  asn: 65000\n  router_id: 10.0.0.1\n  neighbors:\n    - address: 10.0.0.2\n      asn: 65001\nanycast:\n  forward:\n    interfaces: [dlp, ul0]\n    vips: [192.0.2.80/32]\nstats:", 1), "anycast.forward.interfaces[1]: ul0 is the pseudowire's port"},
		{"anycast beside a pseudowire, forwarder on a missing port", strings.Replace(fmt.Sprintf(eth, "dl0", "ul0"), "stats:", "bgp:\n  asn: 65000\n  router_id: 10.0.0.1\n  neighbors:\n    - address: 10.0.0.2\n      asn: 65001\nanycast:\n  forward:\n    interfaces: [dlp, nosuch0]\n    vips: [192.0.2.80/32]\nstats:", 1), "interface nosuch0"},
		{"socket path is a file", strings.Replace(fmt.Sprintf(eth, "dl0", "ul0"), dir+"/s.sock", dir+"/keep", 1), dir + "/keep exists and is not a socket"},
	}
	if err := os.WriteFile(filepath.Join(dir, "keep"), []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "open.key"), []byte("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".yaml")
			if err := os.WriteFile(cfg, []byte(tt.config), 0o644); err != nil {
				t.Fatal(err)
			}
			p, err := l.Start("x", pwgatedBin, "--config", cfg)
			if err != nil {
				t.Fatal(err)
			}
			code, err := p.Wait(10 * time.Second)
			out := p.Out.String()
			if err != nil || code != 2 {
				t.Fatalf("exit %d (%v), want 2:\n%s", code, err, out)
			}
			if strings.Count(out, "\n") != 1 || !strings.Contains(out, tt.want) {
				t.Errorf("want one line containing %q, got:\n%s", tt.want, out)
			}
			if links, _ := l.Exec("x", "ip", "link", "show"); strings.Contains(links, "xdp") {
				t.Errorf("XDP program left attached:\n%s", links)
			}
			if _, err := os.Stat(filepath.Join(dir, "s.sock")); err == nil {
				t.Error("statistics socket left behind")
			}
			if b, err := os.ReadFile(filepath.Join(dir, "keep")); err != nil || string(b) != "keep me" {
				t.Errorf("a file at a configured socket path was touched: %q %v", b, err)
			}
			if out, _ := l.Exec("x", "ip", "link", "show"); strings.Contains(out, "pwwg0") {
				t.Errorf("pwwg0 left behind:\n%s", out)
			}
			if out, _ := l.Exec("x", "ethtool", "-k", "dl0"); !strings.Contains(out, "rx-vlan-offload: on") {
				t.Errorf("dl0's VLAN offload not restored:\n%s", out)
			}
		})
	}
}

// wgSection is a wireguard section (for host traffic only, beside an eth
// pseudowire) with the given key file, followed by "stats:".
func wgSection(keyFile string) string {
	return "wireguard:\n  private_key_file: " + keyFile + "\n  addresses: [fd00:77::1/64]\n  peers:\n" +
		"    - public_key: \"HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=\"\n      allowed_ips: [fd00:77::2/128]\nstats:"
}

// anycastForward is a forwarder's configuration on ports.
func anycastForward(dir, ports string) string {
	return "bgp:\n  asn: 65000\n  router_id: 10.0.0.1\n  neighbors:\n    - address: 10.0.0.2\n      asn: 65001\n" +
		"anycast:\n  forward:\n    interfaces: [" + ports + "]\n    vips: [192.0.2.80/32]\nstats:\n  socket: " + dir + "/s.sock\n"
}
