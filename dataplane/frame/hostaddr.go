package frame

import (
	"bytes"
	"net/netip"
)

// EtherTypeARP is ARP's EtherType.
const EtherTypeARP = 0x0806

// HostAddr returns the IP address a LAN host announces for itself in f,
// an untagged frame, if f is such an announcement: an ARP request or reply
// (the sender's address, when the sender's hardware address is the
// frame's source), an IPv6 neighbour solicitation (its source, unless
// unspecified: duplicate address detection) or advertisement (its target).
// EVPN's MAC+IP routes are made of these, as a Linux bridge's neighbour
// table is. It does not allocate.
func HostAddr(f []byte) (netip.Addr, bool) {
	if len(f) < EthernetLen {
		return netip.Addr{}, false
	}
	switch Ethernet(f).EtherType() {
	case EtherTypeARP:
		// htype 1, ptype IPv4, hlen 6, plen 4; sender MAC and IP.
		if len(f) < 42 || f[14] != 0 || f[15] != 1 || f[16] != 8 || f[17] != 0 || f[18] != 6 || f[19] != 4 ||
			!bytes.Equal(f[22:28], f[6:12]) {
			return netip.Addr{}, false
		}
		a := netip.AddrFrom4([4]byte(f[28:32]))
		return a, !a.IsUnspecified() && !a.IsMulticast()
	case EtherTypeIPv6:
		// ICMPv6 right behind the IPv6 header (no extension headers).
		if len(f) < EthernetLen+IPv6Len+24 || f[20] != 58 {
			return netip.Addr{}, false
		}
		icmp := f[EthernetLen+IPv6Len:]
		var a netip.Addr
		switch icmp[0] {
		case 135: // solicitation: from the host's own address
			a = netip.AddrFrom16([16]byte(f[22:38]))
		case 136: // advertisement: for the target
			a = netip.AddrFrom16([16]byte(icmp[8:24]))
		default:
			return netip.Addr{}, false
		}
		return a, !a.IsUnspecified() && !a.IsMulticast()
	}
	return netip.Addr{}, false
}
