package wg

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.zx2c4.com/wireguard/conn"

	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/stats"
	"github.com/pwgate/pwgate/dataplane/xsk"
)

// XDPBind is WireGuard's UDP on an AF_XDP socket of the uplink
// (wireguard.bind: xdp): the uplink's XDP program sends it every datagram
// to WireGuard's port, and it sends by writing whole frames (Ethernet, IP,
// UDP) into its UMEM. No kernel UDP socket, no system call per datagram:
// a batch costs one poll when the socket ran dry and one kick when it
// sends. The kernel's routing and neighbour tables still decide where a
// datagram goes (Resolver): a goroutine of the bind looks each destination
// up when it is new (a peer's configured endpoint, when it is parsed) and
// again once a second, so that a send never waits for netlink. Datagrams
// to a destination being looked up wait in their chunks (at most
// maxPending in all, as the kernel queues a few packets for a neighbour
// being resolved) and leave when the route is found; a route that fails a
// refresh is kept for routeGrace while it is tried again.
//
// The socket and its UMEM are the caller's (control opens them beside the
// engine's and closes them after the device); the bind owns the chunks:
// half for receiving, half for sending.
type XDPBind struct {
	port    xsk.Port
	umem    *xsk.UMEM
	udpPort uint16
	resolve Resolver

	mu     sync.Mutex  // Open and Close against each other
	open   atomic.Bool // read by Send without mu
	closed chan struct{}
	looker sync.WaitGroup // the route goroutine of the open bind

	// Receive side (wireguard-go's one receiving goroutine).
	rxDescs []xsk.Desc
	rxBases []uint64
	eps     endpoints

	// Send side (several peers' senders).
	txMu    sync.Mutex
	free    []uint64 // chunks to send from
	txDesc  []xsk.Desc
	comp    []uint64
	pending []pendingTx // waiting for their route (at most maxPending)

	// Routes by destination: read by Send, looked up by the route
	// goroutine (look), which newDst wakes.
	rmu    sync.Mutex
	routes map[netip.Addr]*cachedRoute
	newDst chan struct{}
	due    []netip.Addr // look's scratch

	// Drops, added into the Device's counters.
	badChecksum, notForUs, txRingFull, fillShort atomic.Uint64
}

// Route is how a datagram to a destination leaves the uplink: our source
// address and the Ethernet addresses.
type Route struct {
	Src            netip.Addr
	SrcMAC, DstMAC frame.MAC
}

// Resolver returns the route to dst (the kernel's: route and neighbour
// tables), or why there is none yet.
type Resolver func(dst netip.Addr) (Route, error)

type cachedRoute struct {
	r    Route
	ok   bool      // r is usable
	err  error     // why not (nil: not looked up yet)
	at   time.Time // last looked up
	good time.Time // last found
	used time.Time // last sent to
}

// Route lifetimes in the cache: a route is looked up again routeFresh
// after it was found (a new router, a changed MAC), tries are routeRetry
// apart, a route that fails a refresh is used for routeGrace more (one
// bad netlink answer, a neighbour entry gone stale: our frames never
// confirm it to the kernel), and a destination not sent to for routeIdle
// is forgotten.
const (
	routeFresh = time.Second
	routeRetry = 100 * time.Millisecond
	routeGrace = 10 * time.Second
	routeIdle  = time.Minute
	// lookBatch bounds the lookups of one round (a flood of datagrams
	// from spoofed sources makes cookie replies to as many destinations).
	lookBatch = 32
)

// pendingTx is a datagram whose payload waits in its chunk, at its place
// behind the headers, for its destination's route.
type pendingTx struct {
	dst  netip.AddrPort
	base uint64
	n    int
	at   time.Time
}

// maxPending bounds the datagrams waiting for routes; pendingLife is how
// long one waits.
const (
	maxPending  = 32
	pendingLife = 3 * time.Second
)

// errRoutePending: a new destination's route is being looked up.
var errRoutePending = fmt.Errorf("%w: the route is being looked up", syscall.ENETUNREACH)

// NewXDPBind returns a bind over port (an AF_XDP socket on the uplink,
// over umem, which only it uses) for WireGuard's udpPort.
func NewXDPBind(port xsk.Port, umem *xsk.UMEM, udpPort uint16, resolve Resolver) *XDPBind {
	b := &XDPBind{
		port: port, umem: umem, udpPort: udpPort, resolve: resolve,
		rxDescs: make([]xsk.Desc, conn.IdealBatchSize), rxBases: make([]uint64, 0, conn.IdealBatchSize),
		txDesc: make([]xsk.Desc, 0, conn.IdealBatchSize), comp: make([]uint64, umem.NumChunks),
		routes: map[netip.Addr]*cachedRoute{}, newDst: make(chan struct{}, 1),
		closed: make(chan struct{}),
	}
	half := umem.NumChunks / 2
	fill := make([]uint64, half)
	for i := range fill {
		fill[i] = uint64(i) * umem.ChunkSize
	}
	n := 0
	for n < len(fill) {
		k := port.Fill(fill[n:])
		if k == 0 {
			break // a fill ring smaller than half the chunks: the rest send
		}
		n += k
	}
	b.free = append(b.free, fill[n:]...)
	for i := half; i < umem.NumChunks; i++ {
		b.free = append(b.free, uint64(i)*umem.ChunkSize)
	}
	return b
}

var _ conn.Bind = (*XDPBind)(nil)

// Open implements conn.Bind. The XDP program was loaded for one port: any
// other is refused (a new listen_port needs pwgated restarted).
func (b *XDPBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open.Load() {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	if port != 0 && port != b.udpPort {
		return nil, 0, fmt.Errorf("the XDP bind serves UDP port %d, not %d: a new listen_port needs pwgated restarted", b.udpPort, port)
	}
	b.closed = make(chan struct{})
	b.open.Store(true)
	closed := b.closed
	b.looker.Add(1)
	go b.look(closed)
	return []conn.ReceiveFunc{func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		return b.receive(packets, sizes, eps, closed)
	}}, b.udpPort, nil
}

// Close implements conn.Bind: the receive function returns net.ErrClosed.
func (b *XDPBind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open.Load() {
		b.open.Store(false)
		close(b.closed)
		b.port.Wake()
		b.looker.Wait()
	}
	return nil
}

// SetMark implements conn.Bind; marks are for the kernel's routing, which
// the bind's datagrams do not take.
func (b *XDPBind) SetMark(uint32) error { return nil }

// BatchSize implements conn.Bind.
func (b *XDPBind) BatchSize() int { return conn.IdealBatchSize }

// ParseEndpoint implements conn.Bind.
func (b *XDPBind) ParseEndpoint(s string) (conn.Endpoint, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, err
	}
	dst := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	b.route(dst.Addr()) // looked up before the first datagram to it
	return &endpoint{dst: dst}, nil
}

// receive waits for datagrams and copies up to len(packets) of their
// payloads out; frames that are not well-formed UDP to our port are
// counted and dropped.
func (b *XDPBind) receive(packets [][]byte, sizes []int, eps []conn.Endpoint, closed chan struct{}) (int, error) {
	for {
		select {
		case <-closed:
			return 0, net.ErrClosed
		default:
		}
		k := b.port.Receive(b.rxDescs[:min(len(packets), len(b.rxDescs))])
		if k == 0 {
			if e := b.port.Wait(100 * time.Millisecond); e != 0 {
				time.Sleep(10 * time.Millisecond) // a failing poll: do not spin on it
			}
			continue
		}
		n := 0
		b.rxBases = b.rxBases[:0]
		for _, d := range b.rxDescs[:k] {
			f := b.umem.Frame(d.Addr, d.Len)
			payload, from, to, why := parseDatagram(f, b.udpPort)
			if why == dgOK && !validMessage(payload) {
				why = dgNotUDP // before an endpoint is made for its source
			}
			switch why {
			case dgOK:
				sizes[n] = copy(packets[n], payload)
				eps[n] = b.eps.get(epKey{from: from, to: to})
				n++
			case dgBadChecksum:
				b.badChecksum.Add(1)
			default:
				b.notForUs.Add(1)
			}
			b.rxBases = append(b.rxBases, b.umem.Base(d.Addr))
		}
		// The fill ring holds every receive chunk: it always takes them.
		if m := b.port.Fill(b.rxBases); m < len(b.rxBases) {
			b.fillShort.Add(uint64(len(b.rxBases) - m))
		}
		if b.port.FillNeedsWakeup() {
			b.port.WakeRx()
		}
		if n > 0 {
			return n, nil
		}
	}
}

// Send implements conn.Bind: each buffer goes out as one datagram to ep.
func (b *XDPBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	if !b.open.Load() {
		return net.ErrClosed
	}
	dst := netip.AddrPortFrom(ep.DstIP().Unmap(), dstPort(ep))
	r, err := b.route(dst.Addr())
	if errors.Is(err, errRoutePending) {
		return b.hold(bufs, dst)
	}
	if err != nil {
		return err
	}
	b.txMu.Lock()
	defer b.txMu.Unlock()
	b.reclaim()
	b.txDesc = b.txDesc[:0]
	for _, p := range bufs {
		if len(b.free) == 0 {
			break
		}
		base := b.free[len(b.free)-1]
		l := buildDatagram(b.umem.Chunk(base), &r, b.udpPort, dst, p)
		if l == 0 {
			continue // cannot be: wireguard-go's messages fit a chunk
		}
		b.free = b.free[:len(b.free)-1]
		b.txDesc = append(b.txDesc, xsk.Desc{Addr: base, Len: uint32(l)})
	}
	q := b.port.Transmit(b.txDesc)
	for _, d := range b.txDesc[q:] {
		b.free = append(b.free, d.Addr)
	}
	if lost := len(bufs) - q; lost > 0 {
		b.txRingFull.Add(uint64(lost))
	}
	if e := b.port.Kick(); e != 0 {
		return fmt.Errorf("send on the uplink: %w", e)
	}
	if q < len(bufs) {
		return errTxRingFull
	}
	return nil
}

var errTxRingFull = errors.New("the uplink's transmit ring is full")

// reclaim takes back the chunks the kernel sent. Called with txMu held.
func (b *XDPBind) reclaim() {
	n := b.port.Complete(b.comp)
	b.free = append(b.free, b.comp[:n]...)
}

// payloadAt is where a datagram to dst carries its payload in its frame.
func payloadAt(dst netip.Addr) int {
	if dst.Is4() {
		return frame.EthernetLen + frame.IPv4Len + frame.UDPLen
	}
	return frame.EthernetLen + frame.IPv6Len + frame.UDPLen
}

// hold keeps bufs, for dst whose route is being looked up, in chunks
// until flush sends them.
func (b *XDPBind) hold(bufs [][]byte, dst netip.AddrPort) error {
	b.txMu.Lock()
	defer b.txMu.Unlock()
	b.reclaim()
	off, now := payloadAt(dst.Addr()), time.Now()
	for _, p := range bufs {
		if len(b.pending) >= maxPending || len(b.free) == 0 || off+len(p) > int(b.umem.ChunkSize) {
			return errRoutePending
		}
		base := b.free[len(b.free)-1]
		b.free = b.free[:len(b.free)-1]
		copy(b.umem.Chunk(base)[off:], p)
		b.pending = append(b.pending, pendingTx{dst: dst, base: base, n: len(p), at: now})
	}
	return nil
}

// flush sends the held datagrams whose routes were found, drops those
// whose routes failed or that waited too long, and keeps the rest.
func (b *XDPBind) flush(now time.Time) {
	b.txMu.Lock()
	defer b.txMu.Unlock()
	if len(b.pending) == 0 {
		return
	}
	b.txDesc = b.txDesc[:0]
	keep := b.pending[:0]
	for _, p := range b.pending {
		r, err := b.cached(p.dst.Addr())
		switch {
		case err == nil:
			chunk := b.umem.Chunk(p.base)
			off := payloadAt(p.dst.Addr())
			l := buildDatagram(chunk, &r, b.udpPort, p.dst, chunk[off:off+p.n])
			b.txDesc = append(b.txDesc, xsk.Desc{Addr: p.base, Len: uint32(l)})
		case errors.Is(err, errRoutePending) && now.Sub(p.at) < pendingLife:
			keep = append(keep, p)
		default:
			b.free = append(b.free, p.base)
		}
	}
	b.pending = keep
	q := b.port.Transmit(b.txDesc)
	for _, d := range b.txDesc[q:] {
		b.free = append(b.free, d.Addr)
	}
	b.txRingFull.Add(uint64(len(b.txDesc) - q))
	b.port.Kick()
}

// cached returns dst's route as the cache has it, without noting a use.
func (b *XDPBind) cached(dst netip.Addr) (Route, error) {
	b.rmu.Lock()
	defer b.rmu.Unlock()
	switch c := b.routes[dst]; {
	case c == nil:
		return Route{}, errRoutePending
	case c.ok:
		return c.r, nil
	case c.err != nil:
		return Route{}, c.err
	}
	return Route{}, errRoutePending
}

// route returns the route to dst from the cache, or why there is none;
// a new destination is handed to look.
func (b *XDPBind) route(dst netip.Addr) (Route, error) {
	now := time.Now()
	b.rmu.Lock()
	defer b.rmu.Unlock()
	c := b.routes[dst]
	if c == nil {
		if len(b.routes) >= maxEndpoints {
			return Route{}, errTooManyDsts
		}
		c = &cachedRoute{}
		b.routes[dst] = c
		signal(b.newDst)
	}
	c.used = now
	switch {
	case c.ok:
		return c.r, nil
	case c.err != nil:
		return Route{}, c.err
	}
	return Route{}, errRoutePending
}

var errTooManyDsts = fmt.Errorf("%w: routes to %d destinations are being kept already", syscall.ENETUNREACH, maxEndpoints)

// look is the route goroutine: it looks up new destinations and refreshes
// known ones, until closed.
func (b *XDPBind) look(closed chan struct{}) {
	defer b.looker.Done()
	t := time.NewTicker(routeRetry)
	defer t.Stop()
	for {
		select {
		case <-closed:
			return
		case <-b.newDst:
		case <-t.C:
		}
		now := time.Now()
		b.lookRound(now)
		b.flush(now)
	}
}

// lookRound looks up the destinations that are due (at most lookBatch)
// and forgets the idle ones.
func (b *XDPBind) lookRound(now time.Time) {
	b.rmu.Lock()
	b.due = b.due[:0]
	for dst, c := range b.routes {
		switch {
		case now.Sub(c.used) >= routeIdle:
			delete(b.routes, dst)
		case len(b.due) < lookBatch && now.Sub(c.at) >= routeRetry && (!c.ok || now.Sub(c.good) >= routeFresh):
			b.due = append(b.due, dst)
		}
	}
	b.rmu.Unlock()
	for _, dst := range b.due {
		r, err := b.resolve(dst)
		if err == nil && r.Src.Is4() != dst.Is4() {
			err = fmt.Errorf("the uplink has no IPv%d source address for %s", map[bool]int{true: 4, false: 6}[dst.Is4()], dst)
		}
		b.rmu.Lock()
		if c := b.routes[dst]; c != nil {
			c.at = now
			switch {
			case err == nil:
				c.r, c.ok, c.err, c.good = r, true, nil, now
			case !c.ok || now.Sub(c.good) >= routeGrace:
				// As the kernel's socket would fail: the device retries
				// handshakes once there is a route.
				c.ok, c.err = false, fmt.Errorf("%w: %v", syscall.ENETUNREACH, err)
			}
		}
		b.rmu.Unlock()
	}
}

// dstPort returns ep's port.
func dstPort(ep conn.Endpoint) uint16 {
	if e, ok := ep.(*endpoint); ok {
		return e.dst.Port()
	}
	ap, _ := netip.ParseAddrPort(ep.DstToString())
	return ap.Port()
}

// snapshot adds the bind's drops into s: frames that were not
// well-formed UDP to our port or had a bad checksum are invalid
// datagrams; datagrams the uplink's transmit ring had no room for are
// counted with the packets for the uplink that it had no room for
// (dl_drop_tx_ring_full: the counters' prefix is where the traffic came
// from, as the engine's).
func (b *XDPBind) snapshot(s *stats.Snapshot) {
	s[stats.WGRxInvalid] += b.badChecksum.Load() + b.notForUs.Load()
	s[stats.DLDropTxRingFull] += b.txRingFull.Load()
	s[stats.ULDropRxRingFull] += b.fillShort.Load()
}

// Why parseDatagram refused a frame.
const (
	dgOK = iota
	dgNotUDP
	dgBadChecksum
)

// parseDatagram returns the UDP payload of f, an Ethernet frame, if it is
// an IPv6 or IPv4 (no options, not a fragment) datagram to port with
// consistent lengths and a correct checksum (IPv4's may be zero), with its
// source and our address.
func parseDatagram(f []byte, port uint16) (payload []byte, from netip.AddrPort, to netip.Addr, why int) {
	if len(f) < frame.EthernetLen {
		return nil, from, to, dgNotUDP
	}
	var udp frame.UDP
	var addrs []byte
	v6 := false
	switch binary.BigEndian.Uint16(f[12:14]) {
	case 0x86dd:
		ip := frame.IPv6(f[frame.EthernetLen:])
		if len(ip) < frame.IPv6Len+frame.UDPLen || ip.Version() != 6 || ip.NextHeader() != frame.ProtoUDP ||
			int(ip.PayloadLength()) > len(ip)-frame.IPv6Len {
			return nil, from, to, dgNotUDP
		}
		udp = frame.UDP(ip[frame.IPv6Len : frame.IPv6Len+int(ip.PayloadLength())])
		addrs, v6 = ip.Addrs(), true
		from, to = netip.AddrPortFrom(ip.Src(), 0), ip.Dst()
	case 0x0800:
		ip := frame.IPv4(f[frame.EthernetLen:])
		if len(ip) < frame.IPv4Len+frame.UDPLen || ip[0] != 0x45 || ip.Protocol() != frame.ProtoUDP || ip.IsFragment() ||
			int(ip.TotalLength()) > len(ip) || int(ip.TotalLength()) < frame.IPv4Len+frame.UDPLen {
			return nil, from, to, dgNotUDP
		}
		udp = frame.UDP(ip[frame.IPv4Len:ip.TotalLength()])
		addrs = ip.Addrs()
		from, to = netip.AddrPortFrom(ip.Src(), 0), ip.Dst()
	default:
		return nil, from, to, dgNotUDP
	}
	if len(udp) < frame.UDPLen || udp.DstPort() != port || int(udp.Length()) != len(udp) {
		return nil, from, to, dgNotUDP
	}
	// Unicast between unicast addresses only: the kernel would neither
	// deliver the rest to a unicast socket nor answer it.
	if unicast := func(a netip.Addr) bool { return a.IsGlobalUnicast() || a.IsLinkLocalUnicast() }; !unicast(to) || !unicast(from.Addr()) {
		return nil, from, to, dgNotUDP
	}
	if sum := udp.Checksum(); sum != 0 || v6 {
		acc := frame.Checksum(0, addrs) + uint64(len(udp)) + frame.ProtoUDP
		if sum == 0 || frame.Fold(frame.Checksum(acc, udp)) != 0 {
			return nil, from, to, dgBadChecksum
		}
	}
	return udp.Payload(), netip.AddrPortFrom(from.Addr(), udp.SrcPort()), to, dgOK
}

// buildDatagram writes into b an Ethernet frame carrying payload from our
// port to dst by r, and returns its length (0: it does not fit).
func buildDatagram(b []byte, r *Route, port uint16, dst netip.AddrPort, payload []byte) int {
	l3 := frame.IPv6Len
	if dst.Addr().Is4() {
		l3 = frame.IPv4Len
	}
	n := frame.EthernetLen + l3 + frame.UDPLen + len(payload)
	if n > len(b) {
		return 0
	}
	e := frame.Ethernet(b)
	e.SetDst(r.DstMAC)
	e.SetSrc(r.SrcMAC)
	udpLen := frame.UDPLen + len(payload)
	ip := b[frame.EthernetLen:]
	var addrs []byte
	if l3 == frame.IPv6Len {
		e.SetEtherType(0x86dd)
		frame.IPv6(ip).Encode(uint16(udpLen), frame.ProtoUDP, 64, r.Src, dst.Addr())
		addrs = frame.IPv6(ip).Addrs()
	} else {
		e.SetEtherType(0x0800)
		frame.IPv4(ip).Encode(uint16(frame.IPv4Len+udpLen), frame.ProtoUDP, 64, r.Src, dst.Addr())
		addrs = frame.IPv4(ip).Addrs()
	}
	udp := frame.UDP(ip[l3 : l3+udpLen])
	udp.Encode(port, dst.Port(), uint16(udpLen))
	copy(udp.Payload(), payload)
	c := frame.Fold(frame.Checksum(frame.Checksum(0, addrs)+uint64(udpLen)+frame.ProtoUDP, udp))
	if c == 0 {
		c = 0xffff
	}
	udp.SetChecksum(c)
	return n
}
