package bpf

import (
	"encoding/binary"
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
)

func needRoot(t testing.TB) {
	t.Helper()
	if testing.Short() || os.Geteuid() != 0 {
		t.Skip("loads XDP programs: needs root, and not -short")
	}
}

var (
	peerMAC  = [6]byte{2, 0x70, 0x63, 0x61, 0x70, 1}
	otherMAC = [6]byte{2, 0x66, 0x66, 0x66, 0x66, 0x66}
	peerIP   = netip.MustParseAddr("2001:db8:a::a")
	otherIP  = netip.MustParseAddr("2001:db8:c::c")
	vtep4    = netip.MustParseAddr("192.0.2.1")
)

func ethFrame(src [6]byte, etherType uint16) []byte {
	f := make([]byte, 64)
	copy(f[0:6], []byte{2, 0, 0, 0, 0, 2})
	copy(f[6:12], src[:])
	binary.BigEndian.PutUint16(f[12:], etherType)
	return f
}

// ip6Packet builds an IPv6 packet from src; exts are extension headers
// (next header values) put before next header 252.
func ip6Packet(src netip.Addr, exts ...uint8) []byte {
	f := ethFrame([6]byte{2, 0, 0, 0, 0xf, 0xb}, 0x86dd)[:14]
	ip := make([]byte, 40)
	ip[0] = 0x60
	ip[7] = 63
	s, d := src.As16(), netip.MustParseAddr("2001:db8:b::b").As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	nh := &ip[6]
	var body []byte
	for _, e := range exts {
		*nh = e
		h := make([]byte, 8)
		body = append(body, h...)
		nh = &body[len(body)-8]
	}
	*nh = 252
	body = append(body, make([]byte, 64)...)
	binary.BigEndian.PutUint16(ip[4:], uint16(len(body)))
	return append(append(f, ip...), body...)
}

// udpPacket builds an IPv6 or IPv4 UDP packet from src to port.
func udpPacket(src netip.Addr, port uint16) []byte {
	var f []byte
	if src.Is4() {
		f = ethFrame([6]byte{2, 0, 0, 0, 0xf, 0xb}, 0x0800)[:14]
		ip := make([]byte, 20)
		ip[0], ip[8], ip[9] = 0x45, 64, 17
		s := src.As4()
		copy(ip[12:], s[:])
		copy(ip[16:], []byte{192, 0, 2, 9})
		f = append(f, ip...)
	} else {
		f = ethFrame([6]byte{2, 0, 0, 0, 0xf, 0xb}, 0x86dd)[:14]
		ip := make([]byte, 40)
		ip[0], ip[6], ip[7] = 0x60, 17, 64
		s := src.As16()
		copy(ip[8:], s[:])
		f = append(f, ip...)
	}
	udp := make([]byte, 8+8+64)
	binary.BigEndian.PutUint16(udp[0:], 50000)
	binary.BigEndian.PutUint16(udp[2:], port)
	return append(f, udp...)
}

func run(t *testing.T, p *ebpf.Program, pkt []byte) uint32 {
	t.Helper()
	ret, err := p.Run(&ebpf.RunOptions{Data: pkt})
	if err != nil {
		t.Fatal(err)
	}
	return ret
}

const (
	xdpDrop = 1
	xdpPass = 2
)

const testWGPort = 51820

// TestUplinkProgram checks the uplink program's verdicts and counters in
// each mode. No socket is registered, so a peer's frame ends as "no
// socket", which shows it was accepted.
func TestUplinkProgram(t *testing.T) {
	needRoot(t)
	tests := []struct {
		name  string
		mode  Mode
		peers []PeerKey
		pkt   []byte
		want  uint32
		count int
	}{
		{"unconfigured passes pseudowire", ModeNone, nil, ethFrame(peerMAC, 0x96fc), xdpPass, ULPass},
		{"eth: peer", ModeEth, []PeerKey{MACPeer(peerMAC)}, ethFrame(peerMAC, 0x96fc), xdpDrop, ULNoSocket},
		{"eth: stranger", ModeEth, []PeerKey{MACPeer(peerMAC)}, ethFrame(otherMAC, 0x96fc), xdpDrop, ULStranger},
		{"eth: no peers yet", ModeEth, nil, ethFrame(peerMAC, 0x96fc), xdpDrop, ULStranger},
		{"eth: other traffic", ModeEth, []PeerKey{MACPeer(peerMAC)}, ethFrame(peerMAC, 0x86dd), xdpPass, ULPass},
		{"ip6: peer", ModeIP6, []PeerKey{AddrPeer(peerIP)}, ip6Packet(peerIP), xdpDrop, ULNoSocket},
		{"ip6: stranger", ModeIP6, []PeerKey{AddrPeer(peerIP)}, ip6Packet(otherIP), xdpDrop, ULStranger},
		{"ip6: destination options first", ModeIP6, []PeerKey{AddrPeer(peerIP)}, ip6Packet(peerIP, 60), xdpDrop, ULExtHeaders},
		{"ip6: hop-by-hop, routing, fragment", ModeIP6, []PeerKey{AddrPeer(peerIP)}, ip6Packet(peerIP, 0, 43, 44), xdpDrop, ULExtHeaders},
		{"ip6: eth-mode frame passes", ModeIP6, []PeerKey{AddrPeer(peerIP)}, ethFrame(peerMAC, 0x96fc), xdpPass, ULPass},
		{"ip6: truncated IPv6 header", ModeIP6, []PeerKey{AddrPeer(peerIP)}, ip6Packet(peerIP)[:40], xdpPass, ULPass},
		{"vxlan: ipv6 vtep", ModeVXLAN, []PeerKey{AddrPeer(peerIP)}, udpPacket(peerIP, 4789), xdpDrop, ULNoSocket},
		{"vxlan: ipv4 vtep", ModeVXLAN, []PeerKey{AddrPeer(vtep4)}, udpPacket(vtep4, 4789), xdpDrop, ULNoSocket},
		{"vxlan: unknown ipv6 vtep", ModeVXLAN, []PeerKey{AddrPeer(peerIP)}, udpPacket(otherIP, 4789), xdpDrop, ULStranger},
		{"vxlan: unknown ipv4 vtep", ModeVXLAN, []PeerKey{AddrPeer(peerIP)}, udpPacket(vtep4, 4789), xdpDrop, ULStranger},
		{"vxlan: other udp passes", ModeVXLAN, []PeerKey{AddrPeer(peerIP)}, udpPacket(peerIP, 179), xdpPass, ULPass},
		{"vxlan: ipv4 fragment passes", ModeVXLAN, []PeerKey{AddrPeer(vtep4)}, func() []byte { p := udpPacket(vtep4, 4789); p[14+6] = 0x20; return p }(), xdpPass, ULPass},
		{"vxlan: pseudowire passes", ModeVXLAN, []PeerKey{AddrPeer(peerIP)}, ip6Packet(peerIP), xdpPass, ULPass},
		// WireGuard: to its port from anyone (no peers: they roam).
		{"wg: ipv6", ModeWireGuard, nil, udpPacket(otherIP, testWGPort), xdpDrop, ULNoSocket},
		{"wg: ipv4", ModeWireGuard, nil, udpPacket(vtep4, testWGPort), xdpDrop, ULNoSocket},
		{"wg: other udp passes", ModeWireGuard, nil, udpPacket(peerIP, 179), xdpPass, ULPass},
		{"wg: ipv4 fragment passes", ModeWireGuard, nil, func() []byte { p := udpPacket(vtep4, testWGPort); p[14+6] = 0x20; return p }(), xdpPass, ULPass},
		{"wg: truncated udp passes", ModeWireGuard, nil, udpPacket(peerIP, testWGPort)[:14+40+4], xdpPass, ULPass},
		{"wg: pseudowire passes", ModeWireGuard, nil, ip6Packet(peerIP), xdpPass, ULPass},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := Load(tt.mode, false, testWGPort)
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			if err := o.ReplacePeers(nil, tt.peers); err != nil {
				t.Fatal(err)
			}
			if got := run(t, o.objs.PwgateUplink, tt.pkt); got != tt.want {
				t.Errorf("verdict %d, want %d", got, tt.want)
			}
			c, err := o.Counters()
			if err != nil {
				t.Fatal(err)
			}
			for i, v := range c {
				if want := map[bool]uint64{true: 1}[i == tt.count]; v != want {
					t.Errorf("counter %d = %d, want %d", i, v, want)
				}
			}
		})
	}
}

// TestDownlinkLLDP: loaded with passLLDP the downlink program passes
// LLDP to the kernel and nothing else; without, LLDP goes the way of every
// frame (here, with no socket, dropped and counted).
func TestDownlinkLLDP(t *testing.T) {
	needRoot(t)
	for _, pass := range []bool{false, true} {
		o, err := Load(ModeEth, pass, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			pkt  []byte
			want uint32
		}{
			{ethFrame(peerMAC, 0x88cc), map[bool]uint32{false: xdpDrop, true: xdpPass}[pass]},
			{ethFrame(peerMAC, 0x0800), xdpDrop},
		} {
			if got := run(t, o.objs.PwgateDownlink, c.pkt); got != c.want {
				t.Errorf("passLLDP %v, % x...: verdict %d, want %d", pass, c.pkt[:min(len(c.pkt), 14)], got, c.want)
			}
		}
		o.Close()
	}
}

// TestReplacePeers: the new peer is in the map before the old one leaves,
// and a failed replacement leaves the old set.
func TestReplacePeers(t *testing.T) {
	needRoot(t)
	o, err := Load(ModeIP6, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if n := o.objs.PwPeers.MaxEntries(); n != MaxPeers {
		t.Fatalf("the peer map holds %d, MaxPeers says %d", n, MaxPeers)
	}
	a, b := AddrPeer(peerIP), AddrPeer(otherIP)
	if err := o.ReplacePeers(nil, []PeerKey{a}); err != nil {
		t.Fatal(err)
	}
	if err := o.ReplacePeers([]PeerKey{a}, []PeerKey{b}); err != nil {
		t.Fatal(err)
	}
	if got, _ := o.Peers(); len(got) != 1 || got[0] != b {
		t.Fatalf("peers %x, want only %x", got, b)
	}
	if run(t, o.objs.PwgateUplink, ip6Packet(peerIP)) != xdpDrop {
		t.Fatal("old peer's packet not dropped")
	}
	// More keys than the map holds: the replacement fails and the map
	// keeps what it had.
	many := make([]PeerKey, 2000)
	for i := range many {
		binary.BigEndian.PutUint32(many[i][12:], uint32(i))
	}
	if err := o.ReplacePeers([]PeerKey{b}, many); err == nil {
		t.Fatal("replacing with 2000 peers succeeded")
	}
	if got, _ := o.Peers(); len(got) != 1 || got[0] != b {
		t.Fatalf("after a failed replacement: %d peers, want only %x", len(got), b)
	}
	// A full map with one key replaced: the old key leaves first (the
	// EVPN controller's full set of VTEPs, issue 21).
	full := many[:MaxPeers]
	if err := o.ReplacePeers([]PeerKey{b}, full); err != nil {
		t.Fatal(err)
	}
	swapped := append(slices.Clone(full[1:]), many[MaxPeers])
	if err := o.ReplacePeers(full, swapped); err != nil {
		t.Fatalf("replacing one of %d peers: %v", MaxPeers, err)
	}
	if got, _ := o.Peers(); len(got) != MaxPeers || slices.Contains(got, full[0]) || !slices.Contains(got, many[MaxPeers]) {
		t.Fatalf("after replacing one: %d peers", len(got))
	}
}
