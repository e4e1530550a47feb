// Command pwsoak is make soak: it runs the two-site lab under steady
// traffic both ways for a long time and checks that pwgated's memory,
// goroutines and open files do not grow: an appliance runs for a year.
//
//	pwsoak [--duration 30m] [--every 1m] [--mode ip6|eth] [--encrypt none|wireguard] [--wg-bind kernel|xdp] [--rate 300M] [--bin bin] [--out bench/results]
//
// With --encrypt wireguard the pseudowire runs inside the embedded
// WireGuard (ip6 mode), whose buffer pools are what is watched there.
//
// Every interval it samples both daemons (resident memory, Go heap,
// goroutines, open files, GC cycles, from pwctl status) and at the end
// fits a line through each series after a warm-up. It fails when a
// memory series rises beyond noise (slope positive, above three standard
// errors and above a floor of 256 KiB per hour) or when goroutines or open
// files end higher than they started. The memory judged is the process's
// own (anonymous) resident memory and the Go heap; resident file pages
// (the binary's code, paged in as rarer paths first run, bounded by its
// size) are reported beside them. What allocates is reported too: each
// daemon's exact allocation count per minute, and pprof's allocation
// profile (each pwgated serves it with --debug-addr) at the end less the
// one after the warm-up. The samples and verdicts go to
// bench/results/soak-*.md and .json.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/dataplane/xsk"
)

const prefix = "pwsoak-"

func main() {
	o := options{}
	flag.DurationVar(&o.duration, "duration", 30*time.Minute, "how long the traffic runs")
	flag.DurationVar(&o.every, "every", time.Minute, "sampling interval")
	flag.StringVar(&o.mode, "mode", "ip6", "pseudowire mode: ip6 or eth")
	flag.StringVar(&o.encrypt, "encrypt", "none", "none, or wireguard: the pseudowire (ip6 mode) inside the embedded WireGuard")
	flag.StringVar(&o.wgBind, "wg-bind", "kernel", "with --encrypt wireguard: wireguard.bind, kernel or xdp")
	flag.StringVar(&o.rate, "rate", "300M", "iperf3 rate each way (bits/s)")
	flag.StringVar(&o.bin, "bin", "bin", "directory holding pwgated")
	flag.StringVar(&o.out, "out", "bench/results", "results directory")
	flag.Parse()
	if o.encrypt != "none" && o.encrypt != "wireguard" || o.encrypt == "wireguard" && o.mode != "ip6" || o.wgBind != "kernel" && o.wgBind != "xdp" {
		fmt.Fprintf(os.Stderr, "pwsoak: --encrypt %q with --mode %s, --wg-bind %q: want none, or wireguard in ip6 mode with kernel or xdp\n", o.encrypt, o.mode, o.wgBind)
		os.Exit(2)
	}
	ok, err := run(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pwsoak: %v\n", err)
		lab.Teardown(prefix)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

type options struct {
	duration, every          time.Duration
	mode, encrypt, rate, bin string
	out, wgBind              string
}

// modeName is the mode as the reports say it.
func (o options) modeName() string {
	if o.encrypt == "wireguard" {
		return o.mode + " inside WireGuard (bind: " + o.wgBind + ")"
	}
	return o.mode
}

// sample is one reading of one daemon.
type sample struct {
	At         float64 `json:"minutes"`
	RSS        uint64  `json:"rss_bytes"`
	RSSAnon    uint64  `json:"rss_anon_bytes"`
	RSSFile    uint64  `json:"rss_file_bytes"`
	Heap       uint64  `json:"heap_bytes"`
	GoHeld     uint64  `json:"go_held_bytes"`
	Threads    int     `json:"os_threads"`
	Goroutines int     `json:"goroutines"`
	FDs        int     `json:"fds"`
	GC         uint64  `json:"gc_cycles"`
	Allocs     uint64  `json:"allocs"` // heap allocations since start (objects, exact)
	Drops      uint64  `json:"drops"`
	ULRx, DLRx uint64  `json:"-"`
}

// verdict is what one series did.
type verdict struct {
	Site, Metric string
	Trend        trend
	First, Last  float64
	Fail         bool
	Why          string
}

func run(o options) (bool, error) {
	if os.Geteuid() != 0 {
		return false, errors.New("must run as root: it builds network namespaces and attaches XDP programs")
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		return false, errors.New("iperf3 not found")
	}
	pwgated, err := filepath.Abs(filepath.Join(o.bin, "pwgated"))
	if err != nil {
		return false, err
	}
	if _, err := os.Stat(pwgated); err != nil {
		return false, fmt.Errorf("pwgated not built in %s: %w", o.bin, err)
	}
	if err := lab.Teardown(prefix); err != nil {
		return false, err
	}
	dir, err := os.MkdirTemp("", "pwsoak")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(dir)
	l := lab.New(prefix)
	defer l.Close()
	// Interrupted (a soak is long): the namespaces and daemons go too.
	interrupt := make(chan os.Signal, 1)
	signal.Notify(interrupt, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-interrupt
		fmt.Fprintln(os.Stderr, "pwsoak: interrupted: removing the lab")
		lab.Teardown(prefix)
		os.RemoveAll(dir)
		os.Exit(130)
	}()
	s, err := lab.NewSites(l, lab.SitesOptions{Mode: o.mode, Pwgated: pwgated, Dir: dir, STP: true, WireGuard: o.encrypt == "wireguard", WireGuardBind: o.wgBind})
	if err != nil {
		return false, err
	}
	for _, site := range []*lab.Site{s.A, s.B} {
		if err := s.StartPwgated(site, "--config", site.Config, "--debug-addr", lab.DebugAddr); err != nil {
			return false, err
		}
	}
	for _, site := range []*lab.Site{s.A, s.B} {
		if err := s.WaitReady(site, 30*time.Second); err != nil {
			return false, err
		}
	}
	if err := s.WaitForwarding(30 * time.Second); err != nil {
		return false, err
	}
	// The bridges forward before the tunnel carries anything (inside
	// WireGuard, before the first handshake): wait for a ping.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		if _, err := s.Exec(s.A.Host, "ping", "-c", "1", "-W", "1", s.B.HostIP); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("host A cannot ping host B after 60 s")
		}
	}
	fmt.Printf("pwsoak: %s mode, iperf3 %sbit/s each way for %v, a sample every %v\n", o.modeName(), o.rate, o.duration, o.every)
	if _, err := s.Start(s.B.Host, "iperf3", "-s", "-1", "-B", s.B.HostIP); err != nil {
		return false, err
	}
	time.Sleep(500 * time.Millisecond)
	secs := int((o.duration + o.every/2).Seconds())
	iperf, err := s.Start(s.A.Host, "iperf3", "-c", s.B.HostIP, "--bidir", "-b", o.rate, "-t", fmt.Sprint(secs), "-J", "--connect-timeout", "5000")
	if err != nil {
		return false, err
	}
	start := time.Now()
	samples := map[string][]sample{}
	// Each daemon's mappings after the warm-up and at the end: what grew.
	maps := map[string][2]map[string]mapping{}
	// Each daemon's allocation profile after the warm-up: what allocated
	// since then is the churn that touches memory.
	profiles := map[string]string{}
	take := func() error {
		for _, site := range []*lab.Site{s.A, s.B} {
			if n := len(samples[site.Name]); n >= warmUp {
				m, err := readMappings(site.Proc.Cmd.Process.Pid)
				if err != nil {
					return err
				}
				mm := maps[site.Name]
				if n == warmUp {
					mm[0] = m
					if profiles[site.Name], err = s.FetchAllocs(site.PW, dir, site.Name+"-warm"); err != nil {
						return err
					}
				}
				mm[1] = m
				maps[site.Name] = mm
			}
			st, err := client.FetchStatus(site.Socket, 5*time.Second)
			if err != nil {
				return err
			}
			cs, err := client.FetchCounters(site.Socket, 5*time.Second)
			if err != nil {
				return err
			}
			r := st.Runtime
			sm := sample{At: time.Since(start).Minutes(), RSS: r.RSSBytes, RSSAnon: r.RSSAnonBytes, RSSFile: r.RSSFileBytes,
				Heap: r.HeapBytes, GoHeld: r.GoHeldBytes, Threads: r.OSThreads, Goroutines: r.Goroutines, FDs: r.FDs, GC: r.GCCycles, Allocs: r.Allocs}
			for _, c := range cs {
				switch {
				case strings.Contains(c.Name, "_drop_"):
					sm.Drops += c.Value
				case c.Name == "ul_rx_packets":
					sm.ULRx = c.Value
				case c.Name == "dl_rx_packets":
					sm.DLRx = c.Value
				}
			}
			samples[site.Name] = append(samples[site.Name], sm)
			fmt.Printf("%6.1f min  site %s  rss %7.2f MiB (own %7.2f, files %6.2f)  heap %7.1f KiB  Go holds %6.2f MiB  goroutines %3d  threads %2d  fds %3d  gc %4d  drops %d  frames in %d/%d\n",
				sm.At, site.Name, float64(sm.RSS)/(1<<20), float64(sm.RSSAnon)/(1<<20), float64(sm.RSSFile)/(1<<20), float64(sm.Heap)/1024,
				float64(sm.GoHeld)/(1<<20), sm.Goroutines, sm.Threads, sm.FDs, sm.GC, sm.Drops, sm.DLRx, sm.ULRx)
		}
		return nil
	}
	if err := take(); err != nil {
		return false, err
	}
	for time.Since(start) < o.duration {
		time.Sleep(o.every - time.Since(start)%o.every)
		if iperf.Exited() {
			return false, fmt.Errorf("iperf3 ended early: %s", iperf.Out.String())
		}
		if err := take(); err != nil {
			return false, err
		}
	}
	code, err := iperf.Wait(o.every + time.Minute)
	if err != nil || code != 0 {
		return false, fmt.Errorf("iperf3: exit %d, %v: %s", code, err, tail(iperf.Out.String()))
	}
	rates, err := iperfRates(iperf.Out.String())
	if err != nil {
		return false, err
	}
	allocs := map[string]string{}
	for _, site := range []*lab.Site{s.A, s.B} {
		end, err := s.FetchAllocs(site.PW, dir, site.Name+"-end")
		if err != nil {
			return false, err
		}
		if allocs[site.Name], err = lab.AllocatedBetween(profiles[site.Name], end, ""); err != nil {
			return false, err
		}
	}
	for _, site := range []*lab.Site{s.A, s.B} {
		if code, err := s.StopPwgated(site); err != nil || code != 0 {
			return false, fmt.Errorf("pwgated %s: exit %d, %v", site.Name, code, err)
		}
	}
	verdicts := judge(samples)
	ok := true
	for _, v := range verdicts {
		ok = ok && !v.Fail
	}
	changes := map[string][]growth{}
	for site, mm := range maps {
		changes[site] = grew(mm[0], mm[1])
	}
	return ok, report(o, samples, verdicts, changes, allocs, rates, ok)
}

// iperfRates returns the received rates of both directions in Mbit/s.
func iperfRates(out string) ([2]float64, error) {
	var r struct {
		End struct {
			Received struct {
				Bps float64 `json:"bits_per_second"`
			} `json:"sum_received"`
			ReceivedBidir struct {
				Bps float64 `json:"bits_per_second"`
			} `json:"sum_received_bidir_reverse"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return [2]float64{}, fmt.Errorf("iperf3 output: %w", err)
	}
	return [2]float64{r.End.Received.Bps / 1e6, r.End.ReceivedBidir.Bps / 1e6}, nil
}

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}

// umemBytes is the lab's UMEM (the default), resident from the start.
const umemBytes = xsk.DefaultChunks * xsk.ChunkSize

// warmUp is how many samples are left out of the trends: start-up, the
// first GC cycles and the scavenger settle in the first minutes.
const warmUp = 3

// judge fits the series of each site.
func judge(samples map[string][]sample) []verdict {
	var out []verdict
	for _, site := range []string{"a", "b"} {
		ss := samples[site]
		if len(ss) <= warmUp+2 {
			out = append(out, verdict{Site: site, Metric: "samples", Fail: true, Why: fmt.Sprintf("only %d samples: run longer", len(ss))})
			continue
		}
		ss = ss[warmUp:]
		xs := make([]float64, len(ss))
		for i, s := range ss {
			xs[i] = s.At / 60
		}
		for _, m := range []struct {
			name   string
			get    func(sample) float64
			judged bool
		}{
			{"rss (own)", func(s sample) float64 { return float64(s.RSSAnon) }, true},
			{"heap", func(s sample) float64 { return float64(s.Heap) }, true},
			{"Go holds", func(s sample) float64 { return float64(s.GoHeld) }, true},
			// What Go holds beyond what is resident of it (the UMEM is
			// resident from the start): it shrinks as held pages are
			// touched for the first time, and resident memory rising by
			// as much is the same memory, not more of it.
			{"Go holds, not resident", func(s sample) float64 { return float64(s.GoHeld) + umemBytes - float64(s.RSSAnon) }, false},
			{"rss (files)", func(s sample) float64 { return float64(s.RSSFile) }, false},
			{"rss (all)", func(s sample) float64 { return float64(s.RSS) }, false},
		} {
			ys := make([]float64, len(ss))
			for i, s := range ss {
				ys[i] = m.get(s)
			}
			tr := fit(xs, ys, 256<<10)
			v := verdict{Site: site, Metric: m.name, Trend: tr, First: ys[0], Last: ys[len(ys)-1], Fail: m.judged && tr.Rising}
			switch {
			case v.Fail:
				v.Why = fmt.Sprintf("rises %.0f KiB/hour (±%.0f)", tr.Slope/1024, tr.StdErr/1024)
			case !m.judged:
				v.Why = "reported, not judged"
			}
			out = append(out, v)
		}
		for _, m := range []struct {
			name string
			get  func(sample) int
		}{{"goroutines", func(s sample) int { return s.Goroutines }}, {"threads", func(s sample) int { return s.Threads }}, {"fds", func(s sample) int { return s.FDs }}} {
			first, last := m.get(ss[0]), m.get(ss[len(ss)-1])
			v := verdict{Site: site, Metric: m.name, First: float64(first), Last: float64(last), Fail: last > first}
			switch {
			case m.name == "threads":
				// The Go runtime keeps every thread it made (one more when
				// a goroutine blocked in a system call while the others
				// were busy); a leak would show in goroutines or fds.
				v.Fail, v.Why = false, "reported, not judged"
			case v.Fail:
				v.Why = fmt.Sprintf("%d -> %d", first, last)
			}
			out = append(out, v)
		}
	}
	return out
}

// shownChanges is how many changed mappings the report lists per site.
const shownChanges = 8

func report(o options, samples map[string][]sample, verdicts []verdict, changes map[string][]growth, allocs map[string]string, rates [2]float64, ok bool) error {
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	stamp := time.Now().UTC().Format("20060102-150405")
	base := filepath.Join(o.out, "soak-"+stamp)
	var b strings.Builder
	fmt.Fprintf(&b, "# make soak, %s UTC\n\n", time.Now().UTC().Format("2006-01-02 15:04"))
	fmt.Fprintf(&b, "%s mode, iperf3 TCP %sbit/s each way (received: %.0f and %.0f Mbit/s), %v, a sample every %v; trends after the first %d samples.\n\n",
		o.modeName(), o.rate, rates[0], rates[1], o.duration, o.every, warmUp)
	b.WriteString("| site | metric | first | last | slope per hour | verdict |\n|---|---|---:|---:|---:|---|\n")
	for _, v := range verdicts {
		res := "ok"
		switch {
		case v.Fail:
			res = "FAIL: " + v.Why
		case v.Why != "":
			res = v.Why
		}
		slope := "–"
		first, last := fmt.Sprint(v.First), fmt.Sprint(v.Last)
		if memory := v.Metric != "goroutines" && v.Metric != "threads" && v.Metric != "fds"; memory {
			slope = fmt.Sprintf("%+.1f KiB ± %.1f", v.Trend.Slope/1024, v.Trend.StdErr/1024)
			first, last = fmt.Sprintf("%.2f MiB", v.First/(1<<20)), fmt.Sprintf("%.2f MiB", v.Last/(1<<20))
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", v.Site, v.Metric, first, last, slope, res)
	}
	fmt.Fprintf(&b, "\n## What changed, by kind of mapping (/proc/PID/smaps after the warm-up and at the end)\n\n| site | kind | resident now | change | anonymous change |\n|---|---|---:|---:|---:|\n")
	for _, site := range []string{"a", "b"} {
		for i, g := range changes[site] {
			if i == shownChanges {
				fmt.Fprintf(&b, "| %s | … %d more | | | |\n", site, len(changes[site])-i)
				break
			}
			fmt.Fprintf(&b, "| %s | %s | %.0f KiB | %s | %s |\n", site, g.Mapping.Kind, float64(g.Mapping.RSS)/1024, kib(g.Delta), kib(g.AnonDelta))
		}
	}
	b.WriteString("\n## What allocated after the warm-up (pprof allocs, the end's profile less the warm-up's)\n\n")
	for _, site := range []string{"a", "b"} {
		if ss := samples[site]; len(ss) > warmUp+1 {
			first, last := ss[warmUp], ss[len(ss)-1]
			fmt.Fprintf(&b, "Site %s: %.0f heap allocations per minute (exact, runtime/metrics; the sampler's own status query once a minute included), %d GC cycles.\n",
				site, float64(last.Allocs-first.Allocs)/(last.At-first.At), last.GC-first.GC)
		}
	}
	b.WriteString("\npprof's sampled profile (one sample per 512 KiB allocated: a rough picture, not a count):\n")
	for _, site := range []string{"a", "b"} {
		fmt.Fprintf(&b, "\nSite %s:\n\n```\n%s```\n", site, allocs[site])
	}
	b.WriteString("\n## Samples\n\n| minute | site | RSS MiB | own MiB | files MiB | heap KiB | Go holds MiB | goroutines | threads | fds | GC cycles | drops |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for i := range samples["a"] {
		for _, site := range []string{"a", "b"} {
			if i >= len(samples[site]) {
				continue
			}
			s := samples[site][i]
			fmt.Fprintf(&b, "| %.1f | %s | %.2f | %.2f | %.2f | %.1f | %.2f | %d | %d | %d | %d | %d |\n", s.At, site, float64(s.RSS)/(1<<20),
				float64(s.RSSAnon)/(1<<20), float64(s.RSSFile)/(1<<20), float64(s.Heap)/1024, float64(s.GoHeld)/(1<<20), s.Goroutines, s.Threads, s.FDs, s.GC, s.Drops)
		}
	}
	fmt.Fprintf(&b, "\nResult: %s\n", map[bool]string{true: "PASS", false: "FAIL"}[ok])
	if err := os.WriteFile(base+".md", []byte(b.String()), 0o644); err != nil {
		return err
	}
	j, _ := json.MarshalIndent(map[string]any{"mode": o.mode, "encrypt": o.encrypt, "wireguard_bind": o.wgBind, "rate": o.rate, "duration": o.duration.String(),
		"received_mbps": rates, "samples": samples, "verdicts": verdicts, "mapping_changes": changes, "pass": ok}, "", "  ")
	if err := os.WriteFile(base+".json", j, 0o644); err != nil {
		return err
	}
	fmt.Print("\n" + b.String()[:strings.Index(b.String(), "## Samples")])
	fmt.Printf("Result: %s (%s.md)\n", map[bool]string{true: "PASS", false: "FAIL"}[ok], base)
	return nil
}
