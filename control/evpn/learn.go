package evpn

import (
	"net/netip"
	"slices"
	"time"

	"github.com/pwgate/pwgate/dataplane/vxlan"
)

// learnIP takes an address a LAN MAC announced for itself: it is
// announced as a MAC+IP route, and taken from the MAC that had it before.
func (c *Controller) learnIP(k vxlan.Key, ip netip.Addr) {
	l, ok := c.locals[k]
	if !ok || slices.Contains(l.ips, ip) {
		return
	}
	ik := ipKey{k.VNI(), ip}
	if prev, ok := c.ipOwner[ik]; ok && prev != k {
		if p := c.locals[prev]; p != nil {
			if p.announced && c.sp != nil {
				r := c.macRoute(prev, p)
				r.IP = ip
				c.sp.Withdraw(r)
			}
			p.ips = slices.DeleteFunc(p.ips, func(a netip.Addr) bool { return a == ip })
		}
	}
	if len(l.ips) >= maxIPs {
		return
	}
	l.ips = append(l.ips, ip)
	c.ipOwner[ik] = k
	c.importN++
	c.ipOrder[ik] = c.importN
	c.neighDirty, c.dirty = true, true
	if l.announced && c.sp != nil {
		r := c.macRoute(k, l)
		r.IP = ip
		if err := c.sp.Announce(r); err != nil {
			c.log.Error("evpn: announce MAC+IP", "mac", k.MAC().String(), "ip", ip, "err", err)
		}
	}
}

func (c *Controller) dropLocal(k vxlan.Key, l *local) {
	for _, ip := range l.ips {
		if ik := (ipKey{k.VNI(), ip}); c.ipOwner[ik] == k {
			delete(c.ipOwner, ik)
			delete(c.ipOrder, ik)
			c.neighDirty = true
		}
	}
	delete(c.locals, k)
	c.freeSeen = append(c.freeSeen, l.seen)
	c.b.Delete(k)
	c.dirty = true
	c.roomMade = true
}

// moved records a move of k and reports whether it is now a duplicate.
func (c *Controller) moved(k vxlan.Key, now time.Time) {
	c.counters.Moved.Add(1)
	m := c.mob[k]
	if m == nil {
		m = &mobility{}
		c.mob[k] = m
	}
	m.moves = append(m.moves, now)
	for len(m.moves) > 0 && now.Sub(m.moves[0]) > c.cfg.DupWindow {
		m.moves = m.moves[1:]
	}
	if !m.duplicate && len(m.moves) >= c.cfg.DupMoves {
		m.duplicate = true
		c.counters.Duplicates.Add(1)
		c.log.Warn("evpn: duplicate MAC: it moves too often, its moves are no longer announced",
			"mac", k.MAC().String(), "vni", c.cfg.VNIs[k.VNI()].ID, "moves", len(m.moves), "within", c.cfg.DupWindow.String())
	}
}

func (c *Controller) duplicate(k vxlan.Key) bool {
	m := c.mob[k]
	return m != nil && m.duplicate
}

// takeSeen returns a free seen slot stamped now, or false at the limit.
func (c *Controller) takeSeen(now time.Time) (int32, bool) {
	if len(c.freeSeen) == 0 || c.b.Len() >= c.cfg.Limit {
		c.counters.OverLimit.Add(1)
		return 0, false
	}
	s := c.freeSeen[len(c.freeSeen)-1]
	c.freeSeen = c.freeSeen[:len(c.freeSeen)-1]
	c.b.Seen()[s].Store(now.Unix())
	return s, true
}

// learnLocal takes a MAC seen on the LAN.
func (c *Controller) learnLocal(k vxlan.Key, now time.Time) {
	if int(k.VNI()) >= len(c.cfg.VNIs) {
		return // reported before a reconfiguration
	}
	if _, ok := c.locals[k]; ok {
		return
	}
	b := c.best(k)
	if b != nil && b.sticky {
		return // RFC 7432 §15.2: a sticky MAC does not move
	}
	seen, ok := c.takeSeen(now)
	if !ok {
		return
	}
	l := &local{seen: seen, since: now}
	if b != nil {
		l.seq = b.seq + 1
		c.moved(k, now)
	}
	if lr, ok := c.lremote[k]; ok {
		c.dropLearnedRemote(k, lr)
		c.moved(k, now)
	}
	c.locals[k] = l
	c.b.Set(k, vxlan.Entry{VTEP: vxlan.Local, Seen: seen})
	c.dirty = true
	c.counters.Learned.Add(1)
	c.announce(k, l)
}

// learnRemote takes a MAC seen in a frame from VTEP index vt.
func (c *Controller) learnRemote(k vxlan.Key, vt int32, now time.Time) {
	if !c.cfg.LearnRemote || int(k.VNI()) >= len(c.cfg.VNIs) || int(vt) >= len(c.vteps) || c.vteps[vt].refs == 0 {
		return
	}
	if len(c.byKey[k]) > 0 {
		return // BGP knows better
	}
	a := c.vteps[vt].addr
	if lr, ok := c.lremote[k]; ok {
		if lr.vtep == a {
			return
		}
		c.dropLearnedRemote(k, lr)
		c.moved(k, now)
	}
	if l, ok := c.locals[k]; ok {
		c.withdraw(k, l)
		c.dropLocal(k, l)
		c.moved(k, now)
	}
	seen, ok := c.takeSeen(now)
	if !ok {
		return
	}
	c.ref(a)
	c.lremote[k] = learnedRemote{vtep: a, seen: seen}
	c.b.Set(k, vxlan.Entry{VTEP: vt, Seen: seen})
	c.dirty = true
	c.counters.Learned.Add(1)
}

func (c *Controller) dropLearnedRemote(k vxlan.Key, lr learnedRemote) {
	delete(c.lremote, k)
	c.freeSeen = append(c.freeSeen, lr.seen)
	c.unref(lr.vtep)
	c.b.Delete(k)
	c.dirty = true
	c.roomMade = true
}

// Age forgets learned MACs silent for longer than the aging time, and
// clears duplicate marks older than the detection window.
func (c *Controller) Age(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := c.b.Seen()
	limit := now.Add(-c.cfg.Aging).Unix()
	for k, l := range c.locals {
		if seen[l.seen].Load() < limit {
			c.withdraw(k, l)
			c.dropLocal(k, l)
			c.counters.Aged.Add(1)
			c.settle(k, now) // a remote route may be waiting
		}
	}
	for k, lr := range c.lremote {
		if seen[lr.seen].Load() < limit {
			c.dropLearnedRemote(k, lr)
			c.counters.Aged.Add(1)
		}
	}
	for k, m := range c.mob {
		for len(m.moves) > 0 && now.Sub(m.moves[0]) > c.cfg.DupWindow {
			m.moves = m.moves[1:]
		}
		if len(m.moves) > 0 {
			continue
		}
		delete(c.mob, k)
		if m.duplicate {
			c.log.Info("evpn: duplicate MAC settled", "mac", k.MAC().String(), "vni", c.cfg.VNIs[k.VNI()].ID)
			if l, ok := c.locals[k]; ok {
				c.announce(k, l)
			}
		}
	}
	c.retryRefused(now)
	c.flush()
}
