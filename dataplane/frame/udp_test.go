package frame

import (
	"bytes"
	"testing"
)

// The UDP and VXLAN views write and read back every field, and Encode
// writes the whole VXLAN header: a buffer's stale bytes (UMEM headroom is
// reused) never leak into the reserved ones.
func TestUDPVXLANViews(t *testing.T) {
	b := bytes.Repeat([]byte{0xee}, UDPLen+VXLANLen+4)
	u := UDP(b)
	u.Encode(49152, 4789, uint16(len(b)))
	if u.SrcPort() != 49152 || u.DstPort() != 4789 || int(u.Length()) != len(b) || u.Checksum() != 0 {
		t.Errorf("udp: %d→%d len %d sum %d", u.SrcPort(), u.DstPort(), u.Length(), u.Checksum())
	}
	u.SetChecksum(0xbeef)
	if u.Checksum() != 0xbeef {
		t.Errorf("checksum %#x", u.Checksum())
	}
	v := VXLAN(u.Payload())
	v.Encode(0x09, 0x1234, 0xabcdef)
	want := []byte{0x09, 0x34, 0x12, 0, 0xab, 0xcd, 0xef, 0}
	if !bytes.Equal(v[:VXLANLen], want) {
		t.Errorf("vxlan header % x, want % x", v[:VXLANLen], want)
	}
	if v.Flags() != 0x09 || v.Reserved16() != 0x1234 || v.VNI() != 0xabcdef || len(v.Payload()) != 4 {
		t.Errorf("vxlan: flags %#x reserved %#x vni %#x payload %d", v.Flags(), v.Reserved16(), v.VNI(), len(v.Payload()))
	}
	if n := testing.AllocsPerRun(100, func() { u.Encode(1, 2, 3); VXLAN(u.Payload()).Encode(8, 0, 1) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}
