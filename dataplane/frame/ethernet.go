// Package frame provides typed byte-slice views of the headers pwgate reads
// and writes on the data path (Ethernet, 802.1Q/802.1ad tags, IPv6) and the
// classification of spanning-tree BPDUs.
//
// A view is a []byte that aliases the caller's buffer: accessors read and
// write the bytes in place and never copy or allocate. A view is valid only
// while the caller owns the underlying buffer, and the caller must check the
// length (for example with len(b) >= EthernetLen) before using a view.
package frame

import (
	"encoding/binary"
	"fmt"
	"net"
)

// Header lengths in bytes.
const (
	EthernetLen = 14 // destination, source, EtherType
	VLANTagLen  = 4  // TPID + TCI
	IPv6Len     = 40 // fixed IPv6 header
)

// EtherTypes used by pwgate.
const (
	EtherTypeIPv4   = 0x0800
	EtherTypeVLAN   = 0x8100 // IEEE 802.1Q customer tag
	EtherTypeQinQ   = 0x88a8 // IEEE 802.1ad service tag
	EtherTypeQinQv1 = 0x9100 // pre-standard service tag still sent by some switches
	EtherTypeIPv6   = 0x86dd
	// MaxLengthField is the largest value of an IEEE 802.3 length field;
	// larger values in the same position are EtherTypes.
	MaxLengthField = 1500
)

// MAC is an Ethernet address.
type MAC [6]byte

// ParseMAC parses an address in any form net.ParseMAC accepts
// (01:23:45:67:89:ab, 01-23-45-67-89-ab, 0123.4567.89ab) or as twelve hex
// digits without separators (the reference's configuration format).
func ParseMAC(s string) (MAC, error) {
	var m MAC
	if len(s) == 12 {
		for i := 0; i < 6; i++ {
			hi, ok1 := unhex(s[2*i])
			lo, ok2 := unhex(s[2*i+1])
			if !ok1 || !ok2 {
				return m, fmt.Errorf("invalid MAC address %q", s)
			}
			m[i] = hi<<4 | lo
		}
		return m, nil
	}
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return m, fmt.Errorf("invalid MAC address %q", s)
	}
	copy(m[:], hw)
	return m, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// String formats m as 01:23:45:67:89:ab.
func (m MAC) String() string { return net.HardwareAddr(m[:]).String() }

// IsZero reports whether m is 00:00:00:00:00:00.
func (m MAC) IsZero() bool { return m == MAC{} }

// IsMulticast reports whether the group bit of m is set (broadcast included).
func (m MAC) IsMulticast() bool { return m[0]&1 == 1 }

// Ethernet is a view of an Ethernet II / IEEE 802.3 header: the first
// EthernetLen bytes of a frame, without FCS.
type Ethernet []byte

// Dst returns the destination address.
func (e Ethernet) Dst() MAC { return MAC(e[0:6]) }

// Src returns the source address.
func (e Ethernet) Src() MAC { return MAC(e[6:12]) }

// EtherType returns the EtherType, or the length field of an 802.3 frame.
func (e Ethernet) EtherType() uint16 { return binary.BigEndian.Uint16(e[12:14]) }

// SetDst writes the destination address.
func (e Ethernet) SetDst(m MAC) { copy(e[0:6], m[:]) }

// SetSrc writes the source address.
func (e Ethernet) SetSrc(m MAC) { copy(e[6:12], m[:]) }

// SetEtherType writes the EtherType.
func (e Ethernet) SetEtherType(t uint16) { binary.BigEndian.PutUint16(e[12:14], t) }

// IsVLANTPID reports whether t is a tag protocol identifier pwgate steps
// over when it looks inside a frame (802.1Q, 802.1ad and the pre-standard
// 0x9100).
func IsVLANTPID(t uint16) bool {
	return t == EtherTypeVLAN || t == EtherTypeQinQ || t == EtherTypeQinQv1
}
