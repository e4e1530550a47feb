package hw

import (
	"strings"
	"testing"
)

func TestProfiles(t *testing.T) {
	for _, n := range Names() {
		p, err := Lookup(n)
		if err != nil || p.Name != n {
			t.Fatalf("Lookup(%q) = %+v, %v", n, p, err)
		}
		cores := map[int]bool{p.CoreMain: true, p.CoreEncap: true, p.CoreDecap: true, p.CoreIRQ: true}
		if len(cores) != 4 {
			t.Errorf("%s: main, encap, decap and interrupts must each have a core of their own", n)
		}
		for _, args := range p.EthtoolArgs("enp1s0") {
			if args[1] != "enp1s0" {
				t.Errorf("%s: %v does not name the interface", n, args)
			}
		}
	}
	if _, err := Lookup("nuc"); err == nil || !strings.Contains(err.Error(), "c4, in-1") {
		t.Errorf("unknown profile: %v", err)
	}
}
