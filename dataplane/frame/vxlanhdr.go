package frame

import "encoding/binary"

// VXLANLen is the length of a VXLAN header (RFC 7348).
const VXLANLen = 8

// Offsets of the VXLAN header's fields: flags, 24 reserved bits (pwgate
// carries a split frame's control word in the first two, see
// dataplane/vxlan), the VNI and 8 reserved bits.
const (
	vxlanFlags    = 0
	vxlanReserved = 1
	vxlanVNI      = 4
)

// VXLAN is a view of a VXLAN header (VXLANLen bytes) and the frame after
// it.
type VXLAN []byte

// Flags returns the flags byte.
func (h VXLAN) Flags() byte { return h[vxlanFlags] }

// VNI returns the 24-bit VXLAN network identifier.
func (h VXLAN) VNI() uint32 { return binary.BigEndian.Uint32(h[vxlanVNI:]) >> 8 }

// Reserved16 returns the first two reserved bytes, little-endian (where
// pwgate puts a piece's control word).
func (h VXLAN) Reserved16() uint16 { return binary.LittleEndian.Uint16(h[vxlanReserved:]) }

// Payload returns the inner frame.
func (h VXLAN) Payload() []byte { return h[VXLANLen:] }

// Encode writes the whole header: flags, the first two reserved bytes
// (little-endian), a zero third one, and the VNI with a zero last byte.
func (h VXLAN) Encode(flags byte, reserved16 uint16, vni uint32) {
	h[vxlanFlags] = flags
	binary.LittleEndian.PutUint16(h[vxlanReserved:], reserved16)
	h[vxlanReserved+2] = 0
	binary.BigEndian.PutUint32(h[vxlanVNI:], vni<<8)
}
