package control

import (
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pwgate/pwgate/bpf"
	"github.com/pwgate/pwgate/control/bgp"
	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/control/evpn"
	"github.com/pwgate/pwgate/control/feature"
	"github.com/pwgate/pwgate/control/uplink"
	"github.com/pwgate/pwgate/control/wireguard"
	"github.com/pwgate/pwgate/dataplane"
	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/stats"
	"github.com/pwgate/pwgate/dataplane/vxlan"
)

// vxlanRole is pwgated as a VXLAN tunnel end: the forwarding
// database's controller, and the BGP speaker that feeds it (nil without a
// bgp section).
type vxlanRole struct {
	ctl        *evpn.Controller
	sp         bgp.Speaker
	asn        uint32
	routerID   netip.Addr
	marker     string // graceful restart marker file
	gr         bool   // bgp.graceful_restart
	unresolved bool   // some VTEP's next hop is not known yet
	params     func() *dataplane.Params
	log        *slog.Logger
	// What BGP and the data goroutines report is taken in batches, at
	// most every workEvery: under churn, every new forwarding table
	// costs the data goroutines cache misses on the shards it replaces.
	lastWork time.Time
	armed    bool          // a timer will send on workNow
	workNow  chan struct{} // wakes the main goroutine for a deferred Work
}

// workEvery: the VTEP controller publishes a new forwarding table at most
// this often.
const workEvery = 10 * time.Millisecond

// agingEvery is how often learned MACs are checked for age.
const agingEvery = 5 * time.Second

// vtepUnderlay is the kernel as the controller sees it: next hops by the
// uplink tracker, the VTEP set in the uplink's XDP program.
type vtepUnderlay struct {
	t *uplink.Tracker
	p *ports
}

func (u *vtepUnderlay) NextHop(a netip.Addr) (frame.MAC, bool) {
	_, mac, why := u.t.NextHop(a)
	return mac, why == ""
}

func (u *vtepUnderlay) SetVTEPs(addrs []netip.Addr) error {
	keys := make([]bpf.PeerKey, len(addrs))
	for i, a := range addrs {
		keys[i] = bpf.AddrPeer(a)
	}
	return u.p.setPeers(keys)
}

// restartMarker is the file pwgated leaves when it stops with graceful
// restart: the next start within the restart time tells its neighbors it
// is restarting (RFC 4724's R bit), so that they keep its routes until it
// has sent them again.
func restartMarker(c *config.Config) string {
	return filepath.Join(filepath.Dir(c.StatsSocket), "bgp-restarting."+c.BGP.RouterID.String())
}

// startVXLAN starts the controller and the speaker; also, if not nil,
// sees every update the controller sees (anycast's forwarder).
// params returns the data path's parameters, for pwctl evpn's largest
// frames.
func startVXLAN(c *config.Config, u evpn.Underlay, also func([]bgp.Update), params func() *dataplane.Params, log *slog.Logger) (_ *vxlanRole, err error) {
	r := &vxlanRole{log: log, params: params, workNow: make(chan struct{}, 1)}
	var sp *bgp.GoBGP
	if c.BGP != nil {
		sp = bgp.NewGoBGP(log)
		r.sp, r.asn, r.routerID, r.marker, r.gr = sp, c.BGP.ASN, c.BGP.RouterID, restartMarker(c), c.BGP.GracefulRestart
	}
	if r.ctl, err = evpn.New(evpnConfig(c, c.VTEPAddr()), u, r.sp, log); err != nil {
		return nil, err
	}
	if sp == nil {
		return r, nil
	}
	if _, anywhere := c.VTEPPrefixList(); anywhere && c.BGP.UsesEVPN() {
		log.Warn("evpn: any neighbor may name any address as a VTEP, which then gets this LAN's broadcasts: set vxlan.vtep_prefixes to where your VTEPs are")
	}
	restarting := false
	if fi, err := os.Stat(r.marker); err == nil && time.Since(fi.ModTime()) < time.Duration(c.BGP.RestartTime)*time.Second {
		restarting = true
		log.Info("bgp: restarting gracefully: the neighbors keep our routes until we send them again")
	}
	os.Remove(r.marker)
	watch := r.ctl.Received
	if also != nil {
		watch = func(us []bgp.Update) { r.ctl.Received(us); also(us) }
	}
	if err := sp.Start(speakerConfig(c, restarting), watch); err != nil {
		return nil, fmt.Errorf("bgp: %w", err)
	}
	r.ctl.Begin()
	return r, nil
}

// underlay is the kernel as c's VTEP controller sees it.
func (d *Daemon) underlay(c *config.Config, tr *uplink.Tracker) evpn.Underlay {
	if c.OverWireGuard() {
		return wireguard.Underlay{Config: func() *config.Config { return d.cfg }}
	}
	return &vtepUnderlay{t: tr, p: d.path.ports}
}

func (r *vxlanRole) Events() []feature.Event {
	return []feature.Event{
		{C: r.ctl.Wake(), Do: r.learned},
		{C: r.workNow, Do: r.work},
		{Every: agingEvery, Do: func() { r.ctl.Age(time.Now()) }},
	}
}

// learned takes what BGP and the data goroutines reported now, or, within
// workEvery of the last time, when workEvery has passed.
func (r *vxlanRole) learned() {
	since := time.Since(r.lastWork)
	switch {
	case since >= workEvery:
		r.work()
	case !r.armed:
		r.armed = true
		time.AfterFunc(workEvery-since, func() {
			select {
			case r.workNow <- struct{}{}:
			default: // one is pending
			}
		})
	}
}

func (r *vxlanRole) work() {
	r.armed = false
	r.ctl.Work(time.Now())
	r.lastWork = time.Now()
}

func (r *vxlanRole) AddCounters(s *stats.Snapshot) { r.ctl.AddCounters(s) }

// resolve looks the VTEPs' next hops up again.
func (r *vxlanRole) resolve() { r.unresolved = r.ctl.Resolve() }

// reload returns the steps that apply next (the controller's and the
// speaker's), each undone by putting old back.
func (r *vxlanRole) Reload(old, next *config.Config) ([]feature.Step, error) {
	now := time.Now()
	steps := []feature.Step{{Name: "vxlan", Do: func() error { return r.ctl.Reconfigure(evpnConfig(next, next.VTEPAddr()), now) },
		Undo: func() { r.ctl.Reconfigure(evpnConfig(old, old.VTEPAddr()), now) }}}
	if r.sp != nil {
		steps = append(steps, feature.Step{Name: "bgp", Do: func() error { return r.sp.Reconfigure(speakerConfig(next, false)) },
			Undo: func() { r.sp.Reconfigure(speakerConfig(old, false)) }})
	}
	return steps, nil
}

// close stops the speaker: with graceful restart and graceful (SIGTERM),
// without a NOTIFICATION, leaving the marker for the next start.
func (r *vxlanRole) Close(graceful bool) {
	if r.sp == nil {
		return
	}
	gr := r.gr
	if gr && graceful {
		if err := os.WriteFile(r.marker, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			r.log.Warn("bgp: cannot leave the graceful restart marker", "err", err)
		}
		r.log.Info("bgp: leaving gracefully: the neighbors keep our routes for the restart time")
	}
	r.sp.Stop(gr && graceful)
}

// status adds "pwctl evpn"'s and "pwctl bgp"'s state.
func (r *vxlanRole) Status(s *client.Status) {
	e := r.ctl.Status()
	s.EVPN = &e
	if p := r.params(); p.VXLAN != nil {
		if enc, err := vxlan.NewEncapsulator(p.VXLAN.Encap); err == nil {
			chunk := dataplane.MaxFrame(enc.Overhead())
			for i := range e.VNIs {
				tag := 0
				if e.VNIs[i].VLAN != 0 {
					tag = frame.VLANTagLen
				}
				e.VNIs[i].MaxFrame = min(enc.MaxFrame(false), chunk) + tag
				e.VNIs[i].MaxFramePwgate = min(enc.MaxFrame(true), chunk) + tag
			}
		}
	}
	if r.sp != nil {
		s.BGP = bgpStatus(r.sp)
		s.BGP.ASN, s.BGP.RouterID = r.asn, r.routerID.String()
	}
}

// bgpStatus reads the speaker's sessions, by neighbor.
func bgpStatus(sp bgp.Speaker) *client.BGP {
	b := &client.BGP{}
	for _, ps := range sp.Peers() {
		n := client.Neighbor{Neighbor: ps.Key, ASN: ps.ASN, Description: ps.Description, State: ps.State, Received: map[string]int{}, Advertised: ps.Advertised,
			PrefixLimitResets: ps.LimitResets, RouterAdvertisementsIgnored: ps.RAsIgnored}
		if ps.Address.IsValid() {
			n.Address = ps.Address.String()
		}
		if !ps.Since.IsZero() {
			t := ps.Since
			n.Since = &t
		}
		for f, k := range ps.Received {
			n.Received[f.String()] = k
		}
		b.Neighbors = append(b.Neighbors, n)
	}
	slices.SortFunc(b.Neighbors, func(x, y client.Neighbor) int { return strings.Compare(x.Neighbor, y.Neighbor) })
	return b
}
