// Package wg carries pwgate's data path through WireGuard: it embeds
// golang.zx2c4.com/wireguard (the only package of pwgate that imports it)
// and joins it to the engine.
//
// A Tunnel is two things at once. To the engine it is the uplink Port: the
// encap goroutine transmits ip6-tun pseudowire packets (IPv6, no Ethernet
// header), or VXLAN packets without an Ethernet header, from UMEM chunks,
// the decap goroutine receives decrypted ones in UMEM chunks, exactly as
// with an AF_XDP port. To wireguard-go it is the
// tun.Device: its TUN reader goroutine Reads those packets, copying each
// into its own buffer where it encrypts in place, and its receivers Write
// decrypted packets, which the Tunnel copies into a chunk the decap
// goroutine filled. That is one copy each way, the one encryption needs.
// Everything else wireguard-go decrypts (BGP, SSH, ping to the overlay
// addresses) goes to a kernel TUN device (pwwg0), and what the host sends
// there goes into the tunnel, so the host's own stack works over the
// overlay as with kernel WireGuard.
//
// The two sides exchange descriptors through single-producer,
// single-consumer rings and wake each other through channels; nothing on
// the packet path allocates, locks per packet or makes a system call.
package wg

import (
	"errors"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/pseudowire"
	"github.com/pwgate/pwgate/dataplane/spsc"
	"github.com/pwgate/pwgate/dataplane/stats"
	"github.com/pwgate/pwgate/dataplane/vxlan"
	"github.com/pwgate/pwgate/dataplane/xsk"
)

// MaxStaged is how many pseudowire packets the Tunnel hands to wireguard-go
// while no session with the peer is up. wireguard-go holds them until its
// handshake completes (up to 128 batches, then it drops the oldest without
// a word); beyond MaxStaged the Tunnel drops them itself and counts them
// as dl_drop_no_session.
const MaxStaged = 100

// HostTUN is the kernel TUN device for the host's own overlay traffic
// (wireguard-go's tun.Device on Linux).
type HostTUN interface {
	Read(bufs [][]byte, sizes []int, offset int) (int, error)
	Write(bufs [][]byte, offset int) (int, error)
	BatchSize() int
	Close() error
}

// hostOffset is where packets from the host start in the host batches'
// buffers (room for a virtio-net header, as wireguard-go's TUN needs).
const hostOffset = 16

// hostBatch is one read from the host TUN.
type hostBatch struct {
	bufs  [][]byte
	sizes []int
	n, i  int // packets read, packets handed on
}

// Tunnel joins the engine (as its uplink xsk.Port) and wireguard-go (as its
// tun.Device). See the package comment.
type Tunnel struct {
	umem *xsk.UMEM
	mtu  int
	host HostTUN // nil: no host traffic

	// Engine to WireGuard: the encap goroutine pushes tx and pops comp;
	// wireguard-go's TUN reader pops tx and pushes comp.
	tx     *spsc.Ring[xsk.Desc]
	comp   *spsc.Ring[uint64]
	txWake chan struct{}

	// WireGuard to engine: the decap goroutine pushes fill and pops rx;
	// Write (under writeMu: several peers' receivers call it) pops fill
	// and pushes rx.
	fill    *spsc.Ring[uint64]
	rx      *spsc.Ring[xsk.Desc]
	rxWake  chan struct{}
	writeMu sync.Mutex
	timer   *time.Timer

	peer         atomic.Pointer[[16]byte] // the pseudowire peer's overlay address; nil: none
	vxlanTo      atomic.Pointer[[16]byte] // our VTEP address inside the tunnel (VXLAN mode); nil: none
	sessionUntil atomic.Int64             // monotonic time until which its session is known up
	staged       int                      // packets handed over while no session (reader's)

	hostIn, hostFree chan *hostBatch
	cur              *hostBatch // being handed to wireguard-go (reader's)
	hostBufs         [][]byte   // Write's packets for the host (writeMu)

	rdescs []xsk.Desc // reader's scratch
	rd, wr stats.Shard

	events    chan tun.Event
	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

var (
	_ xsk.Port   = (*Tunnel)(nil)
	_ tun.Device = (*Tunnel)(nil)
)

// NewTunnel returns a Tunnel over u whose packets fit mtu (the tunnel's
// MTU); the engine's halves of u's chunks circulate through it. host, if
// not nil, takes the host's overlay traffic; the Tunnel closes it.
func NewTunnel(u *xsk.UMEM, mtu int, host HostTUN) *Tunnel {
	half := u.NumChunks / 2 // each side's chunks: the rings can never overflow
	t := &Tunnel{
		umem: u, mtu: mtu, host: host,
		tx: spsc.New[xsk.Desc](half), comp: spsc.New[uint64](half), txWake: make(chan struct{}, 1),
		fill: spsc.New[uint64](half), rx: spsc.New[xsk.Desc](half), rxWake: make(chan struct{}, 1),
		timer:  time.NewTimer(time.Hour),
		hostIn: make(chan *hostBatch, 2), hostFree: make(chan *hostBatch, 2),
		hostBufs: make([][]byte, 0, conn.IdealBatchSize),
		rdescs:   make([]xsk.Desc, conn.IdealBatchSize),
		events:   make(chan tun.Event, 1), closed: make(chan struct{}),
	}
	t.timer.Stop()
	if host != nil {
		for i := 0; i < 2; i++ {
			b := &hostBatch{bufs: make([][]byte, host.BatchSize()), sizes: make([]int, host.BatchSize())}
			for j := range b.bufs {
				b.bufs[j] = make([]byte, hostOffset+max(mtu, 1500))
			}
			t.hostFree <- b
		}
		t.wg.Add(1)
		go t.readHost()
	}
	return t
}

// SetPeer sets the overlay address of the pseudowire's peer: decrypted
// IPv6 packets from it with next header 252 go to the engine. An invalid
// address sends everything to the host.
func (t *Tunnel) SetPeer(a [16]byte, ok bool) {
	if !ok {
		t.peer.Store(nil)
		return
	}
	t.peer.Store(&a)
}

// SetVXLAN makes decrypted VXLAN packets to our VTEP address local (UDP
// to port 4789, IPv4 or IPv6) go to the engine; an invalid address sends
// everything to the host.
func (t *Tunnel) SetVXLAN(local netip.Addr) {
	if !local.IsValid() {
		t.vxlanTo.Store(nil)
		return
	}
	a := local.As16()
	t.vxlanTo.Store(&a)
}

// sessionLife is how long a session stays usable after a sign of it: a
// handshake, a keepalive or data from the peer (WireGuard rejects keys
// older than this without a new handshake).
const sessionLife = 180 * time.Second

// epoch anchors monotime.
var epoch = time.Now()

// monotime returns the monotonic clock in nanoseconds, without allocating.
func monotime() int64 { return int64(time.Since(epoch)) }

// MarkSession records a sign that a session with the pseudowire's peer is
// up (the Device calls it on a handshake or keepalive, Write on data).
func (t *Tunnel) MarkSession() { t.sessionUntil.Store(monotime() + int64(sessionLife)) }

// SessionUp reports whether a session with the pseudowire's peer is known
// to be up.
func (t *Tunnel) SessionUp() bool { return monotime() < t.sessionUntil.Load() }

// Snapshot adds the Tunnel's published counters into s.
func (t *Tunnel) Snapshot(s *stats.Snapshot) { s.Merge(&t.rd, &t.wr) }

// --- The engine's side: xsk.Port. ---

// Receive implements xsk.Port: decrypted pseudowire packets, in chunks the
// engine filled.
func (t *Tunnel) Receive(descs []xsk.Desc) int { return t.rx.Pop(descs) }

// Fill implements xsk.Port: chunks for Write to copy packets into.
func (t *Tunnel) Fill(addrs []uint64) int { return t.fill.Push(addrs) }

// FillNeedsWakeup implements xsk.Port; there is no driver to wake.
func (t *Tunnel) FillNeedsWakeup() bool { return false }

// WakeRx implements xsk.Port.
func (t *Tunnel) WakeRx() unix.Errno { return 0 }

// Wait implements xsk.Port: it returns when Write delivered packets, Wake
// was called, the Tunnel closed, or timeout passed.
func (t *Tunnel) Wait(timeout time.Duration) unix.Errno {
	if t.rx.Len() > 0 {
		return 0
	}
	t.timer.Reset(timeout)
	select {
	case <-t.rxWake:
	case <-t.timer.C:
	case <-t.closed:
	}
	t.timer.Stop()
	return 0
}

// Wake implements xsk.Port.
func (t *Tunnel) Wake() { signal(t.rxWake) }

// Transmit implements xsk.Port: pseudowire packets for wireguard-go.
func (t *Tunnel) Transmit(descs []xsk.Desc) int { return t.tx.Push(descs) }

// Kick implements xsk.Port: it wakes wireguard-go's TUN reader.
func (t *Tunnel) Kick() unix.Errno {
	signal(t.txWake)
	return 0
}

// Complete implements xsk.Port: chunks whose packets wireguard-go has
// copied.
func (t *Tunnel) Complete(addrs []uint64) int { return t.comp.Pop(addrs) }

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// --- wireguard-go's side: tun.Device. ---

// Read implements tun.Device for wireguard-go's TUN reader: it copies
// packets the engine transmitted, and packets from the host, into bufs at
// offset, blocking until there is at least one.
func (t *Tunnel) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	for {
		n := t.readEngine(bufs, sizes, offset)
		n += t.readHostBatch(bufs[n:], sizes[n:], offset)
		t.rd.Publish()
		if n > 0 {
			return n, nil
		}
		select {
		case <-t.txWake:
		case b := <-t.hostIn:
			t.cur = b
		case <-t.closed:
			return 0, os.ErrClosed
		}
	}
}

// readEngine copies up to len(bufs) of the engine's packets into bufs.
func (t *Tunnel) readEngine(bufs [][]byte, sizes []int, offset int) int {
	k := t.tx.Pop(t.rdescs[:min(len(bufs), len(t.rdescs))])
	if k == 0 {
		return 0
	}
	// VXLAN has many peers and no one session: wireguard-go holds what
	// waits for a handshake, per peer.
	up := t.vxlanTo.Load() != nil || t.SessionUp()
	if up {
		t.staged = 0
	}
	n := 0
	for _, d := range t.rdescs[:k] {
		pkt := t.umem.Mem[d.Addr : d.Addr+uint64(d.Len)]
		switch {
		case len(pkt) > len(bufs[n])-offset:
			t.rd.Inc(stats.DLDropOversize)
		case !up && t.staged >= MaxStaged:
			t.rd.Inc(stats.DLDropNoSession)
		default:
			if !up {
				t.staged++
			}
			sizes[n] = copy(bufs[n][offset:], pkt)
			n++
		}
		t.comp.Push1(d.Addr) // sized to hold every chunk: cannot fail
	}
	return n
}

// readHostBatch copies up to len(bufs) of the host's packets into bufs.
func (t *Tunnel) readHostBatch(bufs [][]byte, sizes []int, offset int) int {
	if t.cur == nil {
		select {
		case t.cur = <-t.hostIn:
		default:
			return 0
		}
	}
	n := 0
	b := t.cur
	for ; n < len(bufs) && b.i < b.n; b.i++ {
		pkt := b.bufs[b.i][hostOffset : hostOffset+b.sizes[b.i]]
		if len(pkt) > len(bufs[n])-offset {
			continue
		}
		sizes[n] = copy(bufs[n][offset:], pkt)
		n++
	}
	t.rd.Add(stats.WGHostToTunnel, uint64(n))
	if b.i == b.n {
		t.cur = nil
		t.hostFree <- b // never blocks: two batches, two slots
	}
	return n
}

// readHost is the goroutine that reads the host's packets from the kernel
// TUN, a batch at a time, for Read to hand on.
func (t *Tunnel) readHost() {
	defer t.wg.Done()
	for {
		var b *hostBatch
		select {
		case b = <-t.hostFree:
		case <-t.closed:
			return
		}
		n, err := t.host.Read(b.bufs, b.sizes, hostOffset)
		if err != nil && (errors.Is(err, os.ErrClosed) || t.isClosed()) {
			return
		}
		if n == 0 {
			t.hostFree <- b
			if err != nil {
				time.Sleep(10 * time.Millisecond) // a bad read: do not spin on it
			}
			continue
		}
		b.n, b.i = n, 0
		select {
		case t.hostIn <- b:
		case <-t.closed:
			return
		}
	}
}

func (t *Tunnel) isClosed() bool {
	select {
	case <-t.closed:
		return true
	default:
		return false
	}
}

// Write implements tun.Device for wireguard-go's receivers: decrypted
// pseudowire packets from the peer go to the engine, the rest to the host.
func (t *Tunnel) Write(bufs [][]byte, offset int) (int, error) {
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	peer, vx := t.peer.Load(), t.vxlanTo.Load()
	t.hostBufs = t.hostBufs[:0]
	delivered := false
	for _, b := range bufs {
		pkt := b[offset:]
		if !(peer != nil && isPseudowire(pkt, peer) || vx != nil && isVXLAN(pkt, vx)) {
			t.hostBufs = append(t.hostBufs, b)
			continue
		}
		if t.toEngine(pkt) {
			delivered = true
		}
	}
	if delivered {
		t.MarkSession()
		signal(t.rxWake)
	}
	if len(t.hostBufs) > 0 && t.host != nil {
		t.host.Write(t.hostBufs, offset) // lost host packets are the host's business (TCP resends)
		t.wr.Add(stats.WGTunnelToHost, uint64(len(t.hostBufs)))
	}
	t.wr.Publish()
	return len(bufs), nil
}

// toEngine copies pkt into a chunk the engine filled and queues it.
func (t *Tunnel) toEngine(pkt []byte) bool {
	if len(pkt) > int(t.umem.ChunkSize)-xsk.RxHeadroom {
		t.wr.Inc(stats.ULDropOversize)
		return false
	}
	base, ok := t.fill.Pop1()
	if !ok {
		t.wr.Inc(stats.ULDropRxRingFull)
		return false
	}
	addr := base + xsk.RxHeadroom
	n := copy(t.umem.Mem[addr:base+t.umem.ChunkSize], pkt)
	t.rx.Push1(xsk.Desc{Addr: addr, Len: uint32(n)}) // sized to hold every chunk
	return true
}

// isPseudowire reports whether pkt is an IPv6 pseudowire packet from peer.
func isPseudowire(pkt []byte, peer *[16]byte) bool {
	if len(pkt) < pseudowire.IP6TunOverhead {
		return false
	}
	ip := frame.IPv6(pkt)
	return ip.Version() == 6 && ip.NextHeader() == pseudowire.IPProto && ip.SrcEquals(peer)
}

// isVXLAN reports whether pkt is a VXLAN packet (UDP to port 4789, not
// an IPv4 fragment, no IPv6 extension headers) to the address at to.
func isVXLAN(pkt []byte, to *[16]byte) bool {
	if len(pkt) >= frame.IPv4Len+frame.UDPLen && pkt[0] == 0x45 { // version 4, no options
		ip := frame.IPv4(pkt)
		return ip.Protocol() == frame.ProtoUDP && !ip.IsFragment() && ip.DstEquals([4]byte(to[12:])) &&
			[12]byte(to[:12]) == [12]byte{10: 0xff, 11: 0xff} && frame.UDP(pkt[frame.IPv4Len:]).DstPort() == vxlan.Port
	}
	if len(pkt) >= frame.IPv6Len+frame.UDPLen && frame.IPv6(pkt).Version() == 6 {
		ip := frame.IPv6(pkt)
		return ip.NextHeader() == frame.ProtoUDP && ip.DstEquals(to) && frame.UDP(pkt[frame.IPv6Len:]).DstPort() == vxlan.Port
	}
	return false
}

// File implements tun.Device; there is no file.
func (t *Tunnel) File() *os.File { return nil }

// MTU implements tun.Device.
func (t *Tunnel) MTU() (int, error) { return t.mtu, nil }

// Name implements tun.Device.
func (t *Tunnel) Name() (string, error) { return "pwgate", nil }

// Events implements tun.Device: there are none. NewDevice brings the
// device up itself, on its caller's thread: an EventUp brought it up from
// wireguard-go's event goroutine, on any thread, racing NewDevice's own
// configuration, and the kernel bind's socket opened in whatever network
// namespace that thread was in (the bench's far end runs in a namespace
// of its own).
func (t *Tunnel) Events() <-chan tun.Event { return t.events }

// BatchSize implements tun.Device.
func (t *Tunnel) BatchSize() int { return conn.IdealBatchSize }

// Close implements tun.Device: it wakes everyone waiting, closes the host
// TUN and waits for the host reader. It is safe to call more than once.
func (t *Tunnel) Close() error {
	var err error
	t.closeOnce.Do(func() {
		close(t.closed)
		close(t.events)
		if t.host != nil {
			err = t.host.Close()
		}
		t.wg.Wait()
	})
	return err
}
