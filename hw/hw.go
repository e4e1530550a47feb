// Package hw describes the appliances pwgate is built for: which core runs
// what, and how their NICs are set up for XDP. pwgated --profile NAME
// applies one. The systemd unit lives beside this file.
package hw

import (
	"fmt"
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
// pauses would stall the LAN when the uplink is slower.
var i211 = [][]string{
	{"-L", "IF", "combined", "1"},
	{"-K", "IF", "gro", "off", "lro", "off", "rx-vlan-offload", "off", "tx-vlan-offload", "off"},
	{"-A", "IF", "rx", "off", "tx", "off"},
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
