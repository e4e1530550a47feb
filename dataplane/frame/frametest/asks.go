package frametest

import (
	"encoding/binary"
	"net/netip"

	"github.com/pwgate/pwgate/dataplane/frame"
)

// ARPRequest is host mac's broadcast ARP request from sender for target
// (sender "0.0.0.0": a duplicate address probe).
func ARPRequest(mac frame.MAC, sender, target string) []byte {
	f := make([]byte, 60)
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], mac[:])
	binary.BigEndian.PutUint16(f[12:], frame.EtherTypeARP)
	copy(f[14:22], []byte{0, 1, 8, 0, 6, 4, 0, 1})
	copy(f[22:28], mac[:])
	s, t := netip.MustParseAddr(sender).As4(), netip.MustParseAddr(target).As4()
	copy(f[28:32], s[:])
	copy(f[38:42], t[:])
	return f
}

// NeighSolicit is host mac's neighbour solicitation from src for target,
// to target's solicited-node group, with the source link-layer address
// option (src "::": a duplicate address probe; the option is kept, which
// RFC 4861 forbids then: a parser must not care).
func NeighSolicit(mac frame.MAC, src, target string) []byte {
	f := make([]byte, 86)
	t := netip.MustParseAddr(target).As16()
	copy(f[0:6], []byte{0x33, 0x33, 0xff, t[13], t[14], t[15]})
	copy(f[6:12], mac[:])
	binary.BigEndian.PutUint16(f[12:], frame.EtherTypeIPv6)
	ip := f[14:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], 32)
	ip[6], ip[7] = 58, 255
	s := netip.MustParseAddr(src).As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], []byte{0xff, 0x02, 11: 1, 12: 0xff, 13: t[13], 14: t[14], 15: t[15]})
	icmp := ip[40:]
	icmp[0] = 135
	copy(icmp[8:24], t[:])
	icmp[24], icmp[25] = 1, 1
	copy(icmp[26:32], mac[:])
	return f
}
