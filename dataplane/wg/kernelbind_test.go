package wg

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
)

// openKernel opens a KernelBind on a port the kernel picks, with UDP GRO
// or without.
func openKernel(t testing.TB, gro bool) (*KernelBind, conn.ReceiveFunc, uint16) {
	t.Helper()
	b := NewKernelBind()
	b.gro = gro
	fns, port, err := b.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if len(fns) != 1 || port == 0 {
		t.Fatalf("%d receive functions, port %d", len(fns), port)
	}
	return b, fns[0], port
}

// peerSocket is a plain UDP socket at addr, the far end.
func peerSocket(t testing.TB, addr string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(addr)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

// expectDatagrams reads len(msgs) datagrams from p and fails unless they
// are msgs, in order; what names the case in the failure.
func expectDatagrams(t testing.TB, p *net.UDPConn, msgs [][]byte, what string) {
	t.Helper()
	buf := make([]byte, 2048)
	for i, m := range msgs {
		n, err := p.Read(buf)
		if err != nil || !bytes.Equal(buf[:n], m) {
			t.Fatalf("%sdatagram %d: %d bytes, want %d (%v)", what, i, n, len(m), err)
		}
	}
}

// recvAll receives until want datagrams have arrived.
func recvAll(t testing.TB, fn conn.ReceiveFunc, want int) ([][]byte, []conn.Endpoint) {
	t.Helper()
	bufs, sizes := wgBufs(conn.IdealBatchSize)
	eps := make([]conn.Endpoint, len(bufs))
	var got [][]byte
	var from []conn.Endpoint
	for len(got) < want {
		n, err := fn(bufs, sizes, eps)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			got = append(got, append([]byte(nil), bufs[i][:sizes[i]]...))
			from = append(from, eps[i])
		}
	}
	return got, from
}

// Datagrams from IPv6 and IPv4 peers arrive with their source and the
// address they were sent to; replies go back from that address, even
// when the kernel would pick another (sticky sockets).
func TestKernelBind(t *testing.T) {
	for _, gro := range []bool{false, true} {
		testKernelBind(t, gro)
	}
}

func testKernelBind(t *testing.T, gro bool) {
	b, recv, port := openKernel(t, gro)
	for _, c := range []struct{ peer, to string }{
		{"[::1]:0", "::1"},
		{"127.0.0.1:0", "127.0.0.1"},
		{"127.0.0.1:0", "127.0.0.2"}, // the kernel would answer from 127.0.0.1
	} {
		p := peerSocket(t, c.peer)
		to := netip.AddrPortFrom(netip.MustParseAddr(c.to), port)
		msgs := [][]byte{transport(40, 1), transport(1400, 2), transport(100, 3)}
		for _, m := range msgs {
			if _, err := p.WriteToUDPAddrPort(m, to); err != nil {
				t.Fatal(err)
			}
		}
		got, from := recvAll(t, recv, len(msgs))
		peer := p.LocalAddr().(*net.UDPAddr).AddrPort()
		peer = netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port())
		for i := range msgs {
			if !bytes.Equal(got[i], msgs[i]) {
				t.Errorf("%s: datagram %d: %d bytes, want %d", c.to, i, len(got[i]), len(msgs[i]))
			}
			if from[i].DstToString() != peer.String() || from[i].SrcIP() != to.Addr() || from[i].DstIP() != peer.Addr() {
				t.Errorf("%s: datagram %d from %s to %s, want from %s to %s", c.to, i, from[i].DstToString(), from[i].SrcIP(), peer, to.Addr())
			}
		}
		if from[0] != from[1] || from[1] != from[2] {
			t.Errorf("%s: one peer, several endpoints", c.to)
		}
		if e := from[0].(*endpoint); e.SrcIfidx() == 0 {
			t.Errorf("%s: no interface index", c.to)
		}
		if err := b.Send(msgs, from[0]); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2048)
		for i, m := range msgs {
			n, src, err := p.ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf[:n], m) || src.Addr().Unmap() != to.Addr() || src.Port() != port {
				t.Errorf("%s: reply %d: %d bytes from %s, want %d from %s", c.to, i, n, src, len(m), to)
			}
		}
	}
}

// A batch larger than the socket's batch goes out whole; an endpoint
// from the configuration (no source yet) works; a source address that is
// gone falls back to the kernel's choice.
func TestKernelBindSend(t *testing.T) {
	b, _, _ := openKernel(t, true)
	p := peerSocket(t, "[::1]:0")
	ep, err := b.ParseEndpoint(p.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	stale := &endpoint{dst: ep.(*endpoint).dst, src: netip.MustParseAddr("2001:db8::99")} // not ours
	var msgs [][]byte
	for i := 0; i < conn.IdealBatchSize+72; i++ {
		msgs = append(msgs, transport(64+i, byte(i)))
	}
	cleared := &endpoint{dst: stale.dst, src: stale.src}
	cleared.ClearSrc()
	for _, e := range []conn.Endpoint{ep, stale, cleared} {
		if err := b.Send(msgs, e); err != nil {
			t.Fatalf("to %s from %s: %v", e.DstToString(), e.SrcToString(), err)
		}
		expectDatagrams(t, p, msgs, "from "+e.SrcToString()+": ")
	}
	if err := b.Send(msgs[:1], &conn.StdNetEndpoint{}); !errors.Is(err, conn.ErrWrongEndpointType) {
		t.Errorf("another bind's endpoint: %v", err)
	}
}

// An IPv4 source that is gone (the kernel says ENETUNREACH, not EINVAL)
// falls back to the kernel's choice too.
func TestKernelBindStaleSource4(t *testing.T) {
	b, _, _ := openKernel(t, true)
	p := peerSocket(t, "127.0.0.1:0")
	ep, err := b.ParseEndpoint(p.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	stale := &endpoint{dst: ep.(*endpoint).dst, src: netip.MustParseAddr("192.0.2.99")}
	msgs := [][]byte{transport(100, 1), transport(100, 2)}
	if err := b.Send(msgs, stale); err != nil {
		t.Fatal(err)
	}
	expectDatagrams(t, p, msgs, "")
}

func TestKernelBindParseEndpoint(t *testing.T) {
	b := NewKernelBind()
	for s, want := range map[string]string{
		"192.0.2.1:51820":          "192.0.2.1:51820",
		"[::ffff:192.0.2.1]:51820": "192.0.2.1:51820",
		"[2001:db8::1]:51820":      "[2001:db8::1]:51820",
		"[fe80::1%lo]:51820":       "[fe80::1%lo]:51820",
		"[fe80::1%1]:51820":        "[fe80::1%1]:51820",
		"169.254.1.1:51820":        "169.254.1.1:51820",
	} {
		ep, err := b.ParseEndpoint(s)
		if err != nil {
			t.Errorf("%s: %v", s, err)
			continue
		}
		if ep.DstToString() != want {
			t.Errorf("%s: %s, want %s", s, ep.DstToString(), want)
		}
		if e := ep.(*endpoint); e.dst.Addr().Is6() && e.dst.Addr().IsLinkLocalUnicast() && e.scope != 1 {
			t.Errorf("%s: scope %d, want 1 (lo)", s, e.scope)
		}
	}
	for _, s := range []string{"192.0.2.1", "[fe80::1]:51820", "[fe80::1%nosuchif0]:51820", "x:1"} {
		if _, err := b.ParseEndpoint(s); err == nil {
			t.Errorf("%s: accepted", s)
		}
	}
}

// A datagram longer than its buffer is not passed on cut short.
func TestKernelBindTruncated(t *testing.T) {
	_, recv, port := openKernel(t, false)
	p := peerSocket(t, "[::1]:0")
	to := netip.AddrPortFrom(netip.IPv6Loopback(), port)
	p.WriteToUDPAddrPort(transport(3000, 1), to)
	p.WriteToUDPAddrPort(transport(100, 2), to)
	got, _ := recvAll(t, recv, 2)
	if len(got[0]) != 0 || len(got[1]) != 100 {
		t.Errorf("received %d and %d bytes, want 0 (too long) and 100", len(got[0]), len(got[1]))
	}
}

// Close unblocks a waiting receive with net.ErrClosed; the bind opens
// again, and not twice.
func TestKernelBindClose(t *testing.T) {
	b, recv, _ := openKernel(t, true)
	if _, _, err := b.Open(0); !errors.Is(err, conn.ErrBindAlreadyOpen) {
		t.Errorf("opened twice: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		bufs, sizes := wgBufs(4)
		_, err := recv(bufs, sizes, make([]conn.Endpoint, 4))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("receive returned %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("receive still waits after Close")
	}
	if err := b.Send([][]byte{{1}}, &endpoint{}); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Send after Close: %v", err)
	}
	if _, _, err := b.Open(0); err != nil {
		t.Fatalf("open again: %v", err)
	}
	b.Close()
}

// Neither receiving nor sending allocates.
func TestKernelBindZeroAllocs(t *testing.T) {
	for _, gro := range []bool{false, true} {
		testKernelBindZeroAllocs(t, gro)
	}
}

func testKernelBindZeroAllocs(t *testing.T, gro bool) {
	b, recv, port := openKernel(t, gro)
	p := peerSocket(t, "[::1]:0")
	to := netip.AddrPortFrom(netip.IPv6Loopback(), port)
	msg := transport(1400, 7)
	bufs, sizes := wgBufs(conn.IdealBatchSize)
	eps := make([]conn.Endpoint, len(bufs))
	out := [][]byte{msg, msg, msg, msg}
	in := make([]byte, 2048)
	round := func() {
		for range out {
			p.WriteToUDPAddrPort(msg, to)
		}
		for got := 0; got < len(out); {
			n, err := recv(bufs, sizes, eps)
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
		if err := b.Send(out, eps[0]); err != nil {
			t.Fatal(err)
		}
		for range out {
			p.Read(in)
		}
	}
	round()
	// The test's own socket allocates nothing either (netip.AddrPort
	// writes), so any allocation is the bind's.
	if n := testing.AllocsPerRun(100, round); n != 0 {
		t.Errorf("GRO %v: %.1f allocations per round", gro, n)
	}
}

// A kernel that refuses UDP GSO for the way out (EIO, before Linux
// 6.11) turns it off for good; nothing is lost.
func TestKernelBindGSOFallsBack(t *testing.T) {
	b, _, _ := openKernel(t, true)
	p := peerSocket(t, "[::1]:0")
	ep, err := b.ParseEndpoint(p.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	real := sendmmsg
	t.Cleanup(func() { sendmmsg = real })
	refused := 0
	sendmmsg = func(fd uintptr, h *mmsghdr, n int) (int, syscall.Errno) {
		if h.hdr.Iovlen > 1 {
			refused++
			return 0, unix.EIO
		}
		return real(fd, h, n)
	}
	msgs := [][]byte{transport(100, 1), transport(100, 2), transport(100, 3)}
	for round := 0; round < 2; round++ {
		if err := b.Send(msgs, ep); err != nil {
			t.Fatal(err)
		}
		expectDatagrams(t, p, msgs, "round "+strconv.Itoa(round)+", ")
	}
	if refused != 1 || !b.GSOOff() {
		t.Errorf("GSO refused %d times, off %v; want once, then off", refused, b.GSOOff())
	}
}

// With UDP GRO, a run the far end sent as one message (GSO) arrives as
// one and is handed out as its datagrams, in order, however few buffers
// each call brings.
func TestKernelBindGRO(t *testing.T) {
	rx, recv, port := openKernel(t, true)
	tx, _, _ := openKernel(t, true)
	ep, err := tx.ParseEndpoint(netip.AddrPortFrom(netip.IPv6Loopback(), port).String())
	if err != nil {
		t.Fatal(err)
	}
	var msgs [][]byte
	for i := 0; i < 40; i++ {
		msgs = append(msgs, transport(1000, byte(i)))
	}
	msgs = append(msgs, transport(300, 0xee), transport(200, 0xef))
	if err := tx.Send(msgs, ep); err != nil {
		t.Fatal(err)
	}
	bufs, sizes := wgBufs(3)
	eps := make([]conn.Endpoint, len(bufs))
	var got [][]byte
	coalesced := false
	for len(got) < len(msgs) {
		n, err := recv(bufs, sizes, eps)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			got = append(got, append([]byte(nil), bufs[i][:sizes[i]]...))
		}
		r := rx.recv
		coalesced = coalesced || r.seg == 1000 && r.got < len(msgs)
	}
	for i := range msgs {
		if !bytes.Equal(got[i], msgs[i]) {
			t.Fatalf("datagram %d: %d bytes, want %d", i, len(got[i]), len(msgs[i]))
		}
	}
	if !coalesced {
		t.Error("the run did not arrive coalesced")
	}
}

// The kernel's control messages: a source address and a GRO segment
// length are found, in either order; anything else is not a crash.
func FuzzParseControl(f *testing.F) {
	info := make([]byte, pktinfoSpace)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&info[0]))
	h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
	copy(info[unix.CmsgLen(0):], netip.MustParseAddr("2001:db8::1").AsSlice())
	gro := make([]byte, unix.CmsgSpace(4))
	h = (*unix.Cmsghdr)(unsafe.Pointer(&gro[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_GRO
	h.SetLen(unix.CmsgLen(4))
	gro[unix.CmsgLen(0)] = 200
	for _, c := range [][]byte{append(append([]byte{}, info...), gro...), append(append([]byte{}, gro...), info...)} {
		if to, _, seg := parseControl(c); to != netip.MustParseAddr("2001:db8::1") || seg != 200 {
			f.Fatalf("parsed %v, segments of %d", to, seg)
		}
	}
	f.Add(info)
	f.Add(gro)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, control []byte) {
		parseControl(control)
	})
}
