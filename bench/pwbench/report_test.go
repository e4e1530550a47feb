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
