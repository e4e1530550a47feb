package vxlan

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/pseudowire"
)

var (
	macA   = frame.MAC{2, 0, 0, 0, 0xa, 1}
	router = frame.MAC{2, 0, 0, 0, 0xf, 1}
	a6     = netip.MustParseAddr("2001:db8:a::a")
	b6     = netip.MustParseAddr("2001:db8:b::b")
	a4     = netip.MustParseAddr("192.0.2.1")
	b4     = netip.MustParseAddr("198.51.100.2")
)

func innerFrame(n int, seed byte) []byte {
	f := make([]byte, n)
	copy(f, []byte{2, 0xbb, 0, 0, 0, 2, 2, 0xaa, 0, 0, 0, seed, 0x88, 0xb5})
	for i := frame.EthernetLen; i < n; i++ {
		f[i] = byte(i) + seed
	}
	return f
}

// withHeadroom puts f 256 bytes into a buffer with room after it.
func withHeadroom(f []byte) []byte {
	b := make([]byte, 256+len(f), 4096)
	copy(b[256:], f)
	return b
}

// decode checks a packet with gopacket: an independent reading of the
// headers, UDP checksum included.
func decode(t *testing.T, p []byte, v6 bool) *layers.VXLAN {
	t.Helper()
	// The inner frame (a local experimental EtherType) is not gopacket's
	// business: only the outer layers must decode.
	pkt := gopacket.NewPacket(p, layers.LayerTypeEthernet, gopacket.Default)
	udp, _ := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP)
	vx, _ := pkt.Layer(layers.LayerTypeVXLAN).(*layers.VXLAN)
	if udp == nil || vx == nil || udp.DstPort != Port {
		t.Fatalf("not VXLAN: %v", pkt)
	}
	if v6 {
		ip := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		// Recompute the checksum the way gopacket does and compare.
		want := udp.Checksum
		udp.SetNetworkLayerForChecksum(ip)
		buf := gopacket.NewSerializeBuffer()
		if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{ComputeChecksums: true}, udp, gopacket.Payload(udp.Payload)); err != nil {
			t.Fatal(err)
		}
		if got := binary.BigEndian.Uint16(buf.Bytes()[6:]); want != 0 && got != want {
			t.Fatalf("UDP checksum %04x, gopacket computes %04x", want, got)
		}
	} else {
		ip := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if frame.Fold(frame.Checksum(0, p[14:34])) != 0 || ip.TTL != TTL || ip.Flags&layers.IPv4DontFragment == 0 {
			t.Fatalf("IPv4 header %+v", ip)
		}
		if udp.Checksum != 0 {
			t.Fatalf("IPv4 UDP checksum %04x, want 0", udp.Checksum)
		}
	}
	return vx
}

func TestRoundTrip(t *testing.T) {
	for _, tt := range []struct {
		name       string
		local, dst netip.Addr
		zero       bool
	}{{"ipv6", a6, b6, false}, {"ipv6 zero checksum", a6, b6, true}, {"ipv4", a4, b4, false}} {
		t.Run(tt.name, func(t *testing.T) {
			e, err := NewEncapsulator(EncapConfig{Src: macA, Local: tt.local, MTU: 1500, ZeroChecksum6: tt.zero})
			if err != nil {
				t.Fatal(err)
			}
			d, _ := NewDecapsulator(tt.dst, tt.zero, false)
			v := &VTEP{Addr: tt.dst, NextHop: router}
			for _, n := range []int{14, 60, 1000, e.Whole()} {
				f := innerFrame(n, 7)
				buf := withHeadroom(f)
				start, err := e.Encap(buf, 256, n, v, 101)
				if err != nil {
					t.Fatal(err)
				}
				pkt := buf[start:]
				if len(pkt)-frame.EthernetLen > 1500 {
					t.Fatalf("%d-byte frame: %d-byte IP packet", n, len(pkt)-frame.EthernetLen)
				}
				vx := decode(t, pkt, tt.local.Is6())
				if vx.VNI != 101 || !vx.ValidIDFlag {
					t.Fatalf("VXLAN %+v", vx)
				}
				got, why := d.Decap(pkt)
				if why != DropNone || got.VNI != 101 || got.Src != tt.local || !bytes.Equal(got.Inner, f) || got.Piece {
					t.Fatalf("%d bytes: decap %v %+v", n, why, got)
				}
			}
			if _, err := e.Encap(withHeadroom(innerFrame(e.Whole()+1, 1)), 256, e.Whole()+1, v, 101); err != ErrTooBig {
				t.Fatalf("one byte over: %v", err)
			}
		})
	}
}

// TestSplit: between pwgate VTEPs a 1514-byte frame crosses a 1500-byte
// underlay in two pieces; never to another VTEP.
func TestSplit(t *testing.T) {
	e, _ := NewEncapsulator(EncapConfig{Src: macA, Local: a6, MTU: 1500, Split: true})
	d, _ := NewDecapsulator(b6, false, false)
	pw := &VTEP{Addr: b6, NextHop: router, Pwgate: true}
	other := &VTEP{Addr: b6, NextHop: router}
	if e.Pieces(1514, other) != 0 || e.Pieces(1514, pw) != 2 || e.Pieces(1444, pw) != 1 || e.Whole() != 1444 {
		t.Fatalf("pieces: whole %d", e.Whole())
	}
	f := innerFrame(1514, 3)
	buf := withHeadroom(f)
	second := make([]byte, 4096)
	n1, n2, err := e.Fragment(buf, 256, 1514, second, pw, 7)
	if err != nil {
		t.Fatal(err)
	}
	first := buf[256-e.Overhead() : 256-e.Overhead()+n1]
	for _, p := range [][]byte{first, second[:n2]} {
		decode(t, p, true)
		if len(p)-frame.EthernetLen > 1500 {
			t.Fatalf("piece of %d bytes", len(p))
		}
	}
	r1, w1 := d.Decap(first)
	r2, w2 := d.Decap(second[:n2])
	if w1 != DropNone || w2 != DropNone || !r1.Piece || !r2.Piece || r1.CW.IsSecond() || !r2.CW.IsSecond() || r1.CW.ID() != r2.CW.ID() {
		t.Fatalf("pieces: %v %+v, %v %+v", w1, r1.CW, w2, r2.CW)
	}
	if !bytes.Equal(append(append([]byte(nil), r1.Inner...), r2.Inner...), f) {
		t.Fatal("pieces do not add up to the frame")
	}
	if _, _, err := e.Fragment(withHeadroom(f), 256, 1514, second, other, 7); err != ErrTooBig {
		t.Fatalf("split toward a non-pwgate VTEP: %v", err)
	}
	if p := pseudowire.ControlWord(binary.LittleEndian.Uint16(first[14+40+8+1:])); !p.IsFragment() {
		t.Fatalf("control word %x", p)
	}
}

func TestCopy(t *testing.T) {
	e, _ := NewEncapsulator(EncapConfig{Src: macA, Local: a6, MTU: 1500})
	d, _ := NewDecapsulator(b6, false, false)
	f := innerFrame(200, 9)
	dst := make([]byte, 4096)
	n, err := e.Copy(dst, f, &VTEP{Addr: b6, NextHop: router}, 5)
	if err != nil {
		t.Fatal(err)
	}
	decode(t, dst[:n], true)
	if r, why := d.Decap(dst[:n]); why != DropNone || !bytes.Equal(r.Inner, f) || r.VNI != 5 {
		t.Fatalf("copy: %v %+v", why, r)
	}
}

func TestDecapDrops(t *testing.T) {
	e, _ := NewEncapsulator(EncapConfig{Src: macA, Local: a6, MTU: 1500})
	e4, _ := NewEncapsulator(EncapConfig{Src: macA, Local: a4, MTU: 1500})
	d, _ := NewDecapsulator(b6, false, false)
	d4, _ := NewDecapsulator(b4, false, false)
	good := func() []byte {
		buf := withHeadroom(innerFrame(100, 1))
		start, _ := e.Encap(buf, 256, 100, &VTEP{Addr: b6, NextHop: router}, 101)
		return buf[start:]
	}
	good4 := func() []byte {
		buf := withHeadroom(innerFrame(100, 1))
		start, _ := e4.Encap(buf, 256, 100, &VTEP{Addr: b4, NextHop: router}, 101)
		return buf[start:]
	}
	edit := func(p []byte, f func([]byte)) []byte { f(p); return p }
	for _, tt := range []struct {
		name string
		d    *Decapsulator
		pkt  []byte
		want DropReason
	}{
		{"empty", d, nil, DropTruncated},
		{"short", d, good()[:60], DropTruncated},
		{"ipv4 to an ipv6 vtep", d, good4(), DropNotVXLAN},
		{"tcp", d, edit(good(), func(p []byte) { p[14+6] = 6 }), DropNotVXLAN},
		{"other port", d, edit(good(), func(p []byte) { p[54+3] = 0x16 }), DropNotVXLAN},
		{"not for us", d, edit(good(), func(p []byte) { p[14+39] ^= 1 }), DropNotForUs},
		{"payload length too long", d, edit(good(), func(p []byte) { binary.BigEndian.PutUint16(p[18:], 2000) }), DropBadLength},
		{"udp length wrong", d, edit(good(), func(p []byte) { binary.BigEndian.PutUint16(p[58:], 99) }), DropBadLength},
		{"bad checksum", d, edit(good(), func(p []byte) { p[len(p)-1] ^= 0xff }), DropBadChecksum},
		{"zero checksum not accepted", d, edit(good(), func(p []byte) { p[60], p[61] = 0, 0 }), DropBadChecksum},
		{"no I flag", d, edit(good(), func(p []byte) {
			p[62] = 0
			p[60], p[61] = 0, 0
			c := frame.Fold(frame.Checksum(frame.Checksum(0, p[22:54])+uint64(len(p)-54)+17, p[54:]))
			binary.BigEndian.PutUint16(p[60:], c)
		}), DropBadFlags},
		{"ipv4 fragment", d4, edit(good4(), func(p []byte) { p[20] |= 0x20 }), DropNotVXLAN},
		{"ipv4 options", d4, edit(good4(), func(p []byte) { p[14] = 0x46 }), DropNotVXLAN},
		{"ipv4 not for us", d4, edit(good4(), func(p []byte) { p[33] ^= 1 }), DropNotForUs},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, why := tt.d.Decap(tt.pkt); why != tt.want {
				t.Fatalf("%v, want %v", why, tt.want)
			}
		})
	}
	// Link-layer padding after the IP packet is not part of it.
	p := append(good(), 0, 0, 0, 0)
	if r, why := d.Decap(p); why != DropNone || len(r.Inner) != 100 {
		t.Fatalf("padded: %v %d", why, len(r.Inner))
	}
}

func FuzzDecap(f *testing.F) {
	e, _ := NewEncapsulator(EncapConfig{Src: macA, Local: a6, MTU: 1500})
	buf := withHeadroom(innerFrame(100, 1))
	start, _ := e.Encap(buf, 256, 100, &VTEP{Addr: b6, NextHop: router}, 101)
	f.Add(buf[start:])
	f.Add([]byte{1, 2, 3})
	d, _ := NewDecapsulator(b6, true, false)
	f.Fuzz(func(t *testing.T, p []byte) {
		r, why := d.Decap(p)
		if why == DropNone && (len(r.Inner) > len(p) || r.VNI > MaxVNI) {
			t.Fatalf("accepted %+v from %d bytes", r, len(p))
		}
	})
}

func TestZeroAllocs(t *testing.T) {
	e, _ := NewEncapsulator(EncapConfig{Src: macA, Local: a6, MTU: 1500, Split: true})
	d, _ := NewDecapsulator(b6, false, false)
	v := &VTEP{Addr: b6, NextHop: router, Pwgate: true}
	buf := withHeadroom(innerFrame(1514, 1))
	second := make([]byte, 4096)
	if a := testing.AllocsPerRun(100, func() {
		start, _ := e.Encap(buf, 256, 1000, v, 101)
		d.Decap(buf[start : 256+1000])
		e.Fragment(buf, 256, 1514, second, v, 101)
		e.Copy(second, buf[256:256+100], v, 9)
	}); a != 0 {
		t.Fatalf("%v allocations", a)
	}
}

func BenchmarkEncap(b *testing.B) {
	for _, n := range []int{64, 1400} {
		for _, local := range []netip.Addr{a6, a4} {
			e, _ := NewEncapsulator(EncapConfig{Src: macA, Local: local, MTU: 1500})
			v := &VTEP{Addr: b6, NextHop: router}
			if local.Is4() {
				v.Addr = b4
			}
			buf := withHeadroom(innerFrame(n, 1))
			b.Run(fmtName(local, n), func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					e.Encap(buf, 256, n, v, 101)
				}
			})
		}
	}
}

func BenchmarkDecap(b *testing.B) {
	for _, n := range []int{64, 1400} {
		e, _ := NewEncapsulator(EncapConfig{Src: macA, Local: a6, MTU: 1500})
		d, _ := NewDecapsulator(b6, false, false)
		buf := withHeadroom(innerFrame(n, 1))
		start, _ := e.Encap(buf, 256, n, &VTEP{Addr: b6, NextHop: router}, 101)
		b.Run(fmtName(a6, n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				d.Decap(buf[start:])
			}
		})
	}
}

func fmtName(a netip.Addr, n int) string {
	fam := "ipv6"
	if a.Is4() {
		fam = "ipv4"
	}
	return fam + "/" + itoa(n)
}

func itoa(n int) string {
	return string([]byte{byte('0' + n/1000%10), byte('0' + n/100%10), byte('0' + n/10%10), byte('0' + n%10)})
}

// TestL3: without the outer Ethernet header (inside WireGuard) the packet
// starts at the IP header, frames get 14 bytes more room, and splitting
// still works.
func TestL3(t *testing.T) {
	for _, tt := range []struct{ local, dst netip.Addr }{{a6, b6}, {a4, b4}} {
		e, err := NewEncapsulator(EncapConfig{Local: tt.local, MTU: 1420, L3: true, Split: true})
		if err != nil {
			t.Fatal(err)
		}
		eth, _ := NewEncapsulator(EncapConfig{Local: tt.local, MTU: 1420})
		if e.Overhead() != eth.Overhead()-frame.EthernetLen || e.Whole() != eth.Whole() || !e.L3() {
			t.Fatalf("overhead %d (Ethernet %d), whole %d (%d)", e.Overhead(), eth.Overhead(), e.Whole(), eth.Whole())
		}
		d, _ := NewDecapsulator(tt.dst, false, true)
		v := &VTEP{Addr: tt.dst, Pwgate: true}
		f := innerFrame(600, 3)
		buf := withHeadroom(f)
		start, err := e.Encap(buf, 256, len(f), v, 7)
		if err != nil {
			t.Fatal(err)
		}
		pkt := buf[start:]
		if pkt[0]>>4 != map[bool]byte{true: 4, false: 6}[tt.local.Is4()] || len(pkt) != e.Overhead()+len(f) {
			t.Fatalf("packet starts %x, %d bytes", pkt[:4], len(pkt))
		}
		got, why := d.Decap(pkt)
		if why != DropNone || got.VNI != 7 || !bytes.Equal(got.Inner, f) {
			t.Fatalf("decap %v %+v", why, got)
		}
		// Two pieces for a frame over the tunnel's MTU.
		big := innerFrame(1514, 9)
		buf = withHeadroom(big)
		second := make([]byte, 4096)
		n1, n2, err := e.Fragment(buf, 256, len(big), second, v, 7)
		if err != nil {
			t.Fatal(err)
		}
		p1, _ := d.Decap(buf[256-e.Overhead() : 256-e.Overhead()+n1])
		p2, _ := d.Decap(second[:n2])
		if !p1.Piece || !p2.Piece || !bytes.Equal(append(append([]byte{}, p1.Inner...), p2.Inner...), big) {
			t.Fatal("pieces do not make the frame")
		}
		// An Ethernet-framed packet is not one.
		if _, why := d.Decap(append([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x86, 0xdd}, pkt...)); why == DropNone {
			t.Error("a packet behind an Ethernet header accepted as L3")
		}
	}
}

// TestWrongFamilyVTEP: a table naming a VTEP of the other IP version (or
// none) is refused with ErrFamily by every way of sending, never a panic
// (netip's As4 panics on an IPv6 address: issue 21's remote crash).
func TestWrongFamilyVTEP(t *testing.T) {
	for _, tc := range []struct {
		name  string
		local netip.Addr
		vtep  netip.Addr
	}{
		{"ipv6 vtep, ipv4 local", a4, b6},
		{"ipv4 vtep, ipv6 local", a6, b4},
		{"mapped ipv4 vtep, ipv6 local", a6, netip.AddrFrom16(b4.As16())},
		{"no address, ipv4 local", a4, netip.Addr{}},
		{"no address, ipv6 local", a6, netip.Addr{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := NewEncapsulator(EncapConfig{Src: macA, Local: tc.local, MTU: 1500, Split: true})
			if err != nil {
				t.Fatal(err)
			}
			v := &VTEP{Addr: tc.vtep, NextHop: router, Up: true, Pwgate: true}
			f := innerFrame(200, 1)
			if _, err := e.Encap(withHeadroom(f), 256, len(f), v, 5); err != ErrFamily {
				t.Errorf("Encap: %v, want ErrFamily", err)
			}
			if _, err := e.Copy(make([]byte, 4096), f, v, 5); err != ErrFamily {
				t.Errorf("Copy: %v, want ErrFamily", err)
			}
			big := innerFrame(1514, 1)
			if _, _, err := e.Fragment(withHeadroom(big), 256, len(big), make([]byte, 4096), v, 5); err != ErrFamily {
				t.Errorf("Fragment: %v, want ErrFamily", err)
			}
		})
	}
}
