package bgp

import (
	"net/netip"
	"sync"
	"time"
)

// LimitHoldOff is how long a neighbor whose session was ended for sending
// more than its prefix limit stays down before pwgate lets it connect
// again (FRR's "maximum-prefix N restart" in seconds; GoBGP and FRR by
// default keep it down until an operator acts, which an unattended box
// cannot wait for).
const LimitHoldOff = 60 * time.Second

// prefixLimit counts each neighbor's routes per family as they arrive and
// tells when one sends more than its limit. It replaces GoBGP v3.37's own
// prefix limit, which walks the neighbor's whole adj-RIB-in on every
// UPDATE: with 20,000 routes its main loop fell so far behind that its
// unbounded receive queue held 100 MiB of parsed messages. Here a route
// costs a map operation.
type prefixLimit struct {
	mu     sync.Mutex
	limits map[netip.Addr]map[Family]int             // by neighbor address; others: the family's default
	routes map[netip.Addr]map[Family]map[string]bool // the route IDs each neighbor has now
	resets map[netip.Addr]int                        // sessions ended, by neighbor
	down   map[netip.Addr]bool                       // ended and not yet let in again
}

func newPrefixLimit() *prefixLimit {
	return &prefixLimit{routes: map[netip.Addr]map[Family]map[string]bool{}, resets: map[netip.Addr]int{}, down: map[netip.Addr]bool{}}
}

// configure takes the neighbors' limits.
func (l *prefixLimit) configure(ns []Neighbor) {
	lim := map[netip.Addr]map[Family]int{}
	for _, n := range ns {
		if !n.Address.IsValid() {
			continue // unnumbered: the defaults, or the family's max_prefix below
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

// limit returns the most routes of family f that peer may send.
func (l *prefixLimit) limit(peer netip.Addr, f Family) int {
	if n, ok := l.limits[peer][f]; ok {
		return n
	}
	return (&Neighbor{}).maxPrefix(f)
}

// family returns the address family of a route.
func family(r *Route) Family {
	switch {
	case r.Kind != Prefix:
		return EVPN
	case r.Prefix.Addr().Is4():
		return IPv4Unicast
	}
	return IPv6Unicast
}

// seen counts one received path (u.Peer's route u, or its withdrawal) and
// reports whether u.Peer has now gone past its limit; it then forgets the
// neighbor's routes (its session is to end, and its routes with it) and
// reports it once, until let in again.
func (l *prefixLimit) seen(u *Update) (over bool) {
	if !u.Peer.IsValid() {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f := family(&u.Route)
	byFam := l.routes[u.Peer]
	if u.Withdraw {
		delete(byFam[f], u.ID())
		return false
	}
	if l.down[u.Peer] {
		return false // late paths of an ended session
	}
	if byFam == nil {
		byFam = map[Family]map[string]bool{}
		l.routes[u.Peer] = byFam
	}
	if byFam[f] == nil {
		byFam[f] = map[string]bool{}
	}
	byFam[f][u.ID()] = true
	if len(byFam[f]) <= l.limit(u.Peer, f) {
		return false
	}
	delete(l.routes, u.Peer)
	l.down[u.Peer] = true
	l.resets[u.Peer]++
	return true
}

// sessionDown forgets a neighbor's routes when its session ends.
func (l *prefixLimit) sessionDown(peer netip.Addr) {
	l.mu.Lock()
	delete(l.routes, peer)
	l.mu.Unlock()
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
