// Package config is pwgated's configuration: plain types, the strict YAML
// file (or the reference's two- or three-line file), validation with the
// file, line and key of each error. It knows nothing of the daemon: its
// enums and limits are its own (control checks that they agree with the
// data path's), and it imports the standard library, yaml and leaves that
// do too (control/client, dataplane/frame, dataplane/wg/wgkey, hw), so
// that pwctl and the plugins read a configuration without linking GoBGP,
// eBPF or WireGuard.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/dataplane/frame"
)

// Defaults of the configuration.
const (
	NoCore = -1
)

// Config is a validated configuration. Zero values mean "not set" where
// the key is optional.
type Config struct {
	Source string // file it came from, for messages

	Mode        Mode
	Downlink    string
	DownlinkMTU int // 0: the interface's MTU, left as it is
	Uplink      string
	UplinkMTU   int // 0: the interface's MTU

	PeerMAC  frame.MAC  // eth mode
	PeerAddr netip.Addr // ip6 mode
	// Keepalive is peer.keepalive (pseudowire modes); nil: none sent.
	Keepalive *Keepalive
	// FollowPeer takes the LAN port down while the peer is silent
	// (downlink.follow_peer); nil: off.
	FollowPeer *FollowPeer

	LocalAddr   netip.Prefix // ip6 mode: own address and prefix length, or
	LocalToken  netip.Addr   // ip6 mode: interface identifier joined to the SLAAC prefix
	CoreMain    int          // NoCore: not pinned
	CoreEncap   int
	CoreDecap   int
	Poll        PollMode
	XDPMode     XDPMode
	XDPBind     BindMode
	NICOffloads NICPolicy
	StatsSocket string
	StatsGroup  string // group owning the socket; "" keeps the daemon's
	GPWSocket   string // reference protocol socket; "" is off
	Prometheus  string // listen address; "" is off
	HTTP        string // the status page's listen address; "" is off

	WireGuard *WGConfig      // nil: no wireguard section
	VXLAN     *VXLANConfig   // mode: vxlan
	BGP       *BGPConfig     // nil: no bgp section
	Anycast   *AnycastConfig // nil: no anycast section
	LLDP      *LLDP          // nil: no lldp section (no LLDP)

	vxlanMode      bool          // the file says mode: vxlan
	followPeerHold time.Duration // downlink.follow_peer_hold, until check

	lines map[string]int // keys set in the file, with their lines
}

// IsSet reports whether the file set key (such as "cores.main").
func (c *Config) IsSet(key string) bool {
	_, ok := c.lines[key]
	return ok
}

// ConfigError is an error in a configuration file, with its place.
type ConfigError struct {
	File string
	Line int // 0 when the error is not tied to a line
	Key  string
	Msg  string
}

// Error formats the error as FILE:LINE: KEY: message.
func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// The schema's building blocks: a key's value is a setter (one scalar), a
// map[string]any (a plain section), a section (one whose presence matters),
// each (a list of scalars) or items (a list of mappings).
type (
	// setter parses one scalar value into c.
	setter func(c *Config, v string) error
	// section is a mapping whose presence means something: begin runs
	// when the file has it, before its keys are read.
	section struct {
		begin  func(c *Config)
		schema map[string]any
	}
	// each is a list of scalars; the setter is called for each.
	each setter
	// items is a list of mappings: begin appends a new item, which the
	// item's setters then fill (it is the last one), schema its keys.
	items struct {
		begin  func(c *Config)
		schema map[string]any
	}
)

// schema lists every key the file may hold; a nested map is a section.
var schema = map[string]any{
	"mode": setter(func(c *Config, v string) (err error) {
		if v == "vxlan" {
			c.vxlanMode = true
			return nil
		}
		c.Mode, err = ParseMode(v)
		if err != nil {
			err = fmt.Errorf("unknown mode %q (want eth, ip6 or vxlan)", v)
		}
		return
	}),
	"downlink": map[string]any{
		"interface": setter(func(c *Config, v string) error { return ifname(&c.Downlink, v) }),
		"follow_peer": setter(func(c *Config, v string) error {
			var on bool
			if err := boolean(&on, v); err != nil || !on {
				return err
			}
			if c.FollowPeer == nil {
				c.FollowPeer = &FollowPeer{Hold: DefaultFollowPeerHold}
			}
			return nil
		}),
		"follow_peer_hold": setter(func(c *Config, v string) error { return duration(&c.followPeerHold, v, 0, time.Hour) }),
		"mtu": setter(func(c *Config, v string) (err error) {
			c.DownlinkMTU, err = intIn(v, MinMTU, MaxUplinkMTU)
			return
		}),
	},
	"uplink": map[string]any{
		"interface": setter(func(c *Config, v string) error { return ifname(&c.Uplink, v) }),
		"mtu": setter(func(c *Config, v string) (err error) {
			c.UplinkMTU, err = intIn(v, MinMTU, MaxUplinkMTU)
			return
		}),
	},
	"peer": map[string]any{
		"mac": setter(func(c *Config, v string) (err error) {
			c.PeerMAC, err = frame.ParseMAC(v)
			if err == nil && (c.PeerMAC.IsZero() || c.PeerMAC.IsMulticast()) {
				err = fmt.Errorf("%s is not a unicast MAC address", v)
			}
			return
		}),
		"address": setter(func(c *Config, v string) (err error) { c.PeerAddr, err = unicast6(v); return }),
		"keepalive": section{begin: func(c *Config) { c.Keepalive = new(Keepalive) }, schema: map[string]any{
			"interval": setter(func(c *Config, v string) error {
				return duration(&c.Keepalive.Interval, v, MinKeepalive, MaxKeepalive)
			}),
			"timeout": setter(func(c *Config, v string) error {
				return duration(&c.Keepalive.Timeout, v, 2*MinKeepalive, time.Minute)
			}),
		}},
	},
	"local": map[string]any{
		"address": setter(func(c *Config, v string) error {
			if !strings.Contains(v, "/") {
				if a, err := netip.ParseAddr(v); err == nil && a.Is4() {
					v += "/32"
				} else {
					v += "/64"
				}
			}
			p, err := netip.ParsePrefix(v)
			if err != nil {
				return fmt.Errorf("%q is not an IP address", v)
			}
			if p.Addr().Is4() { // vxlan mode only; check() says so otherwise
				if _, err := vtepAddr(p.Addr().String()); err != nil {
					return err
				}
			} else if _, err := unicast6(p.Addr().String()); err != nil {
				return err
			}
			c.LocalAddr = p
			return nil
		}),
		"token": setter(func(c *Config, v string) error {
			a, err := netip.ParseAddr(v)
			if err != nil || !a.Is6() || a.Is4In6() {
				return fmt.Errorf("%q is not an IPv6 interface identifier such as ::feed", v)
			}
			b := a.As16()
			if a.IsUnspecified() || !bytes.Equal(b[:8], make([]byte, 8)) {
				return fmt.Errorf("%s is not an interface identifier: the first 64 bits must be zero and the rest not", v)
			}
			c.LocalToken = a
			return nil
		}),
	},
	"cores": map[string]any{
		"main":  setter(func(c *Config, v string) (err error) { c.CoreMain, err = intIn(v, 0, 4095); return }),
		"encap": setter(func(c *Config, v string) (err error) { c.CoreEncap, err = intIn(v, 0, 4095); return }),
		"decap": setter(func(c *Config, v string) (err error) { c.CoreDecap, err = intIn(v, 0, 4095); return }),
	},
	"poll": setter(func(c *Config, v string) (err error) { c.Poll, err = ParsePollMode(v); return }),
	"xdp_mode": setter(func(c *Config, v string) error {
		switch v {
		case "native":
			c.XDPMode = XDPNative
		case "generic":
			c.XDPMode = XDPGeneric
		default:
			return fmt.Errorf("unknown XDP mode %q (want native or generic)", v)
		}
		return nil
	}),
	"xdp_bind":     setter(func(c *Config, v string) (err error) { c.XDPBind, err = ParseBindMode(v); return }),
	"nic_offloads": setter(func(c *Config, v string) (err error) { c.NICOffloads, err = parseNICPolicy(v); return }),
	"wireguard":    wgSchema,
	"vxlan":        vxlanSchema,
	"bgp":          bgpSchema,
	"anycast":      anycastSchema,
	"lldp": section{begin: func(c *Config) { c.LLDP = &LLDP{Interval: DefaultLLDPInterval} }, schema: map[string]any{
		"interval": setter(func(c *Config, v string) error { return duration(&c.LLDP.Interval, v, time.Second, time.Hour) }),
		"system_name": setter(func(c *Config, v string) error {
			if len(v) > 255 || strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0 {
				return fmt.Errorf("%q: at most 255 printable ASCII characters", v)
			}
			c.LLDP.SystemName = v
			return nil
		}),
		"ports": each(func(c *Config, v string) error {
			if slices.Contains(c.LLDP.Ports, v) {
				return fmt.Errorf("%s is named twice", v)
			}
			if len(c.LLDP.Ports) == MaxLLDPPorts {
				return fmt.Errorf("more than %d ports", MaxLLDPPorts)
			}
			c.LLDP.Ports = append(c.LLDP.Ports, v)
			return nil
		}),
	}},
	"stats": map[string]any{
		"socket":          setter(func(c *Config, v string) error { return absPath(&c.StatsSocket, v) }),
		"group":           setter(func(c *Config, v string) error { c.StatsGroup = v; return nil }),
		"gpwstats_socket": setter(func(c *Config, v string) error { return absPath(&c.GPWSocket, v) }),
		"prometheus":      setter(func(c *Config, v string) error { c.Prometheus = v; return nil }),
		"http":            setter(func(c *Config, v string) error { c.HTTP = v; return nil }),
	},
}

// Limits of the data path that the configuration is checked against;
// control's TestLimitsAreTheDataPaths checks that they are the data
// path's own.
const (
	// MaxUplinkMTU is dataplane.MaxUplinkMTU: a received packet must fit
	// one 4096-byte UMEM chunk after the kernel's 256 bytes of headroom,
	// Ethernet header included (4096 - 256 - 14).
	MaxUplinkMTU = 3826
	// MinMTU and MaxMTU are the pseudowire format's (pseudowire.MinMTU,
	// MaxMTU).
	MinMTU = 1280
	MaxMTU = 9216
	// MaxVNI is the largest VXLAN network identifier (vxlan.MaxVNI).
	MaxVNI = 1<<24 - 1
	// MaxVIPs is the anycast forwarder's VIPs at most (bpf.MaxVIPs).
	MaxVIPs = 256
	// DefaultMACLimit and DefaultMACAging are the VXLAN forwarding
	// database's defaults (evpn.DefaultLimit, DefaultAging).
	DefaultMACLimit = 16384
	DefaultMACAging = 300 * time.Second
	// DefaultTableSize and MaxTableSize are the forwarder's Maglev table
	// sizes (anycast.DefaultTableSize, MaxTableSize).
	DefaultTableSize = 65537
	MaxTableSize     = 1048573
)

func ifname(dst *string, v string) error {
	if v == "" || len(v) > 15 || strings.ContainsAny(v, "/ \t:") {
		return fmt.Errorf("%q is not an interface name", v)
	}
	*dst = v
	return nil
}

func intIn(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not an integer", v)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d is out of range %d..%d", n, lo, hi)
	}
	return n, nil
}

func unicast6(v string) (netip.Addr, error) {
	a, err := netip.ParseAddr(v)
	if err != nil {
		return a, fmt.Errorf("%q is not an IP address", v)
	}
	if !a.Is6() || a.Is4In6() {
		return a, fmt.Errorf("%s is not an IPv6 address (the pseudowire runs over IPv6)", v)
	}
	if a.IsMulticast() || a.IsUnspecified() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.Zone() != "" {
		return a, fmt.Errorf("%s is not a global unicast IPv6 address", v)
	}
	return a, nil
}

func absPath(dst *string, v string) error {
	if v != "" && !strings.HasPrefix(v, "/") {
		return fmt.Errorf("%q is not an absolute path", v)
	}
	*dst = v
	return nil
}

// LoadFile reads and validates a YAML configuration file.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse validates a YAML configuration; name is used in messages.
func Parse(name string, data []byte) (*Config, error) {
	c := &Config{Source: name, CoreMain: NoCore, CoreEncap: NoCore, CoreDecap: NoCore, StatsSocket: client.DefaultStatsSocket}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &ConfigError{File: name, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	if len(doc.Content) == 0 {
		return nil, &ConfigError{File: name, Msg: "empty configuration"}
	}
	lines := map[string]int{}
	if err := walk(name, doc.Content[0], "", schema, c, lines); err != nil {
		return nil, err
	}
	if err := c.check(lines); err != nil {
		return nil, err
	}
	c.lines = lines
	return c, nil
}

func walk(file string, n *yaml.Node, path string, sch map[string]any, c *Config, lines map[string]int) error {
	if n.Kind != yaml.MappingNode {
		return &ConfigError{File: file, Line: n.Line, Key: path, Msg: "want a mapping of keys"}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		if path != "" {
			key = path + "." + k.Value
		}
		if _, dup := lines[key]; dup {
			return &ConfigError{File: file, Line: k.Line, Key: key, Msg: fmt.Sprintf("repeated (first on line %d)", lines[key])}
		}
		lines[key] = k.Line
		if err := walkValue(file, k, v, key, sch[k.Value], c, lines); err != nil {
			return err
		}
	}
	return nil
}

// walkValue reads v, the value of key k, as its schema entry says.
func walkValue(file string, k, v *yaml.Node, key string, entry any, c *Config, lines map[string]int) error {
	scalar := func(v *yaml.Node, key string, set setter) error {
		if v.Kind != yaml.ScalarNode {
			return &ConfigError{File: file, Line: v.Line, Key: key, Msg: "want a single value"}
		}
		if err := set(c, v.Value); err != nil {
			return &ConfigError{File: file, Line: v.Line, Key: key, Msg: err.Error()}
		}
		return nil
	}
	list := func() error {
		if v.Kind != yaml.SequenceNode {
			return &ConfigError{File: file, Line: v.Line, Key: key, Msg: "want a list"}
		}
		return nil
	}
	switch s := entry.(type) {
	case map[string]any:
		return walk(file, v, key, s, c, lines)
	case section:
		s.begin(c)
		return walk(file, v, key, s.schema, c, lines)
	case setter:
		return scalar(v, key, s)
	case each:
		if err := list(); err != nil {
			return err
		}
		for i, item := range v.Content {
			ik := fmt.Sprintf("%s[%d]", key, i)
			lines[ik] = item.Line
			if err := scalar(item, ik, setter(s)); err != nil {
				return err
			}
		}
		return nil
	case items:
		if err := list(); err != nil {
			return err
		}
		for i, item := range v.Content {
			ik := fmt.Sprintf("%s[%d]", key, i)
			lines[ik] = item.Line
			s.begin(c)
			if err := walk(file, item, ik, s.schema, c, lines); err != nil {
				return err
			}
		}
		return nil
	}
	return &ConfigError{File: file, Line: k.Line, Key: key, Msg: "unknown key"}
}

// check validates what single values cannot: keys that belong together.
func (c *Config) check(lines map[string]int) error {
	fail := func(key, format string, args ...any) error {
		return &ConfigError{File: c.Source, Line: lines[key], Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	if c.AnycastOnly() {
		return c.checkAnycastOnly(lines, fail)
	}
	switch {
	case c.Mode == 0 && !c.vxlanMode:
		return fail("mode", "missing (eth, ip6 or vxlan; or only bgp and anycast sections)")
	case c.Downlink == "":
		return fail("downlink.interface", "missing")
	case c.Uplink == "":
		return fail("uplink.interface", "missing")
	case c.Downlink == c.Uplink:
		return fail("uplink.interface", "the same interface as downlink.interface")
	}
	if c.vxlanMode && c.VXLAN == nil {
		return fail("mode", "vxlan needs a vxlan section (vnis, and remotes or a bgp section)")
	}
	if err := c.checkWireGuard(fail); err != nil {
		return err
	}
	c.bgpDefaults()
	if err := c.checkBGP(fail); err != nil {
		return err
	}
	if err := c.checkVXLAN(lines, fail); err != nil {
		return err
	}
	if err := c.checkAnycast(fail); err != nil {
		return err
	}
	if c.LocalAddr.Addr().Is4() && !c.IsVXLAN() {
		return fail("local.address", "%s is IPv4: the pseudowire runs over IPv6 (IPv4 is for VXLAN VTEPs)", c.LocalAddr.Addr())
	}
	switch {
	case c.IsVXLAN():
	case c.Mode == ModeEth:
		if c.PeerMAC.IsZero() {
			return fail("peer.mac", "missing: eth mode sends to the peer's MAC address")
		}
		for _, k := range []string{"peer.address", "local.address", "local.token"} {
			if _, ok := lines[k]; ok {
				return fail(k, "only for ip6 and vxlan mode")
			}
		}
	default:
		if !c.PeerAddr.IsValid() {
			return fail("peer.address", "missing: ip6 mode sends to the peer's IPv6 address")
		}
		if _, ok := lines["peer.mac"]; ok {
			return fail("peer.mac", "only for eth mode (ip6 mode sends to the next hop)")
		}
		switch {
		case c.OverWireGuard():
			for _, k := range []string{"local.address", "local.token"} {
				if _, ok := lines[k]; ok {
					return fail(k, "not with the pseudowire inside WireGuard (peer.address %s is a wireguard peer's allowed IP): its source is the first IPv6 address in wireguard.addresses, and the uplink's own address is the system's", c.PeerAddr)
				}
			}
		case c.LocalAddr.IsValid() == c.LocalToken.IsValid():
			return fail("local", "set exactly one of local.address and local.token")
		}
		if c.LocalAddr.IsValid() && c.LocalAddr.Addr() == c.PeerAddr {
			return fail("local.address", "the same as peer.address")
		}
	}
	if err := c.checkKeepalive(lines, fail); err != nil {
		return err
	}
	if c.LLDP != nil {
		for _, p := range c.LLDP.Ports {
			if p == c.Downlink || p == c.Uplink {
				return fail("lldp.ports", "%s is a pseudowire port: LLDP runs on both of those anyway; list only others (the management port)", p)
			}
		}
	}
	return c.checkStats(fail)
}

// LLDP is the lldp section: LLDP on the downlink, the uplink and Ports.
type LLDP struct {
	Interval   time.Duration // between our LLDPDUs; their TTL is 4 × Interval
	SystemName string        // "": the host name
	Ports      []string      // more ports (the management port)
}

// LLDP limits and defaults.
const (
	DefaultLLDPInterval = 30 * time.Second
	MaxLLDPPorts        = 8
)

// Keepalive is peer.keepalive.
type Keepalive struct {
	Interval time.Duration // how often one is sent
	Timeout  time.Duration // silence (no keepalive, no frame) after which the peer is down
}

// FollowPeer is downlink.follow_peer.
type FollowPeer struct {
	// Hold is how long the peer must be heard again before the LAN port
	// comes back up (against flapping).
	Hold time.Duration
}

// Keepalive limits and defaults.
const (
	MinKeepalive          = 10 * time.Millisecond
	MaxKeepalive          = 10 * time.Second
	DefaultFollowPeerHold = 2 * time.Second
)

// checkKeepalive checks peer.keepalive and downlink.follow_peer*.
func (c *Config) checkKeepalive(lines map[string]int, fail func(key, format string, args ...any) error) error {
	_, hold := lines["downlink.follow_peer_hold"]
	switch {
	case hold && c.FollowPeer == nil:
		return fail("downlink.follow_peer_hold", "only with downlink.follow_peer: true")
	case hold:
		c.FollowPeer.Hold = c.followPeerHold
	}
	if c.IsVXLAN() {
		for _, k := range []string{"peer.keepalive", "downlink.follow_peer"} {
			if _, ok := lines[k]; ok {
				return fail(k, "only for the pseudowire (eth and ip6 mode): a VTEP's peers are BGP's")
			}
		}
	}
	if k := c.Keepalive; k != nil {
		switch {
		case k.Interval == 0:
			return fail("peer.keepalive.interval", "missing (such as 100ms)")
		case k.Timeout == 0:
			k.Timeout = 3 * k.Interval
		case k.Timeout < 2*k.Interval:
			return fail("peer.keepalive.timeout", "%v is less than twice the interval %v: one late keepalive would take the peer for dead", k.Timeout, k.Interval)
		}
	}
	if c.FollowPeer != nil && c.Keepalive == nil {
		return fail("downlink.follow_peer", "needs peer.keepalive (on both pwgates): an idle LAN sends nothing for seconds, so only keepalives tell a silent peer from a quiet one")
	}
	return nil
}

func (c *Config) checkStats(fail func(key, format string, args ...any) error) error {
	if c.Prometheus != "" {
		if _, err := netip.ParseAddrPort(c.Prometheus); err != nil {
			return fail("stats.prometheus", "%q is not an address:port such as 127.0.0.1:9469", c.Prometheus)
		}
	}
	if c.HTTP != "" {
		if _, err := netip.ParseAddrPort(c.HTTP); err != nil {
			return fail("stats.http", "%q is not an address:port such as 192.168.88.1:8080 (the management port's address)", c.HTTP)
		}
	}
	return nil
}

// checkAnycastOnly validates a file with only bgp and anycast (and stats,
// cores): a server's announcer, or a forwarder.
func (c *Config) checkAnycastOnly(lines map[string]int, fail func(key, format string, args ...any) error) error {
	for k := range lines {
		top, _, _ := strings.Cut(k, ".")
		switch top {
		case "bgp", "anycast", "stats", "cores", "xdp_mode":
		default:
			return fail(top, "not without a mode: a file with no mode runs only bgp and anycast")
		}
	}
	c.bgpDefaults()
	if err := c.checkBGP(fail); err != nil {
		return err
	}
	if err := c.checkAnycast(fail); err != nil {
		return err
	}
	return c.checkStats(fail)
}

// CheckCores refuses cores that are not in avail (the cores this process
// may run on: dataplane.AvailableCores). It is a check of the machine, not
// of the file: Parse does not call it (a configuration is valid whatever
// the calling process's CPU affinity), pwgated does before it pins
// anything, and --check does.
func (c *Config) CheckCores(avail []int) error {
	for _, k := range []struct {
		key  string
		core int
	}{{"cores.main", c.CoreMain}, {"cores.encap", c.CoreEncap}, {"cores.decap", c.CoreDecap}} {
		if k.core != NoCore && !slices.Contains(avail, k.core) {
			return &ConfigError{File: c.Source, Line: c.lines[k.key], Key: k.key,
				Msg: fmt.Sprintf("core %d does not exist or is not available (available: %v)", k.core, avail)}
		}
	}
	return nil
}

// Reloadable reports the first key whose change needs a restart, or "".
func (c *Config) Reloadable(next *Config) string {
	switch {
	case c.Mode != next.Mode || c.IsVXLAN() != next.IsVXLAN():
		return "mode"
	case c.Downlink != next.Downlink:
		return "downlink.interface"
	case c.DownlinkMTU != next.DownlinkMTU:
		return "downlink.mtu"
	case c.Uplink != next.Uplink:
		return "uplink.interface"
	case c.CoreMain != next.CoreMain || c.CoreEncap != next.CoreEncap || c.CoreDecap != next.CoreDecap:
		return "cores"
	case c.Poll != next.Poll:
		return "poll"
	case c.XDPMode != next.XDPMode:
		return "xdp_mode"
	case c.XDPBind != next.XDPBind:
		return "xdp_bind"
	case c.NICOffloads != next.NICOffloads:
		return "nic_offloads"
	case c.StatsSocket != next.StatsSocket || c.StatsGroup != next.StatsGroup || c.GPWSocket != next.GPWSocket || c.Prometheus != next.Prometheus || c.HTTP != next.HTTP:
		return "stats"
	case (c.WireGuard == nil) != (next.WireGuard == nil):
		return "wireguard (adding or removing the section)"
	case c.OverWireGuard() != next.OverWireGuard():
		return "peer.address (moving the pseudowire into or out of WireGuard)"
	case c.WireGuard != nil && c.WireGuard.Interface != next.WireGuard.Interface:
		return "wireguard.interface"
	case c.WireGuard != nil && c.WireGuard.BindXDP != next.WireGuard.BindXDP:
		return "wireguard.bind"
	case c.WireGuard != nil && c.WireGuard.BindXDP && c.WireGuard.ListenPort != next.WireGuard.ListenPort:
		return "wireguard.listen_port (with bind: xdp, the uplink's XDP program is loaded for one port)"
	case c.IsVXLAN() && (c.LocalAddr != next.LocalAddr || c.LocalToken != next.LocalToken):
		return "local (our VTEP address)"
	case c.IsVXLAN() && c.VXLAN.MACLimit != next.VXLAN.MACLimit:
		return "vxlan.mac_limit"
	case (c.BGP == nil) != (next.BGP == nil):
		return "bgp (adding or removing the section)"
	case (c.Anycast == nil) != (next.Anycast == nil):
		return "anycast (adding or removing the section)"
	case (c.LLDP == nil) != (next.LLDP == nil):
		return "lldp (adding or removing the section: the LAN port's XDP program passes LLDP only when loaded so)"
	case c.Anycast != nil && fmt.Sprint(c.Anycast.Forward.restartKeys()) != fmt.Sprint(next.Anycast.Forward.restartKeys()):
		return "anycast.forward"
	case c.BGP != nil && (c.BGP.ASN != next.BGP.ASN || c.BGP.RouterID != next.BGP.RouterID):
		return "bgp.asn and bgp.router_id"
	case c.BGP != nil && (!slices.Equal(c.BGP.Listen, next.BGP.Listen) || c.BGP.Port != next.BGP.Port ||
		c.BGP.GracefulRestart != next.BGP.GracefulRestart || c.BGP.RestartTime != next.BGP.RestartTime):
		return "bgp.listen, bgp.port and graceful restart"
	}
	return ""
}

// ErrNoConfig is returned when neither kind of configuration is given.
var ErrNoConfig = errors.New("no configuration: give --config FILE or --gpw-config FILE")
