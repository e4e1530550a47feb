// Package control is pwgated's slow path: the daemon that starts each
// part from the configuration (control/config), reloads them, and runs
// the main goroutine that ties them together. See ARCHITECTURE.md.
package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pwgate/pwgate/control/anycast"
	"github.com/pwgate/pwgate/control/bgp"
	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/control/feature"
	"github.com/pwgate/pwgate/control/lldp"
	"github.com/pwgate/pwgate/control/statsrv"
	"github.com/pwgate/pwgate/control/uplink"
	"github.com/pwgate/pwgate/control/wireguard"
	"github.com/pwgate/pwgate/dataplane"
	"github.com/pwgate/pwgate/dataplane/wg"
	"github.com/pwgate/pwgate/dataplane/xsk"
	"github.com/pwgate/pwgate/hw"
)

// Daemon is a running pwgated: the statistics servers, the data path (nil
// in a pwgated with only bgp and anycast sections) and the features beside
// it. Run is the main goroutine; it alone changes the configuration. The
// servers' goroutines read Status, Snapshot and the rest once Start has
// published the first status.
type Daemon struct {
	log     *slog.Logger
	cfg     *config.Config
	load    func() (*config.Config, error) // reads the configuration again, for reload
	started time.Time
	profile *hw.Profile     // the hardware profile; nil: none
	irqFail map[string]bool // interrupts whose affinity could not be set, logged once
	servers []io.Closer
	// The features, each nil without its section (path: without a
	// pseudowire or VXLAN mode); features lists them.
	cf *configRole // pwctl config; nil for the reference's file
	// noConfig says why cf is nil.
	noConfig string
	path     *dataPath
	up       *uplink.Role
	wg       *wireguard.Role
	vx       *vxlanRole
	sp       *speakerRole // anycast's, unless a VTEP's speaker carries it
	ac       *anycast.Role
	peer     *peerRole         // a pseudowire's peer: keepalives, follow_peer
	lldp     *lldp.Role        // LLDP on the ports (lldp)
	extra    []feature.Feature // a test's, after the others
	// graceful is set when pwgated stops on a signal (not on an error):
	// BGP then leaves with graceful restart, if configured.
	graceful bool
	status   atomic.Pointer[client.Status]
}

// The features of this package; a Counter whose AddCounters were
// misspelt would otherwise drop its counters silently.
var (
	_ feature.Counter = (*dataPath)(nil)
	_ feature.Counter = (*vxlanRole)(nil)
	_ feature.Counter = (*peerRole)(nil)
	_ feature.Feature = (*peerRole)(nil)
	_ feature.Feature = (*dataPath)(nil)
	_ feature.Feature = (*vxlanRole)(nil)
	_ feature.Feature = (*speakerRole)(nil)
	_ feature.Feature = (*configRole)(nil)
)

// MinGOMAXPROCS is the fewest Ps pwgated runs with: one for each data
// goroutine, which in busy mode never gives its P up, and one for the main
// goroutine and the rest of the runtime.
const MinGOMAXPROCS = 3

// newSpeaker makes anycast's BGP speaker beside a pseudowire or alone (a
// fake in tests).
var newSpeaker = func(log *slog.Logger) bgp.Speaker { return bgp.NewGoBGP(log) }

// Start starts what c names: the statistics servers first, then the
// ports, WireGuard, the uplink's tracking, anycast's forwarder, VXLAN and
// BGP, anycast's announcer and, last, the data path. src.Load is called
// again on every reload. On error nothing is left attached or running.
func Start(c *config.Config, src Source, log *slog.Logger) (_ *Daemon, err error) {
	d := &Daemon{log: log, cfg: c, load: src.Load, started: time.Now(), profile: src.Profile, irqFail: map[string]bool{}}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	var path *dataPath
	if !c.AnycastOnly() {
		// What can be checked before anything is attached: the
		// interfaces and the uplink's MTU.
		if path, err = checkPath(c, log); err != nil {
			return nil, err
		}
	}
	if err := CheckCores(c); err != nil {
		return nil, err
	}
	// WireGuard's keys are read, and its endpoint names resolved, before
	// anything is attached: a bad key file changes nothing.
	var wgCfg wg.Config
	var wgWarnings []string
	if c.WireGuard != nil {
		if wgCfg, wgWarnings, err = wireguard.DeviceConfig(c); err != nil {
			return nil, err
		}
	}
	d.noConfig = "pwgated runs the reference's file (--gpw-config): pwctl config changes only a YAML --config file"
	if src.File != "" {
		// Without a place for revisions (a data partition that did not
		// mount), the box still runs; only pwctl config is off.
		var cerr error
		if d.cf, cerr = startConfig(src, d.Reload, log); cerr != nil {
			d.noConfig = "pwctl config is off: " + cerr.Error()
			log.Warn(d.noConfig)
		}
	}
	// The statistics endpoints next: a path or address that cannot be
	// used stops pwgated before anything is attached. Until the first
	// status is published they answer that pwgated is starting.
	if d.servers, err = statsrv.Serve(c, d, log); err != nil {
		return nil, err
	}
	// Set explicitly, GOMAXPROCS stays as it is: otherwise the runtime
	// re-reads the process's CPU affinity (Go 1.25 and later) and, once
	// PinProcess has put every thread on the main core, drops it to 1, and
	// two busy data goroutines starve the main goroutine.
	runtime.GOMAXPROCS(max(runtime.GOMAXPROCS(0), MinGOMAXPROCS))
	if c.CoreMain != config.NoCore {
		if err := dataplane.PinProcess(c.CoreMain); err != nil {
			return nil, err
		}
	}
	if path != nil {
		path.params = d.params
		d.path = path
		if err := path.open(c); err != nil {
			return nil, err
		}
	}
	if c.WireGuard != nil {
		// The Tunnel shares the engine's UMEM when the pseudowire runs
		// inside it; otherwise it only carries the host's traffic.
		u := xsk.NewFakeUMEM(8)
		if c.OverWireGuard() {
			u = path.ports.pair.UMEM
		}
		mtu, _ := path.mtu(c)
		if d.wg, err = wireguard.Start(c, wgCfg, wgWarnings, u, path.ports.wg, mtu, log); err != nil {
			return nil, err
		}
	}
	var tr *uplink.Tracker
	if path != nil && (c.Mode == config.ModeIP6 || c.IsVXLAN()) && !c.OverWireGuard() {
		if tr, err = uplink.Open(c.Uplink, c); err != nil {
			return nil, err
		}
		d.up = uplink.NewRole(tr, d.refresh, d.waiting)
	}
	// Anycast's forwarder on its own ports, then BGP: one speaker carries
	// the VTEP's routes and anycast's.
	var also func([]bgp.Update)
	if c.Anycast != nil {
		if d.ac, err = anycast.NewRole(c, log); err != nil {
			return nil, err
		}
		also = d.ac.Received
	}
	if c.IsVXLAN() {
		if d.vx, err = startVXLAN(c, d.underlay(c, tr), also, path.Params, log); err != nil {
			return nil, err
		}
		d.vx.resolve()
	}
	if d.ac != nil {
		var s bgp.Speaker
		if d.vx != nil {
			s = d.vx.sp
		}
		if s == nil {
			if d.sp, err = startSpeaker(c, d.ac.Received, log); err != nil {
				return nil, err
			}
			s = d.sp.sp
		}
		d.ac.Announce(s, anycast.VIPsOf(c), c.Anycast.ClockWait)
	}
	if path != nil {
		if err := path.start(c, d.wg, d.vx); err != nil {
			return nil, err
		}
		if e := path.engine(); e != nil && !c.IsVXLAN() {
			d.peer = newPeerRole(c, e, netlinkLink(c.Downlink), log)
		}
		if c.LLDP != nil {
			d.lldp = lldp.Start(c, log)
		}
	}
	d.publishStatus() // from here on the servers' goroutines read the daemon
	if path == nil {
		log.Info("started", "mode", "anycast", "vips", len(c.Anycast.VIPs), "forwarding", c.Anycast.Forward != nil)
	} else {
		p := path.Params()
		log.Info("started", "mode", c.ModeName(), "downlink", c.Downlink, "uplink", c.Uplink, "peer", p.PeerString(),
			"poll", dataplane.PollMode(c.Poll).String(), "xdp_bind", bindName(path.ports.pair), "gomaxprocs", runtime.GOMAXPROCS(0),
			"cores", fmt.Sprintf("main=%d encap=%d decap=%d", c.CoreMain, c.CoreEncap, c.CoreDecap))
		path.logReadiness("", p.NotReady)
	}
	// Give back what starting took (the eBPF loader's garbage, mostly);
	// the first collection also starts the collector's workers, so that
	// what pwctl status shows from now on is the steady state.
	debug.FreeOSMemory()
	return d, nil
}

// giveBackEvery is how often the main goroutine gives the kernel back the
// Go heap's free pages. Go keeps free pages up to a tenth of the heap in
// use; pwgated's heap is mostly WireGuard's 64 KiB message buffers with a
// page each resident, so that tenth is large against resident memory, and
// garbage landing on free pages touched for the first time made resident
// memory creep a megabyte or two in half an hour
// (bench/results/soak-20261206-185557.md), given back only when the
// runtime chose to. The cost is one collection (the runtime makes one
// every two minutes anyway) and releasing a few megabytes.
const giveBackEvery = 5 * time.Minute

// Run is the main goroutine: it waits for the features' events, reloads
// on hup, feeds systemd's watchdog while the data path turns, and returns
// when ctx is done, after closing everything.
func (d *Daemon) Run(ctx context.Context, hup <-chan struct{}) error {
	defer d.Close()
	sd := newNotifier()
	watchdog := sd.ready()
	defer sd.stop()
	// Each event's channel is forwarded, by a goroutine of its own, as
	// the event's index on one channel: the main goroutine's select stays
	// a plain one, with nothing allocated per event (a storm of learned
	// MACs wakes it thousands of times a second).
	fired := make(chan int)
	stop := make(chan struct{})
	var forwarders sync.WaitGroup
	defer func() { close(stop); forwarders.Wait() }()
	var evs []feature.Event
	var tickers []*time.Ticker // per event; nil for a channel's
	for _, f := range d.features() {
		for _, e := range f.Events() {
			var t *time.Ticker
			i := len(evs)
			forwarders.Add(1)
			if e.Every > 0 {
				t = time.NewTicker(e.Every)
				defer t.Stop()
				go forward(t.C, i, fired, stop, &forwarders)
			} else {
				go forward(e.C, i, fired, stop, &forwarders)
			}
			evs, tickers = append(evs, e), append(tickers, t)
		}
	}
	if d.path != nil {
		d.path.watchdogStart()
	}
	d.pinInterrupts()
	running := make([]bool, len(evs)) // a gated ticker runs
	for i := range running {
		running[i] = true
	}
	giveBack := time.NewTicker(giveBackEvery)
	defer giveBack.Stop()
	// Each second the ports' links are looked at (changes logged and
	// counted). A port that goes away (its device removed or replaced)
	// leaves its socket dead: pwgated exits with status 1, and systemd
	// starts it again on the port that is there then.
	var portsTick <-chan time.Time
	if d.path != nil && d.path.ports != nil {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		portsTick = t.C
	}
	for {
		// A ticker only active at times (prodding the kernel for a next
		// hop) is stopped while it is not, and started again when it
		// becomes active: not reset on every event, or frequent events
		// would keep it from ever firing.
		for i, e := range evs {
			if e.Active == nil {
				continue
			}
			active := e.Active()
			switch {
			case active && !running[i]:
				tickers[i].Reset(e.Every)
			case !active && running[i]:
				tickers[i].Stop()
			}
			running[i] = active
		}
		select {
		case <-ctx.Done():
			d.log.Info("stopping")
			d.graceful = true
			return nil
		case <-hup:
			if err := d.Reload(); err != nil {
				d.log.Error("reload failed; the running configuration stays", "err", err)
			}
		case <-watchdog:
			// Only while both data goroutines turn: systemd restarts a
			// pwgated whose data path is stuck.
			if d.path == nil || d.path.turning() {
				sd.send("WATCHDOG=1")
			}
		case i := <-fired:
			evs[i].Do()
		case <-giveBack.C:
			debug.FreeOSMemory()
		case <-portsTick:
			if err := d.path.ports.look(d.log); err != nil {
				return err
			}
			d.pinInterrupts()
		}
	}
}

// pinInterrupts puts the ports' interrupts on the profile's core.
func (d *Daemon) pinInterrupts() {
	if d.profile != nil && d.path != nil && d.path.ports != nil {
		pinInterrupts("/proc", d.profile.CoreIRQ, []string{d.cfg.Downlink, d.cfg.Uplink}, d.irqFail, d.log)
	}
}

// forward sends i on fired for each value on c, until stop.
func forward[T any](c <-chan T, i int, fired chan<- int, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		select {
		case <-c:
			select {
			case fired <- i:
			case <-stop:
				return
			}
		case <-stop:
			return
		}
	}
}

// Reload reads the configuration again. A bad file, or one that changes
// what only a restart can change, leaves the running configuration as it
// is; a good one takes effect without stopping the data path. Every check
// comes first (each feature's reload); then the steps run in the
// features' order, each undone if a later one fails.
func (d *Daemon) Reload() error {
	next, err := d.load()
	if err != nil {
		return err
	}
	if d.path == nil && !next.AnycastOnly() {
		return fmt.Errorf("%s: the new file has a mode or ports: restart pwgated to change what it is", next.Source)
	}
	if key := d.cfg.Reloadable(next); key != "" {
		return fmt.Errorf("%s: %s cannot change without a restart", next.Source, key)
	}
	var steps []feature.Step
	for _, f := range d.features() {
		s, err := f.Reload(d.cfg, next)
		if err != nil {
			return err
		}
		steps = append(steps, s...)
	}
	if err := feature.Run(steps); err != nil {
		return err
	}
	d.cfg = next
	d.refresh() // the uplink's view, and the VTEPs in WireGuard's allowed IPs
	d.publishStatus()
	if d.path != nil {
		d.log.Info("reloaded", "config", next.Source, "peer", d.path.Params().PeerString())
	} else {
		d.log.Info("reloaded", "config", next.Source)
	}
	return nil
}

// features returns the features started, in the order a reload changes
// them (WireGuard first: VXLAN's VTEPs are resolved in its allowed IPs)
// and Close closes them in reverse: the data goroutines stop first;
// anycast's VIPs are withdrawn while its speaker still runs; the speakers
// stop while the uplink's address, which the tracker may have added, is
// still there to send their NOTIFICATION from; WireGuard's tunnel goes
// after the data goroutines that use it; the LAN port that follow_peer
// may have taken down comes up first, after LLDP has said goodbye on the
// ports.
func (d *Daemon) features() []feature.Feature {
	var fs []feature.Feature
	for _, f := range []struct {
		on bool
		f  feature.Feature
	}{{d.cf != nil, d.cf}, {d.wg != nil, d.wg}, {d.up != nil, d.up}, {d.vx != nil, d.vx}, {d.sp != nil, d.sp}, {d.ac != nil, d.ac}, {d.path != nil, d.path}, {d.peer != nil, d.peer}, {d.lldp != nil, d.lldp}} {
		if f.on {
			fs = append(fs, f.f)
		}
	}
	return append(fs, d.extra...)
}

// Close closes the statistics servers (their goroutines read what is torn
// down next), then the features in reverse order (see features), and last
// the ports: the XDP programs detached, the NIC settings restored. It is safe to call more than once,
// and after a Start that failed half-way.
func (d *Daemon) Close() error {
	var errs []error
	for _, s := range d.servers {
		errs = append(errs, s.Close())
	}
	d.servers = nil
	fs := d.features()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i].Close(d.graceful)
	}
	if d.path != nil {
		errs = append(errs, d.path.closePorts())
	}
	d.cf, d.path, d.up, d.wg, d.vx, d.sp, d.ac, d.peer, d.lldp = nil, nil, nil, nil, nil, nil, nil, nil, nil
	return errors.Join(errs...)
}
