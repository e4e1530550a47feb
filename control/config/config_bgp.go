package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
)

// BGPConfig is the bgp section: the embedded BGP speaker.
type BGPConfig struct {
	ASN             uint32
	RouterID        netip.Addr
	Listen          []netip.Addr
	Port            int
	GracefulRestart bool
	RestartTime     int
	Groups          []NeighborConfig
	Neighbors       []NeighborConfig
	reading         *NeighborConfig // the entry being read (parsing only)
}

// NeighborConfig is an entry of bgp.neighbors or bgp.peer_groups: a
// neighbor takes every key it does not set from its peer group.
type NeighborConfig struct {
	Name        string // peer groups: the group's name
	Group       string // neighbors: peer_group
	Address     netip.Addr
	Interface   string
	ASN         uint32
	Password    string
	HoldTime    int
	Keepalive   int
	Families    []Family
	MaxPrefix   int
	Multihop    int
	TTLSecurity int // ttl_security: GTSM's hop count (true: 1); 0: off
	Source      netip.Addr
	Description string
	// DefaultOriginate: announce a default route to this neighbor.
	DefaultOriginate bool
	Import           []Rule
	Export           []Rule
	// VTEPPrefixes replace vxlan.vtep_prefixes for this neighbor's routes.
	VTEPPrefixes []netip.Prefix
	set          map[string]bool // keys the file set
	key          string          // "bgp.neighbors[N]", for messages
}

// Defaults of the bgp section.
const (
	DefaultRestartTime = 120
	DefaultHoldTime    = 90
)

// neighborKeys are the keys a neighbor and a peer group share.
var neighborKeys = func() map[string]any {
	// n returns the neighbor or group being read: the last one of the list
	// the walker is in (set by the items' begin).
	return map[string]any{
		"asn": setter(func(c *Config, v string) error {
			n, err := parseASN(v)
			c.bgpN().ASN = n
			return err
		}),
		"password": setter(func(c *Config, v string) error {
			if v == "" || len(v) > 80 {
				return fmt.Errorf("a TCP-MD5 password is 1 to 80 characters")
			}
			c.bgpN().Password = v
			return nil
		}),
		"hold_time": setter(func(c *Config, v string) (err error) {
			c.bgpN().HoldTime, err = intIn(v, 0, 65535)
			if err == nil && c.bgpN().HoldTime > 0 && c.bgpN().HoldTime < 3 {
				err = fmt.Errorf("%s s: RFC 4271 allows 0 or 3 to 65535", v)
			}
			return
		}),
		"keepalive": setter(func(c *Config, v string) (err error) { c.bgpN().Keepalive, err = intIn(v, 1, 21845); return }),
		"families": each(func(c *Config, v string) error {
			f, err := ParseFamily(v)
			if err == nil && slices.Contains(c.bgpN().Families, f) {
				err = fmt.Errorf("%s twice", v)
			}
			c.bgpN().Families = append(c.bgpN().Families, f)
			return err
		}),
		"max_prefix":  setter(func(c *Config, v string) (err error) { c.bgpN().MaxPrefix, err = intIn(v, 1, 10_000_000); return }),
		"multihop":    setter(func(c *Config, v string) (err error) { c.bgpN().Multihop, err = intIn(v, 1, 255); return }),
		"description": setter(func(c *Config, v string) error { c.bgpN().Description = v; return nil }),
		"default_originate": setter(func(c *Config, v string) error {
			return boolean(&c.bgpN().DefaultOriginate, v)
		}),
		"ttl_security": setter(func(c *Config, v string) (err error) {
			switch v {
			case "true":
				c.bgpN().TTLSecurity = 1
			case "false":
				c.bgpN().TTLSecurity = 0
			default:
				if c.bgpN().TTLSecurity, err = intIn(v, 1, 254); err != nil {
					err = fmt.Errorf("%q is neither true, false nor a hop count 1 to 254", v)
				}
			}
			return
		}),
		"source": setter(func(c *Config, v string) (err error) {
			c.bgpN().Source, err = netip.ParseAddr(v)
			if err != nil {
				err = fmt.Errorf("%q is not an IP address", v)
			}
			return
		}),
		"vtep_prefixes": each(func(c *Config, v string) error {
			p, err := vtepPrefix(v)
			c.bgpN().VTEPPrefixes = append(c.bgpN().VTEPPrefixes, p)
			return err
		}),
		"import": rulesSchema(func(n *NeighborConfig) *[]Rule { return &n.Import }),
		"export": rulesSchema(func(n *NeighborConfig) *[]Rule { return &n.Export }),
	}
}()

// rulesSchema is a list of filter rules.
func rulesSchema(list func(*NeighborConfig) *[]Rule) items {
	rule := func(c *Config) *Rule { l := list(c.bgpN()); return &(*l)[len(*l)-1] }
	return items{
		begin: func(c *Config) { l := list(c.bgpN()); *l = append(*l, Rule{Permit: true}) },
		schema: map[string]any{
			"action": setter(func(c *Config, v string) error {
				switch v {
				case "permit":
					rule(c).Permit = true
				case "deny":
					rule(c).Permit = false
				default:
					return fmt.Errorf("unknown action %q (want permit or deny)", v)
				}
				return nil
			}),
			"route_type": setter(func(c *Config, v string) (err error) { rule(c).Kind, err = ParseRuleKind(v); return }),
			"route_target": setter(func(c *Config, v string) (err error) {
				rule(c).RT, err = ParseRT(v)
				rule(c).HasRT = true
				return
			}),
			"prefix": setter(func(c *Config, v string) error {
				p, err := netip.ParsePrefix(v)
				if err != nil || p != p.Masked() {
					return fmt.Errorf("%q is not a prefix such as 192.0.2.0/24", v)
				}
				rule(c).Prefix = p
				return nil
			}),
		},
	}
}

// bgpN returns the neighbor or peer group being read.
func (c *Config) bgpN() *NeighborConfig { return c.BGP.reading }

func neighborItems(list func(*BGPConfig) *[]NeighborConfig, name string, extra map[string]any) items {
	schema := map[string]any{}
	for k, v := range neighborKeys {
		schema[k] = v
	}
	for k, v := range extra {
		schema[k] = v
	}
	// The walker tells items' setters nothing about the key they set; a
	// wrapper records it, for peer group inheritance.
	for k, v := range schema {
		if s, ok := v.(setter); ok {
			schema[k] = setter(func(c *Config, val string) error { c.bgpN().set[k] = true; return s(c, val) })
		}
		if s, ok := v.(each); ok {
			schema[k] = each(func(c *Config, val string) error { c.bgpN().set[k] = true; return s(c, val) })
		}
		if s, ok := v.(items); ok {
			begin := s.begin
			s.begin = func(c *Config) { c.bgpN().set[k] = true; begin(c) }
			schema[k] = s
		}
	}
	return items{
		begin: func(c *Config) {
			l := list(c.BGP)
			*l = append(*l, NeighborConfig{set: map[string]bool{}, key: fmt.Sprintf("bgp.%s[%d]", name, len(*l))})
			c.BGP.reading = &(*l)[len(*l)-1]
		},
		schema: schema,
	}
}

var bgpSchema = section{
	begin: func(c *Config) {
		c.BGP = &BGPConfig{Port: 179, GracefulRestart: true, RestartTime: DefaultRestartTime}
	},
	schema: map[string]any{
		"asn": setter(func(c *Config, v string) (err error) { c.BGP.ASN, err = parseASN(v); return }),
		"router_id": setter(func(c *Config, v string) error {
			a, err := netip.ParseAddr(v)
			if err != nil || !a.Is4() || a.IsUnspecified() {
				return fmt.Errorf("%q is not an IPv4 address (a router ID is written as one)", v)
			}
			c.BGP.RouterID = a
			return nil
		}),
		"listen": each(func(c *Config, v string) error {
			a, err := netip.ParseAddr(v)
			if err != nil {
				return fmt.Errorf("%q is not an IP address", v)
			}
			c.BGP.Listen = append(c.BGP.Listen, a)
			return nil
		}),
		"port":             setter(func(c *Config, v string) (err error) { c.BGP.Port, err = intIn(v, 1, 65535); return }),
		"graceful_restart": setter(func(c *Config, v string) error { return boolean(&c.BGP.GracefulRestart, v) }),
		"restart_time":     setter(func(c *Config, v string) (err error) { c.BGP.RestartTime, err = intIn(v, 1, 4095); return }),
		"peer_groups": neighborItems(func(b *BGPConfig) *[]NeighborConfig { return &b.Groups }, "peer_groups", map[string]any{
			"name": setter(func(c *Config, v string) error {
				if v == "" {
					return fmt.Errorf("a peer group needs a name")
				}
				c.bgpN().Name = v
				return nil
			}),
		}),
		"neighbors": neighborItems(func(b *BGPConfig) *[]NeighborConfig { return &b.Neighbors }, "neighbors", map[string]any{
			"address": setter(func(c *Config, v string) error {
				a, err := netip.ParseAddr(v)
				if err != nil || a.Zone() != "" || a.IsUnspecified() || a.IsMulticast() {
					return fmt.Errorf("%q is not a neighbor's address (for a link-local neighbor, give interface)", v)
				}
				c.bgpN().Address = a.Unmap()
				return nil
			}),
			"interface":  setter(func(c *Config, v string) error { return ifname(&c.bgpN().Interface, v) }),
			"peer_group": setter(func(c *Config, v string) error { c.bgpN().Group = v; return nil }),
		}),
	},
}

// parseASN parses a 2- or 4-byte AS number, plain or asdot (1.10).
func parseASN(v string) (uint32, error) {
	if hi, lo, ok := cutDot(v); ok {
		return hi<<16 | lo, nil
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil || n == 0 || n == 23456 {
		return 0, fmt.Errorf("%q is not an AS number 1..4294967295 (23456 is AS_TRANS)", v)
	}
	return uint32(n), nil
}

func cutDot(v string) (uint32, uint32, bool) {
	for i := range len(v) {
		if v[i] == '.' {
			hi, err1 := strconv.ParseUint(v[:i], 10, 16)
			lo, err2 := strconv.ParseUint(v[i+1:], 10, 16)
			return uint32(hi), uint32(lo), err1 == nil && err2 == nil
		}
	}
	return 0, 0, false
}

// UsesEVPN reports whether any neighbor carries l2vpn-evpn.
func (b *BGPConfig) UsesEVPN() bool {
	for _, n := range b.Resolved() {
		if slices.Contains(n.Families, EVPN) {
			return true
		}
	}
	return false
}

// Resolved returns the neighbors with their peer groups' keys filled in.
func (b *BGPConfig) Resolved() []NeighborConfig {
	var out []NeighborConfig
	for _, n := range b.Neighbors {
		r := n
		for _, g := range b.Groups {
			if g.Name != n.Group || n.Group == "" {
				continue
			}
			inherit := func(k string, dst, src any) {
				if n.set[k] || !g.set[k] {
					return
				}
				switch d := dst.(type) {
				case *uint32:
					*d = *src.(*uint32)
				case *int:
					*d = *src.(*int)
				case *string:
					*d = *src.(*string)
				case *netip.Addr:
					*d = *src.(*netip.Addr)
				case *[]Family:
					*d = *src.(*[]Family)
				case *[]Rule:
					*d = *src.(*[]Rule)
				case *bool:
					*d = *src.(*bool)
				case *[]netip.Prefix:
					*d = *src.(*[]netip.Prefix)
				}
			}
			inherit("asn", &r.ASN, &g.ASN)
			inherit("password", &r.Password, &g.Password)
			inherit("hold_time", &r.HoldTime, &g.HoldTime)
			inherit("keepalive", &r.Keepalive, &g.Keepalive)
			inherit("families", &r.Families, &g.Families)
			inherit("max_prefix", &r.MaxPrefix, &g.MaxPrefix)
			inherit("multihop", &r.Multihop, &g.Multihop)
			inherit("ttl_security", &r.TTLSecurity, &g.TTLSecurity)
			inherit("source", &r.Source, &g.Source)
			inherit("description", &r.Description, &g.Description)
			inherit("default_originate", &r.DefaultOriginate, &g.DefaultOriginate)
			inherit("import", &r.Import, &g.Import)
			inherit("export", &r.Export, &g.Export)
			inherit("vtep_prefixes", &r.VTEPPrefixes, &g.VTEPPrefixes)
		}
		out = append(out, r)
	}
	return out
}

// bgpDefaults gives neighbors without families their mode's: in vxlan
// mode, l2vpn-evpn; with anycast, the unicast family of the neighbor's
// address, or both for an unnumbered neighbor.
func (c *Config) bgpDefaults() {
	if c.BGP == nil || !c.IsVXLAN() && c.Anycast == nil {
		return
	}
	for i := range c.BGP.Neighbors {
		n := &c.BGP.Neighbors[i]
		if n.set["families"] || slices.ContainsFunc(c.BGP.Groups, func(g NeighborConfig) bool { return g.Name == n.Group && g.set["families"] }) {
			continue
		}
		switch {
		case c.IsVXLAN():
			n.Families = []Family{EVPN}
		case n.Interface != "":
			// Unnumbered (anycast): both, the IPv4 routes with IPv6 next
			// hops, as FRR's "neighbor IFNAME interface" carries them.
			n.Families = []Family{IPv4Unicast, IPv6Unicast}
		case n.Address.Is4():
			n.Families = []Family{IPv4Unicast} // anycast
		default:
			n.Families = []Family{IPv6Unicast}
		}
		n.set["families"] = true
	}
}

// checkBGP validates the bgp section.
func (c *Config) checkBGP(fail func(key, format string, args ...any) error) error {
	b := c.BGP
	if b == nil {
		return nil
	}
	switch {
	case b.ASN == 0:
		return fail("bgp.asn", "missing")
	case !b.RouterID.IsValid():
		return fail("bgp.router_id", "missing (an IPv4 address unique among the speakers, such as this box's overlay or loopback address)")
	case len(b.Neighbors) == 0:
		return fail("bgp", "neighbors: at least one")
	}
	groups := map[string]bool{}
	for _, g := range b.Groups {
		switch {
		case g.Name == "":
			return fail(g.key, "name: missing")
		case groups[g.Name]:
			return fail(g.key+".name", "a second peer group %q", g.Name)
		}
		groups[g.Name] = true
	}
	for _, n := range b.Resolved() {
		switch {
		case n.Group != "" && !groups[n.Group]:
			return fail(n.key+".peer_group", "no peer group %q", n.Group)
		case n.Address.IsValid() == (n.Interface != ""):
			return fail(n.key, "set exactly one of address and interface (unnumbered, over IPv6 link-local)")
		case n.ASN == 0:
			return fail(n.key, "asn: missing (here or in its peer group)")
		case n.Keepalive > 0 && n.HoldTime > 0 && n.Keepalive*3 > n.HoldTime:
			return fail(n.key+".keepalive", "%d s is more than a third of hold_time %d s", n.Keepalive, n.HoldTime)
		case n.TTLSecurity > 0 && n.Multihop > 0:
			return fail(n.key+".ttl_security", "excludes multihop: TTL security takes the neighbor's distance in hops (ttl_security: N)")
		case n.Source.IsValid() && n.Address.IsValid() && n.Source.Is4() != n.Address.Is4():
			return fail(n.key+".source", "%s is not of the same IP version as the neighbor %s", n.Source, n.Address)
		}
		if len(n.Families) == 0 {
			return fail(n.key, "families: missing (l2vpn-evpn, ipv4-unicast, ipv6-unicast)")
		}
		if slices.Contains(n.Families, EVPN) && !c.IsVXLAN() {
			return fail(n.key+".families", "l2vpn-evpn needs mode: vxlan")
		}
		for _, r := range n.Export {
			if r.Kind == MACIPRoutes || r.Kind == IMETRoutes {
				return fail(n.key+".export", "route_type %s: export filters tell only evpn and prefix routes apart (GoBGP's policies cannot see EVPN route types); filter by route_target instead",
					map[RuleKind]string{MACIPRoutes: "macip", IMETRoutes: "imet"}[r.Kind])
			}
		}
		switch {
		case len(n.VTEPPrefixes) > 0 && !c.IsVXLAN():
			return fail(n.key+".vtep_prefixes", "only in mode: vxlan (they filter EVPN routes' VTEPs)")
		case len(n.VTEPPrefixes) > 0 && n.Interface != "":
			return fail(n.key+".vtep_prefixes", "needs the neighbor's address, not an interface (use vxlan.vtep_prefixes)")
		case n.Password != "" && n.Interface != "":
			// GoBGP sets TCP-MD5 keys by net.ParseIP of the neighbor's
			// address, which a zone ("fe80::1%eth0") defeats.
			return fail(n.key+".password", "needs the neighbor's address, not an interface: TCP-MD5 on an unnumbered session is not supported")
		}
	}
	if err := ValidateSpeaker(c.BGP.ASN, c.BGP.RouterID, c.BGP.Resolved()); err != nil {
		return fail("bgp", "%v", err)
	}
	return nil
}

// ValidateSpeaker checks a BGP speaker's settings as control/bgp needs
// them (it calls this for every configuration it is given): the AS, the
// router ID and each neighbor (resolved from its peer group).
func ValidateSpeaker(asn uint32, routerID netip.Addr, neighbors []NeighborConfig) error {
	if asn == 0 {
		return fmt.Errorf("bgp: asn is missing")
	}
	if !routerID.Is4() {
		return fmt.Errorf("bgp: router_id must be an IPv4 address, not %q", routerID)
	}
	seen := map[string]bool{}
	for _, n := range neighbors {
		k := n.sessionKey()
		switch {
		case n.Interface == "" && !n.Address.IsValid():
			return fmt.Errorf("bgp: a neighbor has neither an address nor an interface")
		case seen[k]:
			return fmt.Errorf("bgp: neighbor %s is configured twice", k)
		case n.ASN == 0:
			return fmt.Errorf("bgp: neighbor %s: asn is missing", k)
		case n.HoldTime != 0 && n.HoldTime < 3 || n.HoldTime > 65535:
			return fmt.Errorf("bgp: neighbor %s: hold_time %d s: RFC 4271 allows 0 or 3 to 65535", k, n.HoldTime)
		case n.Keepalive < 0 || n.HoldTime > 0 && n.Keepalive >= n.HoldTime:
			return fmt.Errorf("bgp: neighbor %s: keepalive %d s must be shorter than hold_time %d s", k, n.Keepalive, n.HoldTime)
		case len(n.Families) == 0:
			return fmt.Errorf("bgp: neighbor %s has no address family", k)
		case n.MaxPrefix < 0:
			return fmt.Errorf("bgp: neighbor %s: max_prefix must not be negative", k)
		case n.Multihop < 0 || n.Multihop > 255:
			return fmt.Errorf("bgp: neighbor %s: multihop TTL %d is not 1 to 255", k, n.Multihop)
		case n.TTLSecurity < 0 || n.TTLSecurity > 254:
			return fmt.Errorf("bgp: neighbor %s: ttl_security %d hops is not 1 to 254", k, n.TTLSecurity)
		case n.TTLSecurity > 0 && n.Multihop > 0:
			return fmt.Errorf("bgp: neighbor %s: ttl_security and multihop exclude each other (ttl_security takes a hop count)", k)
		case n.DefaultOriginate && !slices.Contains(n.Families, IPv4Unicast) && !slices.Contains(n.Families, IPv6Unicast):
			return fmt.Errorf("bgp: neighbor %s: default_originate needs an ipv4-unicast or ipv6-unicast family", k)
		}
		for _, r := range n.Export {
			if r.Kind == MACIPRoutes || r.Kind == IMETRoutes {
				return fmt.Errorf("bgp: neighbor %s: an export filter cannot tell MAC routes from flood routes (GoBGP's policies cannot); use evpn, route_target or prefix", k)
			}
		}
		seen[k] = true
	}
	return nil
}

// sessionKey names a neighbor as control/bgp does: its address, or
// "if:" and its interface.
func (n *NeighborConfig) sessionKey() string {
	if n.Interface != "" {
		return "if:" + n.Interface
	}
	return n.Address.String()
}
