package control

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"

	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/hw"
)

// ApplyNIC sets up both ports as the profile says: ethtool settings, and
// the ports' interrupts on the profile's interrupt core. Settings a driver
// does not support (veth has no channels, for one) are logged and skipped.
func ApplyNIC(p hw.Profile, c *config.Config, log *slog.Logger) {
	for _, ifname := range []string{c.Downlink, c.Uplink} {
		for _, args := range p.EthtoolArgs(ifname) {
			if out, err := exec.Command("ethtool", args...).CombinedOutput(); err != nil {
				log.Warn("profile: ethtool setting skipped", "profile", p.Name, "args", strings.Join(args, " "),
					"err", strings.TrimSpace(string(out)+" "+err.Error()))
			}
		}
		for _, irq := range interrupts(ifname) {
			path := fmt.Sprintf("/proc/irq/%s/smp_affinity_list", irq)
			if err := os.WriteFile(path, []byte(fmt.Sprint(p.CoreIRQ)), 0); err != nil {
				log.Warn("profile: interrupt affinity skipped", "irq", irq, "err", err)
			}
		}
	}
}

// interrupts lists the IRQ numbers /proc/interrupts names after ifname
// (igb calls them IF-TxRx-0 and so on).
func interrupts(ifname string) []string {
	f, err := os.Open("/proc/interrupts")
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
