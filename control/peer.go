package control

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/control/feature"
	"github.com/pwgate/pwgate/dataplane"
	"github.com/pwgate/pwgate/dataplane/stats"
)

// peerRole is the pseudowire's peer as a feature: what keepalives tell of
// it (pwctl status's path), and link-loss forwarding (downlink.follow_peer):
// the LAN port taken down while the peer is silent or does not hear us,
// and brought back up once it has been heard, and heard us, for the hold.
type peerRole struct {
	log  *slog.Logger
	src  peerSource
	link lanLink

	mu       sync.Mutex // the fields below: Status and AddCounters read them
	ka       *config.Keepalive
	follow   *config.FollowPeer
	started  time.Time // when the peer could first have been heard
	down     bool      // we took the LAN port down
	since    time.Time // of down's current value
	goodFrom time.Time // heard, and heard us, without a break since (zero: not now)
	downs    uint64
	err      string // the last failure to change the port
	warned   string // the last warning logged
	loss     [11]lossSample
	nLoss    int
}

// lossSample is the keepalive counters at one second.
type lossSample struct{ rx, lost, late uint64 }

// peerSource is what the role reads of the data path (the engine; a fake
// in tests).
type peerSource interface {
	Path() dataplane.Path
	Snapshot(*stats.Snapshot)
	SetLANDown(bool)
}

// lanLink takes the LAN port down and up (netlink; a fake in tests).
type lanLink interface {
	setUp(up bool) error
}

type netlinkLink string

func (n netlinkLink) setUp(up bool) error {
	l, err := netlink.LinkByName(string(n))
	if err != nil {
		return err
	}
	if up {
		return netlink.LinkSetUp(l)
	}
	return netlink.LinkSetDown(l)
}

// peerTick is how often the main goroutine looks at the peer while
// keepalives are on: a silent peer is acted on within timeout + peerTick.
const peerTick = 20 * time.Millisecond

// newPeerRole starts the role; with follow_peer the LAN port is held down
// from the start until the peer is heard (the ports were opened without
// bringing it up).
func newPeerRole(c *config.Config, src peerSource, link lanLink, log *slog.Logger) *peerRole {
	p := &peerRole{log: log, src: src, link: link, ka: c.Keepalive, follow: c.FollowPeer, started: time.Now()}
	if p.follow != nil && p.ka != nil {
		p.setDown(true, p.started, stateWhy[client.PathWaiting])
		// Down even if taking it down failed: the port may be down
		// already (PrepareLinks left it so), and the hold brings it up.
		p.down, p.since = true, p.started
	}
	return p
}

func (p *peerRole) Events() []feature.Event {
	return []feature.Event{{Every: peerTick, Active: p.active, Do: p.check}}
}

func (p *peerRole) active() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ka != nil || p.down
}

// Reload takes the new keepalive and follow_peer settings; turning
// follow_peer off brings the LAN port back up at the next check.
func (p *peerRole) Reload(old, next *config.Config) ([]feature.Step, error) {
	return []feature.Step{{Name: "keepalives", Do: func() error { p.set(next); return nil }, Undo: func() { p.set(old) }}}, nil
}

func (p *peerRole) set(c *config.Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ka == nil && c.Keepalive != nil {
		p.started, p.nLoss = time.Now(), 0
	}
	p.ka, p.follow = c.Keepalive, c.FollowPeer
}

// check looks at the peer and takes the LAN port down or up (main
// goroutine, every peerTick while active).
func (p *peerRole) check() {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	path := p.src.Path()
	p.sampleLoss(now)
	if p.follow == nil || p.ka == nil {
		if p.down {
			p.setDown(false, now, "downlink.follow_peer is off")
		}
		return
	}
	p.warn(path)
	state := p.state(path, now)
	// Down on a fault that lasted the timeout; back up only after the
	// peer has been heard, and has heard us (its last keepalive said so),
	// for the hold without a break.
	good := state == client.PathUp && path.Deaf == 0
	switch {
	case !p.down && state != client.PathUp:
		p.setDown(true, now, stateWhy[state])
	case p.down && !good:
		p.goodFrom = time.Time{}
	case p.down && p.goodFrom.IsZero():
		p.goodFrom = now
	case p.down && now.Sub(p.goodFrom) >= p.follow.Hold:
		p.setDown(false, now, "peer heard for "+now.Sub(p.goodFrom).Round(time.Millisecond).String())
	}
}

// warning says what looks misconfigured about the peer's keepalives, or "".
func (p *peerRole) warning(path dataplane.Path) string {
	switch {
	case path.Heard >= 0 && path.KeepaliveHeard < 0 && time.Since(p.started) > p.ka.Timeout:
		return "the peer sends no keepalives: configure peer.keepalive there too"
	case path.PeerInterval > p.ka.Timeout/2:
		return "the peer sends keepalives every " + path.PeerInterval.String() + ", more than half our timeout " + p.ka.Timeout.String() + ": a late one makes it look silent"
	}
	return ""
}

// warn logs a new warning once.
func (p *peerRole) warn(path dataplane.Path) {
	w := p.warning(path)
	if w != "" && w != p.warned {
		p.log.Warn("keepalives: " + w)
	}
	p.warned = w
}

// stateWhy says why the LAN port is taken down in each state but "up".
// At start the peer is not heard yet: the port comes up only once it is,
// as a media converter's copper link comes up only with its fibre, so that
// a pwgated restarted after a crash gives the LAN a link loss too.
var stateWhy = map[string]string{client.PathSilent: "silent for the timeout", client.PathOneWay: "does not hear us", client.PathWaiting: "not heard yet"}

// state says what the peer is: up, silent, one-way, or waiting (see
// client.PeerPath).
func (p *peerRole) state(path dataplane.Path, now time.Time) string {
	t := p.ka.Timeout
	switch {
	case path.Heard < 0 && now.Sub(p.started) <= t:
		return client.PathWaiting
	case path.Heard < 0 || path.Heard > t:
		return client.PathSilent
	case path.KeepaliveHeard >= 0 && path.KeepaliveHeard <= t && path.Deaf > t:
		return client.PathOneWay
	}
	return client.PathUp
}

// setDown takes the LAN port down (or brings it up), and says why. The
// data path stops sending to the LAN before the port goes down, and starts
// again only once it is up.
func (p *peerRole) setDown(down bool, now time.Time, why string) {
	if down {
		p.src.SetLANDown(true)
	}
	if err := p.link.setUp(!down); err != nil {
		p.src.SetLANDown(p.down)
		if p.err != err.Error() {
			p.log.Error("follow_peer: cannot change the LAN port", "down", down, "err", err)
			p.err = err.Error()
		}
		return
	}
	p.err = ""
	p.src.SetLANDown(down)
	if down {
		p.downs++
		p.log.Warn("follow_peer: LAN port taken down", "peer", why)
	} else {
		p.log.Info("follow_peer: LAN port up again", "reason", why, "was down for", now.Sub(p.since).Round(time.Millisecond))
	}
	p.down, p.since, p.goodFrom = down, now, time.Time{}
}

// sampleLoss keeps the keepalive counters once a second.
func (p *peerRole) sampleLoss(now time.Time) {
	if p.nLoss > 0 && now.Sub(p.started) < time.Duration(p.nLoss)*time.Second {
		return
	}
	var s stats.Snapshot
	p.src.Snapshot(&s)
	copy(p.loss[:], p.loss[1:])
	p.loss[len(p.loss)-1] = lossSample{s[stats.PeerKeepalivesRx], s[stats.PeerKeepalivesLost], s[stats.PeerKeepalivesLate]}
	p.nLoss++
}

// lossRatio is the share of keepalives lost over the samples kept.
func (p *peerRole) lossRatio() float64 {
	n := min(p.nLoss, len(p.loss))
	if n < 2 {
		return 0
	}
	first, last := p.loss[len(p.loss)-n], p.loss[len(p.loss)-1]
	// A late keepalive was counted lost at its gap, and received: it
	// is taken back from the lost (its gap may precede the window).
	rx, lost := last.rx-first.rx, last.lost-first.lost
	lost -= min(lost, last.late-first.late)
	if rx+lost == 0 {
		return 0
	}
	return float64(lost) / float64(rx+lost)
}

func (p *peerRole) Status(s *client.Status) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ka == nil {
		return
	}
	path := p.src.Path()
	secs := func(d time.Duration) float64 {
		if d < 0 {
			return -1
		}
		return d.Seconds()
	}
	st := &client.PeerPath{Interval: p.ka.Interval.Seconds(), Timeout: p.ka.Timeout.Seconds(), State: p.state(path, time.Now()), Warning: p.warning(path),
		HeardAgo: secs(path.Heard), KeepaliveAgo: secs(path.KeepaliveHeard), PeerInterval: path.PeerInterval.Seconds(),
		RTT: path.RTT.Seconds(), Jitter: path.Jitter.Seconds(), Loss: p.lossRatio()}
	if st.State == client.PathSilent {
		st.Loss = 1
	}
	if p.follow != nil || p.down {
		st.FollowPeer = &client.FollowPeerStatus{LANDown: p.down, Since: p.since, Downs: p.downs, Error: p.err}
		if p.follow != nil {
			st.FollowPeer.Hold = p.follow.Hold.Seconds()
		}
	}
	s.Path = st
}

// AddCounters adds dl_follow_peer_downs.
func (p *peerRole) AddCounters(s *stats.Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s[stats.DLFollowPeerDowns] += p.downs
}

// Close brings the LAN port back up: pwgated never leaves it down.
func (p *peerRole) Close(bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down {
		p.setDown(false, time.Now(), "pwgated stops")
	}
}

// AfterStop is pwgated --stopped, which systemd runs after pwgated has
// stopped (ExecStopPost, with $SERVICE_RESULT as result): when it did not
// stop cleanly (it crashed, was killed, or its watchdog fired) and c has
// downlink.follow_peer, it takes the LAN port down, so that the LAN sees
// the pseudowire go with the process at once, not when its bridges'
// timers run out. The pwgated that systemd starts next holds the port
// down until the peer is heard. A clean stop has brought the port up
// itself; result "success" does nothing.
func AfterStop(c *config.Config, result string, log *slog.Logger) error {
	return afterStop(c, result, netlinkLink(c.Downlink), log)
}

func afterStop(c *config.Config, result string, link lanLink, log *slog.Logger) error {
	if c.FollowPeer == nil || result == "success" {
		return nil
	}
	if err := link.setUp(false); err != nil {
		return fmt.Errorf("follow_peer: taking %s down after pwgated stopped (%s): %w", c.Downlink, result, err)
	}
	log.Warn("follow_peer: LAN port taken down: pwgated did not stop cleanly", "port", c.Downlink, "result", result)
	return nil
}
