package frame

import (
	"bytes"
	"net/netip"
	"testing"
)

// stpBody is an 802.1D configuration BPDU after the 802.3 length field.
var stpBody = []byte{0x42, 0x42, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x02, 0xaa, 0x00, 0x00, 0x00, 0x01,
	0x00, 0x00, 0x00, 0x00, 0x80, 0x00, 0x02, 0xaa, 0x00, 0x00, 0x00, 0x01, 0x80, 0x01, 0x00, 0x00, 0x14, 0x00, 0x02, 0x00, 0x0f, 0x00}

// pvstBody is a PVST+ BPDU after the 802.3 length field (LLC/SNAP + BPDU).
var pvstBody = []byte{0xaa, 0xaa, 0x03, 0x00, 0x00, 0x0c, 0x01, 0x0b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x00}

// build makes dst|src|tags...|len|body.
func build(dst MAC, tags []uint16, body []byte) []byte {
	f := append([]byte{}, dst[:]...)
	f = append(f, 0x02, 0xaa, 0, 0, 0, 1)
	for _, t := range tags {
		f = append(f, byte(t>>8), byte(t), 0x00, 0x64)
	}
	f = append(f, byte(len(body)>>8), byte(len(body)))
	return append(f, body...)
}

func withVersion(body []byte, idx int, v byte) []byte {
	b := append([]byte{}, body...)
	b[idx] = v
	return b
}

func TestClassifyBPDU(t *testing.T) {
	ipv4 := append(append([]byte{}, BridgeGroupAddress[:]...), 2, 0xaa, 0, 0, 0, 1, 0x08, 0x00, 0x42, 0x42, 0x03, 0, 0, 0, 0, 0, 0)
	tests := []struct {
		name  string
		frame []byte
		want  BPDUKind
	}{
		{"stp untagged", build(BridgeGroupAddress, nil, stpBody), STP},
		{"stp tcn", build(BridgeGroupAddress, nil, []byte{0x42, 0x42, 0x03, 0, 0, 0, 0x80}), STP},
		{"rstp", build(BridgeGroupAddress, nil, withVersion(stpBody, 5, 2)), RSTP},
		{"mstp", build(BridgeGroupAddress, nil, withVersion(stpBody, 5, 3)), MSTP},
		{"spb version 4 counts as mstp", build(BridgeGroupAddress, nil, withVersion(stpBody, 5, 4)), MSTP},
		{"provider bridge address", build(ProviderBridgeGroupAddress, nil, stpBody), STP},
		{"802.1q tagged", build(BridgeGroupAddress, []uint16{EtherTypeVLAN}, stpBody), STP},
		{"802.1ad tagged", build(BridgeGroupAddress, []uint16{EtherTypeQinQ}, stpBody), STP},
		{"q-in-q", build(BridgeGroupAddress, []uint16{EtherTypeQinQ, EtherTypeVLAN}, stpBody), STP},
		{"0x9100 tagged", build(BridgeGroupAddress, []uint16{EtherTypeQinQv1}, stpBody), STP},
		{"pvst+ untagged", build(PVSTAddress, nil, pvstBody), PVST},
		{"pvst+ tagged", build(PVSTAddress, []uint16{EtherTypeVLAN}, pvstBody), PVST},
		{"rapid pvst+", build(PVSTAddress, []uint16{EtherTypeVLAN}, withVersion(pvstBody, 10, 2)), RPVST},
		{"three tags are not looked through", build(BridgeGroupAddress, []uint16{EtherTypeQinQ, EtherTypeVLAN, EtherTypeVLAN}, stpBody), NotBPDU},
		{"wrong destination", build(MAC{0x02, 0xbb, 0, 0, 0, 2}, nil, stpBody), NotBPDU},
		{"lldp address", build(MAC{0x01, 0x80, 0xc2, 0, 0, 0x0e}, nil, stpBody), NotBPDU},
		{"ethertype instead of length", ipv4, NotBPDU},
		{"wrong llc", build(BridgeGroupAddress, nil, withVersion(stpBody, 1, 0x43)), NotBPDU},
		{"wrong llc control", build(BridgeGroupAddress, nil, withVersion(stpBody, 2, 0x13)), NotBPDU},
		{"wrong protocol id", build(BridgeGroupAddress, nil, withVersion(stpBody, 4, 1)), NotBPDU},
		{"unknown version 1", build(BridgeGroupAddress, nil, withVersion(stpBody, 5, 1)), NotBPDU},
		{"ieee llc to pvst address", build(PVSTAddress, nil, stpBody), NotBPDU},
		{"pvst snap to ieee address", build(BridgeGroupAddress, nil, pvstBody), NotBPDU},
		{"pvst wrong pid", build(PVSTAddress, nil, withVersion(pvstBody, 7, 0x0c)), NotBPDU},
		{"pvst unknown version", build(PVSTAddress, nil, withVersion(pvstBody, 10, 3)), NotBPDU},
		{"truncated llc", build(BridgeGroupAddress, nil, stpBody)[:EthernetLen+6], NotBPDU},
		{"truncated tagged", build(BridgeGroupAddress, []uint16{EtherTypeVLAN}, stpBody)[:EthernetLen+8], NotBPDU},
		{"truncated pvst", build(PVSTAddress, nil, pvstBody)[:EthernetLen+11], NotBPDU},
		{"tag with nothing after", build(BridgeGroupAddress, []uint16{EtherTypeVLAN, EtherTypeVLAN}, nil)[:22], NotBPDU},
		{"empty", nil, NotBPDU},
		{"unicast first byte", build(MAC{0x00, 0x80, 0xc2, 0, 0, 0}, nil, stpBody), NotBPDU},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClassifyBPDU(tt.frame); got != tt.want {
				t.Errorf("ClassifyBPDU = %v, want %v", got, tt.want)
			}
			if IsBPDU(tt.frame) != (tt.want != NotBPDU) {
				t.Errorf("IsBPDU disagrees with ClassifyBPDU")
			}
		})
	}
}

func TestClassifyBPDUAllocs(t *testing.T) {
	f := build(BridgeGroupAddress, []uint16{EtherTypeVLAN}, stpBody)
	if n := testing.AllocsPerRun(100, func() { ClassifyBPDU(f) }); n != 0 {
		t.Fatalf("ClassifyBPDU allocates %v times", n)
	}
}

func FuzzClassifyBPDU(f *testing.F) {
	f.Add(build(BridgeGroupAddress, nil, stpBody))
	f.Add(build(PVSTAddress, []uint16{EtherTypeVLAN}, pvstBody))
	f.Add(build(BridgeGroupAddress, []uint16{EtherTypeQinQ, EtherTypeVLAN}, stpBody))
	f.Fuzz(func(t *testing.T, b []byte) {
		k := ClassifyBPDU(b)
		if k == NotBPDU {
			return
		}
		// Whatever is counted must carry one of the group addresses and a
		// spanning-tree LLC or the PVST+ SNAP header.
		dst := MAC(b[0:6])
		if dst != BridgeGroupAddress && dst != ProviderBridgeGroupAddress && dst != PVSTAddress {
			t.Fatalf("counted %v sent to %v", k, dst)
		}
		if !bytes.Contains(b[EthernetLen:], []byte{0x42, 0x42, 0x03}) && !bytes.Contains(b[EthernetLen:], []byte{0xaa, 0xaa, 0x03}) {
			t.Fatalf("counted %v without an STP LLC header", k)
		}
	})
}

func TestParseMAC(t *testing.T) {
	want := MAC{0x00, 0x0c, 0x29, 0x79, 0x48, 0x9d}
	for _, s := range []string{"000c2979489d", "00:0c:29:79:48:9d", "00-0C-29-79-48-9D", "000c.2979.489d"} {
		got, err := ParseMAC(s)
		if err != nil || got != want {
			t.Errorf("ParseMAC(%q) = %v, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "000c2979489", "000c2979489g", "00:0c:29:79:48", "00:0c:29:79:48:9d:00:00", "zz:0c:29:79:48:9d"} {
		if _, err := ParseMAC(s); err == nil {
			t.Errorf("ParseMAC(%q) accepted", s)
		}
	}
	if want.String() != "00:0c:29:79:48:9d" || want.IsZero() || want.IsMulticast() || !BridgeGroupAddress.IsMulticast() {
		t.Errorf("MAC helpers wrong")
	}
}

func TestViews(t *testing.T) {
	b := make([]byte, EthernetLen+IPv6Len)
	e := Ethernet(b)
	e.SetDst(BridgeGroupAddress)
	e.SetSrc(PVSTAddress)
	e.SetEtherType(EtherTypeIPv6)
	if e.Dst() != BridgeGroupAddress || e.Src() != PVSTAddress || e.EtherType() != EtherTypeIPv6 {
		t.Fatalf("ethernet view: %x", b)
	}
	src, dst := netip.MustParseAddr("2001:db8:a::a"), netip.MustParseAddr("2001:db8:b::b")
	h := IPv6(b[EthernetLen:])
	h.Encode(1282, 252, 64, src, dst)
	if h.Version() != 6 || h.PayloadLength() != 1282 || h.NextHeader() != 252 || h.HopLimit() != 64 || h.Src() != src || h.Dst() != dst {
		t.Fatalf("ipv6 view: %x", b)
	}
	s16 := src.As16()
	if !h.SrcEquals(&s16) {
		t.Fatal("SrcEquals false for own source")
	}
	d16 := dst.As16()
	if h.SrcEquals(&d16) {
		t.Fatal("SrcEquals true for another address")
	}
	h.SetPayloadLength(16)
	if h.PayloadLength() != 16 || b[EthernetLen] != 0x60 {
		t.Fatalf("ipv6 view after SetPayloadLength: %x", b)
	}
}

func BenchmarkClassifyBPDU(b *testing.B) {
	for _, bc := range []struct {
		name string
		f    []byte
	}{
		{"ipv4", append(make([]byte, 12), 0x08, 0x00, 0x45, 0)},
		{"stp", build(BridgeGroupAddress, nil, stpBody)},
		{"pvst-tagged", build(PVSTAddress, []uint16{EtherTypeVLAN}, pvstBody)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				ClassifyBPDU(bc.f)
			}
		})
	}
}

func TestHostAddr(t *testing.T) {
	mac := []byte{2, 0, 0, 0, 0, 1}
	arp := append(append(append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, mac...), 0x08, 0x06,
		0, 1, 8, 0, 6, 4, 0, 1), mac...)
	arp = append(append(arp, 192, 0, 2, 7), make([]byte, 10)...)
	if a, ok := HostAddr(arp); !ok || a != netip.MustParseAddr("192.0.2.7") {
		t.Errorf("ARP request: %v %v", a, ok)
	}
	proxy := append([]byte{}, arp...)
	proxy[22] = 9 // sender hardware address is not the frame's source
	gratuitous0 := append([]byte{}, arp...)
	copy(gratuitous0[28:32], []byte{0, 0, 0, 0}) // ARP probe
	ns := make([]byte, 14+40+24)
	copy(ns[6:12], mac)
	ns[12], ns[13], ns[14], ns[20] = 0x86, 0xdd, 0x60, 58
	copy(ns[22:38], netip.MustParseAddr("fe80::1").AsSlice())
	ns[54] = 135
	if a, ok := HostAddr(ns); !ok || a != netip.MustParseAddr("fe80::1") {
		t.Errorf("NS: %v %v", a, ok)
	}
	dad := append([]byte{}, ns...)
	copy(dad[22:38], make([]byte, 16))
	na := append([]byte{}, ns...)
	na[54] = 136
	copy(na[62:78], netip.MustParseAddr("2001:db8::7").AsSlice())
	if a, ok := HostAddr(na); !ok || a != netip.MustParseAddr("2001:db8::7") {
		t.Errorf("NA: %v %v", a, ok)
	}
	echo := append([]byte{}, ns...)
	echo[54] = 128
	for name, f := range map[string][]byte{"proxy ARP": proxy, "ARP probe": gratuitous0, "DAD": dad, "echo": echo, "short": arp[:30], "runt": arp[:5]} {
		if a, ok := HostAddr(f); ok {
			t.Errorf("%s: %v", name, a)
		}
	}
	if n := testing.AllocsPerRun(100, func() { HostAddr(na); HostAddr(arp) }); n != 0 {
		t.Errorf("%.0f allocations", n)
	}
}

func FuzzHostAddr(f *testing.F) {
	f.Add(make([]byte, 78))
	f.Fuzz(func(t *testing.T, b []byte) {
		if a, ok := HostAddr(b); ok && !a.IsValid() {
			t.Fatal("ok with an invalid address")
		}
	})
}
