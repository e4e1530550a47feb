// Package dataplane runs pwgate's data path: the encap goroutine (downlink
// to uplink) and the decap goroutine (uplink to downlink), each on an OS
// thread of its own pinned to a configured core, moving batches of frames
// between two ports that share one UMEM.
//
// The main goroutine (package control) owns the configuration and hands it
// to the data path as immutable *Params snapshots through SetParams; each
// data goroutine picks up a new snapshot at its next batch. Counters live in
// one stats.Shard per goroutine and are read with Snapshot.
package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/pseudowire"
	"github.com/pwgate/pwgate/dataplane/spsc"
	"github.com/pwgate/pwgate/dataplane/stats"
	"github.com/pwgate/pwgate/dataplane/vxlan"
	"github.com/pwgate/pwgate/dataplane/xsk"
	"golang.org/x/sys/unix"
)

// PollMode says how a data goroutine waits for frames.
type PollMode int

// MaxUplinkMTU is the largest uplink MTU the data path takes: a received
// packet must fit one UMEM chunk after the kernel's headroom, Ethernet
// header included (4096 - 256 - 14). The pseudowire format itself allows
// up to pseudowire.MaxMTU.
const MaxUplinkMTU = xsk.ChunkSize - xsk.RxHeadroom - frame.EthernetLen

// MaxFrame is the largest frame the data path forwards with overhead
// bytes of outer headers in front of it: frame and headers must fit one
// UMEM chunk after the kernel's headroom.
func MaxFrame(overhead int) int { return xsk.ChunkSize - xsk.RxHeadroom - overhead }

// Poll modes.
const (
	// Adaptive spins briefly when the RX ring is empty, then sleeps in
	// poll(2): for shared cores, tests and CI.
	Adaptive PollMode = iota
	// Busy never sleeps: for cores dedicated to the data path.
	Busy
)

// String returns "busy" or "adaptive".
func (m PollMode) String() string {
	if m == Busy {
		return "busy"
	}
	return "adaptive"
}

// Params is one immutable configuration of the data path. The main
// goroutine builds a new one for every change and never modifies one it
// has passed to SetParams.
type Params struct {
	Encap pseudowire.EncapConfig
	Decap pseudowire.DecapConfig
	// VXLAN, when set, makes the data path a VXLAN tunnel end instead of
	// a pseudowire (Encap and Decap are then unused); its forwarding
	// database is Config.FDB.
	VXLAN *VXLANParams
	// Keepalive, when its Interval is set, sends keepalives to the peer
	// (pseudowire modes only).
	Keepalive KeepaliveParams
	// NotReady, when not empty, says why frames from the LAN cannot be sent
	// yet (ip6 mode: no next hop or no own address); they are dropped and
	// counted as dl_drop_no_next_hop.
	NotReady string
}

// VXLANParams configure the VXLAN data path.
type VXLANParams struct {
	Encap       vxlan.EncapConfig
	AcceptZero6 bool // accept IPv6 VXLAN with a zero UDP checksum
	// LearnRemote learns remote MACs from received frames (static
	// remotes, like the kernel's VXLAN); with EVPN, BGP tells them.
	LearnRemote bool
}

// PeerString describes the peer of p for logs.
func (p *Params) PeerString() string {
	if p.VXLAN != nil {
		return "vxlan " + p.VXLAN.Encap.Local.String()
	}
	if p.Encap.Mode.IsIP6() {
		return p.Decap.PeerAddr.String()
	}
	return p.Decap.PeerMAC.String()
}

// NextHop returns the outer destination MAC frames are sent to.
func (p *Params) NextHop() frame.MAC { return p.Encap.Dst }

// Local returns our own uplink address (ip6 mode).
func (p *Params) Local() netip.Addr { return p.Encap.SrcAddr }

// Config is what an Engine runs on.
type Config struct {
	UMEM   *xsk.UMEM
	DL, UL xsk.Port
	Poll   PollMode
	// EncapCore and DecapCore pin the data goroutines; -1 leaves a
	// goroutine unpinned.
	EncapCore, DecapCore int
	// Batch is the most descriptors handled per ring operation (default 64).
	Batch int
	// FDB is the VXLAN forwarding database the control goroutine
	// publishes; the data goroutines load it once per batch. Learned, if
	// set, receives what they learn (one ring per goroutine: encap's for
	// the LAN's MACs, decap's for remote ones).
	FDB     *atomic.Pointer[vxlan.Table]
	Learned [2]*spsc.Ring[vxlan.Learned]
	// LearnedWake, if set, gets a value (without blocking) after a data
	// goroutine pushed to Learned: the control goroutine waits on it.
	LearnedWake chan struct{}
}

// Engine is a running data path.
type Engine struct {
	cfg    Config
	params atomic.Pointer[Params]
	stop   atomic.Bool
	wg     sync.WaitGroup
	enc    *encapWorker
	dec    *decapWorker
	path   path
	// answers carries the ARP replies and neighbour advertisements the
	// encap goroutine makes (suppression) to the decap goroutine, which
	// owns the LAN port's TX ring: copied into its own chunks there, so
	// that no chunk changes owner.
	answers *spsc.Ring[answer]
}

// answer is an ARP reply or neighbour advertisement for the LAN.
type answer struct {
	n uint8
	b [vxlan.MaxAnswer]byte
}

// New prepares an engine; Start runs it.
func New(c Config, p *Params) (*Engine, error) {
	if c.Batch == 0 {
		c.Batch = 64
	}
	if c.Batch < 1 || c.UMEM == nil || c.DL == nil || c.UL == nil {
		return nil, errors.New("dataplane: incomplete configuration")
	}
	if c.UMEM.NumChunks < 4*c.Batch {
		return nil, fmt.Errorf("dataplane: %d chunks are too few for batches of %d", c.UMEM.NumChunks, c.Batch)
	}
	e := &Engine{cfg: c}
	half := c.UMEM.NumChunks / 2
	// The encap goroutine owns the first half of the chunks: DL fill and
	// RX, UL TX and completion. The decap goroutine owns the second half:
	// UL fill and RX, DL TX and completion. A chunk never changes owner.
	e.enc, e.dec = new(encapWorker), new(decapWorker)
	e.enc.init(e, c.DL, c.UL, 0, half, c.EncapCore)
	e.dec.init(e, c.UL, c.DL, half, c.UMEM.NumChunks, c.DecapCore)
	e.answers = spsc.New[answer](answersRing)
	e.dec.answers = e.answers
	e.enc.txPackets, e.enc.txBytes, e.enc.txErrors, e.enc.txRingFull = stats.ULTxPackets, stats.ULTxBytes, stats.ULTxErrors, stats.DLDropTxRingFull
	e.enc.rxSyscallErrors, e.enc.txSyscallErrors = stats.DLSyscallErrors, stats.ULSyscallErrors
	e.dec.txPackets, e.dec.txBytes, e.dec.txErrors, e.dec.txRingFull = stats.DLTxPackets, stats.DLTxBytes, stats.DLTxErrors, stats.ULDropTxRingFull
	e.dec.rxSyscallErrors, e.dec.txSyscallErrors = stats.ULSyscallErrors, stats.DLSyscallErrors
	if err := e.enc.apply(p); err != nil {
		return nil, err
	}
	if err := e.dec.apply(p); err != nil {
		return nil, err
	}
	e.params.Store(p)
	return e, nil
}

// SetParams hands a new configuration to the data path. p must not be
// modified afterwards. It is checked here, so that a bad one is refused
// before the data path sees it.
func (e *Engine) SetParams(p *Params) error {
	if err := Check(p); err != nil {
		return err
	}
	e.params.Store(p)
	return nil
}

// Params returns the configuration in force.
func (e *Engine) Params() *Params { return e.params.Load() }

// Check reports whether p is a configuration the data path can run.
func Check(p *Params) error {
	if p.VXLAN != nil {
		if _, err := vxlan.NewEncapsulator(p.VXLAN.Encap); err != nil {
			return err
		}
		_, err := vxlan.NewDecapsulator(p.VXLAN.Encap.Local, p.VXLAN.AcceptZero6, p.VXLAN.Encap.L3)
		return err
	}
	if p.NotReady == "" {
		if _, err := pseudowire.NewEncapsulator(p.Encap); err != nil {
			return err
		}
	}
	_, err := pseudowire.NewDecapsulator(p.Decap)
	return err
}

// Start runs the two data goroutines and returns once both are pinned.
func (e *Engine) Start() error {
	ready := make(chan error, 2)
	for _, run := range []func(chan<- error){e.enc.run, e.dec.run} {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			run(ready)
		}()
	}
	var errs []error
	for i := 0; i < 2; i++ {
		errs = append(errs, <-ready)
	}
	if err := errors.Join(errs...); err != nil {
		e.Stop()
		return err
	}
	return nil
}

// Stop ends the data goroutines and waits for them. Frames in flight are
// abandoned; the ports can then be closed.
func (e *Engine) Stop() {
	e.stop.Store(true)
	e.cfg.DL.Wake()
	e.cfg.UL.Wake()
	e.wg.Wait()
}

// Snapshot adds the data goroutines' published counters into s.
func (e *Engine) Snapshot(s *stats.Snapshot) { s.Merge(&e.enc.st, &e.dec.st) }

// LastErrnos returns the errno of the last failed system call on each
// port (0: none yet), for the main goroutine's log; how many failed is in
// the counters ul_syscall_errors and dl_syscall_errors.
func (e *Engine) LastErrnos() (dl, ul unix.Errno) {
	return either(&e.dec.txErrno, &e.enc.rxErrno), either(&e.enc.txErrno, &e.dec.rxErrno)
}

// either returns a's errno if set, else b's.
func either(a, b *atomic.Uint32) unix.Errno {
	if v := a.Load(); v != 0 {
		return unix.Errno(v)
	}
	return unix.Errno(b.Load())
}

// Thread is a data goroutine's OS thread.
type Thread struct {
	Name string // "encap" or "decap"
	TID  int    // 0 until the goroutine runs
}

// Threads returns the data goroutines' threads, for status reports.
func (e *Engine) Threads() []Thread {
	return []Thread{{"encap", int(e.enc.tid.Load())}, {"decap", int(e.dec.tid.Load())}}
}

// Beats returns how many turns the encap and decap goroutines' loops have
// made (counted in steps of up to 1024): a value that does not move while
// the engine runs means a goroutine is stuck.
func (e *Engine) Beats() [2]uint64 { return [2]uint64{e.enc.beat.Load(), e.dec.beat.Load()} }

// pin locks the calling goroutine to its thread and the thread to core.
func pin(core int) error {
	runtime.LockOSThread()
	if core < 0 {
		return nil
	}
	return setAffinity(0, core)
}

// Timing of the adaptive poll mode. The spin is short: on a core shared
// with the ports' NAPI threads, empty polls only keep NAPI from filling
// the ring. make bench-ab on one shared core (bench/results/
// 20261122-171505-ab.md and 20261122-172012-ab.md): 16 empty polls
// instead of 256 halved pwgated's own time per frame (0.42–0.89×) and
// its total 0.74–1.01×, frames/s 0.94–1.33× (noise); 1024 cost 1.08–
// 1.28× and 5–24 % fewer frames; yielding the core on each empty poll
// (sched_yield) cost 1.7–3.5× in small batches and system calls (an
// earlier three-round run). Two identical builds: 20261122-170947-ab.md.
// answersRing is how many answers wait for the decap goroutine at most:
// four of its batches; more are not made (the asks are flooded).
const answersRing = 256

const (
	spinBeforeSleep = 16                     // empty polls before sleeping
	sleepIdle       = 200 * time.Millisecond // nothing in flight
	sleepInFlight   = time.Millisecond       // sent frames still to be completed
)

// wakeControl tells the control goroutine, without blocking, that a
// Learned ring has something.
func (e *Engine) wakeControl() {
	if e.cfg.LearnedWake != nil {
		select {
		case e.cfg.LearnedWake <- struct{}{}:
		default:
		}
	}
}
