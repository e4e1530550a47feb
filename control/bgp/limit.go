package bgp

import (
	"net/netip"
	"runtime/debug"
	"sync"
	"time"
)

// LimitHoldOff is how long a neighbor whose session was ended for sending
// more than its prefix limit stays down before pwgate lets it connect
// again (FRR's "maximum-prefix N restart" in seconds; GoBGP and FRR by
// default keep it down until an operator acts, which an unattended box
// cannot wait for).
const LimitHoldOff = 60 * time.Second

// LimitPoll is how often each neighbor's routes are compared with its
// prefix limit.
const LimitPoll = 100 * time.Millisecond

// prefixLimit holds the neighbors' prefix limits and who went past them.
// It replaces GoBGP v3.37's own prefix limit, which walks the neighbor's
// whole adj-RIB-in on every UPDATE: with 20,000 routes its main loop fell
// so far behind that its unbounded receive queue held 100 MiB of parsed
// messages. Here the count GoBGP keeps is compared every LimitPoll (one
// walk per neighbor, not one per UPDATE), so a neighbor can go past its
// limit by what GoBGP takes in within LimitPoll before its session ends.
type prefixLimit struct {
	mu     sync.Mutex
	limits map[netip.Addr]map[Family]int // by neighbor address; others: the family's default
	resets map[netip.Addr]int            // sessions ended, by neighbor
	down   map[netip.Addr]bool           // ended and not yet let in again
}

func newPrefixLimit() *prefixLimit {
	return &prefixLimit{resets: map[netip.Addr]int{}, down: map[netip.Addr]bool{}}
}

// configure takes the neighbors' limits.
func (l *prefixLimit) configure(ns []Neighbor) {
	lim := map[netip.Addr]map[Family]int{}
	for _, n := range ns {
		if !n.Address.IsValid() {
			continue // unnumbered: the families' defaults
		}
		m := map[Family]int{}
		for _, f := range n.Families {
			m[f] = n.maxPrefix(f)
		}
		lim[n.Address] = m
	}
	l.mu.Lock()
	l.limits = lim
	l.mu.Unlock()
}

// limit returns the most routes of family f that peer may send. Called
// with l.mu held.
func (l *prefixLimit) limit(peer netip.Addr, f Family) int {
	if n, ok := l.limits[peer][f]; ok {
		return n
	}
	return (&Neighbor{}).maxPrefix(f)
}

// over reports whether peer, holding routes routes of family f, has gone
// past its limit: once, until letIn.
func (l *prefixLimit) over(peer netip.Addr, f Family, routes int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down[peer] || routes <= l.limit(peer, f) {
		return false
	}
	l.down[peer] = true
	l.resets[peer]++
	return true
}

// letIn ends a neighbor's hold-off.
func (l *prefixLimit) letIn(peer netip.Addr) {
	l.mu.Lock()
	delete(l.down, peer)
	l.mu.Unlock()
}

// resetsOf returns how many sessions with peer were ended for its limit.
func (l *prefixLimit) resetsOf(peer netip.Addr) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.resets[peer]
}

// eagerPercent is the collector's target (GOGC) from the moment pwgate
// ends a neighbor's session for its prefix limit until eagerAfter after
// GoBGP has dropped its routes. Ending the session leaves garbage: the
// parsed messages GoBGP had read and not processed, and the routes it
// drops, each as an event of its own for the watcher, with a copy of the
// neighbor's configuration (v3.37's propagateUpdate), that the watcher
// converts and the EVPN controller withdraws: live memory grew by 40 %
// after the session ended, and at pwgated's GOGC of 50 the heap grows to
// 1.5 times what is live. In TestHostilePeer's flood of MAC routes resident
// memory peaked 47-66 MiB above where it started (9 runs, GOGC 50 and a
// collection once the session had ended), 42-46 MiB with this (3 runs).
// More collector work for a second or two, once per session ended (a
// neighbor is let in again only after LimitHoldOff).
const (
	eagerPercent = 10
	eagerAfter   = time.Second
)

// collectEagerly lowers the collector's target while sessions end.
var collectEagerly eagerGC

// eagerGC lowers the process's GOGC to eagerPercent between begin and
// end, nested; one set lower, or off (GOGC=off), is left alone.
type eagerGC struct {
	mu   sync.Mutex
	n    int
	prev int // GOGC before the first begin
}

func (e *eagerGC) begin() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n++; e.n > 1 {
		return
	}
	if e.prev = debug.SetGCPercent(eagerPercent); e.prev <= eagerPercent {
		debug.SetGCPercent(e.prev) // lower already, or off
	}
}

func (e *eagerGC) end() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n--; e.n == 0 {
		debug.SetGCPercent(e.prev)
	}
}
