// Package xdpgen is make bench's NIC-like generator: an XDP program run
// with BPF_PROG_RUN in live-frames mode (Linux 5.18 and later, the technique
// of xdp-trafficgen) on one end of a veth pair. Each run sends the packet
// out of that end with XDP_TX, so the other end receives it as an
// xdp_frame, as a NIC driver hands XDP its receive pages, without the
// socket-buffer allocation and copies of a socket generator (trafgen).
//
// The receiving end must accept xdp_frames: it needs an XDP program
// attached (pwgated's), or GRO on so that veth runs NAPI (the kernel's
// bridge and VXLAN baselines); without either, veth drops them. An XDP
// program must also be attached to the sending end (the bench's sink is).
package xdpgen

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// MaxFields is how many 16-bit fields can vary per packet.
const MaxFields = 3

// Field is a 16-bit big-endian field of the packet at Off (not 0) that
// takes the values Base, Base+1, ..., Base+flows-1 in turn.
type Field struct {
	Off  uint32
	Base uint16
}

// Gen is a loaded generator for one interface and one packet (or the
// two pieces of a split frame).
type Gen struct {
	objs    xdpgenObjects
	ifindex int
	pkt     []byte
	pieces  uint64
	sent    atomic.Uint64
	// The run in progress, for Sent's estimate: its start (Unix ns), its
	// repeat count and how long the last run took (ns).
	callStart, callN, lastDur atomic.Int64
}

// Options say what a generator sends.
type Options struct {
	// Packets are sent in turn: one packet, or the two pieces of a split
	// frame (which then always arrive first, second, first, ...).
	Packets [][]byte
	// Flows and Fields: Fields of the (first) packet cycle over Flows values.
	Flows  int
	Fields []Field
	// Restore is how many bytes of the packet's head (at most 64, and
	// the packet at least 64 bytes long) are written again before every
	// send: for devices that rewrite the packets they receive in place
	// (routers), whose changes would otherwise come back with the page.
	Restore int
}

// xdpMD is struct xdp_md, the program's context.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// Open loads a generator that sends o's packets out of ifname (which must
// be in the calling thread's network namespace). It does not attach
// anything.
func Open(ifname string, o Options) (*Gen, error) {
	fields, flows := o.Fields, max(o.Flows, 1)
	if len(fields) > MaxFields {
		return nil, fmt.Errorf("xdpgen: at most %d fields vary", MaxFields)
	}
	if flows > 65536 {
		return nil, fmt.Errorf("xdpgen: %d flows", flows)
	}
	if len(o.Packets) != 1 && len(o.Packets) != 2 {
		return nil, fmt.Errorf("xdpgen: %d packets (one, or a split frame's two)", len(o.Packets))
	}
	pkt := append([]byte(nil), o.Packets[0]...)
	splitAt := uint32(0)
	if len(o.Packets) == 2 {
		splitAt = uint32(len(pkt))
		pkt = append(pkt, o.Packets[1]...)
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, err
	}
	spec, err := loadXdpgen()
	if err != nil {
		return nil, err
	}
	var offs [MaxFields]uint32
	var bases [MaxFields]uint16
	for i, f := range fields {
		if f.Off == 0 || int(f.Off)+2 > len(o.Packets[0]) {
			return nil, fmt.Errorf("xdpgen: field at %d outside the %d-byte packet", f.Off, len(o.Packets[0]))
		}
		offs[i], bases[i] = f.Off, f.Base
	}
	var header [64]byte
	if o.Restore > 0 {
		if o.Restore > len(header) || len(o.Packets) != 1 || len(o.Packets[0]) < len(header) {
			return nil, fmt.Errorf("xdpgen: restore %d bytes: at most 64, of one packet of at least 64", o.Restore)
		}
		copy(header[:], o.Packets[0])
	}
	for name, v := range map[string]any{"flows": uint32(flows), "field_off": offs, "field_base": bases, "split_at": splitAt,
		"restore": uint32(o.Restore), "header": header} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, fmt.Errorf("xdpgen: set %s: %w", name, err)
		}
	}
	g := &Gen{ifindex: ifi.Index, pkt: pkt, pieces: uint64(len(o.Packets))}
	if err := spec.LoadAndAssign(&g.objs, nil); err != nil {
		return nil, fmt.Errorf("xdpgen: load: %w", err)
	}
	return g, nil
}

// Close releases the program.
func (g *Gen) Close() error { return g.objs.Close() }

// send runs the program n times in live-frames mode: n packets out.
func (g *Gen) send(n uint32) error {
	t := time.Now()
	g.callStart.Store(t.UnixNano())
	g.callN.Store(int64(n))
	_, err := g.objs.Xdpgen.Run(&ebpf.RunOptions{
		Data:    g.pkt,
		Repeat:  n,
		Flags:   unix.BPF_F_TEST_XDP_LIVE_FRAMES,
		Context: &xdpMD{DataEnd: uint32(len(g.pkt)), IngressIfindex: uint32(g.ifindex)},
	})
	g.callN.Store(0) // before the count: Sent never counts a run twice
	g.lastDur.Store(int64(time.Since(t)))
	if err == nil {
		g.sent.Add(uint64(n))
	}
	return err
}

// Sent returns how many frames the generator has sent so far (a split
// frame's two pieces count once); safe from any goroutine while Run runs.
// A run in progress counts in proportion to its time so far (the kernel
// says how many it sent only at its end).
func (g *Gen) Sent() uint64 {
	done := g.sent.Load()
	if n, d := g.callN.Load(), g.lastDur.Load(); n > 0 && d > 0 {
		frac := min(float64(time.Now().UnixNano()-g.callStart.Load())/float64(d), 1)
		done += uint64(frac * float64(n))
	}
	return done / g.pieces
}

// slice is the rate controller's time step.
const slice = time.Millisecond

// callTime is how long one run at full speed aims to take.
const callTime = 250 * time.Millisecond

// Run sends packets at rate per second (0: as fast as the core can) until
// ctx is done, and returns how many packets it sent. Run it on the thread of the
// interface's network namespace, pinned to the generator's core.
func (g *Gen) Run(ctx context.Context, rate float64) (uint64, error) {
	var sent uint64
	if rate <= 0 {
		// Each BPF_PROG_RUN in live-frames mode costs about 25 ms of set-up
		// and tear-down on this kernel (its page pool goes through an RCU
		// grace period), whatever the repeat count: calls of about a
		// quarter second keep that under a tenth of the time.
		n := uint32(65536)
		for ctx.Err() == nil {
			t := time.Now()
			if err := g.send(n); err != nil {
				return sent, err
			}
			sent += uint64(n)
			d := max(time.Since(t), time.Millisecond)
			n = uint32(min(max(float64(n)*float64(callTime)/float64(d), 4096), 1<<22))
		}
		return sent, nil
	}
	start := time.Now()
	for ctx.Err() == nil {
		due := uint64(rate * time.Since(start).Seconds())
		if due > sent {
			n := uint32(min(due-sent, 1<<16))
			if err := g.send(n); err != nil {
				return sent, err
			}
			sent += uint64(n)
			continue
		}
		time.Sleep(slice)
	}
	return sent, nil
}

// Supported reports whether this kernel runs XDP programs in live-frames
// mode (Linux 5.18 and later), trying it on the loopback device.
func Supported() error {
	g, err := Open("lo", Options{Packets: [][]byte{make([]byte, 60)}})
	if err != nil {
		return err
	}
	defer g.Close()
	if err := g.send(1); err != nil {
		return fmt.Errorf("BPF_PROG_RUN with live frames: %w", err)
	}
	return nil
}
