package pseudowire

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/pwgate/pwgate/dataplane/frame"
)

// DropReason says why the receiver dropped a packet. Each reason is counted
// on its own.
type DropReason uint8

// Reasons a received packet is dropped, in counter order.
const (
	DropNone           DropReason = iota
	DropTruncated                 // shorter than the outer headers and control word
	DropNotPseudowire             // wrong EtherType, IP version or next header
	DropWrongPeer                 // outer source MAC (eth) or address (ip6) is not the peer's
	DropBadLength                 // IPv6 payload length longer than the frame, or shorter than a control word
	DropBadControlWord            // reserved control word: second-half bit or ID without the fragment bit
	DropRunt                      // inner frame (or first half) shorter than an Ethernet header
	DropLoneSecond                // second half with no first half held
	DropIDMismatch                // second half whose ID differs from the held first half; both are dropped
	DropReplaced                  // held first half replaced by a newer first half
	DropOversize                  // frame longer than the configured maximum
	DropBadKeepalive              // keepalive control word with a body that is not a keepalive
	NumDropReasons
)

var dropNames = [NumDropReasons]string{"none", "truncated", "not_pseudowire", "wrong_peer", "bad_length",
	"bad_control_word", "runt", "lone_second", "id_mismatch", "replaced", "oversize", "bad_keepalive"}

// String returns the reason's counter name, such as "lone_second".
func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropNames[r]
	}
	return fmt.Sprintf("drop(%d)", uint8(r))
}

// DecapConfig configures a Decapsulator.
type DecapConfig struct {
	Mode Mode
	// PeerMAC is the only outer source accepted in eth mode.
	PeerMAC frame.MAC
	// PeerAddr is the only outer source address accepted in ip6 mode.
	PeerAddr netip.Addr
	// MaxFrame is the largest frame delivered, whole or reassembled; 0 means
	// the largest frame a sender with the reference's MTU can send.
	MaxFrame int
}

// Released names a buffer the caller may reuse, and why.
type Released struct {
	Token  uint64
	Reason DropReason // DropNone when the contents were consumed by reassembly
}

// Output is what one received packet led to. The caller transmits Frame (if
// not nil) from the buffer FrameToken, and takes back the buffers in
// Released[:NReleased], counting those with a reason. A received packet that
// appears in neither is held as a first half: its buffer stays the
// Decapsulator's until a later Output hands it back.
type Output struct {
	Frame      []byte
	FrameToken uint64
	Released   [2]Released
	NReleased  int
	// FromPeer says the packet was the peer's: its outer headers were
	// right, whatever its control word and contents.
	FromPeer bool
	// Keepalive, when not nil, is a keepalive the packet carried (its
	// buffer is released); it is valid until the next Receive.
	Keepalive *Keepalive
}

func (o *Output) release(tok uint64, r DropReason) {
	o.Released[o.NReleased] = Released{tok, r}
	o.NReleased++
}

// Decapsulator checks received packets from the peer and puts split frames
// back together with a Reassembler (see there for the rules and who owns
// which buffer; the slice passed to Receive must have the capacity).
type Decapsulator struct {
	mode     Mode
	ov       int
	peerMAC  frame.MAC
	peerAddr [16]byte
	r        Reassembler
	ka       Keepalive
}

// Reassembler puts split frames back together with the reference's
// in-order rules: one pending first half; a new first half replaces it; a
// second half completes it when the IDs match and drops both when they do
// not; a second half with nothing held is dropped; a whole frame is
// delivered and leaves a pending first half pending. A Decapsulator has
// one for its peer; a VXLAN receiver has one per remote VTEP.
//
// Buffers are named by caller-chosen tokens. A held first half stays in
// the caller's buffer; the second half's bytes are copied after it, so the
// buffer must have capacity (cap of the slice passed to Push) for the
// reassembled frame.
type Reassembler struct {
	MaxFrame int // the largest frame delivered, whole or reassembled

	holding bool
	held    []byte // inner bytes of the first half, capacity to its buffer's end
	heldTok uint64
	heldID  uint16
}

// NewDecapsulator returns a Decapsulator for c.
func NewDecapsulator(c DecapConfig) (*Decapsulator, error) {
	d := new(Decapsulator)
	if err := d.Configure(c); err != nil {
		return nil, err
	}
	return d, nil
}

// Configure replaces the configuration. A held first half stays held; call
// Flush to drop it. On error the Decapsulator is unchanged.
func (d *Decapsulator) Configure(c DecapConfig) error {
	if c.Mode != ModeEth && c.Mode != ModeIP6 && c.Mode != ModeIP6Tun {
		return fmt.Errorf("decapsulator: %v", c.Mode)
	}
	if c.Mode.IsIP6() && (!c.PeerAddr.Is6() || c.PeerAddr.Is4In6()) {
		return fmt.Errorf("ip6 mode needs the peer's IPv6 address, have %v", c.PeerAddr)
	}
	max := c.MaxFrame
	if max == 0 {
		s, _ := SplitFor(c.Mode, ReferenceMTU)
		max = s.Max
	}
	if max < frame.EthernetLen {
		return fmt.Errorf("decapsulator: maximum frame %d shorter than an Ethernet header", max)
	}
	d.mode, d.ov, d.peerMAC, d.r.MaxFrame = c.Mode, c.Mode.Overhead(), c.PeerMAC, max
	if c.Mode.IsIP6() {
		d.peerAddr = c.PeerAddr.As16()
	}
	return nil
}

// MaxFrame returns the largest frame delivered.
func (d *Decapsulator) MaxFrame() int { return d.r.MaxFrame }

// Pending reports the token of the held first half, if any.
func (d *Decapsulator) Pending() (tok uint64, ok bool) { return d.r.Pending() }

// Flush gives up a held first half and returns its token, if there was one.
func (d *Decapsulator) Flush() (tok uint64, ok bool) { return d.r.Flush() }

// Pending reports the token of the held first half, if any.
func (r *Reassembler) Pending() (tok uint64, ok bool) { return r.heldTok, r.holding }

// Flush gives up a held first half and returns its token, if there was one.
func (r *Reassembler) Flush() (tok uint64, ok bool) {
	tok, ok = r.heldTok, r.holding
	r.holding, r.held = false, nil
	return tok, ok
}

// Unwrap checks the outer headers of pkt, as received on the uplink, and
// returns the inner bytes after the control word, and the control word. In
// the ip6 modes the inner bytes end where the IPv6 payload length says;
// bytes after it are link-layer padding and are ignored. It does not look at
// the control word's value.
func (d *Decapsulator) Unwrap(pkt []byte) (inner []byte, cw ControlWord, r DropReason) {
	if len(pkt) < d.ov {
		return nil, 0, DropTruncated
	}
	eth := frame.Ethernet(pkt)
	if d.mode == ModeEth {
		if eth.EtherType() != EtherType {
			return nil, 0, DropNotPseudowire
		}
		if eth.Src() != d.peerMAC {
			return nil, 0, DropWrongPeer
		}
		return pkt[EthOverhead:], ReadControlWord(pkt[frame.EthernetLen:]), DropNone
	}
	off := d.mode.ipOffset()
	ip := frame.IPv6(pkt[off:])
	if (d.mode == ModeIP6 && eth.EtherType() != frame.EtherTypeIPv6) || ip.Version() != 6 || ip.NextHeader() != IPProto {
		return nil, 0, DropNotPseudowire
	}
	if !ip.SrcEquals(&d.peerAddr) {
		return nil, 0, DropWrongPeer
	}
	pl := int(ip.PayloadLength())
	if pl < ControlWordLen || pl > len(pkt)-off-frame.IPv6Len {
		return nil, 0, DropBadLength
	}
	end := off + frame.IPv6Len + pl
	return pkt[d.ov:end], ControlWord(binary.LittleEndian.Uint16(pkt[d.ov-ControlWordLen:])), DropNone
}

// Receive handles one packet received on the uplink, held in the caller's
// buffer tok. pkt's capacity, not only its length, is the buffer that a held
// first half may grow into. A keepalive leaves a held first half held.
func (d *Decapsulator) Receive(pkt []byte, tok uint64) (out Output) {
	inner, cw, r := d.Unwrap(pkt)
	if r != DropNone {
		out.release(tok, r)
		return out
	}
	if cw == CWKeepalive {
		out.FromPeer = true
		if !ParseKeepalive(inner, &d.ka) {
			out.release(tok, DropBadKeepalive)
			return out
		}
		out.Keepalive = &d.ka
		out.release(tok, DropNone)
		return out
	}
	out = d.r.Push(inner, cw, tok)
	out.FromPeer = true
	return out
}

// Push handles one frame or piece, inner, carried with control word cw in
// the caller's buffer tok; inner's capacity is what a held first half may
// grow into.
func (r *Reassembler) Push(inner []byte, cw ControlWord, tok uint64) (out Output) {
	var why DropReason
	switch {
	case !cw.Valid():
		why = DropBadControlWord
	case cw == 0:
		switch {
		case len(inner) < frame.EthernetLen:
			why = DropRunt
		case len(inner) > r.MaxFrame:
			why = DropOversize
		default:
			out.Frame, out.FrameToken = inner, tok
			return out
		}
	case !cw.IsSecond():
		if len(inner) < frame.EthernetLen {
			why = DropRunt
			break
		}
		if r.holding {
			out.release(r.heldTok, DropReplaced)
		}
		r.holding, r.held, r.heldTok, r.heldID = true, inner, tok, cw.ID()
		return out
	case !r.holding:
		why = DropLoneSecond
	default:
		r.holding = false
		held := r.held
		r.held = nil
		total := len(held) + len(inner)
		switch {
		case r.heldID != cw.ID():
			why = DropIDMismatch
		case total > r.MaxFrame || total > cap(held):
			why = DropOversize
		default:
			held = held[:total]
			copy(held[total-len(inner):], inner)
			out.Frame, out.FrameToken = held, r.heldTok
			out.release(tok, DropNone)
			return out
		}
		out.release(r.heldTok, why)
	}
	out.release(tok, why)
	return out
}
