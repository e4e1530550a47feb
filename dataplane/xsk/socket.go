package xsk

import (
	"fmt"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// cacheLinePad keeps what one goroutine writes off the cache lines another
// goroutine writes.
type cacheLinePad [64]byte

// Socket is one AF_XDP socket bound to one queue of one interface, with its
// own fill, completion, RX and TX rings over a UMEM it may share.
//
// The RX half (Receive, Fill, FillNeedsWakeup, WakeRx, Wait) and the TX
// half (Transmit, Kick, Complete) touch disjoint state, each on cache lines
// of its own: one goroutine may own each half. Neither half is safe for use
// by two goroutines at once.
type Socket struct {
	// Read-only after newSocket.
	fd       int
	wakeFD   int // eventfd that interrupts Wait
	umem     *UMEM
	ifname   string
	zeroCopy bool
	maps     [][]byte

	_ cacheLinePad

	// RX half.
	fill    addrRing
	rx      descRing
	pfds    [2]unix.PollFd
	wakeBuf [8]byte

	_ cacheLinePad

	// TX half.
	tx   descRing
	comp addrRing

	_ cacheLinePad
}

var _ Port = (*Socket)(nil)

// newSocket opens an AF_XDP socket on ifindex/queue. With shared == nil it
// registers u as a new UMEM and binds with bindFlags; otherwise it binds
// with XDP_SHARED_UMEM to shared's UMEM, with fill and completion rings of
// its own (allowed for another interface or queue since Linux 5.10), in
// the mode of shared's bind.
func newSocket(u *UMEM, ifname string, ifindex, queue int, ringSize uint32, bindFlags uint16, shared *Socket) (_ *Socket, err error) {
	s := &Socket{fd: -1, wakeFD: -1, umem: u, ifname: ifname}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.fd, err = unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
		return nil, fmt.Errorf("af_xdp socket: %w", err)
	}
	if shared == nil {
		reg := unix.XDPUmemReg{
			Addr: uint64(uintptr(unsafe.Pointer(&u.Mem[0]))),
			Len:  uint64(len(u.Mem)),
			Size: uint32(u.ChunkSize),
		}
		if err = setsockopt(s.fd, unix.XDP_UMEM_REG, unsafe.Pointer(&reg), unsafe.Sizeof(reg)); err != nil {
			return nil, fmt.Errorf("register umem: %w", err)
		}
	}
	for _, opt := range []int{unix.XDP_UMEM_FILL_RING, unix.XDP_UMEM_COMPLETION_RING, unix.XDP_RX_RING, unix.XDP_TX_RING} {
		if err = unix.SetsockoptInt(s.fd, unix.SOL_XDP, opt, int(ringSize)); err != nil {
			return nil, fmt.Errorf("size ring %d: %w", opt, err)
		}
	}
	var off unix.XDPMmapOffsets
	size := uint32(unsafe.Sizeof(off))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS,
		uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&size)), 0); e != 0 {
		return nil, fmt.Errorf("ring offsets: %w", e)
	}
	if err = s.mapRings(off, ringSize); err != nil {
		return nil, err
	}
	sa := &unix.SockaddrXDP{Flags: bindFlags, Ifindex: uint32(ifindex), QueueID: uint32(queue)}
	s.zeroCopy = bindFlags&unix.XDP_ZEROCOPY != 0
	if shared != nil {
		// The mode and need_wakeup are inherited from the UMEM's first socket.
		sa.Flags, sa.SharedUmemFD = unix.XDP_SHARED_UMEM, uint32(shared.fd)
		s.zeroCopy = shared.zeroCopy
	}
	if err = bind(s.fd, sa); err != nil {
		mode := "copy"
		if s.zeroCopy {
			mode = "zero-copy"
		}
		return nil, &BindError{Ifname: ifname, Queue: queue, Mode: mode, Err: err}
	}
	if s.wakeFD, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	s.pfds = [2]unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}, {Fd: int32(s.wakeFD), Events: unix.POLLIN}}
	return s, nil
}

// bindBusyFor is how long bind retries EBUSY: the kernel releases a closed
// socket's hold on its queue in deferred work, so a queue just given up
// (by a zero-copy attempt, or a pwgated that just exited) is busy for a
// moment.
const bindBusyFor = 2 * time.Second

func bind(fd int, sa *unix.SockaddrXDP) error {
	deadline := time.Now().Add(bindBusyFor)
	for {
		err := unix.Bind(fd, sa)
		if err != unix.EBUSY || time.Now().After(deadline) {
			if err == unix.EBUSY {
				return fmt.Errorf("%w (another AF_XDP socket holds the queue: is another pwgated running?)", err)
			}
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BindError is a failed bind of an AF_XDP socket.
type BindError struct {
	Ifname string
	Queue  int
	Mode   string // "zero-copy" or "copy"
	Err    error
}

// Error says which interface, queue and mode.
func (e *BindError) Error() string {
	return fmt.Sprintf("bind af_xdp socket to %s queue %d in %s mode: %v", e.Ifname, e.Queue, e.Mode, e.Err)
}

// Unwrap returns the system call's error.
func (e *BindError) Unwrap() error { return e.Err }

func setsockopt(fd, opt int, p unsafe.Pointer, n uintptr) error {
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, uintptr(opt), uintptr(p), n, 0); e != 0 {
		return e
	}
	return nil
}

func (s *Socket) mapRings(off unix.XDPMmapOffsets, n uint32) error {
	m := func(pgoff int64, o unix.XDPRingOffset, entry uintptr) ([]byte, error) {
		b, err := unix.Mmap(s.fd, pgoff, int(o.Desc+uint64(n)*uint64(entry)),
			unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return nil, fmt.Errorf("map ring at %#x: %w", pgoff, err)
		}
		s.maps = append(s.maps, b)
		return b, nil
	}
	fill, err := m(unix.XDP_UMEM_PGOFF_FILL_RING, off.Fr, 8)
	if err != nil {
		return err
	}
	comp, err := m(unix.XDP_UMEM_PGOFF_COMPLETION_RING, off.Cr, 8)
	if err != nil {
		return err
	}
	rx, err := m(unix.XDP_PGOFF_RX_RING, off.Rx, unsafe.Sizeof(Desc{}))
	if err != nil {
		return err
	}
	tx, err := m(unix.XDP_PGOFF_TX_RING, off.Tx, unsafe.Sizeof(Desc{}))
	if err != nil {
		return err
	}
	s.fill.init(fill, off.Fr, n)
	s.fill.entries = unsafe.Slice((*uint64)(unsafe.Pointer(&fill[off.Fr.Desc])), n)
	s.comp.init(comp, off.Cr, n)
	s.comp.entries = unsafe.Slice((*uint64)(unsafe.Pointer(&comp[off.Cr.Desc])), n)
	s.rx.init(rx, off.Rx, n)
	s.rx.entries = unsafe.Slice((*Desc)(unsafe.Pointer(&rx[off.Rx.Desc])), n)
	s.tx.init(tx, off.Tx, n)
	s.tx.entries = unsafe.Slice((*Desc)(unsafe.Pointer(&tx[off.Tx.Desc])), n)
	return nil
}

// FD returns the socket's file descriptor, for registering in an XSKMAP.
func (s *Socket) FD() int { return s.fd }

// ZeroCopy reports whether the socket was bound in zero-copy mode.
func (s *Socket) ZeroCopy() bool { return s.zeroCopy }

// Receive moves up to len(descs) received descriptors off the RX ring.
func (s *Socket) Receive(descs []Desc) int { return s.rx.get(descs) }

// Fill gives up to len(addrs) UMEM chunks to the kernel to receive into and
// returns how many it took.
func (s *Socket) Fill(addrs []uint64) int { return s.fill.put(addrs) }

// FillNeedsWakeup reports whether the driver set the fill ring's
// need_wakeup flag.
func (s *Socket) FillNeedsWakeup() bool { return s.fill.needWakeup() }

// WakeRx wakes the driver to take buffers from the fill ring, as libxdp
// does: a non-blocking recvfrom(2) with no buffer.
func (s *Socket) WakeRx() unix.Errno {
	_, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
	switch e {
	case unix.EAGAIN, unix.EINTR, unix.EBUSY, unix.ENOBUFS:
		return 0
	}
	return e
}

// Transmit queues up to len(descs) descriptors on the TX ring and returns
// how many it queued; call Kick to make the kernel send them.
func (s *Socket) Transmit(descs []Desc) int { return s.tx.put(descs) }

// maxKicks bounds the sendto calls of one Kick: in copy mode each call
// sends at most 32 frames and answers EAGAIN while more are queued.
const maxKicks = 64

// Kick makes the kernel process the TX ring if it asked to be woken. It
// returns 0 when the ring is drained or the kernel is merely busy, and the
// errno when the interface cannot send (down, gone): the descriptors stay
// queued, and the caller sees the ring fill up.
func (s *Socket) Kick() unix.Errno {
	for i := 0; i < maxKicks && s.tx.outstanding() > 0 && s.tx.needWakeup(); i++ {
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0, unix.EAGAIN, unix.EINTR:
		case unix.EBUSY, unix.ENOBUFS:
			return 0
		default:
			return e
		}
	}
	return 0
}

// Complete moves up to len(addrs) addresses of sent frames off the
// completion ring.
func (s *Socket) Complete(addrs []uint64) int { return s.comp.get(addrs) }

// Wait sleeps until the RX ring has descriptors, Wake is called, or timeout
// passes. Polling also wakes the driver when the fill ring asks for it.
func (s *Socket) Wait(timeout time.Duration) unix.Errno {
	if s.rx.consAvail(1) > 0 {
		return 0
	}
	_, _, e := unix.Syscall(unix.SYS_POLL, uintptr(unsafe.Pointer(&s.pfds[0])), uintptr(len(s.pfds)), uintptr(timeout/time.Millisecond))
	if e != 0 && e != unix.EINTR {
		return e
	}
	if s.pfds[1].Revents&unix.POLLIN != 0 {
		unix.Syscall(unix.SYS_READ, uintptr(s.wakeFD), uintptr(unsafe.Pointer(&s.wakeBuf[0])), uintptr(len(s.wakeBuf)))
	}
	return 0
}

// Wake interrupts a Wait in progress, or makes the next one return at once.
// It is safe to call from any goroutine.
func (s *Socket) Wake() {
	one := [8]byte{1}
	unix.Write(s.wakeFD, one[:])
}

// KernelStats returns the kernel's counters for the socket: descriptors it
// dropped because the RX ring was full or no fill buffer was there, and
// invalid descriptors. Safe from any goroutine.
func (s *Socket) KernelStats() (unix.XDPStatistics, error) {
	var st unix.XDPStatistics
	size := uint32(unsafe.Sizeof(st))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(s.fd), unix.SOL_XDP, unix.XDP_STATISTICS,
		uintptr(unsafe.Pointer(&st)), uintptr(unsafe.Pointer(&size)), 0); e != 0 {
		return st, os.NewSyscallError("getsockopt XDP_STATISTICS", e)
	}
	return st, nil
}

// Close unmaps the rings and closes the socket.
func (s *Socket) Close() error {
	for _, b := range s.maps {
		unix.Munmap(b)
	}
	s.maps = nil
	if s.wakeFD >= 0 {
		unix.Close(s.wakeFD)
		s.wakeFD = -1
	}
	if s.fd >= 0 {
		err := unix.Close(s.fd)
		s.fd = -1
		return err
	}
	return nil
}
