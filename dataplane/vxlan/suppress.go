package vxlan

import (
	"encoding/binary"

	"github.com/pwgate/pwgate/dataplane/frame"
)

// ARP and neighbour discovery suppression: a LAN host's ARP request or
// neighbour solicitation for an address the table knows (a MAC+IP route,
// or a LAN host's own announcement) is answered on the LAN or kept there,
// instead of being flooded to every VTEP, as a Linux bridge with
// neigh_suppress on does. Nothing here allocates.

// NeighKey is an address within a VNI (index), as Table.Neigh knows it:
// IPv4 addresses in their IPv4-mapped 16-byte form.
type NeighKey struct {
	VNI int32
	IP  [16]byte
}

// Neigh is what the table knows of an address: the MAC that has it, and
// whether that MAC is on our own LAN.
type Neigh struct {
	MAC   frame.MAC
	Local bool
}

// Ask is a parsed ARP request or neighbour solicitation.
type Ask struct {
	IPv6 bool
	// Probe: duplicate address detection (ARP sender 0.0.0.0, NS from
	// "::"): never answered, the owner must hear it.
	Probe bool
	// Gratuitous: an ARP request for the sender's own address (an
	// announcement): never answered, flooded so that others update.
	Gratuitous bool
	SrcMAC     frame.MAC // the asker's (the frame's source)
	SrcIP      [16]byte  // the asker's address (IPv4-mapped for ARP)
	Target     [16]byte  // the address asked for
}

// Key returns the table key of what a asks for in VNI index vi.
func (a *Ask) Key(vi int) NeighKey { return NeighKey{VNI: int32(vi), IP: a.Target} }

var v4InV6Prefix = [12]byte{10: 0xff, 11: 0xff}

func mapped4(b []byte) (out [16]byte) {
	copy(out[:12], v4InV6Prefix[:])
	copy(out[12:], b[:4])
	return out
}

// ParseAsk reads f, an untagged Ethernet frame, as an ARP request
// (Ethernet/IPv4, the sender's hardware address the frame's source) or an
// IPv6 neighbour solicitation (hop limit 255, ICMPv6 right after the IPv6
// header, code 0, a target that is not multicast, options whole; RFC 4861
// 7.1.1). Anything else, or anything malformed, is not an ask.
func ParseAsk(f []byte, a *Ask) bool {
	if len(f) < frame.EthernetLen {
		return false
	}
	switch frame.Ethernet(f).EtherType() {
	case frame.EtherTypeARP:
		if len(f) < 42 || f[14] != 0 || f[15] != 1 || f[16] != 8 || f[17] != 0 || f[18] != 6 || f[19] != 4 ||
			f[20] != 0 || f[21] != 1 || [6]byte(f[22:28]) != [6]byte(f[6:12]) {
			return false
		}
		*a = Ask{SrcMAC: frame.MAC(f[6:12]), SrcIP: mapped4(f[28:32]), Target: mapped4(f[38:42])}
		if t := f[38:42]; t[0] == 0 || t[0] >= 224 || t[0] == 127 {
			return false // 0/8, loopback, multicast, reserved: never a host's
		}
		a.Probe = [4]byte(f[28:32]) == [4]byte{}
		a.Gratuitous = [4]byte(f[28:32]) == [4]byte(f[38:42])
		return true
	case frame.EtherTypeIPv6:
		const ip = frame.EthernetLen
		const icmp = ip + frame.IPv6Len
		if len(f) < icmp+24 || f[ip]>>4 != 6 || f[ip+6] != 58 || f[ip+7] != 255 {
			return false
		}
		plen := int(binary.BigEndian.Uint16(f[ip+4:]))
		if plen < 24 || icmp+plen > len(f) || f[icmp] != 135 || f[icmp+1] != 0 {
			return false
		}
		target := [16]byte(f[icmp+8 : icmp+24])
		if target[0] == 0xff || target == [16]byte{} {
			return false
		}
		for o := f[icmp+24 : icmp+plen]; len(o) > 0; {
			if len(o) < 2 || o[1] == 0 || int(o[1])*8 > len(o) {
				return false
			}
			o = o[int(o[1])*8:]
		}
		*a = Ask{IPv6: true, SrcMAC: frame.MAC(f[6:12]), SrcIP: [16]byte(f[ip+8 : ip+24]), Target: target}
		a.Probe = a.SrcIP == [16]byte{}
		return true
	}
	return false
}

// Answer lengths: an ARP reply padded to Ethernet's minimum, a neighbour
// advertisement with the target's link-layer address; 4 more with a tag.
const (
	ARPReplyLen = 60
	NALen       = frame.EthernetLen + frame.IPv6Len + 32
	MaxAnswer   = NALen + frame.VLANTagLen
)

// Answer writes into out (at least MaxAnswer bytes) the reply to a on
// behalf of mac, tagged with vlan unless 0, and returns its length: an
// ARP reply, or a solicited neighbour advertisement (S and O set, R not:
// a host's answer) with the target link-layer address option.
func Answer(out []byte, a *Ask, mac frame.MAC, vlan uint16) int {
	copy(out[0:6], a.SrcMAC[:])
	copy(out[6:12], mac[:])
	h := 12
	if vlan != 0 {
		binary.BigEndian.PutUint16(out[12:], 0x8100)
		binary.BigEndian.PutUint16(out[14:], vlan&0x0fff)
		h = 16
	}
	if !a.IPv6 {
		b := out[h : h+ARPReplyLen-12]
		clear(b)
		binary.BigEndian.PutUint16(b[0:], frame.EtherTypeARP)
		copy(b[2:], []byte{0, 1, 8, 0, 6, 4, 0, 2})
		copy(b[10:16], mac[:])
		copy(b[16:20], a.Target[12:])
		copy(b[20:26], a.SrcMAC[:])
		copy(b[26:30], a.SrcIP[12:])
		return h + ARPReplyLen - 12
	}
	b := out[h : h+NALen-12]
	binary.BigEndian.PutUint16(b[0:], frame.EtherTypeIPv6)
	ip := b[2:]
	ip[0], ip[1], ip[2], ip[3] = 0x60, 0, 0, 0
	binary.BigEndian.PutUint16(ip[4:], 32)
	ip[6], ip[7] = 58, 255
	copy(ip[8:24], a.Target[:])
	copy(ip[24:40], a.SrcIP[:])
	icmp := ip[40:72]
	clear(icmp)
	icmp[0] = 136
	icmp[4] = 0x60 // solicited, override
	copy(icmp[8:24], a.Target[:])
	icmp[24], icmp[25] = 2, 1 // target link-layer address, 8 bytes
	copy(icmp[26:32], mac[:])
	// The pseudo-header: addresses, length 32, next header 58.
	sum := frame.Checksum(0, ip[8:40])
	sum += 32 + 58
	binary.BigEndian.PutUint16(icmp[2:], frame.Fold(frame.Checksum(sum, icmp)))
	return h + NALen - 12
}
