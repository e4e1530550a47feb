// Command pwbench is make bench: it measures pwgate and two kernel
// baselines (a Linux bridge, and VXLAN over IPv6 bridged) on the same
// namespace topology, with two generators reported apart: xdpgen (frames
// arrive as xdp_frames, as a NIC driver delivers them) and trafgen (socket
// buffers). It splits the device's CPU per frame by owner, runs pwgated
// busy-polling on its own cores beside the shared-core runs, derives a
// line-rate budget for the appliances' Celerons, and writes the results
// to bench/results (markdown and JSON, compared with the previous run) and
// the summary into bench/README.md.
//
//	pwbench [--quick] [--duration 3s] [--soak 60s] [--out bench/results] [--readme bench/README.md]
//	pwbench --against DIR [--rounds 3] [--duration 3s]   (before/after: ab.go)
//
// It needs root, two cores or more, trafgen, perf, and pwgated in --bin. It
// leaves no namespace or process behind, and restores the socket buffer
// limits it raises.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/bench/xdpgen"
	"github.com/pwgate/pwgate/dataplane"
)

// vxlanSizes are the VXLAN rows' frame sizes (1400: the largest round
// size VXLAN over IPv6 carries in a 1500-byte underlay).
var vxlanSizes = []int{64, 512}

// wholeSize is the largest frame carried whole in both modes at MTU 1500
// (1514 - 56): the unfragmented reference for the 1600-byte case.
const wholeSize = 1458

func sizes(quick bool) []int {
	if quick {
		return []int{64, 1514}
	}
	return []int{64, 512, wholeSize, 1514, 1600}
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "bgp-churn" {
		if err := runChurn(os.Args[2:]); err != nil {
			fmt.Fprintf(os.Stderr, "pwbench bgp-churn: %v\n", err)
			os.Exit(1)
		}
		return
	}
	quick := flag.Bool("quick", false, "a one-minute subset: 64 and 1514 bytes, encap direction, no steady-load run")
	dur := flag.Duration("duration", 0, "measurement time per case (default 3s, 2s with --quick)")
	soak := flag.Duration("soak", 60*time.Second, "steady-load run of pwgate (eth, 64 bytes both ways) for the GC check; 0 skips it (the default with --quick and --only)")
	out := flag.String("out", "bench/results", "results directory")
	bin := flag.String("bin", "bin", "directory holding pwgated")
	readme := flag.String("readme", "bench/README.md", "file whose bench section gets the summary; empty: none")
	against := flag.String("against", "", "directory holding another build's pwgated: measure pwgate's cases with both, alternately, and report before (it) and after (--bin) (make bench-ab)")
	rounds := flag.Int("rounds", 5, "with --against: how many times each build measures each case")
	flag.BoolVar(&perfCases, "perf", false, "record the DUT core with perf during each case (which then lasts 8 s at least) and print its hottest threads and symbols")
	only := flag.String("only", "", "comma-separated devices to measure (such as pwgate-vxlan,vxlan; evpn: the EVPN control plane); the results go to a file of their own, not latest nor bench/README.md. With --against: pwgated's devices to compare (default pwgate-eth,pwgate-ip6)")
	flag.Parse()
	if *dur == 0 {
		*dur = 3 * time.Second
		if *quick {
			*dur = 2 * time.Second
		}
	}
	if perfCases {
		*dur = max(*dur, 8*time.Second) // perfTop: 2 s settling, 5 s recording
	}
	soakSet := false
	flag.Visit(func(f *flag.Flag) { soakSet = soakSet || f.Name == "soak" })
	if *quick || *only != "" && !soakSet {
		*soak = 0
	}
	if *only != "" {
		*readme = ""
	}
	var err error
	if *against != "" {
		err = runAB(*rounds, *only, *dur, *out, *bin, *against)
	} else {
		err = run(*quick, *only, *dur, *soak, *out, *bin, *readme)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pwbench: %v\n", err)
		lab.Teardown(prefix)
		os.Exit(1)
	}
}

func preflight(bin string) error {
	if os.Geteuid() != 0 {
		return errors.New("must run as root: it builds network namespaces and attaches XDP programs")
	}
	if runtime.NumCPU() < 2 {
		return errors.New("needs two cores: one for the device under test, one for the generators")
	}
	for prog, pkg := range map[string]string{"trafgen": "netsniff-ng", "wireguard-go": "wireguard-go", "wg": "wireguard-tools", "perf": "linux-perf"} {
		if _, err := exec.LookPath(prog); err != nil {
			return fmt.Errorf("%s not found (Debian package %s)", prog, pkg)
		}
	}
	if err := xdpgen.Supported(); err != nil && xdpUnavailable == nil {
		// Some kernels refuse it to root without CAP_SYS_RESOURCE (a VM
		// whose bounding set lacks it): trafgen stands in, and the
		// report says so.
		xdpUnavailable = fmt.Errorf("the XDP generator cannot run here (%w); its cases were sent with trafgen", err)
		fmt.Println(xdpUnavailable)
	}
	if _, err := os.Stat(filepath.Join(bin, "pwgated")); err != nil {
		return fmt.Errorf("pwgated not built in %s: %w", bin, err)
	}
	return nil
}

// raiseSocketBuffers lets trafgen keep frames in flight to another core
// (net.core.wmem_max is not per namespace); it returns the undo.
func raiseSocketBuffers() func() {
	keys := []string{"wmem_max", "wmem_default"}
	old := map[string][]byte{}
	for _, k := range keys {
		p := "/proc/sys/net/core/" + k
		if v, err := os.ReadFile(p); err == nil {
			old[p] = v
			os.WriteFile(p, []byte("67108864"), 0)
		}
	}
	return func() {
		for p, v := range old {
			os.WriteFile(p, v, 0)
		}
	}
}

// suite is a set of cases measured the same way.
type suite struct {
	gen, layout string
	duts        []string
	sizes       []int
	dirs        []string
}

// perfCases is --perf.
var perfCases bool

// xdpUnavailable says why the XDP generator cannot run on this machine
// (nil: it can): its cases are then sent with trafgen (traffic.go) and the
// trafgen suites, which would repeat them, are left out.
var xdpUnavailable error

func suites(quick bool) []suite {
	all := allSuites(quick)
	if xdpUnavailable != nil {
		all = slices.DeleteFunc(all, func(s suite) bool { return s.gen == genTrafgen })
	}
	return all
}

func allSuites(quick bool) []suite {
	all := append([]string{dutBridge, dutVXLAN}, pseudowires...)
	pw := pseudowires
	dirs := []string{dirEncap, dirDecap, dirBoth}
	vx := []string{dutVXLAN, dutPWVXLAN}
	if quick {
		return []suite{
			{genXDP, layoutShared, all, []int{64, 1514}, []string{dirEncap, dirDecap}},
			{genTrafgen, layoutShared, all, []int{64}, []string{dirEncap}},
			{genXDP, layoutShared, []string{dutPWVXLAN}, []int{64}, []string{dirEncap, dirDecap}},
		}
	}
	return []suite{
		{genXDP, layoutShared, all, sizes(false), dirs},
		{genXDP, layoutShared, vx[1:], vxlanSizes, dirs}, // the kernel's VXLAN rows come with "all", at vxlanSizes too
		{genXDP, layoutShared, vx, []int{1400}, dirs},
		{genXDP, layoutShared, []string{dutPWVXLAN3}, []int{64, 512}, []string{dirEncap}},
		// trafgen, the second generator: the smallest and the split size.
		{genTrafgen, layoutShared, all, []int{64, 1514}, []string{dirEncap, dirDecap}},
		{genXDP, layoutBusy, pw, []int{64, 1514}, []string{dirEncap, dirDecap}},
		{genXDP, layoutShared, []string{dutPWWG, dutPWWGXDP, dutStockWG}, wgSizes, []string{dirEncap, dirDecap}},
		{genXDP, layoutShared, []string{dutKernelRes, dutAnycast}, []int{64, 1514}, []string{dirEncap}},
	}
}

// prepare checks the machine and the builds in bins, clears a previous
// run's namespaces, keeps this program (a generator-side process) off
// the DUT core, raises the socket buffers and makes a scratch directory;
// done removes it and restores the buffers.
func prepare(bins ...string) (dir string, done func(), err error) {
	for _, b := range bins {
		if err := preflight(b); err != nil {
			return "", nil, err
		}
	}
	if err := lab.Teardown(prefix); err != nil {
		return "", nil, err
	}
	if err := dataplane.PinProcess(genCore); err != nil {
		return "", nil, err
	}
	restore := raiseSocketBuffers()
	if dir, err = os.MkdirTemp("", "pwbench"); err != nil {
		restore()
		return "", nil, err
	}
	return dir, func() { os.RemoveAll(dir); restore() }, nil
}

func run(quick bool, only string, dur, soak time.Duration, out, bin, readme string) error {
	dir, done, err := prepare(bin)
	if err != nil {
		return err
	}
	defer done()
	cmd := "make bench"
	if quick {
		cmd = "make bench-quick"
	}
	want := func(dut string) bool { return only == "" || slices.Contains(strings.Split(only, ","), dut) }
	if only != "" {
		cmd += " (pwbench --only " + only + ")"
	}
	rep := &report{Meta: metadata(cmd, dur)}
	// One topology per (device, layout), every suite's cases on it.
	type key struct{ dut, layout string }
	var order []key
	cases := map[key][]caseSpec{}
	for _, su := range suites(quick) {
		for _, dut := range su.duts {
			if !want(dut) {
				continue
			}
			k := key{dut, su.layout}
			if _, ok := cases[k]; !ok {
				order = append(order, k)
			}
			for _, size := range su.sizes {
				for _, d := range su.dirs {
					cases[k] = append(cases[k], caseSpec{DUT: dut, Gen: su.gen, Layout: su.layout, Size: size, Direction: d})
				}
			}
		}
	}
	for _, k := range order {
		profile := ""
		if k.dut == dutPWEth && k.layout == layoutShared && !quick {
			profile = filepath.Join(dir, "pwgated.pprof")
		}
		t, err := build(k.dut, k.layout, filepath.Join(dir, k.dut+"-"+k.layout), bin, profile)
		if err != nil {
			return fmt.Errorf("%s (%s): %w", k.dut, k.layout, err)
		}
		for _, c := range cases[k] {
			var during func()
			prof, recording := make(chan string, 1), false
			if perfCases {
				during = func() { recording = true; go func() { prof <- perfTop(dir) }() }
			}
			r := t.run(c, dur, during)
			if recording {
				r.Perf = <-prof
			}
			fmt.Printf("%-11s %-7s %-6s %5d %-6s %8.0f kfps  loss %5.1f%%  pwgated %5.0f  NAPI %5.0f  DUT %6.0f ns/frame  %4.1f syscalls/frame %s\n",
				r.DUT, r.Gen, r.Layout, r.Size, r.Direction, r.FPS/1000, 100*r.Loss, r.Split.Pwgated(), r.Split.NAPI, r.CPUPerFrame, r.Syscalls, r.Error)
			if r.Perf != "" {
				fmt.Println(r.Perf)
			}
			rep.Results = append(rep.Results, r)
		}
		t.stopPwgated()
		t.close()
		if profile != "" {
			rep.Profile = pprofTop(filepath.Join(bin, "pwgated"), profile)
		}
	}
	if want(dutPWEth) && soak > 0 {
		if rep.Soak, err = steadyRun(filepath.Join(dir, "steady"), bin, soak, &rep.Perf); err != nil {
			return err
		}
	}
	if !quick && want("evpn") {
		fmt.Println("EVPN control plane: MAC churn over BGP, and FRR's MACs into the forwarding database")
		rep.EVPN = evpnBench(bin, filepath.Join(dir, "evpn"), dur)
	}
	if !quick && want("anycast") {
		fmt.Println("anycast: flows remapped when a server leaves (pwgate, kernel ECMP, resilient nexthops), health checks' CPU")
		rep.Anycast = anycastBench(bin, filepath.Join(dir, "anycast"))
	}
	if left, _ := lab.Leftovers(prefix); len(left) > 0 {
		return fmt.Errorf("namespaces left behind: %v", left)
	}
	if only == "" {
		fmt.Println("microbenchmarks")
		rep.Micro, rep.Benchstat = micro(quick, out)
	}
	rep.evaluate()
	stamp := time.Now().UTC().Format("20060102-150405")
	if quick {
		stamp += "-quick"
	}
	if only != "" {
		stamp += "-only"
	}
	if err := rep.write(out, stamp, !quick && only == "", readme); err != nil {
		return err
	}
	fmt.Printf("\n%s\n%s\nwritten to %s/%s.md\n", rep.summary(), rep.goals(), out, stamp)
	return nil
}

func metadata(cmd string, dur time.Duration) meta {
	m := meta{Date: time.Now().UTC().Format("2006-01-02 15:04 UTC"), Cores: runtime.NumCPU(), Go: runtime.Version(), Command: cmd, Duration: dur.String()}
	if b, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(l, ":")
			switch k = strings.TrimSpace(k); {
			case ok && k == "model name" && m.CPU == "":
				m.CPU = strings.TrimSpace(v)
			case ok && k == "cpu MHz" && m.MHz == 0:
				m.MHz, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
			}
		}
	}
	if b, err := exec.Command("trafgen", "--version").Output(); err == nil {
		m.Trafgen = strings.SplitN(strings.TrimSpace(string(b)), "\n", 2)[0]
	}
	if xdpUnavailable != nil {
		m.XDPGen = xdpUnavailable.Error()
	}
	return m
}

// perfTop records the DUT core for 5 s and returns its hottest symbols, or
// "" without perf.
func perfTop(dir string) string {
	if _, err := exec.LookPath("perf"); err != nil {
		return ""
	}
	data := filepath.Join(dir, "perf.data")
	time.Sleep(2 * time.Second)
	if err := exec.Command("perf", "record", "-q", "-g", "-o", data, "-F", "999", "-C", fmt.Sprint(dutCore), "--", "sleep", "5").Run(); err != nil {
		return ""
	}
	byThread, err := exec.Command("perf", "report", "-q", "-i", data, "--no-children", "--sort", "comm", "--stdio", "-g", "none").Output()
	if err != nil {
		return ""
	}
	bySym, err := exec.Command("perf", "report", "-q", "-i", data, "--no-children", "--sort", "comm,sym", "--stdio", "-g", "none", "--percent-limit", "0.8").Output()
	if err != nil {
		return ""
	}
	// With callees: what a system call or softirq costs in all (on veth,
	// the far end's receive runs on the sender's core, in the softirq its
	// transmit raised: veth_poll and what it calls).
	inclusive, err := exec.Command("perf", "report", "-q", "-i", data, "--children", "--sort", "sym", "--stdio", "-g", "none", "--percent-limit", "4").Output()
	if err != nil {
		return ""
	}
	return "by thread:\n" + firstLines(string(byThread), 10) + "\nby symbol:\n" + firstLines(string(bySym), 40) +
		"\nby symbol with its callees:\n" + firstLines(string(inclusive), 40)
}

func pprofTop(binary, profile string) string {
	b, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=20", binary, profile).CombinedOutput()
	if err != nil {
		return ""
	}
	return firstLines(string(b), 30)
}

// firstLines returns the first n non-blank lines of s.
func firstLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n") + "\n"
}

// benchstatCmd is pinned: the module proxy refuses some listings.
const benchstatCmd = "golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da"

// micro runs the data path's Go benchmarks, keeps their output in out, and
// compares them with the previous run's with benchstat.
func micro(quick bool, out string) (text, stat string) {
	count, benchtime := "6", "200000x"
	if quick {
		count, benchtime = "1", "20000x"
	}
	b, err := exec.Command("go", "test", "-run", "^$", "-bench", ".", "-benchmem", "-count", count, "-benchtime", benchtime,
		"./dataplane/...").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("go test -bench failed: %v\n%s", err, b), ""
	}
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Benchmark") || strings.HasPrefix(l, "goos") || strings.HasPrefix(l, "goarch") || strings.HasPrefix(l, "cpu") || strings.HasPrefix(l, "pkg") {
			keep = append(keep, l)
		}
	}
	text = strings.Join(keep, "\n") + "\n"
	prev := filepath.Join(out, "micro.txt")
	if old, err := os.ReadFile(prev); err == nil && !quick {
		tmp, _ := os.CreateTemp("", "micro-new")
		tmp.WriteString(text)
		tmp.Close()
		defer os.Remove(tmp.Name())
		oldF, _ := os.CreateTemp("", "micro-old")
		oldF.Write(old)
		oldF.Close()
		defer os.Remove(oldF.Name())
		if s, err := exec.Command("go", "run", benchstatCmd, oldF.Name(), tmp.Name()).CombinedOutput(); err == nil {
			stat = string(s)
		} else {
			stat = fmt.Sprintf("benchstat failed: %v\n%s", err, s)
		}
	}
	if !quick {
		os.MkdirAll(out, 0o755)
		os.WriteFile(prev, []byte(text), 0o644)
	}
	return text, stat
}
