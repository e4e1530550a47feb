package wg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
)

// KernelBind is WireGuard's UDP on one kernel socket (wireguard.bind:
// kernel): IPv6, dual-stack, so IPv4 peers arrive as mapped addresses.
// It replaces wireguard-go's StdNetBind, which allocates an endpoint and
// an address per datagram received (6 million allocations a minute at
// full load, a GC every 30 s), with UDP GRO writes coalesced datagrams
// deep into wireguard-go's 64 KiB buffers, and then reads only two
// messages per system call. Here endpoints are remembered (at most
// maxEndpoints), so neither direction allocates; received messages,
// coalesced or not, are read 128 at a time into a slab of the bind's own
// (8 MiB, made resident when the socket opens) and each datagram is
// copied into its buffer; without UDP GRO they are read straight into
// wireguard-go's buffers. Runs of datagrams of one length go out as one
// message (UDP GSO, one iovec per datagram: nothing is copied), unless
// the way out cannot finish checksums (EIO, before Linux 6.11: then one
// by one from there on) or the datagrams are longer than the path's MTU
// (EMSGSIZE: that call one by one). Replies leave from the address the
// peer sent to (sticky sockets, as StdNetBind's); when that address is
// gone, from the one the kernel picks.
type KernelBind struct {
	mu      sync.Mutex
	uc      *net.UDPConn // nil: closed
	raw     syscall.RawConn
	senders sync.Pool   // *kernelSend
	noGSO   atomic.Bool // UDP GSO failed (EIO): datagrams go one by one
	gro     bool        // ask for UDP GRO
	recv    *kernelRecv // the open socket's receive side
}

var _ conn.Bind = (*KernelBind)(nil)

// socketBuffer is the size asked for both socket buffers (StdNetBind's).
const socketBuffer = 7 << 20

// pktinfoSpace is the control message of a source address.
var pktinfoSpace = unix.CmsgSpace(unix.SizeofInet6Pktinfo)

// mmsghdr is struct mmsghdr (x/sys has none).
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// NewKernelBind returns a closed bind.
func NewKernelBind() *KernelBind {
	b := &KernelBind{gro: true}
	b.senders.New = func() any { s := &kernelSend{}; s.write = s.writeMsgs; return s }
	return b
}

// Open implements conn.Bind.
func (b *KernelBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.uc != nil {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) {
			s := int(fd)
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUF, socketBuffer)
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUF, socketBuffer)
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBuffer)
			_ = unix.SetsockoptInt(s, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBuffer)
			if err = unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
				err = fmt.Errorf("dual-stack: %w", err)
				return
			}
			if err = unix.SetsockoptInt(s, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1); err != nil {
				err = fmt.Errorf("IPV6_RECVPKTINFO: %w", err)
			}
		}); cerr != nil {
			return cerr
		}
		return err
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp6", net.JoinHostPort("::", strconv.Itoa(int(port))))
	if err != nil {
		return nil, 0, fmt.Errorf("WireGuard's UDP socket (IPv6, dual-stack): %w", err)
	}
	uc := pc.(*net.UDPConn)
	raw, err := uc.SyscallConn()
	if err != nil {
		uc.Close()
		return nil, 0, err
	}
	b.uc, b.raw = uc, raw
	r := &kernelRecv{raw: raw}
	r.read = r.readMsgs
	if b.gro {
		var err error
		if cerr := raw.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1)
		}); cerr == nil && err == nil {
			r.slab = make([]byte, len(r.hdrs)*groSlot)
			// Resident from the start: otherwise the slab creeps in as
			// ever deeper coalesced messages reach its pages.
			for i := 0; i < len(r.slab); i += os.Getpagesize() {
				r.slab[i] = 1
			}
		}
	}
	b.recv = r
	return []conn.ReceiveFunc{r.receive}, uint16(uc.LocalAddr().(*net.UDPAddr).Port), nil
}

// Close implements conn.Bind: the receive function returns net.ErrClosed.
func (b *KernelBind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.uc == nil {
		return nil
	}
	err := b.uc.Close()
	b.uc, b.raw, b.recv = nil, nil, nil
	return err
}

// SetMark implements conn.Bind (SO_MARK).
func (b *KernelBind) SetMark(mark uint32) error {
	b.mu.Lock()
	raw := b.raw
	b.mu.Unlock()
	if raw == nil {
		return nil
	}
	var err error
	if cerr := raw.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
	}); cerr != nil {
		return cerr
	}
	return err
}

// BatchSize implements conn.Bind.
func (b *KernelBind) BatchSize() int { return conn.IdealBatchSize }

// ParseEndpoint implements conn.Bind. A link-local address needs its zone
// (an interface's name or index).
func (b *KernelBind) ParseEndpoint(s string) (conn.Endpoint, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, err
	}
	a := ap.Addr().Unmap()
	e := &endpoint{dst: netip.AddrPortFrom(a, ap.Port())}
	if a.Is6() && a.IsLinkLocalUnicast() {
		zone := a.Zone()
		if zone == "" {
			return nil, fmt.Errorf("endpoint %s: a link-local address needs its interface (%%zone)", s)
		}
		idx, err := strconv.ParseUint(zone, 10, 32)
		if err != nil {
			ifc, ierr := net.InterfaceByName(zone)
			if ierr != nil {
				return nil, fmt.Errorf("endpoint %s: %w", s, ierr)
			}
			idx = uint64(ifc.Index)
		}
		e.scope = uint32(idx)
	}
	return e, nil
}

// Send implements conn.Bind: each buffer goes out as one datagram to ep,
// from the address ep's datagrams reached (unless wireguard-go cleared
// it); if that address is gone, from the one the kernel picks.
func (b *KernelBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	e, ok := ep.(*endpoint)
	if !ok {
		return fmt.Errorf("%w: %T", conn.ErrWrongEndpointType, ep)
	}
	b.mu.Lock()
	raw := b.raw
	b.mu.Unlock()
	if raw == nil {
		return net.ErrClosed
	}
	s := b.senders.Get().(*kernelSend)
	defer b.senders.Put(s)
	gso := !b.noGSO.Load()
	sent, err := s.send(raw, bufs, e, true, gso)
	if gso && (errors.Is(err, unix.EIO) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EMSGSIZE)) {
		// EIO: the way out cannot finish checksums, which UDP GSO needs
		// before Linux 6.11; from then on, one by one. EMSGSIZE or EINVAL:
		// datagrams longer than the path's MTU, which only lone datagrams
		// may be (the kernel fragments them).
		if errors.Is(err, unix.EIO) {
			b.noGSO.Store(true)
		}
		gso = false
		var more int
		more, err = s.send(raw, bufs[sent:], e, true, false)
		sent += more
	}
	if e.src.IsValid() && !e.noSrc.Load() && (errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENETUNREACH) || errors.Is(err, unix.EADDRNOTAVAIL)) {
		// The source is gone (IPv6 says EINVAL, IPv4 ENETUNREACH).
		_, err = s.send(raw, bufs[sent:], e, false, gso)
	}
	return err
}

// kernelRecv is one open socket's receive side; wireguard-go calls its
// receive from one goroutine.
type kernelRecv struct {
	raw   syscall.RawConn
	read  func(fd uintptr) bool // readMsgs, made once
	hdrs  [conn.IdealBatchSize]mmsghdr
	iovs  [conn.IdealBatchSize]unix.Iovec
	names [conn.IdealBatchSize]unix.RawSockaddrInet6
	// pktinfo and GRO take 64 bytes: room for more.
	oob   [conn.IdealBatchSize][128]byte
	batch int // messages asked for
	got   int // messages read
	err   error

	// With UDP GRO the messages are read into slab, a slot each, and
	// handed out a datagram at a time: message next from offset off,
	// cut every seg bytes, from ep.
	slab []byte // nil: no GRO, datagrams are read into wireguard-go's buffers
	next int
	off  int
	seg  int
	ep   *endpoint

	eps endpoints
}

// groSlot is a coalesced message's room: the largest UDP payload.
const groSlot = 1 << 16

func (r *kernelRecv) receive(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
	if r.slab != nil {
		return r.receiveGRO(bufs, sizes, eps)
	}
	r.batch = min(len(bufs), len(r.hdrs))
	for i := 0; i < r.batch; i++ {
		r.prepare(i, bufs[i])
	}
	err := r.raw.Read(r.read)
	for i := 0; i < r.batch; i++ {
		r.iovs[i].Base = nil // the buffers are wireguard-go's again
	}
	if err == nil {
		err = r.err
	}
	if err != nil {
		return 0, err
	}
	for i := 0; i < r.got; i++ {
		h := &r.hdrs[i]
		sizes[i] = int(h.n)
		if h.hdr.Flags&unix.MSG_TRUNC != 0 {
			sizes[i] = 0 // longer than any WireGuard message: wireguard-go skips it
		}
		k, _ := endpointKey(&r.names[i], r.oob[i][:h.hdr.Controllen])
		eps[i] = r.eps.get(k)
	}
	return r.got, nil
}

// receiveGRO hands out what the last read left, or reads: a coalesced
// message is cut into its datagrams, each copied into a buffer of
// wireguard-go's (so that its buffers are written only as deep as one
// datagram).
func (r *kernelRecv) receiveGRO(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
	if r.next >= r.got {
		r.batch = len(r.hdrs)
		for i := 0; i < r.batch; i++ {
			r.prepare(i, r.slab[i*groSlot:(i+1)*groSlot])
		}
		if err := r.raw.Read(r.read); err != nil {
			return 0, err
		}
		if r.err != nil {
			return 0, r.err
		}
		r.next, r.off = 0, 0
	}
	n := 0
	for n < len(bufs) && r.next < r.got {
		h := &r.hdrs[r.next]
		size := int(h.n)
		if r.off == 0 {
			var k epKey
			k, r.seg = endpointKey(&r.names[r.next], r.oob[r.next][:h.hdr.Controllen])
			if r.seg <= 0 || r.seg > size {
				r.seg = size
			}
			r.ep = r.eps.get(k)
		}
		if size == 0 || h.hdr.Flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
			r.next++ // nothing, cut short, or where it was cut unknown: not passed on
			continue
		}
		msg := r.slab[r.next*groSlot : r.next*groSlot+size]
		for r.off < size && n < len(bufs) {
			end := min(r.off+r.seg, size)
			sizes[n] = copy(bufs[n], msg[r.off:end])
			if sizes[n] < end-r.off {
				sizes[n] = 0 // longer than the buffer: skipped
			}
			eps[n] = r.ep
			n++
			r.off = end
		}
		if r.off >= size {
			r.next++
			r.off = 0
		}
	}
	return n, nil
}

// prepare makes message i read into b.
func (r *kernelRecv) prepare(i int, b []byte) {
	r.iovs[i].Base = unsafe.SliceData(b)
	r.iovs[i].SetLen(len(b))
	h := &r.hdrs[i].hdr
	h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
	h.Namelen = unix.SizeofSockaddrInet6
	h.Iov = &r.iovs[i]
	h.SetIovlen(1)
	h.Control = &r.oob[i][0]
	h.SetControllen(len(r.oob[i]))
	h.Flags = 0
}

// readMsgs is the raw read: false when nothing is there yet.
func (r *kernelRecv) readMsgs(fd uintptr) bool {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(r.batch), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			r.got, r.err = int(n), nil
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		r.got, r.err = 0, os.NewSyscallError("recvmmsg", errno)
		return true
	}
}

// endpointKey reads a datagram's source and where it arrived (its
// IPV6_PKTINFO control message, if there is one), and the length its
// datagrams were coalesced at (UDP_GRO; 0: not coalesced).
func endpointKey(name *unix.RawSockaddrInet6, control []byte) (epKey, int) {
	p := (*[2]byte)(unsafe.Pointer(&name.Port))
	a := netip.AddrFrom16(name.Addr).Unmap()
	k := epKey{from: netip.AddrPortFrom(a, uint16(p[0])<<8|uint16(p[1]))}
	if a.IsLinkLocalUnicast() {
		k.scope = name.Scope_id
	}
	var seg int
	k.to, k.ifindex, seg = parseControl(control)
	return k, seg
}

// parseControl returns the address and interface of the IPV6_PKTINFO
// message in control and the segment length of the UDP_GRO one; zero for
// what is not there.
func parseControl(control []byte) (to netip.Addr, ifindex int32, seg int) {
	for len(control) >= unix.SizeofCmsghdr {
		h, data, rest, err := unix.ParseOneSocketControlMessage(control)
		if err != nil {
			break
		}
		switch {
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			info := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
			to, ifindex = netip.AddrFrom16(info.Addr).Unmap(), int32(info.Ifindex)
		case h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && len(data) >= 4:
			seg = int(*(*int32)(unsafe.Pointer(&data[0])))
		}
		control = rest
	}
	return to, ifindex, seg
}

// kernelSend is one Send's messages (from a pool: Send is called from
// several goroutines).
type kernelSend struct {
	write func(fd uintptr) bool // writeMsgs, made once
	hdrs  [conn.IdealBatchSize]mmsghdr
	iovs  [conn.IdealBatchSize]unix.Iovec // one per datagram
	oob   [conn.IdealBatchSize][64]byte
	ends  [conn.IdealBatchSize]int // the datagrams of messages up to i
	name  unix.RawSockaddrInet6
	batch int // messages to send
	done  int // messages sent
	err   error
}

// udpSegments is the most datagrams one message carries with UDP GSO
// (the kernel's limit before 6.9).
const udpSegments = 64

// send sends bufs to e, from e's source if withSrc, runs of datagrams of
// one length in one message if gso, and returns how many went.
func (s *kernelSend) send(raw syscall.RawConn, bufs [][]byte, e *endpoint, withSrc, gso bool) (int, error) {
	s.name = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: e.dst.Addr().As16(), Scope_id: e.scope}
	p := (*[2]byte)(unsafe.Pointer(&s.name.Port))
	p[0], p[1] = byte(e.dst.Port()>>8), byte(e.dst.Port())
	src := withSrc && e.src.IsValid() && !e.noSrc.Load()
	maxPayload := 1<<16 - 1 - 8 // UDP's length field
	if e.dst.Addr().Is4() {
		maxPayload -= 20 // IPv4's counts its header
	}
	sent := 0
	defer func() {
		for i := range s.iovs {
			s.iovs[i].Base = nil // nothing of wireguard-go's is kept in the pool
		}
	}()
	for sent < len(bufs) {
		chunk := bufs[sent:min(len(bufs), sent+len(s.iovs))]
		s.batch = 0
		for i := 0; i < len(chunk); {
			size := len(chunk[i])
			j, total := i+1, size
			for gso && size > 0 && j < len(chunk) && j-i < udpSegments && len(chunk[j]) <= size && total+len(chunk[j]) <= maxPayload {
				total += len(chunk[j])
				j++
				if len(chunk[j-1]) < size {
					break // a shorter datagram ends the run
				}
			}
			s.message(chunk[i:j], i, src, e)
			s.ends[s.batch] = j
			s.batch++
			i = j
		}
		s.done, s.err = 0, nil
		err := raw.Write(s.write)
		if s.done > 0 {
			sent += s.ends[s.done-1]
		}
		if err == nil {
			err = s.err
		}
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// message makes message s.batch of the datagrams run, whose first is
// datagram at of the chunk: one iovec each, the source address if src,
// and the segment size if there are several.
func (s *kernelSend) message(run [][]byte, at int, src bool, e *endpoint) {
	for k, b := range run {
		s.iovs[at+k].Base = unsafe.SliceData(b)
		s.iovs[at+k].SetLen(len(b))
	}
	h := &s.hdrs[s.batch].hdr
	h.Name = (*byte)(unsafe.Pointer(&s.name))
	h.Namelen = unix.SizeofSockaddrInet6
	h.Iov = &s.iovs[at]
	h.SetIovlen(len(run))
	oob := &s.oob[s.batch]
	control := 0
	if src {
		c := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		c.Level, c.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
		c.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
		info := (*unix.Inet6Pktinfo)(unsafe.Pointer(&oob[unix.CmsgLen(0)]))
		info.Addr = e.src.As16()
		info.Ifindex = 0
		if e.src.IsLinkLocalUnicast() {
			info.Ifindex = uint32(e.ifindex) // a link-local source is the interface's
		}
		control = pktinfoSpace
	}
	if len(run) > 1 {
		c := (*unix.Cmsghdr)(unsafe.Pointer(&oob[control]))
		c.Level, c.Type = unix.SOL_UDP, unix.UDP_SEGMENT
		c.SetLen(unix.CmsgLen(2))
		*(*uint16)(unsafe.Pointer(&oob[control+unix.CmsgLen(0)])) = uint16(len(run[0]))
		control += unix.CmsgSpace(2)
	}
	h.Control = nil
	if control > 0 {
		h.Control = &oob[0]
	}
	h.SetControllen(control)
}

// sendmmsg is the system call; a variable, so that a test can fail it as
// kernels this machine does not run do.
var sendmmsg = func(fd uintptr, h *mmsghdr, n int) (int, syscall.Errno) {
	r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(h)), uintptr(n), unix.MSG_DONTWAIT, 0, 0)
	return int(r), errno
}

// writeMsgs is the raw write: false when the socket's buffer is full.
func (s *kernelSend) writeMsgs(fd uintptr) bool {
	for s.done < s.batch {
		n, errno := sendmmsg(fd, &s.hdrs[s.done], s.batch-s.done)
		switch errno {
		case 0:
			s.done += n
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			s.err = os.NewSyscallError("sendmmsg", errno)
			return true
		}
	}
	return true
}
