package main

import (
	"strings"
	"testing"
)

func TestBudgetZeroCopy(t *testing.T) {
	c := caseSpec{DUT: dutPWEth, Gen: genXDP, Layout: layoutShared, Size: 64, Direction: dirEncap}
	r := &report{Meta: meta{MHz: 2600}, Results: []result{{caseSpec: c, FPS: 3e5,
		Split: cpuSplit{Encap: 1400, InKernel: 1200, NAPI: 900}}}}
	bs := budgets(r)
	if len(bs) != 2 {
		t.Fatalf("%d budget rows, want one per box", len(bs))
	}
	c4 := bs[0]
	if c4.CyclesZC != 200*2.6 || c4.Cycles != 1400*2.6 || c4.CyclesNIC != 2300*2.6 {
		t.Errorf("cycles %v, %v, %v", c4.CyclesZC, c4.Cycles, c4.CyclesNIC)
	}
	// 520 cycles at 1.6 GHz, twice as many on the Celeron: 1.54 Mf/s,
	// above 64-byte line rate on the uplink; copy mode is not.
	if tab := budgetTable(bs); !strings.Contains(tab, "| 520, 3640, 5980 | 1.54, 0.22, 0.13 Mf/s | 1.202 Mf/s | with zero-copy only (copy mode 18%) |") {
		t.Errorf("budget table:\n%s", tab)
	}
	if v := budgetVerdict(bs); !strings.Contains(v, "Partaker C4 (Celeron J3160), pwgate-eth, 64-byte frames: line rate both ways only with zero-copy") {
		t.Errorf("verdict:\n%s", v)
	}
}
