package pseudowire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/pwgate/pwgate/dataplane/frame"
)

// Errors of the sending side. They are values, so returning one does not
// allocate.
var (
	ErrHeadroom    = errors.New("pseudowire: not enough headroom in front of the frame")
	ErrShortBuffer = errors.New("pseudowire: buffer too short for the frame")
	ErrRunt        = errors.New("pseudowire: frame shorter than an Ethernet header")
	ErrTooBig      = errors.New("pseudowire: frame does not fit in two pieces")
	ErrNeedsSplit  = errors.New("pseudowire: frame must be sent in two pieces")
	ErrFitsWhole   = errors.New("pseudowire: frame fits in one piece")
)

// EncapConfig configures an Encapsulator.
type EncapConfig struct {
	Mode Mode
	// MTU is the uplink's IP MTU; 0 means ReferenceMTU (1500).
	MTU int
	// Src is our uplink MAC; Dst is the peer's MAC (eth) or the next hop's
	// (ip6), and may be changed later with SetDst.
	Src, Dst frame.MAC
	// SrcAddr and DstAddr are our and the peer's IPv6 addresses (ip6 only).
	SrcAddr, DstAddr netip.Addr
}

// Encapsulator writes outer headers in front of frames. It keeps the
// fragment ID counter, so one Encapsulator serves one uplink direction and
// is owned by one goroutine.
type Encapsulator struct {
	hdr   [MaxOverhead]byte // outer headers with payload length and control word 0
	ov    int
	mode  Mode
	split Split
	id    uint16 // ID of the next split frame
}

// NewEncapsulator returns an Encapsulator for c.
func NewEncapsulator(c EncapConfig) (*Encapsulator, error) {
	e := new(Encapsulator)
	if err := e.Configure(c); err != nil {
		return nil, err
	}
	return e, nil
}

// Configure replaces the configuration, keeping the fragment ID counter so
// that a reconfigured sender never repeats a recent ID. It does not
// allocate; on error the Encapsulator is unchanged.
func (e *Encapsulator) Configure(c EncapConfig) error {
	mtu := c.MTU
	if mtu == 0 {
		mtu = ReferenceMTU
	}
	split, err := SplitFor(c.Mode, mtu)
	if err != nil {
		return err
	}
	var hdr [MaxOverhead]byte
	if c.Mode != ModeIP6Tun {
		eth := frame.Ethernet(hdr[:])
		eth.SetDst(c.Dst)
		eth.SetSrc(c.Src)
		eth.SetEtherType(EtherType)
	}
	if c.Mode.IsIP6() {
		if !c.SrcAddr.Is6() || c.SrcAddr.Is4In6() || !c.DstAddr.Is6() || c.DstAddr.Is4In6() {
			return fmt.Errorf("ip6 mode needs IPv6 source and destination addresses, have %v and %v", c.SrcAddr, c.DstAddr)
		}
		if c.Mode == ModeIP6 {
			frame.Ethernet(hdr[:]).SetEtherType(frame.EtherTypeIPv6)
		}
		frame.IPv6(hdr[c.Mode.ipOffset():]).Encode(0, IPProto, HopLimit, c.SrcAddr, c.DstAddr)
	}
	e.hdr, e.ov, e.mode, e.split = hdr, c.Mode.Overhead(), c.Mode, split
	return nil
}

// SetDst changes the outer destination MAC: the next hop in ip6 mode (no
// effect in ip6-tun mode, whose packets have no Ethernet header).
func (e *Encapsulator) SetDst(m frame.MAC) { frame.Ethernet(e.hdr[:]).SetDst(m) }

// Dst returns the outer destination MAC.
func (e *Encapsulator) Dst() frame.MAC { return frame.Ethernet(e.hdr[:]).Dst() }

// Overhead returns the bytes written in front of each piece.
func (e *Encapsulator) Overhead() int { return e.ov }

// Split returns the fragmentation rule in force.
func (e *Encapsulator) Split() Split { return e.split }

// Pieces returns how many packets a frame of n bytes becomes (1 or 2), or 0
// when it is too big to carry.
func (e *Encapsulator) Pieces(n int) int { return e.split.Pieces(n) }

// NextID returns the fragment ID the next split frame will carry.
func (e *Encapsulator) NextID() uint16 { return e.id }

// header writes the outer headers and control word for a piece carrying
// inner bytes into b[0:ov].
func (e *Encapsulator) header(b []byte, inner int, cw ControlWord) {
	copy(b[:e.ov-ControlWordLen], e.hdr[:e.ov-ControlWordLen])
	if e.mode.IsIP6() {
		binary.BigEndian.PutUint16(b[e.mode.ipOffset()+4:], uint16(inner+ControlWordLen))
	}
	PutControlWord(b[e.ov-ControlWordLen:], cw)
}

func (e *Encapsulator) check(buf []byte, off, n int) error {
	switch {
	case off < e.ov:
		return ErrHeadroom
	case n < frame.EthernetLen:
		return ErrRunt
	case off+n > len(buf):
		return ErrShortBuffer
	}
	return nil
}

// Encap encapsulates the frame buf[off:off+n] in place as one packet: it
// writes the outer headers into buf[off-Overhead():off] and returns
// start = off-Overhead(); the packet is buf[start:off+n]. The frame itself is
// neither copied nor changed. It fails with ErrNeedsSplit or ErrTooBig when
// the frame does not fit one piece, ErrHeadroom when off < Overhead(), and
// ErrRunt for frames shorter than an Ethernet header.
func (e *Encapsulator) Encap(buf []byte, off, n int) (start int, err error) {
	if err := e.check(buf, off, n); err != nil {
		return 0, err
	}
	if n > e.split.Whole {
		if n > e.split.Max {
			return 0, ErrTooBig
		}
		return 0, ErrNeedsSplit
	}
	start = off - e.ov
	e.header(buf[start:off], n, 0)
	return start, nil
}

// Fragment splits the frame buf[off:off+n] into two packets with the next
// fragment ID. The first is built in place, like Encap: it is
// buf[off-Overhead() : off-Overhead()+firstLen] and carries the first
// Split().First bytes. The second is written into second[:secondLen]: outer
// headers followed by a copy of the rest of the frame. buf's bytes after the
// first piece are left as they were. It fails with ErrFitsWhole when one
// piece suffices, ErrTooBig when two do not, and ErrShortBuffer when second
// cannot hold the second packet.
func (e *Encapsulator) Fragment(buf []byte, off, n int, second []byte) (firstLen, secondLen int, err error) {
	if err := e.check(buf, off, n); err != nil {
		return 0, 0, err
	}
	switch e.split.Pieces(n) {
	case 1:
		return 0, 0, ErrFitsWhole
	case 0:
		return 0, 0, ErrTooBig
	}
	first, rest := e.split.First, n-e.split.First
	if len(second) < e.ov+rest {
		return 0, 0, ErrShortBuffer
	}
	id := e.id
	e.id = (e.id + 1) & uint16(CWIDMask)
	e.header(buf[off-e.ov:off], first, FirstHalf(id))
	e.header(second, rest, SecondHalf(id))
	copy(second[e.ov:], buf[off+first:off+n])
	return e.ov + first, e.ov + rest, nil
}
