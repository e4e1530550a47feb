package dataplane

import (
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/pseudowire"
	"github.com/pwgate/pwgate/dataplane/spsc"
	"github.com/pwgate/pwgate/dataplane/stats"
	"github.com/pwgate/pwgate/dataplane/vxlan"
	"github.com/pwgate/pwgate/dataplane/xsk"
)

// worker is what the encap and decap goroutines have in common: frames come
// in on rx, go out on tx, and the chunks of one half of the UMEM circulate
// between the free list, rx's fill ring, tx's ring and tx's completion ring.
type worker struct {
	e      *Engine
	umem   *xsk.UMEM
	rx, tx xsk.Port
	core   int
	batch  int

	free  []uint64   // bases of chunks owned and unused, as a stack
	rxd   []xsk.Desc // received this batch
	txd   []xsk.Desc // to send this batch (up to two per received frame)
	comp  []uint64   // completions
	txOut int        // descriptors sent and not yet completed

	cur *Params
	st  stats.Shard

	// Counters for frames this worker sends or fails to send, and for
	// failed system calls on its two ports.
	txPackets, txBytes, txErrors, txRingFull stats.Counter
	rxSyscallErrors, txSyscallErrors         stats.Counter

	// For the main goroutine: the thread's ID once pinned, and the errno
	// of the last failed system call on each port.
	tid              atomic.Int32
	rxErrno, txErrno atomic.Uint32
	// beat counts the loop's turns, stored every 1024: the main
	// goroutine's watchdog sees the goroutine is not stuck.
	beat atomic.Uint64
	// answers, for the decap goroutine, are frames to send on tx that the
	// other goroutine made (Engine.answers); sleeping is set while the
	// goroutine waits, so that the other wakes it only then.
	answers  *spsc.Ring[answer]
	sleeping atomic.Bool
}

// init makes w own chunks [from, to) of the UMEM.
func (w *worker) init(e *Engine, rx, tx xsk.Port, from, to, core int) {
	w.e, w.umem, w.rx, w.tx, w.core, w.batch = e, e.cfg.UMEM, rx, tx, core, e.cfg.Batch
	w.rxd, w.txd, w.comp = make([]xsk.Desc, w.batch), make([]xsk.Desc, 2*w.batch), make([]uint64, 2*w.batch)
	w.free = make([]uint64, 0, to-from)
	for i := to - 1; i >= from; i-- {
		w.free = append(w.free, uint64(i)*w.umem.ChunkSize)
	}
}

// loop is the body of a data goroutine: pin, fill, then receive, process
// and send batches until the engine stops. process handles w.rxd[:n];
// tick, if not nil, runs every turn and returns the longest the goroutine
// may sleep.
func (w *worker) loop(ready chan<- error, process func(n int), tick func() time.Duration) {
	if err := pin(w.core); err != nil {
		ready <- err
		return
	}
	w.tid.Store(int32(unix.Gettid()))
	for w.refill() > 0 {
	}
	ready <- nil
	busy := w.e.cfg.Poll == Busy
	idle := 0
	var turns uint64
	for !w.e.stop.Load() {
		if turns++; turns&1023 == 0 {
			w.beat.Store(turns)
		}
		timeout := sleepIdle
		if tick != nil {
			timeout = min(timeout, tick())
		}
		if n := w.step(process); n > 0 {
			idle = 0
			continue
		}
		w.wakeRx()
		if busy {
			continue
		}
		if idle++; idle < spinBeforeSleep {
			continue
		}
		idle = 0
		w.st.Publish()
		w.beat.Store(turns) // about to sleep: a turn short of 1024 counts too
		if w.txOut > 0 {
			w.kick() // retry what the kernel left queued
			timeout = min(timeout, sleepInFlight)
		}
		// Set before looking at answers, looked at by their producer
		// after pushing: one of the two sees the other.
		w.sleeping.Store(true)
		if w.answers == nil || w.answers.Len() == 0 {
			w.rxFail(w.rx.Wait(timeout))
		}
		w.sleeping.Store(false)
	}
	w.st.Publish()
}

// wakeRx wakes rx's driver when nothing was received and it asked to be
// woken to take fill buffers: a zero-copy driver whose fill ring ran empty
// stops receiving until then, and in busy mode nothing else (no poll)
// would wake it.
func (w *worker) wakeRx() {
	if w.rx.FillNeedsWakeup() {
		w.rxFail(w.rx.WakeRx())
	}
}

// step does one round: take back sent chunks, refill, receive a batch,
// process and send it. It returns the number of frames received.
func (w *worker) step(process func(n int)) int {
	w.reap()
	w.refill()
	n := w.rx.Receive(w.rxd)
	if n > 0 {
		process(n)
		w.st.Publish()
	}
	return n
}

// reap takes completed chunks back from tx.
func (w *worker) reap() {
	n := w.tx.Complete(w.comp)
	for _, a := range w.comp[:n] {
		w.free = append(w.free, w.umem.Base(a))
	}
	w.txOut -= n
}

// refill hands up to one batch of free chunks to rx's fill ring and returns
// how many it took. It keeps one batch back: the encap goroutine needs a
// spare chunk for the second piece of each split frame.
func (w *worker) refill() int {
	k := len(w.free) - w.batch
	if k <= 0 {
		return 0
	}
	tail := w.free[len(w.free)-min(k, w.batch):]
	n := w.rx.Fill(tail)
	copy(tail, tail[n:])
	w.free = w.free[:len(w.free)-n]
	return n
}

// drop returns a received chunk to the free list and counts why.
func (w *worker) drop(base uint64, why stats.Counter) {
	w.free = append(w.free, base)
	w.st.Inc(why)
}

// send queues w.txd[:k] on tx; what does not fit is dropped and counted.
func (w *worker) send(k int) {
	if k == 0 {
		return
	}
	q := w.tx.Transmit(w.txd[:k])
	for _, d := range w.txd[:q] {
		w.st.Add(w.txBytes, uint64(d.Len))
	}
	w.st.Add(w.txPackets, uint64(q))
	for _, d := range w.txd[q:k] {
		w.free = append(w.free, w.umem.Base(d.Addr))
		w.st.Inc(w.txErrors)
		w.st.Inc(w.txRingFull)
	}
	w.txOut += q
	w.kick()
}

func (w *worker) kick() {
	if e := w.tx.Kick(); e != 0 {
		w.st.Inc(w.txSyscallErrors)
		w.txErrno.Store(uint32(e))
	}
}

// rxFail counts a failed system call on rx (e != 0) for the main
// goroutine, which logs it; nothing is allocated or formatted here.
func (w *worker) rxFail(e unix.Errno) {
	if e != 0 {
		w.st.Inc(w.rxSyscallErrors)
		w.rxErrno.Store(uint32(e))
	}
}

func (w *worker) bpdu(count, last stats.Counter) {
	w.st.Inc(count)
	w.st.Set(last, uint64(time.Now().UnixNano()))
}

// encapWorker carries frames from the LAN to the uplink.
type encapWorker struct {
	worker
	enc   pseudowire.Encapsulator
	vx    vxlanEncap
	ready bool
	// Keepalives: the interval in force, when the next is due (monotime)
	// and its sequence number.
	kaInterval time.Duration
	kaNext     int64
	kaSeq      uint32
}

func (w *encapWorker) run(ready chan<- error) { w.loop(ready, w.process, w.tick) }

// apply takes p into use. p was checked by SetParams.
func (w *encapWorker) apply(p *Params) error {
	w.cur = p
	w.ready = p.NotReady == ""
	switch {
	case !w.ready:
		return nil
	case p.VXLAN != nil:
		return w.vx.enc.Configure(p.VXLAN.Encap)
	}
	return w.enc.Configure(p.Encap)
}

func (w *encapWorker) process(n int) {
	if p := w.e.params.Load(); p != w.cur {
		w.apply(p)
	}
	if w.cur.VXLAN != nil {
		w.processVXLAN(n)
		return
	}
	mem, size := w.umem.Mem, w.umem.ChunkSize
	k := 0
	for _, d := range w.rxd[:n] {
		base := d.Addr &^ (size - 1)
		off, ln := int(d.Addr-base), int(d.Len)
		chunk := mem[base : base+size]
		w.st.Inc(stats.DLRxPackets)
		w.st.Add(stats.DLRxBytes, uint64(ln))
		if off+ln > len(chunk) {
			w.drop(base, stats.DLDropOversize)
			continue
		}
		if frame.ClassifyBPDU(chunk[off:off+ln]) != frame.NotBPDU {
			w.bpdu(stats.DLRxBPDUs, stats.DLLastBPDU)
		}
		if !w.ready {
			w.drop(base, stats.DLDropNoNextHop)
			continue
		}
		switch w.enc.Pieces(ln) {
		case 1:
			start, err := w.enc.Encap(chunk, off, ln)
			if err != nil {
				w.drop(base, encapDrop(err))
				continue
			}
			w.txd[k] = xsk.Desc{Addr: base + uint64(start), Len: uint32(off + ln - start)}
			k++
		case 2:
			if len(w.free) == 0 {
				w.drop(base, stats.DLDropNoBuffer)
				continue
			}
			s := w.free[len(w.free)-1]
			w.free = w.free[:len(w.free)-1]
			n1, n2, err := w.enc.Fragment(chunk, off, ln, mem[s:s+size])
			if err != nil {
				w.free = append(w.free, s)
				w.drop(base, encapDrop(err))
				continue
			}
			w.txd[k] = xsk.Desc{Addr: base + uint64(off-w.enc.Overhead()), Len: uint32(n1)}
			w.txd[k+1] = xsk.Desc{Addr: s, Len: uint32(n2)}
			k += 2
			w.st.Add(stats.ULTxFragments, 2)
		default:
			w.drop(base, stats.DLDropOversize)
		}
	}
	w.send(k)
}

// encapDrop returns the counter for a frame the encapsulator refused.
func encapDrop(err error) stats.Counter {
	switch err {
	case pseudowire.ErrRunt:
		return stats.DLDropRunt
	case pseudowire.ErrHeadroom:
		return stats.DLDropNoHeadroom
	}
	return stats.DLDropOversize // ErrTooBig, ErrShortBuffer
}

// ulDrops maps the receiver's drop reasons to the counters of the same
// name ("lone_second" counts as ul_drop_lone_second).
var ulDrops = func() (m [pseudowire.NumDropReasons]stats.Counter) {
	for r := pseudowire.DropTruncated; r < pseudowire.NumDropReasons; r++ {
		m[r], _ = stats.Lookup("ul_drop_" + r.String())
	}
	return m
}()

// decapWorker carries frames from the uplink to the LAN.
type decapWorker struct {
	worker
	dec pseudowire.Decapsulator
	vx  vxlanDecap
	// The peer's last keepalive's sequence number, once one came.
	kaSeq  uint32
	kaSeen bool
}

func (w *decapWorker) run(ready chan<- error) { w.loop(ready, w.process, w.tick) }

// tick sends the answers the encap goroutine made, each copied into a
// chunk of ours.
func (w *decapWorker) tick() time.Duration {
	if w.answers.Len() == 0 {
		return sleepIdle
	}
	var buf [64]answer
	n := w.answers.Pop(buf[:min(len(buf), w.batch)])
	k := 0
	for i := range buf[:n] {
		a := &buf[i]
		s, ok := w.take()
		if !ok {
			w.st.Inc(stats.EVPNAnswersDropped)
			continue
		}
		copy(w.umem.Mem[s:], a.b[:a.n])
		w.txd[k] = xsk.Desc{Addr: s, Len: uint32(a.n)}
		k++
	}
	w.send(k)
	return sleepIdle
}

// apply takes p into use; a held first half is dropped when the peer
// changes, since its second half will not come.
func (w *decapWorker) apply(p *Params) error {
	old := w.cur
	w.cur = p
	if p.VXLAN != nil {
		d, err := vxlan.NewDecapsulator(p.VXLAN.Encap.Local, p.VXLAN.AcceptZero6, p.VXLAN.Encap.L3)
		if err != nil {
			return err
		}
		w.vx.dec, w.vx.learn = d, p.VXLAN.LearnRemote
		return nil
	}
	if err := w.dec.Configure(p.Decap); err != nil {
		return err
	}
	if old != nil && (old.Decap.PeerMAC != p.Decap.PeerMAC || old.Decap.PeerAddr != p.Decap.PeerAddr) {
		if tok, ok := w.dec.Flush(); ok {
			w.drop(tok, stats.ULDropReplaced)
		}
		w.e.path.forget()
		w.kaSeen = false
	}
	return nil
}

func (w *decapWorker) process(n int) {
	if p := w.e.params.Load(); p != w.cur {
		w.apply(p)
	}
	if w.cur.VXLAN != nil {
		w.processVXLAN(n)
		return
	}
	size := w.umem.ChunkSize
	k := 0
	lanDown := w.e.path.lanDown.Load()
	var now int64 // read once per batch, when the peer is heard
	for _, d := range w.rxd[:n] {
		base := d.Addr &^ (size - 1)
		w.st.Inc(stats.ULRxPackets)
		w.st.Add(stats.ULRxBytes, uint64(d.Len))
		if d.Addr-base+uint64(d.Len) > size {
			w.drop(base, stats.ULDropOversize)
			continue
		}
		out := w.dec.Receive(w.umem.Frame(d.Addr, d.Len), base)
		if out.FromPeer && now == 0 {
			now = monotime()
		}
		if out.Keepalive != nil {
			w.keepalive(out.Keepalive, now)
		}
		for _, r := range out.Released[:out.NReleased] {
			w.free = append(w.free, r.Token)
			if r.Reason != pseudowire.DropNone {
				w.st.Inc(ulDrops[r.Reason])
			}
		}
		if out.Frame == nil {
			continue
		}
		if out.FrameToken != base {
			w.st.Inc(stats.ULRxReassembled)
		}
		if frame.ClassifyBPDU(out.Frame) != frame.NotBPDU {
			w.bpdu(stats.ULRxBPDUs, stats.ULLastBPDU)
		}
		if lanDown {
			w.drop(out.FrameToken, stats.ULDropLANDown)
			continue
		}
		w.txd[k] = xsk.Desc{Addr: w.umem.Addr(out.Frame), Len: uint32(len(out.Frame))}
		k++
	}
	if now != 0 {
		w.e.path.heard.Store(now)
	}
	w.send(k)
}
