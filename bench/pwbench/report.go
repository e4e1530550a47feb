package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// meta says where and when results were taken.
type meta struct {
	Date    string  `json:"date"`
	Commit  string  `json:"commit"`
	Kernel  string  `json:"kernel"`
	CPU     string  `json:"cpu"`
	MHz     float64 `json:"cpu_mhz"`
	Cores   int     `json:"cores"`
	Go      string  `json:"go"`
	Trafgen string  `json:"trafgen"`
	// XDPGen says why the XDP generator could not run ("": it ran).
	XDPGen   string `json:"xdp_generator_unavailable,omitempty"`
	Command  string `json:"command"`
	Duration string `json:"case_duration"`
}

type goal struct {
	Goal   string `json:"goal"`
	Met    bool   `json:"met"`
	Detail string `json:"detail"`
}

type report struct {
	Meta      meta           `json:"meta"`
	Results   []result       `json:"results"`
	Soak      *steady        `json:"soak,omitempty"`
	EVPN      *evpnResult    `json:"evpn,omitempty"`
	Anycast   *anycastResult `json:"anycast,omitempty"`
	Goals     []goal         `json:"goals"`
	Budget    []budget       `json:"budget,omitempty"`
	Micro     string         `json:"microbenchmarks"`
	Benchstat string         `json:"benchstat,omitempty"`
	Previous  string         `json:"previous,omitempty"` // the run compared with
	Deltas    string         `json:"deltas,omitempty"`
	Profile   string         `json:"pprof_top,omitempty"`
	Perf      string         `json:"perf_top,omitempty"`
}

func (r *report) find(c caseSpec) *result {
	for i := range r.Results {
		if x := &r.Results[i]; x.caseSpec == c && x.Error == "" {
			return x
		}
	}
	return nil
}

func ratio(a, b *result) string {
	if a == nil || b == nil || b.FPS < 1 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a.FPS/b.FPS)
}

func kfps(r *result) string {
	if r == nil {
		return "–"
	}
	if r.FPS < 1 {
		return "0"
	}
	return fmt.Sprintf("%.0f", r.FPS/1000)
}

func ns(v float64) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", v)
}

// evaluate checks the goals against the results.
func (r *report) evaluate() {
	shared := func(dut string, size int, dir string) *result {
		return r.find(caseSpec{DUT: dut, Gen: genXDP, Layout: layoutShared, Size: size, Direction: dir})
	}
	cmp := func(size int, base string, want float64, title string) {
		worst, details := 1e18, []string{}
		for _, pw := range pseudowires {
			for _, dir := range []string{dirEncap, dirDecap} {
				a, b := shared(pw, size, dir), shared(base, size, dir)
				if a == nil || b == nil || b.FPS < 1 {
					continue
				}
				worst = min(worst, a.FPS/b.FPS)
				details = append(details, fmt.Sprintf("%s %s %.2f×", pw, dir, a.FPS/b.FPS))
			}
		}
		if len(details) > 0 {
			r.Goals = append(r.Goals, goal{title, worst >= want, strings.Join(details, ", ")})
		}
	}
	cmp(64, dutBridge, 1.0, "XDP generator: ≥ 1.0× the kernel bridge's frames/s at 64 bytes, both directions, eth and ip6")
	cmp(64, dutVXLAN, 1.5, "XDP generator: ≥ 1.5× kernel VXLAN+bridge at 64 bytes, both directions, eth and ip6")
	cmp(1514, dutBridge, 0.5, "XDP generator: 1514-byte frames (two uplink frames each) at ≥ 0.5× the bridge's frame rate")
	var cpu []string
	worst := 0.0
	for _, pw := range pseudowires {
		for _, dir := range []string{dirEncap, dirDecap} {
			if x := shared(pw, 64, dir); x != nil {
				worst = max(worst, x.Split.Pwgated())
				cpu = append(cpu, fmt.Sprintf("%s %s %.0f ns, %.0f of it in the kernel (%.2f syscalls/frame)", pw, dir, x.Split.Pwgated(), x.Split.InKernel, x.Syscalls))
			}
		}
	}
	if len(cpu) > 0 {
		r.Goals = append(r.Goals, goal{"pwgated's own threads ≤ 400 ns of CPU per frame per direction at 64 bytes, system calls included",
			worst <= 400, strings.Join(cpu, ", ")})
	}
	if s := r.Soak; s != nil {
		others := float64(s.Allocs) // unknown: all of them count
		if s.Others >= 0 {
			others = float64(s.Others)
		}
		perFrame := others / max(1, s.FPS*s.Seconds)
		d := fmt.Sprintf("%d GC cycles in %.0f s at %.0f kframes/s; %.0f objects allocated outside the status queries that bracket and sample the run (%.1g per frame; pprof, every allocation sampled)",
			s.GCCycles, s.Seconds, s.FPS/1000, others, perFrame)
		if s.periodicGC() {
			d += fmt.Sprintf("; the GC was the runtime's periodic one (%d KiB allocated in the run, %d KiB short of the heap goal)", s.AllocBytes>>10, s.HeadroomBytes>>10)
		}
		if s.Error != "" {
			d += " (" + s.Error + ")"
		}
		r.Goals = append(r.Goals, goal{"0 GC cycles and 0 allocations per frame in a 60 s run", s.GCCycles == 0 && s.Others >= 0 && perFrame < 1e-4 && s.Error == "", d})
	}
	r.wgGoals()
	r.vxlanGoals()
	r.anycastGoals()
	r.Budget = budgets(r)
}

// vxlanGoals checks the VXLAN and EVPN goals.
func (r *report) vxlanGoals() {
	c := func(dut string, size int, dir string) *result {
		return r.find(caseSpec{DUT: dut, Gen: genXDP, Layout: layoutShared, Size: size, Direction: dir})
	}
	worst, details := 1e18, []string{}
	for _, dir := range []string{dirEncap, dirDecap} {
		a, b := c(dutPWVXLAN, 64, dir), c(dutVXLAN, 64, dir)
		if a == nil || b == nil || b.FPS < 1 {
			continue
		}
		worst = min(worst, a.FPS/b.FPS)
		details = append(details, fmt.Sprintf("%s %.2f×", dir, a.FPS/b.FPS))
	}
	if len(details) > 0 {
		r.Goals = append(r.Goals, goal{"pwgate-vxlan ≥ 1.5× kernel VXLAN+bridge at 64 bytes, both directions", worst >= 1.5, strings.Join(details, ", ")})
	}
	if f, u := c(dutPWVXLAN3, 64, dirEncap), c(dutPWVXLAN, 64, dirEncap); f != nil && u != nil && u.FPS > 0 {
		r.Goals = append(r.Goals, goal{"broadcast replicated to 3 VTEPs at ≥ 1/3 of the unicast frame rate (64 bytes)", f.FPS >= u.FPS/3,
			fmt.Sprintf("%.0f kframes/s flooded (%.0f k copies/s) against %.0f kframes/s to one VTEP: %.2f×", f.FPS/1000, 3*f.FPS/1000, u.FPS/1000, f.FPS/u.FPS)})
	}
	if e := r.EVPN; e != nil {
		if e.FRRInstall > 0 {
			r.Goals = append(r.Goals, goal{"10,000 MACs from FRR in pwgate's forwarding database within 5 s", e.FRRInstall <= 5,
				fmt.Sprintf("%d MACs in %.2f s, %s", e.FRRMACs, e.FRRInstall, e.InstallDetail)})
		}
		if c := e.Churn; c != nil && c.BaseFPS > 0 && c.ChurnEncapNS > 0 {
			onOwnCore := c.BaseEncapNS / c.ChurnEncapNS
			d := fmt.Sprintf("with %.0f moves/s the encap thread spends %.0f ns per frame against %.0f without: %.2f× the frame rate on a core of its own (the appliance's layout; this VM's two cores cannot give the control plane one, see the results file); "+
				"with everything on one core the control plane's %.0f µs per move take the rate from %.0f to %.0f kframes/s (%.2f×)",
				c.MovesPerSec, c.ChurnEncapNS, c.BaseEncapNS, onOwnCore, c.ControlPerMov, c.BaseFPS/1000, c.ChurnFPS/1000, c.ChurnFPS/c.BaseFPS)
			r.Goals = append(r.Goals, goal{"1,000 MAC moves/s cost ≤ 10 % of the data path's frames/s", onOwnCore >= 0.9 && c.MovesPerSec >= 900, d})
		}
		if c := e.Churn; c != nil && c.ARPFPS > 0 && c.BaseEncapNS > 0 {
			r.Goals = append(r.Goals, goal{"ARP suppression: answering an ARP request costs the encap thread no more than forwarding one frame", c.ARPEncapNS <= c.BaseEncapNS,
				fmt.Sprintf("%.0f ns per answered request (%.2f answers, %.2f VXLAN copies each) against %.0f ns per 64-byte frame forwarded to a known MAC; a request for an unknown address, flooded, %.0f ns and %.2f copies",
					c.ARPEncapNS, c.ARPAnswers, c.ARPCopies, c.BaseEncapNS, c.FloodEncapNS, c.FloodCopies)})
		}
		if e.Error != "" {
			r.Goals = append(r.Goals, goal{"EVPN control plane measured", false, e.Error})
		}
	}
}

// anycastGoals checks the anycast goals.
func (r *report) anycastGoals() {
	a := r.Anycast
	if a == nil {
		return
	}
	if a.Error != "" {
		r.Goals = append(r.Goals, goal{"anycast measured", false, a.Error})
	}
	for _, n := range []int{3, 8} {
		var pw, ecmp, res *remapRow
		for i := range a.Remap {
			x := &a.Remap[i]
			switch {
			case x.Servers != n:
			case strings.HasPrefix(x.Method, "pwgate Maglev table"):
				pw = x
			case strings.HasPrefix(x.Method, "kernel ECMP"):
				ecmp = x
			case strings.HasPrefix(x.Method, "kernel resilient"):
				res = x
			}
		}
		if pw == nil || ecmp == nil || res == nil {
			continue
		}
		bound := 1/float64(n) + 0.02
		r.Goals = append(r.Goals, goal{fmt.Sprintf("one of %d servers leaves: pwgate moves ≤ 1/%d + 2 %% of the flows (Maglev's bound)", n, n), pw.Moved <= bound,
			fmt.Sprintf("pwgate's table alone %.1f %% (bound %.1f %%; with its flow table only the leaving server's flows move), kernel ECMP %.1f %%, resilient nexthop group %.1f %%",
				100*pw.Moved, 100*bound, 100*ecmp.Moved, 100*res.Moved)})
	}
	if pw, k := r.find(caseSpec{DUT: dutAnycast, Gen: genXDP, Layout: layoutShared, Size: 64, Direction: dirEncap}),
		r.find(caseSpec{DUT: dutKernelRes, Gen: genXDP, Layout: layoutShared, Size: 64, Direction: dirEncap}); pw != nil && k != nil && k.FPS > 0 {
		r.Goals = append(r.Goals, goal{"the anycast forwarder ≥ 2× the kernel's forwarding (resilient nexthop group) at 64 bytes", pw.FPS >= 2*k.FPS,
			fmt.Sprintf("%s k/s at %s ns against %s k/s at %s ns: %.2f×", kfps(pw), cpuNS(pw), kfps(k), cpuNS(k), pw.FPS/k.FPS)})
	}
	if a.SYNFloodRate > 0 {
		r.Goals = append(r.Goals, goal{"a SYN flood from spoofed sources moves no established flow", a.SYNFloodKept == 1,
			fmt.Sprintf("%d SYNs (more than the flow table holds) at %.0f k/s: %.1f %% of %d established flows kept their server, one of 3 servers draining",
				synFloodSYNs, a.SYNFloodRate/1e3, 100*a.SYNFloodKept, synFlows)})
	}
	if a.CheckCPU > 0 {
		r.Goals = append(r.Goals, goal{"health checks of 100 VIPs × 3 servers every second cost < 2 % of one core", a.CheckCPU < 2,
			fmt.Sprintf("each server's announcer checks its %d VIPs (a service each, HTTP kept alive) for %.2f %% of one core; all %d checks in one announcer %.2f %%",
				checkVIPs, a.CheckCPU, checkVIPsAll, a.CheckCPUAll)})
	}
}

// anycastTable prints the remap measurements.
func (r *report) anycastTable() string {
	a := r.Anycast
	if a == nil || len(a.Remap) == 0 {
		return ""
	}
	var b strings.Builder
	for _, size := range []int{64, 1514} {
		c := func(dut string) *result {
			return r.find(caseSpec{DUT: dut, Gen: genXDP, Layout: layoutShared, Size: size, Direction: dirEncap})
		}
		if pw, k := c(dutAnycast), c(dutKernelRes); pw != nil && k != nil {
			if b.Len() == 0 {
				b.WriteString("| frame | kernel forwarding, resilient nexthop group | pwgate XDP forwarder | ratio |\n|---:|---:|---:|---:|\n")
			}
			fmt.Fprintf(&b, "| %d | %s k/s, %s ns | %s k/s, %s ns | %s |\n", size, kfps(k), cpuNS(k), kfps(pw), cpuNS(pw), ratio(pw, k))
		}
	}
	if b.Len() > 0 {
		b.WriteString("\n")
	}
	b.WriteString("| servers | method | flows moved | staying servers' flows moved |\n|---:|---|---:|---:|\n")
	for _, x := range a.Remap {
		fmt.Fprintf(&b, "| %d | %s | %.1f %% | %.1f %% |\n", x.Servers, x.Method, 100*x.Moved, 100*x.Disrupted)
	}
	if a.SYNFloodRate > 0 {
		fmt.Fprintf(&b, "\nSYN flood: %d SYNs from spoofed sources at %.0f k/s (BPF_PROG_RUN) left %.1f %% of %d established flows on their server, one of 3 servers draining.\n",
			synFloodSYNs, a.SYNFloodRate/1e3, 100*a.SYNFloodKept, synFlows)
	}
	if a.CheckCPU > 0 {
		fmt.Fprintf(&b, "\nHealth checks, one HTTP check a second per VIP: %d VIPs cost one announcer %.2f %% of one core, %d VIPs %.2f %%.\n", checkVIPs, a.CheckCPU, checkVIPsAll, a.CheckCPUAll)
	}
	return b.String()
}

// vxlanTable prints pwgate-vxlan against kernel VXLAN (XDP generator).
func (r *report) vxlanTable() string {
	var b strings.Builder
	b.WriteString("| frame | direction | kernel VXLAN + bridge | pwgate vxlan | ratio | pwgate, flooding to 3 VTEPs |\n|---:|---|---:|---:|---:|---:|\n")
	n := 0
	for _, size := range r.sizes() {
		for _, dir := range []string{dirEncap, dirDecap, dirBoth} {
			c := func(dut string) *result {
				return r.find(caseSpec{DUT: dut, Gen: genXDP, Layout: layoutShared, Size: size, Direction: dir})
			}
			vx, pw, fl := c(dutVXLAN), c(dutPWVXLAN), c(dutPWVXLAN3)
			if pw == nil && fl == nil {
				continue
			}
			n++
			cell := func(x *result) string {
				if x == nil {
					return "–"
				}
				return fmt.Sprintf("%s k/s, %s ns", kfps(x), cpuNS(x))
			}
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s |\n", size, dir, cell(vx), cell(pw), ratio(pw, vx), cell(fl))
		}
	}
	if e := r.EVPN; e != nil {
		if e.FRRMACs > 0 {
			fmt.Fprintf(&b, "\nEVPN: %d MACs from an FRR site in pwgate's forwarding database in %.2f s.", e.FRRMACs, e.FRRInstall)
		}
		if c := e.Churn; c != nil && c.BaseFPS > 0 {
			fmt.Fprintf(&b, " %.0f MAC moves/s over BGP while forwarding 64-byte frames to those MACs: the encap thread's CPU per frame %.0f ns against %.0f without; on one shared core %.0f against %.0f kframes/s (the control plane costs %.0f µs per move).",
				c.MovesPerSec, c.ChurnEncapNS, c.BaseEncapNS, c.ChurnFPS/1000, c.BaseFPS/1000, c.ControlPerMov)
		}
		if c := e.Churn; c != nil && c.ARPFPS > 0 {
			fmt.Fprintf(&b, "\n\nARP storm (64-byte requests from the LAN at the generator's rate, one shared core): for an address a MAC+IP route names, pwgate answers %.0f k requests/s (%.2f answers and %.2f VXLAN copies per request; the encap thread %.0f ns each); for an unknown address it floods them, %.0f k/s with %.2f copies each (%.0f ns); forwarding a 64-byte frame costs %.0f ns.",
				c.ARPFPS/1000, c.ARPAnswers, c.ARPCopies, c.ARPEncapNS, c.FloodFPS/1000, c.FloodCopies, c.FloodEncapNS, c.BaseEncapNS)
		}
		b.WriteString("\n")
	}
	if n == 0 {
		return ""
	}
	return b.String()
}

// fullCore is the DUT core's utilisation above which a case measured
// the DUT's speed, not its generator's.
const fullCore = 0.9

// decapSpeed is decap's speed over encap's: their frames/s when both
// filled the DUT core; otherwise the generator, not the DUT, set one of
// them (the WireGuard far end does the same work as the DUT, on one
// core), and the speed is what a full core would carry, from CPU per
// frame (which idle polling inflates: the ratio is, if anything, low).
func decapSpeed(e, d *result) (float64, string) {
	if e.CoreUse >= fullCore && d.CoreUse >= fullCore || e.CPUPerFrame == 0 || d.CPUPerFrame == 0 {
		return d.FPS / e.FPS, ""
	}
	return e.CPUPerFrame / d.CPUPerFrame, fmt.Sprintf(" by CPU per frame (%.0f against %.0f ns; DUT core %.0f%% and %.0f%% busy)", d.CPUPerFrame, e.CPUPerFrame, 100*d.CoreUse, 100*e.CoreUse)
}

// wgGoals checks the WireGuard goals.
func (r *report) wgGoals() {
	c := func(dut string, size int, dir string) *result {
		return r.find(caseSpec{DUT: dut, Gen: genXDP, Layout: layoutShared, Size: size, Direction: dir})
	}
	for _, dut := range []string{dutPWWG, dutPWWGXDP} {
		worst, details := 1e18, []string{}
		for _, size := range []int{64, 512} {
			for _, dir := range []string{dirEncap, dirDecap} {
				a, b := c(dut, size, dir), c(dutStockWG, size, dir)
				if a == nil || b == nil || b.FPS < 1 {
					continue
				}
				worst = min(worst, a.FPS/b.FPS)
				details = append(details, fmt.Sprintf("%d %s %.2f×", size, dir, a.FPS/b.FPS))
			}
		}
		if len(details) > 0 {
			r.Goals = append(r.Goals, goal{dut + " ≥ 1.3× the frames/s of a bridge and kernel VXLAN over stock wireguard-go, at 64 and 512 bytes", worst >= 1.3, strings.Join(details, ", ")})
		}
		// 1514-byte frames: the DUT's CPU per frame against the plain
		// pseudowire's.
		met, details := true, []string{}
		for _, dir := range []string{dirEncap, dirDecap} {
			w, p := c(dut, 1514, dir), c(dutPWIP6, 1514, dir)
			if w == nil || p == nil || p.CPUPerFrame == 0 || w.CPUPerFrame == 0 {
				continue
			}
			met = met && w.CPUPerFrame <= 2*p.CPUPerFrame
			details = append(details, fmt.Sprintf("%s %.0f ns against %.0f: %.2f×", dir, w.CPUPerFrame, p.CPUPerFrame, w.CPUPerFrame/p.CPUPerFrame))
		}
		if len(details) > 0 {
			r.Goals = append(r.Goals, goal{dut + ": 1514-byte frames cost the DUT core ≤ 2× the plain pwgate-ip6's CPU per frame, both directions", met, strings.Join(details, ", ")})
		}
		// Decap no slower than encap, within 20 %, at every size.
		met, details = true, nil
		for _, size := range wgSizes {
			e, d := c(dut, size, dirEncap), c(dut, size, dirDecap)
			if e == nil || d == nil || e.FPS < 1 {
				continue
			}
			ratio, why := decapSpeed(e, d)
			met = met && ratio >= 0.8
			if ratio < 0.8 && e.Split.Pwgated() > 0 && d.Split.Pwgated() > 0 {
				// Where decap's extra time is: pwgated's own, or the kernel's.
				why += fmt.Sprintf(" (pwgated's threads %.0f against %.0f ns per frame)", d.Split.Pwgated(), e.Split.Pwgated())
			}
			// The plain pseudowire's ratio in the same run, where it has
			// the size: what the lab's decap costs without encryption.
			if pe, pd := c(dutPWIP6, size, dirEncap), c(dutPWIP6, size, dirDecap); pe != nil && pd != nil && pe.FPS >= 1 {
				plain, _ := decapSpeed(pe, pd)
				why += fmt.Sprintf(" (plain pwgate-ip6 %.2f×)", plain)
			}
			details = append(details, fmt.Sprintf("%d: %.2f×%s", size, ratio, why))
		}
		if len(details) > 0 {
			r.Goals = append(r.Goals, goal{dut + ": decap ≥ 0.8× encap's speed at every size (frames/s; by CPU per frame where a direction left the DUT core idle; the plain pseudowire's ratio beside it)", met, strings.Join(details, ", ")})
		}
	}
	pair := microMetric(r.Micro, "BenchmarkWireGuardPair/64", "cpu-ns/pkt")
	if pair > 0 {
		oneSide := pair / 2
		met, details := true, []string{}
		for _, dir := range []string{dirEncap, dirDecap} {
			w, p := c(dutPWWG, 64, dir), c(dutPWIP6, 64, dir)
			if w == nil || p == nil {
				continue
			}
			met = met && w.CPUPerFrame <= p.CPUPerFrame+oneSide
			details = append(details, fmt.Sprintf("%s %.0f ns ≤ %.0f + %.0f?", dir, w.CPUPerFrame, p.CPUPerFrame, oneSide))
		}
		if len(details) > 0 {
			r.Goals = append(r.Goals, goal{fmt.Sprintf("the encrypted pseudowire's DUT CPU per frame ≤ plain pwgate-ip6's + wireguard-go's own per packet (%.0f ns: half of BenchmarkWireGuardPair/64's %.0f cpu-ns/pkt for two devices)", oneSide, pair),
				met, strings.Join(details, ", ")})
		}
	}
	if allocs, ok := microAllocs(r.Micro, "BenchmarkTunnel/"); ok {
		r.Goals = append(r.Goals, goal{"zero allocations per packet on pwgate's side of wireguard-go's tun.Device (BenchmarkTunnel)", allocs == 0,
			fmt.Sprintf("%.0f allocs/op at most", allocs)})
	}
}

// microMetric returns the median of a benchmark's custom metric in the
// microbenchmarks' output.
func microMetric(out, bench, unit string) float64 {
	var vs []float64
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		// The name, less the -GOMAXPROCS suffix go test adds when it is
		// not 1.
		if len(f) == 0 || f[0] != bench && !strings.HasPrefix(f[0], bench+"-") {
			continue
		}
		for i := 1; i < len(f); i++ {
			if f[i] == unit {
				var v float64
				fmt.Sscan(f[i-1], &v)
				vs = append(vs, v)
			}
		}
	}
	if len(vs) == 0 {
		return 0
	}
	slices.Sort(vs)
	return vs[len(vs)/2]
}

// microAllocs returns the most allocs/op of the benchmarks starting with
// bench.
func microAllocs(out, bench string) (float64, bool) {
	worst, seen := 0.0, false
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, bench) {
			continue
		}
		f := strings.Fields(line)
		for i := 1; i < len(f); i++ {
			if f[i] == "allocs/op" {
				var v float64
				fmt.Sscan(f[i-1], &v)
				worst, seen = max(worst, v), true
			}
		}
	}
	return worst, seen
}

// wgTable prints the WireGuard cases.
func (r *report) wgTable() string {
	var b strings.Builder
	b.WriteString("| frame | direction | bridge + VXLAN over wireguard-go | pwgate ip6 + WireGuard, kernel socket | ratio | pwgate ip6 + WireGuard, XDP bind | ratio | pwgate ip6 without encryption |\n|---:|---|---:|---:|---:|---:|---:|---:|\n")
	n := 0
	for _, size := range wgSizes {
		for _, dir := range []string{dirEncap, dirDecap} {
			c := func(dut string) *result {
				for i := range r.Results {
					if x := &r.Results[i]; x.caseSpec == (caseSpec{DUT: dut, Gen: genXDP, Layout: layoutShared, Size: size, Direction: dir}) {
						return x
					}
				}
				return nil
			}
			st, pw, xdp, plain := c(dutStockWG), c(dutPWWG), c(dutPWWGXDP), c(dutPWIP6)
			if st == nil && pw == nil && xdp == nil {
				continue
			}
			n++
			cell := func(x *result) string {
				switch {
				case x == nil:
					return "–"
				case x.Error != "":
					return "cannot carry it (host MTU would have to drop to 1350)"
				}
				return fmt.Sprintf("%s k/s, %s ns", kfps(x), ns(x.CPUPerFrame))
			}
			rt := func(x *result) string {
				if st != nil && st.Error == "" && x != nil {
					return ratio(x, st)
				}
				return "–"
			}
			fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s | %s |\n", size, dir, cell(st), cell(pw), rt(pw), cell(xdp), rt(xdp), cell(plain))
		}
	}
	if n == 0 {
		return ""
	}
	return b.String()
}

// table prints delivered kframes/s and the DUT's CPU per frame for one
// generator and the shared layout, with ratios to the bridge (br) and to
// kernel VXLAN (vx).
func (r *report) table(gen string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| frame | direction | bridge | kernel VXLAN | pwgate eth | pwgate ip6 |\n|---:|---|---:|---:|---:|---:|\n")
	for _, size := range r.sizes() {
		for _, dir := range []string{dirEncap, dirDecap, dirBoth} {
			c := func(dut string) *result {
				return r.find(caseSpec{DUT: dut, Gen: gen, Layout: layoutShared, Size: size, Direction: dir})
			}
			br, vx := c(dutBridge), c(dutVXLAN)
			if br == nil && vx == nil {
				continue
			}
			fmt.Fprintf(&b, "| %d | %s | %s k/s, %s ns | %s k/s, %s ns |", size, dir, kfps(br), cpuNS(br), kfps(vx), cpuNS(vx))
			for _, pw := range pseudowires {
				x := c(pw)
				fmt.Fprintf(&b, " %s k/s, %s ns (%s br, %s vx) |", kfps(x), cpuNS(x), ratio(x, br), ratio(x, vx))
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

func cpuNS(x *result) string {
	if x == nil {
		return "–"
	}
	return ns(x.CPUPerFrame)
}

// owners prints the DUT's CPU per frame by owner (XDP generator, shared
// layout).
func (r *report) owners(sizes ...int) string {
	var b strings.Builder
	b.WriteString("| DUT | frame | direction | pwgated encap | pwgated decap | pwgated other | of pwgated's: in the kernel | veth NAPI | softirq | other | DUT core | pwgated syscalls/frame |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, dut := range append([]string{dutBridge, dutVXLAN}, pseudowires...) {
		for _, size := range sizes {
			for _, dir := range []string{dirEncap, dirDecap} {
				x := r.find(caseSpec{DUT: dut, Gen: genXDP, Layout: layoutShared, Size: size, Direction: dir})
				if x == nil {
					continue
				}
				s := x.Split
				sc := "–"
				if x.Syscalls > 0 {
					sc = fmt.Sprintf("%.3f", x.Syscalls)
				}
				kernel := "–"
				if s.Pwgated() > 0 {
					kernel = ns(s.InKernel)
				}
				fmt.Fprintf(&b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", dut, size, dir,
					ns(s.Encap), ns(s.Decap), ns(s.Main), kernel, ns(s.NAPI), ns(s.Softirq), ns(s.Other), ns(x.CPUPerFrame), sc)
			}
		}
	}
	return b.String()
}

// busy prints the busy-polling runs next to the shared-core ones.
func (r *report) busy() string {
	var b strings.Builder
	b.WriteString("| DUT | frame | direction | busy, own cores | adaptive, one core | ratio |\n|---|---:|---|---:|---:|---:|\n")
	for _, dut := range pseudowires {
		for _, size := range r.sizes() {
			for _, dir := range []string{dirEncap, dirDecap} {
				bz := r.find(caseSpec{DUT: dut, Gen: genXDP, Layout: layoutBusy, Size: size, Direction: dir})
				if bz == nil {
					continue
				}
				sh := r.find(caseSpec{DUT: dut, Gen: genXDP, Layout: layoutShared, Size: size, Direction: dir})
				fmt.Fprintf(&b, "| %s | %d | %s | %s k/s | %s k/s | %s |\n", dut, size, dir, kfps(bz), kfps(sh), ratio(bz, sh))
			}
		}
	}
	return b.String()
}

func (r *report) sizes() []int {
	seen := map[int]bool{}
	var out []int
	for _, x := range r.Results {
		if !seen[x.Size] {
			seen[x.Size] = true
			out = append(out, x.Size)
		}
	}
	return out
}

func (r *report) goals() string {
	var b strings.Builder
	for _, g := range r.Goals {
		mark := "missed"
		if g.Met {
			mark = "met"
		}
		fmt.Fprintf(&b, "- **%s**: %s — %s\n", mark, g.Goal, g.Detail)
	}
	return b.String()
}

// summary is what bench/README.md quotes.
func (r *report) summary() string {
	var b strings.Builder
	b.WriteString("**XDP generator** (frames reach the device as xdp_frames, as from a NIC driver): delivered frames/s and the device core's CPU per frame; ratios to the bridge (br) and kernel VXLAN (vx).\n\n")
	b.WriteString(r.table(genXDP))
	b.WriteString("\n**Where a 64-byte frame's CPU goes** (XDP generator; ns per frame):\n\n")
	b.WriteString(r.owners(64))
	if busy := r.busy(); strings.Count(busy, "\n") > 2 {
		b.WriteString("\n**Busy polling on own cores** (encap on core 1, decap on core 0, each generator on the other direction's core):\n\n")
		b.WriteString(busy)
	}
	if len(r.Budget) > 0 {
		b.WriteString("\n**Line-rate budget for the appliances** (one core per direction; assumptions in the results file):\n\n")
		b.WriteString(budgetTable(r.Budget))
	}
	if vx := r.vxlanTable(); vx != "" {
		b.WriteString("\n**VXLAN**: pwgate as a VTEP (static remote, IPv6 underlay, zero UDP checksums as the kernel device is set) against a bridge and the kernel's VXLAN device (XDP generator; delivered frames/s and the DUT core's CPU per frame; flooded frames count once):\n\n")
		b.WriteString(vx)
	}
	if ac := r.anycastTable(); ac != "" {
		b.WriteString("\n**Anycast**: VIP traffic (UDP, the source port varied over the generator's flows) from the clients' port to three servers' next hops, through pwgate's XDP forwarder and through the kernel's forwarding with a resilient nexthop group (XDP generator; delivered frames/s and the DUT core's CPU per frame); then the existing flows that change server when one of N servers leaves (" + fmt.Sprint(remapFlows) + " TCP flows, each server leaving in turn; pwgate's program by BPF_PROG_RUN, the kernel by ip route get):\n\n")
		b.WriteString(ac)
	}
	if wg := r.wgTable(); wg != "" {
		b.WriteString("\n**The pseudowire inside WireGuard** against a bridge and kernel VXLAN over a stock wireguard-go tunnel (XDP generator into the LAN port; the decap direction's far end encrypts with stock wireguard-go on the generator core; delivered frames/s and the DUT core's CPU per frame):\n\n")
		b.WriteString(wg)
	}
	b.WriteString("\n**trafgen** (socket buffers through veth: the second generator, never mixed into the ratios above):\n\n")
	b.WriteString(r.table(genTrafgen))
	return b.String()
}

func (r *report) markdown() string {
	var b strings.Builder
	m := r.Meta
	fmt.Fprintf(&b, "# pwgate benchmark, %s\n\n", m.Date)
	fmt.Fprintf(&b, "`%s` at commit %s; kernel %s; %s at %.0f MHz (%d cores); %s; %s; %s per case.\n\n", m.Command, m.Commit, m.Kernel, m.CPU, m.MHz, m.Cores, m.Go, m.Trafgen, m.Duration)
	if m.XDPGen != "" {
		fmt.Fprintf(&b, "**%s.** The tables below that name the XDP generator hold trafgen's figures (socket buffers through a qdisc: more of the DUT core goes to the kernel); compare them with each other, not with a run that had the XDP generator.\n\n", m.XDPGen)
	}
	b.WriteString(method)
	b.WriteString("\n## Summary\n\n")
	b.WriteString(r.summary())
	b.WriteString("\n## Goals\n\n")
	b.WriteString(r.goals())
	if len(r.Budget) > 0 {
		b.WriteString("\n## Line-rate budget\n\n")
		b.WriteString(budgetMethod)
		b.WriteString("\n")
		b.WriteString(budgetTable(r.Budget))
		b.WriteString("\n")
		b.WriteString(budgetVerdict(r.Budget))
	}
	b.WriteString("\n## CPU per frame by owner, every size (XDP generator, shared core)\n\n")
	b.WriteString(r.owners(r.sizes()...))
	b.WriteString("\n## Every case\n\n| DUT | generator | layout | frame | direction | offered kfps | delivered kfps | loss | DUT core busy | DUT ns/frame | pwgated ns/frame | syscalls/frame | note |\n|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, x := range r.Results {
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %s | %.0f | %.0f | %.1f%% | %.0f%% | %s | %s | %.3f | %s |\n", x.DUT, x.Gen, x.Layout, x.Size, x.Direction,
			x.OfferedFPS/1000, x.FPS/1000, 100*x.Loss, 100*x.CoreUse, ns(x.CPUPerFrame), ns(x.Split.Pwgated()), x.Syscalls, x.Error)
	}
	if s := r.Soak; s != nil {
		fmt.Fprintf(&b, "\n## Steady load\n\npwgate eth, 64-byte frames both ways from the XDP generator for %.0f s, on a topology of its own (pwgated without the CPU profiler, every allocation sampled): %.0f kframes/s delivered, %.1f%% loss, %d GC cycles; pprof finds %d objects allocated outside the status queries that bracket and sample the run (the runtime's own counter, flushed only as spans fill, says %d objects, %d bytes, in all). The run starts after a collection (taking the first allocation profile), so the runtime's periodic one, two minutes later, is not in it; the heap was %d KiB short of the goal that starts one.\n",
			s.Seconds, s.FPS/1000, 100*s.Loss, s.GCCycles, s.Others, s.Allocs, s.AllocBytes, s.HeadroomBytes>>10)
		if s.Sites != "" {
			fmt.Fprintf(&b, "\nWhat allocated in it outside the status socket's server (pprof, the profile at its end less the one at its start; pwgated ran with GODEBUG=memprofilerate=1, so that every allocation is in them):\n\n```\n%s```\n", s.Sites)
		}
	}
	if r.Deltas != "" {
		fmt.Fprintf(&b, "\n## Compared with the previous run (%s)\n\nDelivered frames/s, this run against the previous, for the cases both have:\n\n%s", r.Previous, r.Deltas)
	}
	if r.Perf != "" {
		fmt.Fprintf(&b, "\n## Where the DUT core's time goes (perf, pwgate eth, 64 bytes both ways, XDP generator)\n\n```\n%s```\n", r.Perf)
	}
	if r.Profile != "" {
		fmt.Fprintf(&b, "\n## pwgated's own CPU profile (pprof -top, every eth case)\n\n```\n%s```\n", r.Profile)
	}
	fmt.Fprintf(&b, "\n## Microbenchmarks\n\n```\n%s```\n", r.Micro)
	if r.Benchstat != "" {
		fmt.Fprintf(&b, "\nCompared with the previous run (benchstat):\n\n```\n%s```\n", r.Benchstat)
	}
	return b.String()
}

const method = `## Method

Each device under test (DUT) sits in a namespace between two others, lan
and wan, joined by veth pairs: lan ── dl0 [DUT] ul0 ── wan (wan MTU 1500,
lan 1600). Two generators, reported apart and never mixed in one ratio:

- **xdpgen** (bench/xdpgen): an XDP program run with BPF_PROG_RUN in
  live-frames mode on the sending veth end; XDP_TX hands each frame to the
  DUT's end as an xdp_frame, as a NIC driver hands XDP its receive pages.
  Frames are spread over 1024 flows (the inner source MAC varies). The
  DUT's veth must accept xdp_frames: pwgated's ports have its XDP program;
  the bridge and VXLAN baselines' ports have GRO on, so that veth runs NAPI
  for them (without either, veth drops xdp_frames).
- **trafgen** (netsniff-ng): socket buffers through a qdisc, which veth
  copies into pages before XDP sees them.

An XDP program at the receiving end counts and drops what arrives. Baselines
on the same topology: a Linux bridge of dl0 and ul0 (the software wire),
and a bridge of dl0 and a kernel VXLAN device over IPv6 on ul0. A frame
split in two pieces counts once.

**Shared layout** (the main tables): the DUT owns core 1: its veth NAPI
threads and pwgated (adaptive polling, main/encap/decap all on core 1) run
there and nothing else does; generators, sinks and this program run on
core 0, the sinks' NAPI threads at nice -20 so that the generators never
starve them (they stand for the wire). DUT CPU per frame is core 1's busy
time from /proc/stat divided by the frames delivered; by owner, from each thread's own CPU time in /proc:
pwgated's encap and decap threads, its other threads, the DUT ports' NAPI
threads (veth's receive path: the XDP program and, in copy mode, the copy
into the UMEM), softirq time on core 1, and the rest; of pwgated's time,
the part spent in the kernel (its threads' system time: in copy mode the
TX kick builds a socket buffer per frame and sends it through veth, work
a zero-copy NIC driver leaves to DMA). System calls per
frame: perf's raw_syscalls:sys_enter tracepoint on pwgated. This VM has
no hardware counters (perf stat cycles: not supported), so cycles are
derived from CPU time and the core's clock.

**Busy layout**: pwgated polls busily with encap on core 1 and decap (and
main) on core 0, the best split two cores allow; the encap direction's
generator runs on core 0 and the decap direction's on core 1, each with
the other direction's (idle, spinning) goroutine, and each port's NAPI
thread with the goroutine that receives from it.
`

// write stores the report as JSON and markdown in dir; a full run is
// latest.md and latest.json too, compared with the previous latest.json,
// and its summary goes into bench/README.md between the bench markers (readme
// "" skips that).
func (r *report) write(dir, stamp string, full bool, readme string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if full {
		r.compare(filepath.Join(dir, "latest.json"))
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	md := r.markdown()
	files := map[string][]byte{stamp + ".json": j, stamp + ".md": []byte(md)}
	if full {
		files["latest.md"], files["latest.json"] = []byte(md), j
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	if readme == "" {
		return nil
	}
	old, err := os.ReadFile(readme)
	if err != nil {
		return err
	}
	const begin, end = "<!-- bench:begin -->\n", "<!-- bench:end -->"
	i, k := bytes.Index(old, []byte(begin)), bytes.Index(old, []byte(end))
	if i < 0 || k < i {
		return fmt.Errorf("%s has no %q … %q markers", readme, strings.TrimSpace(begin), end)
	}
	section := fmt.Sprintf("Measured %s with `%s` (commit %s, kernel %s, %s); full results in [results/latest.md](results/latest.md).\n\n%s\n%s",
		r.Meta.Date, r.Meta.Command, r.Meta.Commit, r.Meta.Kernel, r.Meta.CPU, r.summary(), r.goals())
	out := append(append(append([]byte{}, old[:i+len(begin)]...), section...), old[k:]...)
	return os.WriteFile(readme, out, 0o644)
}

// compare fills r.Deltas with the change in delivered frames/s of each
// case the previous run (prev, a report's JSON) also measured.
func (r *report) compare(prev string) {
	b, err := os.ReadFile(prev)
	if err != nil {
		return
	}
	var p report
	if json.Unmarshal(b, &p) != nil {
		return
	}
	var out strings.Builder
	out.WriteString("| DUT | generator | layout | frame | direction | previous kfps | now kfps | Δ |\n|---|---|---|---:|---|---:|---:|---:|\n")
	n := 0
	for _, x := range r.Results {
		q := p.find(x.caseSpec)
		if q == nil || x.Error != "" || q.FPS < 1 {
			continue
		}
		n++
		fmt.Fprintf(&out, "| %s | %s | %s | %d | %s | %.0f | %.0f | %+.1f%% |\n", x.DUT, x.Gen, x.Layout, x.Size, x.Direction,
			q.FPS/1000, x.FPS/1000, 100*(x.FPS/q.FPS-1))
	}
	if n > 0 {
		r.Previous = fmt.Sprintf("%s, commit %s", p.Meta.Date, p.Meta.Commit)
		r.Deltas = out.String()
	}
}
