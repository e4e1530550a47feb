package pseudowire

import (
	"bytes"
	"testing"
	"time"
)

func keepaliveBody(seq uint32) []byte {
	b := make([]byte, KeepaliveLen)
	k := Keepalive{Hearing: true, Interval: 100 * time.Millisecond, Seq: seq, Sent: 5e9, Echo: 4e9, Held: 3e6}
	k.Put(b)
	return b
}

func TestKeepaliveRoundTrip(t *testing.T) {
	for _, m := range []Mode{ModeEth, ModeIP6, ModeIP6Tun} {
		e, err := NewEncapsulator(EncapConfig{Mode: m, Src: macA, Dst: macB, SrcAddr: addrA, DstAddr: addrB})
		if err != nil {
			t.Fatal(err)
		}
		d, _ := NewDecapsulator(DecapConfig{Mode: m, PeerMAC: macA, PeerAddr: addrA})
		want := Keepalive{Hearing: true, Interval: 250 * time.Millisecond, Seq: 1<<32 - 1, Sent: 1<<62 + 7, Echo: 12345, Held: 678}
		buf := make([]byte, 4096)
		n, err := e.Keepalive(buf, &want)
		if err != nil || n != m.Overhead()+KeepaliveLen {
			t.Fatalf("%v: Keepalive = %d, %v", m, n, err)
		}
		if m == ModeEth && n < 60 {
			t.Errorf("eth keepalive of %d bytes is shorter than an Ethernet frame", n)
		}
		if cw := ReadControlWord(buf[m.Overhead()-ControlWordLen:]); cw != CWKeepalive || cw.Valid() {
			t.Errorf("%v: control word %#04x", m, uint16(cw))
		}
		out := d.Receive(buf[:n], 7)
		if out.Keepalive == nil || *out.Keepalive != want || !out.FromPeer || out.Frame != nil || out.NReleased != 1 || out.Released[0] != rel(7, DropNone) {
			t.Fatalf("%v: received %+v (keepalive %+v)", m, out, out.Keepalive)
		}
		if _, err := e.Keepalive(buf[:n-1], &want); err != ErrShortBuffer {
			t.Errorf("%v: short buffer: %v", m, err)
		}
	}
}

func TestParseKeepaliveRefuses(t *testing.T) {
	good := keepaliveBody(1)
	var k Keepalive
	if !ParseKeepalive(good, &k) || k.Seq != 1 || !k.Hearing || k.Interval != 100*time.Millisecond {
		t.Fatalf("good body: %+v", k)
	}
	if !ParseKeepalive(append(bytes.Clone(good), 1, 2, 3), &k) {
		t.Error("a longer body (a later version's extra fields) is refused")
	}
	for name, edit := range map[string]func([]byte) []byte{
		"short":          func(b []byte) []byte { return b[:KeepaliveLen-1] },
		"destination":    func(b []byte) []byte { b[5] = 0x0e; return b },
		"source":         func(b []byte) []byte { b[6] = 'P'; return b },
		"ethertype":      func(b []byte) []byte { b[13] = 0xb6; return b },
		"version":        func(b []byte) []byte { b[14] = 2; return b },
		"negative sent":  func(b []byte) []byte { b[24] = 0x80; return b },
		"negative echo":  func(b []byte) []byte { b[32] = 0x80; return b },
		"negative held":  func(b []byte) []byte { b[40] = 0x80; return b },
		"an inner frame": func(b []byte) []byte { return innerFrame(100, 1) },
	} {
		if ParseKeepalive(edit(bytes.Clone(good)), &k) {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzKeepalive checks that any body either is refused or reads back to
// the same bytes when written again.
func FuzzKeepalive(f *testing.F) {
	f.Add(keepaliveBody(9))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		var k Keepalive
		if !ParseKeepalive(b, &k) {
			return
		}
		again := make([]byte, KeepaliveLen)
		k.Put(again)
		want := bytes.Clone(b[:KeepaliveLen])
		want[15] &= keepaliveHearing // other flag bits are ignored
		if !bytes.Equal(again, want) {
			t.Fatalf("% x read back as % x", b[:KeepaliveLen], again)
		}
	})
}
