// Package control is pwgated's slow path: the daemon that starts each
// part from the configuration (control/config), reload, the uplink's next
// hop and own address in ip6 mode (from the kernel, over netlink), the
// counters' sockets, and the main goroutine that ties them together.
package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pwgate/pwgate/bpf"
	"github.com/pwgate/pwgate/control/bgp"
	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/control/evpn"
	"github.com/pwgate/pwgate/dataplane"
	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/pseudowire"
	"github.com/pwgate/pwgate/dataplane/stats"
	"github.com/pwgate/pwgate/dataplane/wg"
	"github.com/pwgate/pwgate/dataplane/xsk"
)

// Daemon is a running pwgated: the ports, the data path and the main
// goroutine's state. Run is the main goroutine; it alone changes the
// configuration. Other goroutines (the statistics sockets) read Status and
// Snapshot.
type Daemon struct {
	log   *slog.Logger
	cfg   *config.Config
	load  func() (*config.Config, error) // reads the configuration again, for reload
	ports *ports
	eng   dataPath
	xdp   peerFilter
	track uplinkTracker // ip6 mode outside WireGuard; nil otherwise
	wg    *wgRole       // with a wireguard section; nil otherwise
	vx    *vxlanRole    // mode: vxlan; nil otherwise
	ac    *anycastRole  // with an anycast section; nil otherwise
	// sp is the BGP speaker for anycast beside a pseudowire (in vxlan
	// mode the VTEP's speaker carries anycast too), started with spCfg
	// (whose ASN and router ID stay until a restart).
	sp    bgp.Speaker
	spCfg *config.BGPConfig
	// graceful is set when pwgated stops on a signal (not on an error):
	// BGP then leaves with graceful restart, if configured.
	graceful bool
	ulMAC    frame.MAC
	ulMTU    int // the uplink interface's own MTU
	started  time.Time
	status   atomic.Pointer[client.Status]
	servers  []io.Closer
	view     uplinkView
	errLog   errLog
}

// The parts of the daemon a reload changes, as interfaces so that tests
// can make each fail.
type (
	dataPath interface {
		Params() *dataplane.Params
		SetParams(*dataplane.Params) error
	}
	peerFilter interface {
		setPeers([]bpf.PeerKey) error
	}
	uplinkTracker interface {
		view() uplinkView
		update(*config.Config) error
		Changed() <-chan struct{}
		close()
	}
)

// engine returns the real data path (nil in tests that fake it).
func (d *Daemon) engine() *dataplane.Engine {
	e, _ := d.eng.(*dataplane.Engine)
	return e
}

// MinGOMAXPROCS is the fewest Ps pwgated runs with: one for each data
// goroutine, which in busy mode never gives its P up, and one for the main
// goroutine and the rest of the runtime.
const MinGOMAXPROCS = 3

// Start opens the ports, starts the data path and the statistics sockets.
// load is called again on every reload. On error nothing is left attached
// or running.
func Start(c *config.Config, load func() (*config.Config, error), log *slog.Logger) (_ *Daemon, err error) {
	d := &Daemon{log: log, cfg: c, load: load, started: time.Now()}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	ul, err := net.InterfaceByName(c.Uplink)
	if err != nil {
		return nil, fmt.Errorf("uplink %s: %w", c.Uplink, err)
	}
	if _, err := net.InterfaceByName(c.Downlink); err != nil {
		return nil, fmt.Errorf("downlink %s: %w", c.Downlink, err)
	}
	if c.Anycast != nil && c.Anycast.Forward != nil {
		for _, n := range c.Anycast.Forward.Interfaces {
			if _, err := net.InterfaceByName(n); err != nil {
				return nil, fmt.Errorf("anycast forwarder interface %s: %w", n, err)
			}
		}
	}
	if len(ul.HardwareAddr) != 6 {
		return nil, fmt.Errorf("uplink %s has no Ethernet address", c.Uplink)
	}
	d.ulMAC, d.ulMTU = frame.MAC(ul.HardwareAddr), ul.MTU
	if _, err := d.mtu(c); err != nil {
		return nil, err
	}
	if err := CheckCores(c); err != nil {
		return nil, err
	}
	// WireGuard's keys are read, and its endpoint names resolved, before
	// anything is attached: a bad key file changes nothing.
	var wgCfg wg.Config
	var wgWarnings []string
	if c.WireGuard != nil {
		if wgCfg, wgWarnings, err = wgDeviceConfig(c); err != nil {
			return nil, err
		}
	}
	// The statistics endpoints first: a path or address that cannot be
	// used stops pwgated before anything is attached. Until the data path
	// runs they answer that pwgated is starting.
	if err := d.serve(c); err != nil {
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
	if d.ports, err = openPorts(c); err != nil {
		return nil, err
	}
	d.xdp = d.ports
	for _, ch := range d.ports.nic {
		log.Info("port setting changed until exit", "setting", ch.String())
	}
	for _, w := range d.ports.pair.Warnings {
		log.Warn(w)
	}
	var ulPort xsk.Port = d.ports.pair.UL
	if c.WireGuard != nil {
		// The Tunnel shares the engine's UMEM when the pseudowire runs
		// inside it; otherwise it only carries the host's traffic.
		u := xsk.NewFakeUMEM(8)
		if c.OverWireGuard() {
			u = d.ports.pair.UMEM
		}
		mtu, _ := d.mtu(c)
		if d.wg, err = startWireGuard(c, wgCfg, wgWarnings, u, mtu, log); err != nil {
			return nil, err
		}
		if c.OverWireGuard() {
			ulPort = d.wg.tunnel
		}
	}
	if (c.Mode == config.ModeIP6 || c.IsVXLAN()) && !c.OverWireGuard() {
		t, err := newTracker(c.Uplink, c)
		if err != nil {
			return nil, err
		}
		d.track = t
		d.view = t.view()
	}
	ec := dataplane.Config{UMEM: d.ports.pair.UMEM, DL: d.ports.pair.DL, UL: ulPort, Poll: dataplane.PollMode(c.Poll),
		EncapCore: c.CoreEncap, DecapCore: c.CoreDecap}
	// Anycast's forwarder on its own ports, then BGP: one speaker carries
	// the VTEP's routes and anycast's.
	var also func([]bgp.Update)
	if c.Anycast != nil {
		if d.ac, err = newAnycastRole(c, log); err != nil {
			return nil, err
		}
		also = d.ac.received
	}
	if c.IsVXLAN() {
		var u evpn.Underlay = wgUnderlay{func() *config.Config { return d.cfg }}
		if !c.OverWireGuard() {
			u = &vtepUnderlay{t: d.track.(*tracker), p: d.ports}
		}
		if d.vx, err = startVXLAN(c, u, also, log); err != nil {
			return nil, err
		}
		d.vx.engineConfig(&ec)
		d.vx.resolve()
	}
	if d.ac != nil {
		var sp bgp.Speaker
		if d.vx != nil {
			sp = d.vx.sp
		}
		if sp == nil {
			sp = newSpeaker(log)
			if err := sp.Start(speakerConfig(c, false), d.ac.received); err != nil {
				return nil, fmt.Errorf("bgp: %w", err)
			}
			d.sp, d.spCfg = sp, c.BGP
		}
		d.ac.announce(sp, anycastVIPs(c))
	}
	p, err := d.params(c)
	if err != nil {
		return nil, err
	}
	eng, err := dataplane.New(ec, p)
	if err != nil {
		return nil, err
	}
	if err := eng.Start(); err != nil {
		return nil, err
	}
	d.eng = eng
	if c.CoreMain != config.NoCore {
		// Again, but for the data threads: threads the runtime made while
		// the first pass ran, or from a thread not pinned yet, would
		// otherwise keep another affinity.
		var data []int
		for _, t := range eng.Threads() {
			data = append(data, t.TID)
		}
		if err := dataplane.PinProcess(c.CoreMain, data...); err != nil {
			return nil, err
		}
	}
	d.publishStatus() // from here on the sockets' goroutines read the daemon
	log.Info("started", "mode", c.ModeName(), "downlink", c.Downlink, "uplink", c.Uplink, "peer", p.PeerString(),
		"poll", dataplane.PollMode(c.Poll).String(), "xdp_bind", bindName(d.ports.pair), "gomaxprocs", runtime.GOMAXPROCS(0),
		"cores", fmt.Sprintf("main=%d encap=%d decap=%d", c.CoreMain, c.CoreEncap, c.CoreDecap))
	d.logReadiness("", p.NotReady)
	// Give back what starting took (the eBPF loader's garbage, mostly);
	// the first collection also starts the collector's workers, so that
	// what pwctl status shows from now on is the steady state.
	debug.FreeOSMemory()
	return d, nil
}

func bindName(p *xsk.Pair) string {
	if p.ZeroCopy() {
		return "zerocopy"
	}
	return "copy"
}

// mtu returns the uplink MTU in force for c.
func (d *Daemon) mtu(c *config.Config) (int, error) {
	if c.UplinkMTU == 0 {
		return min(d.ulMTU, dataplane.MaxUplinkMTU), nil
	}
	if c.UplinkMTU > d.ulMTU {
		return 0, fmt.Errorf("uplink.mtu %d is larger than %s's MTU %d", c.UplinkMTU, c.Uplink, d.ulMTU)
	}
	return c.UplinkMTU, nil
}

// params builds the data path's configuration from c and what the kernel
// says about the uplink.
func (d *Daemon) params(c *config.Config) (*dataplane.Params, error) {
	mtu, err := d.mtu(c)
	if err != nil {
		return nil, err
	}
	if c.IsVXLAN() {
		p := &dataplane.Params{}
		d.vxlanParams(c, p, mtu)
		return p, nil
	}
	mode := pseudowire.Mode(c.Mode)
	if c.OverWireGuard() {
		mode, mtu = pseudowire.ModeIP6Tun, d.wg.mtu
	}
	split, err := pseudowire.SplitFor(mode, mtu)
	if err != nil {
		return nil, err
	}
	maxFrame := min(split.Max, xsk.ChunkSize-xsk.RxHeadroom-mode.Overhead())
	p := &dataplane.Params{
		Encap: pseudowire.EncapConfig{Mode: mode, MTU: mtu, Src: d.ulMAC, Dst: c.PeerMAC},
		Decap: pseudowire.DecapConfig{Mode: mode, PeerMAC: c.PeerMAC, PeerAddr: c.PeerAddr, MaxFrame: maxFrame},
	}
	switch {
	case mode == pseudowire.ModeIP6Tun:
		p.Encap.SrcAddr, p.Encap.DstAddr = c.WGSource(), c.PeerAddr
	case mode == pseudowire.ModeIP6:
		p.Encap.Dst, p.Encap.SrcAddr, p.Encap.DstAddr = d.view.NextHop, d.view.Local, c.PeerAddr
		p.NotReady = d.view.NotReady
	}
	return p, nil
}

// Timing of the main goroutine.
const (
	// proddingEvery: while the next hop is unknown, the kernel is prodded
	// to resolve it (at most once a second, see tracker.prod).
	proddingEvery = 100 * time.Millisecond
	// logEvery: the data path's failed system calls are logged at most
	// this often.
	logEvery = 10 * time.Second
	// rereadEvery: besides the kernel's notifications (nlWatch), the
	// uplink is read again this often, in case one was missed. Each read
	// allocates (the netlink package's 64 KiB per request): not often.
	rereadEvery = time.Minute
	// stuckAfter: a data goroutine that has not turned for this long is
	// stuck, and systemd's watchdog is no longer told all is well (an
	// idle goroutine sleeps at most sleepIdle between turns).
	stuckAfter = 3 * time.Second
	// reresolveEvery: how often WireGuard endpoint names of silent peers
	// are looked up again.
	reresolveEvery = 30 * time.Second
	// workEvery: the VTEP controller publishes a new forwarding table at
	// most this often.
	workEvery = 10 * time.Millisecond
)

// Run is the main goroutine: it follows the uplink's next hop, reloads on
// hup, logs the data path's errors, and returns when ctx is done, after
// closing everything.
func (d *Daemon) Run(ctx context.Context, hup <-chan struct{}) error {
	defer d.Close()
	slow := time.NewTicker(logEvery)
	defer slow.Stop()
	reread := time.NewTicker(rereadEvery)
	defer reread.Stop()
	fast := time.NewTicker(proddingEvery)
	defer fast.Stop()
	var changed <-chan struct{}
	if d.track != nil {
		changed = d.track.Changed()
	}
	var reresolve <-chan time.Time
	if d.wg != nil {
		t := time.NewTicker(reresolveEvery)
		defer t.Stop()
		reresolve = t.C
	}
	var learned chan struct{}
	var aging, anycastTick <-chan time.Time
	var anycastWake chan struct{}
	if d.ac != nil {
		t := time.NewTicker(anycastRefresh)
		defer t.Stop()
		anycastTick, anycastWake = t.C, d.ac.wake
	}
	// What BGP and the data goroutines report is taken in batches, at
	// most every workEvery: under churn, every new forwarding table costs
	// the data goroutines cache misses on the shards it replaces.
	work := time.NewTimer(time.Hour)
	work.Stop()
	defer work.Stop()
	workArmed, lastWork := false, time.Time{}
	if d.vx != nil {
		learned = d.vx.ctl.Wake()
		t := time.NewTicker(agingEvery)
		defer t.Stop()
		aging = t.C
	}
	sd := newNotifier()
	watchdog := sd.ready()
	defer sd.stop()
	var beats [2]uint64
	moved := time.Now() // when both data goroutines were last seen turning
	if e := d.engine(); e != nil {
		beats = e.Beats()
	}
	for {
		if d.eng.Params().NotReady == "" && (d.vx == nil || !d.vx.unresolved) {
			fast.Stop()
		} else {
			fast.Reset(proddingEvery)
		}
		select {
		case <-ctx.Done():
			d.log.Info("stopping")
			d.graceful = true
			return nil
		case <-learned:
			if since := time.Since(lastWork); since >= workEvery {
				d.vx.ctl.Work(time.Now())
				lastWork = time.Now()
			} else if !workArmed {
				work.Reset(workEvery - since)
				workArmed = true
			}
		case <-work.C:
			workArmed = false
			d.vx.ctl.Work(time.Now())
			lastWork = time.Now()
		case now := <-aging:
			d.vx.ctl.Age(now)
		case <-anycastWake:
			d.ac.work()
		case <-anycastTick:
			d.ac.refresh()
		case <-hup:
			if err := d.Reload(); err != nil {
				d.log.Error("reload failed; the running configuration stays", "err", err)
			}
		case <-changed:
			d.refresh()
		case <-fast.C:
			d.refresh()
		case <-slow.C:
			d.logErrors()
		case <-reread.C:
			d.refresh()
		case <-reresolve:
			d.wg.reresolve(ctx)
		case <-watchdog:
			// Only while both data goroutines turn: systemd restarts a
			// pwgated whose data path is stuck.
			if e := d.engine(); e != nil {
				now := e.Beats()
				if progressed(beats, now) {
					beats, moved = now, time.Now()
				} else if time.Since(moved) > stuckAfter {
					// A goroutine sleeping in poll(2) or kept off its
					// core by a loaded machine is not stuck: only one
					// that has not turned for stuckAfter.
					d.log.Error("a data goroutine made no progress; not telling systemd's watchdog", "for", time.Since(moved).Round(time.Millisecond), "beats", now)
					continue
				}
			}
			sd.send("WATCHDOG=1")
		}
	}
}

// refresh re-reads the uplink's state and hands a change to the data path.
func (d *Daemon) refresh() {
	if d.track == nil {
		return
	}
	if d.vx != nil {
		d.vx.resolve()
	}
	v := d.track.view()
	if v == d.view {
		return
	}
	d.view = v
	if err := d.apply(d.cfg); err != nil {
		d.log.Error("apply uplink change", "err", err)
	}
}

// errLog is the main goroutine's memory of what it last logged about the
// data path's failed system calls.
type errLog struct {
	dl, ul uint64
}

// logErrors logs failed system calls on the ports since the last call, at
// most once per logEvery: the counters say how many, the data path
// keeps the last errno.
func (d *Daemon) logErrors() {
	e := d.engine()
	if e == nil {
		return
	}
	var s stats.Snapshot
	e.Snapshot(&s)
	dlErr, ulErr := e.LastErrnos()
	for _, p := range []struct {
		name  string
		last  *uint64
		now   uint64
		errno unix.Errno
	}{{d.cfg.Downlink, &d.errLog.dl, s[stats.DLSyscallErrors], dlErr}, {d.cfg.Uplink, &d.errLog.ul, s[stats.ULSyscallErrors], ulErr}} {
		if p.now != *p.last {
			d.log.Warn("data path: system calls failed", "port", p.name, "failures", p.now-*p.last, "last", p.errno.Error())
			*p.last = p.now
		}
	}
}

// apply hands c, with the current uplink view, to the data path.
func (d *Daemon) apply(c *config.Config) error {
	old := d.eng.Params()
	p, err := d.params(c)
	if err != nil {
		return err
	}
	if err := d.eng.SetParams(p); err != nil {
		return err
	}
	d.cfg = c
	d.publishStatus()
	d.logReadiness(old.NotReady, p.NotReady)
	if p.NotReady == "" && c.Mode == config.ModeIP6 && (old.NextHop() != p.NextHop() || old.Local() != p.Local()) {
		d.log.Info("next hop", "via", d.view.Via.String(), "mac", p.NextHop().String(), "local", p.Local().String())
	}
	return nil
}

// logReadiness logs once per change why frames cannot be sent.
func (d *Daemon) logReadiness(old, now string) {
	switch {
	case now != "" && now != old:
		d.log.Warn("dropping frames from the LAN until ready", "reason", now)
	case now == "" && old != "":
		d.log.Info("ready: sending frames from the LAN")
	}
}

// step is one change a reload makes, with what undoes it.
type step struct {
	name string
	do   func() error
	undo func()
}

// runSteps runs steps in order; when one fails, it undoes those done, in
// reverse, and returns the failure.
func runSteps(steps []step) error {
	for i, s := range steps {
		if err := s.do(); err != nil {
			for j := i - 1; j >= 0; j-- {
				steps[j].undo()
			}
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

// Reload reads the configuration again. A bad file, or one that changes
// what only a restart can change, leaves the running configuration as it
// is; a good one takes effect without stopping the data path. Every check
// comes first; then the XDP peers and the data path's parameters change,
// each undone if a later step fails; the uplink's IPv6 token, which the
// kernel cannot take back without side effects (it deprecates the
// addresses formed with the old one), changes last.
func (d *Daemon) Reload() error {
	next, err := d.load()
	if err != nil {
		return err
	}
	if key := d.cfg.Reloadable(next); key != "" {
		return fmt.Errorf("%s: %s cannot change without a restart", next.Source, key)
	}
	p, err := d.params(next)
	if err != nil {
		return err
	}
	if err := dataplane.Check(p); err != nil {
		return err
	}
	oldCfg, oldParams := d.cfg, d.eng.Params()
	var steps []step
	if d.wg != nil {
		cfg, warnings, err := wgDeviceConfig(next)
		if err != nil {
			return err
		}
		var undo func()
		steps = append(steps, step{"wireguard", func() (err error) {
			undo, err = d.wg.reconfigure(next, cfg)
			if err == nil {
				for _, w := range warnings {
					d.log.Warn("wireguard: " + w)
				}
			}
			return err
		}, func() { undo(); d.wg.setPseudowirePeer(oldCfg) }})
	}
	switch {
	case d.vx != nil:
		steps = append(steps, d.vx.reconfigure(oldCfg, next)...)
	case !next.OverWireGuard():
		steps = append(steps, step{"xdp peers", func() error { return d.xdp.setPeers(peerKeys(next)) }, func() { d.xdp.setPeers(peerKeys(oldCfg)) }})
	}
	if d.sp != nil {
		steps = append(steps, step{"bgp", func() error { return d.sp.Reconfigure(speakerConfig(next, false)) },
			func() { d.sp.Reconfigure(speakerConfig(oldCfg, false)) }})
	}
	if d.ac != nil {
		steps = append(steps, step{"anycast", func() error { d.ac.ann.Set(anycastVIPs(next)); d.ac.setTrust(next); return nil },
			func() { d.ac.ann.Set(anycastVIPs(oldCfg)); d.ac.setTrust(oldCfg) }})
	}
	steps = append(steps, step{"data path", func() error { return d.eng.SetParams(p) }, func() { d.eng.SetParams(oldParams) }})
	if d.track != nil {
		steps = append(steps, step{"uplink address", func() error { return d.track.update(next) }, func() {}})
	}
	if err := runSteps(steps); err != nil {
		return err
	}
	d.cfg = next
	if d.track != nil {
		d.view = d.track.view()
		if err := d.apply(next); err != nil {
			d.log.Error("apply uplink change", "err", err)
		}
	}
	if d.vx != nil {
		d.vx.resolve() // WireGuard's allowed IPs may have changed
	}
	d.publishStatus()
	d.log.Info("reloaded", "config", next.Source, "peer", d.eng.Params().PeerString())
	return nil
}

// Snapshot returns all counters: the data goroutines', the XDP programs'
// and the kernel's socket counters. Safe from any goroutine.
func (d *Daemon) Snapshot() stats.Snapshot {
	var s stats.Snapshot
	if d.status.Load() == nil { // starting: the data path is not published yet
		return s
	}
	e := d.engine()
	if e == nil || d.ports == nil {
		return s
	}
	e.Snapshot(&s)
	if d.wg != nil {
		d.wg.dev.Snapshot(&s)
	}
	if d.vx != nil {
		d.vx.ctl.AddCounters(&s)
	}
	if c, err := d.ports.objs.Counters(); err == nil {
		s[stats.ULDropWrongPeer] += c[bpf.ULStranger]
		s[stats.ULDropNoSocket] += c[bpf.ULNoSocket]
		s[stats.DLDropNoSocket] += c[bpf.DLNoSocket]
		s[stats.ULDropExtHeaders] += c[bpf.ULExtHeaders]
		s[stats.ULXDPToSocket] += c[bpf.ULToSocket]
		s[stats.ULXDPToKernel] += c[bpf.ULPass]
		s[stats.DLXDPToSocket] += c[bpf.DLToSocket]
	}
	for _, k := range []struct {
		sock *xsk.Socket
		c    stats.Counter
	}{{d.ports.pair.UL, stats.ULDropRxRingFull}, {d.ports.pair.DL, stats.DLDropRxRingFull}} {
		if k.sock == nil {
			continue
		}
		if ks, err := k.sock.KernelStats(); err == nil {
			s[k.c] += ks.Rx_dropped + ks.Rx_ring_full
		}
	}
	return s
}

// Close stops the data path, detaches the XDP programs, restores the NIC
// settings and removes the sockets. It is safe to call more than once.
func (d *Daemon) Close() error {
	var errs []error
	for _, s := range d.servers {
		errs = append(errs, s.Close())
	}
	d.servers = nil
	d.ac.close() // withdraws its VIPs: before the speaker stops
	d.ac = nil
	if d.sp != nil {
		d.sp.Stop(false)
		d.sp = nil
	}
	if d.vx != nil {
		d.vx.close(d.cfg.BGP != nil && d.cfg.BGP.GracefulRestart, d.graceful)
		d.vx = nil
	}
	if e := d.engine(); e != nil {
		e.Stop()
	}
	d.eng = nil
	if d.wg != nil {
		d.wg.close()
		d.wg = nil
	}
	if d.ports != nil {
		errs = append(errs, d.ports.close())
		d.ports = nil
	}
	if d.track != nil {
		d.track.close()
		d.track = nil
	}
	return errors.Join(errs...)
}
