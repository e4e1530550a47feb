// Package lldp is pwgated's LLDP (IEEE 802.1AB): it tells the switches on
// its ports what it is (system name, port, version) and keeps what they
// tell of themselves, for pwctl status. An LLDPDU from a neighbour is
// input: parsed with bounds, its strings cut and made printable, the
// neighbours per port limited, the rate limited; what is refused is
// counted.
package lldp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// EtherType and the nearest-bridge group address LLDPDUs go to.
const EtherType = 0x88cc

var Group = [6]byte{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e}

// TLV types (802.1AB-2016, 8.4).
const (
	tlvEnd         = 0
	tlvChassisID   = 1
	tlvPortID      = 2
	tlvTTL         = 3
	tlvPortDesc    = 4
	tlvSystemName  = 5
	tlvSystemDesc  = 6
	tlvSystemCaps  = 7
	tlvMgmtAddress = 8
)

// Chassis and port ID subtypes that carry an address or a name.
const (
	chassisMAC     = 4
	chassisNetAddr = 5
	chassisIfName  = 6
	chassisLocal   = 7
	portIfAlias    = 1
	portMAC        = 3
	portNetAddr    = 4
	portIfName     = 5
	portLocal      = 7
)

// Capability bits (8.5.8).
const (
	CapOther  = 1 << 0
	CapBridge = 1 << 2
	CapRouter = 1 << 4
)

// maxString is how much of a neighbour's string is kept.
const maxString = 255

// Info is what an LLDPDU says: ours to send, or a neighbour's received.
type Info struct {
	ChassisID  string // a MAC as aa:bb:..., an address, or the text
	PortID     string
	TTL        uint16 // seconds; 0: the sender is leaving
	PortDesc   string
	SystemName string
	SystemDesc string
	Caps       uint16 // enabled capabilities
	Mgmt       []netip.Addr
}

// Frame builds an LLDPDU from src (the port's MAC) with chassis ID chassis
// (a MAC), port ID the interface name port, and the rest of in. Strings
// longer than a TLV holds are cut.
func Frame(src, chassis net.HardwareAddr, port string, in Info) []byte {
	b := make([]byte, 0, 256)
	b = append(b, Group[:]...)
	b = append(b, src...)
	b = binary.BigEndian.AppendUint16(b, EtherType)
	b = tlv(b, tlvChassisID, append([]byte{chassisMAC}, chassis...))
	b = tlv(b, tlvPortID, append([]byte{portIfName}, cut(port, 255)...))
	b = tlv(b, tlvTTL, binary.BigEndian.AppendUint16(nil, in.TTL))
	if in.PortDesc != "" {
		b = tlv(b, tlvPortDesc, []byte(cut(in.PortDesc, 255)))
	}
	if in.SystemName != "" {
		b = tlv(b, tlvSystemName, []byte(cut(in.SystemName, 255)))
	}
	if in.SystemDesc != "" {
		b = tlv(b, tlvSystemDesc, []byte(cut(in.SystemDesc, 255)))
	}
	caps := binary.BigEndian.AppendUint16(nil, in.Caps)
	b = tlv(b, tlvSystemCaps, append(caps, caps...)) // available = enabled
	for _, a := range in.Mgmt {
		// Address string length, IANA family (1 IPv4, 2 IPv6), the
		// address; interface numbering unknown (1), 0; no OID.
		fam := byte(2)
		if a.Is4() {
			fam = 1
		}
		v := append([]byte{byte(1 + a.BitLen()/8), fam}, a.AsSlice()...)
		v = append(v, 1, 0, 0, 0, 0, 0)
		b = tlv(b, tlvMgmtAddress, v)
	}
	b = tlv(b, tlvEnd, nil)
	for len(b) < 60 { // the shortest Ethernet frame, before the FCS
		b = append(b, 0)
	}
	return b
}

func tlv(b []byte, typ int, v []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(typ)<<9|uint16(len(v)))
	return append(b, v...)
}

func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Parse reads an LLDPDU from an Ethernet frame (after the EtherType check).
// It requires the chassis ID, port ID and TTL TLVs first, in that order, as
// 802.1AB does, and every TLV inside the frame.
func Parse(frame []byte) (Info, error) {
	var in Info
	if len(frame) < 14 || binary.BigEndian.Uint16(frame[12:]) != EtherType {
		return in, errors.New("not an LLDP frame")
	}
	p := frame[14:]
	for i := 0; ; i++ {
		if len(p) == 0 {
			if i < 3 {
				return in, errors.New("ends before the chassis ID, port ID and TTL")
			}
			return in, nil // no End TLV: tolerated
		}
		if len(p) < 2 {
			return in, errors.New("a truncated TLV header")
		}
		h := binary.BigEndian.Uint16(p)
		typ, n := int(h>>9), int(h&0x1ff)
		if len(p) < 2+n {
			return in, fmt.Errorf("TLV type %d: %d bytes, %d left", typ, n, len(p)-2)
		}
		v := p[2 : 2+n]
		p = p[2+n:]
		if i < 3 && typ != i+1 {
			return in, fmt.Errorf("TLV %d is type %d: chassis ID, port ID and TTL must come first", i+1, typ)
		}
		switch typ {
		case tlvEnd: // (not before the first three: checked above)
			return in, nil
		case tlvChassisID, tlvPortID:
			if n < 2 || n > 256 {
				return in, fmt.Errorf("TLV type %d: length %d, want 2 to 256", typ, n)
			}
			if typ == tlvChassisID {
				in.ChassisID = id(v[0], v[1:], chassisMAC, chassisNetAddr)
			} else {
				in.PortID = id(v[0], v[1:], portMAC, portNetAddr)
			}
		case tlvTTL:
			if n < 2 {
				return in, fmt.Errorf("TTL: length %d", n)
			}
			in.TTL = binary.BigEndian.Uint16(v)
		case tlvPortDesc:
			in.PortDesc = printable(v)
		case tlvSystemName:
			in.SystemName = printable(v)
		case tlvSystemDesc:
			in.SystemDesc = printable(v)
		case tlvSystemCaps:
			if n == 4 {
				in.Caps = binary.BigEndian.Uint16(v[2:])
			}
		case tlvMgmtAddress:
			if n >= 2 && int(v[0]) >= 2 && int(v[0]) <= n-1 && len(in.Mgmt) < 4 {
				if a, ok := netip.AddrFromSlice(v[2 : 1+int(v[0])]); ok && (v[1] == 1 && a.Is4() || v[1] == 2 && a.Is6()) {
					in.Mgmt = append(in.Mgmt, a)
				}
			}
		}
	}
}

// id formats a chassis or port ID: a MAC or network address as such, the
// rest as text.
func id(subtype byte, v []byte, mac, netAddr byte) string {
	switch subtype {
	case mac:
		if len(v) == 6 {
			return net.HardwareAddr(v).String()
		}
	case netAddr:
		if len(v) == 5 && v[0] == 1 || len(v) == 17 && v[0] == 2 {
			a, _ := netip.AddrFromSlice(v[1:])
			return a.String()
		}
	}
	return printable(v)
}

// printable is v as text of at most maxString bytes, with anything but
// printable ASCII shown as '?': a neighbour's strings reach terminals and
// web pages.
func printable(v []byte) string {
	if len(v) > maxString {
		v = v[:maxString]
	}
	for len(v) > 0 && v[len(v)-1] == 0 { // C strings sent whole
		v = v[:len(v)-1]
	}
	var b strings.Builder
	b.Grow(len(v))
	for _, c := range v {
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		b.WriteByte(c)
	}
	return b.String()
}
