package dataplane

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/pseudowire"
	"github.com/pwgate/pwgate/dataplane/stats"
)

// wire carries what a's uplink sends to b's and back, until cut.
func wire(t *testing.T, a, b *site) (cut *atomic.Bool) {
	cut = new(atomic.Bool)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for t.Context().Err() == nil {
			for _, p := range a.ul.Sent() {
				if !cut.Load() {
					b.ul.Inject(p)
				}
			}
			for _, p := range b.ul.Sent() {
				a.ul.Inject(p)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	t.Cleanup(func() { <-done })
	return cut
}

func waitPath(t *testing.T, e *Engine, what string, ok func(Path) bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if ok(e.Path()) {
			return
		}
	}
	t.Fatalf("%s: path %+v", what, e.Path())
}

// TestKeepalives runs two engines joined by a wire with keepalives every
// 10 ms: each measures the round trip and hears the other; keepalives
// never reach the LAN; when one direction is cut, the side that no longer
// hears says so in its keepalives and the other learns it does not get
// through.
func TestKeepalives(t *testing.T) {
	macA, macB := frame.MAC{2, 0, 0, 0, 0, 0xa}, frame.MAC{2, 0, 0, 0, 0, 0xb}
	ka := KeepaliveParams{Interval: 10 * time.Millisecond, Timeout: 50 * time.Millisecond}
	pa, pb := ethParams(macA, macB), ethParams(macB, macA)
	pa.Keepalive, pb.Keepalive = ka, ka
	a, b := newSite(t, pa), newSite(t, pb)
	cut := wire(t, a, b)
	for _, s := range []*site{a, b} {
		waitPath(t, s.e, "both hear", func(p Path) bool {
			return p.Deaf == 0 && p.KeepaliveHeard >= 0 && p.RTT > 0 && p.Heard >= 0 && p.Heard < time.Second && p.PeerInterval == ka.Interval
		})
	}
	s := snapshot(b.e)
	if s[stats.PeerKeepalivesRx] == 0 || s[stats.PeerKeepalivesTx] == 0 || s[stats.PeerKeepalivesLost] != 0 || s[stats.ULDropBadKeepalive] != 0 {
		t.Errorf("counters: tx %d rx %d lost %d bad %d", s[stats.PeerKeepalivesTx], s[stats.PeerKeepalivesRx], s[stats.PeerKeepalivesLost], s[stats.ULDropBadKeepalive])
	}
	if n := len(b.dl.Sent()) + len(a.dl.Sent()); n != 0 {
		t.Errorf("%d keepalives reached a LAN", n)
	}
	cut.Store(true) // a to b only
	waitPath(t, b.e, "b no longer hears a", func(p Path) bool { return p.Heard > ka.Timeout })
	waitPath(t, a.e, "a learns b does not hear it", func(p Path) bool { return p.Deaf > ka.Timeout && p.Heard < ka.Timeout })
	cut.Store(false)
	waitPath(t, a.e, "heard again", func(p Path) bool { return p.Deaf == 0 })
	if s := snapshot(b.e); s[stats.PeerKeepalivesLost] == 0 {
		t.Error("keepalives lost while cut were not counted")
	}
	// Another peer: what was known of the old one is forgotten.
	p := ethParams(macB, frame.MAC{2, 0, 0, 0, 0, 0xc})
	p.Keepalive = ka
	if err := b.e.SetParams(p); err != nil {
		t.Fatal(err)
	}
	waitPath(t, b.e, "the old peer forgotten", func(p Path) bool { return p.Heard < 0 && p.KeepaliveHeard < 0 && p.RTT == 0 })
}

// TestForgedEcho: an echo that is not one of our times (later than now,
// or a hold longer than since it) gives no round trip, whatever overflow
// it would cause.
func TestForgedEcho(t *testing.T) {
	p := ethParams(refMAC, refMAC)
	r := newRig(t, p, true, nil)
	now := monotime()
	for _, k := range []pseudowire.Keepalive{
		{Seq: 1, Sent: 5, Echo: 1<<63 - 1, Held: 1<<63 - 1 - 5e8},
		{Seq: 2, Sent: 5, Echo: now + int64(time.Hour)},
		{Seq: 3, Sent: 5, Echo: now / 2, Held: now},
	} {
		r.e.dec.keepalive(&k, monotime())
	}
	if rtt := r.e.Path().RTT; rtt != 0 {
		t.Errorf("forged echoes gave a round trip of %v", rtt)
	}
}

// TestKeepaliveOrder: a gap counts as lost; a keepalive that comes after a
// later one counts as late (and leaves the sequence where it is), a
// duplicate as neither; a jump back beyond the reorder window is the peer
// restarting, and no loss.
func TestKeepaliveOrder(t *testing.T) {
	r := newRig(t, ethParams(refMAC, refMAC), true, nil)
	for _, seq := range []uint32{100, 101, 103, 102, 104, 104, 5, 6} {
		r.e.dec.keepalive(&pseudowire.Keepalive{Seq: seq}, monotime())
	}
	r.e.dec.st.Publish()
	s := snapshot(r.e)
	if s[stats.PeerKeepalivesRx] != 8 || s[stats.PeerKeepalivesLost] != 1 || s[stats.PeerKeepalivesLate] != 1 {
		t.Errorf("rx %d lost %d late %d, want 8, 1, 1", s[stats.PeerKeepalivesRx], s[stats.PeerKeepalivesLost], s[stats.PeerKeepalivesLate])
	}
}

// TestNoKeepalivesUnlessConfigured: an engine without keepalives sends
// nothing to an idle uplink (a peer running the reference never sees one).
func TestNoKeepalivesUnlessConfigured(t *testing.T) {
	a := newSite(t, ethParams(refMAC, strangerM))
	time.Sleep(100 * time.Millisecond)
	if n := len(a.ul.Sent()); n != 0 {
		t.Fatalf("sent %d packets with keepalives off", n)
	}
	// Turned on by new parameters, they start without a frame to wake
	// the goroutine.
	p := ethParams(refMAC, strangerM)
	p.Keepalive = KeepaliveParams{Interval: 20 * time.Millisecond, Timeout: time.Second}
	if err := a.e.SetParams(p); err != nil {
		t.Fatal(err)
	}
	// At least one: at 20 ms a second may come before the first is
	// seen on a loaded machine.
	var got [][]byte
	for deadline := time.Now().Add(3 * time.Second); len(got) == 0 && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		got = a.ul.Sent()
	}
	if len(got) == 0 {
		t.Fatal("no keepalive sent after they were turned on")
	}
	for _, f := range got {
		if cw := pseudowire.ReadControlWord(f[pseudowire.EthOverhead-2:]); cw != pseudowire.CWKeepalive {
			t.Fatalf("sent control word %#04x", uint16(cw))
		}
	}
}

// TestKeepaliveZeroAllocs: sending a keepalive and taking one in allocate
// nothing.
func TestKeepaliveZeroAllocs(t *testing.T) {
	p := ethParams(refMAC, refMAC)
	p.Keepalive = KeepaliveParams{Interval: time.Millisecond, Timeout: time.Second}
	e := newRig(t, p, false, nil).e
	send := func() { e.enc.kaNext = 0; e.enc.tick(); e.enc.reap() }
	send()
	if a := testing.AllocsPerRun(100, send); a != 0 {
		t.Errorf("%v allocations per keepalive sent", a)
	}
	r := newRig(t, p, true, encapsulatedKeepalive(t, p))
	r.step(true)
	if a := testing.AllocsPerRun(100, func() { r.step(true) }); a != 0 {
		t.Errorf("%v allocations per batch of keepalives received", a)
	}
	if s := snapshot(r.e); s[stats.PeerKeepalivesRx] < 100 || s[stats.ULDropBadKeepalive] != 0 {
		t.Errorf("received %d keepalives, %d bad", s[stats.PeerKeepalivesRx], s[stats.ULDropBadKeepalive])
	}
}

func encapsulatedKeepalive(t *testing.T, p *Params) [][]byte {
	enc, err := pseudowire.NewEncapsulator(p.Encap)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 200)
	n, err := enc.Keepalive(b, &pseudowire.Keepalive{Interval: time.Millisecond, Seq: 1, Sent: 5, Echo: monotime(), Held: 1})
	if err != nil {
		t.Fatal(err)
	}
	return [][]byte{b[:n]}
}

// BenchmarkEncapTick is what keepalives add to each turn of the encap
// goroutine's loop: with them off, and on but not due.
func BenchmarkEncapTick(b *testing.B) {
	for _, on := range []bool{false, true} {
		p := ethParams(refMAC, refMAC)
		if on {
			p.Keepalive = KeepaliveParams{Interval: time.Hour, Timeout: 3 * time.Hour}
		}
		e := newRig(b, p, false, nil).e
		e.enc.tick() // sends the first
		b.Run(map[bool]string{false: "off", true: "on"}[on], func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				e.enc.tick()
			}
		})
	}
}

// TestLANDownDrops: while follow_peer holds the LAN port down, frames from
// the peer are dropped and counted, not queued on the port to go out late.
func TestLANDownDrops(t *testing.T) {
	macA, macB := frame.MAC{2, 0, 0, 0, 0, 0xa}, frame.MAC{2, 0, 0, 0, 0, 0xb}
	a, b := newSite(t, ethParams(macA, macB)), newSite(t, ethParams(macB, macA))
	wire(t, a, b)
	a.e.SetLANDown(true)
	inject(t, b.dl, [][]byte{ethFrame(100), ethFrame(1600)})
	waitCounter(t, a.e, stats.ULDropLANDown, 2)
	if n := len(a.dl.Sent()); n != 0 {
		t.Fatalf("%d frames sent to a LAN port held down", n)
	}
	a.e.SetLANDown(false)
	inject(t, b.dl, [][]byte{ethFrame(100)})
	collect(t, a.dl, 1)
}
