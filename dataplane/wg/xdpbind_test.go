package wg

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"

	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/stats"
	"github.com/pwgate/pwgate/dataplane/xsk"
)

var (
	xdpRoute6 = Route{Src: netip.MustParseAddr("2001:db8:a::a"), SrcMAC: frame.MAC{2, 0, 0, 0, 0, 0xa}, DstMAC: frame.MAC{2, 0, 0, 0, 0, 0xb}}
	xdpRoute4 = Route{Src: netip.MustParseAddr("192.0.2.10"), SrcMAC: frame.MAC{2, 0, 0, 0, 0, 0xa}, DstMAC: frame.MAC{2, 0, 0, 0, 0, 0xb}}
	xdpPeer6  = netip.MustParseAddrPort("[2001:db8:b::b]:40000")
	xdpPeer4  = netip.MustParseAddrPort("192.0.2.20:40000")
)

// A datagram built for the wire parses back to the same payload, source
// and destination; a flipped bit fails the checksum.
func TestDatagramRoundTrip(t *testing.T) {
	payload := bytes.Repeat([]byte{0x5a, 0xa5, 3}, 401)
	for _, c := range []struct {
		r   Route
		dst netip.AddrPort
	}{{xdpRoute6, xdpPeer6}, {xdpRoute4, xdpPeer4}} {
		b := make([]byte, 2048)
		n := buildDatagram(b, &c.r, 51820, c.dst, payload)
		if n == 0 {
			t.Fatal("did not fit")
		}
		// As the far end receives it: from us, to its port.
		got, from, to, why := parseDatagram(b[:n], c.dst.Port())
		if why != dgOK || !bytes.Equal(got, payload) || from != netip.AddrPortFrom(c.r.Src, 51820) || to != c.dst.Addr() {
			t.Fatalf("%v: parsed %v from %v to %v (%d bytes)", c.dst, why, from, to, len(got))
		}
		if _, _, _, why := parseDatagram(b[:n], 51820); why != dgNotUDP {
			t.Errorf("%v: to another port: %v", c.dst, why)
		}
		b[n-1] ^= 1
		if _, _, _, why := parseDatagram(b[:n], c.dst.Port()); why != dgBadChecksum {
			t.Errorf("%v: a flipped bit: %v", c.dst, why)
		}
		b[n-1] ^= 1
		// Ethernet padding after the datagram is not payload.
		padded := append(b[:n:n], make([]byte, 20)...)
		if got, _, _, why := parseDatagram(padded, c.dst.Port()); why != dgOK || len(got) != len(payload) {
			t.Errorf("%v: padded: %v, %d bytes", c.dst, why, len(got))
		}
		for cut := 1; cut < 8; cut++ {
			if _, _, _, why := parseDatagram(b[:n-cut], c.dst.Port()); why == dgOK {
				t.Errorf("%v: cut by %d: accepted", c.dst, cut)
			}
		}
	}
	if n := buildDatagram(make([]byte, 100), &xdpRoute6, 51820, xdpPeer6, payload); n != 0 {
		t.Errorf("a datagram larger than the buffer: %d", n)
	}
	// IPv4 with a zero checksum is accepted (IPv6's is not).
	b := make([]byte, 2048)
	n := buildDatagram(b, &xdpRoute4, 51820, xdpPeer4, payload)
	frame.UDP(b[frame.EthernetLen+frame.IPv4Len:]).SetChecksum(0)
	if _, _, _, why := parseDatagram(b[:n], xdpPeer4.Port()); why != dgOK {
		t.Errorf("IPv4 without a checksum: %v", why)
	}
	n = buildDatagram(b, &xdpRoute6, 51820, xdpPeer6, payload)
	frame.UDP(b[frame.EthernetLen+frame.IPv6Len:]).SetChecksum(0)
	if _, _, _, why := parseDatagram(b[:n], xdpPeer6.Port()); why != dgBadChecksum {
		t.Errorf("IPv6 without a checksum: %v", why)
	}
}

func FuzzParseDatagram(f *testing.F) {
	b := make([]byte, 2048)
	f.Add(b[:buildDatagram(b, &xdpRoute6, 51820, xdpPeer6, []byte("hello"))])
	f.Add(b[:buildDatagram(b, &xdpRoute4, 51820, xdpPeer4, []byte("hello"))])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, fr []byte) {
		p, from, _, why := parseDatagram(fr, 40000)
		if why != dgOK {
			return
		}
		if len(p) > len(fr) || !from.IsValid() {
			t.Fatalf("payload of %d bytes from a %d-byte frame, from %v", len(p), len(fr), from)
		}
	})
}

// transport returns an n-byte message shaped like a WireGuard transport
// message (type 4), filled with fill.
func transport(n int, fill byte) []byte {
	m := bytes.Repeat([]byte{fill}, n)
	copy(m, []byte{4, 0, 0, 0})
	return m
}

// sendRouted sends once the route to ep is known (the first sends to a
// new destination are held while it is looked up), or after 2 s.
func sendRouted(t testing.TB, b *XDPBind, msgs [][]byte, ep conn.Endpoint) error {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if _, err := b.cached(ep.DstIP()); err == nil {
			break
		}
	}
	return b.Send(msgs, ep)
}

// newTestBind returns a bind over a fake port with a route to everywhere.
func newTestBind(t testing.TB, resolve Resolver) (*XDPBind, *xsk.Fake) {
	u := xsk.NewFakeUMEM(256)
	port := xsk.NewFake(u)
	if resolve == nil {
		resolve = func(dst netip.Addr) (Route, error) {
			if dst.Is4() {
				return xdpRoute4, nil
			}
			return xdpRoute6, nil
		}
	}
	return NewXDPBind(port, u, 51820, resolve), port
}

// The bind sends what wireguard-go gives it as datagrams on the port and
// hands what arrives to wireguard-go with the sender's endpoint, the same
// endpoint each time; frames that are not for it are counted, not passed.
func TestXDPBindSendReceive(t *testing.T) {
	b, port := newTestBind(t, nil)
	fns, p, err := b.Open(0)
	if err != nil || p != 51820 || len(fns) != 1 {
		t.Fatalf("open: %v %d %d", err, p, len(fns))
	}
	defer b.Close()
	ep, err := b.ParseEndpoint(xdpPeer6.String())
	if err != nil {
		t.Fatal(err)
	}
	// The first datagrams to a new destination wait for its route, and
	// leave in order once it is found.
	msgs := [][]byte{transport(32, 1), transport(1452, 7)}
	if err := b.Send(msgs, ep); err != nil {
		t.Errorf("the first send to a new destination: %v", err)
	}
	var sent [][]byte
	for deadline := time.Now().Add(2 * time.Second); len(sent) < 2 && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		sent = append(sent, port.Sent()...)
	}
	if len(sent) != 2 {
		t.Fatalf("%d frames sent", len(sent))
	}
	for i, f := range sent {
		got, from, to, why := parseDatagram(f, xdpPeer6.Port())
		if why != dgOK || !bytes.Equal(got, msgs[i]) || from.Addr() != xdpRoute6.Src || to != xdpPeer6.Addr() ||
			frame.Ethernet(f).Dst() != xdpRoute6.DstMAC || frame.Ethernet(f).Src() != xdpRoute6.SrcMAC {
			t.Errorf("frame %d: %v from %v to %v", i, why, from, to)
		}
	}
	// From the peer: two datagrams, one to another port, one with a bad
	// checksum, one that is no WireGuard message, and a frame that is not
	// IP; then one to a multicast address.
	in := make([]byte, 2048)
	peerRoute := Route{Src: xdpPeer6.Addr(), SrcMAC: xdpRoute6.DstMAC, DstMAC: xdpRoute6.SrcMAC}
	us := netip.AddrPortFrom(xdpRoute6.Src, 51820)
	frames := [][]byte{}
	for _, m := range msgs {
		frames = append(frames, append([]byte(nil), in[:buildDatagram(in, &peerRoute, xdpPeer6.Port(), us, m)]...))
	}
	other := append([]byte(nil), in[:buildDatagram(in, &peerRoute, xdpPeer6.Port(), netip.AddrPortFrom(us.Addr(), 53), msgs[0])]...)
	bad := append([]byte(nil), frames[0]...)
	bad[len(bad)-1] ^= 0xff
	notWG := append([]byte(nil), in[:buildDatagram(in, &peerRoute, xdpPeer6.Port(), us, []byte("not a WireGuard message"))]...)
	mcast := append([]byte(nil), in[:buildDatagram(in, &peerRoute, xdpPeer6.Port(), netip.MustParseAddrPort("[ff02::1]:51820"), msgs[0])]...)
	for _, f := range [][]byte{frames[0], other, bad, notWG, make([]byte, 60), mcast, frames[1]} {
		if !port.Inject(f) {
			t.Fatal("no chunk filled")
		}
	}
	bufs, sizes, eps := make([][]byte, 8), make([]int, 8), make([]conn.Endpoint, 8)
	for i := range bufs {
		bufs[i] = make([]byte, 2048)
	}
	n, err := fns[0](bufs, sizes, eps)
	if err != nil || n != 2 {
		t.Fatalf("received %d: %v", n, err)
	}
	for i := range n {
		if !bytes.Equal(bufs[i][:sizes[i]], msgs[i]) || eps[i].DstToString() != xdpPeer6.String() || eps[i].SrcIP() != xdpRoute6.Src {
			t.Errorf("datagram %d: %d bytes from %s to %s", i, sizes[i], eps[i].DstToString(), eps[i].SrcIP())
		}
	}
	if eps[0] != eps[1] {
		t.Error("two endpoints for one sender")
	}
	if bc, nf := b.badChecksum.Load(), b.notForUs.Load(); bc != 1 || nf != 4 {
		t.Errorf("bad checksums %d, not for us %d; want 1, 4", bc, nf)
	}
	// What was received goes back to the fill ring.
	if port.Filled() != 128 {
		t.Errorf("%d chunks filled, want 128", port.Filled())
	}
	b.Close()
	if err := b.Send(msgs, ep); !errors.Is(err, net.ErrClosed) {
		t.Errorf("send after close: %v", err)
	}
}

// Close makes the receive function return net.ErrClosed, also while it
// waits; the bind opens again; another port is refused.
func TestXDPBindClose(t *testing.T) {
	b, _ := newTestBind(t, nil)
	if _, _, err := b.Open(51821); err == nil {
		t.Error("opened on another port")
	}
	fns, _, err := b.Open(51820)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Open(51820); !errors.Is(err, conn.ErrBindAlreadyOpen) {
		t.Errorf("opened twice: %v", err)
	}
	done := make(chan error)
	go func() {
		bufs, sizes, eps := [][]byte{make([]byte, 2048)}, make([]int, 1), make([]conn.Endpoint, 1)
		_, err := fns[0](bufs, sizes, eps)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	b.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("receive after close: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("receive did not return after Close")
	}
	if _, _, err := b.Open(0); err != nil {
		t.Errorf("open again: %v", err)
	}
	b.Close()
}

// Without a route the send fails as the kernel's would (ENETUNREACH: the
// device retries handshakes once there is one), the resolver is asked in
// the background, a few times a second, never by the sender; a route that
// then fails to refresh is kept for a while.
func TestXDPBindNoRoute(t *testing.T) {
	var mu sync.Mutex
	asked, fail := 0, true
	b, port := newTestBind(t, func(netip.Addr) (Route, error) {
		mu.Lock()
		defer mu.Unlock()
		asked++
		if fail {
			return Route{}, errors.New("next hop not resolved yet")
		}
		return xdpRoute6, nil
	})
	b.Open(0)
	defer b.Close()
	ep, _ := b.ParseEndpoint(xdpPeer6.String())
	start := time.Now()
	for time.Since(start) < 300*time.Millisecond {
		// Held while the route is looked up (up to maxPending), then
		// refused as the kernel's socket would.
		if err := b.Send([][]byte{transport(32, 1)}, ep); err != nil && !errors.Is(err, syscall.ENETUNREACH) {
			t.Fatalf("send: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
	if err := b.Send([][]byte{transport(32, 1)}, ep); !errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, errRoutePending) {
		t.Errorf("send once the lookup failed: %v", err)
	}
	mu.Lock()
	n := asked
	fail = false
	mu.Unlock()
	if n < 1 || n > 5 || len(port.Sent()) != 0 {
		t.Errorf("resolver asked %d times in 300 ms, %d sent", n, len(port.Sent()))
	}
	b.txMu.Lock()
	held, free := len(b.pending), len(b.free)
	b.txMu.Unlock()
	if held != 0 || free != 128 {
		t.Errorf("after the lookup failed: %d held, %d chunks free (want 0, 128)", held, free)
	}
	if err := sendRouted(t, b, [][]byte{transport(32, 1)}, ep); err != nil {
		t.Fatalf("once routed: %v", err)
	}
	mu.Lock()
	fail = true
	mu.Unlock()
	time.Sleep(routeFresh + 3*routeRetry)
	if err := b.Send([][]byte{transport(32, 1)}, ep); err != nil {
		t.Errorf("a route that failed its refresh is dropped at once: %v", err)
	}
	// An IPv4 peer with only an IPv6 source address.
	b2, _ := newTestBind(t, func(netip.Addr) (Route, error) { return xdpRoute6, nil })
	b2.Open(0)
	defer b2.Close()
	ep4, _ := b2.ParseEndpoint(xdpPeer4.String())
	b2.Send([][]byte{transport(32, 1)}, ep4)
	time.Sleep(3 * routeRetry)
	if err := b2.Send([][]byte{transport(32, 1)}, ep4); !errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, errRoutePending) {
		t.Errorf("IPv4 peer from an IPv6 address: %v", err)
	}
}

// A full transmit ring drops what does not fit and counts it.
func TestXDPBindRingFull(t *testing.T) {
	b, port := newTestBind(t, nil)
	b.Open(0)
	defer b.Close()
	ep, _ := b.ParseEndpoint(xdpPeer6.String())
	sendRouted(t, b, nil, ep)
	port.SetTxRoom(1)
	if err := b.Send([][]byte{transport(32, 1), transport(32, 2), transport(32, 3)}, ep); err == nil {
		t.Error("no error with a full ring")
	}
	var st stats.Snapshot
	b.snapshot(&st)
	if got := st[stats.DLDropTxRingFull]; got != 2 {
		t.Errorf("dl_drop_tx_ring_full %d, want 2 (the uplink's ring: for the uplink)", got)
	}
	if got := st[stats.ULDropTxRingFull]; got != 0 {
		t.Errorf("ul_drop_tx_ring_full %d: that is the LAN's ring", got)
	}
	if len(b.free) != 127 {
		t.Errorf("%d chunks free, want 127 (the one sent completes later)", len(b.free))
	}
}

// ringPort is an xsk.Port over preallocated slices, which (unlike
// xsk.Fake) allocates nothing: transmitted frames complete at once and are
// dropped; inject puts a frame into a filled chunk.
type ringPort struct {
	u          *xsk.UMEM
	fill, comp []uint64
	rx         []xsk.Desc
}

func newRingPort(u *xsk.UMEM) *ringPort {
	return &ringPort{u: u, fill: make([]uint64, 0, u.NumChunks), comp: make([]uint64, 0, u.NumChunks), rx: make([]xsk.Desc, 0, u.NumChunks)}
}

func shift[T any](s []T, n int) []T { return s[:copy(s, s[n:])] }

func (p *ringPort) inject(f []byte) {
	base := p.fill[0]
	p.fill = shift(p.fill, 1)
	copy(p.u.Mem[base+xsk.RxHeadroom:], f)
	p.rx = append(p.rx, xsk.Desc{Addr: base + xsk.RxHeadroom, Len: uint32(len(f))})
}
func (p *ringPort) Receive(d []xsk.Desc) int      { n := copy(d, p.rx); p.rx = shift(p.rx, n); return n }
func (p *ringPort) Fill(a []uint64) int           { p.fill = append(p.fill, a...); return len(a) }
func (p *ringPort) FillNeedsWakeup() bool         { return false }
func (p *ringPort) WakeRx() unix.Errno            { return 0 }
func (p *ringPort) Wait(time.Duration) unix.Errno { return 0 }
func (p *ringPort) Wake()                         {}
func (p *ringPort) Transmit(d []xsk.Desc) int {
	for _, x := range d {
		p.comp = append(p.comp, x.Addr)
	}
	return len(d)
}
func (p *ringPort) Kick() unix.Errno { return 0 }
func (p *ringPort) Complete(a []uint64) int {
	n := copy(a, p.comp)
	p.comp = shift(p.comp, n)
	return n
}

// ringBind is an open bind over a ringPort with its route looked up, and
// one datagram from the peer to inject.
func ringBind(t testing.TB) (*XDPBind, *ringPort, conn.ReceiveFunc, conn.Endpoint, []byte) {
	u := xsk.NewFakeUMEM(256)
	port := newRingPort(u)
	b := NewXDPBind(port, u, 51820, func(netip.Addr) (Route, error) { return xdpRoute6, nil })
	fns, _, err := b.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	ep, _ := b.ParseEndpoint(xdpPeer6.String())
	in := make([]byte, 2048)
	peerRoute := Route{Src: xdpPeer6.Addr(), SrcMAC: xdpRoute6.DstMAC, DstMAC: xdpRoute6.SrcMAC}
	f := in[:buildDatagram(in, &peerRoute, xdpPeer6.Port(), netip.AddrPortFrom(xdpRoute6.Src, 51820), transport(1452, 1))]
	if err := sendRouted(t, b, nil, ep); err != nil {
		t.Fatal(err)
	}
	return b, port, fns[0], ep, f
}

func TestXDPBindZeroAllocs(t *testing.T) {
	b, port, recv, ep, f := ringBind(t)
	defer b.Close()
	msg := [][]byte{transport(1452, 1)}
	bufs, sizes, eps := [][]byte{make([]byte, 2048)}, make([]int, 1), make([]conn.Endpoint, 1)
	port.inject(f)
	recv(bufs, sizes, eps) // the first makes the endpoint
	if a := testing.AllocsPerRun(200, func() {
		b.Send(msg, ep)
		port.inject(f)
		recv(bufs, sizes, eps)
	}); a != 0 {
		t.Errorf("%v allocations per datagram each way", a)
	}
}

// BenchmarkXDPBind measures the bind's own work per 1,452-byte message:
// building and checksumming a datagram, and parsing, checking and copying
// one out.
func BenchmarkXDPBind(b *testing.B) {
	bind, port, recv, ep, f := ringBind(b)
	defer bind.Close()
	msg := [][]byte{transport(1452, 1)}
	bufs, sizes, eps := [][]byte{make([]byte, 2048)}, make([]int, 1), make([]conn.Endpoint, 1)
	b.Run("send", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			bind.Send(msg, ep)
		}
	})
	b.Run("receive", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			port.inject(f)
			recv(bufs, sizes, eps)
		}
	})
}
