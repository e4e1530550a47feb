package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Family is an address family a session carries.
type Family int

// Families.
const (
	EVPN        Family = iota // l2vpn evpn
	IPv4Unicast               // ipv4 unicast
	IPv6Unicast               // ipv6 unicast
)

// ParseFamily parses "l2vpn-evpn", "ipv4-unicast" or "ipv6-unicast".
func ParseFamily(s string) (Family, error) {
	switch s {
	case "l2vpn-evpn", "evpn":
		return EVPN, nil
	case "ipv4-unicast", "ipv4":
		return IPv4Unicast, nil
	case "ipv6-unicast", "ipv6":
		return IPv6Unicast, nil
	}
	return 0, fmt.Errorf("unknown address family %q (want l2vpn-evpn, ipv4-unicast or ipv6-unicast)", s)
}

// String returns the family's name.
func (f Family) String() string {
	return [...]string{"l2vpn-evpn", "ipv4-unicast", "ipv6-unicast"}[f]
}

// RuleKind is the kind of route a Rule matches.
type RuleKind int

// Rule kinds.
const (
	AnyRoute     RuleKind = iota
	MACIPRoutes           // EVPN type 2
	IMETRoutes            // EVPN type 3
	EVPNRoutes            // both
	PrefixRoutes          // unicast
)

// ParseRuleKind parses macip, imet, evpn or prefix.
func ParseRuleKind(s string) (RuleKind, error) {
	switch s {
	case "macip":
		return MACIPRoutes, nil
	case "imet":
		return IMETRoutes, nil
	case "evpn":
		return EVPNRoutes, nil
	case "prefix":
		return PrefixRoutes, nil
	}
	return 0, fmt.Errorf("unknown route type %q (want macip, imet, evpn or prefix)", s)
}

// RT is a route target: a two-octet-AS-specific extended community
// ASN:Value.
type RT struct {
	ASN   uint16
	Value uint32
}

// String formats the RT as ASN:Value.
func (r RT) String() string { return fmt.Sprintf("%d:%d", r.ASN, r.Value) }

// LargeCommunity is RFC 8092's Global:Local1:Local2.
type LargeCommunity struct{ Global, Local1, Local2 uint32 }

// ParseRT parses "ASN:Value".
func ParseRT(s string) (RT, error) {
	a, v, ok := strings.Cut(s, ":")
	asn, err1 := strconv.ParseUint(a, 10, 16)
	val, err2 := strconv.ParseUint(v, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return RT{}, fmt.Errorf("%q is not a route target ASN:VALUE with a two-byte ASN", s)
	}
	return RT{ASN: uint16(asn), Value: uint32(val)}, nil
}

// GracefulShutdown is RFC 8326's well-known community (65535:0).
const GracefulShutdown = 0xFFFF0000

// Rule is one entry of an import or export filter (bgp.Rule).
type Rule struct {
	Permit bool
	Kind   RuleKind
	RT     RT // with HasRT: routes carrying this route target
	HasRT  bool
	// Prefix: unicast routes inside it (it or longer), MAC+IP routes
	// whose IP is inside it.
	Prefix netip.Prefix
}
