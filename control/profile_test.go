package control

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPinInterrupts on a made-up procfs: the ports' interrupts (igb's
// names) not on the core are moved there, each move logged; those already
// there and other devices' are left; one that cannot be written is logged
// once, not every second.
func TestPinInterrupts(t *testing.T) {
	proc := t.TempDir()
	os.WriteFile(filepath.Join(proc, "interrupts"), []byte(`           CPU0       CPU1       CPU2       CPU3
 32:          1          0          0          0  PCI-MSIX-0000:00:04.0   0-edge      enp0s4
 33:         90          0          0          0  PCI-MSIX-0000:00:04.0   1-edge      enp0s4-rx-0
 34:         80          0          0          0  PCI-MSIX-0000:00:04.0   2-edge      enp0s4-tx-0
 35:          1          0          0          0  PCI-MSIX-0000:00:06.0   0-edge      enp0s6
 40:          7          0          0          0  PCI-MSIX-0000:00:03.0   0-edge      enp0s3
 41:          7          0          0          0  PCI-MSIX-0000:00:05.0   0-edge      enp0s44-rx-0
NMI:          0          0          0          0   Non-maskable interrupts
`), 0o644)
	aff := map[string]string{"32": "0-3", "33": "0-3", "34": "1", "35": "", "40": "0-3", "41": "0-3"}
	for irq, v := range aff {
		os.MkdirAll(filepath.Join(proc, "irq", irq), 0o755)
		if v != "" {
			os.WriteFile(filepath.Join(proc, "irq", irq, "smp_affinity_list"), []byte(v+"\n"), 0o644)
		}
	}
	// 35's file is a directory: the write fails.
	os.MkdirAll(filepath.Join(proc, "irq", "35", "smp_affinity_list"), 0o755)
	var out bytes.Buffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	failed := map[string]bool{}
	for range 2 {
		pinInterrupts(proc, 1, []string{"enp0s4", "enp0s6"}, failed, log)
	}
	for irq, want := range map[string]string{"32": "1", "33": "1", "34": "1\n", "40": "0-3\n", "41": "0-3\n"} {
		if b, _ := os.ReadFile(filepath.Join(proc, "irq", irq, "smp_affinity_list")); string(b) != want {
			t.Errorf("irq %s: affinity %q, want %q", irq, b, want)
		}
	}
	logged := out.String()
	if strings.Count(logged, `irqs=32,33`) != 1 || strings.Count(logged, "put on their core") != 1 {
		t.Errorf("moves not logged once:\n%s", logged)
	}
	if strings.Count(logged, `msg="profile: interrupt affinity skipped" irq=35 port=enp0s6`) != 1 {
		t.Errorf("a failed write not logged once:\n%s", logged)
	}
}
