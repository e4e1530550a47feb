package evpn

import (
	"net/netip"
	"slices"
	"time"

	"github.com/pwgate/pwgate/control/bgp"
	"github.com/pwgate/pwgate/dataplane/vxlan"
)

// flush publishes a new table if anything changed, and the VTEP set.
// A failed update of the VTEP set is tried again at the next call (Age
// calls it every few seconds), not only when something changes.
func (c *Controller) flush() {
	now := time.Now()
	neigh := c.neighDirty && now.Sub(c.neighMade) >= neighEvery
	if c.neighDirty && !neigh && !c.neighLater {
		// Made when neighEvery has passed: the wake runs Work.
		c.neighLater = true
		time.AfterFunc(neighEvery, c.notify)
	}
	if !c.dirty && !neigh && !c.peerErr {
		return
	}
	if c.dirty || neigh {
		c.dirty = false
		c.setVNIs()
		if neigh {
			c.neighDirty, c.neighLater, c.neighMade = false, false, now
			c.b.SetNeigh(c.neighMap())
		}
		c.publish()
	}
	set := c.vtepAddrs()
	if slices.Equal(set, c.peerSet) {
		c.peerErr = false
		return
	}
	if err := c.u.SetVTEPs(set); err != nil {
		if !c.peerErr {
			c.log.Error("evpn: set the XDP program's VTEPs (tried again every few seconds)", "vteps", len(set), "err", err)
		}
		c.peerErr = true
		return
	}
	if c.peerErr {
		c.log.Info("evpn: the XDP program's VTEPs are set again", "vteps", len(set))
	}
	c.peerErr = false
	c.peerSet = set
}

func (c *Controller) vtepAddrs() []netip.Addr {
	var out []netip.Addr
	for _, v := range c.vteps {
		if v.refs > 0 {
			out = append(out, v.addr)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// publish makes the builder's state the data path's.
func (c *Controller) publish() {
	vt := make([]vxlan.VTEP, len(c.vteps))
	for i, v := range c.vteps {
		if v.refs > 0 {
			vt[i] = vxlan.VTEP{Addr: v.addr, NextHop: v.nextHop, Up: v.resolved, Pwgate: v.pwgate > 0 || v.static && c.cfg.StaticPwgate}
		}
	}
	c.b.SetVTEPs(vt)
	c.fdb.Store(c.b.Publish())
}

// neighEvery is how often at most the address table is made again: it is
// made whole, and a neighbor's stream of MAC+IP routes must not make it
// at every batch. A change within it is made when it has passed.
const neighEvery = 200 * time.Millisecond

// neighMap makes the data path's address table. Of the imported MAC+IP
// routes naming one address, the one with the highest MAC mobility
// sequence, then the latest imported, gives the MAC; a LAN host's own
// address replaces a route's taken before it (a host that came here), and
// gives way to one imported after it (the address went to a host
// elsewhere).
func (c *Controller) neighMap() map[vxlan.NeighKey]vxlan.Neigh {
	m := make(map[vxlan.NeighKey]vxlan.Neigh, len(c.ipOwner))
	type rank struct{ seq, order uint64 }
	best := map[vxlan.NeighKey]rank{}
	for _, r := range c.routes {
		if r.kind != bgp.MACIP || !r.ip.IsValid() {
			continue
		}
		k := vxlan.NeighKey{VNI: int32(r.vni), IP: r.ip.As16()}
		rk := rank{uint64(r.seq), r.order}
		if b, ok := best[k]; ok && (b.seq > rk.seq || b.seq == rk.seq && b.order > rk.order) {
			continue
		}
		best[k] = rk
		m[k] = vxlan.Neigh{MAC: r.key.MAC()}
	}
	for ik, k := range c.ipOwner {
		nk := vxlan.NeighKey{VNI: int32(ik.vni), IP: ik.ip.As16()}
		if b, ok := best[nk]; ok && b.order > c.ipOrder[ik] {
			continue
		}
		m[nk] = vxlan.Neigh{MAC: k.MAC(), Local: true}
	}
	return m
}

// setVNIs gives the builder the VNIs with their flood lists: the static
// remotes and the VTEPs that sent flood routes.
func (c *Controller) setVNIs() {
	vnis := make([]vxlan.VNI, len(c.cfg.VNIs))
	for i, v := range c.cfg.VNIs {
		set := map[int32]bool{}
		for _, r := range v.Remotes {
			set[c.vtepIdx[r]] = true
		}
		if i < len(c.byVNI) {
			for id := range c.byVNI[i] {
				set[c.vtepIdx[c.routes[id].vtep]] = true
			}
		}
		flood := make([]int32, 0, len(set))
		for x := range set {
			flood = append(flood, x)
		}
		slices.Sort(flood)
		vnis[i] = vxlan.VNI{ID: v.ID, VLAN: v.VLAN, Flood: flood, Suppress: v.Suppress}
	}
	c.b.SetVNIs(vnis)
}

// ref takes a reference to the VTEP at a and returns its index: a new
// VTEP gets a free index and its next hop is looked up.
func (c *Controller) ref(a netip.Addr) int32 {
	i, ok := c.vtepIdx[a]
	if !ok {
		i = int32(slices.IndexFunc(c.vteps, func(v vtep) bool { return v.refs == 0 }))
		if i < 0 {
			c.vteps = append(c.vteps, vtep{})
			i = int32(len(c.vteps) - 1)
		}
		c.vteps[i] = vtep{addr: a}
		c.vteps[i].nextHop, c.vteps[i].resolved = c.u.NextHop(a)
		c.vtepIdx[a] = i
	}
	c.vteps[i].refs++
	c.dirty = true
	return i
}

// unref drops a reference; the last frees the index.
func (c *Controller) unref(a netip.Addr) {
	i, ok := c.vtepIdx[a]
	if !ok {
		return
	}
	c.dirty = true
	if c.vteps[i].refs--; c.vteps[i].refs == 0 {
		c.vteps[i] = vtep{}
		delete(c.vtepIdx, a)
		c.roomMade = true
	}
}

// refStatic takes (delta 1) or drops (-1) the static remotes' references.
func (c *Controller) refStatic(vnis []VNI, delta int) {
	for _, v := range vnis {
		for _, r := range v.Remotes {
			if delta > 0 {
				c.vteps[c.ref(r)].static = true
				continue
			}
			c.unref(r)
		}
	}
	// A VTEP stays static while any VNI lists it.
	for i := range c.vteps {
		c.vteps[i].static = false
	}
	for _, v := range c.cfg.VNIs {
		for _, r := range v.Remotes {
			if i, ok := c.vtepIdx[r]; ok {
				c.vteps[i].static = true
			}
		}
	}
}

// Resolve looks up the VTEPs' next hops again and reports whether any is
// still unresolved.
func (c *Controller) Resolve() (unresolved bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := range c.vteps {
		v := &c.vteps[i]
		if v.refs == 0 {
			continue
		}
		mac, ok := c.u.NextHop(v.addr)
		if mac != v.nextHop || ok != v.resolved {
			v.nextHop, v.resolved = mac, ok
			c.dirty = true
		}
		unresolved = unresolved || !ok
	}
	c.flush()
	return unresolved
}
