package main

import (
	"fmt"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/control/client"
)

// steady is the steady-load run: a case, and the allocations in it.
type steady struct {
	result
	// Allocs is the runtime's count of heap allocations in the run (its
	// counters are flushed as spans fill: close, not exact).
	Allocs uint64 `json:"allocations"`
	// Others is what allocated on paths not through the status socket's
	// server (the queries that bracket and sample the run), from pprof
	// with every allocation sampled: exact, less the runtime's starting
	// of threads (lab.ObjectsBetween). -1: unknown.
	Others int64 `json:"allocations_not_status_queries"`
	// AllocBytes is the bytes allocated in the run, HeadroomBytes how far
	// the heap was from the goal that starts a collection: a run that
	// allocates less than that cannot have triggered one.
	AllocBytes    uint64 `json:"alloc_bytes"`
	HeadroomBytes uint64 `json:"headroom_bytes"`
	// Sites is pprof's list of what allocated during the run outside the
	// status socket's server.
	Sites string `json:"allocation_sites,omitempty"`
}

func newSteady(r result, before, after client.Runtime) *steady {
	s := &steady{result: r, Allocs: after.Allocs - before.Allocs, AllocBytes: after.AllocBytes - before.AllocBytes, Others: -1}
	if before.HeapGoalBytes > before.HeapBytes {
		s.HeadroomBytes = before.HeapGoalBytes - before.HeapBytes
	}
	return s
}

// periodicGC says whether the run's collections can only have been the
// runtime's periodic ones: it allocated less than the heap's headroom.
func (s *steady) periodicGC() bool { return s.GCCycles > 0 && s.AllocBytes < s.HeadroomBytes }

// steadyRun is the steady-load run, on a topology of its own: pwgated
// without the CPU profiler the main eth topology has (its profile writer
// allocates as samples come in), with every allocation sampled
// (steadyProfile). Taking the first allocation profile collects garbage,
// so the runtime's periodic collection (two minutes after the last) does
// not fall in a run of less than two minutes: a collection in it is one
// that allocation started. perf's view of the DUT core goes to perf.
func steadyRun(dir, bin string, d time.Duration, perf *string) (*steady, error) {
	fmt.Printf("steady load: pwgate eth, 64 bytes both ways from the XDP generator for %v\n", d)
	t, err := build(dutPWEth, layoutShared, dir, bin, steadyProfile)
	if err != nil {
		return nil, fmt.Errorf("steady load: %w", err)
	}
	defer t.close()
	base, err := t.l.FetchAllocs("dut", dir, "steady-start")
	if err != nil {
		return nil, fmt.Errorf("steady load: %w", err)
	}
	before, _ := client.FetchStatus(t.socket, time.Second)
	r := t.run(caseSpec{DUT: dutPWEth, Gen: genXDP, Layout: layoutShared, Size: 64, Direction: dirBoth}, d,
		func() { go func() { *perf = perfTop(dir) }() })
	after, _ := client.FetchStatus(t.socket, time.Second)
	s := newSteady(r, before.Runtime, after.Runtime)
	if end, err := t.l.FetchAllocs("dut", dir, "steady-end"); err == nil {
		// Not counted: the status socket's server (accepting and answering
		// the queries that bracket and sample the run).
		const queries = "pwgate/control.startServer"
		s.Sites, _ = lab.AllocatedBetween(base, end, queries)
		if n, err := lab.ObjectsBetween(base, end, queries); err == nil {
			s.Others = int64(n)
		}
	}
	fmt.Printf("  %.0f kfps, %d GC cycles, %d objects allocated outside the status queries %s\n",
		r.FPS/1000, r.GCCycles, s.Others, r.Error)
	return s, nil
}
