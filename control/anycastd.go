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
	"github.com/pwgate/pwgate/dataplane"
	"github.com/pwgate/pwgate/dataplane/stats"
)

// AnycastDaemon is a pwgated with only bgp and anycast sections: a
// server's announcer (VIPs announced while their checks pass), a
// forwarder (an XDP program spreading VIPs over the servers BGP names),
// or both. It has no pseudowire ports.
type AnycastDaemon struct {
	log     *slog.Logger
	load    func() (*Config, error)
	started time.Time
	servers []io.Closer

	mu  sync.Mutex // guards cfg, sp, ann, fwd (the sockets' goroutines read them)
	cfg *Config
	sp  bgp.Speaker
	ann *anycast.Announcer
	fwd *anycast.Forwarder
	xdp *bpf.Anycast
	lnk []link.Link
	hop prober
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

// StartAnycast starts the announcer and the forwarder of c. On error
// nothing is left attached or running.
func StartAnycast(c *Config, load func() (*Config, error), log *slog.Logger) (_ *AnycastDaemon, err error) {
	d := &AnycastDaemon{log: log, load: load, cfg: c, started: time.Now(), wake: make(chan struct{}, 1), routes: map[netip.Prefix]string{}}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if c.CoreMain != NoCore {
		if err := c.CheckCores(); err != nil {
			return nil, err
		}
		if err := dataplane.PinProcess(c.CoreMain); err != nil {
			return nil, err
		}
	}
	if d.servers, err = serveStats(c, d); err != nil {
		return nil, err
	}
	if f := c.Anycast.Forward; f != nil {
		xdp, err := bpf.LoadAnycast(f.TableSize)
		if err != nil {
			return nil, err
		}
		d.mu.Lock() // the sockets answer already
		d.xdp = xdp
		d.mu.Unlock()
		fwd, err := anycast.NewForwarder(xdp, d.resolve, f.VIPs, f.TableSize, log)
		if err != nil {
			return nil, err
		}
		d.mu.Lock()
		d.fwd = fwd
		d.mu.Unlock()
		for _, n := range f.Interfaces {
			l, err := d.xdp.Attach(n, c.XDPMode)
			if err != nil {
				return nil, err
			}
			d.lnk = append(d.lnk, l)
		}
	}
	sp := newSpeaker(log)
	if err := sp.Start(c.speakerConfig(false), d.received); err != nil {
		return nil, err
	}
	ann := anycast.NewAnnouncer(sp, log)
	d.mu.Lock() // the sockets answer already
	d.sp, d.ann = sp, ann
	d.mu.Unlock()
	ann.Set(c.AnycastVIPs())
	log.Info("started", "mode", "anycast", "vips", len(c.Anycast.VIPs), "forwarding", c.Anycast.Forward != nil)
	return d, nil
}

// received runs on BGP's goroutine: it only queues.
func (d *AnycastDaemon) received(us []bgp.Update) {
	d.qmu.Lock()
	d.queue = append(d.queue, us...)
	d.qmu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// resolve finds a server's next hop in the kernel's tables; it must leave
// by one of the forwarder's ports (the only ones it can redirect to).
func (d *AnycastDaemon) resolve(nh netip.Addr) (bpf.Backend, string) {
	h, why := resolveNextHop(nh, nil, &d.hop)
	if why != "" {
		return bpf.Backend{}, why
	}
	if !slices.Contains(d.cfg.Anycast.Forward.Interfaces, h.Ifname) {
		return bpf.Backend{}, fmt.Sprintf("the route to %s leaves by %s, not one of anycast.forward.interfaces", nh, h.Ifname)
	}
	return bpf.Backend{Ifindex: h.Ifindex, Dst: h.MAC, Src: h.SrcMAC}, ""
}

// Run is the main goroutine: it hands BGP's paths to the forwarder,
// re-resolves next hops every second, and reloads on hup.
func (d *AnycastDaemon) Run(ctx context.Context, hup <-chan struct{}) error {
	defer d.Close()
	sd := newNotifier()
	defer sd.close()
	sd.send("READY=1")
	defer sd.send("STOPPING=1")
	watchdog, stopWatchdog := sd.ticker()
	defer stopWatchdog()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-watchdog:
			sd.send("WATCHDOG=1") // no data goroutines: the main one answers
		case <-ctx.Done():
			d.log.Info("stopping")
			return nil
		case <-d.wake:
			d.qmu.Lock()
			us := d.queue
			d.queue = nil
			d.qmu.Unlock()
			if d.fwd != nil {
				d.mu.Lock()
				d.fwd.Update(us)
				d.mu.Unlock()
				d.syncRoutes()
			}
		case <-t.C:
			if d.fwd != nil {
				d.mu.Lock()
				d.fwd.Refresh()
				d.mu.Unlock()
				d.syncRoutes()
			}
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
func (d *AnycastDaemon) syncRoutes() {
	for _, p := range d.cfg.Anycast.Forward.VIPs {
		d.mu.Lock()
		srv := d.fwd.InTable(p)
		d.mu.Unlock()
		key := strings.Join(srv, ",")
		if d.routes[p] == key {
			continue
		}
		r := vipRoute(p)
		var err error
		if len(srv) == 0 {
			err = netlink.RouteDel(r)
		} else {
			for _, s := range srv {
				r.MultiPath = append(r.MultiPath, &netlink.NexthopInfo{Gw: net.ParseIP(s)})
			}
			err = netlink.RouteReplace(r)
		}
		if err != nil && len(srv) > 0 {
			d.log.Warn("anycast: kernel route to the VIP", "vip", p, "servers", srv, "err", err)
		}
		d.routes[p] = key
	}
}

// vipRoute is the kernel route to p that pwgated owns, without next hops.
func vipRoute(p netip.Prefix) *netlink.Route {
	return &netlink.Route{Dst: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}, Protocol: RouteProtocol}
}

func (d *AnycastDaemon) deleteRoutes() {
	for p, key := range d.routes {
		if key != "" {
			netlink.RouteDel(vipRoute(p))
		}
	}
	d.routes = map[netip.Prefix]string{}
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
	old := d.cfg
	if fmt.Sprint(old.Anycast.Forward) != fmt.Sprint(c.Anycast.Forward) {
		return fmt.Errorf("anycast.forward changed: restart pwgated to apply it")
	}
	if old.BGP.ASN != c.BGP.ASN || old.BGP.RouterID != c.BGP.RouterID {
		return fmt.Errorf("bgp.asn or bgp.router_id changed: restart pwgated to apply it")
	}
	if err := d.sp.Reconfigure(c.speakerConfig(false)); err != nil {
		return err
	}
	d.ann.Set(c.AnycastVIPs())
	d.mu.Lock()
	d.cfg = c
	d.mu.Unlock()
	d.log.Info("reloaded", "config", c.Source)
	return nil
}

// Control drains or resumes an announced VIP (pwctl anycast drain|resume).
func (d *AnycastDaemon) Control(verb, prefix string) error {
	p, err := vipPrefix(prefix)
	if err != nil {
		return err
	}
	d.mu.Lock()
	ann := d.ann
	d.mu.Unlock()
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
	a := &client.Anycast{}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ann != nil {
		a.VIPs = d.ann.Status()
	}
	if d.fwd == nil {
		return a
	}
	a.Forward = d.fwd.Status()
	for i := range a.Forward {
		f := &a.Forward[i]
		if t, none, err := d.xdp.VIPTraffic(f.ID); err == nil {
			f.Packets, f.Bytes, f.NoServers = t.Packets, t.Bytes, none
		}
	}
	if cs, err := d.xdp.Counters(); err == nil {
		a.Counters = map[string]uint64{}
		for i, v := range cs {
			a.Counters[bpf.ACCounterNames[i]] = v
		}
	}
	return a
}

// Status implements Source.
func (d *AnycastDaemon) Status() client.Status {
	d.mu.Lock()
	c, sp := d.cfg, d.sp
	d.mu.Unlock()
	s := client.Status{Mode: "anycast", Ready: true, Config: c.Source, Started: d.started, Uptime: time.Since(d.started).Seconds(),
		PID: os.Getpid(), Version: client.Version, Runtime: readRuntime(nil), Anycast: d.Anycast()}
	if sp != nil {
		s.BGP = bgpStatus(sp)
		s.BGP.ASN, s.BGP.RouterID = c.BGP.ASN, c.BGP.RouterID.String()
	}
	return s
}

// Snapshot implements Source: no data path, no counters.
func (d *AnycastDaemon) Snapshot() stats.Snapshot { return stats.Snapshot{} }

// FDB implements Source: not a VTEP.
func (d *AnycastDaemon) FDB() []client.FDBEntry { return nil }

// Close closes the statistics sockets, withdraws the VIPs (at once: a stop
// is not a drain), stops BGP and detaches the program.
func (d *AnycastDaemon) Close() error {
	// The sockets first: their goroutines read what is torn down below.
	for _, s := range d.servers {
		s.Close()
	}
	d.servers = nil
	if d.ann != nil {
		d.ann.Close()
		d.ann = nil
	}
	if d.sp != nil {
		d.sp.Stop(false)
		d.sp = nil
	}
	d.deleteRoutes()
	d.mu.Lock()
	if d.fwd != nil {
		d.fwd.Close()
		d.fwd = nil
	}
	d.mu.Unlock()
	for _, l := range d.lnk {
		l.Close()
	}
	d.lnk = nil
	if d.xdp != nil {
		d.xdp.Close()
		d.xdp = nil
	}
	d.hop.close()
	return nil
}
