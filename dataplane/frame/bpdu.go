package frame

import "encoding/binary"

// BPDUKind says which spanning-tree protocol a frame carries.
type BPDUKind uint8

// Kinds returned by ClassifyBPDU.
const (
	NotBPDU BPDUKind = iota
	STP              // IEEE 802.1D configuration or TCN BPDU (protocol version 0)
	RSTP             // IEEE 802.1w rapid spanning tree (version 2)
	MSTP             // IEEE 802.1s multiple spanning tree (version 3 and later)
	PVST             // Cisco PVST+ (SNAP PID 0x010b, version 0)
	RPVST            // Cisco Rapid PVST+ (SNAP PID 0x010b, version 2)
)

var bpduKindNames = [...]string{"not-bpdu", "stp", "rstp", "mstp", "pvst+", "rapid-pvst+"}

// String returns the protocol's short name, such as "rstp".
func (k BPDUKind) String() string {
	if int(k) < len(bpduKindNames) {
		return bpduKindNames[k]
	}
	return "unknown"
}

// Bridge group addresses whose LLC 42 42 03 frames are IEEE BPDUs.
var (
	// BridgeGroupAddress is the IEEE 802.1D customer bridge group address.
	BridgeGroupAddress = MAC{0x01, 0x80, 0xc2, 0x00, 0x00, 0x00}
	// ProviderBridgeGroupAddress is the IEEE 802.1ad provider bridge group
	// address used by S-VLAN bridges.
	ProviderBridgeGroupAddress = MAC{0x01, 0x80, 0xc2, 0x00, 0x00, 0x08}
	// PVSTAddress is Cisco's shared spanning tree protocol address.
	PVSTAddress = MAC{0x01, 0x00, 0x0c, 0xcc, 0xcc, 0xcd}
)

// maxTags is how many VLAN tags ClassifyBPDU steps over (802.1ad + 802.1Q).
const maxTags = 2

// ClassifyBPDU reports whether f (an Ethernet frame without FCS) is a
// spanning-tree BPDU, and of which protocol. It counts:
//
//   - IEEE STP, RSTP and MSTP: destination 01:80:c2:00:00:00 (or the
//     provider bridge address 01:80:c2:00:00:08), an IEEE 802.3 length field
//     (at most 1500), LLC DSAP 0x42, SSAP 0x42, control 0x03, then protocol
//     identifier 0x0000; the protocol version byte selects STP (0), RSTP (2)
//     or MSTP (3 or more).
//   - Cisco PVST+ and Rapid PVST+: destination 01:00:0c:cc:cc:cd, an 802.3
//     length field, LLC AA AA 03, SNAP OUI 00:00:0c, PID 0x010b, then
//     protocol identifier 0x0000; version 0 is PVST+, 2 Rapid PVST+.
//
// Either may carry up to two VLAN tags (TPID 0x8100, 0x88a8 or 0x9100)
// between the source address and the length field. Anything shorter than
// the protocol identifier, version and type bytes is not counted.
//
// The reference counted any frame whose bytes 14 and 15 were 0x42 0x42; that
// misses tagged BPDUs and PVST+, and counts frames that merely carry 0x42 0x42
// after an EtherType. ClassifyBPDU does neither. It reads f only and never
// allocates; most frames are rejected by the first byte.
func ClassifyBPDU(f []byte) BPDUKind {
	if len(f) < EthernetLen+7 || f[0] != 0x01 {
		return NotBPDU
	}
	ieee := MAC(f[0:6]) == BridgeGroupAddress || MAC(f[0:6]) == ProviderBridgeGroupAddress
	if !ieee && MAC(f[0:6]) != PVSTAddress {
		return NotBPDU
	}
	off := 12
	for i := 0; i < maxTags && off+2 <= len(f) && IsVLANTPID(binary.BigEndian.Uint16(f[off:])); i++ {
		off += VLANTagLen
	}
	if off+2 > len(f) || binary.BigEndian.Uint16(f[off:]) > MaxLengthField {
		return NotBPDU
	}
	llc := f[off+2:]
	if ieee {
		// LLC 42 42 03, protocol id 00 00, version, type.
		if len(llc) < 7 || llc[0] != 0x42 || llc[1] != 0x42 || llc[2] != 0x03 || llc[3] != 0 || llc[4] != 0 {
			return NotBPDU
		}
		switch v := llc[5]; {
		case v == 0:
			return STP
		case v == 2:
			return RSTP
		case v >= 3:
			return MSTP
		}
		return NotBPDU
	}
	// LLC AA AA 03, SNAP 00 00 0c 01 0b, protocol id 00 00, version, type.
	if len(llc) < 12 || llc[0] != 0xaa || llc[1] != 0xaa || llc[2] != 0x03 ||
		llc[3] != 0 || llc[4] != 0 || llc[5] != 0x0c || llc[6] != 0x01 || llc[7] != 0x0b ||
		llc[8] != 0 || llc[9] != 0 {
		return NotBPDU
	}
	switch llc[10] {
	case 0:
		return PVST
	case 2:
		return RPVST
	}
	return NotBPDU
}

// IsBPDU reports whether ClassifyBPDU(f) != NotBPDU.
func IsBPDU(f []byte) bool { return ClassifyBPDU(f) != NotBPDU }
