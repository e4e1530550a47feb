package evpn

import (
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/pwgate/pwgate/control/bgp"
	"github.com/pwgate/pwgate/dataplane/stats"
	"github.com/pwgate/pwgate/dataplane/vxlan"
)

// reason is why a received route was not imported.
type reason int

const (
	imported   reason = iota
	noVNI             // no configured VNI with its route target and VNI
	ownVTEP           // no next hop, or ours
	family            // a VTEP of the other IP version
	vtepPrefix        // a VTEP outside the allowed prefixes
	vtepLimit         // a new VTEP beyond MaxVTEPs
	macLimit          // a new MAC beyond Limit, or too many routes for one MAC
	numReasons
)

// reasonCounters are the reasons' counters.
var reasonCounters = [numReasons]stats.Counter{0, stats.EVPNNotImportedNoVNI, stats.EVPNNotImportedOwnVTEP,
	stats.EVPNNotImportedFamily, stats.EVPNNotImportedVTEPPrefix, stats.EVPNNotImportedVTEPLimit, stats.EVPNNotImportedMACLimit}

// vniFor returns the index of the VNI a received route belongs to (by its
// route targets), or -1.
func (c *Controller) vniFor(u *bgp.Update) int {
	for i := range c.cfg.VNIs {
		for _, rt := range u.RTs {
			if c.imports(i, rt) && u.VNI == c.cfg.VNIs[i].ID {
				return i
			}
		}
	}
	return -1
}

// pathID names one neighbor's path to a route: the speaker reports every
// neighbor's, so that a path refused here (a VTEP outside that neighbor's
// prefixes) does not hide another neighbor's path to the same route.
func pathID(u *bgp.Update) string {
	if !u.Peer.IsValid() {
		return u.ID()
	}
	return u.ID() + "@" + u.Peer.String()
}

// update takes one neighbor's path to a route, or its withdrawal.
func (c *Controller) update(u *bgp.Update, now time.Time) {
	if u.Kind != bgp.MACIP && u.Kind != bgp.IMET {
		return
	}
	id := pathID(u)
	c.forget(id, now)
	retry := c.refused[id]
	delete(c.refused, id)
	if u.Withdraw {
		delete(c.received, id)
		return
	}
	c.received[id] = *u
	vi := c.vniFor(u)
	if why := c.refuse(u, vi); why != imported {
		if why == vtepLimit || why == macLimit {
			c.refused[id] = true
		}
		if !retry { // counted once, not at each retry
			c.counters.NotImported[why].Add(1)
		}
		return
	}
	c.importN++
	r := &remoteRoute{kind: u.Kind, order: c.importN, vni: vi, vtep: u.NextHop, seq: u.Seq, sticky: u.Sticky, ip: u.IP, pwgate: u.Pwgate, peer: u.Peer}
	c.routes[id] = r
	if r.ip.IsValid() {
		c.neighDirty, c.dirty = true, true
	}
	c.peerRef(r, 1)
	i := c.ref(r.vtep)
	if u.Kind == bgp.IMET {
		for len(c.byVNI) <= vi {
			c.byVNI = append(c.byVNI, map[string]bool{})
		}
		c.byVNI[vi][id] = true
		if r.pwgate {
			c.vteps[i].pwgate++
		}
		return
	}
	r.key = vxlan.MakeKey(vi, u.MAC)
	if c.byKey[r.key] == nil {
		c.byKey[r.key] = map[string]bool{}
	}
	c.byKey[r.key][id] = true
	c.settle(r.key, now)
}

// refuse says why the received route u (for VNI index vi) is not
// imported, or imported. What a neighbor sends is checked here before it
// reaches the forwarding database, the flood lists or the XDP program:
// the VTEP's family and prefix, and the limits on VTEPs and MACs.
func (c *Controller) refuse(u *bgp.Update, vi int) reason {
	nh := u.NextHop
	switch {
	case !nh.IsValid() || nh == c.cfg.Local:
		return ownVTEP
	case nh.Is4() != c.cfg.Local.Is4() || nh.Is4In6():
		return family
	case vi < 0:
		return noVNI
	}
	allowed, ok := c.cfg.NeighborVTEPs[u.Peer]
	if !ok {
		allowed = c.cfg.VTEPPrefixes
	}
	if len(allowed) > 0 && !slices.ContainsFunc(allowed, func(p netip.Prefix) bool { return p.Contains(nh) }) {
		return vtepPrefix
	}
	if _, ok := c.vtepIdx[nh]; !ok && len(c.vtepIdx) >= c.cfg.MaxVTEPs {
		return vtepLimit
	}
	if m := c.byPeer[u.Peer]; m[nh] == 0 && len(m) >= c.cfg.NeighborVTEPLimit {
		return vtepLimit
	}
	if u.Kind == bgp.MACIP {
		k := vxlan.MakeKey(vi, u.MAC)
		if _, ok := c.b.Get(k); !ok && c.b.Len() >= c.cfg.Limit || len(c.byKey[k]) >= maxRoutesPerMAC {
			return macLimit
		}
	}
	return imported
}

// peerRef counts (delta 1) or uncounts (-1) r for its neighbor's VTEPs.
func (c *Controller) peerRef(r *remoteRoute, delta int) {
	m := c.byPeer[r.peer]
	if m == nil {
		m = map[netip.Addr]int{}
		c.byPeer[r.peer] = m
	}
	if m[r.vtep] += delta; m[r.vtep] <= 0 {
		delete(m, r.vtep)
		c.roomMade = true
		if len(m) == 0 {
			delete(c.byPeer, r.peer)
		}
	}
}

// retryRefused imports again the routes refused for a limit, once room
// was made (a VTEP or a MAC went).
func (c *Controller) retryRefused(now time.Time) {
	if !c.roomMade || len(c.refused) == 0 {
		c.roomMade = false
		return
	}
	c.roomMade = false
	// update changes c.refused: walk a copy of its IDs.
	for _, id := range slices.Collect(maps.Keys(c.refused)) {
		u, ok := c.received[id]
		if !ok {
			delete(c.refused, id)
			continue
		}
		c.update(&u, now)
	}
}

// forget removes a received route, if known.
func (c *Controller) forget(id string, now time.Time) {
	r, ok := c.routes[id]
	if !ok {
		return
	}
	delete(c.routes, id)
	c.peerRef(r, -1)
	if r.ip.IsValid() {
		c.neighDirty, c.dirty = true, true
	}
	if r.kind == bgp.IMET {
		delete(c.byVNI[r.vni], id)
		if i, ok := c.vtepIdx[r.vtep]; ok && r.pwgate {
			c.vteps[i].pwgate--
		}
		c.unref(r.vtep)
		return
	}
	if ids := c.byKey[r.key]; ids != nil {
		delete(ids, id)
		if len(ids) == 0 {
			delete(c.byKey, r.key)
		}
	}
	c.unref(r.vtep)
	c.settle(r.key, now)
}

// best returns the winning remote MAC route for k (RFC 7432 §15: the
// highest sequence number, then the lowest VTEP address), or nil.
func (c *Controller) best(k vxlan.Key) *remoteRoute {
	var b *remoteRoute
	for id := range c.byKey[k] {
		r := c.routes[id]
		if b == nil || r.seq > b.seq || r.seq == b.seq && r.vtep.Less(b.vtep) {
			b = r
		}
	}
	return b
}

// settle makes the FDB entry of k agree with what is known about it: a
// local MAC that a remote route with a higher sequence (or the same, from
// a lower address) beats has moved away.
func (c *Controller) settle(k vxlan.Key, now time.Time) {
	b := c.best(k)
	if l, ok := c.locals[k]; ok {
		if b == nil || b.seq < l.seq || b.seq == l.seq && c.cfg.Local.Less(b.vtep) {
			return
		}
		c.withdraw(k, l)
		c.dropLocal(k, l)
		c.moved(k, now)
	}
	if b == nil {
		if lr, ok := c.lremote[k]; ok {
			c.b.Set(k, vxlan.Entry{VTEP: c.vtepIdx[lr.vtep], Seen: lr.seen})
		} else {
			c.b.Delete(k)
			c.roomMade = true
		}
		c.dirty = true
		return
	}
	vt := c.vtepIdx[b.vtep]
	if old, ok := c.b.Get(k); ok && old.VTEP != vxlan.Local && old.VTEP != vt {
		c.moved(k, now) // from one remote VTEP to another
	}
	c.b.Set(k, vxlan.Entry{VTEP: vt})
	c.dirty = true
}
