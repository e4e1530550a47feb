package main

import "testing"

func TestFit(t *testing.T) {
	xs := []float64{0, 1, 2, 3, 4, 5, 6, 7}
	flat := []float64{100, 101, 99, 100, 101, 99, 100, 100}
	rising := []float64{100, 110, 121, 130, 139, 151, 160, 170}
	noisy := []float64{100, 140, 90, 150, 95, 120, 110, 105}
	if tr := fit(xs, flat, 1); tr.Rising {
		t.Errorf("flat series rises: %+v", tr)
	}
	if tr := fit(xs, rising, 1); !tr.Rising || tr.Slope < 9 || tr.Slope > 11 {
		t.Errorf("rising series: %+v", tr)
	}
	if tr := fit(xs, noisy, 1); tr.Rising {
		t.Errorf("noise counted as a rise: %+v", tr)
	}
	if tr := fit(xs, rising, 20); tr.Rising {
		t.Errorf("a rise below the floor failed: %+v", tr)
	}
	if tr := fit(xs[:2], rising[:2], 1); tr.Rising {
		t.Errorf("two samples: %+v", tr)
	}
}
