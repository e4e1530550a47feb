package dataplane

import (
	"fmt"
	"testing"
	"time"

	"github.com/pwgate/pwgate/dataplane/pseudowire"
	"github.com/pwgate/pwgate/dataplane/stats"
	"github.com/pwgate/pwgate/dataplane/xsk"
	"golang.org/x/sys/unix"
)

// loopPort is a Port with fixed rings and no allocation: every chunk handed
// to Fill comes back from Receive holding the next of its frames, and every
// transmitted descriptor completes at once.
type loopPort struct {
	umem    *xsk.UMEM
	frames  [][]byte
	next    int
	fill    ringOf[uint64]
	comp    ringOf[uint64]
	sent    int
	kickErr unix.Errno
}

type ringOf[T any] struct {
	buf        [4096]T
	head, tail int
}

func (r *ringOf[T]) push(v T) bool {
	if r.tail-r.head == len(r.buf) {
		return false
	}
	r.buf[r.tail%len(r.buf)] = v
	r.tail++
	return true
}

func (r *ringOf[T]) pop() (T, bool) {
	var v T
	if r.head == r.tail {
		return v, false
	}
	v = r.buf[r.head%len(r.buf)]
	r.head++
	return v, true
}

func (p *loopPort) Receive(descs []xsk.Desc) int {
	for i := range descs {
		base, ok := p.fill.pop()
		if !ok {
			return i
		}
		f := p.frames[p.next%len(p.frames)]
		p.next++
		copy(p.umem.Mem[base+xsk.RxHeadroom:], f)
		descs[i] = xsk.Desc{Addr: base + xsk.RxHeadroom, Len: uint32(len(f))}
	}
	return len(descs)
}

func (p *loopPort) Fill(addrs []uint64) int {
	for i, a := range addrs {
		if !p.fill.push(a) {
			return i
		}
	}
	return len(addrs)
}

func (p *loopPort) Transmit(descs []xsk.Desc) int {
	for i, d := range descs {
		if !p.comp.push(d.Addr) {
			return i
		}
	}
	p.sent += len(descs)
	return len(descs)
}

func (p *loopPort) Complete(addrs []uint64) int {
	for i := range addrs {
		a, ok := p.comp.pop()
		if !ok {
			return i
		}
		addrs[i] = a
	}
	return len(addrs)
}

func (p *loopPort) Wait(time.Duration) unix.Errno { return 0 }
func (p *loopPort) Wake()                         {}
func (p *loopPort) Kick() unix.Errno              { return p.kickErr }
func (p *loopPort) FillNeedsWakeup() bool         { return false }
func (p *loopPort) WakeRx() unix.Errno            { return 0 }

// batchRig is an engine whose workers are driven by hand, one step at a
// time, over loopPorts: rx delivers frames, tx swallows what is sent.
type batchRig struct {
	e      *Engine
	rx, tx *loopPort
}

func newRig(tb testing.TB, p *Params, decap bool, frames [][]byte) *batchRig {
	u := xsk.NewFakeUMEM(1024)
	dl, ul := &loopPort{umem: u}, &loopPort{umem: u}
	e, err := New(Config{UMEM: u, DL: dl, UL: ul, Batch: 64}, p)
	if err != nil {
		tb.Fatal(err)
	}
	r := &batchRig{e: e, rx: dl, tx: ul}
	if decap {
		r.rx, r.tx = ul, dl
	}
	r.rx.frames = frames
	return r
}

func (r *batchRig) step(decap bool) int {
	if decap {
		return r.e.dec.step(r.e.dec.process)
	}
	return r.e.enc.step(r.e.enc.process)
}

var batchSizes = []int{64, 512, 1514, 1600}

// TestFailingKickZeroAllocs: a send that fails on every batch (a link
// that is down) is counted without allocating or formatting anything.
func TestFailingKickZeroAllocs(t *testing.T) {
	p := ethParams(refMAC, refMAC)
	r := newRig(t, p, false, [][]byte{ethFrame(64)})
	r.tx.kickErr = unix.ENETDOWN
	r.step(false)
	if a := testing.AllocsPerRun(100, func() { r.step(false) }); a != 0 {
		t.Errorf("%v allocations per batch with a failing kick", a)
	}
	var s stats.Snapshot
	r.e.Snapshot(&s)
	if s[stats.ULSyscallErrors] != 102 { // the first step, AllocsPerRun's warm-up and 100 runs
		t.Errorf("ul_syscall_errors = %d, want 102", s[stats.ULSyscallErrors])
	}
	if _, ul := r.e.LastErrnos(); ul != unix.ENETDOWN {
		t.Errorf("last uplink errno %v, want ENETDOWN", ul)
	}
}

func TestBatchZeroAllocs(t *testing.T) {
	for _, n := range batchSizes {
		for _, decap := range []bool{false, true} {
			p := ethParams(refMAC, refMAC)
			frames := [][]byte{ethFrame(n)}
			if decap {
				frames = encapsulated(t, p, n)
			}
			r := newRig(t, p, decap, frames)
			r.step(decap) // warm up: the first fill
			if a := testing.AllocsPerRun(100, func() { r.step(decap) }); a != 0 {
				t.Errorf("decap=%v %d bytes: %v allocations per batch", decap, n, a)
			}
			if r.tx.sent == 0 {
				t.Errorf("decap=%v %d bytes: nothing sent", decap, n)
			}
		}
	}
}

// encapsulated returns the uplink packets of one n-byte frame.
func encapsulated(tb testing.TB, p *Params, n int) [][]byte {
	e, err := pseudowire.NewEncapsulator(p.Encap)
	if err != nil {
		tb.Fatal(err)
	}
	buf := make([]byte, 256+n)
	copy(buf[256:], ethFrame(n))
	if e.Pieces(n) == 1 {
		start, _ := e.Encap(buf, 256, n)
		return [][]byte{buf[start:]}
	}
	second := make([]byte, 4096)
	n1, n2, _ := e.Fragment(buf, 256, n, second)
	return [][]byte{buf[256-e.Overhead() : 256-e.Overhead()+n1], second[:n2]}
}

// BenchmarkBatch measures the data path's own work per received packet,
// I/O aside (the loopPort's copy into the UMEM stands in for the kernel's):
// b.N counts packets, handled in steps of 64.
func BenchmarkBatch(b *testing.B) {
	for _, decap := range []bool{false, true} {
		dir := "encap"
		if decap {
			dir = "decap"
		}
		for _, n := range batchSizes {
			b.Run(fmt.Sprintf("%s/%d", dir, n), func(b *testing.B) {
				p := ethParams(refMAC, refMAC)
				frames := [][]byte{ethFrame(n)}
				if decap {
					frames = encapsulated(b, p, n)
				}
				r := newRig(b, p, decap, frames)
				r.step(decap)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i += 64 {
					r.step(decap)
				}
			})
		}
	}
}
