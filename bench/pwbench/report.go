package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// meta says where and when results were taken.
type meta struct {
	Date     string `json:"date"`
	Commit   string `json:"commit"`
	Kernel   string `json:"kernel"`
	CPU      string `json:"cpu"`
	Cores    int    `json:"cores"`
	Go       string `json:"go"`
	Trafgen  string `json:"trafgen"`
	Command  string `json:"command"`
	Duration string `json:"case_duration"`
}

type goal struct {
	Goal   string `json:"goal"`
	Met    bool   `json:"met"`
	Detail string `json:"detail"`
}

type report struct {
	Meta      meta     `json:"meta"`
	Results   []result `json:"results"`
	Soak      *result  `json:"soak,omitempty"`
	Goals     []goal   `json:"goals"`
	Micro     string   `json:"microbenchmarks"`
	Benchstat string   `json:"benchstat,omitempty"`
	Profile   string   `json:"pprof_top,omitempty"`
	Perf      string   `json:"perf_top,omitempty"`
}

func (r *report) find(dut string, size int, dir string) *result {
	for i := range r.Results {
		x := &r.Results[i]
		if x.DUT == dut && x.Size == size && x.Direction == dir && x.Error == "" {
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

func nsFrame(r *result) string {
	if r == nil || r.CPUPerFrame == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", r.CPUPerFrame)
}

// evaluate checks the goals of issue 5 against the results.
func (r *report) evaluate() {
	pws := []string{dutPWEth, dutPWIP6}
	worst := func(f func(pw string, dir string) (float64, string)) (float64, []string) {
		w, details := 1e18, []string{}
		for _, pw := range pws {
			for _, dir := range []string{dirEncap, dirDecap, dirBoth} {
				v, d := f(pw, dir)
				if d == "" {
					continue
				}
				w = min(w, v)
				details = append(details, d)
			}
		}
		return w, details
	}
	cmp := func(size int, base string, want float64, title string) {
		w, d := worst(func(pw, dir string) (float64, string) {
			a, b := r.find(pw, size, dir), r.find(base, size, dir)
			if a == nil || b == nil || b.FPS < 1 {
				return 0, ""
			}
			return a.FPS / b.FPS, fmt.Sprintf("%s %s %.2f×", pw, dir, a.FPS/b.FPS)
		})
		if len(d) > 0 {
			r.Goals = append(r.Goals, goal{title, w >= want, strings.Join(d, ", ")})
		}
	}
	cmp(64, dutVXLAN, 1.5, "≥ 1.5× the frames/s of kernel VXLAN+bridge at 64 bytes")
	cmp(1514, dutBridge, 1.0, "≥ the frames/s of the plain bridge at 1514 bytes")
	var cpu []string
	maxCPU := 0.0
	for _, pw := range pws {
		for _, size := range sizes(false) {
			for _, dir := range []string{dirEncap, dirDecap} {
				if x := r.find(pw, size, dir); x != nil {
					maxCPU = max(maxCPU, x.CPUPerFrame)
					cpu = append(cpu, fmt.Sprintf("%s %d %s %.0f ns", pw, size, dir, x.CPUPerFrame))
				}
			}
		}
	}
	if len(cpu) > 0 {
		r.Goals = append(r.Goals, goal{"< 1 µs of DUT CPU per forwarded frame per direction, AF_XDP I/O included (stretch 500 ns)",
			maxCPU < 1000, fmt.Sprintf("worst %.0f ns; %s", maxCPU, strings.Join(cpu, ", "))})
	}
	if r.Soak != nil {
		d := fmt.Sprintf("%d GC cycles in %.0f s at %.0f kframes/s", r.Soak.GCCycles, r.Soak.Seconds, r.Soak.FPS/1000)
		if r.Soak.Error != "" {
			d += " (" + r.Soak.Error + ")"
		}
		r.Goals = append(r.Goals, goal{"no GC cycle during a steady-load run", r.Soak.GCCycles == 0 && r.Soak.Error == "", d})
	}
	w, d := worst(func(pw, dir string) (float64, string) {
		a, b := r.find(pw, 1600, dir), r.find(pw, wholeSize, dir)
		if a == nil || b == nil || b.FPS < 1 {
			return 0, ""
		}
		return a.FPS / b.FPS, fmt.Sprintf("%s %s %.2f×", pw, dir, a.FPS/b.FPS)
	})
	if len(d) > 0 {
		r.Goals = append(r.Goals, goal{fmt.Sprintf("split 1600-byte frames at ≥ 0.45× the frame rate of whole %d-byte frames", wholeSize), w >= 0.45, strings.Join(d, ", ")})
	}
}

// summary is the condensed table the README quotes: delivered kframes/s
// and the DUT core's ns per frame.
func (r *report) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "| frame | direction | bridge | kernel VXLAN | pwgate eth | pwgate ip6 |\n|---:|---|---:|---:|---:|---:|\n")
	for _, size := range r.sizes() {
		for _, dir := range []string{dirEncap, dirDecap, dirBoth} {
			br, vx := r.find(dutBridge, size, dir), r.find(dutVXLAN, size, dir)
			if br == nil && vx == nil {
				continue
			}
			fmt.Fprintf(&b, "| %d | %s | %s k/s, %s ns | %s k/s, %s ns |", size, dir, kfps(br), nsFrame(br), kfps(vx), nsFrame(vx))
			for _, pw := range []string{dutPWEth, dutPWIP6} {
				x := r.find(pw, size, dir)
				fmt.Fprintf(&b, " %s k/s, %s ns (%s br, %s vx) |", kfps(x), nsFrame(x), ratio(x, br), ratio(x, vx))
			}
			b.WriteString("\n")
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

func (r *report) markdown() string {
	var b strings.Builder
	m := r.Meta
	fmt.Fprintf(&b, "# pwgate benchmark, %s\n\n", m.Date)
	fmt.Fprintf(&b, "`%s` at commit %s; kernel %s; %s (%d cores); %s; %s; %s per case.\n\n", m.Command, m.Commit, m.Kernel, m.CPU, m.Cores, m.Go, m.Trafgen, m.Duration)
	b.WriteString(method)
	b.WriteString("\n## Summary\n\nDelivered frames per second (thousands) and CPU of the device under test per delivered frame; ratios to the bridge (br) and to kernel VXLAN (vx).\n\n")
	b.WriteString(r.summary())
	b.WriteString("\n## Goals\n\n")
	b.WriteString(r.goals())
	b.WriteString("\n## Every case\n\n| DUT | frame | direction | offered kfps | delivered kfps | loss | DUT core busy | DUT CPU ns/frame | pwgated ns/frame | note |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, x := range r.Results {
		daemon := "–"
		if x.DaemonCPU > 0 {
			daemon = fmt.Sprintf("%.0f", x.DaemonCPU)
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %.0f | %.0f | %.1f%% | %.0f%% | %s | %s | %s |\n", x.DUT, x.Size, x.Direction, x.OfferedFPS/1000, x.FPS/1000,
			100*x.Loss, 100*x.CoreUse, nsFrame(&x), daemon, x.Error)
	}
	if r.Soak != nil {
		fmt.Fprintf(&b, "\n## Steady load\n\npwgate eth, 64-byte frames both ways for %.0f s: %.0f kframes/s delivered, %.1f%% loss, %d GC cycles.\n", r.Soak.Seconds, r.Soak.FPS/1000, 100*r.Soak.Loss, r.Soak.GCCycles)
	}
	if r.Perf != "" {
		fmt.Fprintf(&b, "\n## Where the DUT core's time goes (perf, pwgate eth, 64 bytes both ways)\n\n```\n%s```\n", r.Perf)
	}
	if r.Profile != "" {
		fmt.Fprintf(&b, "\n## pwgated's own CPU profile (pprof -top)\n\n```\n%s```\n", r.Profile)
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
lan 1600). trafgen (netsniff-ng) sends from lan (encap direction), from wan
(decap direction: frames as the far end would send them), or both at once;
an XDP program at the receiving end counts and drops them. The DUT owns
core 1: its veth NAPI threads (and pwgated, cores main/encap/decap = 1,
adaptive polling) run there and nothing else does; generators and sinks run
on core 0. DUT CPU is core 1's busy time from /proc/stat divided by the
frames delivered. Baselines on the same topology: a Linux bridge of dl0 and
ul0 (the software wire), and a bridge of dl0 and a kernel VXLAN device over
IPv6 on ul0 (the kernel's own L2 tunnel; no L2TP here). A frame split in
two pieces counts once. Repeated runs of the same case differ by up to
about 30% for pwgate (less for the baselines): how the NAPI threads and
pwgated take turns on the one core settles differently from run to run.
`

// write stores the report as JSON and markdown in dir; a full run is
// latest.md too, and its summary goes into the README between the bench
// markers (readme "" skips that).
func (r *report) write(dir, stamp string, full bool, readme string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	md := r.markdown()
	files := map[string][]byte{stamp + ".json": j, stamp + ".md": []byte(md)}
	if full {
		files["latest.md"] = []byte(md)
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
	section := fmt.Sprintf("Measured %s with `%s` (commit %s, kernel %s, %s); full results in [bench/results/latest.md](bench/results/latest.md).\n\n%s\n%s",
		r.Meta.Date, r.Meta.Command, r.Meta.Commit, r.Meta.Kernel, r.Meta.CPU, r.summary(), r.goals())
	out := append(append(append([]byte{}, old[:i+len(begin)]...), section...), old[k:]...)
	return os.WriteFile(readme, out, 0o644)
}
