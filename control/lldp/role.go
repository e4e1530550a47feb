package lldp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/control/feature"
	"github.com/pwgate/pwgate/dataplane/stats"
)

// Bounds on what neighbours may make us keep or do.
const (
	MaxNeighbors = 8  // per port; a ninth is ignored until one expires
	MaxRate      = 50 // LLDPDUs taken per port and second; the rest ignored
)

// portIO is an LLDP port (a packet socket; a fake in tests).
type portIO interface {
	send(frame []byte) error
	read(buf []byte) (int, error)
	close() error
	hwaddr() net.HardwareAddr
}

func (p *port) hwaddr() net.HardwareAddr { return p.mac }

// Role is LLDP as a feature of pwgated: our LLDPDUs out of every LLDP port
// each interval, the neighbours' kept until their TTL runs out.
type Role struct {
	log     *slog.Logger
	open    func(name string) (portIO, error)
	now     func() time.Time
	chassis net.HardwareAddr // the downlink's MAC: one ID for the box
	desc    string           // system description

	mu    sync.Mutex // what follows; readers and Status take it
	cfg   config.LLDP
	ports []*lldpPort
	sent  time.Time // when our LLDPDUs last went out
	wg    sync.WaitGroup

	tx, rx, bad, ignored atomic.Uint64
}

// lldpPort is one port's state.
type lldpPort struct {
	name, desc string
	io         portIO // nil while it cannot be opened
	err        string
	tried      time.Time
	neighbors  []*neighbor
	window     time.Time // the rate limit's current second
	taken      int
}

type neighbor struct {
	Info
	seen, expires time.Time
}

// Start opens LLDP on c's downlink and uplink and lldp.ports and sends
// the first LLDPDUs. A port that cannot be opened is logged and tried
// again each interval: LLDP never keeps the pseudowire from running.
func Start(c *config.Config, log *slog.Logger) *Role {
	return start(c, func(name string) (portIO, error) { return openPort(name) }, time.Now, log)
}

func start(c *config.Config, open func(string) (portIO, error), now func() time.Time, log *slog.Logger) *Role {
	r := &Role{log: log, open: open, now: now, cfg: *c.LLDP,
		desc: fmt.Sprintf("pwgate %s, %s mode", client.Version, c.ModeName())}
	if ifi, err := net.InterfaceByName(c.Downlink); err == nil {
		r.chassis = ifi.HardwareAddr
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.setPorts(c)
	r.sendAll(r.cfg.Interval)
	return r
}

// portNames are the LLDP ports of c, with what we tell of each.
func portNames(c *config.Config) [][2]string {
	out := [][2]string{{c.Downlink, "pwgate LAN port (pseudowire)"}, {c.Uplink, "pwgate uplink (access network)"}}
	for _, p := range c.LLDP.Ports {
		out = append(out, [2]string{p, "pwgate " + p})
	}
	return out
}

// setPorts makes the open ports c's: new ones opened, gone ones closed
// (after a last LLDPDU with TTL 0). With r.mu held.
func (r *Role) setPorts(c *config.Config) {
	var next []*lldpPort
	for _, n := range portNames(c) {
		i := slices.IndexFunc(r.ports, func(p *lldpPort) bool { return p.name == n[0] })
		if i >= 0 {
			r.ports[i].desc = n[1]
			next = append(next, r.ports[i])
			continue
		}
		p := &lldpPort{name: n[0], desc: n[1]}
		r.openPort(p)
		next = append(next, p)
	}
	for _, p := range r.ports {
		if !slices.Contains(next, p) {
			r.closePort(p)
		}
	}
	r.ports = next
}

// openPort opens p and starts its reader. With r.mu held.
func (r *Role) openPort(p *lldpPort) {
	p.tried = r.now()
	io, err := r.open(p.name)
	if err != nil {
		if p.err != err.Error() {
			r.log.Warn("lldp: port not opened; tried again each interval", "port", p.name, "err", err)
		}
		p.err = err.Error()
		return
	}
	p.io, p.err = io, ""
	r.wg.Add(1)
	go r.reader(p, io)
}

// closePort says goodbye on p (TTL 0) and closes it. With r.mu held.
func (r *Role) closePort(p *lldpPort) {
	if p.io == nil {
		return
	}
	r.send(p, 0)
	p.io.close()
	p.io = nil
}

func (r *Role) reader(p *lldpPort, io portIO) {
	defer r.wg.Done()
	buf := make([]byte, 1600)
	for {
		n, err := io.read(buf)
		switch {
		case errors.Is(err, os.ErrClosed):
			return
		case errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO):
			// The interface is gone (a NIC unplugged, a port
			// re-created with a new index): the socket is dead; the
			// tick opens the port again once it is back.
			r.mu.Lock()
			if p.io == io {
				io.close()
				p.io, p.err, p.tried = nil, "receive: "+err.Error(), r.now()
			}
			r.mu.Unlock()
			return
		case err != nil:
			// The link went down (follow_peer takes the LAN port down):
			// the socket says so once, and works again once it is up.
			r.mu.Lock()
			if p.io == io {
				p.err = "receive: " + err.Error()
			}
			r.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		default:
			r.receive(p, buf[:n])
		}
	}
}

// receive takes one frame heard on p.
func (r *Role) receive(p *lldpPort, frame []byte) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(p.window) >= time.Second {
		p.window, p.taken = now, 0
	}
	if p.taken >= MaxRate {
		r.ignored.Add(1)
		return
	}
	p.taken++
	in, err := Parse(frame)
	if err != nil {
		r.bad.Add(1)
		return
	}
	i := slices.IndexFunc(p.neighbors, func(n *neighbor) bool { return n.ChassisID == in.ChassisID && n.PortID == in.PortID })
	switch {
	case in.TTL == 0: // it is leaving
		if i >= 0 {
			p.neighbors = slices.Delete(p.neighbors, i, i+1)
		}
	case i >= 0:
		p.neighbors[i] = &neighbor{Info: in, seen: now, expires: now.Add(time.Duration(in.TTL) * time.Second)}
	case len(p.neighbors) >= MaxNeighbors:
		r.ignored.Add(1)
		return
	default:
		p.neighbors = append(p.neighbors, &neighbor{Info: in, seen: now, expires: now.Add(time.Duration(in.TTL) * time.Second)})
	}
	r.rx.Add(1)
}

// ttl is the TTL our LLDPDUs carry for interval: 4 × interval, as
// 802.1AB's default msgTxHold, at most 65535 s.
func ttl(interval time.Duration) uint16 {
	return uint16(min(4*interval/time.Second, 65535))
}

// sendAll sends our LLDPDU on every open port. With r.mu held.
func (r *Role) sendAll(interval time.Duration) {
	r.sent = r.now()
	for _, p := range r.ports {
		r.send(p, ttl(interval))
	}
}

func (r *Role) send(p *lldpPort, ttl uint16) {
	if p.io == nil {
		return
	}
	name := r.cfg.SystemName
	if name == "" {
		name, _ = os.Hostname()
	}
	chassis := r.chassis
	if chassis == nil {
		chassis = p.io.hwaddr()
	}
	f := Frame(p.io.hwaddr(), chassis, p.name, Info{TTL: ttl, PortDesc: p.desc, SystemName: name, SystemDesc: r.desc, Caps: CapBridge})
	if err := p.io.send(f); err != nil {
		if p.err == "" {
			r.log.Warn("lldp: send failed", "port", p.name, "err", err)
		}
		p.err = "send: " + err.Error()
		return
	}
	p.err = ""
	r.tx.Add(1)
}

// tick sends our LLDPDUs when the interval has passed, tries again ports
// that could not be opened, and forgets neighbours whose TTL ran out.
func (r *Role) tick() {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.ports {
		if p.io == nil && now.Sub(p.tried) >= r.cfg.Interval {
			r.openPort(p)
		}
		p.neighbors = slices.DeleteFunc(p.neighbors, func(n *neighbor) bool { return now.After(n.expires) })
	}
	if now.Sub(r.sent) >= r.cfg.Interval {
		r.sendAll(r.cfg.Interval)
	}
}

// Events: a tick each second (the interval is counted in ticks, so that
// a reload may change it).
func (r *Role) Events() []feature.Event {
	return []feature.Event{{Every: time.Second, Do: r.tick}}
}

// Reload takes next's lldp section: interval, system name and ports; our
// LLDPDUs go out again at once with what changed.
func (r *Role) Reload(old, next *config.Config) ([]feature.Step, error) {
	if next.LLDP == nil || old.LLDP == nil {
		return nil, nil // the daemon refuses adding or removing the section
	}
	if fmt.Sprint(*old.LLDP) == fmt.Sprint(*next.LLDP) {
		return nil, nil
	}
	apply := func(c *config.Config) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.cfg = *c.LLDP
		r.setPorts(c)
		r.sendAll(r.cfg.Interval)
	}
	return []feature.Step{{Name: "lldp", Do: func() error { apply(next); return nil }, Undo: func() { apply(old) }}}, nil
}

// Close says goodbye on every port (TTL 0) and closes them.
func (r *Role) Close(bool) {
	r.mu.Lock()
	for _, p := range r.ports {
		r.closePort(p)
	}
	r.mu.Unlock()
	r.wg.Wait()
}

// Status adds the ports and their neighbours.
func (r *Role) Status(s *client.Status) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	l := &client.LLDP{Interval: r.cfg.Interval.Seconds(), Ports: []client.LLDPPort{}, Neighbors: []client.LLDPNeighbor{}}
	for _, p := range r.ports {
		l.Ports = append(l.Ports, client.LLDPPort{Name: p.name, Error: p.err})
		for _, n := range p.neighbors {
			cn := client.LLDPNeighbor{Port: p.name, ChassisID: n.ChassisID, PortID: n.PortID, PortDesc: n.PortDesc,
				SystemName: n.SystemName, SystemDesc: n.SystemDesc, Caps: capNames(n.Caps), TTL: int(n.TTL), Age: now.Sub(n.seen).Seconds()}
			for _, a := range n.Mgmt {
				cn.Mgmt = append(cn.Mgmt, a.String())
			}
			l.Neighbors = append(l.Neighbors, cn)
		}
	}
	s.LLDP = l
}

// capNames are 802.1AB's capability names for the bits set in c.
func capNames(c uint16) []string {
	var out []string
	for i, n := range []string{"other", "repeater", "bridge", "wlan-ap", "router", "telephone", "docsis", "station", "c-vlan", "s-vlan", "tpmr"} {
		if c&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// AddCounters adds LLDP's counters.
func (r *Role) AddCounters(s *stats.Snapshot) {
	s[stats.LLDPTx] += r.tx.Load()
	s[stats.LLDPRx] += r.rx.Load()
	s[stats.LLDPRxBad] += r.bad.Load()
	s[stats.LLDPRxIgnored] += r.ignored.Load()
}

var (
	_ feature.Feature = (*Role)(nil)
	_ feature.Counter = (*Role)(nil)
)
