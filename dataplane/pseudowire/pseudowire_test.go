package pseudowire

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/pwgate/pwgate/dataplane/frame"
)

var (
	macA = frame.MAC{0x02, 0x00, 0x00, 0x00, 0x00, 0x0a}
	macB = frame.MAC{0x02, 0x00, 0x00, 0x00, 0x00, 0x0b}
)

func TestControlWord(t *testing.T) {
	tests := []struct {
		cw                      ControlWord
		valid, fragment, second bool
		id                      uint16
	}{
		{0, true, false, false, 0},
		{FirstHalf(8), true, true, false, 8},
		{SecondHalf(8), true, true, true, 8},
		{FirstHalf(0x3fff), true, true, false, 0x3fff},
		{FirstHalf(0x4001), true, true, false, 1}, // IDs are 14 bits
		{0x0005, false, false, false, 5},          // ID without the fragment bit
		{0x4000, false, false, true, 0},           // second-half bit alone
		{0x4007, false, false, true, 7},
	}
	for _, tt := range tests {
		if tt.cw.Valid() != tt.valid || tt.cw.IsFragment() != tt.fragment || tt.cw.IsSecond() != tt.second || tt.cw.ID() != tt.id {
			t.Errorf("%#04x: valid=%v fragment=%v second=%v id=%d", uint16(tt.cw), tt.cw.Valid(), tt.cw.IsFragment(), tt.cw.IsSecond(), tt.cw.ID())
		}
	}
	// Little-endian on the wire: first half of ID 8 is 08 80, second 08 c0.
	b := make([]byte, 2)
	PutControlWord(b, FirstHalf(8))
	if !bytes.Equal(b, []byte{0x08, 0x80}) {
		t.Errorf("first half of 8 = % x", b)
	}
	PutControlWord(b, SecondHalf(8))
	if !bytes.Equal(b, []byte{0x08, 0xc0}) || ReadControlWord(b) != SecondHalf(8) {
		t.Errorf("second half of 8 = % x", b)
	}
}

func TestSplitFor(t *testing.T) {
	tests := []struct {
		mode                   Mode
		mtu, whole, first, max int
	}{
		{ModeEth, 1500, 1498, 1280, 2778}, // the reference
		{ModeIP6, 1500, 1458, 1280, 2738}, // the reference
		{ModeEth, 1280, 1278, 1278, 2556},
		{ModeIP6, 1280, 1238, 1238, 2476}, // IPv6 minimum MTU: first piece shrinks
		{ModeIP6, 1322, 1280, 1280, 2560}, // smallest MTU that keeps the 1280 split
		{ModeIP6, 9000, 8958, 1280, 10238},
		{ModeIP6Tun, 1420, 1378, 1280, 2658}, // WireGuard over IPv6 on a 1500-byte uplink
		{ModeIP6Tun, 1440, 1398, 1280, 2678}, // WireGuard over IPv4
		{ModeIP6Tun, 1280, 1238, 1238, 2476},
	}
	for _, tt := range tests {
		s, err := SplitFor(tt.mode, tt.mtu)
		if err != nil || s.Whole != tt.whole || s.First != tt.first || s.Max != tt.max {
			t.Errorf("SplitFor(%v, %d) = %+v, %v", tt.mode, tt.mtu, s, err)
		}
		if s.Pieces(tt.whole) != 1 || s.Pieces(tt.whole+1) != 2 || s.Pieces(tt.max) != 2 || s.Pieces(tt.max+1) != 0 {
			t.Errorf("%v/%d: Pieces boundaries wrong", tt.mode, tt.mtu)
		}
	}
	for _, mtu := range []int{0, 1279, 9217} {
		if _, err := SplitFor(ModeEth, mtu); err == nil {
			t.Errorf("SplitFor accepted MTU %d", mtu)
		}
	}
	if _, err := SplitFor(0, 1500); err == nil {
		t.Error("SplitFor accepted mode 0")
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := NewEncapsulator(EncapConfig{Mode: ModeIP6}); err == nil {
		t.Error("ip6 encapsulator without addresses accepted")
	}
	if _, err := NewEncapsulator(EncapConfig{Mode: ModeIP6, SrcAddr: refAddrA, DstAddr: netip.MustParseAddr("192.0.2.1")}); err == nil {
		t.Error("ip6 encapsulator with an IPv4 peer accepted")
	}
	if _, err := NewEncapsulator(EncapConfig{Mode: ModeEth, MTU: 100}); err == nil {
		t.Error("MTU 100 accepted")
	}
	if _, err := NewDecapsulator(DecapConfig{Mode: ModeIP6, PeerAddr: netip.MustParseAddr("::ffff:192.0.2.1")}); err == nil {
		t.Error("ip6 decapsulator with a v4-mapped peer accepted")
	}
	if _, err := NewDecapsulator(DecapConfig{Mode: 7}); err == nil {
		t.Error("mode 7 accepted")
	}
	if _, err := NewDecapsulator(DecapConfig{Mode: ModeEth, MaxFrame: 10}); err == nil {
		t.Error("MaxFrame 10 accepted")
	}
	// A failed Configure leaves the old configuration in force.
	e := refEncap(t, ModeEth)
	if err := e.Configure(EncapConfig{Mode: ModeIP6}); err == nil || e.Overhead() != EthOverhead {
		t.Errorf("failed Configure changed the encapsulator: %v", err)
	}
}

func TestEncapErrors(t *testing.T) {
	e := refEncap(t, ModeEth)
	buf := make([]byte, 4096)
	second := make([]byte, 4096)
	tests := []struct {
		name string
		off  int
		n    int
		sec  []byte
		want error
		frag bool
	}{
		{"no headroom", 15, 100, nil, ErrHeadroom, false},
		{"runt", 256, 13, nil, ErrRunt, false},
		{"past the buffer", 256, 4000, nil, ErrShortBuffer, false},
		{"needs split", 256, 1499, nil, ErrNeedsSplit, false},
		{"too big", 256, 2779, nil, ErrTooBig, false},
		{"fragment whole frame", 256, 1498, second, ErrFitsWhole, true},
		{"fragment too big", 256, 2779, second, ErrTooBig, true},
		{"second buffer short", 256, 1600, second[:16+319], ErrShortBuffer, true},
		{"fragment no headroom", 8, 1600, second, ErrHeadroom, true},
	}
	for _, tt := range tests {
		var err error
		if tt.frag {
			_, _, err = e.Fragment(buf, tt.off, tt.n, tt.sec)
		} else {
			_, err = e.Encap(buf, tt.off, tt.n)
		}
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if e.NextID() != 0 {
		t.Errorf("failed fragmentations used fragment IDs: next is %d", e.NextID())
	}
}

func TestFragmentIDWraps(t *testing.T) {
	e := refEncap(t, ModeEth)
	buf, second := make([]byte, 4096), make([]byte, 4096)
	d, _ := NewDecapsulator(DecapConfig{Mode: ModeEth, PeerMAC: refULMAC})
	for i := 0; i < 0x4000+2; i++ {
		want := uint16(i) & 0x3fff
		n1, n2, err := e.Fragment(buf, 256, 1600, second)
		if err != nil {
			t.Fatal(err)
		}
		p1 := buf[256-16 : 256-16+n1]
		if got := ReadControlWord(p1[14:]); got != FirstHalf(want) {
			t.Fatalf("frame %d: first half %#04x, want %#04x", i, uint16(got), uint16(FirstHalf(want)))
		}
		if got := ReadControlWord(second[14:]); got != SecondHalf(want) {
			t.Fatalf("frame %d: second half %#04x", i, uint16(got))
		}
		// The receiver reassembles across the wrap, including ID 0.
		if i >= 0x3ffe {
			held := make([]byte, n1, 4096)
			copy(held, p1)
			if out := d.Receive(held, 1); out.NReleased != 0 || out.Frame != nil {
				t.Fatalf("frame %d: first half not held: %+v", i, out)
			}
			if out := d.Receive(second[:n2], 2); out.Frame == nil || len(out.Frame) != 1600 {
				t.Fatalf("frame %d (ID %d) not reassembled: %+v", i, want, out)
			}
		}
	}
}
