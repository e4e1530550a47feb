package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/control/client"
)

// TestBusyPinned runs site A with busy polling and its goroutines pinned
// (this VM has two cores: main 0, encap 1, decap 1; then main 0, encap 0,
// decap 1) and checks that GOMAXPROCS stays above the number of busy
// goroutines (Go 1.25 and later would drop it to 1 after the process was
// pinned to one core), that the kernel has each thread where the
// configuration says, that both workers spin, that traffic crosses, and
// that the main goroutine answers within 100 ms while both workers spin.
// Each run spins for a few seconds, not minutes.
func TestBusyPinned(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs two cores")
	}
	for _, cores := range [][3]int{{0, 1, 1}, {0, 0, 1}} {
		t.Run(fmt.Sprintf("main%d-encap%d-decap%d", cores[0], cores[1], cores[2]), func(t *testing.T) {
			s := buildSites(t, lab.SitesOptions{Mode: "eth"})
			conf := strings.Replace(s.ConfigFor(s.A, s.A.Peer), "poll: adaptive\n",
				fmt.Sprintf("poll: busy\ncores:\n  main: %d\n  encap: %d\n  decap: %d\n", cores[0], cores[1], cores[2]), 1)
			if err := os.WriteFile(s.A.Config, []byte(conf), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, site := range []*lab.Site{s.A, s.B} {
				if err := s.StartPwgated(site); err != nil {
					t.Fatal(err)
				}
			}
			// Sysmon re-reads the affinity about once a second: give it time
			// to drop GOMAXPROCS, if it would.
			time.Sleep(2500 * time.Millisecond)
			st, err := client.FetchStatus(s.A.Socket, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if st.Runtime.GOMAXPROCS < 3 {
				t.Errorf("GOMAXPROCS %d with two busy goroutines", st.Runtime.GOMAXPROCS)
			}
			want := map[string]int{"main": cores[0], "encap": cores[1], "decap": cores[2]}
			for _, th := range st.Runtime.Threads {
				if !slices.Equal(th.Allowed, []int{want[th.Name]}) {
					t.Errorf("%s goroutine may run on %v, want [%d]", th.Name, th.Allowed, want[th.Name])
				}
				if th.Name != "main" && th.LastCore != want[th.Name] {
					t.Errorf("%s goroutine last ran on %d, want %d", th.Name, th.LastCore, want[th.Name])
				}
			}
			// Both workers spin: their threads use CPU with no traffic.
			before := threadCPU(t, st)
			time.Sleep(time.Second)
			after := threadCPU(t, st)
			for name, b := range before {
				if d := after[name] - b; d < 20 { // ticks of 10 ms: at least 0.2 s of the second
					t.Errorf("%s thread used %d ticks in a second: not spinning", name, d)
				}
			}
			if out, err := ping(s, s.A.Host, "-c", "3", "-i", "0.2", s.B.HostIP); err != nil {
				t.Fatalf("ping: %v\n%s", err, out)
			}
			worst := time.Duration(0)
			for i := 0; i < 20; i++ {
				start := time.Now()
				if _, err := client.FetchStatus(s.A.Socket, time.Second); err != nil {
					t.Fatal(err)
				}
				worst = max(worst, time.Since(start))
			}
			if worst > 100*time.Millisecond {
				t.Errorf("the main goroutine took %v to answer while the workers spin", worst)
			}
			t.Logf("GOMAXPROCS %d, slowest status answer %v", st.Runtime.GOMAXPROCS, worst)
			if code, err := s.StopPwgated(s.A); err != nil || code != 0 {
				t.Fatalf("stop: %d %v", code, err)
			}
		})
	}
}

// threadCPU returns the user+system ticks of the data goroutines' threads.
func threadCPU(t *testing.T, st client.Status) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, th := range st.Runtime.Threads {
		if th.TID == 0 {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/stat", st.PID, th.TID))
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(string(b)[strings.LastIndexByte(string(b), ')')+1:])
		var utime, stime int
		fmt.Sscan(f[11], &utime)
		fmt.Sscan(f[12], &stime)
		out[th.Name] = utime + stime
	}
	return out
}
