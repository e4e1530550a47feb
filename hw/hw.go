// Package hw describes the appliances pwgate is built for: which core runs
// what, and how their NICs are set up for XDP. pwgated --profile NAME
// applies one. The systemd unit lives beside this file.
package hw

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Profile is one appliance model.
type Profile struct {
	Name        string
	Description string
	// Cores for the main, encap and decap goroutines, and the core that
	// takes both ports' interrupts (and so their XDP programs and the
	// kernel's copy into the AF_XDP rings).
	CoreMain, CoreEncap, CoreDecap, CoreIRQ int
	// Poll is the poll mode the profile recommends: the data cores are
	// dedicated, so busy.
	Poll string
	// Ethtool lists ethtool argument lists applied to each pseudowire port;
	// "IF" stands for the interface name.
	Ethtool [][]string
}

// The Intel I211 (igb) has two RX queues: pwgated serves one queue per
// port, so the port is reduced to one combined channel; GRO and LRO would
// merge frames before XDP sees them (and XDP refuses LRO); flow control
// pauses would stall the LAN when the uplink is slower. igb ignores rx and
// tx off while pause autonegotiation is on, and then pauses as the link
// partner offers (found on emulated igb): autoneg goes off with them.
var i211 = [][]string{
	{"-L", "IF", "combined", "1"},
	{"-K", "IF", "gro", "off", "lro", "off", "rx-vlan-offload", "off", "tx-vlan-offload", "off"},
	{"-A", "IF", "autoneg", "off", "rx", "off", "tx", "off"},
	{"-G", "IF", "rx", "1024", "tx", "1024"},
}

var profiles = map[string]Profile{
	"in-1": {
		Name:        "in-1",
		Description: "Skynew IN-1: Celeron N2940 (4 cores, no SMT), 4 GiB, 4x Intel I211",
		CoreMain:    0, CoreIRQ: 1, CoreEncap: 2, CoreDecap: 3,
		Poll: "busy", Ethtool: i211,
	},
	"c4": {
		Name:        "c4",
		Description: "Partaker C4: Celeron J3160 (4 cores, no SMT), 4 GiB, 4x Intel I211",
		CoreMain:    0, CoreIRQ: 1, CoreEncap: 2, CoreDecap: 3,
		Poll: "busy", Ethtool: i211,
	},
}

// Lookup returns the profile called name.
func Lookup(name string) (Profile, error) {
	p, ok := profiles[name]
	if !ok {
		return Profile{}, fmt.Errorf("unknown hardware profile %q (have %s)", name, strings.Join(Names(), ", "))
	}
	return p, nil
}

// Detect picks the profile of the box it runs on, from its DMI strings
// (dmiDir, /sys/class/dmi/id on Linux) or else its CPU model (cpuinfo,
// /proc/cpuinfo): the Skynew IN-1 has a Celeron N2940, the Partaker C4 a
// Celeron J3160. ok is false on any other box; seen says what was read,
// for the log.
func Detect(dmiDir, cpuinfo string) (p Profile, ok bool, seen string) {
	read := func(path string) string {
		b, _ := os.ReadFile(path)
		return strings.TrimSpace(string(b))
	}
	var dmi []string
	for _, f := range []string{"sys_vendor", "product_name", "board_vendor", "board_name"} {
		if v := read(filepath.Join(dmiDir, f)); v != "" {
			dmi = append(dmi, v)
		}
	}
	model := ""
	for _, line := range strings.Split(read(cpuinfo), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			model = strings.TrimSpace(v)
			break
		}
	}
	seen = fmt.Sprintf("DMI %q, CPU %q", strings.Join(dmi, " / "), model)
	all := strings.ToUpper(strings.Join(dmi, " "))
	switch {
	case strings.Contains(all, "SKYNEW") || strings.Contains(all, "IN-1") || strings.Contains(model, "N2940"):
		return profiles["in-1"], true, seen
	case strings.Contains(all, "PARTAKER") || strings.Contains(model, "J3160"):
		return profiles["c4"], true, seen
	}
	return Profile{}, false, seen
}

// Names lists the profiles.
func Names() []string {
	var n []string
	for k := range profiles {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// EthtoolArgs returns p's ethtool argument lists for interface ifname.
func (p Profile) EthtoolArgs(ifname string) [][]string {
	var out [][]string
	for _, args := range p.Ethtool {
		a := make([]string, len(args))
		for i, s := range args {
			if s == "IF" {
				s = ifname
			}
			a[i] = s
		}
		out = append(out, a)
	}
	return out
}
