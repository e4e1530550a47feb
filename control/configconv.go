package control

// What the daemon's parts are given, made from the configuration
// (control/config knows none of them).

import (
	"net/netip"
	"slices"

	"github.com/pwgate/pwgate/control/bgp"
	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/control/evpn"
	"github.com/pwgate/pwgate/dataplane"
)

// CheckCores is c.CheckCores with the cores this process may use.
func CheckCores(c *config.Config) error {
	avail, err := dataplane.AvailableCores()
	if err != nil {
		return err
	}
	return c.CheckCores(avail)
}

// speakerConfig is the bgp.Config for c's bgp section.
func speakerConfig(c *config.Config, restarting bool) bgp.Config {
	b := c.BGP
	sc := bgp.Config{ASN: b.ASN, RouterID: b.RouterID, ListenAddrs: b.Listen, ListenPort: b.Port,
		GracefulRestart: b.GracefulRestart, RestartTime: b.RestartTime, Restarting: restarting && b.GracefulRestart}
	for _, n := range b.Resolved() {
		// Sessions come from our VTEP address, which the neighbors know
		// (the kernel might pick a SLAAC address of the same prefix).
		if vtep := c.VTEPAddr(); !n.Source.IsValid() && n.Address.IsValid() && vtep.IsValid() && vtep.Is4() == n.Address.Is4() {
			n.Source = vtep
		}
		sc.Neighbors = append(sc.Neighbors, bgp.Neighbor{Address: n.Address, Interface: n.Interface, ASN: n.ASN,
			Password: n.Password, HoldTime: n.HoldTime, Keepalive: n.Keepalive, Families: n.Families, MaxPrefix: n.MaxPrefix,
			Multihop: n.Multihop, TTLSecurity: n.TTLSecurity, Source: n.Source, Description: n.Description, DefaultOriginate: n.DefaultOriginate,
			Import: n.Import, Export: n.Export})
	}
	return sc
}

// evpnConfig is the controller's configuration for c; local is our VTEP
// address as the kernel has it.
func evpnConfig(c *config.Config, local netip.Addr) evpn.Config {
	x := c.VXLAN
	e := evpn.Config{Local: local, Aging: x.MACAging, Limit: x.MACLimit, LearnRemote: c.LearnRemote(), StaticPwgate: x.Split}
	for i, v := range x.VNIs {
		rem := append(slices.Clone(x.Remotes), v.Remotes...)
		slices.SortFunc(rem, netip.Addr.Compare)
		e.VNIs = append(e.VNIs, evpn.VNI{ID: v.VNI, VLAN: v.VLAN, Remotes: slices.Compact(rem), RT: v.RT, Suppress: c.SuppressARP(i)})
	}
	if c.BGP != nil && c.BGP.UsesEVPN() {
		e.ASN, e.RouterID, e.Pwgate = c.BGP.ASN, c.BGP.RouterID, x.Split
		e.VTEPPrefixes, _ = c.VTEPPrefixList()
		for _, n := range c.BGP.Resolved() {
			if len(n.VTEPPrefixes) > 0 && n.Address.IsValid() {
				if e.NeighborVTEPs == nil {
					e.NeighborVTEPs = map[netip.Addr][]netip.Prefix{}
				}
				e.NeighborVTEPs[n.Address] = n.VTEPPrefixes
			}
		}
	}
	return e
}
