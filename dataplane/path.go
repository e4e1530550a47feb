package dataplane

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/pwgate/pwgate/dataplane/pseudowire"
	"github.com/pwgate/pwgate/dataplane/stats"
	"github.com/pwgate/pwgate/dataplane/xsk"
)

// KeepaliveParams turn on keepalives to the peer (pseudowire only).
type KeepaliveParams struct {
	Interval time.Duration // 0: none are sent
	// Timeout is how long the peer may be silent (no keepalive, no
	// frame) before we tell it, in our keepalives, that we do not hear
	// it.
	Timeout time.Duration
}

// epoch is the zero of the data path's monotonic clock.
var epoch = time.Now()

// monotime returns nanoseconds since epoch, never 0.
func monotime() int64 { return int64(time.Since(epoch)) + 1 }

// path is what the data goroutines know of the peer: the decap goroutine
// writes it, the encap goroutine (for its keepalives) and the main
// goroutine (Engine.Path) read it.
type path struct {
	heard     atomic.Int64 // monotime of the last packet from the peer; 0: none yet
	keepalive atomic.Int64 // monotime of the last keepalive from the peer
	deafSince atomic.Int64 // monotime of the first of the peer's keepalives saying it does not hear us, in a row; 0: it hears us
	interval  atomic.Int64 // the peer's keepalive interval
	rtt       atomic.Int64 // last round trip measured, ns; 0: none yet
	jitter    atomic.Int64 // mean deviation of the round trip, ns (RFC 3550's estimator)
	// The peer's last keepalive's Sent and when it came, for the echo in
	// ours: under a mutex, taken once per keepalive each way, so that the
	// encap goroutine never pairs one keepalive's Sent with another's
	// arrival.
	echoMu         sync.Mutex
	echoSent, echo int64
	// lanDown is set while downlink.follow_peer holds the LAN port down
	// (main goroutine): the decap goroutine drops what it would send there.
	lanDown atomic.Bool
}

// SetLANDown tells the data path that the LAN port is held down (true) or
// up again: frames from the peer are dropped, not queued on the downed
// port to be sent seconds late when it comes up.
func (e *Engine) SetLANDown(down bool) { e.path.lanDown.Store(down) }

// LANDown reports whether the LAN port is held down (SetLANDown).
func (e *Engine) LANDown() bool { return e.path.lanDown.Load() }

// setEcho records the peer's keepalive sent at sent that arrived at now
// (decap goroutine).
func (p *path) setEcho(sent, now int64) {
	p.echoMu.Lock()
	p.echoSent, p.echo = sent, now
	p.echoMu.Unlock()
}

// getEcho returns the peer's last Sent and when it arrived; 0, 0 if none.
func (p *path) getEcho() (sent, at int64) {
	p.echoMu.Lock()
	defer p.echoMu.Unlock()
	return p.echoSent, p.echo
}

// forget clears what is known of the peer when it changes (decap
// goroutine, on new parameters naming another peer): the old one's last
// packet must not keep the new one looking alive.
func (p *path) forget() {
	p.heard.Store(0)
	p.keepalive.Store(0)
	p.deafSince.Store(0)
	p.interval.Store(0)
	p.rtt.Store(0)
	p.jitter.Store(0)
	p.setEcho(0, 0)
}

// Path is the peer as the data path sees it (Engine.Path).
type Path struct {
	// Heard and KeepaliveHeard are how long ago the last packet, and the
	// last keepalive, came from the peer; -1: never.
	Heard, KeepaliveHeard time.Duration
	HearsUs               bool // the peer's last keepalive said it hears us
	// Deaf is how long the peer's keepalives have said, without a break,
	// that it does not hear us (0: its last said it does). A peer that
	// just started says so until it hears us: only a long run of them is
	// a one-way fault.
	Deaf         time.Duration
	PeerInterval time.Duration // the peer's keepalive interval
	RTT, Jitter  time.Duration // 0 until measured
}

// Path returns what the data path knows of the peer now.
func (e *Engine) Path() Path {
	p := &e.path
	heard, ka, deafSince := p.heard.Load(), p.keepalive.Load(), p.deafSince.Load()
	now := monotime() // after the loads: no time read comes out later than now
	ago := func(t int64) time.Duration {
		if t == 0 {
			return -1
		}
		return time.Duration(max(now-t, 0))
	}
	var deaf time.Duration
	if deafSince != 0 {
		deaf = ago(deafSince)
	}
	return Path{Heard: ago(heard), KeepaliveHeard: ago(ka), Deaf: deaf, PeerInterval: time.Duration(p.interval.Load()),
		RTT: time.Duration(p.rtt.Load()), Jitter: time.Duration(p.jitter.Load())}
}

// reorderWindow is how far behind the last keepalive's sequence number
// one may come and still count as overtaken rather than as the peer
// restarting (64 keepalives: 6.4 s at 100 ms).
const reorderWindow = 64

// maxRTT bounds a believable round trip: an echo that gives more (or
// less than nothing) is not ours, or from before a restart, and is ignored.
const maxRTT = int64(10 * time.Second)

// keepalive takes in a keepalive from the peer (decap goroutine).
func (w *decapWorker) keepalive(k *pseudowire.Keepalive, now int64) {
	p := &w.e.path
	w.st.Inc(stats.PeerKeepalivesRx)
	gap, late := k.Seq-w.kaSeq, false
	switch {
	case !w.kaSeen:
	case gap > 1 && gap < 1<<16:
		w.st.Add(stats.PeerKeepalivesLost, uint64(gap-1))
	case gap == 0 || w.kaSeq-k.Seq < reorderWindow:
		// A duplicate, or one that a later one overtook: it was counted
		// lost at the gap, and is counted late now (the loss shown takes
		// it back); the sequence stays where it is.
		if gap != 0 {
			w.st.Inc(stats.PeerKeepalivesLate)
		}
		late = true
	}
	// Otherwise a larger jump, forward or back: the peer restarted.
	if !late {
		w.kaSeq = k.Seq
	}
	w.kaSeen = true
	p.setEcho(k.Sent, now)
	p.keepalive.Store(now)
	switch {
	case k.Hearing:
		p.deafSince.Store(0)
	case p.deafSince.Load() == 0:
		p.deafSince.Store(now)
	}
	p.interval.Store(int64(k.Interval))
	if k.Echo == 0 {
		return
	}
	if k.Echo > now || k.Held > now-k.Echo { // not ours, or from before a restart
		return
	}
	rtt := now - k.Echo - k.Held
	if rtt > maxRTT {
		return
	}
	if last := p.rtt.Load(); last != 0 {
		d := rtt - last
		if d < 0 {
			d = -d
		}
		j := p.jitter.Load()
		p.jitter.Store(j + (d-j)/16)
	}
	p.rtt.Store(rtt)
}

// tick sends a keepalive when one is due (encap goroutine, every turn of
// its loop) and returns how long until the next: the longest the
// goroutine may sleep, rounded up to the millisecond poll(2) counts in.
func (w *encapWorker) tick() time.Duration {
	if p := w.e.params.Load(); p != w.cur {
		w.apply(p)
	}
	ka := w.cur.Keepalive
	if ka.Interval == 0 || w.cur.VXLAN != nil || !w.ready {
		return sleepIdle
	}
	if ka.Interval != w.kaInterval { // a new interval starts now
		w.kaInterval, w.kaNext = ka.Interval, 0
	}
	now := monotime()
	if now < w.kaNext {
		return (time.Duration(w.kaNext-now) + time.Millisecond - 1).Truncate(time.Millisecond)
	}
	w.kaNext = max(w.kaNext+int64(ka.Interval), now+int64(ka.Interval)/2)
	if len(w.free) == 0 {
		return ka.Interval // every buffer is in flight: this one is skipped
	}
	p := &w.e.path
	sent, at := p.getEcho()
	now = monotime() // after the echo: Held is never negative
	k := pseudowire.Keepalive{Interval: ka.Interval, Seq: w.kaSeq, Sent: now}
	heard := p.heard.Load()
	k.Hearing = heard != 0 && now-heard <= int64(ka.Timeout)
	if sent != 0 {
		k.Echo, k.Held = sent, max(now-at, 0)
	}
	s := w.free[len(w.free)-1]
	n, err := w.enc.Keepalive(w.umem.Mem[s:s+w.umem.ChunkSize], &k)
	if err != nil { // cannot happen: a chunk holds any keepalive
		return ka.Interval
	}
	w.free = w.free[:len(w.free)-1]
	w.kaSeq++
	w.st.Inc(stats.PeerKeepalivesTx)
	w.txd[0] = xsk.Desc{Addr: s, Len: uint32(n)}
	w.send(1)
	w.st.Publish()
	return (time.Duration(w.kaNext-now) + time.Millisecond - 1).Truncate(time.Millisecond)
}
