package config

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/hw"
	"golang.org/x/sys/unix"
)

const ethYAML = `mode: eth
downlink:
  interface: dl0
uplink:
  interface: ul0
peer:
  mac: 02:00:00:00:00:0b
`

const ip6YAML = `mode: ip6
downlink:
  interface: dl0
uplink:
  interface: ul0
  mtu: 1500
peer:
  address: 2001:db8:b::b
local:
  token: ::a
cores:
  main: 0
  encap: 1
  decap: 1
poll: busy
xdp_mode: generic
stats:
  socket: /run/pwgate/a.sock
  group: adm
  gpwstats_socket: /run/gpwstats.socket
  prometheus: 127.0.0.1:9469
`

func TestParseGood(t *testing.T) {
	c, err := Parse("eth.yaml", []byte(ethYAML))
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != ModeEth || c.Downlink != "dl0" || c.Uplink != "ul0" || c.PeerMAC.String() != "02:00:00:00:00:0b" ||
		c.CoreMain != NoCore || c.Poll != Adaptive || c.XDPMode != XDPNative || c.StatsSocket != client.DefaultStatsSocket || c.GPWSocket != "" {
		t.Errorf("eth defaults: %+v", c)
	}
	c, err = Parse("ip6.yaml", []byte(ip6YAML))
	if err != nil {
		t.Fatal(err)
	}
	if c.Mode != ModeIP6 || c.PeerAddr != netip.MustParseAddr("2001:db8:b::b") || c.LocalToken != netip.MustParseAddr("::a") ||
		c.UplinkMTU != 1500 || c.CoreEncap != 1 || c.Poll != Busy || c.XDPMode != XDPGeneric ||
		c.StatsGroup != "adm" || c.GPWSocket != "/run/gpwstats.socket" || c.Prometheus != "127.0.0.1:9469" {
		t.Errorf("ip6: %+v", c)
	}
	if !c.IsSet("cores.main") || c.IsSet("local.address") {
		t.Error("IsSet wrong")
	}
	c, err = Parse("addr.yaml", []byte(strings.Replace(ip6YAML, "token: ::a", "address: 2001:db8:a::a", 1)))
	if err != nil || c.LocalAddr != netip.MustParsePrefix("2001:db8:a::a/64") {
		t.Errorf("local.address: %v %v", c, err)
	}
}

func TestParseErrors(t *testing.T) {
	rep := func(base, old, new string) string { return strings.Replace(base, old, new, 1) }
	tests := []struct {
		name, yaml, want string
	}{
		{"not yaml", "mode: [eth", "f.yaml: "},
		{"empty", "", "f.yaml: empty configuration"},
		{"not a mapping", "- eth\n", "f.yaml:1: want a mapping of keys"},
		{"unknown key", ethYAML + "pol: busy\n", "f.yaml:8: pol: unknown key"},
		{"unknown nested key", rep(ethYAML, "  interface: dl0", "  interface: dl0\n  speed: 1000"), "f.yaml:4: downlink.speed: unknown key"},
		{"repeated key", ethYAML + "mode: ip6\n", "f.yaml:8: mode: repeated (first on line 1)"},
		{"section as value", rep(ethYAML, "downlink:\n  interface: dl0", "downlink: dl0"), "f.yaml:2: downlink: want a mapping of keys"},
		{"list as value", rep(ethYAML, "mode: eth", "mode: [eth]"), "f.yaml:1: mode: want a single value"},
		{"bad mode", rep(ethYAML, "mode: eth", "mode: gre"), `f.yaml:1: mode: unknown mode "gre"`},
		{"missing mode", rep(ethYAML, "mode: eth\n", ""), "f.yaml: mode: missing"},
		{"missing downlink", rep(ethYAML, "downlink:\n  interface: dl0\n", ""), "downlink.interface: missing"},
		{"missing uplink", rep(ethYAML, "uplink:\n  interface: ul0\n", ""), "uplink.interface: missing"},
		{"bad interface name", rep(ethYAML, "interface: dl0", "interface: a/b"), `f.yaml:3: downlink.interface: "a/b" is not an interface name`},
		{"long interface name", rep(ethYAML, "interface: dl0", "interface: abcdefghijklmnop"), "is not an interface name"},
		{"same interfaces", rep(ethYAML, "interface: ul0", "interface: dl0"), "f.yaml:5: uplink.interface: the same interface as downlink.interface"},
		{"mtu not a number", rep(ip6YAML, "mtu: 1500", "mtu: big"), `f.yaml:6: uplink.mtu: "big" is not an integer`},
		{"mtu too small", rep(ip6YAML, "mtu: 1500", "mtu: 1000"), "uplink.mtu: 1000 is out of range 1280..3826"},
		{"mtu too big", rep(ip6YAML, "mtu: 1500", "mtu: 9000"), "uplink.mtu: 9000 is out of range 1280..3826"},
		{"lan mtu too big", rep(ip6YAML, "interface: dl0", "interface: dl0\n  mtu: 4000"), "downlink.mtu: 4000 is out of range 1280..3826"},
		{"bad mac", rep(ethYAML, "02:00:00:00:00:0b", "02:00:00:00:0b"), "f.yaml:7: peer.mac: invalid MAC address"},
		{"multicast mac", rep(ethYAML, "02:00:00:00:00:0b", "01:80:c2:00:00:00"), "is not a unicast MAC address"},
		{"zero mac", rep(ethYAML, "02:00:00:00:00:0b", "000000000000"), "is not a unicast MAC address"},
		{"eth without peer", rep(ethYAML, "peer:\n  mac: 02:00:00:00:00:0b\n", ""), "peer.mac: missing"},
		{"eth with address", ethYAML + "local:\n  token: ::a\n", "f.yaml:9: local.token: only for ip6 and vxlan mode"},
		{"ipv4 peer", rep(ip6YAML, "2001:db8:b::b", "192.0.2.1"), "f.yaml:8: peer.address: 192.0.2.1 is not an IPv6 address"},
		{"v4-mapped peer", rep(ip6YAML, "2001:db8:b::b", "::ffff:192.0.2.1"), "is not an IPv6 address"},
		{"link-local peer", rep(ip6YAML, "2001:db8:b::b", "fe80::1"), "is not a global unicast IPv6 address"},
		{"multicast peer", rep(ip6YAML, "2001:db8:b::b", "ff02::1"), "is not a global unicast IPv6 address"},
		{"not an address", rep(ip6YAML, "2001:db8:b::b", "peer.example"), `"peer.example" is not an IP address`},
		{"ip6 without peer", rep(ip6YAML, "peer:\n  address: 2001:db8:b::b\n", ""), "peer.address: missing"},
		{"ip6 with mac", ip6YAML + "peer:\n  mac: 02:00:00:00:00:0b\n", "repeated"},
		{"ip6 with peer mac", rep(ip6YAML, "  address: 2001:db8:b::b", "  address: 2001:db8:b::b\n  mac: 02:00:00:00:00:0b"), "peer.mac: only for eth mode"},
		{"no local", rep(ip6YAML, "local:\n  token: ::a\n", ""), "local: set exactly one of local.address and local.token"},
		{"both locals", rep(ip6YAML, "  token: ::a", "  token: ::a\n  address: 2001:db8:a::a"), "set exactly one"},
		{"token with prefix", rep(ip6YAML, "token: ::a", "token: 2001:db8::a"), "the first 64 bits must be zero"},
		{"zero token", rep(ip6YAML, "token: ::a", `token: "::"`), "the first 64 bits must be zero"},
		{"bad token", rep(ip6YAML, "token: ::a", "token: feed"), "is not an IPv6 interface identifier"},
		{"bad local address", rep(ip6YAML, "token: ::a", "address: 10.0.0.1"), "10.0.0.1 is IPv4: the pseudowire runs over IPv6"},
		{"bad local prefix", rep(ip6YAML, "token: ::a", "address: 2001:db8:a::a/200"), "is not an IP address"},
		{"local is peer", rep(ip6YAML, "token: ::a", "address: 2001:db8:b::b"), "local.address: the same as peer.address"},
		{"core out of range", rep(ip6YAML, "main: 0", "main: -1"), "cores.main: -1 is out of range 0..4095"},
		{"bad poll", rep(ip6YAML, "poll: busy", "poll: spin"), `poll: unknown poll mode "spin"`},
		{"bad xdp mode", rep(ip6YAML, "xdp_mode: generic", "xdp_mode: offload"), `xdp_mode: unknown XDP mode "offload"`},
		{"relative socket", rep(ip6YAML, "/run/pwgate/a.sock", "a.sock"), `stats.socket: "a.sock" is not an absolute path`},
		{"relative gpw socket", rep(ip6YAML, "/run/gpwstats.socket", "gpw.sock"), "stats.gpwstats_socket"},
		{"bad prometheus", rep(ip6YAML, "127.0.0.1:9469", "localhost"), `stats.prometheus: "localhost" is not an address:port`},
		{"bad http", rep(ip6YAML, "  prometheus: 127.0.0.1:9469", "  http: mgmt:80"), `stats.http: "mgmt:80" is not an address:port`},
		{"keepalive without interval", ethYAML + "  keepalive:\n    timeout: 1s\n", "f.yaml: peer.keepalive.interval: missing"},
		{"keepalive too often", ethYAML + "  keepalive:\n    interval: 1ms\n", "f.yaml:9: peer.keepalive.interval: 1ms is out of range 10ms..10s"},
		{"keepalive not a duration", ethYAML + "  keepalive:\n    interval: often\n", `"often" is not a duration`},
		{"keepalive timeout too short", ethYAML + "  keepalive:\n    interval: 100ms\n    timeout: 150ms\n", "peer.keepalive.timeout: 150ms is less than twice the interval 100ms"},
		{"keepalive as a value", ethYAML + "  keepalive: 100ms\n", "peer.keepalive: want a mapping of keys"},
		{"clock_wait too long", rep(ethYAML, "mode: eth", "mode: eth\nanycast:\n  clock_wait: 1h"), "anycast.clock_wait: 1h0m0s is out of range 0s..10m0s"},
		{"lldp interval too short", ethYAML + "lldp:\n  interval: 100ms\n", "lldp.interval: 100ms is out of range 1s..1h0m0s"},
		{"lldp name not printable", ethYAML + "lldp:\n  system_name: \"a\\tb\"\n", "lldp.system_name: \"a\\tb\": at most 255 printable ASCII characters"},
		{"lldp port twice", ethYAML + "lldp:\n  ports: [eth0, eth0]\n", "lldp.ports[1]: eth0 is named twice"},
		{"lldp on a pseudowire port", ethYAML + "lldp:\n  ports: [ul0]\n", "lldp.ports: ul0 is a pseudowire port"},
		{"lldp too many ports", ethYAML + "lldp:\n  ports: [a, b, c, d, e, f, g, h, i]\n", "lldp.ports[8]: more than 8 ports"},
		{"lldp unknown key", ethYAML + "lldp:\n  tx_hold: 4\n", "lldp.tx_hold"},
		{"follow_peer without keepalive", rep(ethYAML, "  interface: dl0", "  interface: dl0\n  follow_peer: true"), "downlink.follow_peer: needs peer.keepalive"},
		{"follow_peer not a bool", rep(ethYAML, "  interface: dl0", "  interface: dl0\n  follow_peer: maybe"), `downlink.follow_peer: "maybe" is not true or false`},
		{"hold without follow_peer", rep(ethYAML, "  interface: dl0", "  interface: dl0\n  follow_peer_hold: 5s"), "downlink.follow_peer_hold: only with downlink.follow_peer: true"},
		{"hold too long", rep(ethYAML, "  interface: dl0", "  interface: dl0\n  follow_peer: true\n  follow_peer_hold: 2h") + "  keepalive:\n    interval: 100ms\n", "downlink.follow_peer_hold: 2h0m0s is out of range 0s..1h0m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.File != "f.yaml" {
				t.Errorf("not a ConfigError naming the file: %#v", err)
			}
		})
	}
}

func TestKeepaliveAndFollowPeer(t *testing.T) {
	c, err := Parse("f.yaml", []byte(ethYAML+"  keepalive:\n    interval: 100ms\n"))
	if err != nil || *c.Keepalive != (Keepalive{100 * time.Millisecond, 300 * time.Millisecond}) || c.FollowPeer != nil {
		t.Fatalf("default timeout: %+v %v", c, err)
	}
	y := strings.Replace(ethYAML, "  interface: dl0", "  interface: dl0\n  follow_peer: true\n  follow_peer_hold: 0s", 1)
	c, err = Parse("f.yaml", []byte(y+"  keepalive:\n    interval: 50ms\n    timeout: 1s\n"))
	if err != nil || *c.Keepalive != (Keepalive{50 * time.Millisecond, time.Second}) || c.FollowPeer == nil || c.FollowPeer.Hold != 0 {
		t.Fatalf("follow_peer with hold 0: %+v %v", c, err)
	}
	y = strings.Replace(ethYAML, "  interface: dl0", "  interface: dl0\n  follow_peer: yes", 1)
	if c, err = Parse("f.yaml", []byte(y+"  keepalive:\n    interval: 1s\n")); err != nil || c.FollowPeer.Hold != DefaultFollowPeerHold {
		t.Fatalf("default hold: %+v %v", c, err)
	}
	y = strings.Replace(ethYAML, "  interface: dl0", "  interface: dl0\n  follow_peer: false", 1)
	if c, err = Parse("f.yaml", []byte(y)); err != nil || c.FollowPeer != nil {
		t.Fatalf("follow_peer false: %+v %v", c, err)
	}
}

func TestLoadFile(t *testing.T) {
	if _, err := LoadFile(filepath.Join(t.TempDir(), "none.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	p := filepath.Join(t.TempDir(), "a.yaml")
	os.WriteFile(p, []byte(ethYAML), 0o644)
	if c, err := LoadFile(p); err != nil || c.Source != p {
		t.Errorf("LoadFile: %v %v", c, err)
	}
}

func TestParseGPW(t *testing.T) {
	ifs := Interfaces{Downlink: "dl0", Uplink: "ul0"}
	c, err := ParseGPW("gpw", []byte("eth             # mode\n000c2979489d    # peer's MAC, no colons\n"), ifs)
	if err != nil || c.Mode != ModeEth || c.PeerMAC.String() != "00:0c:29:79:48:9d" || c.GPWSocket != client.DefaultGPWSocket {
		t.Fatalf("eth: %+v %v", c, err)
	}
	c, err = ParseGPW("gpw", []byte("ip6                                  # mode\n20010db80000000200000000000196fc     # peer address, 32 hex digits\n20010db80000000100000000000096fc     # own address\n"), ifs)
	if err != nil || c.PeerAddr != netip.MustParseAddr("2001:db8:0:2::1:96fc") || c.LocalAddr != netip.MustParsePrefix("2001:db8:0:1::96fc/64") {
		t.Fatalf("ip6: %+v %v", c, err)
	}
	// As the reference reads it: bare lines, CRLF, trailing blank lines.
	if _, err := ParseGPW("gpw", []byte("eth\r\n000c2979489d\r\n\r\n"), ifs); err != nil {
		t.Fatalf("bare file: %v", err)
	}
	tests := []struct{ name, file, want string }{
		{"empty", "", "empty configuration"},
		{"only comments", "# nothing\n", "empty configuration"},
		{"bad mode", "gre\n000c2979489d\n", `gpw:1: unknown mode "gre"`},
		{"eth too short", "eth\n", "eth mode wants 2 lines"},
		{"eth too long", "eth\n000c2979489d\n000c2979489d\n", "eth mode wants 2 lines"},
		{"mac with colons", "eth\n00:0c:29:79:48:9d\n", "gpw:2: peer MAC \"00:0c:29:79:48:9d\": want 12 hex digits"},
		{"mac not hex", "eth\n000c2979489g\n", "is not a unicast MAC address"},
		{"multicast mac", "eth\n01000c2979489\n", "want 12 hex digits"},
		{"ip6 short", "ip6\n20010db80000000200000000000196fc\n", "ip6 mode wants 3 lines"},
		{"ip6 not hex", "ip6\n20010db80000000200000000000196fz\n20010db80000000100000000000096fc\n", "gpw:2: \"20010db80000000200000000000196fz\": want an IPv6 address as 32 hex digits"},
		{"ip6 link-local", "ip6\nfe800000000000000000000000000001\n20010db80000000100000000000096fc\n", "gpw:2: fe80::1 is not a global unicast"},
		{"ip6 same", "ip6\n20010db80000000100000000000096fc\n20010db80000000100000000000096fc\n", "local.address: the same as peer.address"},
	}
	for _, tt := range tests {
		if _, err := ParseGPW("gpw", []byte(tt.file), ifs); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	if _, err := ParseGPW("gpw", []byte("eth\n000c2979489d\n"), Interfaces{}); err == nil || !strings.Contains(err.Error(), "--downlink and --uplink") {
		t.Errorf("no interfaces: %v", err)
	}
	if _, err := ParseGPW("gpw", []byte("eth\n000c2979489d\n"), Interfaces{Downlink: "a b", Uplink: "ul0"}); err == nil {
		t.Error("bad interface name accepted")
	}
	if _, err := LoadGPWFile(filepath.Join(t.TempDir(), "none"), ifs); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestReloadable(t *testing.T) {
	base, _ := Parse("a", []byte(ip6YAML))
	for key, edit := range map[string]string{
		"mode":               "",
		"downlink.interface": "interface: dl0|interface: dl1",
		"downlink.mtu":       "interface: dl0|interface: dl0\n  mtu: 1600",
		"uplink.interface":   "interface: ul0|interface: ul1",
		"cores":              "decap: 1|decap: 0",
		"poll":               "poll: busy|poll: adaptive",
		"xdp_mode":           "xdp_mode: generic|xdp_mode: native",
		"stats":              "group: adm|group: staff",
	} {
		if edit == "" {
			continue
		}
		parts := strings.Split(edit, "|")
		next, err := Parse("b", []byte(strings.Replace(ip6YAML, parts[0], parts[1], 1)))
		if err != nil {
			t.Fatal(err)
		}
		if got := base.Reloadable(next); got != key {
			t.Errorf("change %s: Reloadable says %q", edit, got)
		}
	}
	eth, _ := Parse("e", []byte(ethYAML))
	if base.Reloadable(eth) != "mode" {
		t.Error("mode change reloadable")
	}
	next, _ := Parse("b", []byte(strings.Replace(strings.Replace(ip6YAML, "2001:db8:b::b", "2001:db8:b::c", 1), "mtu: 1500", "mtu: 1400", 1)))
	if got := base.Reloadable(next); got != "" {
		t.Errorf("peer and MTU change needs a restart: %q", got)
	}
	// The lldp section: in or out needs a restart (the LAN port's XDP
	// program), its keys do not.
	withLLDP, err := Parse("b", []byte(ip6YAML+"lldp:\n  system_name: site-a\n  ports: [eth0]\n"))
	if err != nil || withLLDP.LLDP == nil || withLLDP.LLDP.Interval != DefaultLLDPInterval || withLLDP.LLDP.SystemName != "site-a" || withLLDP.LLDP.Ports[0] != "eth0" {
		t.Fatalf("lldp: %+v %v", withLLDP.LLDP, err)
	}
	if got := base.Reloadable(withLLDP); !strings.HasPrefix(got, "lldp") {
		t.Errorf("adding lldp: Reloadable says %q", got)
	}
	other, _ := Parse("b", []byte(ip6YAML+"lldp:\n  interval: 5s\n"))
	if got := withLLDP.Reloadable(other); got != "" {
		t.Errorf("changing lldp's keys needs a restart: %q", got)
	}
}

func TestUseProfile(t *testing.T) {
	p, _ := hw.Lookup("in-1")
	p.CoreMain, p.CoreEncap, p.CoreDecap = 0, 1, 1 // cores this machine has
	c, _ := Parse("e", []byte(ethYAML))
	if err := c.UseProfile(p); err != nil || c.CoreMain != 0 || c.CoreEncap != 1 || c.Poll != Busy {
		t.Fatalf("profile not applied: %+v %v", c, err)
	}
	c, _ = Parse("e", []byte(ethYAML+"cores:\n  main: 1\npoll: adaptive\n"))
	if err := c.UseProfile(p); err != nil || c.CoreMain != 1 || c.CoreEncap != 1 || c.Poll != Adaptive {
		t.Fatalf("configuration did not take precedence: %+v %v", c, err)
	}
	p.CoreDecap = 4000
	if err := c.UseProfile(p); err != nil {
		t.Fatal(err)
	}
	if err := c.CheckCores([]int{0, 1}); err == nil || !strings.Contains(err.Error(), "core 4000") {
		t.Fatalf("profile core that does not exist: %v", err)
	}
}

// TestCheckCores: a core the machine does not have is refused, with the
// line that names it.
func TestCheckCores(t *testing.T) {
	c, err := Parse("f.yaml", []byte(strings.Replace(ip6YAML, "encap: 1", "encap: 4000", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckCores([]int{0, 1}); err == nil || !strings.Contains(err.Error(), "f.yaml:13: cores.encap: core 4000 does not exist") {
		t.Fatalf("CheckCores: %v", err)
	}
}

// TestParseIgnoresAffinity: whether a file is valid does not depend on
// the CPUs the parsing process may use (pwctl --config under taskset, a
// check run on a build machine).
func TestParseIgnoresAffinity(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs two cores")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var orig, one unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil {
		t.Fatal(err)
	}
	defer unix.SchedSetaffinity(0, &orig)
	one.Set(0)
	if err := unix.SchedSetaffinity(0, &one); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse("f.yaml", []byte(ip6YAML)); err != nil { // cores.encap: 1
		t.Fatalf("parse under affinity {0}: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(ethYAML))
	f.Add([]byte(ip6YAML))
	f.Add([]byte("mode: ip6\nlocal: {address: 2001:db8::1/64}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f", data)
		if err == nil && (c.Mode == 0 || c.Downlink == "" || c.Uplink == "") {
			t.Fatalf("incomplete configuration accepted: %+v", c)
		}
	})
}

func FuzzParseGPW(f *testing.F) {
	f.Add([]byte("eth\n000c2979489d\n"))
	f.Add([]byte("ip6\n20010db80000000200000000000196fc\n20010db80000000100000000000096fc\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseGPW("f", data, Interfaces{Downlink: "dl0", Uplink: "ul0"})
		if err == nil && c.Mode == ModeIP6 && (!c.PeerAddr.Is6() || !c.LocalAddr.IsValid()) {
			t.Fatalf("ip6 without addresses accepted: %+v", c)
		}
	})
}

// testYAML returns testdata/name, a configuration that control's tests
// read too.
func testYAML(name string) string {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		panic(err)
	}
	return string(b)
}

// refusal is a file Parse must refuse, with an error that holds want.
type refusal struct{ name, yaml, want string }

// testRefused parses each file and checks its error.
func testRefused(t *testing.T, tests []refusal) {
	t.Helper()
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
