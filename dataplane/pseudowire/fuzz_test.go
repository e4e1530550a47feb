package pseudowire

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/frame/frametest"
)

// fuzzPackets turns fuzz input into uplink packets. Each record is a flags
// byte, a two-byte length and that many bytes (or what is left). With flag
// bit 0 the record becomes a well-formed packet from the peer, whose next
// two bytes are the control word; otherwise the bytes are sent raw. Bit 1
// gives the packet a buffer just large enough instead of 4096 bytes.
func fuzzPackets(m Mode, data []byte) [][]byte {
	var pkts [][]byte
	for len(data) >= 3 {
		flags, n := data[0], int(binary.BigEndian.Uint16(data[1:3]))%4000
		data = data[3:]
		n = min(n, len(data))
		body := data[:n]
		data = data[n:]
		var p []byte
		if flags&1 != 0 && len(body) >= 2 {
			p = packet(m, ReadControlWord(body), body[2:])
		} else {
			p = append(make([]byte, 0, 4096), body...)
		}
		if flags&2 != 0 {
			p = p[:len(p):len(p)]
		}
		pkts = append(pkts, p)
	}
	return pkts
}

func addReferenceSeeds(f *testing.F, m Mode, name string) {
	var seed []byte
	for _, p := range frametest.Reference(f, name) {
		seed = append(seed, 0, byte(len(p)>>8), byte(len(p)))
		seed = append(seed, p...)
	}
	f.Add(byte(m), seed)
}

// fuzzMode maps a fuzzer's byte to a mode: the modes' own values (1 eth, 2
// ip6, 3 ip6-tun) to themselves, anything else by its low two bits.
func fuzzMode(b byte) Mode {
	if m := Mode(b & 3); m >= ModeEth {
		return m
	}
	return ModeEth
}

// FuzzReceive feeds packet sequences through decapsulation and reassembly
// and checks that nothing panics, that no delivered frame breaks the
// limits, that every buffer comes back exactly once, and that a reassembled
// frame is exactly its first half followed by its second.
func FuzzReceive(f *testing.F) {
	f.Add(byte(ModeEth), []byte{1, 0, 20, 0x05, 0x80, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 1, 0, 4, 0x05, 0xc0, 9, 9})
	f.Add(byte(ModeIP6), []byte{1, 0, 16, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14})
	addReferenceSeeds(f, ModeEth, "eth-a-ul-out")
	addReferenceSeeds(f, ModeIP6, "ip6-b-ul-in")
	f.Add(byte(ModeIP6Tun), []byte{1, 0, 16, 0x60, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14})
	f.Fuzz(func(t *testing.T, mode byte, data []byte) {
		m := ModeEth
		peer := DecapConfig{Mode: m, PeerMAC: macA, MaxFrame: 2778}
		switch fuzzMode(mode) {
		case ModeIP6:
			m = ModeIP6
			peer = DecapConfig{Mode: m, PeerAddr: addrA, MaxFrame: 2738}
		case ModeIP6Tun:
			m = ModeIP6Tun
			peer = DecapConfig{Mode: m, PeerAddr: addrA, MaxFrame: 2658}
		}
		// The reference vectors come from the reference's own addresses.
		if len(data) > 9 && bytes.Equal(data[9:15], refULMAC[:]) {
			peer.PeerMAC, peer.PeerAddr = refULMAC, refAddrA
		}
		d, err := NewDecapsulator(peer)
		if err != nil {
			t.Fatal(err)
		}
		live := map[uint64]bool{} // tokens the decapsulator may still hold
		inner := map[uint64][]byte{}
		give := func(tok uint64, why string) {
			if !live[tok] {
				t.Fatalf("token %d %s twice or never received", tok, why)
			}
			delete(live, tok)
		}
		for i, p := range fuzzPackets(m, data) {
			tok := uint64(i)
			live[tok] = true
			if in, _, r := d.Unwrap(p); r == DropNone {
				inner[tok] = bytes.Clone(in)
			}
			out := d.Receive(p, tok)
			if out.Frame != nil {
				if len(out.Frame) > d.MaxFrame() || len(out.Frame) < frame.EthernetLen {
					t.Fatalf("delivered %d bytes, limits 14..%d", len(out.Frame), d.MaxFrame())
				}
				want := inner[tok]
				if out.FrameToken != tok {
					want = append(bytes.Clone(inner[out.FrameToken]), inner[tok]...)
				}
				if !bytes.Equal(out.Frame, want) {
					t.Fatalf("packet %d: delivered frame is not what was sent", i)
				}
				give(out.FrameToken, "delivered")
			}
			for _, r := range out.Released[:out.NReleased] {
				give(r.Token, "released")
			}
		}
		if tok, ok := d.Flush(); ok {
			give(tok, "flushed")
		}
		if len(live) != 0 {
			t.Fatalf("tokens never handed back: %v", live)
		}
	})
}

// FuzzRoundTrip checks that whatever frame fits is delivered unchanged by
// encapsulation (split if needed) followed by decapsulation, for any MTU.
func FuzzRoundTrip(f *testing.F) {
	f.Add(byte(ModeEth), uint16(1500), uint16(1600), byte(1))
	f.Add(byte(ModeIP6), uint16(1280), uint16(2476), byte(2))
	f.Add(byte(ModeIP6), uint16(9000), uint16(64), byte(3))
	f.Add(byte(ModeIP6Tun), uint16(1420), uint16(1514), byte(4))
	f.Fuzz(func(t *testing.T, mode byte, mtu, n uint16, seed byte) {
		m := fuzzMode(mode)
		s, err := SplitFor(m, int(mtu))
		if err != nil {
			return
		}
		e, err := NewEncapsulator(EncapConfig{Mode: m, MTU: int(mtu), Src: macA, Dst: macB, SrcAddr: addrA, DstAddr: addrB})
		if err != nil {
			t.Fatal(err)
		}
		d, _ := NewDecapsulator(DecapConfig{Mode: m, PeerMAC: macA, PeerAddr: addrA, MaxFrame: s.Max})
		size := int(n)%(s.Max+100) + frame.EthernetLen
		f := innerFrame(size, seed)
		buf := make([]byte, 256+size)
		copy(buf[256:], f)
		var got []byte
		switch e.Pieces(size) {
		case 0:
			if _, _, err := e.Fragment(buf, 256, size, make([]byte, 20000)); err != ErrTooBig {
				t.Fatalf("%d bytes over max %d: %v", size, s.Max, err)
			}
			return
		case 1:
			start, err := e.Encap(buf, 256, size)
			if err != nil {
				t.Fatal(err)
			}
			if len(buf)-start > int(mtu)+m.linkHeader() {
				t.Fatalf("packet of %d bytes exceeds MTU %d", len(buf)-start, mtu)
			}
			got = d.Receive(buf[start:], 0).Frame
		case 2:
			second := make([]byte, 20000)
			n1, n2, err := e.Fragment(buf, 256, size, second)
			if err != nil {
				t.Fatal(err)
			}
			if n1 > int(mtu)+m.linkHeader() || n2 > int(mtu)+m.linkHeader() {
				t.Fatalf("pieces of %d and %d bytes exceed MTU %d", n1, n2, mtu)
			}
			start := 256 - e.Overhead()
			if out := d.Receive(buf[start:start+n1], 0); out.Frame != nil || out.NReleased != 0 {
				t.Fatalf("first half: %+v", out)
			}
			got = d.Receive(second[:n2], 1).Frame
		}
		if !bytes.Equal(got, f) {
			t.Fatalf("%d-byte frame came back as %d bytes", size, len(got))
		}
	})
}
