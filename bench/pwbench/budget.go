package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/pwgate/pwgate/dataplane/pseudowire"
)

// The appliances' cores.
var boxes = []struct {
	Name string
	GHz  float64 // base clock: a fanless box under constant load stays near it
}{
	{"Partaker C4 (Celeron J3160)", 1.6},
	{"Skynew IN-1 (Celeron N2940)", 1.83},
}

// ipcFactor: how many of their cycles the Celerons' Airmont and Silvermont
// cores (two-wide, out of order, small caches) need for one cycle of this
// VM's core's work on branchy packet code. An assumption, not a
// measurement: this VM has no hardware counters and the boxes were not
// here.
const ipcFactor = 2.0

// 1 GbE: a frame costs its bytes, 4 of FCS, 8 of preamble and 12 of gap.
const (
	gbeBytesPerSec = 125e6
	wireExtra      = 4 + 8 + 12
)

// lineRate returns the frames/s 1GbE carries of n-byte frames (no FCS).
func lineRate(n int) float64 { return gbeBytesPerSec / float64(max(n, 60)+wireExtra) }

// uplinkRate returns the n-byte frames/s the uplink carries in mode m (at
// MTU 1500): one packet, or two pieces for a split frame.
func uplinkRate(m pseudowire.Mode, n int) float64 {
	s, _ := pseudowire.SplitFor(m, pseudowire.ReferenceMTU)
	ov := m.Overhead()
	if s.Pieces(n) == 1 {
		return lineRate(n + ov)
	}
	return gbeBytesPerSec / float64(s.First+ov+wireExtra+(n-s.First)+ov+wireExtra)
}

// wgUplinkRate returns the n-byte frames/s the uplink carries inside
// WireGuard over IPv6 (MTU 1500): each piece with the pseudowire's IPv6
// header and WireGuard's 80 bytes (IPv6, UDP, its header and tag).
func wgUplinkRate(n int) float64 {
	pieces := wgPieces(dutPWWG, n)
	return gbeBytesPerSec / float64(n+pieces*(pseudowire.IP6TunOverhead+80+wireExtra))
}

// budget is one row of the budget table.
type budget struct {
	Box       string  `json:"box"`
	DUT       string  `json:"dut"`
	Size      int     `json:"size"`
	Direction string  `json:"direction"`
	CyclesZC  float64 `json:"zerocopy_cycles_per_frame"`     // this VM's cycles, pwgated's own code (user time)
	Cycles    float64 `json:"pwgated_cycles_per_frame"`      // this VM's cycles, pwgated's threads
	CyclesNIC float64 `json:"with_driver_cycles_per_frame"`  // plus the veth NAPI threads' (a driver's stand-in)
	FPSZC     float64 `json:"zerocopy_frames_per_second"`    // one Celeron core, pwgated's own code only
	FPS       float64 `json:"pwgated_frames_per_second"`     // one Celeron core, pwgated only
	FPSNIC    float64 `json:"with_driver_frames_per_second"` // one Celeron core, pwgated and driver
	Line      float64 `json:"line_rate"`                     // what the wire allows each way
}

// budgets derives the table from the shared-layout XDP-generator results.
func budgets(r *report) []budget {
	if r.Meta.MHz == 0 {
		return nil
	}
	var out []budget
	for _, box := range boxes {
		for _, dut := range append(slices.Clone(pseudowires), dutPWWG, dutPWWGXDP) {
			m := pseudowire.ModeEth
			if dut == dutPWIP6 {
				m = pseudowire.ModeIP6
			}
			for _, size := range []int{64, 1514} {
				for _, dir := range []string{dirEncap, dirDecap} {
					x := r.find(caseSpec{DUT: dut, Gen: genXDP, Layout: layoutShared, Size: size, Direction: dir})
					if x == nil || x.Split.Pwgated() == 0 {
						continue
					}
					b := budget{Box: box.Name, DUT: dut, Size: size, Direction: dir}
					b.CyclesZC = (x.Split.Pwgated() - x.Split.InKernel) * r.Meta.MHz / 1000
					b.Cycles = x.Split.Pwgated() * r.Meta.MHz / 1000
					b.CyclesNIC = (x.Split.Pwgated() + x.Split.NAPI) * r.Meta.MHz / 1000
					b.FPSZC = box.GHz * 1e9 / (b.CyclesZC * ipcFactor)
					b.FPS = box.GHz * 1e9 / (b.Cycles * ipcFactor)
					b.FPSNIC = box.GHz * 1e9 / (b.CyclesNIC * ipcFactor)
					b.Line = min(lineRate(size), uplinkRate(m, size))
					if isWG(dut) {
						b.Line = min(lineRate(size), wgUplinkRate(size))
					}
					out = append(out, b)
				}
			}
		}
	}
	return out
}

func budgetTable(bs []budget) string {
	var b strings.Builder
	b.WriteString("| box | DUT | frame | direction | cycles/frame here (zero-copy, pwgated, +driver) | one core sustains (zero-copy, pwgated, +driver) | line rate | at line rate? |\n|---|---|---:|---|---:|---:|---:|---|\n")
	for _, x := range bs {
		verdict := "yes"
		switch {
		case x.FPSNIC < x.Line && x.FPS >= x.Line:
			verdict = "pwgated yes, with a copying driver no"
		case x.FPS < x.Line && x.FPSZC >= x.Line:
			verdict = fmt.Sprintf("with zero-copy only (copy mode %.0f%%)", 100*x.FPS/x.Line)
		case x.FPS < x.Line:
			verdict = fmt.Sprintf("no (zero-copy %.0f%%, copy mode %.0f%%)", 100*x.FPSZC/x.Line, 100*x.FPS/x.Line)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %.0f, %.0f, %.0f | %.2f, %.2f, %.2f Mf/s | %.3f Mf/s | %s |\n", x.Box, x.DUT, x.Size, x.Direction,
			x.CyclesZC, x.Cycles, x.CyclesNIC, x.FPSZC/1e6, x.FPS/1e6, x.FPSNIC/1e6, x.Line/1e6, verdict)
	}
	return b.String()
}

// budgetVerdict says plainly what the boxes carry at line rate both ways.
func budgetVerdict(bs []budget) string {
	var b strings.Builder
	type key struct {
		box, dut string
		size     int
	}
	both := map[key][3]bool{} // pwgated alone, with driver, own code (zero-copy): both directions at line rate
	var order []key
	for _, x := range bs {
		k := key{x.Box, x.DUT, x.Size}
		v, seen := both[k]
		if !seen {
			v = [3]bool{true, true, true}
			order = append(order, k)
		}
		v[0] = v[0] && x.FPS >= x.Line
		v[1] = v[1] && x.FPSNIC >= x.Line
		v[2] = v[2] && x.FPSZC >= x.Line
		both[k] = v
	}
	for _, k := range order {
		v := both[k]
		switch {
		case v[1]:
			fmt.Fprintf(&b, "- %s, %s, %d-byte frames: line rate both ways, driver included.\n", k.box, k.dut, k.size)
		case v[0]:
			fmt.Fprintf(&b, "- %s, %s, %d-byte frames: line rate both ways for pwgated's own work; with a driver that copies as veth does, not.\n", k.box, k.dut, k.size)
		case v[2]:
			fmt.Fprintf(&b, "- %s, %s, %d-byte frames: line rate both ways only with zero-copy (pwgated's own code), not in copy mode.\n", k.box, k.dut, k.size)
		default:
			fmt.Fprintf(&b, "- %s, %s, %d-byte frames: **not** at line rate both ways.\n", k.box, k.dut, k.size)
		}
	}
	return b.String()
}

var budgetMethod = fmt.Sprintf(`Cycles per frame here are pwgated's threads' CPU time per frame (XDP
generator, shared layout) times this VM's clock; "+driver" adds the DUT
ports' veth NAPI threads (the XDP program and, in copy mode, the copy into
the UMEM), a stand-in, and an upper bound, for what igb still costs in
copy mode (with zero-copy the copy goes). "Zero-copy" counts pwgated's own
code only (its threads' user time): what is left when the kernel no longer
builds a socket buffer per sent frame inside pwgated's system calls, as
with igb's zero-copy (Linux 6.14 and later: the image's kernel); it leaves
out what the driver still does per frame (descriptors, the doorbell), so
it is a lower bound. One Celeron core per direction
(the profiles put encap and decap on cores of their own) sustains its
clock divided by those cycles times %.1f, the assumed cycles a Celeron
(Airmont J3160 at 1.6 GHz, Silvermont N2940 at 1.83 GHz, base clocks) needs
per cycle of this VM's core: an assumption, not a measurement. Line rate
is 1GbE's: %.0f frames/s of 64 bytes (%.0f of 1518 with FCS). A 1514-byte
frame crosses the uplink as two pieces: %d and %d bytes with outer headers
in ip6 mode, so the uplink itself carries at most %.0f such frames a second
(%.0f in eth mode), below the LAN's %.0f: at that size the uplink, not the
CPU, is the limit, and "line rate" below means the uplink's.
`, ipcFactor, lineRate(64), lineRate(1514),
	pseudowire.ReferenceFirst+pseudowire.IP6Overhead, 1514-pseudowire.ReferenceFirst+pseudowire.IP6Overhead,
	uplinkRate(pseudowire.ModeIP6, 1514), uplinkRate(pseudowire.ModeEth, 1514), lineRate(1514))
