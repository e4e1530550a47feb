package config

import (
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// VXLANConfig is the vxlan section (mode: vxlan).
type VXLANConfig struct {
	VNIs []VNIConfig
	// Remotes are static VTEPs every VNI floods to.
	Remotes []netip.Addr
	// Split: "pwgate" sends frames too big for the underlay in two pieces
	// to pwgate VTEPs; "none" never does.
	Split       bool
	ZeroCsum6TX bool // send IPv6 with a zero UDP checksum
	ZeroCsum6RX bool // accept IPv6 with a zero UDP checksum
	MACAging    time.Duration
	MACLimit    int
	// Learning: "auto" learns remote MACs from frames without EVPN and
	// not with it; "on" and "off" force it.
	Learning string
	// VTEPPrefixes are where EVPN routes' VTEPs may be (a neighbor's own
	// vtep_prefixes replace them for its routes); empty: inside WireGuard
	// the peers' allowed_ips, else anywhere (with a warning at start).
	VTEPPrefixes []netip.Prefix
}

// VNIConfig is one entry of vxlan.vnis.
type VNIConfig struct {
	VNI      uint32
	VLAN     uint16 // 0: untagged
	Remotes  []netip.Addr
	RT       RT     // zero: auto
	Suppress string // "on", "off"; "": on with EVPN (Config.SuppressARP)
}

func (c *Config) vni() *VNIConfig { return &c.VXLAN.VNIs[len(c.VXLAN.VNIs)-1] }

// IsVXLAN reports whether pwgated is a VXLAN tunnel end (mode: vxlan).
func (c *Config) IsVXLAN() bool { return c.VXLAN != nil }

// ModeName is the mode as the file says it.
func (c *Config) ModeName() string {
	if c.IsVXLAN() {
		return "vxlan"
	}
	return c.Mode.String()
}

func vtepAddr(v string) (netip.Addr, error) {
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return a, fmt.Errorf("%q is not an IP address", v)
	}
	a = a.Unmap()
	if !a.IsGlobalUnicast() && !a.IsPrivate() {
		return a, fmt.Errorf("%s is not a unicast address a VTEP can have", v)
	}
	return a, nil
}

// vtepPrefix parses an entry of vtep_prefixes.
func vtepPrefix(v string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(v)
	if err != nil || p != p.Masked() {
		return p, fmt.Errorf("%q is not a prefix such as 2001:db8:100::/48 or 192.0.2.0/24", v)
	}
	return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()), nil
}

func boolean(dst *bool, v string) error {
	switch v {
	case "true", "yes", "on":
		*dst = true
	case "false", "no", "off":
		*dst = false
	default:
		return fmt.Errorf("%q is not true or false", v)
	}
	return nil
}

func seconds(dst *time.Duration, v string, lo, hi int) error {
	n, err := intIn(v, lo, hi)
	*dst = time.Duration(n) * time.Second
	return err
}

var vxlanSchema = section{
	begin: func(c *Config) {
		if c.VXLAN == nil {
			c.VXLAN = &VXLANConfig{MACAging: DefaultMACAging, MACLimit: DefaultMACLimit, Learning: "auto"}
		}
	},
	schema: map[string]any{
		"vnis": items{
			begin: func(c *Config) { c.VXLAN.VNIs = append(c.VXLAN.VNIs, VNIConfig{}) },
			schema: map[string]any{
				"vni": setter(func(c *Config, v string) error {
					n, err := intIn(v, 1, MaxVNI)
					c.vni().VNI = uint32(n)
					return err
				}),
				"vlan": setter(func(c *Config, v string) error {
					if v == "untagged" {
						c.vni().VLAN = 0
						return nil
					}
					n, err := intIn(v, 1, 4094)
					if err != nil {
						return fmt.Errorf("%q is neither untagged nor a VLAN ID 1..4094", v)
					}
					c.vni().VLAN = uint16(n)
					return nil
				}),
				"remotes": each(func(c *Config, v string) error {
					a, err := vtepAddr(v)
					c.vni().Remotes = append(c.vni().Remotes, a)
					return err
				}),
				"route_target": setter(func(c *Config, v string) (err error) {
					c.vni().RT, err = ParseRT(v)
					return
				}),
				"suppress": setter(func(c *Config, v string) error {
					if v != "on" && v != "off" {
						return fmt.Errorf("%q is not on or off", v)
					}
					c.vni().Suppress = v
					return nil
				}),
			},
		},
		"remotes": each(func(c *Config, v string) error {
			a, err := vtepAddr(v)
			c.VXLAN.Remotes = append(c.VXLAN.Remotes, a)
			return err
		}),
		"split": setter(func(c *Config, v string) error {
			switch v {
			case "none":
				c.VXLAN.Split = false
			case "pwgate":
				c.VXLAN.Split = true
			default:
				return fmt.Errorf("unknown split %q (want none or pwgate)", v)
			}
			return nil
		}),
		"udp6_zero_checksum_tx": setter(func(c *Config, v string) error { return boolean(&c.VXLAN.ZeroCsum6TX, v) }),
		"udp6_zero_checksum_rx": setter(func(c *Config, v string) error { return boolean(&c.VXLAN.ZeroCsum6RX, v) }),
		"mac_aging":             setter(func(c *Config, v string) error { return seconds(&c.VXLAN.MACAging, v, 10, 86400) }),
		"mac_limit": setter(func(c *Config, v string) (err error) {
			c.VXLAN.MACLimit, err = intIn(v, 1, 1<<20)
			return
		}),
		"vtep_prefixes": each(func(c *Config, v string) (err error) {
			p, err := vtepPrefix(v)
			c.VXLAN.VTEPPrefixes = append(c.VXLAN.VTEPPrefixes, p)
			return err
		}),
		"learning": setter(func(c *Config, v string) error {
			if v != "auto" && v != "on" && v != "off" {
				return fmt.Errorf("unknown learning %q (want auto, on or off)", v)
			}
			c.VXLAN.Learning = v
			return nil
		}),
	},
}

// checkVXLAN validates mode: vxlan and its section.
func (c *Config) checkVXLAN(lines map[string]int, fail func(key, format string, args ...any) error) error {
	x := c.VXLAN
	if x == nil {
		if c.BGP != nil && c.BGP.UsesEVPN() {
			return fail("bgp", "l2vpn-evpn needs mode: vxlan")
		}
		return nil
	}
	if !c.vxlanMode {
		return fail("vxlan", "only for mode: vxlan")
	}
	for _, k := range []string{"peer.mac", "peer.address"} {
		if _, ok := lines[k]; ok {
			return fail(k, "not in vxlan mode: the VTEPs are vxlan.remotes or come from BGP EVPN")
		}
	}
	local := c.VTEPAddr()
	switch {
	case len(x.VNIs) == 0:
		return fail("vxlan", "vnis: at least one VNI")
	case c.LocalToken.IsValid():
		return fail("local.token", "not in vxlan mode: a VTEP needs a fixed address (local.address), which its remotes and routes name")
	case !c.LocalAddr.IsValid():
		return fail("local.address", "missing: our VTEP address, on the uplink (or one of wireguard.addresses, to run VXLAN inside WireGuard)")
	}
	v4 := local.Is4() // local.token: SLAAC, IPv6
	vnis, vlans := map[uint32]int{}, map[uint16]int{}
	for i, v := range x.VNIs {
		key := fmt.Sprintf("vxlan.vnis[%d]", i)
		if v.VNI == 0 {
			return fail(key, "vni: missing")
		}
		if j, ok := vnis[v.VNI]; ok {
			return fail(key+".vni", "VNI %d is also vxlan.vnis[%d]", v.VNI, j)
		}
		if j, ok := vlans[v.VLAN]; ok {
			what := fmt.Sprintf("VLAN %d", v.VLAN)
			if v.VLAN == 0 {
				what = "the untagged LAN"
			}
			return fail(key+".vlan", "%s already carries VNI %d (vxlan.vnis[%d])", what, x.VNIs[j].VNI, j)
		}
		vnis[v.VNI], vlans[v.VLAN] = i, i
		if v.RT != (RT{}) && (c.BGP == nil || !c.BGP.UsesEVPN()) {
			return fail(key+".route_target", "only with BGP EVPN (a bgp section with l2vpn-evpn)")
		}
	}
	for i, v := range x.VNIs {
		for j, r := range append(slices.Clone(x.Remotes), v.Remotes...) {
			key := "vxlan.remotes"
			if j >= len(x.Remotes) {
				key = fmt.Sprintf("vxlan.vnis[%d].remotes[%d]", i, j-len(x.Remotes))
			}
			switch {
			case local.IsValid() && r == local:
				return fail(key, "%s is our own VTEP address", r)
			case r.Is4() != v4:
				return fail(key, "%s is not of the same IP version as our VTEP address", r)
			case c.OverWireGuard() && !c.inAllowedIPs(r):
				return fail(key, "%s is in no wireguard peer's allowed_ips: VXLAN runs inside WireGuard (local.address is one of wireguard.addresses)", r)
			}
		}
	}
	if err := c.checkVTEPPrefixes(fail); err != nil {
		return err
	}
	if len(x.Remotes) == 0 && !slices.ContainsFunc(x.VNIs, func(v VNIConfig) bool { return len(v.Remotes) > 0 }) &&
		(c.BGP == nil || !c.BGP.UsesEVPN()) {
		return fail("vxlan", "no remote VTEP: list vxlan.remotes, or add a bgp section with l2vpn-evpn neighbors")
	}
	return nil
}

// checkVTEPPrefixes refuses vtep_prefixes of the other IP version than
// our VTEP address (they could never match).
func (c *Config) checkVTEPPrefixes(fail func(key, format string, args ...any) error) error {
	v4 := c.VTEPAddr().Is4()
	check := func(key string, list []netip.Prefix) error {
		for i, p := range list {
			if p.Addr().Is4() != v4 {
				return fail(fmt.Sprintf("%s[%d]", key, i), "%s is not of the same IP version as our VTEP address %s", p, c.VTEPAddr())
			}
		}
		return nil
	}
	if err := check("vxlan.vtep_prefixes", c.VXLAN.VTEPPrefixes); err != nil {
		return err
	}
	if c.BGP == nil {
		return nil
	}
	for _, n := range c.BGP.Resolved() {
		if err := check(n.key+".vtep_prefixes", n.VTEPPrefixes); err != nil {
			return err
		}
	}
	return nil
}

// VTEPPrefixList returns where EVPN routes' VTEPs may be, and whether that
// is anywhere because nothing says otherwise (worth a warning).
func (c *Config) VTEPPrefixList() (_ []netip.Prefix, anywhere bool) {
	switch {
	case len(c.VXLAN.VTEPPrefixes) > 0:
		return c.VXLAN.VTEPPrefixes, false
	case c.OverWireGuard():
		var out []netip.Prefix
		for _, p := range c.WireGuard.Peers {
			out = append(out, p.AllowedIPs...)
		}
		return out, false
	}
	return nil, true
}

// inAllowedIPs reports whether a wireguard peer's allowed IPs hold a.
func (c *Config) inAllowedIPs(a netip.Addr) bool {
	for _, p := range c.WireGuard.Peers {
		for _, pfx := range p.AllowedIPs {
			if pfx.Contains(a) {
				return true
			}
		}
	}
	return false
}

// VTEPAddr returns our VTEP address when the file fixes it (local.address),
// or the zero Addr (local.token: SLAAC decides).
func (c *Config) VTEPAddr() netip.Addr {
	if c.LocalAddr.IsValid() {
		return c.LocalAddr.Addr()
	}
	return netip.Addr{}
}

// LearnRemote reports whether the data path learns remote MACs from frames.
// SuppressARP reports whether VNI index i answers the LAN's ARP requests
// and neighbour solicitations for known addresses (vxlan.vnis[].suppress:
// on with EVPN unless off, off without unless on).
func (c *Config) SuppressARP(i int) bool {
	switch c.VXLAN.VNIs[i].Suppress {
	case "on":
		return true
	case "off":
		return false
	}
	return c.BGP != nil && c.BGP.UsesEVPN()
}

func (c *Config) LearnRemote() bool {
	switch c.VXLAN.Learning {
	case "on":
		return true
	case "off":
		return false
	}
	return c.BGP == nil || !c.BGP.UsesEVPN()
}
