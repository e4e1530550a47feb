package control

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/hw"
)

// ApplyNIC sets up both ports with the profile's ethtool settings, before
// pwgated opens them. Settings a driver does not support (veth has no
// channels, for one) are logged and skipped. The ports' interrupts are put
// on the profile's core once the ports are open, and again whenever they
// move (pinInterrupts).
func ApplyNIC(p hw.Profile, c *config.Config, log *slog.Logger) {
	for _, ifname := range []string{c.Downlink, c.Uplink} {
		for _, args := range p.EthtoolArgs(ifname) {
			if out, err := exec.Command("ethtool", args...).CombinedOutput(); err != nil {
				log.Warn("profile: ethtool setting skipped", "profile", p.Name, "args", strings.Join(args, " "),
					"err", strings.TrimSpace(string(out)+" "+err.Error()))
			}
		}
	}
}

// pinInterrupts puts the ports' interrupts on core where they are not, and
// says which it moved. igb requests its interrupts anew, on every core,
// whenever XDP is attached, its rings change or its link is reset (found
// on emulated igb: set before the ports were opened, none stayed), so the
// main goroutine calls this once the ports are open and every second.
// Writes that fail are logged once per interrupt (failed). proc is where
// procfs is mounted.
func pinInterrupts(proc string, core int, ifnames []string, failed map[string]bool, log *slog.Logger) {
	want := fmt.Sprint(core)
	var moved []string
	for _, ifname := range ifnames {
		for _, irq := range interrupts(proc, ifname) {
			path := filepath.Join(proc, "irq", irq, "smp_affinity_list")
			if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) == want {
				continue
			}
			if err := os.WriteFile(path, []byte(want), 0); err != nil {
				if !failed[irq] {
					failed[irq] = true
					log.Warn("profile: interrupt affinity skipped", "irq", irq, "port", ifname, "err", err)
				}
				continue
			}
			moved = append(moved, irq)
		}
	}
	if len(moved) > 0 {
		log.Info("profile: the ports' interrupts put on their core", "core", core, "irqs", strings.Join(moved, ","))
	}
}

// interrupts lists the IRQ numbers /proc/interrupts names after ifname
// (igb calls them IF-TxRx-0 and so on).
func interrupts(proc, ifname string) []string {
	f, err := os.Open(filepath.Join(proc, "interrupts"))
	if err != nil {
		return nil
	}
	defer f.Close()
	var irqs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		last := fields[len(fields)-1]
		if last == ifname || strings.HasPrefix(last, ifname+"-") {
			irqs = append(irqs, strings.TrimSuffix(fields[0], ":"))
		}
	}
	return irqs
}
