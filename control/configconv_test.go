package control

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pwgate/pwgate/bpf"
	"github.com/pwgate/pwgate/control/anycast"
	"github.com/pwgate/pwgate/control/bgp"
	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/control/evpn"
	"github.com/pwgate/pwgate/dataplane"
	"github.com/pwgate/pwgate/dataplane/pseudowire"
	"github.com/pwgate/pwgate/dataplane/vxlan"
	"github.com/pwgate/pwgate/dataplane/xsk"
)

// Tests of what the daemon's parts are given from a configuration
// (configconv.go); the configurations are control/config's testdata.

// testYAML returns control/config's testdata/name.
func testYAML(name string) string {
	b, err := os.ReadFile(filepath.Join("config", "testdata", name))
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestParseAnycast(t *testing.T) {
	c, err := config.Parse("a.yaml", []byte(testYAML("announcer.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	if !c.AnycastOnly() {
		t.Error("not anycast only")
	}
	vs := anycast.VIPsOf(c)
	if len(vs) != 2 {
		t.Fatalf("%d VIPs", len(vs))
	}
	v := vs[0]
	if v.Prefix != netip.MustParsePrefix("192.0.2.80/32") || v.Interval != 500*time.Millisecond || v.Timeout != 200*time.Millisecond ||
		v.Rise != 2 || v.Fall != 3 || v.MED != 100 || !v.HasMED || v.Drain != 30*time.Second || v.DrainMED != 1000 ||
		len(v.Communities) != 2 || v.Communities[0] != 65000<<16|80 || v.Communities[1] != 0xFFFFFF01 ||
		v.LargeCommunities[0] != (config.LargeCommunity{Global: 4200000000, Local1: 1, Local2: 80}) {
		t.Errorf("VIP %+v", v)
	}
	if h, ok := v.Probe.(*anycast.HTTPCheck); !ok || h.Status != 204 {
		t.Errorf("check %v", v.Probe)
	}
	w := vs[1]
	if w.Prefix.Bits() != 128 || w.Interval != 2*time.Second || w.Timeout != 2*time.Second || w.DrainMED != config.DefaultDrainMED || w.HasMED {
		t.Errorf("defaults %+v", w)
	}
	if n := c.BGP.Neighbors[0]; len(n.Families) != 2 || n.Families[1] != config.IPv6Unicast {
		t.Errorf("families %v", n.Families)
	}
	f, err := config.Parse("f.yaml", []byte(testYAML("forwarder.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	// Without families, a neighbor's are its address's unicast family.
	if n := f.BGP.Neighbors[0]; len(n.Families) != 1 || n.Families[0] != config.IPv4Unicast {
		t.Errorf("default families %v", n.Families)
	}
	if !f.BGP.Resolved()[0].DefaultOriginate || !speakerConfig(f, false).Neighbors[0].DefaultOriginate {
		t.Error("default_originate not read")
	}
	if fw := f.Anycast.Forward; fw.TableSize != config.DefaultTableSize || len(fw.Interfaces) != 2 || fw.VIPs[0] != v.Prefix {
		t.Errorf("forward %+v", fw)
	}
}

// anycast.forward.neighbors names the neighbors whose paths may name
// servers and next_hop whether a path's next hop must be its neighbor's
// address; both change on a reload (issue 21 finding 5).
func TestParseAnycastForwardTrust(t *testing.T) {
	yaml := strings.Replace(testYAML("forwarder.yaml"), "      default_originate: true\n",
		"      default_originate: true\n    - address: 10.1.0.3\n      asn: 65103\n    - interface: eth9\n      asn: 65109\n      families: [ipv6-unicast]\n", 1)
	c, err := config.Parse("f.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if tr := anycast.TrustOf(c); len(tr.Neighbors) != 0 || len(tr.Interfaces) != 0 || tr.AnyNextHop {
		t.Errorf("default trust %+v: want every neighbor, next hop the neighbor's", tr)
	}
	listed := strings.Replace(yaml, "    vips: [192.0.2.80/32]\n", "    vips: [192.0.2.80/32]\n    neighbors: [10.1.0.2, eth9]\n    next_hop: any\n", 1)
	d, err := config.Parse("f.yaml", []byte(listed))
	if err != nil {
		t.Fatal(err)
	}
	tr := anycast.TrustOf(d)
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
		_, err := config.Parse("f.yaml", []byte(strings.Replace(yaml, tc.old, tc.new, 1)))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestParseTTLSecurity(t *testing.T) {
	c, err := config.Parse("g.yaml", []byte(testYAML("gtsm.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	sc := speakerConfig(c, false)
	var hops []int
	for _, n := range sc.Neighbors {
		hops = append(hops, n.TTLSecurity)
	}
	if !slices.Equal(hops, []int{1, 2, 0}) {
		t.Errorf("ttl_security hops %v, want [1 2 0]", hops)
	}
	// No bgp.listen: the speaker listens on the sessions' sources, the
	// given ones and, for the third neighbor, the kernel's.
	if len(sc.ListenAddrs) != 0 {
		t.Errorf("listen addresses %v without bgp.listen", sc.ListenAddrs)
	}
	got := bgp.SessionSources(sc.Neighbors)
	for _, a := range []string{"10.1.0.1", "10.1.1.1"} {
		if !slices.Contains(got, netip.MustParseAddr(a)) {
			t.Errorf("default listen addresses %v lack the source %s", got, a)
		}
	}
	if len(got) > 3 || slices.ContainsFunc(got, netip.Addr.IsUnspecified) {
		t.Errorf("default listen addresses %v: more than the sessions' sources", got)
	}
	c, err = config.Parse("g.yaml", []byte(strings.Replace(testYAML("gtsm.yaml"), "  router_id: 10.1.0.1\n", "  router_id: 10.1.0.1\n  listen: [0.0.0.0]\n", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if l := speakerConfig(c, false).ListenAddrs; len(l) != 1 || !l[0].IsUnspecified() {
		t.Errorf("bgp.listen [0.0.0.0] gave %v", l)
	}
}

// TestVTEPPrefixes: vxlan.vtep_prefixes and a neighbor's (inherited from
// its peer group) reach the controller; without them the default is
// anywhere, flagged for a warning.
func TestVTEPPrefixes(t *testing.T) {
	c, err := config.Parse("f.yaml", []byte(testYAML("evpn.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	if p, anywhere := c.VTEPPrefixList(); p != nil || !anywhere {
		t.Errorf("default on a routed underlay: %v, anywhere %v", p, anywhere)
	}
	y := strings.Replace(testYAML("evpn.yaml"), "  mac_aging: 120\n", "  mac_aging: 120\n  vtep_prefixes: [10.0.0.0/24, 10.1.0.0/16]\n", 1)
	y = strings.Replace(y, "      hold_time: 30\n", "      hold_time: 30\n      vtep_prefixes: [10.3.0.0/16]\n", 1)
	y = strings.Replace(y, "      keepalive: 3\n", "      keepalive: 3\n      vtep_prefixes: [10.2.0.0/16]\n", 1)
	if c, err = config.Parse("f.yaml", []byte(y)); err != nil {
		t.Fatal(err)
	}
	e := evpnConfig(c, c.VTEPAddr())
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

// TestVTEPLimitIsTheMapSize: the controller's VTEP limit is the XDP peer
// map's size, so that a full set of VTEPs always fits the map.
func TestVTEPLimitIsTheMapSize(t *testing.T) {
	if evpn.DefaultMaxVTEPs != bpf.MaxPeers {
		t.Errorf("evpn.DefaultMaxVTEPs %d, bpf.MaxPeers %d", evpn.DefaultMaxVTEPs, bpf.MaxPeers)
	}
}

func TestParseVXLAN(t *testing.T) {
	c, err := config.Parse("f.yaml", []byte(testYAML("evpn.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	if !c.IsVXLAN() || c.ModeName() != "vxlan" || c.OverWireGuard() || c.VTEPAddr() != netip.MustParseAddr("10.0.0.1") {
		t.Fatalf("vxlan %v mode %s over wg %v vtep %v", c.IsVXLAN(), c.ModeName(), c.OverWireGuard(), c.VTEPAddr())
	}
	x := c.VXLAN
	if len(x.VNIs) != 2 || x.VNIs[1].VLAN != 20 || x.VNIs[1].RT != (config.RT{ASN: 65000, Value: 202}) || !x.Split || x.MACAging != 120*time.Second || x.MACLimit != 16384 {
		t.Fatalf("vxlan %+v", x)
	}
	if c.LearnRemote() {
		t.Error("learning from frames on by default with config.EVPN")
	}
	sc := speakerConfig(c, false)
	if sc.ASN != 4200000000 || len(sc.Neighbors) != 2 || !sc.GracefulRestart || sc.RestartTime != 120 {
		t.Fatalf("speaker %+v", sc)
	}
	n0, n1 := sc.Neighbors[0], sc.Neighbors[1]
	if n0.ASN != 4200000000 || n0.HoldTime != 9 || n0.Keepalive != 3 || len(n0.Families) != 1 || n0.Families[0] != config.EVPN || len(n0.Import) != 1 || n0.Import[0].Permit {
		t.Errorf("neighbor 0 (from the group) %+v", n0)
	}
	if n0.Source != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("sessions come from %v, want the VTEP address", n0.Source)
	}
	if n1.HoldTime != 30 || n1.Keepalive != 3 || n1.Password != "s3cret" || len(n1.Export) != 1 || len(n1.Import) != 1 {
		t.Errorf("neighbor 1 (overrides) %+v", n1)
	}
	e := evpnConfig(c, netip.MustParseAddr("10.0.0.1"))
	if e.ASN != 4200000000 || e.RouterID != netip.MustParseAddr("10.0.0.1") || !e.Pwgate || len(e.VNIs) != 2 || e.LearnRemote {
		t.Errorf("evpn config %+v", e)
	}

	s, err := config.Parse("f.yaml", []byte(testYAML("static.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	if !s.LearnRemote() || s.BGP != nil {
		t.Error("static VXLAN does not learn from frames")
	}
	if e := evpnConfig(s, netip.MustParseAddr("2001:db8:a::a")); len(e.VNIs[0].Remotes) != 2 {
		t.Errorf("static remotes of VNI 101: %v", e.VNIs[0].Remotes)
	}
}

// The configuration's enums and limits are its own (reading a
// configuration links no data path), so they must agree with the data
// path's, value for value.
func TestConfigAgreesWithTheDataPath(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int64
	}{
		{"ModeEth", int64(config.ModeEth), int64(pseudowire.ModeEth)},
		{"ModeIP6", int64(config.ModeIP6), int64(pseudowire.ModeIP6)},
		{"Adaptive", int64(config.Adaptive), int64(dataplane.Adaptive)},
		{"Busy", int64(config.Busy), int64(dataplane.Busy)},
		{"XDPNative", int64(config.XDPNative), int64(bpf.Native)},
		{"XDPGeneric", int64(config.XDPGeneric), int64(bpf.Generic)},
		{"BindAuto", int64(config.BindAuto), int64(xsk.BindAuto)},
		{"BindZeroCopy", int64(config.BindZeroCopy), int64(xsk.BindZeroCopy)},
		{"BindCopy", int64(config.BindCopy), int64(xsk.BindCopy)},
		{"MaxUplinkMTU", config.MaxUplinkMTU, dataplane.MaxUplinkMTU},
		{"MinMTU", config.MinMTU, pseudowire.MinMTU},
		{"MaxMTU", config.MaxMTU, pseudowire.MaxMTU},
		{"MaxVNI", config.MaxVNI, vxlan.MaxVNI},
		{"MaxVIPs", config.MaxVIPs, bpf.MaxVIPs},
		{"DefaultMACLimit", config.DefaultMACLimit, evpn.DefaultLimit},
		{"DefaultMACAging", int64(config.DefaultMACAging), int64(evpn.DefaultAging)},
		{"DefaultTableSize", config.DefaultTableSize, anycast.DefaultTableSize},
		{"MaxTableSize", config.MaxTableSize, anycast.MaxTableSize},
	} {
		if c.got != c.want {
			t.Errorf("config.%s is %d, the data path's %d", c.name, c.got, c.want)
		}
	}
	for _, m := range []config.Mode{config.ModeEth, config.ModeIP6} {
		if m.String() != pseudowire.Mode(m).String() {
			t.Errorf("mode %d: %q, the data path says %q", m, m, pseudowire.Mode(m))
		}
	}
}
