package xsk

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Fake is an in-memory Port for tests of the data path: tests Inject frames
// as if received and take what was transmitted with Sent. Transmitted
// frames complete at once unless Hold is set.
type Fake struct {
	umem *UMEM

	mu       sync.Mutex
	fill     []uint64
	rx       []Desc
	sent     [][]byte
	comp     []uint64
	fillCap  int        // capacity of the fill "ring"
	txRoom   int        // descriptors Transmit accepts before the ring is "full"; <0: unlimited
	kickErr  unix.Errno // returned by Kick
	headroom uint64     // where Inject puts a frame in its chunk
	fillWake bool       // FillNeedsWakeup's answer
	rxWakes  int        // WakeRx calls
	wake     chan struct{}
}

var _ Port = (*Fake)(nil)

// NewFake returns a fake port over u (which may be shared with another).
func NewFake(u *UMEM) *Fake {
	return &Fake{umem: u, fillCap: 128, txRoom: -1, headroom: RxHeadroom, wake: make(chan struct{}, 1)}
}

// NewFakeUMEM returns a UMEM of n chunks in ordinary memory.
func NewFakeUMEM(n int) *UMEM {
	return &UMEM{Mem: make([]byte, n*ChunkSize), ChunkSize: ChunkSize, NumChunks: n}
}

// Inject copies frame into a filled chunk, as the kernel would on receive.
// It returns false when no chunk is filled (the kernel would drop it).
func (f *Fake) Inject(frame []byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.fill) == 0 {
		return false
	}
	base := f.fill[0]
	f.fill = f.fill[1:]
	addr := base + f.headroom
	copy(f.umem.Mem[addr:], frame)
	f.rx = append(f.rx, Desc{Addr: addr, Len: uint32(len(frame))})
	f.Wake()
	return true
}

// Sent returns and forgets copies of the frames transmitted so far.
func (f *Fake) Sent() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.sent
	f.sent = nil
	return s
}

// Filled returns how many chunks the data path has handed over to receive
// into.
func (f *Fake) Filled() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.fill)
}

// SetTxRoom makes Transmit accept at most n more descriptors (n < 0:
// unlimited), to exercise a full TX ring.
func (f *Fake) SetTxRoom(n int) {
	f.mu.Lock()
	f.txRoom = n
	f.mu.Unlock()
}

// SetKickError makes Kick return e.
func (f *Fake) SetKickError(e unix.Errno) {
	f.mu.Lock()
	f.kickErr = e
	f.mu.Unlock()
}

// SetHeadroom makes Inject put frames n bytes into their chunks (a driver
// that leaves less room than XDP_PACKET_HEADROOM).
func (f *Fake) SetHeadroom(n int) {
	f.mu.Lock()
	f.headroom = uint64(n)
	f.mu.Unlock()
}

// SetFillNeedsWakeup sets what FillNeedsWakeup answers, as a zero-copy
// driver sets the fill ring's flag when it ran out of buffers.
func (f *Fake) SetFillNeedsWakeup(v bool) {
	f.mu.Lock()
	f.fillWake = v
	f.mu.Unlock()
}

// RxWakeups returns how many times WakeRx was called.
func (f *Fake) RxWakeups() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rxWakes
}

// Receive implements Port.
func (f *Fake) Receive(descs []Desc) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := copy(descs, f.rx)
	f.rx = f.rx[n:]
	return n
}

// Fill implements Port.
func (f *Fake) Fill(addrs []uint64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := min(len(addrs), f.fillCap-len(f.fill))
	f.fill = append(f.fill, addrs[:n]...)
	return n
}

// FillNeedsWakeup implements Port.
func (f *Fake) FillNeedsWakeup() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fillWake
}

// WakeRx implements Port: it counts the call and clears the flag, as the
// kernel does once the driver has buffers again.
func (f *Fake) WakeRx() unix.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rxWakes++
	f.fillWake = false
	return 0
}

// Wait implements Port.
func (f *Fake) Wait(timeout time.Duration) unix.Errno {
	f.mu.Lock()
	ready := len(f.rx) > 0
	f.mu.Unlock()
	if ready {
		return 0
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-f.wake:
	case <-t.C:
	}
	return 0
}

// Wake implements Port.
func (f *Fake) Wake() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Transmit implements Port.
func (f *Fake) Transmit(descs []Desc) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(descs)
	if f.txRoom >= 0 {
		n = min(n, f.txRoom)
		f.txRoom -= n
	}
	for _, d := range descs[:n] {
		f.sent = append(f.sent, append([]byte(nil), f.umem.Mem[d.Addr:d.Addr+uint64(d.Len)]...))
		f.comp = append(f.comp, d.Addr)
	}
	return n
}

// Kick implements Port.
func (f *Fake) Kick() unix.Errno {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.kickErr
}

// Complete implements Port.
func (f *Fake) Complete(addrs []uint64) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := copy(addrs, f.comp)
	f.comp = f.comp[n:]
	return n
}
