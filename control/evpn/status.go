package evpn

import (
	"cmp"
	"slices"
	"time"

	"github.com/pwgate/pwgate/control/bgp"
	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/dataplane/stats"
	"github.com/pwgate/pwgate/dataplane/vxlan"
)

// Status returns the state "pwctl evpn" shows (MaxFrame left to the
// caller, which knows the underlay).
func (c *Controller) Status() client.EVPN {
	c.mu.Lock()
	defer c.mu.Unlock()
	tab := c.fdb.Load()
	st := client.EVPN{Local: c.cfg.Local.String(), RoutesReceived: map[string]int{}, RoutesAnnounced: map[string]int{}}
	macsPer := map[int32]int{}
	localPer, remotePer := map[int]int{}, map[int]int{}
	tab.Each(func(k vxlan.Key, e vxlan.Entry) {
		if e.VTEP == vxlan.Local {
			localPer[k.VNI()]++
			st.MACs.Local++
			return
		}
		macsPer[e.VTEP]++
		remotePer[k.VNI()]++
		st.MACs.Remote++
	})
	for i, v := range tab.VNIs {
		x := client.VNI{VNI: v.ID, VLAN: v.VLAN, LocalMACs: localPer[i], RemoteMACs: remotePer[i], Flood: []string{}}
		if c.sp != nil {
			x.RD, x.RT = bgp.AutoRD(c.cfg.RouterID, i), c.rt(i).String()
		}
		for _, f := range v.Flood {
			x.Flood = append(x.Flood, tab.VTEPs[f].Addr.String())
		}
		st.VNIs = append(st.VNIs, x)
	}
	for i, v := range c.vteps {
		if v.refs == 0 {
			continue
		}
		x := client.VTEP{Address: v.addr.String(), Resolved: v.resolved, Pwgate: tab.VTEPs[i].Pwgate, Static: v.static, MACs: macsPer[int32(i)]}
		if v.resolved {
			x.NextHop = v.nextHop.String()
		}
		st.VTEPs = append(st.VTEPs, x)
	}
	slices.SortFunc(st.VTEPs, func(a, b client.VTEP) int { return cmp.Compare(a.Address, b.Address) })
	for _, m := range c.mob {
		if m.duplicate {
			st.MACs.Duplicates++
		}
	}
	st.MACs.Limit = c.cfg.Limit
	for _, r := range c.routes {
		st.RoutesReceived[kindName(r.kind)]++
	}
	for _, l := range c.locals {
		if l.announced {
			st.RoutesAnnounced["macip"] += 1 + len(l.ips)
		}
	}
	st.RoutesAnnounced["imet"] = len(c.imets)
	return st
}

func kindName(k bgp.RouteKind) string {
	if k == bgp.IMET {
		return "imet"
	}
	return "macip"
}

// Entries returns the forwarding database, sorted by VNI and MAC.
func (c *Controller) Entries(now time.Time) []client.FDBEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	tab := c.fdb.Load()
	out := []client.FDBEntry{}
	tab.Each(func(k vxlan.Key, e vxlan.Entry) {
		x := client.FDBEntry{VNI: tab.VNIs[k.VNI()].ID, MAC: k.MAC().String(), Duplicate: c.duplicate(k)}
		switch {
		case e.VTEP == vxlan.Local:
			x.VTEP, x.Origin = "local", "lan"
			if l, ok := c.locals[k]; ok {
				x.Seq = l.seq
				for _, ip := range l.ips {
					x.IPs = append(x.IPs, ip.String())
				}
				slices.Sort(x.IPs)
			}
		default:
			x.VTEP, x.Origin = tab.VTEPs[e.VTEP].Addr.String(), "evpn"
			if b := c.best(k); b != nil {
				x.Seq, x.Sticky = b.seq, b.sticky
			} else {
				x.Origin = "data"
			}
			for id := range c.byKey[k] {
				if ip := c.routes[id].ip; ip.IsValid() && !slices.Contains(x.IPs, ip.String()) {
					x.IPs = append(x.IPs, ip.String())
				}
			}
			slices.Sort(x.IPs)
		}
		if e.Seen != 0 {
			x.IdleSecs = max(0, now.Unix()-tab.Seen[e.Seen].Load())
		}
		out = append(out, x)
	})
	slices.SortFunc(out, func(a, b client.FDBEntry) int {
		return cmp.Or(cmp.Compare(a.VNI, b.VNI), cmp.Compare(a.MAC, b.MAC))
	})
	return out
}

// AddCounters adds the controller's counters to s.
func (c *Controller) AddCounters(s *stats.Snapshot) {
	s[stats.EVPNMACsLearned] += c.counters.Learned.Load()
	s[stats.EVPNMACsAged] += c.counters.Aged.Load()
	s[stats.EVPNMACsMoved] += c.counters.Moved.Load()
	s[stats.EVPNMACsDuplicate] += c.counters.Duplicates.Load()
	s[stats.EVPNMACsOverLimit] += c.counters.OverLimit.Load()
	for why := noVNI; why < numReasons; why++ {
		n := c.counters.NotImported[why].Load()
		s[reasonCounters[why]] += n
		s[stats.EVPNRoutesNotImported] += n
	}
}
