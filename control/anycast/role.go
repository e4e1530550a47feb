package anycast

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pwgate/pwgate/bpf"
	"github.com/pwgate/pwgate/control/bgp"
	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/control/feature"
	"github.com/pwgate/pwgate/control/uplink"
)

// Role is anycast in a pwgated, alone or beside a pseudowire or a
// VTEP on one BGP speaker: the announcer (VIPs announced while their
// checks pass) and the forwarder (an XDP program spreading VIPs over the
// servers BGP names). The main goroutine runs it; the statistics sockets
// read it under mu.
type Role struct {
	log   *slog.Logger
	ports []string       // the forwarder's
	vips  []netip.Prefix // forwarded

	mu  sync.Mutex // guards ann, fwd, xdp
	ann *Announcer
	fwd *Forwarder
	xdp *bpf.Anycast
	lnk []link.Link
	hop *uplink.Resolver // under mu
	// anyHop (anycast.forward.next_hop: any) takes a server's next hop
	// reached through a gateway; by default it must be on-link.
	anyHop bool
	// routes are the kernel routes to the forwarded VIPs (their servers,
	// comma-separated), for what the program passes to the kernel.
	routes map[netip.Prefix]string

	// BGP's goroutine queues updates; the main goroutine takes them.
	qmu   sync.Mutex
	queue []bgp.Update
	wake  chan struct{}
}

// NewRole loads and attaches c's forwarder, if it has one. On
// error nothing is left attached.
func NewRole(c *config.Config, log *slog.Logger) (_ *Role, err error) {
	r := &Role{log: log, wake: make(chan struct{}, 1), routes: map[netip.Prefix]string{}}
	f := c.Anycast.Forward
	if f == nil {
		return r, nil
	}
	defer func() {
		if err != nil {
			r.Close(false)
		}
	}()
	r.ports, r.vips = f.Interfaces, f.VIPs
	if r.hop, err = uplink.NewResolver(); err != nil {
		return nil, fmt.Errorf("anycast forwarder: %w", err)
	}
	xdp, err := bpf.LoadAnycast(f.TableSize)
	if err != nil {
		return nil, err
	}
	r.mu.Lock() // the sockets may answer already
	r.xdp = xdp
	r.mu.Unlock()
	fwd, err := NewForwarder(xdp, r.resolve, f.VIPs, f.TableSize, log)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.fwd = fwd
	r.mu.Unlock()
	r.setTrust(c)
	for _, n := range f.Interfaces {
		l, err := xdp.Attach(n, bpf.AttachMode(c.XDPMode))
		if err != nil {
			return nil, err
		}
		r.lnk = append(r.lnk, l)
	}
	return r, nil
}

// Announce starts announcing vips over sp, which runs already; the first
// checks wait up to clockWait for the system clock (anycast.clock_wait).
func (r *Role) Announce(sp bgp.Speaker, vips []VIP, clockWait time.Duration) {
	ann := NewAnnouncer(sp, r.log)
	ann.WaitForClock(clockWait, ClockSynced)
	r.mu.Lock()
	r.ann = ann
	r.mu.Unlock()
	ann.Set(vips)
}

// ClockSynced reports whether the kernel says the system clock is
// synchronised (an NTP client such as systemd-timesyncd has set it and
// cleared STA_UNSYNC).
func ClockSynced() bool {
	var t unix.Timex
	state, err := unix.Adjtimex(&t)
	return err == nil && state != unix.TIME_ERROR && t.Status&unix.STA_UNSYNC == 0
}

// Received runs on BGP's goroutine: it only queues.
func (r *Role) Received(us []bgp.Update) {
	r.qmu.Lock()
	r.queue = append(r.queue, us...)
	r.qmu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// setTrust gives the forwarder c's anycast.forward.neighbors and
// next_hop (at the start and on a reload); the paths received so far are
// weighed again. Safe without a forwarder.
func (r *Role) setTrust(c *config.Config) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fwd == nil {
		return
	}
	r.anyHop = c.Anycast.Forward.AnyNextHop
	r.fwd.SetTrust(TrustOf(c))
}

// resolve finds a server's next hop in the kernel's tables; it must leave
// by one of the forwarder's ports (the only ones it can redirect to) and,
// unless anycast.forward.next_hop is any, be on-link: a next hop behind a
// gateway would have the forwarder send the VIP's packets to a router
// that may send them back. It runs under r.mu (the forwarder's methods).
func (r *Role) resolve(nh netip.Addr) (bpf.Backend, string) {
	h, why := r.hop.NextHop(nh, 0)
	if why != "" {
		return bpf.Backend{}, why
	}
	if !slices.Contains(r.ports, h.Ifname) {
		return bpf.Backend{}, fmt.Sprintf("the route to %s leaves by %s, not one of anycast.forward.interfaces", nh, h.Ifname)
	}
	if !r.anyHop && h.Via.WithZone("").Unmap() != nh.WithZone("").Unmap() {
		return bpf.Backend{}, fmt.Sprintf("%s is not on-link: its route goes through %s (anycast.forward.next_hop: any takes it)", nh, h.Via)
	}
	return bpf.Backend{Ifindex: h.Ifindex, Dst: h.MAC, Src: h.SrcMAC}, ""
}

// work hands the paths BGP queued to the forwarder (main goroutine).
func (r *Role) work() {
	r.qmu.Lock()
	us := r.queue
	r.queue = nil
	r.qmu.Unlock()
	if r.fwd == nil {
		return
	}
	r.mu.Lock()
	r.fwd.Update(us)
	r.mu.Unlock()
	r.syncRoutes()
}

// refresh re-resolves the servers' next hops (main goroutine, every
// anycastRefresh).
func (r *Role) refresh() {
	if r.fwd == nil {
		return
	}
	r.mu.Lock()
	r.fwd.Refresh()
	r.mu.Unlock()
	r.syncRoutes()
}

// anycastRefresh is how often the servers' next hops are looked up again.
const anycastRefresh = time.Second

func (r *Role) Events() []feature.Event {
	return []feature.Event{{C: r.wake, Do: r.work}, {Every: anycastRefresh, Do: r.refresh}}
}

// reload sets next's VIPs (their checks and attributes) and the
// forwarder's trust; the forwarder's ports, VIPs and table size need a
// restart (config.Reloadable).
func (r *Role) Reload(old, next *config.Config) ([]feature.Step, error) {
	return []feature.Step{{Name: "anycast", Do: func() error { r.ann.Set(VIPsOf(next)); r.setTrust(next); return nil },
		Undo: func() { r.ann.Set(VIPsOf(old)); r.setTrust(old) }}}, nil
}

func (r *Role) Status(s *client.Status) { s.Anycast = r.State() }

// RouteProtocol marks the kernel routes pwgated installs (ip route show
// proto 250).
const RouteProtocol = 250

// syncRoutes gives the kernel a route to each forwarded VIP over the
// servers in its table: packets the program passes to the kernel (TTL
// expiring, or all of them while no program is attached) are routed as
// the program would, and one with TTL 1 gets its time exceeded rather
// than "net unreachable".
func (r *Role) syncRoutes() {
	for _, p := range r.vips {
		r.mu.Lock()
		srv := r.fwd.InTable(p)
		r.mu.Unlock()
		key := strings.Join(srv, ",")
		if r.routes[p] == key {
			continue
		}
		rt := vipRoute(p)
		var err error
		for _, s := range srv {
			if nh := vipNextHop(p, s); nh != nil {
				rt.MultiPath = append(rt.MultiPath, nh)
			}
		}
		if len(rt.MultiPath) == 0 {
			err = netlink.RouteDel(rt)
		} else {
			err = netlink.RouteReplace(rt)
		}
		if err != nil && len(srv) > 0 {
			r.log.Warn("anycast: kernel route to the VIP", "vip", p, "servers", srv, "err", err)
		}
		r.routes[p] = key
	}
}

// vipNextHop is server s's next hop in the kernel's route to VIP p: a
// link-local one (an unnumbered neighbor's, "fe80::1%s1") on its
// interface, and an IPv6 one of an IPv4 VIP as RFC 8950's "via inet6";
// nil when it cannot be one (its interface just went), so that it does
// not make the kernel refuse the others.
func vipNextHop(p netip.Prefix, s string) *netlink.NexthopInfo {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return nil
	}
	nh := &netlink.NexthopInfo{Gw: a.WithZone("").AsSlice()}
	if a.Zone() != "" {
		l, err := netlink.LinkByName(a.Zone())
		if err != nil {
			return nil
		}
		nh.LinkIndex = l.Attrs().Index
	}
	if p.Addr().Is4() && a.Is6() {
		nh.Gw, nh.Via = nil, &netlink.Via{AddrFamily: netlink.FAMILY_V6, Addr: a.WithZone("").AsSlice()}
	}
	return nh
}

// vipRoute is the kernel route to p that pwgated owns, without next hops.
func vipRoute(p netip.Prefix) *netlink.Route {
	return &netlink.Route{Dst: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}, Protocol: RouteProtocol}
}

func (r *Role) deleteRoutes() {
	for p, key := range r.routes {
		if key != "" {
			netlink.RouteDel(vipRoute(p))
		}
	}
	r.routes = map[netip.Prefix]string{}
}

// Control drains or resumes an announced VIP (pwctl anycast
// drain|resume).
func (r *Role) Control(verb, prefix string) error {
	if r == nil {
		return fmt.Errorf("no anycast section")
	}
	p, err := config.ParseVIPPrefix(prefix)
	if err != nil {
		return err
	}
	r.mu.Lock()
	ann := r.ann
	r.mu.Unlock()
	if ann == nil {
		return fmt.Errorf("starting")
	}
	switch verb {
	case "drain":
		return ann.Drain(p)
	case "resume":
		return ann.Resume(p)
	}
	return fmt.Errorf("unknown anycast request %q (want drain or resume)", verb)
}

// State returns the announcer's and forwarder's state; nil
// without an anycast section.
func (r *Role) State() *client.Anycast {
	if r == nil {
		return nil
	}
	a := &client.Anycast{}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ann != nil {
		a.VIPs = r.ann.Status()
	}
	if r.fwd == nil {
		return a
	}
	a.Forward = r.fwd.Status()
	for i := range a.Forward {
		f := &a.Forward[i]
		if t, none, err := r.xdp.VIPTraffic(f.ID); err == nil {
			f.Packets, f.Bytes, f.NoServers = t.Packets, t.Bytes, none
		}
	}
	a.PathsRefused = r.fwd.Refused()
	if cs, err := r.xdp.Counters(); err == nil {
		a.Counters = map[string]uint64{}
		for i, v := range cs {
			a.Counters[bpf.ACCounterNames[i]] = v
		}
	}
	return a
}

// close withdraws the VIPs (at once: a stop is not a drain; while the
// speaker still runs), removes the kernel routes and detaches the program.
// Safe more than once.
func (r *Role) Close(bool) {
	r.mu.Lock()
	ann := r.ann
	r.ann = nil
	r.mu.Unlock()
	if ann != nil {
		ann.Close()
	}
	r.deleteRoutes()
	r.mu.Lock()
	if r.fwd != nil {
		r.fwd.Close()
		r.fwd = nil
	}
	if r.hop != nil {
		r.hop.Close()
		r.hop = nil
	}
	xdp := r.xdp
	r.xdp = nil
	r.mu.Unlock()
	for _, l := range r.lnk {
		l.Close()
	}
	r.lnk = nil
	if xdp != nil {
		xdp.Close()
	}
}

// TrustOf is which neighbors' paths name the forwarder's servers.
func TrustOf(c *config.Config) Trust {
	var t Trust
	if c.Anycast == nil || c.Anycast.Forward == nil {
		return t
	}
	t.AnyNextHop = c.Anycast.Forward.AnyNextHop
	for _, v := range c.Anycast.Forward.Neighbors {
		if a, err := netip.ParseAddr(v); err == nil {
			t.Neighbors = append(t.Neighbors, a)
		} else {
			t.Interfaces = append(t.Interfaces, v)
		}
	}
	return t
}

// VIPsOf returns the VIPs the announcer runs.
func VIPsOf(c *config.Config) []VIP {
	if c.Anycast == nil {
		return nil
	}
	out := make([]VIP, len(c.Anycast.VIPs))
	for i, v := range c.Anycast.VIPs {
		out[i] = VIP{VIP: v.VIP, Probe: NewCheck(v.Check)}
	}
	return out
}

var _ feature.Feature = (*Role)(nil)
