package main

import "math"

// trend is a least-squares line through samples (x in hours, y in the
// metric's unit): the slope per hour, its standard error, and whether it
// rises beyond noise.
type trend struct {
	Slope  float64 `json:"slope_per_hour"`
	StdErr float64 `json:"stderr"`
	Rising bool    `json:"rising"`
}

// fit returns the trend of ys over xs. A rise beyond noise is a slope that
// is positive, more than three standard errors, and above floor per hour
// (so that a statistically clear rise of a few bytes an hour, which no
// appliance would notice in a decade, does not fail a run).
func fit(xs, ys []float64, floor float64) trend {
	n := float64(len(xs))
	if len(xs) < 3 || len(xs) != len(ys) {
		return trend{}
	}
	var mx, my float64
	for i := range xs {
		mx += xs[i]
		my += ys[i]
	}
	mx, my = mx/n, my/n
	var sxx, sxy float64
	for i := range xs {
		sxx += (xs[i] - mx) * (xs[i] - mx)
		sxy += (xs[i] - mx) * (ys[i] - my)
	}
	if sxx == 0 {
		return trend{}
	}
	slope := sxy / sxx
	var sse float64
	for i := range xs {
		r := ys[i] - (my + slope*(xs[i]-mx))
		sse += r * r
	}
	se := math.Sqrt(sse / (n - 2) / sxx)
	return trend{Slope: slope, StdErr: se, Rising: slope > floor && slope > 3*se}
}
