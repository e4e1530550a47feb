package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/pwgate/pwgate/bpf"
	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/dataplane"
	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/pseudowire"
	"github.com/pwgate/pwgate/dataplane/stats"
	"github.com/pwgate/pwgate/dataplane/xsk"
)

// Daemon is a running pwgated: the ports, the data path and the main
// goroutine's state. Run is the main goroutine; it alone changes the
// configuration. Other goroutines (the statistics sockets) read Status and
// Snapshot.
type Daemon struct {
	log     *slog.Logger
	cfg     *Config
	load    func() (*Config, error) // reads the configuration again, for reload
	pair    *xsk.Pair
	eng     *dataplane.Engine
	track   *tracker // ip6 mode
	ulMAC   frame.MAC
	ulMTU   int // the uplink interface's own MTU
	started time.Time
	status  atomic.Pointer[client.Status]
	servers []io.Closer
	view    uplinkView
}

// Start opens the ports, starts the data path and the statistics sockets.
// load is called again on every reload. On error nothing is left attached
// or running.
func Start(c *Config, load func() (*Config, error), log *slog.Logger) (_ *Daemon, err error) {
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
	if len(ul.HardwareAddr) != 6 {
		return nil, fmt.Errorf("uplink %s has no Ethernet address", c.Uplink)
	}
	d.ulMAC, d.ulMTU = frame.MAC(ul.HardwareAddr), ul.MTU
	if _, err := d.mtu(c); err != nil {
		return nil, err
	}
	if c.CoreMain != NoCore {
		if err := dataplane.PinProcess(c.CoreMain); err != nil {
			return nil, err
		}
	}
	d.pair, err = xsk.Open(xsk.Config{Downlink: c.Downlink, Uplink: c.Uplink, XDPMode: c.XDPMode})
	if err != nil {
		return nil, err
	}
	for _, w := range d.pair.Warnings {
		log.Warn(w)
	}
	if c.Mode == pseudowire.ModeIP6 {
		if d.track, err = newTracker(c.Uplink, c); err != nil {
			return nil, err
		}
		d.view = d.track.view()
	}
	p, err := d.params(c)
	if err != nil {
		return nil, err
	}
	if err := d.pair.BPF.SetConfig(bpfConfig(c)); err != nil {
		return nil, err
	}
	d.eng, err = dataplane.New(dataplane.Config{UMEM: d.pair.UMEM, DL: d.pair.DL, UL: d.pair.UL, Poll: c.Poll,
		EncapCore: c.CoreEncap, DecapCore: c.CoreDecap}, p)
	if err != nil {
		return nil, err
	}
	if err := d.eng.Start(); err != nil {
		d.eng = nil
		return nil, err
	}
	d.publishStatus()
	if err := d.serve(c); err != nil {
		return nil, err
	}
	log.Info("started", "mode", c.Mode.String(), "downlink", c.Downlink, "uplink", c.Uplink, "peer", p.PeerString(),
		"poll", c.Poll.String(), "cores", fmt.Sprintf("main=%d encap=%d decap=%d", c.CoreMain, c.CoreEncap, c.CoreDecap))
	d.logReadiness("", p.NotReady)
	return d, nil
}

// mtu returns the uplink MTU in force for c.
func (d *Daemon) mtu(c *Config) (int, error) {
	if c.UplinkMTU == 0 {
		return min(d.ulMTU, MaxUplinkMTU), nil
	}
	if c.UplinkMTU > d.ulMTU {
		return 0, fmt.Errorf("uplink.mtu %d is larger than %s's MTU %d", c.UplinkMTU, c.Uplink, d.ulMTU)
	}
	return c.UplinkMTU, nil
}

func bpfConfig(c *Config) bpf.Config {
	b := bpf.Config{Mode: bpf.ModeEth, PeerMAC: c.PeerMAC}
	if c.Mode == pseudowire.ModeIP6 {
		b = bpf.Config{Mode: bpf.ModeIP6, PeerAddr: c.PeerAddr}
	}
	return b
}

// params builds the data path's configuration from c and what the kernel
// says about the uplink.
func (d *Daemon) params(c *Config) (*dataplane.Params, error) {
	mtu, err := d.mtu(c)
	if err != nil {
		return nil, err
	}
	split, err := pseudowire.SplitFor(c.Mode, mtu)
	if err != nil {
		return nil, err
	}
	maxFrame := min(split.Max, xsk.ChunkSize-xsk.RxHeadroom-c.Mode.Overhead())
	p := &dataplane.Params{
		Encap: pseudowire.EncapConfig{Mode: c.Mode, MTU: mtu, Src: d.ulMAC, Dst: c.PeerMAC},
		Decap: pseudowire.DecapConfig{Mode: c.Mode, PeerMAC: c.PeerMAC, PeerAddr: c.PeerAddr, MaxFrame: maxFrame},
	}
	if c.Mode == pseudowire.ModeIP6 {
		p.Encap.Dst, p.Encap.SrcAddr, p.Encap.DstAddr = d.view.NextHop, d.view.Local, c.PeerAddr
		p.NotReady = d.view.NotReady
	}
	return p, nil
}

// Run is the main goroutine: it follows the uplink's next hop, reloads on
// hup, logs the data path's errors, and returns when ctx is done, after
// closing everything.
func (d *Daemon) Run(ctx context.Context, hup <-chan struct{}) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	defer d.Close()
	fast := time.NewTicker(100 * time.Millisecond) // until the first next hop is known
	defer fast.Stop()
	for {
		select {
		case <-ctx.Done():
			d.log.Info("stopping")
			return nil
		case <-hup:
			if err := d.Reload(); err != nil {
				d.log.Error("reload failed; the running configuration stays", "err", err)
			}
		case <-tick.C:
			d.refresh()
		case <-fast.C:
			if d.eng.Params().NotReady == "" {
				fast.Stop()
				continue
			}
			d.refresh()
		}
	}
}

// refresh re-reads the uplink's state and logs the data path's errors.
func (d *Daemon) refresh() {
	for _, err := range d.eng.TakeErrors() {
		d.log.Warn("data path", "err", err)
	}
	if d.track == nil {
		return
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

// apply hands c, with the current uplink view, to the data path.
func (d *Daemon) apply(c *Config) error {
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
	if p.NotReady == "" && c.Mode == pseudowire.ModeIP6 && (old.NextHop() != p.NextHop() || old.Local() != p.Local()) {
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
		d.log.Info("ready: sending frames to the peer")
	}
}

// Reload reads the configuration again. A bad file, or one that changes
// what only a restart can change, leaves the running configuration as it
// is; a good one takes effect without stopping the data path.
func (d *Daemon) Reload() error {
	next, err := d.load()
	if err != nil {
		return err
	}
	if key := d.cfg.Reloadable(next); key != "" {
		return fmt.Errorf("%s: %s cannot change without a restart", next.Source, key)
	}
	if _, err := d.params(next); err != nil {
		return err
	}
	if d.track != nil {
		if err := d.track.update(next); err != nil {
			return err
		}
		d.view = d.track.view()
	}
	if err := d.pair.BPF.SetConfig(bpfConfig(next)); err != nil {
		return err
	}
	if err := d.apply(next); err != nil {
		d.pair.BPF.SetConfig(bpfConfig(d.cfg))
		return err
	}
	d.log.Info("reloaded", "config", next.Source, "peer", d.eng.Params().PeerString())
	return nil
}

// Snapshot returns all counters: the data goroutines', the XDP programs'
// and the kernel's socket counters. Safe from any goroutine.
func (d *Daemon) Snapshot() stats.Snapshot {
	var s stats.Snapshot
	d.eng.Snapshot(&s)
	if c, err := d.pair.BPF.Counters(); err == nil {
		s[stats.ULDropWrongPeer] += c[bpf.ULStranger]
		s[stats.ULDropNoSocket] += c[bpf.ULNoSocket]
		s[stats.DLDropNoSocket] += c[bpf.DLNoSocket]
	}
	for _, k := range []struct {
		sock *xsk.Socket
		c    stats.Counter
	}{{d.pair.UL, stats.ULDropRxRingFull}, {d.pair.DL, stats.DLDropRxRingFull}} {
		if ks, err := k.sock.KernelStats(); err == nil {
			s[k.c] += ks.Rx_dropped + ks.Rx_ring_full
		}
	}
	return s
}

// Close stops the data path, detaches the XDP programs and removes the
// sockets. It is safe to call more than once.
func (d *Daemon) Close() error {
	var errs []error
	for _, s := range d.servers {
		errs = append(errs, s.Close())
	}
	d.servers = nil
	if d.eng != nil {
		d.eng.Stop()
		d.eng = nil
	}
	if d.pair != nil {
		errs = append(errs, d.pair.Close())
		d.pair = nil
	}
	if d.track != nil {
		d.track.close()
		d.track = nil
	}
	return errors.Join(errs...)
}
