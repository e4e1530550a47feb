package control

import (
	"fmt"
	"log/slog"
	"net"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pwgate/pwgate/bpf"
	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/control/feature"
	"github.com/pwgate/pwgate/control/uplink"
	"github.com/pwgate/pwgate/control/wireguard"
	"github.com/pwgate/pwgate/dataplane"
	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/pseudowire"
	"github.com/pwgate/pwgate/dataplane/stats"
	"github.com/pwgate/pwgate/dataplane/vxlan"
	"github.com/pwgate/pwgate/dataplane/xsk"
)

// dataPath is the data path as a feature: the two ports and the engine's
// goroutines. A reload changes the XDP peers and the engine's parameters.
type dataPath struct {
	log    *slog.Logger
	dl, ul string // the ports' names
	ulMAC  frame.MAC
	ulMTU  int // the uplink interface's own MTU
	ports  *ports
	xdp    peerFilter
	eng    engine
	// params builds the engine's parameters for a configuration (the
	// daemon's: they take WireGuard's MTU, VXLAN's and the uplink's view).
	params func(*config.Config) (*dataplane.Params, error)
	errLog errLog
	// The watchdog's memory: the data goroutines' beats, and when both
	// were last seen turning.
	beats [2]uint64
	moved time.Time
}

// The parts of the data path a reload changes, as interfaces so that
// tests can make each fail.
type (
	engine interface {
		Params() *dataplane.Params
		SetParams(*dataplane.Params) error
	}
	peerFilter interface {
		setPeers([]bpf.PeerKey) error
	}
)

// checkPath checks c's ports before anything is attached.
func checkPath(c *config.Config, log *slog.Logger) (*dataPath, error) {
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
	p := &dataPath{log: log, dl: c.Downlink, ul: c.Uplink, ulMAC: frame.MAC(ul.HardwareAddr), ulMTU: ul.MTU}
	if _, err := p.mtu(c); err != nil {
		return nil, err
	}
	return p, nil
}

// open prepares the ports (NIC settings, XDP programs, sockets).
func (p *dataPath) open(c *config.Config) (err error) {
	if p.ports, err = openPorts(c); err != nil {
		return err
	}
	p.xdp = p.ports
	for _, ch := range p.ports.nic {
		p.log.Info("port setting changed until exit", "setting", ch.String())
	}
	for _, w := range p.ports.pair.Warnings {
		p.log.Warn(w)
	}
	if p.ports.wg != nil {
		for _, w := range p.ports.wg.Warnings {
			p.log.Warn(w)
		}
	}
	return nil
}

// start starts the engine's goroutines; inside WireGuard its uplink is
// w's tunnel, in VXLAN mode it forwards by v's table.
func (p *dataPath) start(c *config.Config, w *wireguard.Role, v *vxlanRole) error {
	ec := dataplane.Config{UMEM: p.ports.pair.UMEM, DL: p.ports.pair.DL, UL: p.ports.pair.UL, Poll: dataplane.PollMode(c.Poll),
		EncapCore: c.CoreEncap, DecapCore: c.CoreDecap}
	if c.OverWireGuard() {
		ec.UL = w.Tunnel()
	}
	if v != nil {
		ec.FDB, ec.Learned, ec.LearnedWake = v.ctl.Table(), v.ctl.Learned(), v.ctl.Wake()
	}
	params, err := p.params(c)
	if err != nil {
		return err
	}
	eng, err := dataplane.New(ec, params)
	if err != nil {
		return err
	}
	if err := eng.Start(); err != nil {
		return err
	}
	p.eng = eng
	if c.CoreMain != config.NoCore {
		// Again, but for the data threads: threads the runtime made while
		// the first pass ran, or from a thread not pinned yet, would
		// otherwise keep another affinity.
		var data []int
		for _, t := range eng.Threads() {
			data = append(data, t.TID)
		}
		if err := dataplane.PinProcess(c.CoreMain, data...); err != nil {
			return err
		}
	}
	return nil
}

// engine returns the real data path (nil before it starts and in tests
// that fake it).
func (p *dataPath) engine() *dataplane.Engine {
	e, _ := p.eng.(*dataplane.Engine)
	return e
}

// Params returns the engine's parameters in force.
func (p *dataPath) Params() *dataplane.Params { return p.eng.Params() }

func bindName(p *xsk.Pair) string {
	if p.ZeroCopy() {
		return "zerocopy"
	}
	return "copy"
}

// mtu returns the uplink MTU in force for c.
func (p *dataPath) mtu(c *config.Config) (int, error) {
	if c.UplinkMTU == 0 {
		return min(p.ulMTU, dataplane.MaxUplinkMTU), nil
	}
	if c.UplinkMTU > p.ulMTU {
		return 0, fmt.Errorf("uplink.mtu %d is larger than %s's MTU %d", c.UplinkMTU, c.Uplink, p.ulMTU)
	}
	return c.UplinkMTU, nil
}

// params builds the data path's parameters from c, the uplink's view and
// the tunnel's MTU.
func (d *Daemon) params(c *config.Config) (*dataplane.Params, error) {
	mtu, err := d.path.mtu(c)
	if err != nil {
		return nil, err
	}
	var view uplink.View
	if d.up != nil {
		view = d.up.View()
	}
	if c.IsVXLAN() {
		p := &dataplane.Params{NotReady: view.NotReady}
		x := c.VXLAN
		l3 := c.OverWireGuard() // inside WireGuard: IP packets, the tunnel's MTU
		if l3 {
			mtu = d.wg.MTU()
		}
		p.VXLAN = &dataplane.VXLANParams{
			Encap:       vxlan.EncapConfig{Src: d.path.ulMAC, Local: c.VTEPAddr(), MTU: mtu, ZeroChecksum6: x.ZeroCsum6TX, Split: x.Split, L3: l3},
			AcceptZero6: x.ZeroCsum6RX, LearnRemote: c.LearnRemote(),
		}
		return p, nil
	}
	mode := pseudowire.Mode(c.Mode)
	if c.OverWireGuard() {
		mode, mtu = pseudowire.ModeIP6Tun, d.wg.MTU()
	}
	split, err := pseudowire.SplitFor(mode, mtu)
	if err != nil {
		return nil, err
	}
	maxFrame := min(split.Max, dataplane.MaxFrame(mode.Overhead()))
	p := &dataplane.Params{
		Encap: pseudowire.EncapConfig{Mode: mode, MTU: mtu, Src: d.path.ulMAC, Dst: c.PeerMAC},
		Decap: pseudowire.DecapConfig{Mode: mode, PeerMAC: c.PeerMAC, PeerAddr: c.PeerAddr, MaxFrame: maxFrame},
	}
	if k := c.Keepalive; k != nil {
		p.Keepalive = dataplane.KeepaliveParams{Interval: k.Interval, Timeout: k.Timeout}
	}
	switch {
	case mode == pseudowire.ModeIP6Tun:
		p.Encap.SrcAddr, p.Encap.DstAddr = c.WGSource(), c.PeerAddr
	case mode == pseudowire.ModeIP6:
		p.Encap.Dst, p.Encap.SrcAddr, p.Encap.DstAddr = view.NextHop, view.Local, c.PeerAddr
		p.NotReady = view.NotReady
	}
	return p, nil
}

// waiting reports whether the data path waits for the kernel (a next
// hop, an address, a VTEP's next hop).
func (d *Daemon) waiting() bool {
	return d.path.Params().NotReady != "" || (d.vx != nil && d.vx.unresolved)
}

// refresh resolves the VTEPs again and hands a change of the uplink's
// view to the data path.
func (d *Daemon) refresh() {
	if d.vx != nil {
		d.vx.resolve()
	}
	if d.up == nil || !d.up.Read() {
		return
	}
	if err := d.apply(d.cfg); err != nil {
		d.log.Error("apply uplink change", "err", err)
	}
}

// apply hands c, with the current uplink view, to the data path.
func (d *Daemon) apply(c *config.Config) error {
	old := d.path.Params()
	p, err := d.params(c)
	if err != nil {
		return err
	}
	if err := d.path.eng.SetParams(p); err != nil {
		return err
	}
	d.publishStatus()
	d.path.logReadiness(old.NotReady, p.NotReady)
	if p.NotReady == "" && c.Mode == config.ModeIP6 && (old.NextHop() != p.NextHop() || old.Local() != p.Local()) {
		d.log.Info("next hop", "via", d.up.View().Via.String(), "mac", p.NextHop().String(), "local", p.Local().String())
	}
	return nil
}

// logReadiness logs once per change why frames cannot be sent.
func (p *dataPath) logReadiness(old, now string) {
	switch {
	case now != "" && now != old:
		p.log.Warn("dropping frames from the LAN until ready", "reason", now)
	case now == "" && old != "":
		p.log.Info("ready: sending frames from the LAN")
	}
}

// reload checks next's parameters; the steps change the XDP peers (of a
// pseudowire outside WireGuard) and the engine's parameters.
func (p *dataPath) Reload(old, next *config.Config) ([]feature.Step, error) {
	params, err := p.params(next)
	if err != nil {
		return nil, err
	}
	if err := dataplane.Check(params); err != nil {
		return nil, err
	}
	var steps []feature.Step
	if !next.IsVXLAN() && !next.OverWireGuard() { // a VTEP's peers are the controller's
		steps = append(steps, feature.Step{Name: "xdp peers", Do: func() error { return p.xdp.setPeers(peerKeys(next)) }, Undo: func() { p.xdp.setPeers(peerKeys(old)) }})
	}
	oldParams := p.eng.Params()
	return append(steps, feature.Step{Name: "data path", Do: func() error { return p.eng.SetParams(params) }, Undo: func() { p.eng.SetParams(oldParams) }}), nil
}

// logEvery: the data path's failed system calls are logged at most this
// often.
const logEvery = 10 * time.Second

func (p *dataPath) Events() []feature.Event {
	return []feature.Event{{Every: logEvery, Do: p.logErrors}}
}

// errLog is the main goroutine's memory of what it last logged about the
// data path's failed system calls.
type errLog struct {
	dl, ul uint64
}

// logErrors logs failed system calls on the ports since the last call, at
// most once per logEvery: the counters say how many, the data path
// keeps the last errno. Those on a LAN port follow_peer holds down are
// expected and only counted.
func (p *dataPath) logErrors() {
	e := p.engine()
	if e == nil {
		return
	}
	var s stats.Snapshot
	e.Snapshot(&s)
	dlErr, ulErr := e.LastErrnos()
	for _, k := range []struct {
		name  string
		last  *uint64
		now   uint64
		errno unix.Errno
		quiet bool // expected: follow_peer holds the port down
	}{{p.dl, &p.errLog.dl, s[stats.DLSyscallErrors], dlErr, e.LANDown()}, {p.ul, &p.errLog.ul, s[stats.ULSyscallErrors], ulErr, false}} {
		if k.now != *k.last && k.quiet {
			*k.last = k.now
		}
		if k.now != *k.last {
			p.log.Warn("data path: system calls failed", "port", k.name, "failures", k.now-*k.last, "last", k.errno.Error())
			*k.last = k.now
		}
	}
}

// stuckAfter: a data goroutine that has not turned for this long is stuck,
// and systemd's watchdog is no longer told all is well (an idle goroutine
// sleeps at most sleepIdle between turns).
const stuckAfter = 3 * time.Second

func (p *dataPath) watchdogStart() {
	p.moved = time.Now()
	if e := p.engine(); e != nil {
		p.beats = e.Beats()
	}
}

// turning reports whether both data goroutines have turned within
// stuckAfter (main goroutine, on the watchdog's tick).
func (p *dataPath) turning() bool {
	e := p.engine()
	if e == nil {
		return true
	}
	now := e.Beats()
	if progressed(p.beats, now) {
		p.beats, p.moved = now, time.Now()
		return true
	}
	if time.Since(p.moved) <= stuckAfter {
		// A goroutine sleeping in poll(2) or kept off its core by a
		// loaded machine is not stuck: only one that has not turned for
		// stuckAfter.
		return true
	}
	p.log.Error("a data goroutine made no progress; not telling systemd's watchdog", "for", time.Since(p.moved).Round(time.Millisecond), "beats", now)
	return false
}

// threads are the data goroutines' threads, for pwctl status's runtime.
func (p *dataPath) threads() []dataplane.Thread {
	if e := p.engine(); e != nil {
		return e.Threads()
	}
	return nil
}

// Status adds the last BPDUs seen each way.
func (p *dataPath) Status(s *client.Status) {
	e := p.engine()
	if e == nil {
		return
	}
	var snap stats.Snapshot
	e.Snapshot(&snap)
	for _, b := range []struct {
		c   stats.Counter
		dst **time.Time
	}{{stats.ULLastBPDU, &s.LastBPDU.UL}, {stats.DLLastBPDU, &s.LastBPDU.DL}} {
		if ns := snap[b.c]; ns != 0 {
			t := time.Unix(0, int64(ns))
			*b.dst = &t
		}
	}
}

// addCounters adds the engine's counters, the XDP programs' and the
// kernel's socket counters.
func (p *dataPath) AddCounters(s *stats.Snapshot) {
	e := p.engine()
	if e == nil || p.ports == nil {
		return
	}
	e.Snapshot(s)
	dl, ul := p.ports.linkDowns()
	s[stats.DLLinkDowns] += dl
	s[stats.ULLinkDowns] += ul
	if c, err := p.ports.objs.Counters(); err == nil {
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
	}{{p.ports.pair.UL, stats.ULDropRxRingFull}, {p.ports.pair.DL, stats.DLDropRxRingFull}} {
		if k.sock == nil {
			continue
		}
		if ks, err := k.sock.KernelStats(); err == nil {
			s[k.c] += ks.Rx_dropped + ks.Rx_ring_full
		}
	}
}

// close stops the data goroutines; the ports stay open until closePorts.
func (p *dataPath) Close(bool) {
	if e := p.engine(); e != nil {
		e.Stop()
	}
}

// closePorts detaches the XDP programs, closes the sockets and restores
// the NIC settings.
func (p *dataPath) closePorts() error {
	if p.ports == nil {
		return nil
	}
	err := p.ports.close()
	p.ports = nil
	return err
}
