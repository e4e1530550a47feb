// Package uplink is what pwgated reads from the kernel about its uplink
// in ip6 and vxlan modes (our address, the next hop to the peer or a
// VTEP, followed over netlink as the kernel changes them), the next-hop
// resolution anycast's forwarder shares, and the tracking as a feature of
// the daemon (Role).
package uplink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/control/feature"
	"github.com/pwgate/pwgate/dataplane/frame"
)

// View is what the kernel says about the uplink in ip6 mode: our
// own address, and the MAC to send to for the peer.
type View struct {
	Local    netip.Addr
	Via      netip.Addr // the router, or the peer itself when on-link
	NextHop  frame.MAC
	NotReady string // why frames cannot be sent yet; "" when they can
}

// Role is the tracking of the uplink as a feature of the daemon: its
// events are the kernel's notifications, a periodic reading and, while the
// data path waits for the kernel, the prodding; each calls changed, which
// reads the view again (Read) and hands a change to the data path.
type Role struct {
	t       Kernel
	view    View   // the last read; main goroutine
	changed func() // the daemon's
	waiting func() bool
}

// Kernel is what Role reads: a Tracker, or a fake in tests.
type Kernel interface {
	View() View
	Update(*config.Config) error
	Changed() <-chan struct{}
	Close()
}

// NewRole tracks t's uplink: changed is called on each event, and the
// kernel is prodded every proddingEvery while waiting reports true.
func NewRole(t Kernel, changed func(), waiting func() bool) *Role {
	return &Role{t: t, view: t.View(), changed: changed, waiting: waiting}
}

// View returns the view last read (main goroutine).
func (u *Role) View() View { return u.view }

// Timing of the tracking.
const (
	// proddingEvery: while the next hop is unknown, the kernel is prodded
	// to resolve it (at most once a second, see prober.prod).
	proddingEvery = 100 * time.Millisecond
	// rereadEvery: besides the kernel's notifications (nlWatch), the
	// uplink is read again this often, in case one was missed. Each read
	// allocates (the netlink package's 64 KiB per request): not often.
	rereadEvery = time.Minute
)

// Read reads the view again and reports whether it changed.
func (u *Role) Read() bool {
	v := u.t.View()
	if v == u.view {
		return false
	}
	u.view = v
	return true
}

func (u *Role) Events() []feature.Event {
	return []feature.Event{
		{C: u.t.Changed(), Do: u.changed},
		{Every: rereadEvery, Do: u.changed},
		{Every: proddingEvery, Active: u.waiting, Do: u.changed},
	}
}

// Reload points the tracker at next's token or address. It cannot be
// undone (the kernel deprecates the addresses formed with the old token),
// so it runs after every step that can.
func (u *Role) Reload(_, next *config.Config) ([]feature.Step, error) {
	return []feature.Step{{Name: "uplink address", Do: func() error { return u.t.Update(next) }}}, nil
}

// status: the view is in the published status (publishStatus).
func (u *Role) Status(*client.Status) {}

func (u *Role) Close(bool) { u.t.Close() }

// Tracker reads the uplink's state from the kernel. The kernel owns the
// address (SLAAC, with our token as interface identifier, or the configured
// address, which Tracker adds if it is missing) and resolves the next hop
// by NDP; Tracker only reads, and prods the kernel with an echo request
// when the next hop is not resolved. It follows the kernel's route,
// neighbour and address notifications: Changed receives a value (at most
// one pending) whenever one concerns the uplink, and the main goroutine
// then reads view again.
type Tracker struct {
	link  netlink.Link
	peer  netip.Addr
	token netip.Addr   // use the SLAAC address with this identifier, or
	addr  netip.Prefix // use this address
	added bool         // addr was added by us and is removed by close
	res   *Resolver    // next hops (main goroutine)

	changed chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup
}

func Open(ifname string, c *config.Config) (_ *Tracker, err error) {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("uplink %s: %w", ifname, err)
	}
	t := &Tracker{link: l, peer: c.PeerAddr, token: c.LocalToken, addr: c.LocalAddr,
		changed: make(chan struct{}, 1), done: make(chan struct{})}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	if t.res, err = NewResolver(); err != nil {
		return nil, fmt.Errorf("uplink %s: %w", ifname, err)
	}
	if err := t.subscribe(); err != nil {
		return nil, fmt.Errorf("follow %s's routes, neighbours and addresses: %w", ifname, err)
	}
	if t.token.IsValid() {
		if err := setToken(l.Attrs().Index, t.token); err != nil {
			return nil, fmt.Errorf("set IPv6 token %s on %s (is accept_ra on?): %w", t.token, ifname, err)
		}
	}
	return t, nil
}

// Changed receives a value after the kernel changed something about the
// uplink's routes, neighbours or addresses.
func (t *Tracker) Changed() <-chan struct{} { return t.changed }

func (t *Tracker) notify() {
	select {
	case t.changed <- struct{}{}:
	default:
	}
}

// subscribe starts following the kernel's notifications.
func (t *Tracker) subscribe() error {
	w, err := newNLWatch(t.link.Attrs().Index)
	if err != nil {
		return err
	}
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		w.run(t.done, t.notify)
	}()
	return nil
}

// setToken does what "ip token set TOKEN dev IF" does: the kernel then
// forms its SLAAC addresses on the interface from TOKEN.
func setToken(ifindex int, token netip.Addr) error {
	req := nl.NewNetlinkRequest(unix.RTM_SETLINK, unix.NLM_F_ACK)
	msg := nl.NewIfInfomsg(unix.AF_INET6)
	msg.Index = int32(ifindex)
	req.AddData(msg)
	spec := nl.NewRtAttr(unix.IFLA_AF_SPEC, nil)
	t := token.As16()
	spec.AddRtAttr(unix.AF_INET6, nil).AddRtAttr(unix.IFLA_INET6_TOKEN, t[:])
	req.AddData(spec)
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// Update points the tracker at a new configuration (reload).
func (t *Tracker) Update(c *config.Config) error {
	if c.LocalToken != t.token && c.LocalToken.IsValid() {
		if err := setToken(t.link.Attrs().Index, c.LocalToken); err != nil {
			return fmt.Errorf("set IPv6 token %s: %w", c.LocalToken, err)
		}
	}
	if t.added && c.LocalAddr != t.addr {
		t.removeAddr()
	}
	t.peer, t.token, t.addr = c.PeerAddr, c.LocalToken, c.LocalAddr
	return nil
}

// View reads our address and, with a pseudowire peer, its next hop.
func (t *Tracker) View() View {
	local, why := t.local()
	if why != "" {
		return View{NotReady: why}
	}
	v := View{Local: local}
	if t.peer.IsValid() {
		v.Via, v.NextHop, v.NotReady = t.NextHop(t.peer)
	}
	return v
}

// local finds our address on the uplink.
func (t *Tracker) local() (netip.Addr, string) {
	family := netlink.FAMILY_V6
	if t.addr.Addr().Is4() {
		family = netlink.FAMILY_V4
	}
	addrs, err := netlink.AddrList(t.link, family)
	if err != nil {
		return netip.Addr{}, fmt.Sprintf("cannot read the uplink's addresses: %v", err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		ip = ip.Unmap()
		if !ok || !usable(a) || !ip.IsGlobalUnicast() {
			continue
		}
		if t.addr.IsValid() && ip == t.addr.Addr() {
			return ip, ""
		}
		if t.token.IsValid() && iid(ip) == iid(t.token) {
			return ip, ""
		}
	}
	if t.token.IsValid() {
		return netip.Addr{}, fmt.Sprintf("no SLAAC address with identifier %s on %s yet (no router advertisement?)", t.token, t.link.Attrs().Name)
	}
	if !t.added {
		err := netlink.AddrAdd(t.link, t.nlAddr())
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return netip.Addr{}, fmt.Sprintf("cannot add %s to %s: %v", t.addr, t.link.Attrs().Name, err)
		}
		t.added = err == nil
	}
	if t.addr.Addr().Is4() {
		return netip.Addr{}, fmt.Sprintf("address %s not on %s yet", t.addr.Addr(), t.link.Attrs().Name)
	}
	return netip.Addr{}, fmt.Sprintf("address %s on %s is not usable yet (duplicate address detection)", t.addr.Addr(), t.link.Attrs().Name)
}

// usable reports whether an address may be a source: not deprecated (an
// old SLAAC prefix being renumbered away, preferred lifetime 0), not still
// in duplicate address detection, not a duplicate.
func usable(a netlink.Addr) bool {
	const unusable = unix.IFA_F_TENTATIVE | unix.IFA_F_DADFAILED | unix.IFA_F_DEPRECATED
	return a.Flags&unusable == 0
}

func iid(a netip.Addr) uint64 {
	b := a.As16()
	return binary.BigEndian.Uint64(b[8:])
}

// usable neighbour states: the kernel has a link-layer address it trusts
// enough to send to.
const usableNUD = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE | netlink.NUD_PERMANENT | netlink.NUD_NOARP

// NextHop asks the kernel's routing table how to reach dst (the peer, or
// a VTEP) by the uplink and its neighbour table for the MAC of that next
// hop (Resolver.NextHop). Main goroutine.
func (t *Tracker) NextHop(dst netip.Addr) (netip.Addr, frame.MAC, string) {
	h, why := t.res.NextHop(dst, t.link.Attrs().Index)
	return h.Via, h.MAC, why
}

// hop is how the kernel reaches an address: by which interface, through
// which next hop, and that next hop's MAC.
type Hop struct {
	Via     netip.Addr
	MAC     frame.MAC
	Ifindex int
	Ifname  string
	SrcMAC  frame.MAC  // the interface's own
	Src     netip.Addr // the route's source address (RTA_PREFSRC); invalid for a zoned dst
}

// maxProbed is how many next hops a prober remembers before it forgets
// those it prodded more than a second ago.
const maxProbed = 256

// prober sends ICMP echo requests so that the kernel resolves next hops.
type prober struct {
	last map[netip.Addr]time.Time
	conn [2]*net.IPConn // ICMPv6, ICMP
	seq  uint16
}

// prod sends an ICMP echo request to addr, at most once a second per
// address, so that the kernel resolves it (neighbour discovery, ARP);
// ifname is the zone of a link-local addr.
func (p *prober) prod(addr netip.Addr, ifname string) {
	if p.last == nil {
		p.last = map[netip.Addr]time.Time{}
	}
	if time.Since(p.last[addr]) < time.Second {
		return
	}
	if len(p.last) >= maxProbed {
		// Many next hops (the XDP bind asked for spoofed sources' routes):
		// only the last second's are needed.
		for a, at := range p.last {
			if time.Since(at) >= time.Second {
				delete(p.last, a)
			}
		}
	}
	p.last[addr] = time.Now()
	i, network, typ := 0, "ip6:ipv6-icmp", byte(128)
	if addr.Is4() {
		i, network, typ = 1, "ip4:icmp", 8
	}
	if p.conn[i] == nil {
		c, err := net.ListenIP(network, nil)
		if err != nil {
			return
		}
		p.conn[i] = c
	}
	p.seq++
	echo := []byte{typ, 0, 0, 0, 0x70, 0x77, byte(p.seq >> 8), byte(p.seq), 'p', 'w', 'g', 'a', 't', 'e'}
	if addr.Is4() {
		binary.BigEndian.PutUint16(echo[2:], frame.Fold(frame.Checksum(0, echo)))
	}
	dst := &net.IPAddr{IP: addr.AsSlice()}
	if addr.IsLinkLocalUnicast() {
		dst.Zone = ifname
	}
	p.conn[i].WriteTo(echo, dst)
}

func (p *prober) close() {
	for _, c := range p.conn {
		if c != nil {
			c.Close()
		}
	}
}

// nlAddr is the configured address as netlink takes it (with duplicate
// address detection, unlike the tunnel's).
func (t *Tracker) nlAddr() *netlink.Addr {
	return &netlink.Addr{IPNet: &net.IPNet{IP: t.addr.Addr().AsSlice(), Mask: net.CIDRMask(t.addr.Bits(), t.addr.Addr().BitLen())}}
}

func (t *Tracker) removeAddr() {
	if t.added {
		netlink.AddrDel(t.link, t.nlAddr())
		t.added = false
	}
}

// Close stops following the kernel, removes the address it added and
// closes its netlink and ICMP sockets.
func (t *Tracker) Close() {
	close(t.done)
	t.wg.Wait()
	t.removeAddr()
	if t.res != nil {
		t.res.Close()
	}
}

var _ feature.Feature = (*Role)(nil)
