package evpn

import (
	"github.com/pwgate/pwgate/control/bgp"
	"github.com/pwgate/pwgate/dataplane/vxlan"
)

// rt returns VNI i's route target.
func (c *Controller) rt(i int) bgp.RT {
	v := c.cfg.VNIs[i]
	if v.RT != (bgp.RT{}) {
		return v.RT
	}
	return bgp.AutoRT(c.cfg.ASN, v.ID)
}

// imports reports whether rt brings a route into VNI i.
func (c *Controller) imports(i int, rt bgp.RT) bool {
	v := c.cfg.VNIs[i]
	if v.RT != (bgp.RT{}) {
		return rt == v.RT
	}
	return rt.Value == v.ID
}

func (c *Controller) announceIMETs() {
	if c.sp == nil {
		return
	}
	for i, v := range c.cfg.VNIs {
		r := bgp.Route{Kind: bgp.IMET, RD: bgp.AutoRD(c.cfg.RouterID, i), VNI: v.ID, RTs: []bgp.RT{c.rt(i)},
			Pwgate: c.cfg.Pwgate, NextHop: c.cfg.Local}
		if old, ok := c.imets[i]; ok && old.String() == r.String() {
			continue
		}
		if err := c.sp.Announce(r); err != nil {
			c.log.Error("evpn: announce flood route", "vni", v.ID, "err", err)
			continue
		}
		c.imets[i] = r
	}
}

// macRoute is our MAC route for a local MAC.
func (c *Controller) macRoute(k vxlan.Key, l *local) bgp.Route {
	vi := k.VNI()
	return bgp.Route{Kind: bgp.MACIP, RD: bgp.AutoRD(c.cfg.RouterID, vi), MAC: k.MAC(), VNI: c.cfg.VNIs[vi].ID,
		RTs: []bgp.RT{c.rt(vi)}, Seq: l.seq, NextHop: c.cfg.Local}
}

// ourRoutes returns our MAC route for a LAN MAC and its MAC+IP routes.
func (c *Controller) ourRoutes(k vxlan.Key, l *local) []bgp.Route {
	r := c.macRoute(k, l)
	out := []bgp.Route{r}
	for _, ip := range l.ips {
		r.IP = ip
		out = append(out, r)
	}
	return out
}

func (c *Controller) announce(k vxlan.Key, l *local) {
	if c.sp == nil || c.duplicate(k) {
		return
	}
	for _, r := range c.ourRoutes(k, l) {
		if err := c.sp.Announce(r); err != nil {
			c.log.Error("evpn: announce MAC", "mac", k.MAC().String(), "ip", r.IP, "vni", c.cfg.VNIs[k.VNI()].ID, "err", err)
			return
		}
	}
	l.announced = true
}

func (c *Controller) withdraw(k vxlan.Key, l *local) {
	if c.sp == nil || !l.announced {
		return
	}
	for _, r := range c.ourRoutes(k, l) {
		if err := c.sp.Withdraw(r); err != nil {
			c.log.Error("evpn: withdraw MAC", "mac", k.MAC().String(), "ip", r.IP, "err", err)
		}
	}
	l.announced = false
}
