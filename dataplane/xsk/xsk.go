// Package xsk gives pwgated its two ports: AF_XDP sockets on the downlink
// and the uplink that share one UMEM, so a frame received on one port is
// sent on the other from the same memory, with the outer headers written in
// front of it (no copy for whole frames).
//
// The sockets are made with raw system calls rather than with
// github.com/asavie/xdp: that library registers one UMEM per socket (a copy
// per forwarded frame), and its Transmit panics on send errors such as
// ENETDOWN when a link goes down (the README says more).
//
// This package only makes sockets: which XDP program steers frames into
// them is the caller's business (control attaches bpf's programs and
// registers the sockets' descriptors).
//
// Port is the boundary the data path programs against, called once per
// batch; Socket implements it over AF_XDP and Fake in memory for tests.
// Errors on the data path are errno values, which neither allocate nor
// need formatting to be compared.
package xsk

import (
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Port is one AF_XDP port as the data path sees it. The RX half (Receive,
// Fill, FillNeedsWakeup, WakeRx, Wait) and the TX half (Transmit, Kick,
// Complete) may each be owned by a different goroutine; Wake may be called
// from anywhere.
type Port interface {
	// Receive moves up to len(descs) received frames off the RX ring.
	Receive(descs []Desc) int
	// Fill hands UMEM chunks (their base addresses) to the kernel to
	// receive into, and returns how many it took.
	Fill(addrs []uint64) int
	// FillNeedsWakeup reports whether the driver asked to be woken before
	// it takes buffers from the fill ring again (zero-copy drivers do when
	// the ring ran empty); WakeRx wakes it.
	FillNeedsWakeup() bool
	// WakeRx makes the driver look at the fill ring again.
	WakeRx() unix.Errno
	// Wait sleeps until frames arrive, Wake is called or timeout passes.
	Wait(timeout time.Duration) unix.Errno
	// Wake interrupts Wait.
	Wake()
	// Transmit queues frames for sending and returns how many it queued.
	Transmit(descs []Desc) int
	// Kick makes the kernel send what Transmit queued. It returns 0, or
	// the errno of a failure that leaves the frames queued (link down).
	Kick() unix.Errno
	// Complete moves up to len(addrs) addresses of sent frames back.
	Complete(addrs []uint64) int
}

// Chunk geometry. A chunk holds one frame; the kernel writes received
// frames RxHeadroom bytes into it (XDP_PACKET_HEADROOM), which leaves room
// for any outer header in front.
const (
	ChunkSize  = 4096
	RxHeadroom = 256
)

// UMEM is the packet memory shared by a pair of ports: NumChunks chunks of
// ChunkSize bytes. Addresses are byte offsets into Mem.
type UMEM struct {
	Mem       []byte
	ChunkSize uint64
	NumChunks int
}

// NewUMEM maps a UMEM of n chunks.
func NewUMEM(n int) (*UMEM, error) {
	if n <= 0 || n&(n-1) != 0 {
		return nil, fmt.Errorf("umem: %d chunks is not a power of two", n)
	}
	mem, err := unix.Mmap(-1, 0, n*ChunkSize, unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("map umem of %d bytes: %w", n*ChunkSize, err)
	}
	return &UMEM{Mem: mem, ChunkSize: ChunkSize, NumChunks: n}, nil
}

// Close unmaps the memory. No socket may use it any more.
func (u *UMEM) Close() error {
	if u.Mem == nil {
		return nil
	}
	err := unix.Munmap(u.Mem)
	u.Mem = nil
	return err
}

// Base returns the address of the chunk that holds addr.
func (u *UMEM) Base(addr uint64) uint64 { return addr &^ (u.ChunkSize - 1) }

// Chunk returns the whole chunk whose base address is base.
func (u *UMEM) Chunk(base uint64) []byte { return u.Mem[base : base+u.ChunkSize : base+u.ChunkSize] }

// Frame returns the n bytes at addr, with capacity up to the end of the
// chunk, so that a frame may grow in place.
func (u *UMEM) Frame(addr uint64, n uint32) []byte {
	end := u.Base(addr) + u.ChunkSize
	return u.Mem[addr : addr+uint64(n) : end]
}

// Addr returns the UMEM address of b[0]; b must lie inside Mem.
func (u *UMEM) Addr(b []byte) uint64 {
	return uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b))) - uintptr(unsafe.Pointer(&u.Mem[0])))
}
