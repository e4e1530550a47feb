package anycast

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pwgate/pwgate/control/bgp"
	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/config"
)

// VIP is one anycast address the announcer announces while its check
// passes.
type VIP struct {
	config.VIP       // as configured; its Check is the check's description
	Probe      Check // the check that runs (NewCheck of Check, or a test's)
}

// State is where a VIP is.
type State string

// States of a VIP.
const (
	Down     State = "down"     // not announced: unhealthy (or not yet healthy)
	Up       State = "up"       // announced
	Draining State = "draining" // announced with the drain MED and GRACEFUL_SHUTDOWN
	Drained  State = "drained"  // withdrawn by the operator until resumed
)

// checkSlot is the grid the checks keep to.
const checkSlot = 20 * time.Millisecond

// Announcer runs each VIP's check on its own goroutine and announces or
// withdraws the VIP through the speaker.
type Announcer struct {
	start time.Time // the checks' grid starts here
	sp    bgp.Speaker
	log   *slog.Logger
	mu    sync.Mutex
	vip   map[netip.Prefix]*vipRun
	// leaving are VIPs a reload removed, draining before their withdrawal;
	// one added again before its drain ends is taken back from here.
	leaving map[netip.Prefix]*vipRun
	closing bool          // Close was called: nothing is announced any more
	shut    chan struct{} // closed by Close: leaving VIPs withdraw at once
	wg      sync.WaitGroup
	// clockReady is false while the checks wait for the system clock
	// (anycast.clock_wait): each check that falls due is skipped.
	clockReady atomic.Bool
}

// closeWait is how long Close waits for the checks that are running to
// end; their VIPs are withdrawn before, whatever the checks take.
const closeWait = 500 * time.Millisecond

type vipRun struct {
	cfg        VIP
	stop       chan struct{}
	wake       chan struct{} // the state changed from outside (drain, resume, reload)
	healthy    bool
	ok, bad    int // passing and failing checks in a row
	state      State
	since      time.Time
	last       time.Time
	lastErr    string
	announced  *bgp.Route
	drainUntil time.Time
	oldChecks  []Check // replaced by a reload, to be closed
	// revive is closed when a reload adds back the VIP it removed (then
	// revived is set): its stop and its drain on removal are void, and
	// the loop goes on with the VIP's new stop.
	revive   chan struct{}
	revived  bool
	checks   uint64
	failures uint64
	changes  uint64
}

// NewAnnouncer returns an announcer that speaks through sp.
func NewAnnouncer(sp bgp.Speaker, log *slog.Logger) *Announcer {
	a := &Announcer{start: time.Now(), sp: sp, log: log, vip: map[netip.Prefix]*vipRun{}, leaving: map[netip.Prefix]*vipRun{},
		shut: make(chan struct{})}
	a.clockReady.Store(true)
	return a
}

// clockPoll is how often the clock's synchronisation is looked at (a
// variable for tests).
var clockPoll = time.Second

// WaitForClock holds the checks until synced says the system clock is
// synchronised, or for at most max: a box without a battery-backed clock
// starts in the past, and a check then (a TLS certificate "not yet
// valid") fails, and is logged, at a wrong time. It returns at once; the
// wait runs on a goroutine of its own until then or Close.
func (a *Announcer) WaitForClock(max time.Duration, synced func() bool) {
	if max <= 0 || synced() {
		return
	}
	a.clockReady.Store(false)
	a.log.Info("anycast: health checks wait for the system clock to be synchronised", "at most", max)
	start := time.Now()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer a.clockReady.Store(true)
		t := time.NewTicker(clockPoll)
		defer t.Stop()
		for {
			select {
			case <-a.shut:
				return
			case <-t.C:
			}
			if synced() {
				a.log.Info("anycast: the system clock is synchronised; health checks start", "waited", time.Since(start).Round(time.Second))
				return
			}
			if time.Since(start) >= max {
				a.log.Warn("anycast: the system clock is still not synchronised; health checks start anyway", "waited", max)
				return
			}
		}
	}()
}

// Set makes vips the announced set: new VIPs start checking (and are
// announced after Rise passing checks), removed ones are withdrawn (after
// their drain time, if they were up), changed ones are announced again
// with their new attributes at once. A VIP added back while its removal
// drains it is announced again as it was, and its drain ends without a
// withdrawal.
func (a *Announcer) Set(vips []VIP) {
	a.mu.Lock()
	defer a.mu.Unlock()
	keep := map[netip.Prefix]bool{}
	for _, v := range vips {
		keep[v.Prefix] = true
		if r, ok := a.vip[v.Prefix]; ok {
			a.reconfigure(r, v)
			a.poke(r)
			continue
		}
		if r, ok := a.leaving[v.Prefix]; ok && !a.closing {
			delete(a.leaving, v.Prefix)
			a.reconfigure(r, v)
			r.stop, r.revived, r.drainUntil = make(chan struct{}), true, time.Time{}
			close(r.revive)
			a.vip[v.Prefix] = r
			// Out of the drain at once (its loop may still be waiting):
			// the route with the VIP's own attributes replaces the
			// drained one, or it is withdrawn if the VIP is unhealthy.
			if r.state == Draining && r.healthy {
				a.setState(r, Up)
			} else if r.state == Draining {
				a.setState(r, Down)
			}
			a.apply(r)
			continue
		}
		r := &vipRun{cfg: v, stop: make(chan struct{}), wake: make(chan struct{}, 1), state: Down, since: time.Now()}
		a.vip[v.Prefix] = r
		a.wg.Add(1)
		go a.loop(r)
	}
	for p, r := range a.vip {
		if !keep[p] {
			// Its loop drains it (if it is up) and withdraws it, unless
			// a reload takes it back from leaving first.
			delete(a.vip, p)
			a.leaving[p] = r
			r.revive = make(chan struct{})
			close(r.stop)
		}
	}
}

// reconfigure gives r its new configuration v (under a.mu).
func (a *Announcer) reconfigure(r *vipRun, v VIP) {
	if v.Probe.String() == r.cfg.Probe.String() {
		v.Probe = r.cfg.Probe // the same check, its kept connection too
	} else {
		r.oldChecks = append(r.oldChecks, r.cfg.Probe) // closed by its loop
	}
	r.cfg = v
}

func (a *Announcer) poke(r *vipRun) {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Drain re-announces prefix with its drain MED and GRACEFUL_SHUTDOWN for
// its drain time, then withdraws it; it stays withdrawn until Resume.
func (a *Announcer) Drain(prefix netip.Prefix) error { return a.setDrain(prefix, true) }

// Resume ends a drain: the VIP is announced again while healthy.
func (a *Announcer) Resume(prefix netip.Prefix) error { return a.setDrain(prefix, false) }

func (a *Announcer) setDrain(prefix netip.Prefix, on bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.vip[prefix]
	if !ok {
		return fmt.Errorf("no VIP %s", prefix)
	}
	if on == (r.state == Draining || r.state == Drained) {
		return nil
	}
	if on {
		a.setState(r, Draining)
		r.drainUntil = time.Now().Add(r.cfg.Drain)
	} else {
		a.setState(r, Down)
		r.drainUntil = time.Time{}
	}
	a.poke(r)
	return nil
}

// Status returns every VIP's state, by prefix.
func (a *Announcer) Status() []client.AnycastVIP {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []client.AnycastVIP
	for _, r := range a.vip {
		s := client.AnycastVIP{Prefix: r.cfg.Prefix.String(), Check: r.cfg.Probe.String(), State: string(r.state), Healthy: r.healthy,
			LastCheck: r.last, LastError: r.lastErr, Since: r.since, Announced: r.announced != nil, DrainUntil: r.drainUntil,
			Checks: r.checks, Failures: r.failures, Transitions: r.changes}
		if r.checks == 0 && !a.clockReady.Load() {
			s.LastError = "waiting for the system clock to be synchronised (anycast.clock_wait)"
		}
		if r.announced != nil && r.announced.HasMED {
			med := r.announced.MED
			s.MED = &med
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(x, y client.AnycastVIP) int { return strings.Compare(x.Prefix, y.Prefix) })
	return out
}

// Close withdraws every VIP at once (a stop is not a drain: no drain
// time is waited for, not even that of a VIP a reload removed) and stops
// the checks. It waits for a check that is running at most closeWait;
// the check ends by its own timeout, and its VIP stays withdrawn.
func (a *Announcer) Close() {
	a.mu.Lock()
	if !a.closing {
		a.closing = true
		close(a.shut)
	}
	for _, r := range a.vip {
		a.withdraw(r)
	}
	for _, r := range a.leaving {
		a.withdraw(r)
	}
	a.mu.Unlock()
	a.Set(nil)
	done := make(chan struct{})
	go func() {
		a.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(closeWait):
		a.log.Warn("anycast: a health check is still running at the stop; its VIP is withdrawn")
	}
}

func (a *Announcer) setState(r *vipRun, s State) {
	if r.state != s {
		a.log.Info("anycast: VIP "+string(s), "vip", r.cfg.Prefix, "was", r.state, "check", r.cfg.Probe.String(), "last_error", r.lastErr)
		r.state, r.since = s, time.Now()
		r.changes++
	}
}

// loop checks r every interval and, in between, follows drains, resumes
// and reloads.
func (a *Announcer) loop(r *vipRun) {
	defer a.wg.Done()
	// The checks come at a random point of the interval, so that many VIPs
	// do not check at the same instant (a burst a server's listen queue
	// may not take), on a grid of checkSlot from the announcer's start,
	// so that the few VIPs in one slot share the process's wake-up.
	a.mu.Lock()
	interval := r.cfg.Interval // Set changes r.cfg under a.mu
	a.mu.Unlock()
	slots := max(int64(interval/checkSlot), 1)
	next := a.start.Add(time.Duration(rand.N(slots)) * checkSlot)
	for !next.After(time.Now()) {
		next = next.Add(interval)
	}
	tick := time.NewTimer(time.Until(next))
	defer tick.Stop()
	for {
		var drainEnd <-chan time.Time
		a.mu.Lock()
		if r.state == Draining {
			d := time.Until(r.drainUntil)
			drainEnd = time.After(max(d, 0))
		}
		stop := r.stop // a reload that adds the VIP back replaces it
		a.mu.Unlock()
		select {
		case <-stop:
			a.mu.Lock()
			if r.revived || a.drainOnRemoval(r) {
				r.revived = false
				a.mu.Unlock()
				continue // added back by a reload
			}
			if a.leaving[r.cfg.Prefix] == r {
				delete(a.leaving, r.cfg.Prefix)
			}
			a.withdraw(r)
			checks := append(r.oldChecks, r.cfg.Probe)
			a.mu.Unlock()
			for _, c := range checks {
				closeCheck(c)
			}
			return
		case <-tick.C:
			a.mu.Lock()
			c, timeout := r.cfg.Probe, r.cfg.Timeout
			a.mu.Unlock()
			skip := !a.clockReady.Load()
			var err error
			if !skip {
				err = run(c, timeout)
			}
			a.mu.Lock()
			if !skip {
				a.result(r, err)
				a.apply(r)
			}
			for now := time.Now(); !next.After(now); {
				next = next.Add(r.cfg.Interval)
			}
			tick.Reset(time.Until(next))
			old := r.oldChecks
			r.oldChecks = nil
			a.mu.Unlock()
			for _, c := range old { // replaced by a reload: not running now
				closeCheck(c)
			}
		case <-r.wake:
			a.mu.Lock()
			a.apply(r)
			a.mu.Unlock()
		case <-drainEnd:
			a.mu.Lock()
			if r.state == Draining {
				a.setState(r, Drained)
			}
			a.apply(r)
			a.mu.Unlock()
		}
	}
}

// drainOnRemoval drains r, which a reload removed, if it is up and has a
// drain time (under a.mu, which it lets go while it waits): it reports
// whether a reload added r back meanwhile, in which case r goes on. It
// does not wait once Close was called.
func (a *Announcer) drainOnRemoval(r *vipRun) bool {
	drain := r.cfg.Drain
	if r.state != Up || drain <= 0 || a.closing {
		return false
	}
	a.setState(r, Draining)
	r.drainUntil = time.Now().Add(drain)
	a.apply(r)
	revive := r.revive
	a.mu.Unlock()
	t := time.NewTimer(drain)
	select {
	case <-t.C:
	case <-revive:
	case <-a.shut:
	}
	t.Stop()
	a.mu.Lock()
	return r.revived
}

// result takes one check's outcome: Rise passes in a row make the VIP
// healthy, Fall failures in a row unhealthy.
func (a *Announcer) result(r *vipRun, err error) {
	r.checks++
	r.last = time.Now()
	if err != nil {
		r.failures++
		r.lastErr = err.Error()
		r.ok, r.bad = 0, r.bad+1
		if r.healthy && r.bad >= r.cfg.Fall {
			r.healthy = false
		}
		return
	}
	r.lastErr = ""
	r.ok, r.bad = r.ok+1, 0
	if !r.healthy && r.ok >= r.cfg.Rise {
		r.healthy = true
	}
}

// apply brings BGP in line with r's health and state; after Close it
// only withdraws.
func (a *Announcer) apply(r *vipRun) {
	switch {
	case a.closing:
		a.withdraw(r)
	case r.state == Drained:
		a.withdraw(r)
	case r.state == Draining:
		a.announce(r, true)
	case r.healthy:
		a.setState(r, Up)
		a.announce(r, false)
	default:
		a.setState(r, Down)
		a.withdraw(r)
	}
}

// route is the VIP's route, drained or not.
func (r *vipRun) route(drain bool) bgp.Route {
	c := &r.cfg
	rt := bgp.Route{Kind: bgp.Prefix, Prefix: c.Prefix, NextHop: c.NextHop, MED: c.MED, HasMED: c.HasMED, LocalPref: c.LocalPref,
		Communities: slices.Clone(c.Communities), LargeCommunities: c.LargeCommunities}
	if drain {
		rt.MED, rt.HasMED = c.DrainMED, true
		rt.Communities = append(rt.Communities, bgp.GracefulShutdown)
	}
	return rt
}

func (a *Announcer) announce(r *vipRun, drain bool) {
	rt := r.route(drain)
	if r.announced != nil && sameRoute(&rt, r.announced) {
		return
	}
	if err := a.sp.Announce(rt); err != nil {
		a.log.Error("anycast: announce", "vip", r.cfg.Prefix, "err", err)
		return
	}
	r.announced = &rt
}

// closeCheck closes a check's kept connection, if it has one.
func closeCheck(c Check) {
	if c, ok := c.(interface{ Close() }); ok {
		c.Close()
	}
}

// sameRoute compares what the announcer sets of a route (every check asks;
// String would cost more than the check's own work).
func sameRoute(x, y *bgp.Route) bool {
	return x.Prefix == y.Prefix && x.NextHop == y.NextHop && x.MED == y.MED && x.HasMED == y.HasMED && x.LocalPref == y.LocalPref &&
		slices.Equal(x.Communities, y.Communities) && slices.Equal(x.LargeCommunities, y.LargeCommunities)
}

func (a *Announcer) withdraw(r *vipRun) {
	if r.announced == nil {
		return
	}
	if err := a.sp.Withdraw(*r.announced); err != nil {
		a.log.Error("anycast: withdraw", "vip", r.cfg.Prefix, "err", err)
		return
	}
	r.announced = nil
}
