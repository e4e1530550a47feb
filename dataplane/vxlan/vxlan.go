// Package vxlan implements RFC 7348 VXLAN framing for pwgate's data path:
// outer Ethernet, IPv4 or IPv6, UDP and VXLAN headers written in front of
// a frame in place (behind the headroom the receive path leaves), and
// checked and stripped on receipt. Like package pseudowire it is pure:
// nothing does I/O or allocates, and the caller owns every buffer.
//
// Between two pwgate VTEPs a frame too big for the underlay can cross in
// two pieces, with the pseudowire's split rule: each piece is a VXLAN
// packet with the reserved flag bit 0x01 set (pwgate's "piece" bit) and
// the pseudowire's control word (little-endian) in the reserved bytes 1
// and 2. RFC 7348 receivers ignore reserved bits and would deliver a piece
// as a frame, so pieces are never sent to a VTEP not known to be pwgate.
package vxlan

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/pseudowire"
)

// Protocol constants.
const (
	Port      = 4789 // IANA's VXLAN port
	HeaderLen = frame.VXLANLen
	UDPLen    = frame.UDPLen
	FlagI     = 0x08 // the VNI is valid
	FlagPiece = 0x01 // pwgate: one piece of a split frame (reserved in RFC 7348)
	MaxVNI    = 1<<24 - 1

	// Overhead4 and Overhead6 are the bytes VXLAN puts in front of a
	// frame over an IPv4 or IPv6 underlay, from the outer Ethernet header.
	Overhead4 = frame.EthernetLen + frame.IPv4Len + UDPLen + HeaderLen
	Overhead6 = frame.EthernetLen + frame.IPv6Len + UDPLen + HeaderLen
	// MaxOverhead is the headroom a frame needs.
	MaxOverhead = Overhead6
	// TTL is the outer IPv4 TTL and IPv6 hop limit.
	TTL = 64
)

// Errors of the sending side; values, so that returning one does not
// allocate.
var (
	ErrHeadroom = errors.New("vxlan: not enough headroom in front of the frame")
	ErrRunt     = errors.New("vxlan: frame shorter than an Ethernet header")
	ErrTooBig   = errors.New("vxlan: frame does not fit the underlay's MTU")
	ErrFamily   = errors.New("vxlan: the VTEP's address is not of the local address's IP version")
)

// VTEP is a remote tunnel end as the data path sends to it: its address,
// the MAC of the next hop toward it, whether it can be sent to (Up: its
// next hop is resolved, or, inside a tunnel, the tunnel routes it), and
// whether it is a pwgate (takes split frames).
type VTEP struct {
	Addr    netip.Addr
	NextHop frame.MAC
	Up      bool
	Pwgate  bool
}

// EncapConfig configures an Encapsulator.
type EncapConfig struct {
	Src   frame.MAC  // our uplink MAC
	Local netip.Addr // our VTEP address: IPv4 or IPv6 (not IPv4-mapped)
	// MTU is the underlay's IP MTU: the largest outer IP packet.
	MTU int
	// ZeroChecksum6 sends IPv6 with a zero UDP checksum (RFC 6935/6936:
	// only where every receiver is configured to accept it); IPv4 always
	// sends zero, as RFC 7348 recommends.
	ZeroChecksum6 bool
	// Split lets frames too big for the MTU cross to pwgate VTEPs in two
	// pieces (the pseudowire's split rule).
	Split bool
	// L3 leaves the outer Ethernet header out: the uplink is a tunnel
	// (WireGuard) that carries IP packets. Src and VTEPs' next hops are
	// then unused.
	L3 bool
}

// Encapsulator writes outer headers. It keeps the fragment ID counter for
// split frames, so one serves one goroutine.
type Encapsulator struct {
	c     EncapConfig
	v6    bool
	l2    int // outer Ethernet header's length: 14, or 0 with L3
	ov    int
	local [16]byte
	whole int // largest frame sent whole
	split pseudowire.Split
	id    uint16
}

// NewEncapsulator returns an Encapsulator for c.
func NewEncapsulator(c EncapConfig) (*Encapsulator, error) {
	e := new(Encapsulator)
	if err := e.Configure(c); err != nil {
		return nil, err
	}
	return e, nil
}

// Configure replaces the configuration, keeping the fragment ID counter.
// On error the Encapsulator is unchanged.
func (e *Encapsulator) Configure(c EncapConfig) error {
	if !c.Local.IsValid() || c.Local.Is4In6() {
		return fmt.Errorf("vxlan: local VTEP address %v", c.Local)
	}
	v6 := c.Local.Is6()
	l2 := frame.EthernetLen
	if c.L3 {
		l2 = 0
	}
	ov := Overhead4 - frame.EthernetLen + l2
	if v6 {
		ov = Overhead6 - frame.EthernetLen + l2
	}
	if c.MTU < 576 || c.MTU > 9216 {
		return fmt.Errorf("vxlan: underlay MTU %d out of range 576..9216", c.MTU)
	}
	whole := c.MTU + l2 - ov
	var split pseudowire.Split
	if c.Split {
		// The pseudowire's rule over this overhead: the first piece carries
		// min(1280, whole) bytes, and both must fit.
		first := min(pseudowire.ReferenceFirst, whole)
		split = pseudowire.Split{MTU: c.MTU, Whole: whole, First: first, Max: first + whole}
	}
	e.c, e.v6, e.l2, e.ov, e.whole, e.split = c, v6, l2, ov, whole, split
	e.local = c.Local.As16()
	return nil
}

// Overhead returns the bytes written in front of each packet.
func (e *Encapsulator) Overhead() int { return e.ov }

// L3 reports whether packets go out without an Ethernet header (and so
// need no next hop).
func (e *Encapsulator) L3() bool { return e.c.L3 }

// Whole returns the largest frame sent in one packet.
func (e *Encapsulator) Whole() int { return e.whole }

// MaxFrame returns the largest frame that can be carried to a VTEP: to a
// pwgate with Split, two pieces' worth.
func (e *Encapsulator) MaxFrame(pwgate bool) int {
	if pwgate && e.c.Split {
		return e.split.Max
	}
	return e.whole
}

// Pieces returns how many packets an n-byte frame to v becomes: 1, 2 (a
// pwgate VTEP with Split), or 0 when it cannot be carried.
func (e *Encapsulator) Pieces(n int, v *VTEP) int {
	switch {
	case n <= e.whole:
		return 1
	case v.Pwgate && e.c.Split && n <= e.split.Max:
		return 2
	}
	return 0
}

// SourcePort returns the UDP source port for a frame: a hash of its
// addresses and, for IPv4 and IPv6, its IP addresses and ports, in the
// ephemeral range (RFC 7348's ECMP entropy).
func SourcePort(f []byte) uint16 {
	h := uint32(2166136261)
	n := min(len(f), frame.EthernetLen+40) // Ethernet and the start of an IP header
	for _, b := range f[:n] {
		h ^= uint32(b)
		h *= 16777619
	}
	return 49152 | uint16(h^h>>16)&0x3fff
}

// header writes the outer headers for a piece of inner bytes into
// b[0:ov], with VXLAN flags and the control word's two bytes.
func (e *Encapsulator) header(b []byte, inner int, v *VTEP, vni uint32, sport uint16, flags byte, cw pseudowire.ControlWord) {
	if e.l2 > 0 {
		eth := frame.Ethernet(b)
		eth.SetDst(v.NextHop)
		eth.SetSrc(e.c.Src)
		eth.SetEtherType(frame.EtherTypeIPv4)
		if e.v6 {
			eth.SetEtherType(frame.EtherTypeIPv6)
		}
	}
	udpOff := e.l2 + frame.IPv4Len
	udpLen := UDPLen + HeaderLen + inner
	if e.v6 {
		udpOff = e.l2 + frame.IPv6Len
		frame.IPv6(b[e.l2:]).Encode(uint16(udpLen), frame.ProtoUDP, TTL, netip.AddrFrom16(e.local), v.Addr)
	} else {
		frame.IPv4(b[e.l2:]).Encode(uint16(frame.IPv4Len+udpLen), frame.ProtoUDP, TTL, netip.AddrFrom4([4]byte(e.local[12:])), v.Addr)
	}
	udp := frame.UDP(b[udpOff:])
	udp.Encode(sport, Port, uint16(udpLen))
	frame.VXLAN(udp.Payload()).Encode(FlagI|flags, uint16(cw), vni)
}

// checksum6 fills in the UDP checksum of an IPv6 packet that starts at
// p[l2] and runs to the end of p.
func checksum6(p []byte, l2 int) {
	udp := frame.UDP(p[l2+frame.IPv6Len:])
	acc := frame.Checksum(0, frame.IPv6(p[l2:]).Addrs()) + uint64(len(udp)) + frame.ProtoUDP
	c := frame.Fold(frame.Checksum(acc, udp))
	if c == 0 {
		c = 0xffff
	}
	udp.SetChecksum(c)
}

// family reports whether v's address can be written into our outer IP
// header (an IPv4 VTEP behind an IPv6 local address, or the other way
// round, would be nonsense or, for IPv4, a panic in netip; a mapped IPv4
// address is no IPv6 VTEP).
func (e *Encapsulator) family(v *VTEP) bool {
	return v.Addr.IsValid() && v.Addr.Is4() != e.v6 && !v.Addr.Is4In6()
}

func (e *Encapsulator) check(buf []byte, off, n int, v *VTEP) error {
	switch {
	case !e.family(v):
		return ErrFamily
	case off < e.ov:
		return ErrHeadroom
	case n < frame.EthernetLen:
		return ErrRunt
	case off+n > len(buf):
		return ErrTooBig
	}
	return nil
}

// Encap encapsulates the frame buf[off:off+n] in place as one packet to v
// in VNI vni: the headers go in buf[off-Overhead():off], and the packet is
// buf[start:off+n]. The frame is neither copied nor changed.
func (e *Encapsulator) Encap(buf []byte, off, n int, v *VTEP, vni uint32) (start int, err error) {
	if err := e.check(buf, off, n, v); err != nil {
		return 0, err
	}
	if n > e.whole {
		return 0, ErrTooBig
	}
	start = off - e.ov
	e.header(buf[start:off], n, v, vni, SourcePort(buf[off:off+n]), 0, 0)
	if e.v6 && !e.c.ZeroChecksum6 {
		checksum6(buf[start:off+n], e.l2)
	}
	return start, nil
}

// Copy writes, into dst, a packet to v carrying a copy of the frame f (for
// the second and later copies of a flooded frame), and returns its length.
func (e *Encapsulator) Copy(dst, f []byte, v *VTEP, vni uint32) (int, error) {
	if !e.family(v) {
		return 0, ErrFamily
	}
	if len(f) < frame.EthernetLen {
		return 0, ErrRunt
	}
	if len(f) > e.whole || len(dst) < e.ov+len(f) {
		return 0, ErrTooBig
	}
	copy(dst[e.ov:], f)
	e.header(dst[:e.ov], len(f), v, vni, SourcePort(f), 0, 0)
	if e.v6 && !e.c.ZeroChecksum6 {
		checksum6(dst[:e.ov+len(f)], e.l2)
	}
	return e.ov + len(f), nil
}

// Fragment splits the frame buf[off:off+n] into two pieces to the pwgate
// VTEP v, as pseudowire.Encapsulator.Fragment does: the first in place,
// buf[off-Overhead() : off-Overhead()+firstLen]; the second written into
// second[:secondLen].
func (e *Encapsulator) Fragment(buf []byte, off, n int, second []byte, v *VTEP, vni uint32) (firstLen, secondLen int, err error) {
	if err := e.check(buf, off, n, v); err != nil {
		return 0, 0, err
	}
	if e.Pieces(n, v) != 2 {
		return 0, 0, ErrTooBig
	}
	first, rest := e.split.First, n-e.split.First
	if len(second) < e.ov+rest {
		return 0, 0, ErrTooBig
	}
	id := e.id
	e.id = (e.id + 1) & uint16(pseudowire.CWIDMask)
	sport := SourcePort(buf[off : off+n])
	start := off - e.ov
	e.header(buf[start:off], first, v, vni, sport, FlagPiece, pseudowire.FirstHalf(id))
	copy(second[e.ov:], buf[off+first:off+n])
	e.header(second[:e.ov], rest, v, vni, sport, FlagPiece, pseudowire.SecondHalf(id))
	if e.v6 && !e.c.ZeroChecksum6 {
		checksum6(buf[start:off+first], e.l2)
		checksum6(second[:e.ov+rest], e.l2)
	}
	return e.ov + first, e.ov + rest, nil
}
