package frame

import "encoding/binary"

// UDPLen is the length of a UDP header; ProtoUDP its IP protocol number.
const (
	UDPLen   = 8
	ProtoUDP = 17
)

// Offsets of the UDP header's fields.
const (
	udpSrcPort  = 0
	udpDstPort  = 2
	udpLength   = 4
	udpChecksum = 6
)

// UDP is a view of a UDP header (UDPLen bytes) and what follows it.
type UDP []byte

// SrcPort returns the source port.
func (h UDP) SrcPort() uint16 { return binary.BigEndian.Uint16(h[udpSrcPort:]) }

// DstPort returns the destination port.
func (h UDP) DstPort() uint16 { return binary.BigEndian.Uint16(h[udpDstPort:]) }

// Length returns the length field: header and payload.
func (h UDP) Length() uint16 { return binary.BigEndian.Uint16(h[udpLength:]) }

// Checksum returns the checksum field (0: none, which only IPv4 allows
// without RFC 6935).
func (h UDP) Checksum() uint16 { return binary.BigEndian.Uint16(h[udpChecksum:]) }

// Payload returns what follows the header.
func (h UDP) Payload() []byte { return h[UDPLen:] }

// Encode writes the header with a zero checksum.
func (h UDP) Encode(src, dst, length uint16) {
	binary.BigEndian.PutUint16(h[udpSrcPort:], src)
	binary.BigEndian.PutUint16(h[udpDstPort:], dst)
	binary.BigEndian.PutUint16(h[udpLength:], length)
	binary.BigEndian.PutUint16(h[udpChecksum:], 0)
}

// SetChecksum writes the checksum field.
func (h UDP) SetChecksum(c uint16) { binary.BigEndian.PutUint16(h[udpChecksum:], c) }
