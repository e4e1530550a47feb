package main

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/bench/sink"
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

var (
	floodA = frame.MAC{0x02, 0xbb, 0, 0, 0, 0x02} // unknown to every bridge: flooded
	floodB = frame.MAC{0x02, 0xbb, 0, 0, 0, 0x03}
	srcB   = frame.MAC{0x02, 0xcc, 0, 0, 0, 0x01}
)

// decapPackets returns what the wan side sends for one n-byte frame to
// reach the lan through the DUT.
func decapPackets(kind string, n int) ([][]byte, error) {
	inner := plain(n, srcB, floodB)
	switch kind {
	case dutBridge:
		return [][]byte{plain(n, macS0, floodB)}, nil
	case dutVXLAN:
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
		return [][]byte{append(p, inner...)}, nil
	}
	c := pseudowire.EncapConfig{Mode: pseudowire.ModeEth, MTU: wanMTU, Src: macS0, Dst: macUL0}
	if kind == dutPWIP6 {
		c.Mode, c.SrcAddr, c.DstAddr = pseudowire.ModeIP6, addrS0, addrUL
	}
	e, err := pseudowire.NewEncapsulator(c)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 256+n)
	copy(buf[256:], inner)
	if e.Pieces(n) == 1 {
		start, err := e.Encap(buf, 256, n)
		return [][]byte{buf[start:]}, err
	}
	second := make([]byte, 4096)
	n1, n2, err := e.Fragment(buf, 256, n, second)
	start := 256 - e.Overhead()
	return [][]byte{buf[start : start+n1], second[:n2]}, err
}

// encapKind is the kind of packet the wan sink counts for the DUT's output.
func encapKind(kind string) sink.Kind {
	switch kind {
	case dutVXLAN:
		return sink.VXLAN
	case dutPWEth:
		return sink.PWEth
	case dutPWIP6:
		return sink.PWIP6
	}
	return sink.Plain
}

// trafgenConfig writes packets in trafgen's configuration syntax; trafgen
// sends them round robin.
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

// generator is one running trafgen.
type generator struct {
	ns, ifname string
	pieces     int // packets per frame it sends
	proc       *lab.Proc
}

func startGenerator(l *lab.Lab, dir, ns, ifname string, pkts [][]byte) (*generator, error) {
	cfg := filepath.Join(dir, ns+".trafgen")
	if err := trafgenConfig(cfg, pkts); err != nil {
		return nil, err
	}
	p, err := l.Start(ns, "taskset", "-c", strconv.Itoa(genCore), "trafgen", "-q", "-P", "1", "-o", ifname, "-i", cfg)
	if err != nil {
		return nil, err
	}
	return &generator{ns: ns, ifname: ifname, pieces: len(pkts), proc: p}, nil
}

func (g *generator) txPackets(l *lab.Lab) (uint64, error) {
	out, err := l.Exec(g.ns, "cat", "/sys/class/net/"+g.ifname+"/statistics/tx_packets")
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(out), 10, 64)
}

// stop ends trafgen, which may sit in a blocking send.
func (g *generator) stop() error {
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

// cpuTicks reads core's busy and total ticks (USER_HZ) from /proc/stat.
func cpuTicks(core int) (busy, total uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
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
		return busy, busy + v[3] + v[4] + v[7], nil
	}
	return 0, 0, fmt.Errorf("no cpu%d in /proc/stat", core)
}

// procTicks returns a process's user+system ticks.
func procTicks(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return u + st
}

const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux

// sample is everything read at one moment of a case.
type sample struct {
	at                time.Time
	lanFrames, wanOut uint64 // delivered frames at each end
	encTx, decTx      uint64 // packets the generators sent
	busy, total       uint64 // DUT core ticks
	daemon            uint64 // pwgated ticks
	gc                uint64
}

func (t *topo) sample(gens map[string]*generator) (s sample, err error) {
	s.at = time.Now()
	lan, err := t.lan.Read(sink.Plain)
	if err != nil {
		return s, err
	}
	wan, err := t.wan.Read(encapKind(t.kind))
	if err != nil {
		return s, err
	}
	s.lanFrames, s.wanOut = lan.Frames, wan.Frames
	if g := gens[dirEncap]; g != nil {
		if s.encTx, err = g.txPackets(t.l); err != nil {
			return s, err
		}
	}
	if g := gens[dirDecap]; g != nil {
		if s.decTx, err = g.txPackets(t.l); err != nil {
			return s, err
		}
	}
	if s.busy, s.total, err = cpuTicks(dutCore); err != nil {
		return s, err
	}
	if t.pwgated != nil {
		s.daemon = procTicks(t.pwgated.Cmd.Process.Pid)
		if st, err := client.FetchStatus(t.socket, time.Second); err == nil {
			s.gc = st.Runtime.GCCycles
		}
	}
	return s, nil
}

// result is one measured case.
type result struct {
	DUT         string  `json:"dut"`
	Size        int     `json:"size"`
	Direction   string  `json:"direction"`
	Seconds     float64 `json:"seconds"`
	OfferedFPS  float64 `json:"offered_fps"`
	FPS         float64 `json:"delivered_fps"`
	Loss        float64 `json:"loss"`
	CoreUse     float64 `json:"dut_core_utilisation"`
	CPUPerFrame float64 `json:"dut_cpu_ns_per_frame"`
	DaemonCPU   float64 `json:"pwgated_cpu_ns_per_frame,omitempty"`
	GCCycles    uint64  `json:"gc_cycles,omitempty"`
	Error       string  `json:"error,omitempty"`
}

// run measures one size and direction for d after a warm-up.
func (t *topo) run(size int, dir string, d time.Duration, during func()) (r result) {
	r = result{DUT: t.kind, Size: size, Direction: dir}
	fail := func(err error) result { r.Error = err.Error(); return r }
	gens := map[string]*generator{}
	defer func() {
		for _, g := range gens {
			if err := g.stop(); err != nil && r.Error == "" {
				r.Error = err.Error()
			}
		}
	}()
	if dir == dirEncap || dir == dirBoth {
		g, err := startGenerator(t.l, t.dir, "lan", "g0", [][]byte{plain(size, macG0, floodA)})
		if err != nil {
			return fail(err)
		}
		gens[dirEncap] = g
	}
	if dir == dirDecap || dir == dirBoth {
		pkts, err := decapPackets(t.kind, size)
		if err != nil {
			return fail(err)
		}
		g, err := startGenerator(t.l, t.dir, "wan", "s0", pkts)
		if err != nil {
			return fail(err)
		}
		gens[dirDecap] = g
	}
	time.Sleep(500 * time.Millisecond) // warm-up: queues fill, bridges learn
	if err := t.pin(); err != nil {
		return fail(err)
	}
	a, err := t.sample(gens)
	if err != nil {
		return fail(err)
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
	if g := gens[dirEncap]; g != nil {
		offered += float64(b.encTx-a.encTx) / float64(g.pieces)
		delivered += float64(b.wanOut - a.wanOut)
	}
	if g := gens[dirDecap]; g != nil {
		offered += float64(b.decTx-a.decTx) / float64(g.pieces)
		delivered += float64(b.lanFrames - a.lanFrames)
	}
	r.Seconds, r.OfferedFPS, r.FPS = secs, offered/secs, delivered/secs
	if offered > 0 {
		r.Loss = max(0, 1-delivered/offered)
	}
	if b.total > a.total {
		r.CoreUse = float64(b.busy-a.busy) / float64(b.total-a.total)
	}
	if delivered > 1000 {
		r.CPUPerFrame = float64(b.busy-a.busy) * float64(tick) / delivered
		if t.pwgated != nil {
			r.DaemonCPU = float64(b.daemon-a.daemon) * float64(tick) / delivered
		}
	}
	r.GCCycles = b.gc - a.gc
	if t.kind == dutVXLAN && size > wanMTU+frame.EthernetLen-vxlanOverhead {
		r.Error = fmt.Sprintf("VXLAN adds %d bytes and does not fragment: a %d-byte frame does not fit MTU %d", vxlanOverhead, size, wanMTU)
	}
	return r
}

// vxlanOverhead is outer Ethernet, IPv6, UDP and VXLAN headers.
const vxlanOverhead = frame.EthernetLen + frame.IPv6Len + 8 + 8

// pinTask pins task pid to core.
func pinTask(pid, core int) error {
	var set unix.CPUSet
	set.Set(core)
	return unix.SchedSetaffinity(pid, &set)
}
