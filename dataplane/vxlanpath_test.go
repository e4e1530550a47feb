package dataplane

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/frame/frametest"
	"github.com/pwgate/pwgate/dataplane/spsc"
	"github.com/pwgate/pwgate/dataplane/stats"
	"github.com/pwgate/pwgate/dataplane/vxlan"
	"github.com/pwgate/pwgate/dataplane/xsk"
)

var (
	vtepA = netip.MustParseAddr("2001:db8:a::a")
	vtepB = netip.MustParseAddr("2001:db8:b::b")
	vtepC = netip.MustParseAddr("2001:db8:c::c")
	hostX = frame.MAC{2, 0x11, 0, 0, 0, 1} // on A's LAN
	hostY = frame.MAC{2, 0x22, 0, 0, 0, 2} // behind C
)

// vxSite is an engine in VXLAN mode over fake ports, with its table.
type vxSite struct {
	e       *Engine
	dl, ul  *xsk.Fake
	fdb     *atomic.Pointer[vxlan.Table]
	b       *vxlan.Builder
	learned [2]*spsc.Ring[vxlan.Learned]
}

func newVXSite(t *testing.T, local netip.Addr, vteps []vxlan.VTEP, learn bool) *vxSite {
	t.Helper()
	u := xsk.NewFakeUMEM(512)
	s := &vxSite{dl: xsk.NewFake(u), ul: xsk.NewFake(u), fdb: new(atomic.Pointer[vxlan.Table]), b: vxlan.NewBuilder(64)}
	s.learned = [2]*spsc.Ring[vxlan.Learned]{spsc.New[vxlan.Learned](64), spsc.New[vxlan.Learned](64)}
	flood := make([]int32, len(vteps))
	for i := range flood {
		flood[i] = int32(i)
	}
	s.b.SetVNIs([]vxlan.VNI{{ID: 101, Flood: flood}, {ID: 102, VLAN: 100, Flood: flood[:min(1, len(flood))]}})
	s.b.SetVTEPs(vteps)
	s.fdb.Store(s.b.Publish())
	p := &Params{VXLAN: &VXLANParams{Encap: vxlan.EncapConfig{Src: refMAC, Local: local, MTU: 1500, Split: true}, LearnRemote: learn}}
	e, err := New(Config{UMEM: u, DL: s.dl, UL: s.ul, EncapCore: -1, DecapCore: -1, Batch: 16, FDB: s.fdb, Learned: s.learned}, p)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	s.e = e
	return s
}

func lanFrame(dst, src frame.MAC, n int, vlan uint16) []byte {
	f := make([]byte, n)
	copy(f, dst[:])
	copy(f[6:], src[:])
	i := 12
	if vlan != 0 {
		binary.BigEndian.PutUint16(f[12:], frame.EtherTypeVLAN)
		binary.BigEndian.PutUint16(f[14:], vlan)
		i = 16
	}
	binary.BigEndian.PutUint16(f[i:], 0x88b5)
	for j := i + 2; j < n; j++ {
		f[j] = byte(j)
	}
	return f
}

func decapOne(t *testing.T, p []byte, local netip.Addr) vxlan.Received {
	t.Helper()
	d, _ := vxlan.NewDecapsulator(local, false, false)
	r, why := d.Decap(p)
	if why != vxlan.DropNone {
		t.Fatalf("not a VXLAN packet for %v: %v", local, why)
	}
	return r
}

func TestVXLANEncap(t *testing.T) {
	a := newVXSite(t, vtepA, []vxlan.VTEP{{Addr: vtepB, NextHop: routerA, Up: true, Pwgate: true}, {Addr: vtepC, NextHop: routerA, Up: true}}, false)
	// A broadcast is replicated to both VTEPs; the source MAC is learned.
	bc := lanFrame(frame.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, hostX, 100, 0)
	inject(t, a.dl, [][]byte{bc})
	got := collect(t, a.ul, 2)
	dsts := map[netip.Addr]bool{}
	for _, p := range got {
		for _, v := range []netip.Addr{vtepB, vtepC} {
			if frame.IPv6(p[14:]).Dst() == v {
				r := decapOne(t, p, v)
				if r.VNI != 101 || !bytes.Equal(r.Inner, bc) {
					t.Fatalf("flooded copy to %v: VNI %d, %x", v, r.VNI, r.Inner)
				}
				dsts[v] = true
			}
		}
	}
	if len(dsts) != 2 {
		t.Fatalf("flooded to %v", dsts)
	}
	waitCounter(t, a.e, stats.ULTxFloodCopies, 2)
	if l, ok := a.learned[0].Pop1(); !ok || l.Key != vxlan.MakeKey(0, hostX) || l.VTEP != vxlan.Local {
		t.Fatalf("learned %+v %v", l, ok)
	}
	// Known unicast goes to its VTEP only.
	a.b.Set(vxlan.MakeKey(0, hostY), vxlan.Entry{VTEP: 1})
	a.fdb.Store(a.b.Publish())
	uc := lanFrame(hostY, hostX, 200, 0)
	inject(t, a.dl, [][]byte{uc})
	got = collect(t, a.ul, 1)
	if frame.IPv6(got[0][14:]).Dst() != vtepC || !bytes.Equal(decapOne(t, got[0], vtepC).Inner, uc) {
		t.Fatalf("unicast went to %v", frame.IPv6(got[0][14:]).Dst())
	}
	// VLAN 100 is VNI 102, which leaves untagged; VLAN 200 is no VNI.
	tagged := lanFrame(hostY, hostX, 120, 100)
	inject(t, a.dl, [][]byte{tagged, lanFrame(hostY, hostX, 120, 200)})
	got = collect(t, a.ul, 1)
	r := decapOne(t, got[0], vtepB)
	want := append(append([]byte(nil), tagged[:12]...), tagged[16:]...)
	if r.VNI != 102 || !bytes.Equal(r.Inner, want) {
		t.Fatalf("VLAN 100: VNI %d, %x", r.VNI, r.Inner)
	}
	waitCounter(t, a.e, stats.DLDropNoVNI, 1)
	// A 1514-byte frame crosses to the pwgate VTEP in two pieces; the
	// other VTEP cannot take it.
	big := lanFrame(frame.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, hostX, 1514, 0)
	inject(t, a.dl, [][]byte{big})
	got = collect(t, a.ul, 2)
	for _, p := range got {
		if r := decapOne(t, p, vtepB); !r.Piece || len(p) > 1514 {
			t.Fatalf("piece %d bytes, piece %v", len(p), r.Piece)
		}
	}
	waitCounter(t, a.e, stats.DLDropVXLANTooBig, 1)
}

// TestVXLANDecap: B receives A's packets: frames reach the LAN, VLAN 100
// tagged again, pieces reassembled, and (static mode) A's MACs learned.
func TestVXLANDecap(t *testing.T) {
	a := newVXSite(t, vtepA, []vxlan.VTEP{{Addr: vtepB, NextHop: routerA, Up: true, Pwgate: true}}, false)
	b := newVXSite(t, vtepB, []vxlan.VTEP{{Addr: vtepA, NextHop: routerA, Up: true, Pwgate: true}}, true)
	frames := [][]byte{
		lanFrame(hostY, hostX, 100, 0),
		lanFrame(hostY, hostX, 300, 100),
		lanFrame(frame.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, hostX, 1514, 0),
	}
	inject(t, a.dl, frames)
	pkts := collect(t, a.ul, 4)
	inject(t, b.ul, pkts)
	got := collect(t, b.dl, 3)
	for i := range frames {
		if !bytes.Equal(got[i], frames[i]) {
			t.Fatalf("frame %d arrived as %x", i, got[i][:min(40, len(got[i]))])
		}
	}
	waitCounter(t, b.e, stats.ULRxReassembled, 1)
	if l, ok := b.learned[1].Pop1(); !ok || l.Key.MAC() != hostX || l.VTEP != 0 {
		t.Fatalf("remote learning: %+v %v", l, ok)
	}
	// A VNI B does not carry, and a VTEP B does not know, are counted.
	c := newVXSite(t, vtepC, nil, false)
	inject(t, c.ul, pkts[:1])
	waitCounter(t, c.e, stats.ULDropVXLANNotForUs, 1)
}

func TestVXLANBatchZeroAllocs(t *testing.T) {
	tab := new(atomic.Pointer[vxlan.Table])
	bu := vxlan.NewBuilder(64)
	bu.SetVNIs([]vxlan.VNI{{ID: 101, Flood: []int32{0, 1}}})
	bu.SetVTEPs([]vxlan.VTEP{{Addr: vtepB, NextHop: routerA, Up: true}, {Addr: vtepC, NextHop: routerA, Up: true}})
	bu.Set(vxlan.MakeKey(0, hostX), vxlan.Entry{VTEP: vxlan.Local})
	tab.Store(bu.Publish())
	for _, dst := range []frame.MAC{hostY, {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}} {
		u := xsk.NewFakeUMEM(1024)
		dl, ul := &loopPort{umem: u}, &loopPort{umem: u}
		dl.frames = [][]byte{lanFrame(dst, hostX, 64, 0)}
		p := &Params{VXLAN: &VXLANParams{Encap: vxlan.EncapConfig{Src: refMAC, Local: vtepA, MTU: 1500}}}
		e, err := New(Config{UMEM: u, DL: dl, UL: ul, Batch: 64, FDB: tab, Learned: [2]*spsc.Ring[vxlan.Learned]{spsc.New[vxlan.Learned](64), spsc.New[vxlan.Learned](64)}}, p)
		if err != nil {
			t.Fatal(err)
		}
		e.enc.step(e.enc.process)
		if a := testing.AllocsPerRun(100, func() { e.enc.step(e.enc.process) }); a != 0 {
			t.Errorf("to %v: %v allocations per batch", dst, a)
		}
		if ul.sent == 0 {
			t.Errorf("to %v: nothing sent", dst)
		}
	}
}

// TestVXLANFloodSkipsDownVTEPs: a broadcast is copied only to VTEPs that
// are up (a neighbor may name hundreds of unresolvable ones), the original
// going to the last one up; a VTEP of the other IP version in a table is
// a counted drop, never a panic (issue 21 finding 1).
func TestVXLANFloodSkipsDownVTEPs(t *testing.T) {
	down := netip.MustParseAddr("2001:db8:d::d")
	v4 := netip.MustParseAddr("192.0.2.4")
	a := newVXSite(t, vtepA, []vxlan.VTEP{{Addr: vtepB, NextHop: routerA, Up: true}, {Addr: down}, {Addr: vtepC, NextHop: routerA, Up: true},
		{Addr: v4, NextHop: routerA, Up: true}, {Addr: down}}, false)
	bc := lanFrame(frame.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, hostX, 100, 0)
	inject(t, a.dl, [][]byte{bc})
	got := collect(t, a.ul, 2)
	for _, p := range got {
		if d := frame.IPv6(p[14:]).Dst(); d != vtepB && d != vtepC {
			t.Errorf("flooded to %v", d)
		}
	}
	waitCounter(t, a.e, stats.DLDropBadVTEP, 1)
	waitCounter(t, a.e, stats.ULTxFloodCopies, 3)
}

// ARP and ND suppression (vxlan.vnis[].suppress): an ask for a remote
// host's address is answered on the LAN (by the decap goroutine, through
// the answers ring), tagged as the ask was; one for a LAN host's stays on
// the LAN; probes, gratuitous ARP and unknown addresses are flooded.
func TestVXLANSuppress(t *testing.T) {
	a := newVXSite(t, vtepA, []vxlan.VTEP{{Addr: vtepB, NextHop: routerA, Up: true}}, false)
	vnis := []vxlan.VNI{{ID: 101, Flood: []int32{0}, Suppress: true}, {ID: 102, VLAN: 100, Flood: []int32{0}, Suppress: true}}
	a.b.SetVNIs(vnis)
	key := func(vi int, ip string) vxlan.NeighKey {
		return vxlan.NeighKey{VNI: int32(vi), IP: netip.MustParseAddr(ip).As16()}
	}
	a.b.SetNeigh(map[vxlan.NeighKey]vxlan.Neigh{
		key(0, "::ffff:10.77.0.2"): {MAC: hostY},
		key(1, "::ffff:10.77.0.2"): {MAC: hostY},
		key(0, "fd00::2"):          {MAC: hostY},
		key(0, "fe80::2"):          {MAC: hostY},
		key(0, "::ffff:10.77.0.3"): {MAC: hostX, Local: true},
	})
	a.fdb.Store(a.b.Publish())
	hostZ := frame.MAC{2, 0x33, 0, 0, 0, 3}
	var ask vxlan.Ask

	// A remote host's IPv4 address: answered on the LAN, not flooded.
	inject(t, a.dl, [][]byte{frametest.ARPRequest(hostZ, "10.77.0.1", "10.77.0.2")})
	got := collect(t, a.dl, 1)[0]
	if len(got) != vxlan.ARPReplyLen || frame.Ethernet(got).Dst() != hostZ || frame.Ethernet(got).Src() != hostY || binary.BigEndian.Uint16(got[20:]) != 2 {
		t.Fatalf("ARP reply %x", got)
	}
	waitCounter(t, a.e, stats.EVPNARPSuppressed, 1)
	// Tagged: the reply carries the ask's VLAN.
	tagged := frametest.ARPRequest(hostZ, "10.77.0.1", "10.77.0.2")
	tagged = append(append(append([]byte(nil), tagged[:12]...), 0x81, 0, 0, 100), tagged[12:]...)
	inject(t, a.dl, [][]byte{tagged})
	got = collect(t, a.dl, 1)[0]
	if len(got) != vxlan.ARPReplyLen+4 || binary.BigEndian.Uint16(got[14:]) != 100 || frame.Ethernet(got).Src() != hostY {
		t.Fatalf("tagged ARP reply %x", got)
	}
	// IPv6: a neighbour advertisement.
	inject(t, a.dl, [][]byte{frametest.NeighSolicit(hostZ, "fd00::1", "fd00::2")})
	got = collect(t, a.dl, 1)[0]
	if len(got) != vxlan.NALen || got[54] != 136 || frame.Ethernet(got).Src() != hostY || vxlan.ParseAsk(got, &ask) {
		t.Fatalf("neighbour advertisement %x", got)
	}
	waitCounter(t, a.e, stats.EVPNNDSuppressed, 1)
	// A LAN host's address: nothing sent anywhere (the host answers).
	inject(t, a.dl, [][]byte{frametest.ARPRequest(hostZ, "10.77.0.1", "10.77.0.3")})
	waitCounter(t, a.e, stats.EVPNARPSuppressed, 3)
	// Flooded: an unknown address, a probe, a gratuitous ARP, an unknown
	// IPv6 address, an IPv6 probe, and a link-local address (perhaps a
	// router's: our answer would say it is not one).
	inject(t, a.dl, [][]byte{
		frametest.ARPRequest(hostZ, "10.77.0.1", "10.77.0.9"),
		frametest.ARPRequest(hostZ, "0.0.0.0", "10.77.0.2"),
		frametest.ARPRequest(hostZ, "10.77.0.2", "10.77.0.2"),
		frametest.NeighSolicit(hostZ, "fd00::1", "fd00::9"),
		frametest.NeighSolicit(hostZ, "::", "fd00::2"),
		frametest.NeighSolicit(hostZ, "fe80::1", "fe80::2"),
	})
	collect(t, a.ul, 6)
	waitCounter(t, a.e, stats.EVPNARPFlooded, 3)
	waitCounter(t, a.e, stats.EVPNNDFlooded, 3)
	if s := a.dl.Sent(); len(s) != 0 {
		t.Fatalf("%d more frames on the LAN", len(s))
	}
	// Suppression off: flooded, unanswered, uncounted.
	vnis[0].Suppress = false
	a.b.SetVNIs(vnis)
	a.fdb.Store(a.b.Publish())
	inject(t, a.dl, [][]byte{frametest.ARPRequest(hostZ, "10.77.0.1", "10.77.0.2")})
	collect(t, a.ul, 1)
	waitCounter(t, a.e, stats.EVPNARPFlooded, 3)
}

// An ARP storm answered costs no allocations.
func TestVXLANSuppressZeroAllocs(t *testing.T) {
	tab := new(atomic.Pointer[vxlan.Table])
	bu := vxlan.NewBuilder(64)
	bu.SetVNIs([]vxlan.VNI{{ID: 101, Flood: []int32{0}, Suppress: true}})
	bu.SetVTEPs([]vxlan.VTEP{{Addr: vtepB, NextHop: routerA, Up: true}})
	bu.SetNeigh(map[vxlan.NeighKey]vxlan.Neigh{{VNI: 0, IP: netip.MustParseAddr("::ffff:10.77.0.2").As16()}: {MAC: hostY}})
	tab.Store(bu.Publish())
	u := xsk.NewFakeUMEM(1024)
	dl, ul := &loopPort{umem: u}, &loopPort{umem: u}
	dl.frames = [][]byte{frametest.ARPRequest(hostX, "10.77.0.1", "10.77.0.2")}
	p := &Params{VXLAN: &VXLANParams{Encap: vxlan.EncapConfig{Src: refMAC, Local: vtepA, MTU: 1500}}}
	e, err := New(Config{UMEM: u, DL: dl, UL: ul, Batch: 64, FDB: tab, Learned: [2]*spsc.Ring[vxlan.Learned]{spsc.New[vxlan.Learned](64), spsc.New[vxlan.Learned](64)}}, p)
	if err != nil {
		t.Fatal(err)
	}
	turn := func() {
		e.enc.step(e.enc.process)
		e.dec.tick()
		e.dec.reap()
	}
	turn()
	if a := testing.AllocsPerRun(100, turn); a != 0 {
		t.Errorf("%v allocations per batch", a)
	}
	if dl.sent == 0 || ul.sent != 0 {
		t.Errorf("answers sent %d, frames flooded %d", dl.sent, ul.sent)
	}
}

// BenchmarkARPStorm is the LAN's ARP requests for a remote host's address,
// 64 a batch, as the encap goroutine (and, answered, the decap
// goroutine's send) handles them: answered from the address table
// (suppression), flooded to two VTEPs (suppress: off), and, for
// comparison, a 60-byte unicast frame to one VTEP. b.N counts requests
// (frames).
func BenchmarkARPStorm(b *testing.B) {
	for _, c := range []struct {
		name     string
		suppress bool
		frame    []byte
	}{
		{"answered", true, frametest.ARPRequest(hostX, "10.77.0.1", "10.77.0.2")},
		{"flooded", false, frametest.ARPRequest(hostX, "10.77.0.1", "10.77.0.2")},
		{"unicast", true, lanFrame(hostY, hostX, 60, 0)},
	} {
		b.Run(c.name, func(b *testing.B) {
			tab := new(atomic.Pointer[vxlan.Table])
			bu := vxlan.NewBuilder(64)
			bu.SetVNIs([]vxlan.VNI{{ID: 101, Flood: []int32{0, 1}, Suppress: c.suppress}})
			bu.SetVTEPs([]vxlan.VTEP{{Addr: vtepB, NextHop: routerA, Up: true}, {Addr: vtepC, NextHop: routerA, Up: true}})
			bu.Set(vxlan.MakeKey(0, hostX), vxlan.Entry{VTEP: vxlan.Local})
			bu.Set(vxlan.MakeKey(0, hostY), vxlan.Entry{VTEP: 1})
			bu.SetNeigh(map[vxlan.NeighKey]vxlan.Neigh{{VNI: 0, IP: netip.MustParseAddr("::ffff:10.77.0.2").As16()}: {MAC: hostY}})
			tab.Store(bu.Publish())
			u := xsk.NewFakeUMEM(1024)
			dl, ul := &loopPort{umem: u}, &loopPort{umem: u}
			dl.frames = [][]byte{c.frame}
			p := &Params{VXLAN: &VXLANParams{Encap: vxlan.EncapConfig{Src: refMAC, Local: vtepA, MTU: 1500}}}
			e, err := New(Config{UMEM: u, DL: dl, UL: ul, Batch: 64, FDB: tab, Learned: [2]*spsc.Ring[vxlan.Learned]{spsc.New[vxlan.Learned](64), spsc.New[vxlan.Learned](64)}}, p)
			if err != nil {
				b.Fatal(err)
			}
			turn := func() {
				e.enc.step(e.enc.process)
				e.dec.tick()
				e.dec.reap()
			}
			turn()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += 64 {
				turn()
			}
			b.StopTimer()
			b.ReportMetric(float64(ul.sent+dl.sent)/float64(b.N), "sent/request")
		})
	}
}
