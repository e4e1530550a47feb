package bgp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// Unnumbered sessions (FRR's "neighbor IFNAME interface") run between the
// two ends' IPv6 link-local addresses, which neither end is told: each
// learns the other's from its router advertisements, as FRR does (zebra
// hears them, bgpd takes the sender's address). pwgated sends a router
// advertisement on each unnumbered neighbor's interface every raInterval
// (router lifetime 0: no host takes pwgate for a default router; no
// prefixes), and takes the source of the advertisements it hears there.
const (
	raInterval = 10 * time.Second // FRR's for unnumbered neighbors
	// raFast advertisements go out a second apart when an interface is
	// added (FRR sends its first ones as fast).
	raFast = 3
	// raStale: a neighbor heard from last longer ago than this, or whose
	// session is not established, gives its place to another router heard
	// on the interface (a replaced router, whose link-local address
	// changed); otherwise others are ignored (two routers on one
	// unnumbered link are a mistake).
	raStale = 3 * raInterval
	// raChange is how often at most an interface's neighbor changes.
	raChange = time.Second
	// raRate is how many advertisements an interface's are looked at in
	// a second at most (a router sends one in seconds); the rest are
	// counted as ignored.
	raRate = 20
)

// parseRA checks b, an ICMPv6 message received with hop limit hops from
// src, as RFC 4861 6.1.2 validates a router advertisement: hop limit 255
// (it comes from the link itself), a link-local source, code 0, at least
// 16 bytes, options whole and none of length 0. The options are not
// otherwise read.
func parseRA(b []byte, hops int, src netip.Addr) error {
	switch {
	case hops != 255:
		return errors.New("hop limit not 255")
	case !src.Is6() || src.Is4In6() || !src.IsLinkLocalUnicast():
		return errors.New("source not IPv6 link-local")
	case len(b) < 16:
		return errors.New("shorter than 16 bytes")
	case b[0] != byte(ipv6.ICMPTypeRouterAdvertisement):
		return errors.New("not a router advertisement")
	case b[1] != 0:
		return errors.New("code not 0")
	}
	for o := b[16:]; len(o) > 0; {
		if len(o) < 2 || o[1] == 0 || int(o[1])*8 > len(o) {
			return errors.New("bad option")
		}
		o = o[int(o[1])*8:]
	}
	return nil
}

// buildRA returns our router advertisement from an interface with MAC
// mac: router lifetime 0, nothing announced but the source link-layer
// address (the checksum is the kernel's).
func buildRA(mac net.HardwareAddr) []byte {
	b := make([]byte, 16, 16+8)
	b[0] = byte(ipv6.ICMPTypeRouterAdvertisement)
	if len(mac) == 6 {
		b = append(b, 1, 1) // source link-layer address, 8 bytes
		b = append(b, mac...)
	}
	return b
}

// linkState is one unnumbered interface's neighbor.
type linkState struct {
	addr  netip.Addr // the neighbor's link-local address, zoned; invalid until heard
	heard time.Time
	fast  int       // fast advertisements still to send
	next  time.Time // our next advertisement
	err   string    // the last error sending on it, logged once
	// pending: the neighbor's session could not start; tried again when
	// it is next heard.
	pending bool
	// link is the interface as last looked at (index, up and running,
	// our link-local address), "" before the first look.
	link string
	// alt is another router heard while the neighbor's session was up.
	alt      netip.Addr
	altHeard time.Time
	// ignored counts the advertisements heard here that were refused
	// (RFC 4861's checks) or not taken (a second router).
	ignored uint64
	// taken is when the neighbor last changed: at most once a second
	// (raChange), so that advertisements from ever new sources cannot
	// keep GoBGP remaking the session.
	taken time.Time
	// second and inSecond count the advertisements looked at (raRate).
	second   time.Time
	inSecond int
}

// linkNeighbors learns unnumbered neighbors' addresses and advertises
// ours. Its goroutines call learned (never with its lock held) when an
// interface's neighbor is first heard or changes, and again while learned
// reports that its session could not start.
type linkNeighbors struct {
	log     *slog.Logger
	learned func(ifname string, addr netip.Addr) (started bool)
	up      func(addr netip.Addr) bool // whether the session with addr is established
	c       *icmp.PacketConn
	pc      *ipv6.PacketConn
	done    chan struct{}
	wg      sync.WaitGroup

	mu  sync.Mutex
	ifs map[string]*linkState
	// names are the unnumbered interfaces by index, as look last found
	// them: an advertisement costs no netlink dump.
	names map[int]string
}

// newLinkNeighbors opens the ICMPv6 socket (it needs CAP_NET_RAW) and
// starts reading and advertising.
func newLinkNeighbors(log *slog.Logger, learned func(string, netip.Addr) bool, up func(netip.Addr) bool) (*linkNeighbors, error) {
	c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return nil, err
	}
	pc := c.IPv6PacketConn()
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeRouterAdvertisement)
	for _, set := range []func() error{
		func() error { return pc.SetICMPFilter(&f) },
		func() error { return pc.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagInterface|ipv6.FlagSrc, true) },
		func() error { return pc.SetMulticastHopLimit(255) },
		func() error { return pc.SetMulticastLoopback(false) },
	} {
		if err := set(); err != nil {
			c.Close()
			return nil, err
		}
	}
	l := &linkNeighbors{log: log, learned: learned, up: up, c: c, pc: pc, done: make(chan struct{}), ifs: map[string]*linkState{}}
	l.wg.Add(2)
	go l.read()
	go l.advertise()
	return l, nil
}

// set makes ifnames the unnumbered interfaces: new ones start with fast
// advertisements, gone ones are forgotten.
func (l *linkNeighbors) set(ifnames []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	keep := map[string]bool{}
	for _, n := range ifnames {
		keep[n] = true
		if l.ifs[n] == nil {
			l.ifs[n] = &linkState{fast: raFast}
		}
	}
	for n := range l.ifs {
		if !keep[n] {
			delete(l.ifs, n)
		}
	}
	l.names = map[int]string{}
	for n := range l.ifs {
		if ifi, err := net.InterfaceByName(n); err == nil {
			l.names[ifi.Index] = n
		}
	}
}

// addr returns the neighbor heard on ifname (invalid: none yet).
func (l *linkNeighbors) addr(ifname string) netip.Addr {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.ifs[ifname]; s != nil {
		return s.addr
	}
	return netip.Addr{}
}

// ignoredOn returns how many advertisements heard on ifname were refused
// or not taken.
func (l *linkNeighbors) ignoredOn(ifname string) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := l.ifs[ifname]; s != nil {
		return s.ignored
	}
	return 0
}

func (l *linkNeighbors) read() {
	defer l.wg.Done()
	buf := make([]byte, 1500)
	for {
		n, cm, src, err := l.pc.ReadFrom(buf)
		if err != nil {
			select {
			case <-l.done:
				return
			default:
			}
			l.log.Debug("bgp: router advertisements: read", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if cm == nil {
			continue
		}
		ip, _ := src.(*net.IPAddr)
		if ip == nil {
			continue
		}
		from, _ := netip.AddrFromSlice(ip.IP)
		l.mu.Lock()
		name, ok := l.names[cm.IfIndex]
		l.mu.Unlock()
		if ok {
			l.heard(name, from, parseRA(buf[:n], cm.HopLimit, from))
		}
	}
}

// heard takes an advertisement from from on ifname (bad: why it is
// refused) and reports a neighbor heard for the first time, or in place
// of a stale one. Another router heard while the neighbor is fresh is
// kept aside (alt, counted as ignored): look takes it, within a second,
// if the neighbor's session is down (looking costs a walk of GoBGP's
// table, not done per advertisement).
func (l *linkNeighbors) heard(ifname string, from netip.Addr, bad error) {
	now := time.Now()
	l.mu.Lock()
	s := l.ifs[ifname]
	if s == nil {
		l.mu.Unlock()
		return // not an unnumbered neighbor's interface
	}
	if now.Sub(s.second) >= time.Second {
		s.second, s.inSecond = now, 0
	}
	if s.inSecond++; s.inSecond > raRate {
		s.ignored++
		l.mu.Unlock()
		return
	}
	if bad != nil {
		s.ignored++
		l.mu.Unlock()
		l.log.Debug("bgp: router advertisement refused", "interface", ifname, "from", from, "why", bad)
		return
	}
	from = from.WithZone(ifname)
	cur := s.addr
	switch {
	case cur == from:
		s.heard = now
		retry := s.pending && now.Sub(s.taken) >= raChange
		l.mu.Unlock()
		if retry {
			l.take(ifname, s, from, now)
		}
		return
	case cur.IsValid() && !s.heard.IsZero() && now.Sub(s.heard) < raStale:
		s.ignored++
		s.alt, s.altHeard = from, now
		l.mu.Unlock()
		l.log.Debug("bgp: a second router on an unnumbered neighbor's interface: ignored unless the first's session is down", "interface", ifname, "neighbor", cur, "other", from)
		return
	case cur.IsValid() && now.Sub(s.taken) < raChange:
		s.alt, s.altHeard = from, now // look takes it
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	l.take(ifname, s, from, now)
}

// take makes addr, heard at when, s's neighbor (unless s changed
// meanwhile) and reports it.
func (l *linkNeighbors) take(ifname string, s *linkState, addr netip.Addr, when time.Time) {
	l.mu.Lock()
	if l.ifs[ifname] != s {
		l.mu.Unlock()
		return
	}
	if s.addr != addr {
		// Answered at once, so that the neighbor learns ours without
		// waiting for the next advertisement.
		s.next = time.Now()
	}
	s.addr, s.heard, s.alt, s.taken = addr, when, netip.Addr{}, time.Now()
	l.mu.Unlock()
	started := l.learned(ifname, addr)
	l.mu.Lock()
	if l.ifs[ifname] == s && s.addr == addr {
		s.pending = !started
	}
	l.mu.Unlock()
}

// advertise sends our advertisements until Close.
func (l *linkNeighbors) advertise() {
	defer l.wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	var looked time.Time
	for {
		select {
		case <-l.done:
			return
		case <-t.C:
		}
		now := time.Now()
		if now.Sub(looked) >= time.Second {
			l.look(now)
			looked = now
		}
		var due []string
		l.mu.Lock()
		for name, s := range l.ifs {
			if now.Before(s.next) {
				continue
			}
			due = append(due, name)
			if s.fast > 0 {
				s.fast--
				s.next = now.Add(time.Second)
			} else {
				s.next = now.Add(raInterval)
			}
		}
		l.mu.Unlock()
		for _, name := range due {
			l.send(name)
		}
	}
}

// look looks at each interface once a second. When it comes up again, is
// made anew or our link-local address changes, the neighbor is heard
// anew (the next router heard there replaces it, even while its session
// seems up: a link that went down may have a new router behind it), fast
// advertisements go out again, so that both ends learn the change within
// seconds rather than hold times, and the session is made again (it
// depends on our address: who connects, from where). A router kept aside
// replaces a neighbor whose session went down.
func (l *linkNeighbors) look(now time.Time) {
	l.mu.Lock()
	names := make([]string, 0, len(l.ifs))
	for n := range l.ifs {
		names = append(names, n)
	}
	l.mu.Unlock()
	byIndex := map[int]string{}
	for _, name := range names {
		link := "gone"
		up := false
		if ifi, err := net.InterfaceByName(name); err == nil {
			up = ifi.Flags&net.FlagUp != 0 && ifi.Flags&net.FlagRunning != 0
			link = fmt.Sprint(ifi.Index, up, linkLocal(name))
			byIndex[ifi.Index] = name
		}
		l.mu.Lock()
		s := l.ifs[name]
		if s == nil {
			l.mu.Unlock()
			continue
		}
		changed := s.link != "" && s.link != link && up
		s.link = link
		cur, alt, altHeard, taken := s.addr, s.alt, s.altHeard, s.taken
		if changed {
			s.fast, s.next, s.heard = raFast, now, time.Time{}
		}
		l.mu.Unlock()
		switch {
		case changed && cur.IsValid():
			l.log.Info("bgp: an unnumbered neighbor's interface changed: advertising again, its neighbor heard anew", "interface", name)
			l.take(name, s, cur, time.Time{})
		case changed:
			l.log.Info("bgp: an unnumbered neighbor's interface changed: advertising again", "interface", name)
		case alt.IsValid() && now.Sub(altHeard) < raStale && now.Sub(taken) >= raChange && !l.up(cur):
			l.log.Info("bgp: an unnumbered neighbor's session is down: the other router heard on its interface replaces it", "interface", name, "neighbor", cur, "now", alt)
			l.take(name, s, alt, altHeard)
		}
	}
	l.mu.Lock()
	l.names = byIndex
	l.mu.Unlock()
}

// send sends our advertisement on ifname to all nodes; a failure (the
// interface is missing or down) is logged when it first happens.
func (l *linkNeighbors) send(ifname string) {
	ifi, err := net.InterfaceByName(ifname)
	if err == nil {
		// From the link-local address the session uses (the first),
		// not whichever the kernel picks: the neighbor connects to it.
		cm := &ipv6.ControlMessage{IfIndex: ifi.Index}
		if src := linkLocal(ifname); src.IsValid() {
			cm.Src = src.AsSlice()
		}
		_, err = l.pc.WriteTo(buildRA(ifi.HardwareAddr), cm, &net.IPAddr{IP: net.IPv6linklocalallnodes, Zone: ifname})
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	l.mu.Lock()
	s := l.ifs[ifname]
	changed := s != nil && s.err != msg
	if changed {
		s.err = msg
	}
	l.mu.Unlock()
	switch {
	case changed && err != nil:
		l.log.Warn("bgp: cannot send router advertisements for an unnumbered neighbor; trying again", "interface", ifname, "err", err)
	case changed:
		l.log.Info("bgp: sending router advertisements again", "interface", ifname)
	}
}

// Close stops reading and advertising.
func (l *linkNeighbors) Close() {
	close(l.done)
	l.c.Close()
	l.wg.Wait()
}
