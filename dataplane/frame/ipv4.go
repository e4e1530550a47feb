package frame

import (
	"encoding/binary"
	"net/netip"
)

// IPv4Len is the length of an IPv4 header without options.
const IPv4Len = 20

// IPv4 is a view of an IPv4 header.
type IPv4 []byte

// Version returns the IP version nibble (4 for a valid header).
func (h IPv4) Version() uint8 { return h[0] >> 4 }

// HeaderLen returns the header's length in bytes (IHL × 4).
func (h IPv4) HeaderLen() int { return int(h[0]&0x0f) * 4 }

// TotalLength returns the total length field.
func (h IPv4) TotalLength() uint16 { return binary.BigEndian.Uint16(h[2:4]) }

// IsFragment reports whether the packet is a fragment (more fragments, or
// a fragment offset).
func (h IPv4) IsFragment() bool { return binary.BigEndian.Uint16(h[6:8])&0x3fff != 0 }

// Protocol returns the protocol field.
func (h IPv4) Protocol() uint8 { return h[9] }

// TTL returns the time to live.
func (h IPv4) TTL() uint8 { return h[8] }

// Src returns the source address.
func (h IPv4) Src() netip.Addr { return netip.AddrFrom4([4]byte(h[12:16])) }

// Dst returns the destination address.
func (h IPv4) Dst() netip.Addr { return netip.AddrFrom4([4]byte(h[16:20])) }

// DstEquals reports whether the destination address is a.
func (h IPv4) DstEquals(a [4]byte) bool { return [4]byte(h[16:20]) == a }

// Addrs returns the source and destination addresses, as a checksum's
// pseudo-header takes them.
func (h IPv4) Addrs() []byte { return h[12:20] }

// Encode writes a header without options, with don't-fragment set, and its
// checksum.
func (h IPv4) Encode(totalLen uint16, proto, ttl uint8, src, dst netip.Addr) {
	h[0], h[1] = 0x45, 0
	binary.BigEndian.PutUint16(h[2:4], totalLen)
	binary.BigEndian.PutUint32(h[4:8], 0x4000) // id 0, DF
	h[8], h[9] = ttl, proto
	h[10], h[11] = 0, 0
	s, d := src.As4(), dst.As4()
	copy(h[12:16], s[:])
	copy(h[16:20], d[:])
	binary.BigEndian.PutUint16(h[10:12], Fold(Checksum(0, h[:IPv4Len])))
}
