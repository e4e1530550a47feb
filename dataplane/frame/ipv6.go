package frame

import (
	"encoding/binary"
	"net/netip"
)

// IPv6 is a view of a fixed IPv6 header (IPv6Len bytes).
type IPv6 []byte

// Version returns the IP version nibble (6 for a valid header).
func (h IPv6) Version() uint8 { return h[0] >> 4 }

// PayloadLength returns the payload length field: the bytes after the
// fixed header.
func (h IPv6) PayloadLength() uint16 { return binary.BigEndian.Uint16(h[4:6]) }

// NextHeader returns the next header (protocol) field.
func (h IPv6) NextHeader() uint8 { return h[6] }

// HopLimit returns the hop limit.
func (h IPv6) HopLimit() uint8 { return h[7] }

// Src returns the source address.
func (h IPv6) Src() netip.Addr { return netip.AddrFrom16([16]byte(h[8:24])) }

// Dst returns the destination address.
func (h IPv6) Dst() netip.Addr { return netip.AddrFrom16([16]byte(h[24:40])) }

// SrcEquals reports whether the source address is a, without building a
// netip.Addr (two 64-bit compares on the fast path).
func (h IPv6) SrcEquals(a *[16]byte) bool {
	return binary.LittleEndian.Uint64(h[8:16]) == binary.LittleEndian.Uint64(a[0:8]) &&
		binary.LittleEndian.Uint64(h[16:24]) == binary.LittleEndian.Uint64(a[8:16])
}

// DstEquals reports whether the destination address is a.
func (h IPv6) DstEquals(a *[16]byte) bool { return [16]byte(h[24:40]) == *a }

// Addrs returns the source and destination addresses, as a checksum's
// pseudo-header takes them.
func (h IPv6) Addrs() []byte { return h[8:40] }

// SetPayloadLength writes the payload length field.
func (h IPv6) SetPayloadLength(n uint16) { binary.BigEndian.PutUint16(h[4:6], n) }

// Encode writes a complete header with traffic class 0 and flow label 0.
func (h IPv6) Encode(payloadLen uint16, nextHeader, hopLimit uint8, src, dst netip.Addr) {
	binary.BigEndian.PutUint32(h[0:4], 6<<28)
	binary.BigEndian.PutUint16(h[4:6], payloadLen)
	h[6] = nextHeader
	h[7] = hopLimit
	s, d := src.As16(), dst.As16()
	copy(h[8:24], s[:])
	copy(h[24:40], d[:])
}
