package hw

import (
	"os"
	"path/filepath"
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

func TestDetect(t *testing.T) {
	for _, c := range []struct {
		name      string
		dmi       map[string]string
		cpu, want string
		wantOK    bool
	}{
		{"IN-1 by DMI", map[string]string{"sys_vendor": "Skynew", "product_name": "IN-1"}, "", "in-1", true},
		{"C4 by DMI", map[string]string{"board_vendor": "Partaker", "board_name": "C4"}, "", "c4", true},
		{"IN-1 by CPU", map[string]string{"sys_vendor": "Default string"}, "Intel(R) Celeron(R) CPU  N2940  @ 1.83GHz", "in-1", true},
		{"C4 by CPU", nil, "Intel(R) Celeron(R) CPU  J3160  @ 1.60GHz", "c4", true},
		{"another box", map[string]string{"sys_vendor": "QEMU", "product_name": "Standard PC"}, "AMD EPYC", "", false},
		{"nothing readable", nil, "", "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			for k, v := range c.dmi {
				os.WriteFile(filepath.Join(dir, k), []byte(v+"\n"), 0o644)
			}
			cpuinfo := filepath.Join(dir, "cpuinfo")
			if c.cpu != "" {
				os.WriteFile(cpuinfo, []byte("processor\t: 0\nmodel name\t: "+c.cpu+"\n"), 0o644)
			}
			p, ok, seen := Detect(dir, cpuinfo)
			if ok != c.wantOK || p.Name != c.want {
				t.Errorf("%s: %q %v", seen, p.Name, ok)
			}
			if seen == "" {
				t.Error("nothing said about what was read")
			}
		})
	}
}
