// Package pseudowire implements the ginzado-pseudowire wire format (see
// WIRE.md in this directory): Ethernet frames carried in Ethernet
// (EtherType 0x96fc, "eth" mode) or in IPv6 (next header 252, "ip6" mode)
// behind a two-byte little-endian control word, split into at most two
// pieces when they do not fit the uplink, and put back together in order by
// the receiver.
//
// Everything here is a pure function or a small state machine over buffers
// that belong to the caller: nothing does I/O, nothing allocates per frame,
// and no method is safe for concurrent use. Each data-path goroutine owns
// its own Encapsulator or Decapsulator.
package pseudowire

import (
	"encoding/binary"
	"fmt"

	"github.com/pwgate/pwgate/dataplane/frame"
)

// Protocol constants of the wire format.
const (
	EtherType      = 0x96fc // outer EtherType in eth mode
	IPProto        = 252    // IPv6 next header in ip6 mode
	HopLimit       = 64     // IPv6 hop limit the sender writes
	ControlWordLen = 2

	// EthOverhead and IP6Overhead are the bytes added in front of the inner
	// frame, counted from the outer Ethernet header; IP6TunOverhead from
	// the IPv6 header, for packets handed to a tunnel (WireGuard) that has
	// no Ethernet header.
	EthOverhead    = frame.EthernetLen + ControlWordLen
	IP6Overhead    = frame.EthernetLen + frame.IPv6Len + ControlWordLen
	IP6TunOverhead = frame.IPv6Len + ControlWordLen
	// MaxOverhead is the headroom a caller must leave in front of a frame
	// for any mode.
	MaxOverhead = IP6Overhead
)

// Mode is the encapsulation: Ethernet over Ethernet or Ethernet over IPv6.
type Mode uint8

// The two modes of the reference, and pwgate's ip6 mode inside a tunnel:
// the same IPv6 packets without an Ethernet header, handed to WireGuard
// (not wire-compatible with the reference, which has no WireGuard).
const (
	ModeEth    Mode = 1
	ModeIP6    Mode = 2
	ModeIP6Tun Mode = 3
)

// String returns "eth" or "ip6".
func (m Mode) String() string {
	switch m {
	case ModeEth:
		return "eth"
	case ModeIP6:
		return "ip6"
	case ModeIP6Tun:
		return "ip6-tun"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// Overhead returns the bytes m adds in front of a frame.
func (m Mode) Overhead() int {
	switch m {
	case ModeIP6:
		return IP6Overhead
	case ModeIP6Tun:
		return IP6TunOverhead
	}
	return EthOverhead
}

// IsIP6 reports whether m carries frames in IPv6 packets.
func (m Mode) IsIP6() bool { return m == ModeIP6 || m == ModeIP6Tun }

// ipOffset returns where the IPv6 header starts in m's packets.
func (m Mode) ipOffset() int {
	if m == ModeIP6Tun {
		return 0
	}
	return frame.EthernetLen
}

// linkHeader returns the bytes of link-layer header m's packets carry
// (counted in the packet but not in the uplink's IP MTU).
func (m Mode) linkHeader() int {
	if m == ModeIP6Tun {
		return 0
	}
	return frame.EthernetLen
}

// ControlWord is the 16-bit word in front of every inner frame: bit 15 says
// the frame is one of two pieces, bit 14 that it is the second, and bits
// 13..0 carry the fragment ID shared by both pieces. The reference writes it
// in host order on x86, so it travels little-endian.
type ControlWord uint16

// Control word fields.
const (
	CWFragment ControlWord = 0x8000
	CWSecond   ControlWord = 0x4000
	CWIDMask   ControlWord = 0x3fff
)

// FirstHalf returns the control word of the first piece of fragment id.
func FirstHalf(id uint16) ControlWord { return CWFragment | ControlWord(id)&CWIDMask }

// SecondHalf returns the control word of the second piece of fragment id.
func SecondHalf(id uint16) ControlWord { return CWFragment | CWSecond | ControlWord(id)&CWIDMask }

// ID returns the 14-bit fragment ID.
func (c ControlWord) ID() uint16 { return uint16(c & CWIDMask) }

// Valid reports whether c is one of the forms a sender may write: 0 for a
// whole frame, or the fragment bit with or without the second-half bit. The
// second-half bit without the fragment bit, or an ID without the fragment
// bit, is reserved and refused; CWKeepalive, one of the reserved values, is
// pwgate's keepalive and never carries a frame.
func (c ControlWord) Valid() bool { return c == 0 || c&CWFragment != 0 }

// IsFragment reports whether c marks a piece of a split frame.
func (c ControlWord) IsFragment() bool { return c&CWFragment != 0 }

// IsSecond reports whether c marks the second piece.
func (c ControlWord) IsSecond() bool { return c&CWSecond != 0 }

// PutControlWord writes c little-endian into b[0:2].
func PutControlWord(b []byte, c ControlWord) { binary.LittleEndian.PutUint16(b, uint16(c)) }

// ReadControlWord reads a little-endian control word from b[0:2].
func ReadControlWord(b []byte) ControlWord { return ControlWord(binary.LittleEndian.Uint16(b)) }
