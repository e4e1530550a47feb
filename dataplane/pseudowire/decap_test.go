package pseudowire

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/pwgate/pwgate/dataplane/frame"
)

var (
	addrA = netip.MustParseAddr("2001:db8:a::a")
	addrB = netip.MustParseAddr("2001:db8:b::b")
	addrX = netip.MustParseAddr("2001:db8:a::bad")
)

// innerFrame returns an n-byte Ethernet frame whose bytes depend on seed.
func innerFrame(n int, seed byte) []byte {
	f := make([]byte, n)
	for i := range f {
		f[i] = byte(i) + seed
	}
	return f
}

// packet builds what peer A sends to B: outer headers, cw, inner bytes, in
// a buffer with room to reassemble.
func packet(m Mode, cw ControlWord, inner []byte) []byte {
	ov := m.Overhead()
	b := make([]byte, ov+len(inner), 4096)
	if m != ModeIP6Tun {
		eth := frame.Ethernet(b)
		eth.SetDst(macB)
		eth.SetSrc(macA)
		eth.SetEtherType(EtherType)
	}
	if m.IsIP6() {
		if m == ModeIP6 {
			frame.Ethernet(b).SetEtherType(frame.EtherTypeIPv6)
		}
		frame.IPv6(b[m.ipOffset():]).Encode(uint16(ControlWordLen+len(inner)), IPProto, 63, addrA, addrB)
	}
	PutControlWord(b[ov-ControlWordLen:], cw)
	copy(b[ov:], inner)
	return b
}

func edit(b []byte, f func([]byte)) []byte { f(b); return b }

type step struct {
	pkt      []byte
	deliver  []byte     // frame expected, nil for none
	fromTok  uint64     // token expected to hold the delivered frame
	released []Released // expected, in order
}

func rel(tok uint64, r DropReason) Released { return Released{tok, r} }

func decapCases(m Mode) map[string][]step {
	ov := m.Overhead()
	whole := innerFrame(100, 1)
	big := innerFrame(1600, 2)
	first, second := big[:1280], big[1280:]
	cases := map[string][]step{
		"whole frame": {{pkt: packet(m, 0, whole), deliver: whole, fromTok: 0}},
		"truncated before the control word": {
			{pkt: packet(m, 0, whole)[:ov-1], released: []Released{rel(0, DropTruncated)}}},
		"truncated outer ethernet": {
			{pkt: packet(m, 0, whole)[:10], released: []Released{rel(0, DropTruncated)}}},
		"empty": {{pkt: []byte{}, released: []Released{rel(0, DropTruncated)}}},
		"reserved control word: second bit alone": {
			{pkt: packet(m, 0x4002, whole), released: []Released{rel(0, DropBadControlWord)}}},
		"keepalive control word on a frame": {
			{pkt: packet(m, CWKeepalive, whole), released: []Released{rel(0, DropBadKeepalive)}}},
		"keepalive between halves leaves the first held": {
			{pkt: packet(m, FirstHalf(3), first)},
			{pkt: packet(m, CWKeepalive, keepaliveBody(7)), released: []Released{rel(1, DropNone)}},
			{pkt: packet(m, SecondHalf(3), second), deliver: big, fromTok: 0, released: []Released{rel(2, DropNone)}}},
		"reserved control word: id without fragment bit": {
			{pkt: packet(m, 0x0001, whole), released: []Released{rel(0, DropBadControlWord)}}},
		"runt whole frame": {
			{pkt: packet(m, 0, whole[:13]), released: []Released{rel(0, DropRunt)}}},
		"runt first half": {
			{pkt: packet(m, FirstHalf(1), whole[:10]), released: []Released{rel(0, DropRunt)}}},
		"two halves": {
			{pkt: packet(m, FirstHalf(7), first)},
			{pkt: packet(m, SecondHalf(7), second), deliver: big, fromTok: 0, released: []Released{rel(1, DropNone)}}},
		"second half without first": {
			{pkt: packet(m, SecondHalf(7), second), released: []Released{rel(0, DropLoneSecond)}}},
		"second half twice": {
			{pkt: packet(m, FirstHalf(7), first)},
			{pkt: packet(m, SecondHalf(7), second), deliver: big, fromTok: 0, released: []Released{rel(1, DropNone)}},
			{pkt: packet(m, SecondHalf(7), second), released: []Released{rel(2, DropLoneSecond)}}},
		"mismatched ids drop both": {
			{pkt: packet(m, FirstHalf(7), first)},
			{pkt: packet(m, SecondHalf(8), second), released: []Released{rel(0, DropIDMismatch), rel(1, DropIDMismatch)}},
			{pkt: packet(m, SecondHalf(7), second), released: []Released{rel(2, DropLoneSecond)}}},
		"new first half replaces the held one": {
			{pkt: packet(m, FirstHalf(7), first)},
			{pkt: packet(m, FirstHalf(8), first), released: []Released{rel(0, DropReplaced)}},
			{pkt: packet(m, SecondHalf(8), second), deliver: big, fromTok: 1, released: []Released{rel(2, DropNone)}}},
		"first half then whole frame keeps the first half (reference)": {
			{pkt: packet(m, FirstHalf(7), first)},
			{pkt: packet(m, 0, whole), deliver: whole, fromTok: 1},
			{pkt: packet(m, SecondHalf(7), second), deliver: big, fromTok: 0, released: []Released{rel(2, DropNone)}}},
		"id zero after wrap": {
			{pkt: packet(m, FirstHalf(0), first)},
			{pkt: packet(m, SecondHalf(0), second), deliver: big, fromTok: 0, released: []Released{rel(1, DropNone)}}},
		"highest id": {
			{pkt: packet(m, FirstHalf(0x3fff), first)},
			{pkt: packet(m, SecondHalf(0x3fff), second), deliver: big, fromTok: 0, released: []Released{rel(1, DropNone)}}},
		"empty second half": {
			{pkt: packet(m, FirstHalf(3), first)},
			{pkt: packet(m, SecondHalf(3), nil), deliver: first, fromTok: 0, released: []Released{rel(1, DropNone)}}},
		"reassembly past the buffer": {
			{pkt: packet(m, FirstHalf(3), first)[: ov+1280 : ov+1300]},
			{pkt: packet(m, SecondHalf(3), second), released: []Released{rel(0, DropOversize), rel(1, DropOversize)}}},
		"reassembly past the maximum": {
			{pkt: packet(m, FirstHalf(3), innerFrame(1280, 0))},
			{pkt: packet(m, SecondHalf(3), innerFrame(1600, 0)), released: []Released{rel(0, DropOversize), rel(1, DropOversize)}}},
	}
	if m == ModeEth {
		cases["wrong ethertype"] = []step{{pkt: edit(packet(m, 0, whole), func(b []byte) { b[12], b[13] = 0x08, 0x00 }),
			released: []Released{rel(0, DropNotPseudowire)}}}
		cases["stranger mac"] = []step{{pkt: edit(packet(m, 0, whole), func(b []byte) { b[11] = 0x99 }),
			released: []Released{rel(0, DropWrongPeer)}}}
		return cases
	}
	ip := m.ipOffset()
	if m == ModeIP6 {
		cases["wrong ethertype"] = []step{{pkt: edit(packet(m, 0, whole), func(b []byte) { b[12], b[13] = 0x96, 0xfc }),
			released: []Released{rel(0, DropNotPseudowire)}}}
	} else {
		delete(cases, "truncated outer ethernet")
	}
	cases["wrong next header"] = []step{{pkt: edit(packet(m, 0, whole), func(b []byte) { b[ip+6] = 17 }),
		released: []Released{rel(0, DropNotPseudowire)}}}
	cases["ip version 4"] = []step{{pkt: edit(packet(m, 0, whole), func(b []byte) { b[ip] = 0x40 }),
		released: []Released{rel(0, DropNotPseudowire)}}}
	cases["stranger address"] = []step{{pkt: edit(packet(m, 0, whole), func(b []byte) { a := addrX.As16(); copy(b[ip+8:], a[:]) }),
		released: []Released{rel(0, DropWrongPeer)}}}
	setPL := func(n int) func([]byte) { return func(b []byte) { binary.BigEndian.PutUint16(b[ip+4:], uint16(n)) } }
	cases["payload length larger than the frame"] = []step{{pkt: edit(packet(m, 0, whole), setPL(2+len(whole)+1)),
		released: []Released{rel(0, DropBadLength)}}}
	cases["payload length without a control word"] = []step{{pkt: edit(packet(m, 0, whole), setPL(1)),
		released: []Released{rel(0, DropBadLength)}}}
	// Bytes after the IPv6 payload are link-layer padding: the frame ends
	// where the payload length says.
	cases["payload length smaller than the frame"] = []step{{pkt: edit(packet(m, 0, whole), setPL(2+60)),
		deliver: whole[:60], fromTok: 0}}
	cases["payload length smaller than an ethernet header"] = []step{{pkt: edit(packet(m, 0, whole), setPL(2+13)),
		released: []Released{rel(0, DropRunt)}}}
	return cases
}

func TestDecapTable(t *testing.T) {
	for _, m := range []Mode{ModeEth, ModeIP6, ModeIP6Tun} {
		for name, steps := range decapCases(m) {
			t.Run(m.String()+"/"+name, func(t *testing.T) {
				d, err := NewDecapsulator(DecapConfig{Mode: m, PeerMAC: macA, PeerAddr: addrA, MaxFrame: 2738})
				if err != nil {
					t.Fatal(err)
				}
				for i, s := range steps {
					out := d.Receive(s.pkt, uint64(i))
					if !bytes.Equal(out.Frame, s.deliver) || (s.deliver != nil && out.FrameToken != s.fromTok) {
						t.Fatalf("step %d: delivered %d bytes from %d, want %d bytes from %d", i, len(out.Frame), out.FrameToken, len(s.deliver), s.fromTok)
					}
					if got := fmt.Sprint(out.Released[:out.NReleased]); got != fmt.Sprint(s.released) {
						t.Fatalf("step %d: released %s, want %s", i, got, fmt.Sprint(s.released))
					}
				}
			})
		}
	}
}

func TestDecapWholeOversize(t *testing.T) {
	d, _ := NewDecapsulator(DecapConfig{Mode: ModeEth, PeerMAC: macA, MaxFrame: 100})
	if out := d.Receive(packet(ModeEth, 0, innerFrame(101, 0)), 9); out.Frame != nil || out.Released[0] != rel(9, DropOversize) {
		t.Fatalf("oversize whole frame: %+v", out)
	}
	if out := d.Receive(packet(ModeEth, 0, innerFrame(100, 0)), 9); len(out.Frame) != 100 {
		t.Fatalf("frame of exactly MaxFrame: %+v", out)
	}
}

func TestFlushAndPending(t *testing.T) {
	d, _ := NewDecapsulator(DecapConfig{Mode: ModeEth, PeerMAC: macA})
	if d.MaxFrame() != 2778 {
		t.Errorf("default MaxFrame %d, want the reference's 2778", d.MaxFrame())
	}
	if _, ok := d.Flush(); ok {
		t.Fatal("Flush of an empty decapsulator returned a token")
	}
	d.Receive(packet(ModeEth, FirstHalf(1), innerFrame(1280, 0)), 42)
	if tok, ok := d.Pending(); !ok || tok != 42 {
		t.Fatalf("Pending = %d, %v", tok, ok)
	}
	if tok, ok := d.Flush(); !ok || tok != 42 {
		t.Fatalf("Flush = %d, %v", tok, ok)
	}
	if out := d.Receive(packet(ModeEth, SecondHalf(1), innerFrame(300, 0)), 43); out.Released[0] != rel(43, DropLoneSecond) {
		t.Fatalf("second half after Flush: %+v", out)
	}
}

func TestDropReasonNames(t *testing.T) {
	seen := map[string]bool{}
	for r := DropNone; r < NumDropReasons; r++ {
		if n := r.String(); n == "" || seen[n] {
			t.Errorf("reason %d has name %q", r, n)
		} else {
			seen[n] = true
		}
	}
	if NumDropReasons.String() != "drop(12)" {
		t.Errorf("out-of-range reason prints %q", NumDropReasons.String())
	}
}
