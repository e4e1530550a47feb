package control

import (
	"bufio"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"

	"github.com/pwgate/pwgate/dataplane"
	"github.com/pwgate/pwgate/hw"
)

// UseProfile takes a hardware profile's cores and poll mode where the
// configuration does not set them itself.
func (c *Config) UseProfile(p hw.Profile) error {
	for _, k := range []struct {
		key  string
		dst  *int
		core int
	}{{"cores.main", &c.CoreMain, p.CoreMain}, {"cores.encap", &c.CoreEncap, p.CoreEncap}, {"cores.decap", &c.CoreDecap, p.CoreDecap}} {
		if !c.IsSet(k.key) {
			*k.dst = k.core
		}
	}
	if !c.IsSet("poll") {
		m, err := dataplane.ParsePollMode(p.Poll)
		if err != nil {
			return err
		}
		c.Poll = m
	}
	return nil
}

// ApplyNIC sets up both ports as the profile says: ethtool settings, and
// the ports' interrupts on the profile's interrupt core. Settings a driver
// does not support (veth has no channels, for one) are logged and skipped.
func ApplyNIC(p hw.Profile, c *Config, log *slog.Logger) {
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
