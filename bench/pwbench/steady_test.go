package main

import (
	"strings"
	"testing"

	"github.com/pwgate/pwgate/control/client"
)

func TestSteadyAllocations(t *testing.T) {
	before := client.Runtime{Allocs: 1000, AllocBytes: 1 << 20, HeapBytes: 2 << 20, HeapGoalBytes: 4 << 20}
	after := client.Runtime{Allocs: 1500, AllocBytes: 1<<20 + 64<<10, HeapBytes: 2 << 20, HeapGoalBytes: 4 << 20}
	r := result{GCCycles: 1, FPS: 1e6}
	s := newSteady(r, before, after)
	if s.Allocs != 500 || s.Others != -1 || s.AllocBytes != 64<<10 || s.HeadroomBytes != 2<<20 {
		t.Errorf("steady %+v", s)
	}
	if !s.periodicGC() {
		t.Error("64 KiB allocated 2 MiB short of the goal: the GC was the periodic one")
	}
	// More allocated than the headroom: the GC may have been triggered.
	after.AllocBytes = before.AllocBytes + 3<<20
	if newSteady(r, before, after).periodicGC() {
		t.Error("3 MiB allocated with 2 MiB of headroom called periodic")
	}
	// The goal counts what allocated outside the status queries, or
	// everything when that is unknown.
	for _, c := range []struct {
		others int64
		met    bool
	}{{0, true}, {3, true}, {-1, false}, {6001, false}} {
		rep := &report{Soak: &steady{result: result{FPS: 1e6, Seconds: 60}, Allocs: 500, Others: c.others}}
		rep.evaluate()
		for _, g := range rep.Goals {
			if strings.HasPrefix(g.Goal, "0 GC cycles") && g.Met != c.met {
				t.Errorf("others %d: goal met %v, want %v (%s)", c.others, g.Met, c.met, g.Detail)
			}
		}
	}
}
