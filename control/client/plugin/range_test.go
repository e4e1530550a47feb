package plugin

import (
	"math"
	"testing"
)

func TestParseRange(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		in         string
		start, end float64
		inside     bool
		alert      []float64
		quiet      []float64
	}{
		{"10", 0, 10, false, []float64{-1, 11}, []float64{0, 5, 10}},
		{"10:", 10, inf, false, []float64{9.9, 0}, []float64{10, 1e9}},
		{"~:10", math.Inf(-1), 10, false, []float64{10.1}, []float64{-1e9, 10}},
		{":10", 0, 10, false, []float64{-1, 11}, []float64{0, 10}},
		{"10:20", 10, 20, false, []float64{9, 21}, []float64{10, 15, 20}},
		{"@10:20", 10, 20, true, []float64{10, 15, 20}, []float64{9, 21}},
		{"@5", 0, 5, true, []float64{0, 5}, []float64{6}},
		{"4:", 4, inf, false, []float64{3}, []float64{4}},
		{"1:", 1, inf, false, []float64{0}, []float64{1}},
		{"-5:-1", -5, -1, false, []float64{0}, []float64{-3}},
		{"1.5:2.5", 1.5, 2.5, false, []float64{1}, []float64{2}},
	}
	for _, tt := range tests {
		r, err := ParseRange(tt.in)
		if err != nil || r.Start != tt.start || r.End != tt.end || r.Inside != tt.inside || r.String() != tt.in {
			t.Errorf("ParseRange(%q) = %+v, %v", tt.in, r, err)
			continue
		}
		for _, v := range tt.alert {
			if !r.Alert(v) {
				t.Errorf("%q: %v does not alert", tt.in, v)
			}
		}
		for _, v := range tt.quiet {
			if r.Alert(v) {
				t.Errorf("%q: %v alerts", tt.in, v)
			}
		}
	}
	for _, bad := range []string{"", "@", "a", "1:b", "20:10", "~", "1:2:3", "inf", "nan:1"} {
		if _, err := ParseRange(bad); err == nil {
			t.Errorf("ParseRange(%q) accepted", bad)
		}
	}
}

func TestResultLine(t *testing.T) {
	if got := (Result{State: Warning, Text: "x", Perf: "a=1;;;;"}).Line("BGP"); got != "BGP WARNING - x | a=1;;;;" {
		t.Error(got)
	}
	if got := (Result{State: OK, Text: "y"}).Line("BPDU"); got != "BPDU OK - y" {
		t.Error(got)
	}
}
