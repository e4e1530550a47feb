package control

import (
	"errors"
	"os"
	"time"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/feature"
	"github.com/pwgate/pwgate/control/statsrv"
	"github.com/pwgate/pwgate/dataplane"
	"github.com/pwgate/pwgate/dataplane/stats"
)

// publishStatus stores what only the main goroutine knows (the
// configuration, the data path's parameters, the uplink's view) for the
// servers' goroutines, which add each feature's live state (Status).
func (d *Daemon) publishStatus() {
	s := &client.Status{Mode: "anycast", Ready: true, Config: d.cfg.Source, Started: d.started, PID: os.Getpid(), Version: client.Version}
	if p := d.profile; p != nil {
		s.Profile = p.Name + ": " + p.Description
	}
	if d.path != nil {
		p := d.path.Params()
		s.Mode, s.Downlink, s.Uplink, s.Peer, s.NextHop = d.cfg.ModeName(), d.cfg.Downlink, d.cfg.Uplink, p.PeerString(), p.NextHop().String()
		s.Ready, s.NotReady, s.Poll, s.UplinkMTU = p.NotReady == "", p.NotReady, dataplane.PollMode(d.cfg.Poll).String(), p.Encap.MTU
		if ports := d.path.ports; ports != nil { // nil in tests
			s.XDPBind = bindName(ports.pair)
			for _, c := range ports.nic {
				s.NICChanges = append(s.NICChanges, c.String())
			}
		}
		if p.Local().IsValid() {
			s.Local = p.Local().String()
		}
	}
	if d.up != nil && d.up.View().Via.IsValid() {
		s.Via = d.up.View().Via.String()
	}
	if d.wg != nil {
		d.wg.Publish(d.cfg)
		if d.cfg.OverWireGuard() {
			s.NextHop, s.Via = "", "WireGuard ("+d.cfg.WireGuard.Interface+")"
		}
	}
	d.status.Store(s)
}

// Status implements statsrv.Source: the published status with each
// feature's live state.
func (d *Daemon) Status() client.Status {
	st := d.status.Load()
	if st == nil {
		mode := d.cfg.ModeName()
		if d.cfg.AnycastOnly() {
			mode = "anycast"
		}
		return client.Status{Mode: mode, NotReady: "starting", Started: d.started, PID: os.Getpid(), Version: client.Version}
	}
	s := *st
	s.Uptime = time.Since(s.Started).Seconds()
	var threads []dataplane.Thread
	if d.path != nil {
		threads = d.path.threads()
	}
	s.Runtime = readRuntime(threads)
	for _, f := range d.features() {
		f.Status(&s)
	}
	return s
}

// Snapshot implements statsrv.Source: the data path's counters and the
// features'. Safe from any goroutine.
func (d *Daemon) Snapshot() stats.Snapshot {
	var s stats.Snapshot
	if d.status.Load() == nil { // starting
		return s
	}
	for _, f := range d.features() {
		if c, ok := f.(feature.Counter); ok {
			c.AddCounters(&s)
		}
	}
	return s
}

// Anycast implements statsrv.AnycastSource.
func (d *Daemon) Anycast() *client.Anycast {
	if d.status.Load() == nil { // starting
		return nil
	}
	return d.ac.State()
}

// Control implements statsrv.AnycastSource: pwctl anycast drain|resume.
func (d *Daemon) Control(verb, prefix string) error {
	if d.status.Load() == nil {
		return errors.New("starting")
	}
	return d.ac.Control(verb, prefix)
}

// FDB implements statsrv.Source.
func (d *Daemon) FDB() []client.FDBEntry {
	if d.status.Load() == nil || d.vx == nil {
		return nil
	}
	return d.vx.ctl.Entries(time.Now())
}

// Config implements statsrv.ConfigSource: pwctl config.
func (d *Daemon) Config(req client.ConfigRequest) client.ConfigAnswer {
	if d.status.Load() == nil {
		return client.ConfigAnswer{Error: "starting"}
	}
	if d.cf == nil {
		return client.ConfigAnswer{Error: d.noConfig}
	}
	return d.cf.call(req)
}

var (
	_ statsrv.ConfigSource  = (*Daemon)(nil)
	_ statsrv.Source        = (*Daemon)(nil)
	_ statsrv.AnycastSource = (*Daemon)(nil)
)
