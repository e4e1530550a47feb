package wg

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/pseudowire"
	"github.com/pwgate/pwgate/dataplane/stats"
	"github.com/pwgate/pwgate/dataplane/vxlan"
	"github.com/pwgate/pwgate/dataplane/xsk"
)

var (
	overlayA = netip.MustParseAddr("fd00:77::1")
	overlayB = netip.MustParseAddr("fd00:77::2")
)

// pwPacket is an ip6-tun pseudowire packet from src carrying an n-byte
// frame.
func pwPacket(src, dst netip.Addr, n int) []byte {
	b := make([]byte, pseudowire.IP6TunOverhead+n)
	frame.IPv6(b).Encode(uint16(2+n), pseudowire.IPProto, 64, src, dst)
	for i := pseudowire.IP6TunOverhead; i < len(b); i++ {
		b[i] = byte(i)
	}
	return b
}

// otherPacket is an IPv6 ICMPv6 packet (for the host).
func otherPacket(src, dst netip.Addr) []byte {
	b := make([]byte, 48)
	frame.IPv6(b).Encode(8, 58, 64, src, dst)
	return b
}

// fakeHost is a HostTUN in memory.
type fakeHost struct {
	mu      sync.Mutex
	written [][]byte
	in      chan []byte
	closed  chan struct{}
}

func newFakeHost() *fakeHost {
	return &fakeHost{in: make(chan []byte, 16), closed: make(chan struct{})}
}

func (h *fakeHost) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	select {
	case p := <-h.in:
		sizes[0] = copy(bufs[0][offset:], p)
		return 1, nil
	case <-h.closed:
		return 0, errClosed
	}
}

func (h *fakeHost) Write(bufs [][]byte, offset int) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, b := range bufs {
		h.written = append(h.written, append([]byte(nil), b[offset:]...))
	}
	return len(bufs), nil
}

func (h *fakeHost) BatchSize() int { return 4 }
func (h *fakeHost) Close() error   { close(h.closed); return nil }

func (h *fakeHost) got() [][]byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.written
}

var errClosed = bytes.ErrTooLarge // any error; the fake only needs one

// wgBufs are buffers as wireguard-go's TUN reader passes them.
func wgBufs(n int) ([][]byte, []int) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, 16+2000)
	}
	return bufs, make([]int, n)
}

// transmit puts pkt into chunk i of u and queues it on t as the encap
// goroutine would.
func transmit(t testing.TB, tun *Tunnel, u *xsk.UMEM, i int, pkt []byte) uint64 {
	t.Helper()
	addr := uint64(i)*u.ChunkSize + xsk.RxHeadroom
	copy(u.Mem[addr:], pkt)
	if tun.Transmit([]xsk.Desc{{Addr: addr, Len: uint32(len(pkt))}}) != 1 {
		t.Fatal("transmit queued nothing")
	}
	tun.Kick()
	return addr
}

func TestEngineToWireGuard(t *testing.T) {
	u := xsk.NewFakeUMEM(64)
	tun := NewTunnel(u, 1420, nil)
	defer tun.Close()
	tun.MarkSession()
	pkt := pwPacket(overlayA, overlayB, 100)
	addr := transmit(t, tun, u, 3, pkt)
	bufs, sizes := wgBufs(8)
	n, err := tun.Read(bufs, sizes, 16)
	if err != nil || n != 1 || !bytes.Equal(bufs[0][16:16+sizes[0]], pkt) {
		t.Fatalf("Read: %d %v %x", n, err, bufs[0][16:16+sizes[0]])
	}
	comp := make([]uint64, 4)
	if c := tun.Complete(comp); c != 1 || comp[0] != addr {
		t.Fatalf("Complete: %d %x, want %x", c, comp[:c], addr)
	}
}

func TestWireGuardToEngineAndHost(t *testing.T) {
	u := xsk.NewFakeUMEM(64)
	host := newFakeHost()
	tun := NewTunnel(u, 1420, host)
	defer tun.Close()
	tun.SetPeer(overlayB.As16(), true)
	if tun.Fill([]uint64{5 * u.ChunkSize, 6 * u.ChunkSize}) != 2 {
		t.Fatal("fill")
	}
	pw := pwPacket(overlayB, overlayA, 200)
	other := otherPacket(overlayB, overlayA)
	stranger := pwPacket(netip.MustParseAddr("fd00:77::9"), overlayA, 50) // not the peer: the host's business
	bufs := [][]byte{append(make([]byte, 16), pw...), append(make([]byte, 16), other...), append(make([]byte, 16), stranger...)}
	if n, err := tun.Write(bufs, 16); n != 3 || err != nil {
		t.Fatalf("Write: %d %v", n, err)
	}
	if e := tun.Wait(time.Second); e != 0 {
		t.Fatal(e)
	}
	descs := make([]xsk.Desc, 4)
	if n := tun.Receive(descs); n != 1 || !bytes.Equal(u.Frame(descs[0].Addr, descs[0].Len), pw) || descs[0].Addr != 5*u.ChunkSize+xsk.RxHeadroom {
		t.Fatalf("Receive: %d %+v", n, descs[0])
	}
	if got := host.got(); len(got) != 2 || !bytes.Equal(got[0], other) || !bytes.Equal(got[1], stranger) {
		t.Fatalf("host got %x", got)
	}
	if !tun.SessionUp() {
		t.Error("data from the peer did not mark the session up")
	}
	// With no chunk filled, a pseudowire packet is dropped and counted.
	tun.Write([][]byte{append(make([]byte, 16), pw...), append(make([]byte, 16), pw...)}, 16)
	var s stats.Snapshot
	tun.Snapshot(&s)
	if s[stats.ULDropRxRingFull] != 1 || s[stats.WGTunnelToHost] != 2 {
		t.Fatalf("rx ring full %d, to host %d", s[stats.ULDropRxRingFull], s[stats.WGTunnelToHost])
	}
}

func TestHostToWireGuard(t *testing.T) {
	u := xsk.NewFakeUMEM(64)
	host := newFakeHost()
	tun := NewTunnel(u, 1420, host)
	defer tun.Close()
	p := otherPacket(overlayA, overlayB)
	host.in <- p
	bufs, sizes := wgBufs(8)
	n, err := tun.Read(bufs, sizes, 16)
	if err != nil || n != 1 || !bytes.Equal(bufs[0][16:16+sizes[0]], p) {
		t.Fatalf("Read: %d %v", n, err)
	}
}

// TestNoSession: while no session is up, MaxStaged packets go to
// wireguard-go (which holds them until its handshake completes) and the
// rest are dropped and counted; once it is up, everything goes.
func TestNoSession(t *testing.T) {
	u := xsk.NewFakeUMEM(512)
	tun := NewTunnel(u, 1420, nil)
	defer tun.Close()
	pkt := pwPacket(overlayA, overlayB, 60)
	bufs, sizes := wgBufs(128)
	comp := make([]uint64, 256)
	sent := 0
	for round := 0; round < 2; round++ {
		for i := 0; i < 80; i++ {
			transmit(t, tun, u, i, pkt)
		}
		n, _ := tun.Read(bufs, sizes, 16)
		sent += n
		tun.Complete(comp)
	}
	var s stats.Snapshot
	tun.Snapshot(&s)
	if sent != MaxStaged || s[stats.DLDropNoSession] != 160-MaxStaged {
		t.Fatalf("handed over %d, dropped %d; want %d and %d", sent, s[stats.DLDropNoSession], MaxStaged, 160-MaxStaged)
	}
	tun.MarkSession()
	for i := 0; i < 80; i++ {
		transmit(t, tun, u, i, pkt)
	}
	if n, _ := tun.Read(bufs, sizes, 16); n != 80 {
		t.Fatalf("with a session: %d of 80 handed over", n)
	}
}

func TestReadUnblocksOnClose(t *testing.T) {
	tun := NewTunnel(xsk.NewFakeUMEM(8), 1420, newFakeHost())
	done := make(chan error)
	go func() {
		bufs, sizes := wgBufs(4)
		_, err := tun.Read(bufs, sizes, 16)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	tun.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Read returned no error after Close")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Read still blocked after Close")
	}
	if e := tun.Wait(time.Hour); e != 0 {
		t.Fatal(e)
	}
}

// TestZeroAllocs: pwgate's side of the tun.Device allocates nothing per
// packet, either way.
func TestZeroAllocs(t *testing.T) {
	u := xsk.NewFakeUMEM(64)
	tun := NewTunnel(u, 1420, nil)
	defer tun.Close()
	tun.SetPeer(overlayB.As16(), true)
	tun.MarkSession()
	out := pwPacket(overlayA, overlayB, 1300)
	in := [][]byte{append(make([]byte, 16), pwPacket(overlayB, overlayA, 1300)...)}
	bufs, sizes := wgBufs(8)
	descs := make([]xsk.Desc, 8)
	comp := make([]uint64, 8)
	addr := uint64(xsk.RxHeadroom)
	copy(u.Mem[addr:], out)
	tx := []xsk.Desc{{Addr: addr, Len: uint32(len(out))}}
	fill := []uint64{10 * u.ChunkSize}
	if a := testing.AllocsPerRun(200, func() {
		tun.Transmit(tx)
		tun.Kick()
		tun.Read(bufs, sizes, 16)
		tun.Complete(comp)
		tun.Fill(fill)
		tun.Write(in, 16)
		tun.Wait(time.Millisecond)
		tun.Receive(descs)
	}); a != 0 {
		t.Fatalf("%v allocations per round trip", a)
	}
}

// BenchmarkTunnel measures pwgate's side of the tun.Device per packet:
// the engine's transmit and wireguard-go's Read, and wireguard-go's Write
// and the engine's receive, for a 1300-byte packet.
func BenchmarkTunnel(b *testing.B) {
	u := xsk.NewFakeUMEM(64)
	tun := NewTunnel(u, 1420, nil)
	defer tun.Close()
	tun.SetPeer(overlayB.As16(), true)
	tun.MarkSession()
	out := pwPacket(overlayA, overlayB, 1300)
	addr := uint64(xsk.RxHeadroom)
	copy(u.Mem[addr:], out)
	tx := []xsk.Desc{{Addr: addr, Len: uint32(len(out))}}
	bufs, sizes := wgBufs(8)
	comp := make([]uint64, 8)
	in := [][]byte{append(make([]byte, 16), pwPacket(overlayB, overlayA, 1300)...)}
	fill := []uint64{10 * u.ChunkSize}
	descs := make([]xsk.Desc, 8)
	b.Run("to-wireguard", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			tun.Transmit(tx)
			tun.Kick()
			tun.Read(bufs, sizes, 16)
			tun.Complete(comp)
		}
	})
	b.Run("from-wireguard", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			tun.Fill(fill)
			tun.Write(in, 16)
			tun.Receive(descs)
		}
	})
}

func TestValidMessage(t *testing.T) {
	msg := func(typ uint32, n int) []byte {
		b := make([]byte, n)
		binary.LittleEndian.PutUint32(b, typ)
		return b
	}
	for _, tt := range []struct {
		p    []byte
		want bool
	}{
		{msg(1, 148), true}, {msg(1, 147), false}, {msg(2, 92), true}, {msg(2, 93), false},
		{msg(3, 64), true}, {msg(4, 32), true}, {msg(4, 1500), true}, {msg(4, 31), false},
		{msg(5, 148), false}, {msg(0x101, 148), false}, {[]byte{1, 0, 0}, false}, {nil, false},
	} {
		if got := validMessage(tt.p); got != tt.want {
			t.Errorf("type %x, %d bytes: %v, want %v", tt.p[:min(4, len(tt.p))], len(tt.p), got, tt.want)
		}
	}
}

// FuzzWrite feeds arbitrary decrypted packets to the Tunnel and checks
// that nothing panics and every chunk is accounted for: delivered to the
// engine or still unused.
func FuzzWrite(f *testing.F) {
	f.Add(pwPacket(overlayB, overlayA, 100))
	f.Add(otherPacket(overlayB, overlayA))
	f.Add([]byte{0x60})
	f.Fuzz(func(t *testing.T, p []byte) {
		u := xsk.NewFakeUMEM(8)
		tun := NewTunnel(u, 1420, newFakeHost())
		defer tun.Close()
		tun.SetPeer(overlayB.As16(), true)
		tun.Fill([]uint64{0, u.ChunkSize})
		tun.Write([][]byte{append(make([]byte, 16), p...), append(make([]byte, 16), p...), append(make([]byte, 16), p...)}, 16)
		descs := make([]xsk.Desc, 8)
		n := tun.Receive(descs)
		for _, d := range descs[:n] {
			if d.Len > uint32(u.ChunkSize-xsk.RxHeadroom) {
				t.Fatalf("descriptor of %d bytes", d.Len)
			}
		}
		if n+tun.fill.Len() != 2 {
			t.Fatalf("chunks: %d delivered, %d still filled", n, tun.fill.Len())
		}
	})
}

// vxPacket is a VXLAN packet (IPv4 or IPv6, no Ethernet) from src to dst.
func vxPacket(src, dst netip.Addr, port uint16) []byte {
	e, _ := vxlan.NewEncapsulator(vxlan.EncapConfig{Local: src, MTU: 1420, L3: true})
	f := make([]byte, 60)
	buf := make([]byte, 256+len(f))
	copy(buf[256:], f)
	start, _ := e.Encap(buf, 256, len(f), &vxlan.VTEP{Addr: dst, Up: true}, 101)
	p := buf[start:]
	if port != vxlan.Port {
		off := frame.IPv4Len
		if dst.Is6() {
			off = frame.IPv6Len
		}
		binary.BigEndian.PutUint16(p[off+2:], port)
	}
	return p
}

// TestVXLANToEngine: in VXLAN mode, packets to our VTEP address and the
// VXLAN port go to the engine, from any peer and without a session limit;
// everything else to the host.
func TestVXLANToEngine(t *testing.T) {
	for _, fam := range []struct{ us, them, other netip.Addr }{
		{netip.MustParseAddr("10.99.0.1"), netip.MustParseAddr("10.99.0.2"), netip.MustParseAddr("10.99.0.9")},
		{overlayA, overlayB, netip.MustParseAddr("fd00:77::9")},
	} {
		u := xsk.NewFakeUMEM(64)
		host := newFakeHost()
		tun := NewTunnel(u, 1420, host)
		tun.SetVXLAN(fam.us)
		tun.Fill([]uint64{5 * u.ChunkSize, 6 * u.ChunkSize})
		vx := vxPacket(fam.them, fam.us, vxlan.Port)
		notOurs := vxPacket(fam.them, fam.other, vxlan.Port)
		otherPort := vxPacket(fam.them, fam.us, 4790)
		var bufs [][]byte
		for _, p := range [][]byte{vx, notOurs, otherPort} {
			bufs = append(bufs, append(make([]byte, 16), p...))
		}
		tun.Write(bufs, 16)
		descs := make([]xsk.Desc, 4)
		if n := tun.Receive(descs); n != 1 || !bytes.Equal(u.Frame(descs[0].Addr, descs[0].Len), vx) {
			t.Fatalf("%v: engine got %d", fam.us, n)
		}
		if got := host.got(); len(got) != 2 {
			t.Fatalf("%v: host got %d packets, want 2", fam.us, len(got))
		}
		// No session limit: more than MaxStaged packets go to wireguard-go.
		for i := 0; i < MaxStaged+10; i++ {
			transmit(t, tun, u, 10+i%40, vx)
			bufs, sizes := wgBufs(1)
			if n, _ := tun.Read(bufs, sizes, 16); n != 1 {
				t.Fatalf("packet %d held back", i)
			}
			tun.Complete(make([]uint64, 4))
		}
		tun.Close()
	}
}
