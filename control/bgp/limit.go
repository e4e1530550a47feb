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
