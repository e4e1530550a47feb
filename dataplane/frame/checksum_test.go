package frame

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// naive is RFC 1071's sum, sixteen bits at a time.
func naive(b []byte) uint16 {
	var s uint32
	for len(b) >= 2 {
		s += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

func TestChecksum(t *testing.T) {
	b := make([]byte, 3000)
	for i := range b {
		b[i] = byte(i*7 + i/13)
	}
	for n := 0; n <= len(b); n += 1 + n/7 {
		if got, want := Fold(Checksum(0, b[:n])), naive(b[:n]); got != want {
			t.Fatalf("%d bytes: %04x, want %04x", n, got, want)
		}
	}
	// An IPv4 header with its checksum sums to zero.
	h := IPv4(make([]byte, IPv4Len))
	h.Encode(100, 17, 64, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.7"))
	if Fold(Checksum(0, h)) != 0 || h.Version() != 4 || h.HeaderLen() != 20 || h.Protocol() != 17 || h.Dst().String() != "198.51.100.7" {
		t.Fatalf("IPv4 header %x", []byte(h))
	}
}

func FuzzChecksum(f *testing.F) {
	f.Add([]byte{1, 2, 3})
	f.Add(make([]byte, 77))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := Fold(Checksum(0, b)), naive(b); got != want {
			t.Fatalf("%x: %04x, want %04x", b, got, want)
		}
	})
}

func BenchmarkChecksum1500(b *testing.B) {
	buf := make([]byte, 1500)
	b.ReportAllocs()
	b.SetBytes(1500)
	for i := 0; i < b.N; i++ {
		Checksum(0, buf)
	}
}
