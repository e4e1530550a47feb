package pseudowire

import (
	"fmt"
	"testing"
)

var benchSizes = []int{64, 512, 1514, 1600}

// wirePackets returns the uplink packets for one n-byte frame, each in a
// 4096-byte buffer as the daemon's UMEM chunks are.
func wirePackets(tb testing.TB, m Mode, n int) [][]byte {
	e := benchEncap(tb, m)
	buf := make([]byte, 256+n, 4096)
	copy(buf[256:], innerFrame(n, 0))
	if e.Pieces(n) == 1 {
		start, err := e.Encap(buf, 256, n)
		if err != nil {
			tb.Fatal(err)
		}
		return [][]byte{buf[start:]}
	}
	second := make([]byte, 4096)
	n1, n2, err := e.Fragment(buf, 256, n, second)
	if err != nil {
		tb.Fatal(err)
	}
	start := 256 - e.Overhead()
	first := make([]byte, n1, 4096)
	copy(first, buf[start:])
	return [][]byte{first, second[:n2]}
}

func benchEncap(tb testing.TB, m Mode) *Encapsulator {
	e, err := NewEncapsulator(EncapConfig{Mode: m, Src: macA, Dst: macB, SrcAddr: addrA, DstAddr: addrB})
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func benchDecap(tb testing.TB, m Mode) *Decapsulator {
	d, err := NewDecapsulator(DecapConfig{Mode: m, PeerMAC: macA, PeerAddr: addrA})
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// encapOne is what the encap goroutine does per frame.
func encapOne(e *Encapsulator, buf []byte, n int, second []byte) {
	if e.Pieces(n) == 1 {
		if _, err := e.Encap(buf, 256, n); err != nil {
			panic(err)
		}
		return
	}
	if _, _, err := e.Fragment(buf, 256, n, second); err != nil {
		panic(err)
	}
}

// BenchmarkEncap measures one frame from the downlink becoming its uplink
// packet(s), in place; sizes above the split threshold are fragmented.
func BenchmarkEncap(b *testing.B) {
	for _, m := range []Mode{ModeEth, ModeIP6} {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", m, n), func(b *testing.B) {
				e := benchEncap(b, m)
				buf, second := make([]byte, 256+n), make([]byte, 4096)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					encapOne(e, buf, n, second)
				}
			})
		}
	}
}

// BenchmarkDecap measures the uplink packet(s) of one frame becoming the
// frame again; sizes above the split threshold are reassembled.
func BenchmarkDecap(b *testing.B) {
	for _, m := range []Mode{ModeEth, ModeIP6} {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", m, n), func(b *testing.B) {
				d, pkts := benchDecap(b, m), wirePackets(b, m, n)
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					for j, p := range pkts {
						if out := d.Receive(p, uint64(j)); j == len(pkts)-1 && len(out.Frame) != n {
							b.Fatalf("delivered %d bytes", len(out.Frame))
						}
					}
				}
			})
		}
	}
}

// BenchmarkRoundTrip measures encap then decap of one frame: for frames over
// the split threshold, a fragment+reassemble pair.
func BenchmarkRoundTrip(b *testing.B) {
	for _, m := range []Mode{ModeEth, ModeIP6} {
		for _, n := range benchSizes {
			b.Run(fmt.Sprintf("%v/%d", m, n), func(b *testing.B) {
				e, d := benchEncap(b, m), benchDecap(b, m)
				buf, second := make([]byte, 4096), make([]byte, 4096)
				start := 256 - e.Overhead()
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					if e.Pieces(n) == 1 {
						e.Encap(buf, 256, n)
						d.Receive(buf[start:256+n], 0)
						continue
					}
					n1, n2, _ := e.Fragment(buf, 256, n, second)
					d.Receive(buf[start:start+n1], 0)
					if out := d.Receive(second[:n2], 1); len(out.Frame) != n {
						b.Fatalf("delivered %d bytes", len(out.Frame))
					}
				}
			})
		}
	}
}

func TestZeroAllocs(t *testing.T) {
	for _, m := range []Mode{ModeEth, ModeIP6} {
		for _, n := range benchSizes {
			e, d := benchEncap(t, m), benchDecap(t, m)
			buf, second := make([]byte, 256+n), make([]byte, 4096)
			if a := testing.AllocsPerRun(200, func() { encapOne(e, buf, n, second) }); a != 0 {
				t.Errorf("%v/%d: encap allocates %v times", m, n, a)
			}
			pkts := wirePackets(t, m, n)
			if a := testing.AllocsPerRun(200, func() {
				for j, p := range pkts {
					d.Receive(p, uint64(j))
				}
			}); a != 0 {
				t.Errorf("%v/%d: decap allocates %v times", m, n, a)
			}
		}
		// Drop paths must not allocate either.
		d := benchDecap(t, m)
		bad := [][]byte{{1, 2, 3}, packet(m, SecondHalf(3), innerFrame(20, 0)), packet(m, 0x4000, innerFrame(20, 0))}
		if a := testing.AllocsPerRun(200, func() {
			for _, p := range bad {
				d.Receive(p, 0)
			}
		}); a != 0 {
			t.Errorf("%v: drops allocate %v times", m, a)
		}
	}
}
