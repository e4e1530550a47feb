package vxlan

import (
	"fmt"
	"net/netip"

	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/pseudowire"
)

// DropReason says why a received packet was dropped.
type DropReason uint8

// Reasons, in counter order.
const (
	DropNone        DropReason = iota
	DropTruncated              // shorter than its headers
	DropNotVXLAN               // not IPv4/IPv6 UDP to the VXLAN port (or an IP fragment, or options/extension headers)
	DropNotForUs               // outer destination address is not our VTEP address
	DropBadLength              // IP or UDP length does not match the packet
	DropBadChecksum            // UDP checksum wrong, or zero over IPv6 where not accepted
	DropBadFlags               // VXLAN I flag missing
	NumDropReasons
)

var dropNames = [NumDropReasons]string{"none", "truncated", "not_vxlan", "not_for_us", "bad_length", "bad_checksum", "bad_flags"}

// String returns the reason's counter name.
func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropNames[r]
	}
	return fmt.Sprintf("drop(%d)", uint8(r))
}

// Received is a checked VXLAN packet.
type Received struct {
	Src   netip.Addr // the sending VTEP
	VNI   uint32
	Inner []byte // the frame, or a piece of one; aliases the packet
	// Piece is set for a piece of a split frame (pwgate's piece bit), with
	// the pseudowire's control word.
	Piece bool
	CW    pseudowire.ControlWord
}

// Decapsulator checks received packets against our VTEP address.
type Decapsulator struct {
	local       [16]byte
	v6          bool
	acceptZero6 bool
	l2          int // outer Ethernet header's length: 14, or 0 (L3)
	port        uint16
}

// NewDecapsulator returns a Decapsulator for our VTEP address local;
// acceptZero6 accepts IPv6 packets with a zero UDP checksum (RFC 6936);
// l3 takes IP packets without an Ethernet header (from a tunnel).
func NewDecapsulator(local netip.Addr, acceptZero6, l3 bool) (*Decapsulator, error) {
	if !local.IsValid() || local.Is4In6() {
		return nil, fmt.Errorf("vxlan: local VTEP address %v", local)
	}
	d := &Decapsulator{local: local.As16(), v6: local.Is6(), acceptZero6: acceptZero6, l2: frame.EthernetLen, port: Port}
	if l3 {
		d.l2 = 0
	}
	return d, nil
}

// Decap checks pkt, an Ethernet frame from the underlay (an IP packet with
// l3).
func (d *Decapsulator) Decap(pkt []byte) (Received, DropReason) {
	var r Received
	l2 := d.l2
	if len(pkt) < l2+1 {
		return r, DropTruncated
	}
	v6 := pkt[l2]>>4 == 6
	if l2 > 0 {
		et := frame.Ethernet(pkt).EtherType()
		v6 = et == frame.EtherTypeIPv6
		if !v6 && et != frame.EtherTypeIPv4 {
			return r, DropNotVXLAN
		}
	}
	var udp frame.UDP
	var addrs []byte // the outer addresses, for the checksum
	switch {
	case v6 && d.v6:
		if len(pkt) < l2+frame.IPv6Len+UDPLen {
			return r, DropTruncated
		}
		ip := frame.IPv6(pkt[l2:])
		if ip.Version() != 6 || ip.NextHeader() != 17 {
			return r, DropNotVXLAN
		}
		if !ip.DstEquals(&d.local) {
			return r, DropNotForUs
		}
		pl := int(ip.PayloadLength())
		if pl < UDPLen || pl > len(pkt)-l2-frame.IPv6Len {
			return r, DropBadLength
		}
		pkt = pkt[:l2+frame.IPv6Len+pl] // the rest is link padding
		udp = frame.UDP(pkt[l2+frame.IPv6Len:])
		addrs = ip.Addrs()
		r.Src = ip.Src()
	case !v6 && !d.v6:
		if len(pkt) < l2+frame.IPv4Len+UDPLen {
			return r, DropTruncated
		}
		ip := frame.IPv4(pkt[l2:])
		if ip.Version() != 4 || ip.HeaderLen() != frame.IPv4Len || ip.Protocol() != 17 || ip.IsFragment() {
			return r, DropNotVXLAN
		}
		if !ip.DstEquals([4]byte(d.local[12:])) {
			return r, DropNotForUs
		}
		tl := int(ip.TotalLength())
		if tl < frame.IPv4Len+UDPLen || tl > len(pkt)-l2 {
			return r, DropBadLength
		}
		pkt = pkt[:l2+tl]
		udp = frame.UDP(pkt[l2+frame.IPv4Len:])
		addrs = ip.Addrs()
		r.Src = ip.Src()
	default:
		return r, DropNotVXLAN
	}
	if udp.DstPort() != d.port {
		return r, DropNotVXLAN
	}
	if int(udp.Length()) != len(udp) {
		return r, DropBadLength
	}
	if len(udp) < UDPLen+HeaderLen {
		return r, DropTruncated
	}
	sum := udp.Checksum()
	if sum == 0 && d.v6 && !d.acceptZero6 {
		return r, DropBadChecksum
	}
	if sum != 0 {
		acc := frame.Checksum(0, addrs) + uint64(len(udp)) + frame.ProtoUDP
		if frame.Fold(frame.Checksum(acc, udp)) != 0 {
			return r, DropBadChecksum
		}
	}
	vx := frame.VXLAN(udp.Payload())
	if vx.Flags()&FlagI == 0 {
		return r, DropBadFlags
	}
	r.VNI = vx.VNI()
	r.Inner = vx.Payload()
	if vx.Flags()&FlagPiece != 0 {
		r.Piece = true
		r.CW = pseudowire.ControlWord(vx.Reserved16())
	}
	return r, DropNone
}
