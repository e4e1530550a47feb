package control

import (
	"errors"
	"os"
	"time"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/control/statsrv"
	"github.com/pwgate/pwgate/dataplane"
	"github.com/pwgate/pwgate/dataplane/stats"
)

func (d *Daemon) publishStatus() {
	p := d.eng.Params()
	s := &client.Status{Mode: d.cfg.ModeName(), Downlink: d.cfg.Downlink, Uplink: d.cfg.Uplink, Peer: p.PeerString(),
		NextHop: p.NextHop().String(), Ready: p.NotReady == "", NotReady: p.NotReady, Poll: dataplane.PollMode(d.cfg.Poll).String(),
		Config: d.cfg.Source, Started: d.started, PID: os.Getpid(), Version: client.Version, UplinkMTU: p.Encap.MTU}
	if d.wg != nil {
		s.WireGuard = d.wg.status(d.cfg)
		if s.WireGuard.Pseudowire {
			s.NextHop, s.Via = "", "WireGuard ("+d.wg.conf.Interface+")"
		}
	}
	if d.ports != nil {
		s.XDPBind = bindName(d.ports.pair)
		for _, c := range d.ports.nic {
			s.NICChanges = append(s.NICChanges, c.String())
		}
	}
	if p.Local().IsValid() {
		s.Local = p.Local().String()
	}
	if d.view.Via.IsValid() {
		s.Via = d.view.Via.String()
	}
	d.status.Store(s)
}

// Status returns the daemon's status with the counters' BPDU times.
func (d *Daemon) Status() client.Status {
	st := d.status.Load()
	if st == nil {
		return client.Status{Mode: d.cfg.ModeName(), NotReady: "starting", Started: d.started, PID: os.Getpid(), Version: client.Version}
	}
	s := *st
	s.Uptime = time.Since(s.Started).Seconds()
	var threads []dataplane.Thread
	if e := d.engine(); e != nil {
		threads = e.Threads()
	}
	s.Runtime = readRuntime(threads)
	if s.WireGuard != nil {
		s.WireGuard = d.wg.live(*s.WireGuard)
	}
	if vx := d.vx; vx != nil {
		s.EVPN, s.BGP = vx.status(d.eng.Params())
	}
	if d.ac != nil {
		s.Anycast = d.ac.status()
		if d.sp != nil {
			s.BGP = speakerStatus(d.sp, d.spCfg)
		}
	}
	snap := d.Snapshot()
	for _, b := range []struct {
		c   stats.Counter
		dst **time.Time
	}{{stats.ULLastBPDU, &s.LastBPDU.UL}, {stats.DLLastBPDU, &s.LastBPDU.DL}} {
		if ns := snap[b.c]; ns != 0 {
			t := time.Unix(0, int64(ns))
			*b.dst = &t
		}
	}
	return s
}

// Anycast implements statsrv.AnycastSource.
func (d *Daemon) Anycast() *client.Anycast {
	if d.status.Load() == nil { // starting
		return nil
	}
	return d.ac.status()
}

// Control implements statsrv.AnycastSource: pwctl anycast drain|resume.
func (d *Daemon) Control(verb, prefix string) error {
	if d.status.Load() == nil {
		return errors.New("starting")
	}
	return d.ac.control(verb, prefix)
}

// FDB implements statsrv.Source.
func (d *Daemon) FDB() []client.FDBEntry {
	if d.status.Load() == nil || d.vx == nil {
		return nil
	}
	return d.vx.ctl.Entries(time.Now())
}

var _ statsrv.Source = (*Daemon)(nil)

// serve starts the statistics endpoints of c.
func (d *Daemon) serve(c *config.Config) (err error) {
	d.servers, err = statsrv.Serve(c, d, d.log)
	return err
}
