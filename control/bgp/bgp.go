// Package bgp is pwgated's BGP speaker: GoBGP (github.com/osrg/gobgp/v3)
// embedded in-process, behind the small Speaker interface, so that the
// EVPN and anycast code can be tested against a fake and a GoBGP upgrade
// touches this package only. It is the only package of pwgate that imports
// GoBGP.
//
// The kernel owns TCP port 179 on the uplink or the WireGuard overlay (the
// XDP program passes BGP to it); GoBGP listens on the kernel's socket.
package bgp

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/dataplane/frame"
)

// The basic types of BGP configuration belong to control/config, which
// parses them; these are the same types.
type (
	// Family is an address family a session carries.
	Family = config.Family
	// RuleKind is the kind of route a Rule matches.
	RuleKind = config.RuleKind
	// RT is a route target, ASN:Value.
	RT = config.RT
	// LargeCommunity is RFC 8092's Global:Local1:Local2.
	LargeCommunity = config.LargeCommunity
)

// Families and rule kinds.
const (
	EVPN         = config.EVPN
	IPv4Unicast  = config.IPv4Unicast
	IPv6Unicast  = config.IPv6Unicast
	AnyRoute     = config.AnyRoute
	MACIPRoutes  = config.MACIPRoutes
	IMETRoutes   = config.IMETRoutes
	EVPNRoutes   = config.EVPNRoutes
	PrefixRoutes = config.PrefixRoutes
)

// Config is the speaker's configuration.
type Config struct {
	ASN      uint32
	RouterID netip.Addr // IPv4
	// ListenAddrs are the addresses GoBGP accepts sessions on (0.0.0.0
	// and :: for all); empty: the sessions' local addresses
	// (SessionSources), or none when no session has one.
	ListenAddrs []netip.Addr
	ListenPort  int // 179 by default; -1: no listening (outbound only)
	// GracefulRestart advertises the capability (RFC 4724) as restarter
	// and helper, with RestartTime (seconds); Restarting sets the restart
	// flag: this speaker comes back from a graceful restart.
	GracefulRestart bool
	RestartTime     int
	Restarting      bool
	Neighbors       []Neighbor
}

// The routes a neighbor may send per family when its configuration
// does not say (max_prefix): enough for about 2,000 hosts' MAC and
// MAC+IP routes, or hundreds of servers' VIPs, and small enough that a
// neighbor cannot grow pwgated by more than about 50 MiB (GoBGP keeps
// about 3 KiB per EVPN route). A fabric with more MACs sets max_prefix.
const (
	DefaultMaxPrefixEVPN    = 8_000
	DefaultMaxPrefixUnicast = 1_000
)

// maxPrefix returns the most routes n may send of family f.
func (n *Neighbor) maxPrefix(f Family) int {
	switch {
	case n.MaxPrefix > 0:
		return n.MaxPrefix
	case f == EVPN:
		return DefaultMaxPrefixEVPN
	}
	return DefaultMaxPrefixUnicast
}

// Neighbor is one BGP neighbor (peer groups are resolved into it).
type Neighbor struct {
	Address   netip.Addr // or
	Interface string     // unnumbered: the neighbor's IPv6 link-local address on this interface
	ASN       uint32
	Password  string // TCP MD5 (RFC 2385)
	HoldTime  int    // seconds; 0: 90
	Keepalive int    // seconds; 0: a third of HoldTime
	Families  []Family
	// MaxPrefix is the most routes accepted per family; 0: the family's
	// default (DefaultMaxPrefixEVPN, DefaultMaxPrefixUnicast). A neighbor
	// that sends more is sent a Cease and its session goes down.
	MaxPrefix int
	Multihop  int // eBGP multihop TTL; 0: directly connected
	// TTLSecurity is GTSM (RFC 5082, FRR's ttl-security hops): with N > 0,
	// packets go out with TTL 255 and the session takes only packets
	// from at most N hops away (TTL 256-N or more); 0: off. Not with
	// Multihop.
	TTLSecurity int
	// Source is the local address sessions to this neighbor come from
	// (FRR's update-source); unset: the kernel's choice.
	Source netip.Addr
	// Port is the neighbor's TCP port; 0: 179.
	Port        int
	Description string
	// DefaultOriginate announces a default route (0.0.0.0/0, ::/0 for the
	// neighbor's unicast families, next hop self) to this neighbor, and to
	// no other; export filters do not stop it.
	DefaultOriginate bool
	// Import and Export filter the routes taken from and announced to
	// this neighbor: the first rule that matches decides, and a route no
	// rule matches is taken (announced).
	Import, Export []Rule
}

// Rule is one entry of an import or export filter.
type Rule = config.Rule

// matches reports whether the rule x matches r.
func matches(x *Rule, r *Route) bool {
	switch x.Kind {
	case MACIPRoutes:
		if r.Kind != MACIP {
			return false
		}
	case IMETRoutes:
		if r.Kind != IMET {
			return false
		}
	case EVPNRoutes:
		if r.Kind == Prefix {
			return false
		}
	case PrefixRoutes:
		if r.Kind != Prefix {
			return false
		}
	}
	if x.HasRT && !slices.Contains(r.RTs, x.RT) {
		return false
	}
	if x.Prefix.IsValid() {
		switch {
		case r.Kind == Prefix:
			return r.Prefix.Bits() >= x.Prefix.Bits() && x.Prefix.Contains(r.Prefix.Addr())
		case r.Kind == MACIP && r.IP.IsValid():
			return x.Prefix.Contains(r.IP)
		}
		return false
	}
	return true
}

// Permitted reports whether rules let r through.
func Permitted(rules []Rule, r *Route) bool {
	for i := range rules {
		if matches(&rules[i], r) {
			return rules[i].Permit
		}
	}
	return true
}

// Key names a neighbor: its address, or "if:NAME" when unnumbered.
func (n Neighbor) Key() string {
	if n.Interface != "" {
		return "if:" + n.Interface
	}
	return n.Address.String()
}

// RouteKind is the kind of a route.
type RouteKind int

// Route kinds.
const (
	MACIP  RouteKind = iota // EVPN type 2
	IMET                    // EVPN type 3, inclusive multicast Ethernet tag
	Prefix                  // unicast IPv4 or IPv6
)

// GracefulShutdown is RFC 8326's well-known community (65535:0).
const GracefulShutdown = config.GracefulShutdown

// Route is a route pwgate originates or receives.
type Route struct {
	Kind RouteKind
	// EVPN.
	RD     string // "192.0.2.1:101"
	MAC    frame.MAC
	IP     netip.Addr // MAC+IP routes: the host's address, if known
	VNI    uint32
	RTs    []RT
	Seq    uint32 // MAC mobility sequence (RFC 7432 §15); 0: none
	Sticky bool
	// Pwgate marks a VTEP that takes pwgate's split frames (an opaque
	// extended community of pwgate's, carried unchanged by FRR).
	Pwgate bool
	// Unicast.
	Prefix           netip.Prefix
	MED              uint32
	HasMED           bool
	LocalPref        uint32
	Communities      []uint32
	LargeCommunities []LargeCommunity
	// NextHop is our VTEP address (EVPN) or next hop (unicast); received:
	// the sender's.
	NextHop netip.Addr
}

// ID names a route for announcing and withdrawing it: the same route
// (same prefix or key) replaces the previous announcement.
func (r *Route) ID() string {
	switch r.Kind {
	case MACIP:
		return "2:" + r.RD + ":" + r.MAC.String() + ":" + r.IP.String()
	case IMET:
		return "3:" + r.RD + ":" + r.NextHop.String()
	}
	return "p:" + r.Prefix.String()
}

// Update is a change of one neighbor's (Peer's) path to a route, after
// that neighbor's import rules: it replaces or (Withdraw) removes Peer's
// path to the route (Route.ID). Every neighbor's path is reported, not
// only a best one, so a path that its neighbor's rules deny never hides,
// replaces or withdraws another neighbor's; the receiver chooses.
type Update struct {
	Route
	Withdraw bool
	Peer     netip.Addr
}

// PeerState is a neighbor as show bgp summary shows it.
type PeerState struct {
	Key        string
	Address    netip.Addr
	ASN        uint32
	State      string // "established", "active", "idle", ...
	Since      time.Time
	Received   map[Family]int // routes received (after policy)
	Advertised int
	// LimitResets counts the sessions ended because the neighbor sent
	// more routes than its max_prefix.
	LimitResets int
	Description string
	// RAsIgnored counts, for an unnumbered neighbor, the router
	// advertisements heard on its interface that were refused (RFC 4861's
	// checks) or not taken (a second router).
	RAsIgnored uint64
}

// Speaker is what pwgate needs of a BGP speaker. Its methods may be called
// from any goroutine; Watch's callback runs on the speaker's goroutine and
// must not block long.
type Speaker interface {
	// Start starts the speaker with c and calls watch for every change of
	// a received route (see Update).
	Start(c Config, watch func([]Update)) error
	// Reconfigure adds, removes and changes neighbors; sessions of
	// neighbors that did not change stay up.
	Reconfigure(c Config) error
	// Announce originates r, replacing an earlier announcement with the
	// same ID; Withdraw takes one back.
	Announce(r Route) error
	Withdraw(r Route) error
	// Peers returns the neighbors' states.
	Peers() []PeerState
	// Stop ends every session. With graceful, it leaves without a
	// NOTIFICATION, so that graceful-restart helpers keep pwgate's routes
	// until RestartTime passes; without, it sends Cease and the neighbors
	// withdraw pwgate's routes at once.
	Stop(graceful bool)
}

// AutoRD returns the route distinguisher pwgate uses for VNI index i:
// router-id:(i+1), as FRR derives its own.
func AutoRD(routerID netip.Addr, i int) string { return routerID.String() + ":" + strconv.Itoa(i+1) }

// AutoRT returns the route target of a VNI: ASN:VNI, with a four-byte ASN
// cut to its low two bytes, as FRR 8.4 builds it (bgp_evpn.c,
// form_auto_rt: encode_route_target_as(bgp->as & 0xFFFF, vni, ...)).
func AutoRT(asn, vni uint32) RT { return RT{ASN: uint16(asn & 0xffff), Value: vni} }

// String shows the route as pwctl and the tests print it.
func (r Route) String() string {
	var b strings.Builder
	switch r.Kind {
	case MACIP:
		fmt.Fprintf(&b, "macip rd %s mac %s", r.RD, r.MAC)
		if r.IP.IsValid() {
			fmt.Fprintf(&b, " ip %s", r.IP)
		}
		fmt.Fprintf(&b, " vni %d", r.VNI)
		if r.Seq > 0 || r.Sticky {
			fmt.Fprintf(&b, " seq %d sticky %v", r.Seq, r.Sticky)
		}
	case IMET:
		fmt.Fprintf(&b, "imet rd %s vni %d", r.RD, r.VNI)
		if r.Pwgate {
			b.WriteString(" pwgate")
		}
	default:
		fmt.Fprintf(&b, "prefix %s", r.Prefix)
		if r.HasMED {
			fmt.Fprintf(&b, " med %d", r.MED)
		}
		if r.LocalPref > 0 {
			fmt.Fprintf(&b, " local-pref %d", r.LocalPref)
		}
		for _, c := range r.Communities {
			fmt.Fprintf(&b, " community %d:%d", c>>16, c&0xffff)
		}
		for _, c := range r.LargeCommunities {
			fmt.Fprintf(&b, " large-community %d:%d:%d", c.Global, c.Local1, c.Local2)
		}
	}
	for _, rt := range r.RTs {
		fmt.Fprintf(&b, " rt %s", rt)
	}
	fmt.Fprintf(&b, " next-hop %s", r.NextHop)
	return b.String()
}

// Validate checks what GoBGP would take but a neighbor would refuse or
// the operator cannot have meant.
func (c *Config) Validate() error {
	ns := make([]config.NeighborConfig, len(c.Neighbors))
	for i, n := range c.Neighbors {
		ns[i] = config.NeighborConfig{Address: n.Address, Interface: n.Interface, ASN: n.ASN, HoldTime: n.HoldTime,
			Keepalive: n.Keepalive, Families: n.Families, MaxPrefix: n.MaxPrefix, Multihop: n.Multihop,
			TTLSecurity: n.TTLSecurity, DefaultOriginate: n.DefaultOriginate, Export: n.Export}
	}
	return config.ValidateSpeaker(c.ASN, c.RouterID, ns)
}
