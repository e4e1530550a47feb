package bpf

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

const xdpRedirect = 4

var (
	vip4    = netip.MustParsePrefix("192.0.2.80/32")
	vip6    = netip.MustParsePrefix("2001:db8:80::80/128")
	client4 = netip.MustParseAddr("198.51.100.7")
	client6 = netip.MustParseAddr("2001:db8:c::7")
)

func csum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}

// ipPacket builds an Ethernet frame with an IPv4 or IPv6 header from src
// to dst (TTL ttl, protocol proto) and l4 behind it.
func ipPacket(src, dst netip.Addr, ttl, proto uint8, l4 []byte) []byte {
	f := make([]byte, 14)
	copy(f, []byte{2, 0, 0, 0, 0, 0xf0, 2, 0, 0, 0, 0, 0xc1})
	if src.Is4() {
		binary.BigEndian.PutUint16(f[12:], 0x0800)
		ip := make([]byte, 20)
		ip[0], ip[8], ip[9] = 0x45, ttl, proto
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(l4)))
		s, d := src.As4(), dst.As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		binary.BigEndian.PutUint16(ip[10:], csum(ip))
		return append(append(f, ip...), l4...)
	}
	binary.BigEndian.PutUint16(f[12:], 0x86dd)
	ip := make([]byte, 40)
	ip[0], ip[6], ip[7] = 0x60, proto, ttl
	binary.BigEndian.PutUint16(ip[4:], uint16(len(l4)))
	s, d := src.As16(), dst.As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	return append(append(f, ip...), l4...)
}

func tcp(sport, dport uint16) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h, sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	h[12] = 5 << 4
	return h
}

func newForwarder(t testing.TB, servers int) *Anycast {
	t.Helper()
	needRoot(t)
	a, err := LoadAnycast(251)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	// BPF_PROG_RUN's packets come in on the loopback device.
	if err := a.SetPort(1, [6]byte{2, 0, 0, 0, 0, 0xf0}); err != nil {
		t.Fatal(err)
	}
	for i, p := range []netip.Prefix{vip4, vip6} {
		if err := a.SetVIP(p, i); err != nil {
			t.Fatal(err)
		}
	}
	for i := range servers {
		if err := a.SetBackend(i, Backend{Ifindex: 10 + i, Dst: [6]byte{2, 0, 0, 0, 0x5e, byte(i)}, Src: [6]byte{2, 0, 0, 0, 0xfe, 1}}); err != nil {
			t.Fatal(err)
		}
	}
	tab := make([]int32, 251)
	for i := range tab {
		tab[i] = int32(i % servers)
	}
	for id := range 2 {
		if err := a.SetRing(id, tab); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

// runXDP runs the program on frame and returns its verdict and output.
func runXDP(t *testing.T, p *ebpf.Program, frame []byte) (uint32, []byte) {
	t.Helper()
	out := make([]byte, len(frame)+256)
	ret, err := p.Run(&ebpf.RunOptions{Data: frame, DataOut: out})
	if err != nil {
		t.Fatal(err)
	}
	return ret, out[:len(frame)]
}

// server returns which server a forwarded frame went to (its MAC's last
// byte), or -1.
func server(ret uint32, out []byte) int {
	if ret != xdpRedirect {
		return -1
	}
	return int(out[5])
}

func TestAnycastForwards(t *testing.T) {
	a := newForwarder(t, 3)
	p := a.Program()
	for _, c := range []struct {
		client netip.Addr
		vip    netip.Prefix
	}{{client4, vip4}, {client6, vip6}} {
		seen := map[int]int{}
		for sport := uint16(1000); sport < 1600; sport++ {
			in := ipPacket(c.client, c.vip.Addr(), 64, 6, tcp(sport, 80))
			ret, out := runXDP(t, p, in)
			s := server(ret, out)
			if s < 0 {
				t.Fatalf("%s: verdict %d", c.vip, ret)
			}
			seen[s]++
			if out[11] != 1 || out[10] != 0xfe {
				t.Fatalf("source MAC %x", out[6:12])
			}
			if c.client.Is4() {
				if out[14+8] != 63 {
					t.Fatalf("TTL %d", out[14+8])
				}
				if csum(out[14:34]) != 0 {
					t.Fatal("IPv4 checksum wrong after the TTL change")
				}
			} else if out[14+7] != 63 {
				t.Fatalf("hop limit %d", out[14+7])
			}
			// The same flow goes to the same server.
			ret2, out2 := runXDP(t, p, in)
			if server(ret2, out2) != s {
				t.Fatal("one flow, two servers")
			}
		}
		for s := range 3 {
			if seen[s] < 150 {
				t.Errorf("%s: server %d got %d of 600 flows", c.vip, s, seen[s])
			}
		}
	}
	tr, none, err := a.VIPTraffic(0)
	if err != nil || tr.Packets != 1200 || none != 0 {
		t.Errorf("VIP traffic %+v, %d without a server, %v", tr, none, err)
	}
	var sum uint64
	for i := range 3 {
		b, _ := a.BackendTraffic(i)
		sum += b.Packets
	}
	if sum != 2400 {
		t.Errorf("servers counted %d packets, want 2400", sum)
	}
}

// ICMP errors about a flow's packets reach the flow's server.
func TestAnycastICMPErrors(t *testing.T) {
	a := newForwarder(t, 3)
	p := a.Program()
	for sport := uint16(2000); sport < 2050; sport++ {
		for _, c := range []struct {
			client netip.Addr
			vip    netip.Prefix
			icmp   []byte
			proto  uint8
		}{
			{client4, vip4, []byte{3, 4, 0, 0, 0, 0, 0x05, 0xdc}, 1},  // fragmentation needed
			{client6, vip6, []byte{2, 0, 0, 0, 0, 0, 0x05, 0x00}, 58}, // packet too big
		} {
			ret, out := runXDP(t, p, ipPacket(c.client, c.vip.Addr(), 64, 6, tcp(sport, 80)))
			want := server(ret, out)
			// The server's packet, VIP:80 to client:sport, comes back
			// inside an error from a router on the way.
			inner := ipPacket(c.vip.Addr(), c.client, 60, 6, tcp(80, sport))[14:]
			router := netip.MustParseAddr("203.0.113.1")
			if c.client.Is6() {
				router = netip.MustParseAddr("2001:db8:ffff::1")
			}
			ret, out = runXDP(t, p, ipPacket(router, c.vip.Addr(), 64, c.proto, append(c.icmp, inner...)))
			if got := server(ret, out); got != want {
				t.Fatalf("%s sport %d: the error went to server %d, the flow to %d", c.vip, sport, got, want)
			}
		}
	}
	cs, _ := a.Counters()
	if cs[ACICMPErrors] != 100 {
		t.Errorf("icmp_errors %d, want 100", cs[ACICMPErrors])
	}
}

func TestAnycastBadInput(t *testing.T) {
	a := newForwarder(t, 2)
	p := a.Program()
	other := netip.MustParseAddr("192.0.2.81")
	hbh := append([]byte{6, 0, 1, 4, 0, 0, 0, 0}, tcp(1, 80)...)  // hop-by-hop options, then TCP
	frag := append([]byte{6, 0, 0, 1, 0, 0, 0, 7}, tcp(1, 80)...) // a first fragment
	frag4 := ipPacket(client4, vip4.Addr(), 64, 6, tcp(1, 80))
	frag4[14+6] = 0x20 // more fragments
	binary.BigEndian.PutUint16(frag4[14+10:], 0)
	binary.BigEndian.PutUint16(frag4[14+10:], csum(frag4[14:34]))
	for _, c := range []struct {
		name    string
		frame   []byte
		ret     uint32
		counter int
	}{
		{"not a VIP", ipPacket(client4, other, 64, 6, tcp(1, 80)), xdpPass, ACPass},
		{"not addressed to the port", func() []byte {
			f := ipPacket(client4, vip4.Addr(), 64, 6, tcp(1, 80))
			f[5] = 0xf1
			return f
		}(), xdpPass, ACPass},
		{"ARP", append(make([]byte, 12), 0x08, 0x06, 0, 1), xdpPass, ACPass},
		{"TTL 1", ipPacket(client4, vip4.Addr(), 1, 6, tcp(1, 80)), xdpPass, ACTTLExpired},
		{"hop limit 1", ipPacket(client6, vip6.Addr(), 1, 6, tcp(1, 80)), xdpPass, ACTTLExpired},
		{"TCP cut short", ipPacket(client4, vip4.Addr(), 64, 6, []byte{0, 1}), xdpDrop, ACTruncated},
		{"UDP cut short v6", ipPacket(client6, vip6.Addr(), 64, 17, []byte{0, 1, 0}), xdpDrop, ACTruncated},
		{"ICMP cut short", ipPacket(client4, vip4.Addr(), 64, 1, []byte{3, 4}), xdpDrop, ACTruncated},
		{"ICMP error without inner header", ipPacket(client4, vip4.Addr(), 64, 1, []byte{3, 4, 0, 0, 0, 0, 0, 0, 0x45}), xdpDrop, ACTruncated},
		{"IPv4 header length beyond the frame", func() []byte {
			f := ipPacket(client4, vip4.Addr(), 64, 6, nil)
			f[14] = 0x4f
			return f
		}(), xdpDrop, ACTruncated},
		{"IPv4 fragment", frag4, xdpRedirect, ACFragments},
		{"IPv6 hop-by-hop", ipPacket(client6, vip6.Addr(), 64, 0, hbh), xdpRedirect, ACExtHeaders},
		{"IPv6 fragment", ipPacket(client6, vip6.Addr(), 64, 44, frag), xdpRedirect, ACFragments},
		{"ping", ipPacket(client4, vip4.Addr(), 64, 1, []byte{8, 0, 0, 0, 0, 1, 0, 1}), xdpRedirect, ACForwarded},
		{"no IPv4 header", ipPacket(client4, vip4.Addr(), 64, 6, nil)[:14], xdpPass, -1},
		{"IPv4 header cut short", ipPacket(client4, vip4.Addr(), 64, 6, nil)[:30], xdpPass, -1},
	} {
		before, _ := a.Counters()
		ret, _ := runXDP(t, p, c.frame)
		after, _ := a.Counters()
		if ret != c.ret {
			t.Errorf("%s: verdict %d, want %d", c.name, ret, c.ret)
		}
		if c.counter >= 0 && after[c.counter] != before[c.counter]+1 {
			t.Errorf("%s: %s not counted", c.name, ACCounterNames[c.counter])
		}
	}
}

func TestAnycastNoServer(t *testing.T) {
	a := newForwarder(t, 1)
	empty := make([]int32, 251)
	for i := range empty {
		empty[i] = -1
	}
	if err := a.SetRing(0, empty); err != nil {
		t.Fatal(err)
	}
	ret, _ := runXDP(t, a.Program(), ipPacket(client4, vip4.Addr(), 64, 6, tcp(1, 80)))
	if _, none, _ := a.VIPTraffic(0); ret != xdpDrop || none != 1 {
		t.Errorf("verdict %d, %d without a server", ret, none)
	}
	if err := a.DeleteVIP(vip4); err != nil {
		t.Fatal(err)
	}
	if ret, _ := runXDP(t, a.Program(), ipPacket(client4, vip4.Addr(), 64, 6, tcp(1, 80))); ret != xdpPass {
		t.Errorf("a removed VIP: verdict %d", ret)
	}
	if err := a.SetRing(0, empty[:7]); err == nil {
		t.Error("a table of the wrong size was taken")
	}
	if err := a.SetVIP(vip4, MaxVIPs); err == nil {
		t.Error("a VIP index out of range was taken")
	}
}

// BenchmarkAnycastProgram runs the forwarder on one TCP packet to a VIP
// (BPF_PROG_RUN: the program's own cost, no driver, no redirect). The
// kernel runs a packet again as the last run left it, TTL decremented, so
// runs go in rounds of 250 from a fresh packet with TTL 255.
func BenchmarkAnycastProgram(b *testing.B) {
	a := newForwarder(b, 3)
	in := ipPacket(client4, vip4.Addr(), 255, 6, tcp(1000, 80))
	b.ReportAllocs()
	var total time.Duration
	for n := b.N; n > 0; n -= 250 {
		ret, d, err := a.Program().Benchmark(in, min(n, 250), nil)
		if err != nil || ret != xdpRedirect {
			b.Fatal(ret, err)
		}
		total += d * time.Duration(min(n, 250))
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/packet")
}

// A flow stays with its server when the table no longer names it (a
// drained server), and is placed again when the server is gone.
func TestAnycastFlowTable(t *testing.T) {
	a := newForwarder(t, 3)
	p := a.Program()
	in := ipPacket(client4, vip4.Addr(), 64, 6, tcp(4242, 80))
	ret, out := runXDP(t, p, in)
	first := server(ret, out)
	// The table now names only the other servers.
	tab := make([]int32, 251)
	var others []int32
	for s := range 3 {
		if s != first {
			others = append(others, int32(s))
		}
	}
	for i := range tab {
		tab[i] = others[i%2]
	}
	if err := a.SetRing(0, tab); err != nil {
		t.Fatal(err)
	}
	if ret, out := runXDP(t, p, in); server(ret, out) != first {
		t.Fatalf("the flow moved from drained server %d to %d", first, server(ret, out))
	}
	for sport := uint16(5000); sport < 5100; sport++ {
		if ret, out := runXDP(t, p, ipPacket(client4, vip4.Addr(), 64, 6, tcp(sport, 80))); server(ret, out) == first {
			t.Fatal("a new flow went to the drained server")
		}
	}
	// The server is gone: its flow is placed again.
	if err := a.SetBackend(first, Backend{}); err != nil {
		t.Fatal(err)
	}
	if ret, out := runXDP(t, p, in); server(ret, out) == first || server(ret, out) < 0 {
		t.Fatalf("the flow of a gone server: verdict %d server %d", ret, server(ret, out))
	}
	cs, _ := a.Counters()
	if cs[ACNewFlows] != 102 {
		t.Errorf("new_flows %d, want 102", cs[ACNewFlows])
	}
}

// ringWithout is a Maglev table of 251 slots over the 3 test servers
// except drained (a drained server is in no slot).
func ringWithout(drained int) []int32 {
	var others []int32
	for s := range 3 {
		if s != drained {
			others = append(others, int32(s))
		}
	}
	tab := make([]int32, 251)
	for i := range tab {
		tab[i] = others[i%2]
	}
	return tab
}

// A TCP SYN opens a connection: when a client reuses the ports of a flow
// whose server is drained, the table places it (no new connection goes
// to a drained server), and the flow follows; a SYN-ACK or any other
// segment stays with the flow's server.
func TestAnycastSYNOpensAFlow(t *testing.T) {
	a := newForwarder(t, 3)
	p := a.Program()
	flags := func(h []byte, f byte) []byte { h[13] = f; return h }
	for _, c := range []struct {
		name   string
		client netip.Addr
		vip    netip.Addr
	}{{"IPv4", client4, vip4.Addr()}, {"IPv6", client6, vip6.Addr()}} {
		t.Run(c.name, func(t *testing.T) {
			in := ipPacket(c.client, c.vip, 64, 6, tcp(4343, 80))
			first := server(runXDP(t, p, in))
			tab := ringWithout(first)
			for id := range 2 {
				if err := a.SetRing(id, tab); err != nil {
					t.Fatal(err)
				}
			}
			if s := server(runXDP(t, p, ipPacket(c.client, c.vip, 64, 6, flags(tcp(4343, 80), 0x12)))); s != first {
				t.Fatalf("a SYN-ACK went to %d, not the flow's server %d", s, first)
			}
			moved := server(runXDP(t, p, ipPacket(c.client, c.vip, 64, 6, flags(tcp(4343, 80), 0x02))))
			if moved == first || moved < 0 {
				t.Fatalf("a SYN on a drained server's flow went to %d (drained: %d)", moved, first)
			}
			if s := server(runXDP(t, p, in)); s != moved {
				t.Fatalf("the reopened connection's next segment went to %d, not %d", s, moved)
			}
			// A SYN cut short before its flags is an ordinary packet.
			short := ipPacket(c.client, c.vip, 64, 6, tcp(4343, 80)[:12])
			if s := server(runXDP(t, p, short)); s != moved {
				t.Fatalf("a segment without flags went to %d, not %d", s, moved)
			}
		})
	}
}

// A SYN flood from spoofed sources does not evict established flows: a
// SYN's flow waits in ac_opening until the connection's next segment, so
// 300,000 SYNs (more than the flow table holds) leave a drained server's
// established flow where it was (issue 21 finding 6); a connection whose
// SYN was placed continues to its server once confirmed.
func TestAnycastSYNFloodKeepsFlows(t *testing.T) {
	a := newForwarder(t, 3)
	p := a.Program()
	est := ipPacket(client4, vip4.Addr(), 64, 6, tcp(4444, 80))
	first := server(runXDP(t, p, est))
	if err := a.SetRing(0, ringWithout(first)); err != nil {
		t.Fatal(err)
	}
	syn := tcp(0, 80)
	syn[13] = 0x02
	pkt := ipPacket(netip.MustParseAddr("198.18.0.1"), vip4.Addr(), 64, 6, syn)
	for i := range 300_000 {
		// A new spoofed source and port each time, written in place (the
		// checksums do not matter to the program).
		binary.BigEndian.PutUint16(pkt[14+12+2:], uint16(i>>16))
		binary.BigEndian.PutUint16(pkt[14+20:], uint16(i))
		if ret, _, err := p.Test(pkt); err != nil || ret != xdpRedirect {
			t.Fatalf("SYN %d: verdict %d, %v", i, ret, err)
		}
	}
	if s := server(runXDP(t, p, est)); s != first {
		t.Fatalf("after a SYN flood the established flow went to %d, not its drained server %d", s, first)
	}
	// A connection opened during the flood: its SYN and next segment go to
	// the same server.
	open := tcp(5555, 80)
	open[13] = 0x02
	s1 := server(runXDP(t, p, ipPacket(client4, vip4.Addr(), 64, 6, open)))
	if s2 := server(runXDP(t, p, ipPacket(client4, vip4.Addr(), 64, 6, tcp(5555, 80)))); s1 != s2 || s1 == first {
		t.Fatalf("a new connection: SYN to %d, next segment to %d (drained: %d)", s1, s2, first)
	}
}
