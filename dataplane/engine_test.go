package dataplane

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/frame/frametest"
	"github.com/pwgate/pwgate/dataplane/pseudowire"
	"github.com/pwgate/pwgate/dataplane/stats"
	"github.com/pwgate/pwgate/dataplane/xsk"
	"golang.org/x/sys/unix"
)

var (
	refMAC    = frame.MAC{0x02, 0x70, 0x63, 0x61, 0x70, 0x01}
	routerA   = frame.MAC{0x02, 0x00, 0x00, 0x00, 0x0f, 0x0a}
	refAddrA  = netip.MustParseAddr("2001:db8:a::a")
	refAddrB  = netip.MustParseAddr("2001:db8:b::b")
	strangerM = frame.MAC{0x02, 0x66, 0x66, 0x66, 0x66, 0x66}
)

// site is one engine over fake ports.
type site struct {
	e      *Engine
	dl, ul *xsk.Fake
}

func newSite(t *testing.T, p *Params) *site {
	t.Helper()
	u := xsk.NewFakeUMEM(512)
	s := &site{dl: xsk.NewFake(u), ul: xsk.NewFake(u)}
	e, err := New(Config{UMEM: u, DL: s.dl, UL: s.ul, EncapCore: -1, DecapCore: -1, Batch: 16}, p)
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

func ethParams(local, peer frame.MAC) *Params {
	return &Params{
		Encap: pseudowire.EncapConfig{Mode: pseudowire.ModeEth, Src: local, Dst: peer},
		Decap: pseudowire.DecapConfig{Mode: pseudowire.ModeEth, PeerMAC: peer},
	}
}

func ip6Params(local, peer netip.Addr, nextHop frame.MAC) *Params {
	return &Params{
		Encap: pseudowire.EncapConfig{Mode: pseudowire.ModeIP6, Src: refMAC, Dst: nextHop, SrcAddr: local, DstAddr: peer},
		Decap: pseudowire.DecapConfig{Mode: pseudowire.ModeIP6, PeerAddr: peer},
	}
}

// inject puts frames into port one by one, waiting for fill buffers.
func inject(t *testing.T, port *xsk.Fake, frames [][]byte) {
	t.Helper()
	for i, f := range frames {
		deadline := time.Now().Add(2 * time.Second)
		for !port.Inject(f) {
			if time.Now().After(deadline) {
				t.Fatalf("frame %d: no fill buffer", i)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// collect waits until port has sent n frames and returns them.
func collect(t *testing.T, port *xsk.Fake, n int) [][]byte {
	t.Helper()
	var got [][]byte
	for deadline := time.Now().Add(3 * time.Second); len(got) < n && time.Now().Before(deadline); {
		got = append(got, port.Sent()...)
		time.Sleep(time.Millisecond)
	}
	if len(got) != n {
		t.Fatalf("sent %d frames, want %d", len(got), n)
	}
	return got
}

func snapshot(e *Engine) stats.Snapshot {
	var s stats.Snapshot
	e.Snapshot(&s)
	return s
}

// waitCounter waits for counter c of e to reach want.
func waitCounter(t *testing.T, e *Engine, c stats.Counter, want uint64) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if snapshot(e)[c] == want {
			return
		}
	}
	t.Fatalf("%s = %d, want %d", c.Name(), snapshot(e)[c], want)
}

func sameButFragmentID(t *testing.T, got, want [][]byte, cwOff int) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d packets, want %d", len(got), len(want))
	}
	for i := range got {
		g, w := bytes.Clone(got[i]), bytes.Clone(want[i])
		if len(g) > cwOff+2 && len(w) > cwOff+2 {
			// The control word is little-endian: mask the 14-bit ID, keep the flags.
			g[cwOff], g[cwOff+1] = 0, g[cwOff+1]&0xc0
			w[cwOff], w[cwOff+1] = 0, w[cwOff+1]&0xc0
		}
		if !bytes.Equal(g, w) {
			t.Fatalf("packet %d:\n got %x\nwant %x", i+1, g, w)
		}
	}
}

// TestTwoSitesMatchReference runs the reference's five frames through two
// engines joined by an in-memory wire.
func TestTwoSitesMatchReference(t *testing.T) {
	for _, tc := range []struct {
		mode         string
		a, b         *Params
		in, ul, want string
	}{
		{"eth", ethParams(refMAC, refMAC), ethParams(refMAC, refMAC), "eth-a-dl-in", "eth-a-ul-out", "eth-b-dl-out"},
		{"ip6", ip6Params(refAddrA, refAddrB, routerA), ip6Params(refAddrB, refAddrA, routerA), "ip6-a-dl-in", "ip6-a-ul-out", "ip6-b-dl-out"},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			a, b := newSite(t, tc.a), newSite(t, tc.b)
			in := frametest.Reference(t, tc.in)
			inject(t, a.dl, in)
			wire := collect(t, a.ul, 7)
			sameButFragmentID(t, wire, frametest.Reference(t, tc.ul), tc.a.Encap.Mode.Overhead()-2)
			inject(t, b.ul, wire)
			got := collect(t, b.dl, 5)
			for i, w := range frametest.Reference(t, tc.want) {
				if !bytes.Equal(got[i], w) {
					t.Fatalf("frame %d delivered as %x", i+1, got[i])
				}
			}
			waitCounter(t, a.e, stats.ULTxPackets, 7)
			waitCounter(t, b.e, stats.DLTxPackets, 5)
			sa, sb := snapshot(a.e), snapshot(b.e)
			if sa[stats.DLRxPackets] != 5 || sa[stats.DLRxBPDUs] != 1 || sa[stats.ULTxFragments] != 4 || sa[stats.DLLastBPDU] == 0 {
				t.Errorf("site A counters: %v", sa)
			}
			if sb[stats.ULRxPackets] != 7 || sb[stats.ULRxBPDUs] != 1 || sb[stats.ULRxReassembled] != 2 || sb[stats.ULLastBPDU] == 0 {
				t.Errorf("site B counters: %v", sb)
			}
		})
	}
}

func ethFrame(n int) []byte {
	f := make([]byte, n)
	copy(f, []byte{0x02, 0xbb, 0, 0, 0, 2, 0x02, 0xaa, 0, 0, 0, 1, 0x08, 0x00})
	return f
}

func TestDropsAreCounted(t *testing.T) {
	a := newSite(t, ethParams(refMAC, strangerM))
	// Too big for two pieces.
	inject(t, a.dl, [][]byte{ethFrame(2779)})
	waitCounter(t, a.e, stats.DLDropOversize, 1)
	// A stranger's pseudowire packet on the uplink.
	p := append([]byte{0x02, 0x70, 0x63, 0x61, 0x70, 0x01, 0x02, 0x99, 0, 0, 0, 9, 0x96, 0xfc, 0, 0}, ethFrame(60)...)
	inject(t, a.ul, [][]byte{p})
	waitCounter(t, a.e, stats.ULDropWrongPeer, 1)
	// A full uplink TX ring: counted as the reference's ul_tx_errors too.
	a.ul.SetTxRoom(0)
	inject(t, a.dl, [][]byte{ethFrame(100), ethFrame(100)})
	waitCounter(t, a.e, stats.ULTxErrors, 2)
	waitCounter(t, a.e, stats.DLDropTxRingFull, 2)
	a.ul.SetTxRoom(-1)
	// A failing send is counted, and its errno kept for the main
	// goroutine's log.
	a.ul.SetKickError(unix.ENETDOWN)
	inject(t, a.dl, [][]byte{ethFrame(100)})
	waitCounter(t, a.e, stats.ULTxPackets, 1)
	inject(t, a.dl, [][]byte{ethFrame(100)})
	waitCounter(t, a.e, stats.ULTxPackets, 2)
	waitCounter(t, a.e, stats.ULSyscallErrors, 2)
	if dl, ul := a.e.LastErrnos(); ul != unix.ENETDOWN || dl != 0 {
		t.Fatalf("last errnos: downlink %v, uplink %v", dl, ul)
	}
}

// TestEncapDropReasons: frames the encapsulator refuses are counted under
// their own reason, not all as runts.
func TestEncapDropReasons(t *testing.T) {
	a := newSite(t, ip6Params(refAddrA, refAddrB, routerA))
	inject(t, a.dl, [][]byte{ethFrame(10)})
	waitCounter(t, a.e, stats.DLDropRunt, 1)
	// A driver that leaves less room in front than the outer headers need.
	a.dl.SetHeadroom(pseudowire.IP6Overhead - 1)
	inject(t, a.dl, [][]byte{ethFrame(100), ethFrame(1600)})
	waitCounter(t, a.e, stats.DLDropNoHeadroom, 2)
	if s := snapshot(a.e); s[stats.DLDropRunt] != 1 || s[stats.DLDropOversize] != 0 {
		t.Fatalf("runt %d, oversize %d, want 1 and 0", s[stats.DLDropRunt], s[stats.DLDropOversize])
	}
}

// TestRxWakeup: when nothing arrives and the driver asks to be woken to
// take fill buffers, the worker wakes it, in busy mode too (where it never
// polls); when the driver does not ask, no system call is made.
func TestRxWakeup(t *testing.T) {
	for _, poll := range []PollMode{Busy, Adaptive} {
		t.Run(poll.String(), func(t *testing.T) {
			u := xsk.NewFakeUMEM(512)
			dl, ul := xsk.NewFake(u), xsk.NewFake(u)
			e, err := New(Config{UMEM: u, DL: dl, UL: ul, Poll: poll, EncapCore: -1, DecapCore: -1, Batch: 16}, ethParams(refMAC, refMAC))
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Start(); err != nil {
				t.Fatal(err)
			}
			defer e.Stop()
			time.Sleep(50 * time.Millisecond)
			if n := dl.RxWakeups() + ul.RxWakeups(); n != 0 {
				t.Fatalf("%d wakeups nobody asked for", n)
			}
			dl.SetFillNeedsWakeup(true)
			for deadline := time.Now().Add(2 * time.Second); dl.RxWakeups() == 0; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the downlink's driver asked to be woken and was not")
				}
			}
			if ul.RxWakeups() != 0 {
				t.Fatal("the uplink was woken without asking")
			}
		})
	}
}

func TestNotReadyAndReconfigure(t *testing.T) {
	p := ip6Params(refAddrA, refAddrB, frame.MAC{})
	p.NotReady = "no next hop"
	a := newSite(t, p)
	inject(t, a.dl, [][]byte{ethFrame(100)})
	waitCounter(t, a.e, stats.DLDropNoNextHop, 1)
	// The main goroutine learns the next hop.
	if err := a.e.SetParams(ip6Params(refAddrA, refAddrB, routerA)); err != nil {
		t.Fatal(err)
	}
	inject(t, a.dl, [][]byte{ethFrame(100)})
	got := collect(t, a.ul, 1)
	if frame.Ethernet(got[0]).Dst() != routerA {
		t.Fatalf("sent to %v", frame.Ethernet(got[0]).Dst())
	}
	// A bad configuration is refused before the data path sees it.
	bad := ip6Params(refAddrA, netip.MustParseAddr("192.0.2.1"), routerA)
	if err := a.e.SetParams(bad); err == nil {
		t.Fatal("IPv4 peer accepted")
	}
	if a.e.Params().Decap.PeerAddr != refAddrB {
		t.Fatal("refused configuration took effect")
	}
}

func TestPeerChangeDropsHeldHalf(t *testing.T) {
	a := newSite(t, ethParams(refMAC, refMAC))
	first := frametest.Reference(t, "eth-a-ul-out")[1]
	inject(t, a.ul, [][]byte{first})
	waitCounter(t, a.e, stats.ULRxPackets, 1)
	if err := a.e.SetParams(ethParams(refMAC, strangerM)); err != nil {
		t.Fatal(err)
	}
	// The next batch applies the change and gives the held half up.
	p := append([]byte{0x02, 0x70, 0x63, 0x61, 0x70, 0x01}, strangerM[:]...)
	inject(t, a.ul, [][]byte{append(append(p, 0x96, 0xfc, 0, 0), ethFrame(60)...)})
	waitCounter(t, a.e, stats.ULDropReplaced, 1)
	waitCounter(t, a.e, stats.DLTxPackets, 1)
}

func TestNewRefusesBadConfig(t *testing.T) {
	u := xsk.NewFakeUMEM(16)
	if _, err := New(Config{UMEM: u, DL: xsk.NewFake(u), UL: xsk.NewFake(u)}, ethParams(refMAC, refMAC)); err == nil {
		t.Error("16 chunks for batches of 64 accepted")
	}
	if _, err := New(Config{}, ethParams(refMAC, refMAC)); err == nil {
		t.Error("empty config accepted")
	}
}

func TestDropNamesMatch(t *testing.T) {
	for r := pseudowire.DropTruncated; r < pseudowire.NumDropReasons; r++ {
		if got, want := ulDrops[r].Name(), "ul_drop_"+r.String(); got != want {
			t.Errorf("reason %v counts as %s", r, got)
		}
	}
}

// TestLimits: the largest uplink MTU is the largest frame with only an
// Ethernet header in front, and both fit a chunk after the headroom.
func TestLimits(t *testing.T) {
	if MaxFrame(frame.EthernetLen) != MaxUplinkMTU {
		t.Errorf("MaxFrame(14) = %d, MaxUplinkMTU = %d", MaxFrame(frame.EthernetLen), MaxUplinkMTU)
	}
	if MaxFrame(0)+xsk.RxHeadroom != xsk.ChunkSize {
		t.Errorf("MaxFrame(0) = %d does not fill a chunk of %d after %d of headroom", MaxFrame(0), xsk.ChunkSize, xsk.RxHeadroom)
	}
}
