package control

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/pwgate/pwgate/bpf"
	"github.com/pwgate/pwgate/control/anycast"
	"github.com/pwgate/pwgate/control/bgp"
	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/control/statsrv"
	"github.com/pwgate/pwgate/dataplane"
	"github.com/pwgate/pwgate/dataplane/stats"
)

// AnycastDaemon is a pwgated with only bgp and anycast sections: a
// server's announcer, a forwarder, or both. It has no pseudowire ports.
type AnycastDaemon struct {
	log     *slog.Logger
	load    func() (*config.Config, error)
	started time.Time
	servers []io.Closer
	ac      *anycastRole

	mu  sync.Mutex // guards cfg and sp (the sockets' goroutines read them)
	cfg *config.Config
	sp  bgp.Speaker
}

// anycastRole is anycast in a pwgated, alone or beside a pseudowire or a
// VTEP on one BGP speaker: the announcer (VIPs announced while their
// checks pass) and the forwarder (an XDP program spreading VIPs over the
// servers BGP names). The main goroutine runs it; the statistics sockets
// read it under mu.
type anycastRole struct {
	log   *slog.Logger
	ports []string       // the forwarder's
	vips  []netip.Prefix // forwarded

	mu  sync.Mutex // guards ann, fwd, xdp
	ann *anycast.Announcer
	fwd *anycast.Forwarder
	xdp *bpf.Anycast
	lnk []link.Link
	hop prober
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

// newSpeaker makes the BGP speaker (a fake in tests).
var newSpeaker = func(log *slog.Logger) bgp.Speaker { return bgp.NewGoBGP(log) }

// newAnycastRole loads and attaches c's forwarder, if it has one. On
// error nothing is left attached.
func newAnycastRole(c *config.Config, log *slog.Logger) (_ *anycastRole, err error) {
	r := &anycastRole{log: log, wake: make(chan struct{}, 1), routes: map[netip.Prefix]string{}}
	f := c.Anycast.Forward
	if f == nil {
		return r, nil
	}
	defer func() {
		if err != nil {
			r.close()
		}
	}()
	r.ports, r.vips = f.Interfaces, f.VIPs
	xdp, err := bpf.LoadAnycast(f.TableSize)
	if err != nil {
		return nil, err
	}
	r.mu.Lock() // the sockets may answer already
	r.xdp = xdp
	r.mu.Unlock()
	fwd, err := anycast.NewForwarder(xdp, r.resolve, f.VIPs, f.TableSize, log)
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

// announce starts announcing vips over sp, which runs already.
func (r *anycastRole) announce(sp bgp.Speaker, vips []anycast.VIP) {
	ann := anycast.NewAnnouncer(sp, r.log)
	r.mu.Lock()
	r.ann = ann
	r.mu.Unlock()
	ann.Set(vips)
}

// StartAnycast starts the announcer and the forwarder of c. On error
// nothing is left attached or running.
func StartAnycast(c *config.Config, load func() (*config.Config, error), log *slog.Logger) (_ *AnycastDaemon, err error) {
	d := &AnycastDaemon{log: log, load: load, cfg: c, started: time.Now()}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if c.CoreMain != config.NoCore {
		if err := CheckCores(c); err != nil {
			return nil, err
		}
		if err := dataplane.PinProcess(c.CoreMain); err != nil {
			return nil, err
		}
	}
	if d.servers, err = statsrv.Serve(c, d, d.log); err != nil {
		return nil, err
	}
	ac, err := newAnycastRole(c, log)
	if err != nil {
		return nil, err
	}
	d.mu.Lock() // the sockets answer already
	d.ac = ac
	d.mu.Unlock()
	sp := newSpeaker(log)
	if err := sp.Start(speakerConfig(c, false), ac.received); err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.sp = sp
	d.mu.Unlock()
	ac.announce(sp, anycastVIPs(c))
	log.Info("started", "mode", "anycast", "vips", len(c.Anycast.VIPs), "forwarding", c.Anycast.Forward != nil)
	return d, nil
}

// received runs on BGP's goroutine: it only queues.
func (r *anycastRole) received(us []bgp.Update) {
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
func (r *anycastRole) setTrust(c *config.Config) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fwd == nil {
		return
	}
	r.anyHop = c.Anycast.Forward.AnyNextHop
	r.fwd.SetTrust(anycastTrust(c))
}

// resolve finds a server's next hop in the kernel's tables; it must leave
// by one of the forwarder's ports (the only ones it can redirect to) and,
// unless anycast.forward.next_hop is any, be on-link: a next hop behind a
// gateway would have the forwarder send the VIP's packets to a router
// that may send them back. It runs under r.mu (the forwarder's methods).
func (r *anycastRole) resolve(nh netip.Addr) (bpf.Backend, string) {
	h, why := resolveNextHop(nh, nil, &r.hop)
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
func (r *anycastRole) work() {
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
func (r *anycastRole) refresh() {
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

// Run is the main goroutine: it hands BGP's paths to the forwarder,
// re-resolves next hops every second, and reloads on hup.
func (d *AnycastDaemon) Run(ctx context.Context, hup <-chan struct{}) error {
	defer d.Close()
	sd := newNotifier()
	watchdog := sd.ready()
	defer sd.stop()
	t := time.NewTicker(anycastRefresh)
	defer t.Stop()
	for {
		select {
		case <-watchdog:
			sd.send("WATCHDOG=1") // no data goroutines: the main one answers
		case <-ctx.Done():
			d.log.Info("stopping")
			return nil
		case <-d.ac.wake:
			d.ac.work()
		case <-t.C:
			d.ac.refresh()
		case <-hup:
			if err := d.Reload(); err != nil {
				d.log.Error("reload failed; the running configuration stays", "err", err)
			}
		}
	}
}

// RouteProtocol marks the kernel routes pwgated installs (ip route show
// proto 250).
const RouteProtocol = 250

// syncRoutes gives the kernel a route to each forwarded VIP over the
// servers in its table: packets the program passes to the kernel (TTL
// expiring, or all of them while no program is attached) are routed as
// the program would, and one with TTL 1 gets its time exceeded rather
// than "net unreachable".
func (r *anycastRole) syncRoutes() {
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
		if len(srv) == 0 {
			err = netlink.RouteDel(rt)
		} else {
			for _, s := range srv {
				rt.MultiPath = append(rt.MultiPath, &netlink.NexthopInfo{Gw: net.ParseIP(s)})
			}
			err = netlink.RouteReplace(rt)
		}
		if err != nil && len(srv) > 0 {
			r.log.Warn("anycast: kernel route to the VIP", "vip", p, "servers", srv, "err", err)
		}
		r.routes[p] = key
	}
}

// vipRoute is the kernel route to p that pwgated owns, without next hops.
func vipRoute(p netip.Prefix) *netlink.Route {
	return &netlink.Route{Dst: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}, Protocol: RouteProtocol}
}

func (r *anycastRole) deleteRoutes() {
	for p, key := range r.routes {
		if key != "" {
			netlink.RouteDel(vipRoute(p))
		}
	}
	r.routes = map[netip.Prefix]string{}
}

// Reload reads the configuration again: VIPs, their checks and attributes
// and the BGP neighbors change in place; the forwarder's ports, VIPs and
// table size, the ASN and router ID need a restart.
func (d *AnycastDaemon) Reload() error {
	c, err := d.load()
	if err != nil {
		return err
	}
	if !c.AnycastOnly() {
		return fmt.Errorf("%s: the new file has a mode or ports: restart pwgated to change what it is", c.Source)
	}
	if key := d.cfg.Reloadable(c); key != "" {
		return fmt.Errorf("%s: %s cannot change without a restart", c.Source, key)
	}
	if err := d.sp.Reconfigure(speakerConfig(c, false)); err != nil {
		return err
	}
	d.ac.ann.Set(anycastVIPs(c))
	d.ac.setTrust(c)
	d.mu.Lock()
	d.cfg = c
	d.mu.Unlock()
	d.log.Info("reloaded", "config", c.Source)
	return nil
}

// Control drains or resumes an announced VIP (pwctl anycast drain|resume).
func (d *AnycastDaemon) Control(verb, prefix string) error {
	d.mu.Lock()
	ac := d.ac
	d.mu.Unlock()
	return ac.control(verb, prefix)
}

func (r *anycastRole) control(verb, prefix string) error {
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

// Anycast returns the announcer's and forwarder's state.
func (d *AnycastDaemon) Anycast() *client.Anycast {
	d.mu.Lock()
	ac := d.ac
	d.mu.Unlock()
	return ac.status()
}

// status returns the announcer's and forwarder's state; nil without an
// anycast section.
func (r *anycastRole) status() *client.Anycast {
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

// Status implements statsrv.Source.
func (d *AnycastDaemon) Status() client.Status {
	d.mu.Lock()
	c, sp, ac := d.cfg, d.sp, d.ac
	d.mu.Unlock()
	s := client.Status{Mode: "anycast", Ready: true, Config: c.Source, Started: d.started, Uptime: time.Since(d.started).Seconds(),
		PID: os.Getpid(), Version: client.Version, Runtime: readRuntime(nil), Anycast: ac.status()}
	if sp != nil {
		s.BGP = speakerStatus(sp, c.BGP)
	}
	return s
}

// speakerStatus is pwctl bgp's state of a speaker running bgp section c.
func speakerStatus(sp bgp.Speaker, c *config.BGPConfig) *client.BGP {
	b := bgpStatus(sp)
	b.ASN, b.RouterID = c.ASN, c.RouterID.String()
	return b
}

// Snapshot implements statsrv.Source: no data path, no counters.
func (d *AnycastDaemon) Snapshot() stats.Snapshot { return stats.Snapshot{} }

// FDB implements statsrv.Source: not a VTEP.
func (d *AnycastDaemon) FDB() []client.FDBEntry { return nil }

// Close closes the statistics sockets, withdraws the VIPs (at once: a stop
// is not a drain), stops BGP and detaches the program.
func (d *AnycastDaemon) Close() error {
	// The sockets first: their goroutines read what is torn down below.
	for _, s := range d.servers {
		s.Close()
	}
	d.servers = nil
	d.ac.close()
	if d.sp != nil {
		d.sp.Stop(false)
		d.sp = nil
	}
	return nil
}

// close withdraws the VIPs (while the speaker still runs), removes the
// kernel routes and detaches the program. Safe on nil and more than once.
func (r *anycastRole) close() {
	if r == nil {
		return
	}
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
	r.hop.close()
}
