package dataplane

import (
	"encoding/binary"
	"time"

	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/pseudowire"
	"github.com/pwgate/pwgate/dataplane/stats"
	"github.com/pwgate/pwgate/dataplane/vxlan"
	"github.com/pwgate/pwgate/dataplane/xsk"
)

// The VXLAN data path: the same goroutines, ports and chunks as the
// pseudowire's, with vxlan's framing and the forwarding database the
// control goroutine publishes (Config.FDB), loaded once per batch.

// vxlanEncap is the encap goroutine's VXLAN state.
type vxlanEncap struct {
	enc      vxlan.Encapsulator
	now      int64          // Unix seconds, once per batch: the LAN's MACs' last-seen stamp
	k        int            // descriptors queued in txd this batch
	recent   [256]vxlan.Key // keys reported as learned lately (suppresses repeats)
	recentAt [256]int64
	ipSeen   [256]vxlan.Key // the same for MAC+IP reports (key mixed with the address)
	ipSeenAt [256]int64
	answered bool // answers pushed this batch: the decap goroutine may need waking
	ask      vxlan.Ask
	ans      answer
}

// vxlanDecap is the decap goroutine's VXLAN state.
type vxlanDecap struct {
	dec      *vxlan.Decapsulator
	table    *vxlan.Table
	reasm    []pseudowire.Reassembler // by remote VTEP index
	learn    bool
	recent   [256]vxlan.Key
	recentAt [256]int64
}

// suppress reports whether k was reported within the last second, and
// remembers it: a MAC the control goroutine has not published yet would
// otherwise be reported for every frame.
func suppress(keys *[256]vxlan.Key, at *[256]int64, k vxlan.Key, now int64) bool {
	i := (uint64(k) * 0x9e3779b97f4a7c15) >> 56
	if keys[i] == k && now-at[i] < 1 {
		return true
	}
	keys[i], at[i] = k, now
	return false
}

// queue adds a descriptor to this batch's TX, sending first when full.
func (w *encapWorker) queue(d xsk.Desc) {
	if w.vx.k == len(w.txd) {
		w.send(w.vx.k)
		w.vx.k = 0
	}
	w.txd[w.vx.k] = d
	w.vx.k++
}

// take returns a free chunk, or false.
func (w *worker) take() (uint64, bool) {
	if len(w.free) == 0 {
		return 0, false
	}
	s := w.free[len(w.free)-1]
	w.free = w.free[:len(w.free)-1]
	return s, true
}

// processVXLAN handles frames from the LAN in VXLAN mode.
func (w *encapWorker) processVXLAN(n int) {
	tab := w.e.cfg.FDB.Load()
	w.vx.now = time.Now().Unix()
	w.vx.k = 0
	mem, size := w.umem.Mem, w.umem.ChunkSize
	for _, d := range w.rxd[:n] {
		base := d.Addr &^ (size - 1)
		off, ln := int(d.Addr-base), int(d.Len)
		w.st.Inc(stats.DLRxPackets)
		w.st.Add(stats.DLRxBytes, uint64(ln))
		if off+ln > int(size) || ln < frame.EthernetLen {
			w.drop(base, stats.DLDropRunt)
			continue
		}
		chunk := mem[base : base+size]
		f := chunk[off : off+ln]
		if frame.ClassifyBPDU(f) != frame.NotBPDU {
			w.bpdu(stats.DLRxBPDUs, stats.DLLastBPDU)
		}
		if tab == nil || !w.ready {
			w.drop(base, stats.DLDropNoNextHop)
			continue
		}
		// The VLAN picks the VNI; a VNI carried as a VLAN leaves untagged.
		var vlan uint16
		if ln >= frame.EthernetLen+frame.VLANTagLen && frame.Ethernet(f).EtherType() == frame.EtherTypeVLAN {
			vlan = binary.BigEndian.Uint16(f[14:16]) & 0x0fff
		}
		vi := tab.VNIForVLAN(vlan)
		if vi < 0 {
			w.drop(base, stats.DLDropNoVNI)
			continue
		}
		if vlan != 0 {
			copy(f[frame.VLANTagLen:frame.VLANTagLen+12], f[:12])
			off, ln = off+frame.VLANTagLen, ln-frame.VLANTagLen
			f = chunk[off : off+ln]
		}
		eth := frame.Ethernet(f)
		w.learnLocal(tab, vi, eth.Src())
		dst := eth.Dst()
		if et := eth.EtherType(); et == frame.EtherTypeARP || et == frame.EtherTypeIPv6 {
			w.learnIP(vi, eth.Src(), f)
			if dst.IsMulticast() && tab.VNIs[vi].Suppress && w.suppress(base, f, tab, vi) {
				continue
			}
		}
		vni := tab.VNIs[vi].ID
		if !dst.IsMulticast() {
			e, ok := tab.Lookup(vi, dst)
			switch {
			case ok && e.VTEP == vxlan.Local:
				w.drop(base, stats.DLDropLocal)
				continue
			case ok:
				w.toVTEP(base, off, ln, &tab.VTEPs[e.VTEP], vni)
				continue
			}
		}
		w.flood(base, off, ln, tab, vi, vni)
	}
	w.send(w.vx.k)
	if w.vx.answered {
		w.vx.answered = false
		if w.e.dec.sleeping.Load() {
			w.e.dec.rx.Wake()
		}
	}
}

// suppress handles f, a broadcast or multicast frame from the LAN in VNI
// index vi (chunk base), if it is an ARP request or neighbour
// solicitation for an address the table knows: for a remote host's it
// has the decap goroutine send the answer on the LAN, for a LAN host's it
// drops it (the host answers), and reports true; the frame is not
// flooded. Duplicate address probes, gratuitous ARP, solicitations for
// link-local addresses, unknown addresses and answers that cannot be
// queued are flooded as before (false).
func (w *encapWorker) suppress(base uint64, f []byte, tab *vxlan.Table, vi int) bool {
	a := &w.vx.ask
	if !vxlan.ParseAsk(f, a) {
		return false
	}
	sup, fl := stats.EVPNARPSuppressed, stats.EVPNARPFlooded
	if a.IPv6 {
		sup, fl = stats.EVPNNDSuppressed, stats.EVPNNDFlooded
	}
	n, ok := tab.Neigh[a.Key(vi)]
	switch {
	case !ok || a.Probe || a.Gratuitous || a.IPv6 && a.Target[0] == 0xfe && a.Target[1]&0xc0 == 0x80:
		// A link-local target may be a host's default router: an answer
		// of ours says "not a router" (the route's router flag is not
		// known), which would make the host drop it (RFC 4861 7.2.5).
		w.st.Inc(fl)
		return false
	case n.Local:
		w.drop(base, sup)
		return true
	}
	w.vx.ans.n = uint8(vxlan.Answer(w.vx.ans.b[:], a, n.MAC, tab.VNIs[vi].VLAN))
	if !w.e.answers.Push1(w.vx.ans) {
		w.st.Inc(stats.EVPNAnswersDropped)
		w.st.Inc(fl)
		return false
	}
	w.vx.answered = true
	w.drop(base, sup)
	return true
}

// learnLocal stamps a known LAN MAC and reports a new or moved one.
func (w *encapWorker) learnLocal(tab *vxlan.Table, vi int, src frame.MAC) {
	if src.IsMulticast() || src.IsZero() {
		return
	}
	if e, ok := tab.Lookup(vi, src); ok && e.VTEP == vxlan.Local {
		if s := &tab.Seen[e.Seen]; s.Load() != w.vx.now {
			s.Store(w.vx.now)
		}
		return
	}
	k := vxlan.MakeKey(vi, src)
	if r := w.e.cfg.Learned[0]; r != nil && !suppress(&w.vx.recent, &w.vx.recentAt, k, w.vx.now) {
		r.Push1(vxlan.Learned{Key: k, VTEP: vxlan.Local})
		w.e.wakeControl()
	}
}

// learnIP reports an address a LAN host announces for itself (at most
// once a second per MAC and address).
func (w *encapWorker) learnIP(vi int, src frame.MAC, f []byte) {
	ip, ok := frame.HostAddr(f)
	r := w.e.cfg.Learned[0]
	if !ok || r == nil || src.IsMulticast() {
		return
	}
	k := vxlan.MakeKey(vi, src)
	b := ip.As16()
	h := vxlan.Key(binary.LittleEndian.Uint64(b[:8])^binary.LittleEndian.Uint64(b[8:])) ^ k
	if !suppress(&w.vx.ipSeen, &w.vx.ipSeenAt, h, w.vx.now) {
		r.Push1(vxlan.Learned{Key: k, VTEP: vxlan.Local, IP: ip})
		w.e.wakeControl()
	}
}

// toVTEP sends the frame in chunk base, in place, to one VTEP: whole, in
// two pieces (a pwgate VTEP), or not at all.
func (w *encapWorker) toVTEP(base uint64, off, ln int, v *vxlan.VTEP, vni uint32) {
	if !v.Up {
		w.drop(base, stats.DLDropNoVTEP)
		return
	}
	mem, size := w.umem.Mem, w.umem.ChunkSize
	chunk := mem[base : base+size]
	switch w.vx.enc.Pieces(ln, v) {
	case 1:
		start, err := w.vx.enc.Encap(chunk, off, ln, v, vni)
		if err != nil {
			w.drop(base, vxlanEncapDrop(err))
			return
		}
		w.queue(xsk.Desc{Addr: base + uint64(start), Len: uint32(off + ln - start)})
	case 2:
		s, ok := w.take()
		if !ok {
			w.drop(base, stats.DLDropNoBuffer)
			return
		}
		n1, n2, err := w.vx.enc.Fragment(chunk, off, ln, mem[s:s+size], v, vni)
		if err != nil {
			w.free = append(w.free, s)
			w.drop(base, vxlanEncapDrop(err))
			return
		}
		w.queue(xsk.Desc{Addr: base + uint64(off-w.vx.enc.Overhead()), Len: uint32(n1)})
		w.queue(xsk.Desc{Addr: s, Len: uint32(n2)})
		w.st.Add(stats.ULTxFragments, 2)
	default:
		w.drop(base, stats.DLDropVXLANTooBig)
	}
}

// vxlanEncapDrop is the counter of a vxlan.Encapsulator's error.
func vxlanEncapDrop(err error) stats.Counter {
	if err == vxlan.ErrFamily {
		return stats.DLDropBadVTEP
	}
	return stats.DLDropNoHeadroom
}

// flood replicates the frame to every VTEP of the VNI: copies into fresh
// chunks first, the original last (encapsulating in place writes only in
// front of the frame, so the copies read it unchanged either way).
func (w *encapWorker) flood(base uint64, off, ln int, tab *vxlan.Table, vi int, vni uint32) {
	list := tab.VNIs[vi].Flood
	// The original goes to the last VTEP that is up; those that are not
	// (unresolved next hops, of which a neighbor may name hundreds) get no
	// copy at all.
	last := len(list) - 1
	for last >= 0 && !tab.VTEPs[list[last]].Up {
		last--
	}
	if last < 0 {
		w.drop(base, stats.DLDropNoVTEP)
		return
	}
	mem, size := w.umem.Mem, w.umem.ChunkSize
	f := mem[base+uint64(off) : base+uint64(off+ln)]
	for _, vt := range list[:last] {
		if !tab.VTEPs[vt].Up {
			continue
		}
		c, ok := w.take()
		if !ok {
			w.st.Inc(stats.DLDropNoBuffer)
			continue
		}
		copy(mem[c+xsk.RxHeadroom:c+size], f)
		w.st.Inc(stats.ULTxFloodCopies)
		w.toVTEP(c, xsk.RxHeadroom, ln, &tab.VTEPs[vt], vni)
	}
	w.st.Inc(stats.ULTxFloodCopies)
	w.toVTEP(base, off, ln, &tab.VTEPs[list[last]], vni)
}

// vxlanDrops maps vxlan's drop reasons to counters.
var vxlanDrops = [vxlan.NumDropReasons]stats.Counter{0, stats.ULDropVXLANTruncated, stats.ULDropVXLANNotVXLAN,
	stats.ULDropVXLANNotForUs, stats.ULDropVXLANBadLength, stats.ULDropVXLANBadChecksum, stats.ULDropVXLANBadFlags}

// processVXLAN handles packets from the uplink in VXLAN mode.
func (w *decapWorker) processVXLAN(n int) {
	tab := w.e.cfg.FDB.Load()
	if tab != w.vx.table {
		w.newTable(tab)
	}
	now := time.Now().Unix()
	size := w.umem.ChunkSize
	k := 0
	for _, d := range w.rxd[:n] {
		base := d.Addr &^ (size - 1)
		w.st.Inc(stats.ULRxPackets)
		w.st.Add(stats.ULRxBytes, uint64(d.Len))
		if d.Addr-base+uint64(d.Len) > size || tab == nil {
			w.drop(base, stats.ULDropOversize)
			continue
		}
		r, why := w.vx.dec.Decap(w.umem.Frame(d.Addr, d.Len))
		if why != vxlan.DropNone {
			w.drop(base, vxlanDrops[why])
			continue
		}
		vi := tab.VNIIndex(r.VNI)
		if vi < 0 {
			w.drop(base, stats.ULDropNoVNI)
			continue
		}
		vt := tab.VTEPIndex(r.Src.As16())
		if vt < 0 {
			w.drop(base, stats.ULDropWrongPeer)
			continue
		}
		f, tok := r.Inner, base
		if r.Piece {
			// A piece's inner bytes may grow to the end of their chunk.
			inner := r.Inner[:len(r.Inner):cap(r.Inner)]
			out := w.vx.reasm[vt].Push(inner, r.CW, base)
			for _, rel := range out.Released[:out.NReleased] {
				w.free = append(w.free, rel.Token)
				if rel.Reason != pseudowire.DropNone {
					w.st.Inc(ulDrops[rel.Reason])
				}
			}
			if out.Frame == nil {
				continue
			}
			f, tok = out.Frame, out.FrameToken
			w.st.Inc(stats.ULRxReassembled)
		}
		if len(f) < frame.EthernetLen {
			w.drop(tok, stats.ULDropRunt)
			continue
		}
		if w.vx.learn {
			w.learnRemote(tab, vi, int32(vt), frame.Ethernet(f).Src(), now)
		}
		if frame.ClassifyBPDU(f) != frame.NotBPDU {
			w.bpdu(stats.ULRxBPDUs, stats.ULLastBPDU)
		}
		addr := w.umem.Addr(f)
		if vlan := tab.VNIs[vi].VLAN; vlan != 0 {
			// Put the VLAN tag back: the MACs move four bytes forward into
			// the space the outer headers took.
			addr -= frame.VLANTagLen
			t := w.umem.Mem[addr : addr+uint64(len(f))+frame.VLANTagLen]
			copy(t[:12], t[frame.VLANTagLen:frame.VLANTagLen+12])
			binary.BigEndian.PutUint16(t[12:], frame.EtherTypeVLAN)
			binary.BigEndian.PutUint16(t[14:], vlan)
			f = t
		}
		w.txd[k] = xsk.Desc{Addr: addr, Len: uint32(len(f))}
		k++
	}
	w.send(k)
}

// newTable takes a new forwarding database into use. When its VTEPs'
// indexes changed (a new VTEPGen), held first halves are given up.
func (w *decapWorker) newTable(tab *vxlan.Table) {
	old := w.vx.table
	w.vx.table = tab
	if tab != nil && old != nil && tab.VTEPGen == old.VTEPGen {
		return
	}
	for i := range w.vx.reasm {
		if tok, ok := w.vx.reasm[i].Flush(); ok {
			w.drop(tok, stats.ULDropReplaced)
		}
	}
	if tab == nil {
		return
	}
	if cap(w.vx.reasm) < len(tab.VTEPs) {
		w.vx.reasm = make([]pseudowire.Reassembler, len(tab.VTEPs)) // only when VTEPs are added: the slow path
	}
	w.vx.reasm = w.vx.reasm[:len(tab.VTEPs)]
	for i := range w.vx.reasm {
		w.vx.reasm[i].MaxFrame = int(w.umem.ChunkSize) - xsk.RxHeadroom - vxlan.MaxOverhead
	}
}

// learnRemote reports a MAC seen behind VTEP vt where the table has it
// elsewhere or not at all.
func (w *decapWorker) learnRemote(tab *vxlan.Table, vi int, vt int32, src frame.MAC, now int64) {
	if src.IsMulticast() || src.IsZero() {
		return
	}
	if e, ok := tab.Lookup(vi, src); ok && e.VTEP == vt {
		if e.Seen != 0 { // learned here, so aged: stamp it
			if s := &tab.Seen[e.Seen]; s.Load() != now {
				s.Store(now)
			}
		}
		return
	}
	k := vxlan.MakeKey(vi, src)
	if r := w.e.cfg.Learned[1]; r != nil && !suppress(&w.vx.recent, &w.vx.recentAt, k, now) {
		r.Push1(vxlan.Learned{Key: k, VTEP: vt})
		w.e.wakeControl()
	}
}
