package vxlan

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/frame/frametest"
)

var (
	askerMAC = frame.MAC{0x02, 0, 0, 0, 0, 0x0a}
	ownerMAC = frame.MAC{0x02, 0, 0, 0, 0, 0x0b}
)

func arpRequest(sender, target string) []byte { return frametest.ARPRequest(askerMAC, sender, target) }

func neighSolicit(src, target string) []byte { return frametest.NeighSolicit(askerMAC, src, target) }

func TestAskAndAnswerARP(t *testing.T) {
	var a Ask
	if !ParseAsk(arpRequest("10.77.0.1", "10.77.0.2"), &a) || a.IPv6 || a.Probe || a.Gratuitous || a.SrcMAC != askerMAC {
		t.Fatalf("%+v", a)
	}
	if a.Key(3) != (NeighKey{3, netip.MustParseAddr("::ffff:10.77.0.2").As16()}) {
		t.Fatalf("key %v", a.Key(3))
	}
	for _, vlan := range []uint16{0, 20} {
		out := make([]byte, MaxAnswer)
		n := Answer(out, &a, ownerMAC, vlan)
		r := out[:n]
		if vlan != 0 {
			if n != ARPReplyLen+4 || binary.BigEndian.Uint16(r[12:]) != 0x8100 || binary.BigEndian.Uint16(r[14:]) != vlan {
				t.Fatalf("tagged reply %x", r)
			}
			r = append(append([]byte(nil), r[:12]...), r[16:]...)
		}
		if len(r) != ARPReplyLen || frame.Ethernet(r).Dst() != askerMAC || frame.Ethernet(r).Src() != ownerMAC ||
			binary.BigEndian.Uint16(r[20:]) != 2 || frame.MAC(r[22:28]) != ownerMAC ||
			netip.AddrFrom4([4]byte(r[28:32])).String() != "10.77.0.2" || frame.MAC(r[32:38]) != askerMAC ||
			netip.AddrFrom4([4]byte(r[38:42])).String() != "10.77.0.1" {
			t.Fatalf("reply %x", r)
		}
		// The reply is an announcement of the owner's address, as
		// HostAddr reads it.
		if ip, ok := frame.HostAddr(r); !ok || ip.String() != "10.77.0.2" {
			t.Fatalf("HostAddr of the reply: %v %v", ip, ok)
		}
	}
	if !ParseAsk(arpRequest("0.0.0.0", "10.77.0.2"), &a) || !a.Probe {
		t.Errorf("a probe: %+v", a)
	}
	if !ParseAsk(arpRequest("10.77.0.2", "10.77.0.2"), &a) || !a.Gratuitous {
		t.Errorf("a gratuitous ARP: %+v", a)
	}
	reply := arpRequest("10.77.0.1", "10.77.0.2")
	reply[21] = 2
	for name, f := range map[string][]byte{
		"reply":            reply,
		"for 224.0.0.1":    arpRequest("10.77.0.1", "224.0.0.1"),
		"for 0.0.0.1":      arpRequest("10.77.0.1", "0.0.0.1"),
		"short":            arpRequest("10.77.0.1", "10.77.0.2")[:41],
		"another's sender": func() []byte { f := arpRequest("10.77.0.1", "10.77.0.2"); f[27] ^= 1; return f }(),
	} {
		if ParseAsk(f, &a) {
			t.Errorf("%s taken as an ask", name)
		}
	}
}

func TestAskAndAnswerND(t *testing.T) {
	var a Ask
	if !ParseAsk(neighSolicit("fd00::1", "fd00::2"), &a) || !a.IPv6 || a.Probe || a.SrcMAC != askerMAC ||
		a.Target != netip.MustParseAddr("fd00::2").As16() {
		t.Fatalf("%+v", a)
	}
	out := make([]byte, MaxAnswer)
	n := Answer(out, &a, ownerMAC, 0)
	r := out[:n]
	ip := r[14:]
	icmp := ip[40:]
	if n != NALen || frame.Ethernet(r).Dst() != askerMAC || frame.Ethernet(r).Src() != ownerMAC || ip[7] != 255 ||
		netip.AddrFrom16([16]byte(ip[8:24])).String() != "fd00::2" || netip.AddrFrom16([16]byte(ip[24:40])).String() != "fd00::1" ||
		icmp[0] != 136 || icmp[4] != 0x60 || frame.MAC(icmp[26:32]) != ownerMAC {
		t.Fatalf("advertisement %x", r)
	}
	sum := frame.Checksum(0, ip[8:40]) + 32 + 58
	if frame.Fold(frame.Checksum(sum, icmp)) != 0 {
		t.Fatalf("bad ICMPv6 checksum %x", r)
	}
	if ip, ok := frame.HostAddr(r); !ok || ip.String() != "fd00::2" {
		t.Fatalf("HostAddr of the advertisement: %v %v", ip, ok)
	}
	if !ParseAsk(neighSolicit("::", "fd00::2"), &a) || !a.Probe {
		t.Errorf("a probe: %+v", a)
	}
	bad := func(f func([]byte)) []byte { b := neighSolicit("fd00::1", "fd00::2"); f(b); return b }
	for name, f := range map[string][]byte{
		"hop limit 254":      bad(func(b []byte) { b[21] = 254 }),
		"advertisement":      bad(func(b []byte) { b[54] = 136 }),
		"code 1":             bad(func(b []byte) { b[55] = 1 }),
		"multicast target":   bad(func(b []byte) { b[62] = 0xff }),
		"option of length 0": bad(func(b []byte) { b[79] = 0 }),
		"payload past end":   bad(func(b []byte) { b[19] = 40 }),
		"extension header":   bad(func(b []byte) { b[20] = 0 }),
	} {
		if ParseAsk(f, &a) {
			t.Errorf("%s taken as an ask", name)
		}
	}
}

func FuzzAsk(f *testing.F) {
	f.Add(arpRequest("10.77.0.1", "10.77.0.2"))
	f.Add(neighSolicit("fd00::1", "fd00::2"))
	f.Add(neighSolicit("::", "fe80::2"))
	out := make([]byte, MaxAnswer)
	f.Fuzz(func(t *testing.T, b []byte) {
		var a Ask
		if !ParseAsk(b, &a) {
			return
		}
		if n := Answer(out, &a, ownerMAC, 4095); n > MaxAnswer {
			t.Fatalf("answer of %d bytes", n)
		}
		var back Ask
		if n := Answer(out, &a, ownerMAC, 0); a.IPv6 && ParseAsk(out[:n], &back) {
			t.Fatal("an answer is itself an ask")
		}
	})
}

func TestAskAllocs(t *testing.T) {
	arp, ns := arpRequest("10.77.0.1", "10.77.0.2"), neighSolicit("fd00::1", "fd00::2")
	out := make([]byte, MaxAnswer)
	m := map[NeighKey]Neigh{{0, netip.MustParseAddr("::ffff:10.77.0.2").As16()}: {MAC: ownerMAC}}
	n := testing.AllocsPerRun(1000, func() {
		for _, f := range [][]byte{arp, ns} {
			var a Ask
			if ParseAsk(f, &a) {
				e := m[a.Key(0)]
				Answer(out, &a, e.MAC, 20)
			}
		}
	})
	if n != 0 {
		t.Fatalf("%v allocations per ask", n)
	}
}

func BenchmarkAnswerARP(b *testing.B) {
	f := arpRequest("10.77.0.1", "10.77.0.2")
	out := make([]byte, MaxAnswer)
	m := map[NeighKey]Neigh{{0, netip.MustParseAddr("::ffff:10.77.0.2").As16()}: {MAC: ownerMAC}}
	b.ReportAllocs()
	for b.Loop() {
		var a Ask
		if ParseAsk(f, &a) {
			if e, ok := m[a.Key(0)]; ok {
				Answer(out, &a, e.MAC, 0)
			}
		}
	}
}
