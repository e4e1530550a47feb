package main

import (
	"strings"
	"testing"
)

// TestDecapSpeed: frames/s when both directions filled the DUT core; CPU
// per frame when the generator left it idle.
func TestDecapSpeed(t *testing.T) {
	e := &result{FPS: 100e3, CoreUse: 0.99, CPUPerFrame: 10000}
	if r, why := decapSpeed(e, &result{FPS: 90e3, CoreUse: 0.98, CPUPerFrame: 11000}); r != 0.9 || why != "" {
		t.Errorf("both full: %v %q", r, why)
	}
	if r, why := decapSpeed(e, &result{FPS: 50e3, CoreUse: 0.5, CPUPerFrame: 12500}); r != 0.8 || !strings.Contains(why, "by CPU per frame") {
		t.Errorf("decap's core half idle: %v %q", r, why)
	}
	if r, why := decapSpeed(e, &result{FPS: 50e3, CoreUse: 0.5}); r != 0.5 || why != "" {
		t.Errorf("no CPU figure: %v %q", r, why)
	}
}

// TestWGDecapGoalShowsPlain: the decap-against-encap goal gives the plain
// pseudowire's ratio where it has the size, and pwgated's own CPU per
// frame where decap is slower; it is judged on WireGuard's ratio.
func TestWGDecapGoalShowsPlain(t *testing.T) {
	res := func(dut string, size int, dir string, fps float64) result {
		return result{caseSpec: caseSpec{DUT: dut, Gen: genXDP, Layout: layoutShared, Size: size, Direction: dir}, FPS: fps, CoreUse: 1, CPUPerFrame: 1e9 / fps,
			Split: cpuSplit{Encap: 4000}}
	}
	r := &report{Results: []result{
		res(dutPWWGXDP, 1400, dirEncap, 100e3), res(dutPWWGXDP, 1400, dirDecap, 90e3),
		res(dutPWWGXDP, 1514, dirEncap, 100e3), res(dutPWWGXDP, 1514, dirDecap, 60e3),
		res(dutPWIP6, 1514, dirEncap, 200e3), res(dutPWIP6, 1514, dirDecap, 140e3),
	}}
	r.wgGoals()
	for _, g := range r.Goals {
		if !strings.HasPrefix(g.Goal, dutPWWGXDP+": decap") {
			continue
		}
		if g.Met || g.Detail != "1400: 0.90×, 1514: 0.60× (pwgated's threads 4000 against 4000 ns per frame) (plain pwgate-ip6 0.70×)" {
			t.Errorf("%v: %s", g.Met, g.Detail)
		}
		return
	}
	t.Errorf("no decap goal in %+v", r.Goals)
}
