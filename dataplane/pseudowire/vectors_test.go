package pseudowire

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/frame/frametest"
)

// The addresses of the reference captures (frame/frametest/reference/README.md).
var (
	refULMAC   = frame.MAC{0x02, 0x70, 0x63, 0x61, 0x70, 0x01}
	refRouterA = frame.MAC{0x02, 0x00, 0x00, 0x00, 0x0f, 0x0a}
	refAddrA   = netip.MustParseAddr("2001:db8:a::a")
	refAddrB   = netip.MustParseAddr("2001:db8:b::b")
)

func refEncap(t testing.TB, m Mode) *Encapsulator {
	c := EncapConfig{Mode: m, Src: refULMAC, Dst: refULMAC}
	if m == ModeIP6 {
		c.Dst, c.SrcAddr, c.DstAddr = refRouterA, refAddrA, refAddrB
	}
	e, err := NewEncapsulator(c)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// encapAll encapsulates frames the way the daemon does: in place behind
// headroom, with a spare buffer for second pieces.
func encapAll(t *testing.T, e *Encapsulator, frames [][]byte) [][]byte {
	t.Helper()
	var out [][]byte
	for i, f := range frames {
		buf := make([]byte, 256+len(f))
		copy(buf[256:], f)
		switch e.Pieces(len(f)) {
		case 1:
			start, err := e.Encap(buf, 256, len(f))
			if err != nil {
				t.Fatalf("frame %d: %v", i+1, err)
			}
			out = append(out, buf[start:])
		case 2:
			second := make([]byte, 4096)
			n1, n2, err := e.Fragment(buf, 256, len(f), second)
			if err != nil {
				t.Fatalf("frame %d: %v", i+1, err)
			}
			out = append(out, buf[256-e.Overhead():256-e.Overhead()+n1], second[:n2])
		default:
			t.Fatalf("frame %d of %d bytes does not fit", i+1, len(f))
		}
	}
	return out
}

// sameButID compares two uplink packets byte for byte except for the
// fragment ID bits of the control word at offset cwOff, and returns the IDs.
func sameButID(t *testing.T, i int, got, want []byte, cwOff int) (gotID, wantID uint16) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("packet %d: length %d, want %d", i+1, len(got), len(want))
	}
	g, w := ReadControlWord(got[cwOff:]), ReadControlWord(want[cwOff:])
	if g&^CWIDMask != w&^CWIDMask {
		t.Fatalf("packet %d: control word %#04x, want flags of %#04x", i+1, uint16(g), uint16(w))
	}
	g2, w2 := bytes.Clone(got), bytes.Clone(want)
	PutControlWord(g2[cwOff:], 0)
	PutControlWord(w2[cwOff:], 0)
	if !bytes.Equal(g2, w2) {
		t.Fatalf("packet %d differs from the reference:\n got %x\nwant %x", i+1, g2, w2)
	}
	return g.ID(), w.ID()
}

func TestEncapMatchesReference(t *testing.T) {
	for _, tc := range []struct {
		mode     Mode
		in, want string
	}{
		{ModeEth, "eth-a-dl-in", "eth-a-ul-out"},
		{ModeIP6, "ip6-a-dl-in", "ip6-a-ul-out"},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			in, want := frametest.Reference(t, tc.in), frametest.Reference(t, tc.want)
			e := refEncap(t, tc.mode)
			got := encapAll(t, e, in)
			if len(got) != len(want) {
				t.Fatalf("%d packets, reference sent %d", len(got), len(want))
			}
			cwOff := tc.mode.Overhead() - ControlWordLen
			var ids []uint16
			for i := range got {
				id, _ := sameButID(t, i, got[i], want[i], cwOff)
				if ReadControlWord(got[i][cwOff:]).IsFragment() {
					ids = append(ids, id)
				}
			}
			// Frames 2 and 3 are split: halves share an ID, and the IDs of
			// consecutive split frames follow each other.
			if len(ids) != 4 || ids[0] != ids[1] || ids[2] != ids[3] || ids[2] != ids[0]+1 {
				t.Fatalf("fragment IDs %v", ids)
			}
		})
	}
}

func TestDecapMatchesReference(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      DecapConfig
		in, want string
	}{
		{"eth", DecapConfig{Mode: ModeEth, PeerMAC: refULMAC}, "eth-a-ul-out", "eth-b-dl-out"},
		{"ip6", DecapConfig{Mode: ModeIP6, PeerAddr: refAddrA}, "ip6-b-ul-in", "ip6-b-dl-out"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := NewDecapsulator(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			in, want := frametest.Reference(t, tc.in), frametest.Reference(t, tc.want)
			var got [][]byte
			for i, p := range in {
				buf := make([]byte, len(p), 4096)
				copy(buf, p)
				out := d.Receive(buf, uint64(i))
				for _, r := range out.Released[:out.NReleased] {
					if r.Reason != DropNone {
						t.Fatalf("packet %d: dropped %v", r.Token+1, r.Reason)
					}
				}
				if out.Frame != nil {
					got = append(got, bytes.Clone(out.Frame))
				}
			}
			if len(got) != len(want) {
				t.Fatalf("%d frames delivered, want %d", len(got), len(want))
			}
			for i := range got {
				if !bytes.Equal(got[i], want[i]) {
					t.Fatalf("frame %d:\n got %x\nwant %x", i+1, got[i], want[i])
				}
			}
			if _, ok := d.Pending(); ok {
				t.Fatal("a first half is still held")
			}
		})
	}
}

// The reference counts the fourth frame as a BPDU and nothing else.
func TestReferenceBPDUs(t *testing.T) {
	for i, f := range frametest.Reference(t, "eth-a-dl-in") {
		if got, want := frame.ClassifyBPDU(f), i == 3; (got != frame.NotBPDU) != want {
			t.Errorf("frame %d: ClassifyBPDU = %v", i+1, got)
		}
	}
}
