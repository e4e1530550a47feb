package main

import (
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	fps := func(r result) float64 { return r.FPS }
	rs := func(v ...float64) (out []result) {
		for _, f := range v {
			out = append(out, result{FPS: f})
		}
		return out
	}
	failed := result{FPS: 1e9, Error: "generator died"}
	for _, c := range []struct {
		in   []result
		want float64
	}{
		{nil, 0},
		{rs(3), 3},
		{rs(5, 1, 3), 3},
		{rs(4, 1, 3, 2), 2.5},
		{append(rs(1, 2, 3), failed), 2}, // a failed case does not count
		{[]result{failed}, 0},
	} {
		if got := median(c.in, fps); got != c.want {
			t.Errorf("median(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestABMarkdown(t *testing.T) {
	c := caseSpec{DUT: dutPWEth, Gen: genXDP, Layout: layoutShared, Size: 64, Direction: dirEncap}
	res := func(fps, pw, kern float64) result {
		return result{caseSpec: c, FPS: fps, Split: cpuSplit{Encap: pw, InKernel: kern}, Syscalls: 0.07}
	}
	r := &abReport{Rounds: 2, After: "this tree", Before: "base", Results: []abRow{{caseSpec: c,
		Before: []result{res(300e3, 1500, 1100), res(320e3, 1400, 1000)},
		After:  []result{res(330e3, 1300, 1000), res(350e3, 1200, 950)}}}}
	md := r.markdown()
	for _, want := range []string{"| pwgate-eth | 64 | encap | 310 ±3% → 340 ±3% k | 1.10× | 1450 ±3% → 1250 ±4% | 0.86× | 400 ±0% → 275 ±9% | 0.69× | 1050 ±5% → 975 ±3% | 0.93× | 0.070 → 0.070 |",
		"after (A): this tree", "before (B): base"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestABDUTs(t *testing.T) {
	if d, err := abDUTs(""); err != nil || strings.Join(d, ",") != strings.Join(pseudowires, ",") {
		t.Errorf(`abDUTs("") = %v, %v; want pwgate's two modes`, d, err)
	}
	if d, err := abDUTs(dutPWWGXDP + "," + dutPWWG + "," + dutPWWGXDP); err != nil || strings.Join(d, ",") != dutPWWGXDP+","+dutPWWG {
		t.Errorf("abDUTs(both WireGuard binds) = %v, %v", d, err)
	}
	for _, bad := range []string{dutBridge, dutStockWG, dutPWIP6 + ",", "nonsense"} {
		if d, err := abDUTs(bad); err == nil {
			t.Errorf("abDUTs(%q) = %v, want an error", bad, d)
		}
	}
	if n := len(abCases([]string{dutPWWG})); n != 4 {
		t.Errorf("%d cases for one device, want 4", n)
	}
}
