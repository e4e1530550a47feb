package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/bench/sink"
	"github.com/pwgate/pwgate/bench/xdpgen"
	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/pseudowire"
)

// Directions of a case.
const (
	dirEncap = "encap" // lan to wan
	dirDecap = "decap" // wan to lan
	dirBoth  = "both"
)

// Generators.
const (
	genXDP     = "xdp"     // xdpgen: frames arrive as xdp_frames, as from a NIC driver
	genTrafgen = "trafgen" // netsniff-ng's trafgen: socket buffers through a qdisc
)

// Core layouts of the device under test.
const (
	// layoutShared: everything of the DUT on core 1 (pwgated adaptive,
	// main/encap/decap = 1, and its NAPI threads), generators on core 0.
	layoutShared = "shared"
	// layoutBusy: pwgated busy-polling with its goroutines on their own
	// cores, the best two cores allow: encap on core 1, decap (and main) on
	// core 0; each direction's generator shares the core of the other
	// direction's goroutine (encap's generator core 0, decap's core 1), as
	// do the NAPI threads of the port each goroutine receives from.
	layoutBusy = "busy"
)

// plain returns a test frame of n bytes (EtherType 0x88b5).
func plain(n int, src, dst frame.MAC) []byte {
	f := make([]byte, n)
	e := frame.Ethernet(f)
	e.SetDst(dst)
	e.SetSrc(src)
	e.SetEtherType(0x88b5)
	for i := frame.EthernetLen; i < n; i++ {
		f[i] = byte(i)
	}
	return f
}

// arpRequest is an n-byte broadcast ARP request from src (at sender)
// for target.
func arpRequest(n int, src frame.MAC, sender, target netip.Addr) []byte {
	f := make([]byte, max(n, 60))
	e := frame.Ethernet(f)
	e.SetDst(frame.MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	e.SetSrc(src)
	e.SetEtherType(0x0806)
	a := f[frame.EthernetLen:]
	copy(a, []byte{0, 1, 8, 0, 6, 4, 0, 1}) // Ethernet, IPv4, request
	copy(a[8:], src[:])
	s4, t4 := sender.As4(), target.As4()
	copy(a[14:], s4[:])
	copy(a[24:], t4[:])
	return f
}

var (
	floodA = frame.MAC{0x02, 0xbb, 0, 0, 0, 0x02} // unknown to every bridge: flooded
	floodB = frame.MAC{0x02, 0xbb, 0, 0, 0, 0x03}
	srcB   = frame.MAC{0x02, 0xcc, 0, 0, 0, 0x01}
)

// flows is how many flows the XDP generator spreads its frames over: the
// source MAC's last two bytes of the inner frame take 1024 values, so that
// learning bridges and lookups are not artificially cache-hot.
const flows = 1024

// decapPackets returns what the wan side sends for one n-byte frame to
// reach the lan through the DUT, and the offset of the inner frame's
// source MAC in the first packet (for the XDP generator's flows).
func decapPackets(kind string, n int) ([][]byte, int, error) {
	inner := plain(n, srcB, floodB)
	switch kind {
	case dutBridge:
		return [][]byte{plain(n, macS0, floodB)}, 6, nil
	case dutVXLAN, dutPWVXLAN, dutPWVXLAN3, dutPWEVPN:
		p := make([]byte, frame.EthernetLen+frame.IPv6Len+8+8, frame.EthernetLen+frame.IPv6Len+16+n)
		e := frame.Ethernet(p)
		e.SetDst(macUL0)
		e.SetSrc(macS0)
		e.SetEtherType(frame.EtherTypeIPv6)
		frame.IPv6(p[frame.EthernetLen:]).Encode(uint16(16+n), 17, 64, addrS0, addrUL)
		udp := p[frame.EthernetLen+frame.IPv6Len:]
		binary.BigEndian.PutUint16(udp[0:], 49152)
		binary.BigEndian.PutUint16(udp[2:], 4789)
		binary.BigEndian.PutUint16(udp[4:], uint16(16+n))
		binary.BigEndian.PutUint32(udp[8:], 0x08000000) // VNI present
		binary.BigEndian.PutUint32(udp[12:], 42<<8)
		return [][]byte{append(p, inner...)}, len(p) + 6, nil
	}
	c := pseudowire.EncapConfig{Mode: pseudowire.ModeEth, MTU: wanMTU, Src: macS0, Dst: macUL0}
	if kind == dutPWIP6 {
		c.Mode, c.SrcAddr, c.DstAddr = pseudowire.ModeIP6, addrS0, addrUL
	}
	e, err := pseudowire.NewEncapsulator(c)
	if err != nil {
		return nil, 0, err
	}
	buf := make([]byte, 256+n)
	copy(buf[256:], inner)
	if e.Pieces(n) == 1 {
		start, err := e.Encap(buf, 256, n)
		return [][]byte{buf[start:]}, e.Overhead() + 6, err
	}
	second := make([]byte, 4096)
	n1, n2, err := e.Fragment(buf, 256, n, second)
	start := 256 - e.Overhead()
	return [][]byte{buf[start : start+n1], second[:n2]}, e.Overhead() + 6, err
}

// encapKind is the kind of packet the wan sink counts for the DUT's output.
func encapKind(kind string) sink.Kind {
	switch kind {
	case dutVXLAN, dutPWVXLAN, dutPWVXLAN3, dutPWEVPN:
		return sink.VXLAN
	case dutPWEth:
		return sink.PWEth
	case dutPWIP6:
		return sink.PWIP6
	case dutAnycast, dutKernelRes:
		return sink.IP4UDP
	}
	return sink.Plain
}

// source is a running generator: how many packets it has sent, and stop.
type source interface {
	sent(l *lab.Lab) (uint64, error)
	stop() error
}

// trafgen is one running trafgen.
type trafgen struct {
	ns, ifname string
	proc       *lab.Proc
}

func trafgenConfig(path string, pkts [][]byte) error {
	var b strings.Builder
	for _, p := range pkts {
		b.WriteString("{ ")
		for i, c := range p {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "0x%02x", c)
		}
		b.WriteString(" }\n")
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func startTrafgen(l *lab.Lab, dir, ns, ifname string, core int, pkts [][]byte) (*trafgen, error) {
	cfg := filepath.Join(dir, ns+".trafgen")
	if err := trafgenConfig(cfg, pkts); err != nil {
		return nil, err
	}
	p, err := l.Start(ns, "taskset", "-c", strconv.Itoa(core), "trafgen", "-q", "-P", "1", "-o", ifname, "-i", cfg)
	if err != nil {
		return nil, err
	}
	return &trafgen{ns: ns, ifname: ifname, proc: p}, nil
}

func (g *trafgen) sent(l *lab.Lab) (uint64, error) {
	out, err := l.Exec(g.ns, "cat", "/sys/class/net/"+g.ifname+"/statistics/tx_packets")
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(out), 10, 64)
}

// stop ends trafgen, which may sit in a blocking send.
func (g *trafgen) stop() error {
	syscall.Kill(-g.proc.Cmd.Process.Pid, syscall.SIGKILL)
	g.proc.Wait(5 * time.Second)
	if out := g.proc.Out.String(); strings.Contains(out, "failed") {
		return fmt.Errorf("trafgen on %s: %s", g.ifname, lastLine(out))
	}
	return nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// xdpSource is xdpgen running, as fast as it can, on a thread of its own
// in the sending interface's namespace, pinned to a core.
type xdpSource struct {
	gen    *xdpgen.Gen
	cancel func()
	done   chan error
}

// startXDP sends pkts (a frame, or a split frame's two pieces, in turn)
// out of ifname; the inner source MAC at srcOff cycles over flows values.
// With restore, the headers are written again before each send (for a
// router DUT, which rewrites them in place in the generator's pages).
func startXDP(l *lab.Lab, ns, ifname string, core int, pkts [][]byte, srcOff int, restore bool) (*xdpSource, error) {
	s := &xdpSource{done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	ready := make(chan error, 1)
	go func() {
		s.done <- l.Do(ns, func() error {
			var set unix.CPUSet
			set.Set(core)
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				ready <- err
				return err
			}
			o := xdpgen.Options{Packets: pkts, Flows: flows, Fields: []xdpgen.Field{{Off: uint32(srcOff + 4)}}}
			if restore {
				o.Restore = 42 // Ethernet, IPv4, UDP: what a router rewrites
			}
			g, err := xdpgen.Open(ifname, o)
			if err != nil {
				ready <- err
				return err
			}
			defer g.Close()
			s.gen = g
			ready <- nil
			_, err = g.Run(ctx, 0)
			return err
		})
	}()
	if err := <-ready; err != nil {
		cancel()
		<-s.done
		return nil, err
	}
	return s, nil
}

// sent returns the frames sent (a split frame's two pieces count once).
func (s *xdpSource) sent(*lab.Lab) (uint64, error) { return s.gen.Sent(), nil }

func (s *xdpSource) stop() error {
	s.cancel()
	return <-s.done
}

// ticks reads /proc/stat for core: busy and total ticks (USER_HZ) and the
// softirq part of busy.
func coreTicks(core int) (busy, total, softirq uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || f[0] != "cpu"+strconv.Itoa(core) {
			continue
		}
		var v [8]uint64
		for i := range v {
			v[i], _ = strconv.ParseUint(f[i+1], 10, 64)
		}
		// user nice system idle iowait irq softirq steal
		busy = v[0] + v[1] + v[2] + v[5] + v[6]
		return busy, busy + v[3] + v[4] + v[7], v[6], nil
	}
	return 0, 0, 0, fmt.Errorf("no cpu%d in /proc/stat", core)
}

// taskTicks returns the user+system ticks of a task (a process, or a
// thread given as pid/task/tid).
func taskTicks(path string) uint64 {
	u, sys := taskTimes(path)
	return u + sys
}

// taskTimes returns a task's user and system ticks apart.
func taskTimes(path string) (user, sys uint64) {
	b, err := os.ReadFile(filepath.Join("/proc", path, "stat"))
	if err != nil {
		return 0, 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, 0
	}
	user, _ = strconv.ParseUint(f[11], 10, 64)
	sys, _ = strconv.ParseUint(f[12], 10, 64)
	return user, sys
}

// napiTasks returns the PIDs of the DUT's veth NAPI threads.
func napiTasks() []int {
	var out []int
	tasks, _ := os.ReadDir("/proc")
	for _, e := range tasks {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err == nil && (strings.HasPrefix(string(comm), "napi/dl0-") || strings.HasPrefix(string(comm), "napi/ul0-")) {
			out = append(out, pid)
		}
	}
	return out
}

const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux

// sample is everything read at one moment of a case.
type sample struct {
	at                time.Time
	lanFrames, wanOut uint64 // delivered frames at each end
	lanARP            uint64 // ARP replies at the lan end
	encTx, decTx      uint64 // frames the generators sent
	busy, total, soft uint64 // DUT core ticks (layoutShared)
	daemon            uint64 // pwgated ticks, all threads
	daemonSys         uint64 // of them in the kernel (system calls)
	encap, decap      uint64 // its data goroutines' threads
	napi              uint64 // the DUT's NAPI threads
	gc                uint64
}

func (t *topo) sample(gens map[string]source) (s sample, err error) {
	s.at = time.Now()
	lan, err := t.lan.Read(sink.Plain)
	if err != nil {
		return s, err
	}
	wan, err := t.wan.Read(t.encapKind())
	if err != nil {
		return s, err
	}
	s.lanFrames, s.wanOut = lan.Frames, wan.Frames
	if t.arpFor.IsValid() {
		arp, err := t.lan.Read(sink.ARPReply)
		if err != nil {
			return s, err
		}
		s.lanARP = arp.Frames
	}
	if g := gens[dirEncap]; g != nil {
		if s.encTx, err = g.sent(t.l); err != nil {
			return s, err
		}
	}
	if g := gens[dirDecap]; g != nil {
		if s.decTx, err = g.sent(t.l); err != nil {
			return s, err
		}
	}
	if s.busy, s.total, s.soft, err = coreTicks(dutCore); err != nil {
		return s, err
	}
	for _, pid := range napiTasks() {
		s.napi += taskTicks(strconv.Itoa(pid))
	}
	if t.pwgated != nil {
		pid := t.pwgated.Cmd.Process.Pid
		u, sys := taskTimes(strconv.Itoa(pid))
		s.daemon, s.daemonSys = u+sys, sys
		if st, err := client.FetchStatus(t.socket, time.Second); err == nil {
			s.gc = st.Runtime.GCCycles
			for _, th := range st.Runtime.Threads {
				switch th.Name {
				case "encap":
					s.encap = taskTicks(fmt.Sprintf("%d/task/%d", pid, th.TID))
				case "decap":
					s.decap = taskTicks(fmt.Sprintf("%d/task/%d", pid, th.TID))
				}
			}
		}
	}
	return s, nil
}

// cpuSplit is CPU time per delivered frame, in ns, by owner.
type cpuSplit struct {
	Encap float64 `json:"encap_thread"`
	Decap float64 `json:"decap_thread"`
	Main  float64 `json:"pwgated_other_threads"`
	// InKernel is the part of pwgated's threads' time spent in the kernel,
	// in its system calls: with copy-mode AF_XDP (veth) the kernel builds
	// and sends a socket buffer for each frame inside the TX kick, work a
	// zero-copy NIC driver does not do.
	InKernel float64 `json:"pwgated_in_kernel"`
	NAPI     float64 `json:"veth_napi_threads"`
	Softirq  float64 `json:"softirq"`
	Other    float64 `json:"other"`
}

// Pwgated is pwgated's own threads.
func (c cpuSplit) Pwgated() float64 { return c.Encap + c.Decap + c.Main }

// caseSpec names a case.
type caseSpec struct {
	DUT       string `json:"dut"`
	Gen       string `json:"generator"`
	Layout    string `json:"layout"`
	Size      int    `json:"size"`
	Direction string `json:"direction"`
}

// result is one measured case.
type result struct {
	caseSpec
	Seconds     float64  `json:"seconds"`
	OfferedFPS  float64  `json:"offered_fps"`
	FPS         float64  `json:"delivered_fps"`
	Loss        float64  `json:"loss"`
	CoreUse     float64  `json:"dut_core_utilisation,omitempty"`
	CPUPerFrame float64  `json:"dut_cpu_ns_per_frame,omitempty"` // layoutShared: the DUT core's busy time
	Split       cpuSplit `json:"cpu_ns_per_frame_by_owner"`
	Syscalls    float64  `json:"pwgated_syscalls_per_frame,omitempty"`
	GCCycles    uint64   `json:"gc_cycles,omitempty"`
	Perf        string   `json:"perf,omitempty"` // --perf: the DUT core's hottest threads and symbols
	// ARP cases, per ARP request from the lan: the answers sent back, and
	// the VXLAN packets sent to the VTEPs.
	AnsweredPerRequest float64 `json:"arp_answers_per_request,omitempty"`
	CopiesPerRequest   float64 `json:"vxlan_copies_per_arp_request,omitempty"`
	Error              string  `json:"error,omitempty"`
}

// run measures one case for d after a warm-up; during, if set, is called
// when the measurement starts.
func (t *topo) run(c caseSpec, d time.Duration, during func()) (r result) {
	r = result{caseSpec: c}
	fail := func(err error) result { r.Error = err.Error(); return r }
	gens := map[string]source{}
	defer func() {
		for _, g := range gens {
			if err := g.stop(); err != nil && r.Error == "" {
				r.Error = err.Error()
			}
		}
	}()
	encCore, decCore := genCore, genCore
	if c.Layout == layoutBusy {
		encCore, decCore = 0, 1
	}
	start := func(dir, ns, ifname string, core int, pkts [][]byte, srcOff int) error {
		var g source
		var err error
		if c.Gen == genXDP && xdpUnavailable == nil {
			g, err = startXDP(t.l, ns, ifname, core, pkts, srcOff, isAnycast(t.kind))
		} else {
			g, err = startTrafgen(t.l, t.dir, ns, ifname, core, pkts)
		}
		if err == nil {
			gens[dir] = g
		}
		return err
	}
	if c.Direction == dirEncap || c.Direction == dirBoth {
		dst, vary := floodA, 6 // one unknown destination; the source varies
		if t.varyDst {
			dst, vary = macChurn(0), 0 // destinations the churning routes name
		}
		pkt := plain(c.Size, macG0, dst)
		switch {
		case isAnycast(t.kind):
			pkt, vary = vipFrame(c.Size), vipFieldOff
		case t.arpFor.IsValid():
			pkt, vary = arpRequest(c.Size, macG0, arpSender, t.arpFor), 6
		}
		if err := start(dirEncap, "lan", "g0", encCore, [][]byte{pkt}, vary); err != nil {
			return fail(err)
		}
	}
	if (c.Direction == dirDecap || c.Direction == dirBoth) && isWG(t.kind) {
		// The far site's packets, encrypted by the far end's wireguard-go.
		pkts, _, err := wgInner(t.kind, c.Size)
		if err != nil {
			return fail(err)
		}
		gens[dirDecap] = t.far.start(pkts)
	} else if c.Direction == dirDecap || c.Direction == dirBoth {
		pkts, off, err := t.decapPackets(c.Size)
		if err != nil {
			return fail(err)
		}
		if err := start(dirDecap, "wan", "s0", decCore, pkts, off); err != nil {
			return fail(err)
		}
	}
	time.Sleep(500 * time.Millisecond) // warm-up: queues fill, bridges learn
	if err := t.pin(c.Layout); err != nil {
		return fail(err)
	}
	a, err := t.sample(gens)
	if err != nil {
		return fail(err)
	}
	var syscalls chan float64
	if t.pwgated != nil {
		syscalls = countSyscalls(t.pwgated.Cmd.Process.Pid, d)
	}
	if during != nil {
		during()
	}
	time.Sleep(time.Until(a.at.Add(d)))
	b, err := t.sample(gens)
	if err != nil {
		return fail(err)
	}
	secs := b.at.Sub(a.at).Seconds()
	offered, delivered := 0.0, 0.0
	if gens[dirEncap] != nil && t.arpFor.IsValid() {
		// ARP requests: delivered are the requests handled, answered on
		// the lan side or flooded to the VTEPs (churnVTEPs copies each);
		// both are also reported apart, per request.
		req := float64(b.encTx - a.encTx)
		answered, copies := float64(b.lanARP-a.lanARP), float64(b.wanOut-a.wanOut)
		offered += req
		delivered += answered + copies/churnVTEPs
		if req > 0 {
			r.AnsweredPerRequest, r.CopiesPerRequest = answered/req, copies/req
		}
	} else if gens[dirEncap] != nil {
		offered += float64(b.encTx - a.encTx)
		out := float64(b.wanOut-a.wanOut) / float64(copies(t.kind)) // flooded: frames, not copies
		if isWG(t.kind) {
			out /= float64(wgPieces(t.kind, c.Size)) // the sink counts WireGuard messages
		}
		delivered += out
	}
	if gens[dirDecap] != nil {
		offered += float64(b.decTx - a.decTx)
		delivered += float64(b.lanFrames - a.lanFrames)
	}
	if (c.Gen == genTrafgen || xdpUnavailable != nil) && t.pieces(c.Size) == 2 && gens[dirDecap] != nil && !isWG(t.kind) {
		// trafgen counts packets; a split frame is two. (The WireGuard far
		// end counts frames already: farSource.sent.)
		offered -= float64(b.decTx-a.decTx) / 2
	}
	r.Seconds, r.OfferedFPS, r.FPS = secs, offered/secs, delivered/secs
	if offered > 0 {
		r.Loss = max(0, 1-delivered/offered)
	}
	if delivered > 1000 {
		per := func(ticks uint64) float64 { return float64(ticks) * float64(tick) / delivered }
		r.Split = cpuSplit{Encap: per(b.encap - a.encap), Decap: per(b.decap - a.decap), NAPI: per(b.napi - a.napi)}
		r.Split.Main = max(0, per(b.daemon-a.daemon)-r.Split.Encap-r.Split.Decap)
		r.Split.InKernel = per(b.daemonSys - a.daemonSys)
		if c.Layout == layoutShared {
			if b.total > a.total {
				r.CoreUse = float64(b.busy-a.busy) / float64(b.total-a.total)
			}
			r.CPUPerFrame = per(b.busy - a.busy)
			r.Split.Softirq = per(b.soft - a.soft)
			r.Split.Other = max(0, r.CPUPerFrame-r.Split.Pwgated()-r.Split.NAPI-r.Split.Softirq)
		}
		if syscalls != nil {
			if n := <-syscalls; n > 0 {
				r.Syscalls = n / delivered
			}
		}
	}
	r.GCCycles = b.gc - a.gc
	if (t.kind == dutVXLAN || isPWVXLAN(t.kind)) && c.Size > wanMTU+frame.EthernetLen-vxlanOverhead {
		r.Error = fmt.Sprintf("VXLAN adds %d bytes and does not fragment: a %d-byte frame does not fit MTU %d", vxlanOverhead, c.Size, wanMTU)
	}
	if !wgFits(t.kind, c.Size) {
		r.Error = fmt.Sprintf("cannot carry it: VXLAN inside a %d-byte WireGuard tunnel takes frames up to %d bytes (the hosts would need MTU %d)",
			wgTunMTU, wgTunMTU-vxlanOver+14, wgTunMTU-vxlanOver)
	}
	return r
}

// countSyscalls counts the system calls of process pid (all its threads)
// for d with perf's raw_syscalls tracepoint, and sends the count (0 when
// perf cannot).
func countSyscalls(pid int, d time.Duration) chan float64 {
	out := make(chan float64, 1)
	go func() {
		b, err := exec.Command("perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter", "-p", strconv.Itoa(pid), "--",
			"sleep", fmt.Sprintf("%.3f", d.Seconds())).CombinedOutput()
		if err != nil {
			out <- 0
			return
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Split(line, ","); len(f) > 2 && strings.HasPrefix(f[2], "raw_syscalls:sys_enter") {
				n, _ := strconv.ParseFloat(f[0], 64)
				out <- n
				return
			}
		}
		out <- 0
	}()
	return out
}

// vxlanOverhead is outer Ethernet, IPv6, UDP and VXLAN headers.
const vxlanOverhead = frame.EthernetLen + frame.IPv6Len + 8 + 8

// pinTask pins task pid to core.
func pinTask(pid, core int) error {
	var set unix.CPUSet
	set.Set(core)
	return unix.SchedSetaffinity(pid, &set)
}
