package config

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// AnycastConfig is the anycast section: VIPs this box announces while
// their checks pass (the announcer), and VIPs it spreads over the servers
// BGP names (the forwarder). Either or both.
type AnycastConfig struct {
	VIPs    []VIPConfig
	Forward *ForwardConfig
	// ClockWait is how long the first health checks wait at most for the
	// system clock to be synchronised (anycast.clock_wait); 0: not at all.
	ClockWait time.Duration
}

// VIP is a VIP the announcer runs (control/anycast's VIP, with the
// check as written).
type VIP struct {
	Prefix  netip.Prefix
	NextHop netip.Addr // unset: this speaker's address on each session
	Check   CheckSpec
	// Interval between checks, Timeout of one; Rise passing checks in a
	// row announce the VIP, Fall failing ones withdraw it.
	Interval, Timeout time.Duration
	Rise, Fall        int
	MED               uint32
	HasMED            bool
	LocalPref         uint32 // iBGP; 0: the speaker's default (100)
	Communities       []uint32
	LargeCommunities  []LargeCommunity
	// Drain is how long a drained VIP stays announced with DrainMED and
	// GRACEFUL_SHUTDOWN before it is withdrawn.
	Drain    time.Duration
	DrainMED uint32
}

// VIPConfig is one entry of anycast.vips.
type VIPConfig struct {
	VIP
	key                     string
	checkKind, checkTarget  string
	checkWant               int
	hasStatus, hasExit      bool
	timeoutSet, drainMEDSet bool
}

// ForwardConfig is anycast.forward.
type ForwardConfig struct {
	Interfaces []string
	VIPs       []netip.Prefix
	TableSize  int
	// Neighbors are the bgp neighbors (addresses, or interfaces of
	// unnumbered ones) whose paths may name servers; empty: every one.
	Neighbors []string
	// AnyNextHop (next_hop: any) takes a path whose next hop is not its
	// neighbor's address, or is reached through a gateway; the default
	// (next_hop: neighbor) refuses it.
	AnyNextHop bool
}

// restartKeys is f without what a reload may change (the trust).
func (f *ForwardConfig) restartKeys() *ForwardConfig {
	if f == nil {
		return nil
	}
	g := *f
	g.Neighbors, g.AnyNextHop = nil, false
	return &g
}

// DefaultDrainMED is the MED a drained VIP is announced with unless
// drain_med says otherwise: the worst but one (some routers take the
// largest, 4294967295, as "unreachable").
const DefaultDrainMED = math.MaxUint32 - 1

func (c *Config) vip() *VIPConfig { return &c.Anycast.VIPs[len(c.Anycast.VIPs)-1] }

// duration parses seconds ("5") or a Go duration ("500ms", "2s").
func duration(dst *time.Duration, v string, lo, hi time.Duration) error {
	d, err := time.ParseDuration(v)
	if n, err2 := strconv.Atoi(v); err2 == nil {
		d, err = time.Duration(n)*time.Second, nil
	}
	if err != nil {
		return fmt.Errorf("%q is not a duration such as 2s or 500ms", v)
	}
	if d < lo || d > hi {
		return fmt.Errorf("%v is out of range %v..%v", d, lo, hi)
	}
	*dst = d
	return nil
}

func ParseVIPPrefix(v string) (netip.Prefix, error) {
	if !strings.Contains(v, "/") {
		if a, err := netip.ParseAddr(v); err == nil {
			v = netip.PrefixFrom(a, a.BitLen()).String()
		}
	}
	p, err := netip.ParsePrefix(v)
	if err != nil {
		return p, fmt.Errorf("%q is not a prefix such as 192.0.2.80/32", v)
	}
	if p != p.Masked() {
		return p, fmt.Errorf("%s has host bits set (%s?)", v, p.Masked())
	}
	if !p.Addr().IsGlobalUnicast() && !p.Addr().IsPrivate() {
		return p, fmt.Errorf("%s is not a unicast prefix", v)
	}
	return p, nil
}

// uint32Of parses a 32-bit unsigned attribute such as a MED.
func uint32Of(v, what string) (uint32, error) {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a %s (0 to 4294967295)", v, what)
	}
	return uint32(n), nil
}

func community(v string) (uint32, error) {
	switch v {
	case "graceful-shutdown":
		return GracefulShutdown, nil
	case "no-export":
		return 0xFFFFFF01, nil
	case "no-advertise":
		return 0xFFFFFF02, nil
	}
	a, b, ok := strings.Cut(v, ":")
	x, err1 := strconv.ParseUint(a, 10, 16)
	y, err2 := strconv.ParseUint(b, 10, 16)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%q is not a community ASN:VALUE (two 16-bit numbers) or no-export, no-advertise, graceful-shutdown", v)
	}
	return uint32(x)<<16 | uint32(y), nil
}

func largeCommunity(v string) (LargeCommunity, error) {
	f := strings.Split(v, ":")
	var n [3]uint32
	if len(f) != 3 {
		return LargeCommunity{}, fmt.Errorf("%q is not a large community GLOBAL:LOCAL1:LOCAL2", v)
	}
	for i, s := range f {
		x, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return LargeCommunity{}, fmt.Errorf("%q is not a large community GLOBAL:LOCAL1:LOCAL2 (32-bit numbers)", v)
		}
		n[i] = uint32(x)
	}
	return LargeCommunity{Global: n[0], Local1: n[1], Local2: n[2]}, nil
}

var anycastSchema = section{
	begin: func(c *Config) { c.Anycast = &AnycastConfig{} },
	schema: map[string]any{
		"clock_wait": setter(func(c *Config, v string) error {
			return duration(&c.Anycast.ClockWait, v, 0, 10*time.Minute)
		}),
		"vips": items{
			begin: func(c *Config) {
				c.Anycast.VIPs = append(c.Anycast.VIPs, VIPConfig{key: fmt.Sprintf("anycast.vips[%d]", len(c.Anycast.VIPs)),
					VIP: VIP{Interval: 2 * time.Second, Rise: 2, Fall: 3, DrainMED: DefaultDrainMED}})
			},
			schema: map[string]any{
				"prefix": setter(func(c *Config, v string) (err error) { c.vip().Prefix, err = ParseVIPPrefix(v); return }),
				"next_hop": setter(func(c *Config, v string) error {
					if v == "self" {
						return nil
					}
					a, err := netip.ParseAddr(v)
					if err != nil || a.Zone() != "" || !a.IsGlobalUnicast() && !a.IsPrivate() {
						return fmt.Errorf("%q is not self or a unicast address", v)
					}
					c.vip().NextHop = a
					return nil
				}),
				"check": map[string]any{
					"http": setter(func(c *Config, v string) error { return c.setCheck("http", v) }),
					"tcp":  setter(func(c *Config, v string) error { return c.setCheck("tcp", v) }),
					"exec": setter(func(c *Config, v string) error { return c.setCheck("exec", v) }),
					"status": setter(func(c *Config, v string) (err error) {
						c.vip().checkWant, err = intIn(v, 100, 599)
						c.vip().hasStatus = true
						return
					}),
					"exit": setter(func(c *Config, v string) (err error) {
						c.vip().checkWant, err = intIn(v, 0, 255)
						c.vip().hasExit = true
						return
					}),
				},
				"interval": setter(func(c *Config, v string) error {
					return duration(&c.vip().Interval, v, 100*time.Millisecond, time.Hour)
				}),
				"timeout": setter(func(c *Config, v string) error {
					c.vip().timeoutSet = true
					return duration(&c.vip().Timeout, v, 10*time.Millisecond, time.Hour)
				}),
				"rise": setter(func(c *Config, v string) (err error) { c.vip().Rise, err = intIn(v, 1, 100); return }),
				"fall": setter(func(c *Config, v string) (err error) { c.vip().Fall, err = intIn(v, 1, 100); return }),
				"med": setter(func(c *Config, v string) (err error) {
					c.vip().MED, err = uint32Of(v, "MED")
					c.vip().HasMED = true
					return
				}),
				"local_pref": setter(func(c *Config, v string) (err error) {
					c.vip().LocalPref, err = uint32Of(v, "local preference")
					return
				}),
				"communities": each(func(c *Config, v string) error {
					x, err := community(v)
					c.vip().Communities = append(c.vip().Communities, x)
					return err
				}),
				"large_communities": each(func(c *Config, v string) error {
					x, err := largeCommunity(v)
					c.vip().LargeCommunities = append(c.vip().LargeCommunities, x)
					return err
				}),
				"drain": setter(func(c *Config, v string) error { return duration(&c.vip().Drain, v, 0, 24*time.Hour) }),
				"drain_med": setter(func(c *Config, v string) (err error) {
					c.vip().DrainMED, err = uint32Of(v, "MED")
					c.vip().drainMEDSet = true
					return
				}),
			},
		},
		"forward": section{
			begin: func(c *Config) { c.Anycast.Forward = &ForwardConfig{TableSize: DefaultTableSize} },
			schema: map[string]any{
				"interfaces": each(func(c *Config, v string) error {
					var s string
					err := ifname(&s, v)
					c.Anycast.Forward.Interfaces = append(c.Anycast.Forward.Interfaces, s)
					return err
				}),
				"vips": each(func(c *Config, v string) error {
					p, err := ParseVIPPrefix(v)
					c.Anycast.Forward.VIPs = append(c.Anycast.Forward.VIPs, p)
					return err
				}),
				"neighbors": each(func(c *Config, v string) error {
					c.Anycast.Forward.Neighbors = append(c.Anycast.Forward.Neighbors, v)
					return nil
				}),
				"next_hop": setter(func(c *Config, v string) error {
					switch v {
					case "neighbor":
						c.Anycast.Forward.AnyNextHop = false
					case "any":
						c.Anycast.Forward.AnyNextHop = true
					default:
						return fmt.Errorf("%q is not neighbor (the next hop must be the announcing neighbor's address, on-link) or any", v)
					}
					return nil
				}),
				"table_size": setter(func(c *Config, v string) error {
					n, err := intIn(v, 251, MaxTableSize)
					if err == nil && !IsPrime(n) {
						err = fmt.Errorf("%d is not a prime (Maglev needs one; 65537 is the default)", n)
					}
					c.Anycast.Forward.TableSize = n
					return err
				}),
			},
		},
	},
}

func (c *Config) setCheck(kind, target string) error {
	v := c.vip()
	if v.checkKind != "" {
		return fmt.Errorf("a second check (%s already): one of http, tcp and exec", v.checkKind)
	}
	v.checkKind, v.checkTarget = kind, target
	return nil
}

// checkAnycast validates the anycast section and builds the checks.
func (c *Config) checkAnycast(fail func(key, format string, args ...any) error) error {
	a := c.Anycast
	if a == nil {
		return nil
	}
	if len(a.VIPs) == 0 && a.Forward == nil {
		return fail("anycast", "neither vips (to announce) nor forward")
	}
	if c.BGP == nil {
		return fail("anycast", "needs a bgp section: VIPs are announced and learned over BGP")
	}
	seen := map[netip.Prefix]string{}
	for i := range a.VIPs {
		v := &a.VIPs[i]
		switch {
		case !v.Prefix.IsValid():
			return fail(v.key+".prefix", "missing")
		case seen[v.Prefix] != "":
			return fail(v.key+".prefix", "%s is also %s", v.Prefix, seen[v.Prefix])
		case !c.carries(v.Prefix):
			return fail(v.key+".prefix", "no bgp neighbor carries %s: add it to a neighbor's families", unicastOf(v.Prefix))
		case v.checkKind == "":
			return fail(v.key+".check", "missing: one of http (URL), tcp (HOST:PORT) or exec (command)")
		case v.hasStatus && v.checkKind != "http":
			return fail(v.key+".check.status", "only for http checks")
		case v.hasExit && v.checkKind != "exec":
			return fail(v.key+".check.exit", "only for exec checks")
		case v.NextHop.IsValid() && v.NextHop.Is4() != v.Prefix.Addr().Is4():
			return fail(v.key+".next_hop", "%s is not of the VIP's IP version", v.NextHop)
		case v.drainMEDSet && v.Drain == 0:
			return fail(v.key+".drain_med", "without drain (seconds): a drain withdraws at once")
		}
		seen[v.Prefix] = v.key
		if !v.timeoutSet {
			v.Timeout = v.Interval
		}
		if v.Timeout > v.Interval {
			return fail(v.key+".timeout", "%v is longer than the interval %v", v.Timeout, v.Interval)
		}
		ch, err := ParseCheck(v.checkKind, v.checkTarget, v.checkWant)
		if err != nil {
			return fail(v.key+".check."+v.checkKind, "%v", err)
		}
		v.Check = ch
	}
	if f := a.Forward; f != nil {
		switch {
		case len(f.Interfaces) == 0:
			return fail("anycast.forward.interfaces", "missing: the ports the forwarder's XDP program runs on (client side and server side)")
		case len(f.VIPs) == 0:
			return fail("anycast.forward.vips", "missing: the VIP prefixes to spread over the servers BGP names")
		case len(f.VIPs) > MaxVIPs:
			return fail("anycast.forward.vips", "%d VIPs, at most %d", len(f.VIPs), MaxVIPs)
		}
		for i, p := range f.VIPs {
			if !c.carries(p) {
				return fail(fmt.Sprintf("anycast.forward.vips[%d]", i), "no bgp neighbor carries %s: add it to a neighbor's families", unicastOf(p))
			}
			for _, q := range f.VIPs[:i] {
				if p == q {
					return fail(fmt.Sprintf("anycast.forward.vips[%d]", i), "%s twice", p)
				}
			}
		}
		for i, n := range f.Interfaces {
			if n == c.Downlink || n == c.Uplink {
				return fail(fmt.Sprintf("anycast.forward.interfaces[%d]", i), "%s is the pseudowire's port", n)
			}
		}
		for i, v := range f.Neighbors {
			key := fmt.Sprintf("anycast.forward.neighbors[%d]", i)
			if !c.isNeighbor(v) {
				return fail(key, "%q is not the address or interface of a bgp neighbor", v)
			}
			if slices.Index(f.Neighbors, v) < i {
				return fail(key, "%s twice", v)
			}
		}
	}
	return nil
}

// isNeighbor reports whether v is a bgp neighbor's address or (an
// unnumbered one's) interface.
func (c *Config) isNeighbor(v string) bool {
	a, err := netip.ParseAddr(v)
	for _, n := range c.BGP.Resolved() {
		if err == nil && n.Address.IsValid() && n.Address.WithZone("").Unmap() == a.WithZone("").Unmap() ||
			err != nil && n.Interface != "" && n.Interface == v {
			return true
		}
	}
	return false
}

// unicastOf is the BGP family that carries p.
func unicastOf(p netip.Prefix) Family {
	if p.Addr().Is4() {
		return IPv4Unicast
	}
	return IPv6Unicast
}

// carries reports whether some neighbor carries p's family.
func (c *Config) carries(p netip.Prefix) bool {
	for _, n := range c.BGP.Resolved() {
		if slices.Contains(n.Families, unicastOf(p)) {
			return true
		}
	}
	return false
}

// AnycastOnly reports whether pwgated runs only BGP and anycast, with no
// pseudowire or VXLAN ports.
func (c *Config) AnycastOnly() bool {
	return c.Anycast != nil && c.Downlink == "" && c.Uplink == "" && !c.vxlanMode && c.Mode == 0
}

// IsPrime reports whether n is a prime (trial division; n is small).
func IsPrime(n int) bool {
	if n < 2 {
		return false
	}
	for d := 2; d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}
