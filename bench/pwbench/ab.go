package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
)

// An A/B run (pwbench --against DIR, make bench-ab BASE=commit) measures
// two builds of pwgated in one run on the same lab: this one (bin) and
// another (DIR), each case alternately with one and the other (A B B A
// …, so that a drift of the machine falls on both), and reports the
// median of each and their ratio. It is how a change to the data path is
// shown: before and after, from the same run.

// abDUTs are the devices of an A/B run: pwgate's two modes, or those
// only (comma-separated) names; each must run pwgated.
func abDUTs(only string) ([]string, error) {
	if only == "" {
		return pseudowires, nil
	}
	ours := append(slices.Clone(pseudowires), dutPWWG, dutPWWGXDP)
	var duts []string
	for _, d := range strings.Split(only, ",") {
		if !slices.Contains(ours, d) {
			return nil, fmt.Errorf("--only %q: an A/B run measures pwgated's devices: %s", d, strings.Join(ours, ", "))
		}
		if !slices.Contains(duts, d) {
			duts = append(duts, d)
		}
	}
	return duts, nil
}

// abCases are the cases of an A/B run: the devices on one shared core,
// fed by the XDP generator, at the smallest and the split size.
func abCases(duts []string) []caseSpec {
	var cs []caseSpec
	for _, dut := range duts {
		for _, size := range []int{64, 1514} {
			for _, d := range []string{dirEncap, dirDecap} {
				cs = append(cs, caseSpec{DUT: dut, Gen: genXDP, Layout: layoutShared, Size: size, Direction: d})
			}
		}
	}
	return cs
}

// abRow is one case of an A/B run: every round's result for each build.
type abRow struct {
	caseSpec
	After  []result `json:"after"`  // this build
	Before []result `json:"before"` // --against
}

type abReport struct {
	Meta    meta    `json:"meta"`
	After   string  `json:"after"`
	Before  string  `json:"before"`
	Rounds  int     `json:"rounds"`
	Results []abRow `json:"results"`
}

func runAB(rounds int, only string, dur time.Duration, out, bin, against string) error {
	duts, err := abDUTs(only)
	if err != nil {
		return err
	}
	dir, done, err := prepare(bin, against)
	if err != nil {
		return err
	}
	defer done()
	cmd := fmt.Sprintf("pwbench --bin %s --against %s --rounds %d", bin, against, rounds)
	if only != "" {
		cmd += " --only " + only
	}
	rep := &abReport{Meta: metadata(cmd, dur), Rounds: rounds,
		After: version(bin), Before: version(against)}
	for _, c := range abCases(duts) {
		rep.Results = append(rep.Results, abRow{caseSpec: c})
	}
	for i := range 2 * rounds {
		b, name := bin, "after"
		if i%4 == 1 || i%4 == 2 { // A B B A
			b, name = against, "before"
		}
		for _, dut := range duts {
			t, err := build(dut, layoutShared, filepath.Join(dir, fmt.Sprintf("%s-%d", dut, i)), b, "")
			if err != nil {
				return fmt.Errorf("%s (%s): %w", dut, b, err)
			}
			for j := range rep.Results {
				row := &rep.Results[j]
				if row.DUT != dut {
					continue
				}
				r := t.run(row.caseSpec, dur, nil)
				fmt.Printf("%-6s %-11s %5d %-6s %8.0f kfps  pwgated %5.0f ns/frame (%4.0f own, %4.0f kernel)  %.3f syscalls/frame %s\n",
					name, r.DUT, r.Size, r.Direction, r.FPS/1000, r.Split.Pwgated(), r.Split.Pwgated()-r.Split.InKernel, r.Split.InKernel, r.Syscalls, r.Error)
				if name == "after" {
					row.After = append(row.After, r)
				} else {
					row.Before = append(row.Before, r)
				}
			}
			t.close()
		}
	}
	if left, _ := lab.Leftovers(prefix); len(left) > 0 {
		return fmt.Errorf("namespaces left behind: %v", left)
	}
	stamp := time.Now().UTC().Format("20060102-150405") + "-ab"
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	md := rep.markdown()
	for name, b := range map[string][]byte{stamp + ".json": js, stamp + ".md": []byte(md)} {
		if err := os.WriteFile(filepath.Join(out, name), b, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("\n%s\nwritten to %s/%s.md\n", md, out, stamp)
	return nil
}

// version returns what pwgated in bin says it is (make bench-ab links
// each build's commit into it).
func version(bin string) string {
	b, err := exec.Command(filepath.Join(bin, "pwgated"), "--version").Output()
	if err != nil {
		return bin
	}
	return strings.TrimSpace(string(b)) + " (" + bin + ")"
}

// spread returns half the range of f over rs as a percentage of its
// median: how far apart one build's rounds were.
func spread(rs []result, f func(result) float64) float64 {
	m := median(rs, f)
	lo, hi := m, m
	for _, r := range rs {
		if r.Error == "" {
			lo, hi = min(lo, f(r)), max(hi, f(r))
		}
	}
	if m == 0 {
		return 0
	}
	return 50 * (hi - lo) / m
}

// median returns the median of f over rs.
func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, 0, len(rs))
	for _, r := range rs {
		if r.Error == "" {
			v = append(v, f(r))
		}
	}
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func (r *abReport) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# pwgate A/B benchmark, %s\n\n`%s`; kernel %s; %s at %.0f MHz (%d cores); %s; %s per case, %d rounds each, in the order A B B A ….\n\n",
		r.Meta.Date, r.Meta.Command, r.Meta.Kernel, r.Meta.CPU, r.Meta.MHz, r.Meta.Cores, r.Meta.Go, r.Meta.Duration, r.Rounds)
	fmt.Fprintf(&b, "- after (A): %s\n- before (B): %s\n\n", r.After, r.Before)
	if r.Meta.XDPGen != "" {
		fmt.Fprintf(&b, "**%s** (what follows says \"the XDP generator\").\n\n", r.Meta.XDPGen)
	}
	b.WriteString("The XDP generator at its maximum rate into one shared DUT core (the main tables' layout). Medians over the rounds; " +
		"pwgated's CPU per frame is its threads' time, split into its own code (user time) and the kernel's (system time: " +
		"in copy mode the TX kick builds and sends a socket buffer per frame); after/before ratios (below 1: cheaper; for frames/s above 1: faster).\n\n")
	b.WriteString("Each median is followed by ± half the range of that build's rounds, in percent: a ratio inside both spreads is noise. " +
		"(Two identical builds measured this way have differed by up to about 30 % per case on this shared 2-core VM.)\n\n")
	b.WriteString("| DUT | frame | direction | frames/s before → after | ratio | pwgated ns/frame before → after | ratio | own code | ratio | in the kernel | ratio | syscalls/frame before → after |\n")
	b.WriteString("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	fps := func(x result) float64 { return x.FPS }
	pw := func(x result) float64 { return x.Split.Pwgated() }
	own := func(x result) float64 { return x.Split.Pwgated() - x.Split.InKernel }
	kern := func(x result) float64 { return x.Split.InKernel }
	sys := func(x result) float64 { return x.Syscalls }
	times := func(a, b float64) string {
		if b == 0 {
			return "–"
		}
		return fmt.Sprintf("%.2f×", a/b)
	}
	// cell is "before ±s% → after ±s%" (unit: 1 for ns, 1000 for k/s), ratio.
	cell := func(x abRow, f func(result) float64, unit float64) (string, string) {
		a, bf := median(x.After, f), median(x.Before, f)
		return fmt.Sprintf("%.0f ±%.0f%% → %.0f ±%.0f%%", bf/unit, spread(x.Before, f), a/unit, spread(x.After, f)), times(a, bf)
	}
	for _, x := range r.Results {
		f, fr := cell(x, fps, 1000)
		p, pr := cell(x, pw, 1)
		o, or := cell(x, own, 1)
		k, kr := cell(x, kern, 1)
		fmt.Fprintf(&b, "| %s | %d | %s | %s k | %s | %s | %s | %s | %s | %s | %s | %.3f → %.3f |\n",
			x.DUT, x.Size, x.Direction, f, fr, p, pr, o, or, k, kr, median(x.Before, sys), median(x.After, sys))
	}
	return b.String()
}
