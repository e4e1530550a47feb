package pseudowire

import "fmt"

// Reference values of the split rule.
const (
	ReferenceMTU   = 1500 // the only uplink MTU the reference supports
	ReferenceFirst = 1280 // inner bytes in the first piece
	// MinMTU is the smallest uplink MTU accepted: the IPv6 minimum link MTU,
	// also applied in eth mode so that a frame always fits in two pieces.
	MinMTU = 1280
	// MaxMTU bounds the uplink MTU the split rule is defined for (jumbo
	// frames). pwgated's 4096-byte buffers cap it lower, at
	// control.MaxUplinkMTU (3826).
	MaxMTU = 9216
)

// Split is the fragmentation rule for one mode and uplink MTU. For an inner
// frame of n bytes (without FCS):
//
//   - n <= Whole: sent whole in one packet;
//   - Whole < n <= Max: two pieces, the first carrying the first First
//     bytes, the second the remaining n-First bytes;
//   - n > Max: cannot be carried; refused, never truncated.
//
// Whole = MTU + 14 - overhead: the largest frame whose outer packet fits the
// uplink MTU (1498 in eth mode and 1458 in ip6 mode for MTU 1500, as in the
// reference). Inside a tunnel (ip6-tun) there is no Ethernet header and the
// MTU is the tunnel's: Whole = MTU - 42 (1378 in a WireGuard tunnel of MTU
// 1420). First = min(1280, Whole): the reference's 1280-byte first
// piece whenever it fits, so that with MTU 1500 the output is the
// reference's byte for byte; below that (ip6 with MTU < 1322) the first
// piece is as large as the MTU allows. Max = First + Whole, since the second
// piece must fit the MTU as well. The receiver does not depend on where the
// split falls, so every MTU stays wire-compatible with the reference; both
// ends must still agree on the MTU for the largest frames to pass.
type Split struct {
	MTU   int // uplink IP MTU (without the 14-byte Ethernet header)
	Whole int // largest frame sent in one piece
	First int // inner bytes in the first of two pieces
	Max   int // largest frame that can be carried at all
}

// SplitFor returns the rule for mode m on an uplink with the given MTU.
func SplitFor(m Mode, mtu int) (Split, error) {
	if m != ModeEth && m != ModeIP6 && m != ModeIP6Tun {
		return Split{}, fmt.Errorf("split rule: %v", m)
	}
	if mtu < MinMTU || mtu > MaxMTU {
		return Split{}, fmt.Errorf("uplink MTU %d out of range %d..%d", mtu, MinMTU, MaxMTU)
	}
	whole := mtu + m.linkHeader() - m.Overhead()
	first := min(ReferenceFirst, whole)
	return Split{MTU: mtu, Whole: whole, First: first, Max: first + whole}, nil
}

// Pieces returns how many packets a frame of n bytes becomes: 1 or 2, or 0
// when it is too big to carry.
func (s Split) Pieces(n int) int {
	switch {
	case n <= s.Whole:
		return 1
	case n <= s.Max:
		return 2
	}
	return 0
}
