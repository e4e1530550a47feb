// Package wireguard is pwgated's WireGuard as a feature: wireguard-go
// (dataplane/wg) with the keys and endpoints of the configuration's
// wireguard section, the host's TUN device (pwwg0) with its addresses and
// routes, and the Tunnel that carries the pseudowire or VXLAN inside it.
package wireguard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/control/feature"
	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/stats"
	"github.com/pwgate/pwgate/dataplane/wg"
	"github.com/pwgate/pwgate/dataplane/xsk"
)

// WireGuard's overhead on the uplink: outer IP header, UDP header,
// WireGuard's transport header and authentication tag.
const (
	wgOverhead6 = 40 + 8 + 16 + 16 // 80
	wgOverhead4 = 20 + 8 + 16 + 16 // 60
)

// reresolveAfter: a peer's endpoint name is resolved again when its last
// handshake is older than this (as wireguard-tools' reresolve-dns.sh does),
// so that dynamic DNS is followed without fighting WireGuard's roaming.
const reresolveAfter = 135 * time.Second

// maxKeyFile bounds what is read of a key file: a key is 44 characters
// of base64 and a newline.
const maxKeyFile = 1024

// readKeyFile reads a WireGuard key file (base64, as wg genkey writes it).
// The file is opened once, without following a symbolic link and without
// waiting on a FIFO, and the opened file is checked before it is read: it
// must be a regular file owned by the user pwgated runs as (root on the
// appliance) that group and others cannot read, write or run, and no
// larger than maxKeyFile. The errors name the file and say what to run.
func readKeyFile(path string) (wg.Key, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if errors.Is(err, unix.ELOOP) {
		return wg.Key{}, fmt.Errorf("%s is a symbolic link: name the key file itself", path)
	}
	if err != nil {
		return wg.Key{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return wg.Key{}, fmt.Errorf("%s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		kind := "a device"
		switch t := fi.Mode().Type(); {
		case t&os.ModeDir != 0:
			kind = "a directory"
		case t&os.ModeNamedPipe != 0:
			kind = "a FIFO"
		case t&os.ModeSocket != 0:
			kind = "a socket"
		}
		return wg.Key{}, fmt.Errorf("%s is not a regular file but %s", path, kind)
	}
	euid, owner, who := os.Geteuid(), "root", "root"
	if euid != 0 { // tests run by a user
		owner = strconv.Itoa(euid)
		who = "uid " + owner
	}
	fix := fmt.Sprintf("chmod 600 %s; chown %s %s", path, owner, path)
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok {
		return wg.Key{}, fmt.Errorf("%s: cannot tell its owner", path)
	} else if int(st.Uid) != euid {
		return wg.Key{}, fmt.Errorf("%s is owned by uid %d, not by %s, the user pwgated runs as: %s", path, st.Uid, who, fix)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		what := "readable"
		if perm&0o044 == 0 {
			what = "writable or executable"
		}
		return wg.Key{}, fmt.Errorf("%s is %s by group or others (mode %04o): %s", path, what, perm, fix)
	}
	if fi.Size() > maxKeyFile {
		return wg.Key{}, fmt.Errorf("%s is too large for a key file (%d bytes, at most %d)", path, fi.Size(), maxKeyFile)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return wg.Key{}, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxKeyFile { // grew since fstat
		return wg.Key{}, fmt.Errorf("%s is too large for a key file (more than %d bytes)", path, maxKeyFile)
	}
	k, err := wg.ParseKey(string(b))
	if err != nil {
		return wg.Key{}, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// resolveEndpoint turns host:port into an address. A name that does not
// resolve is not an error at start: the peer may find us, and the name is
// tried again while the peer is silent.
func resolveEndpoint(ctx context.Context, ep string) (netip.AddrPort, error) {
	if ep == "" {
		return netip.AddrPort{}, nil
	}
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		return netip.AddrPort{}, err
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return netip.AddrPortFrom(a.Unmap(), uint16(p)), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("resolve %s: %v", host, err)
	}
	return netip.AddrPortFrom(addrs[0].Unmap(), uint16(p)), nil
}

// DeviceConfig builds the device's configuration from c: keys read from
// their files, endpoints resolved (a name that does not resolve leaves the
// peer without an endpoint, and says so in the returned warnings).
func DeviceConfig(c *config.Config) (wg.Config, []string, error) {
	w := c.WireGuard
	key, err := readKeyFile(w.PrivateKeyFile)
	if err != nil {
		return wg.Config{}, nil, fmt.Errorf("wireguard.private_key_file: %w", err)
	}
	out := wg.Config{PrivateKey: key, ListenPort: w.ListenPort}
	for _, a := range w.Addresses {
		out.Overlay = append(out.Overlay, a.Masked())
	}
	var warnings []string
	for _, p := range w.Peers {
		if p.PublicKey == key.PublicKey() {
			return wg.Config{}, nil, fmt.Errorf("%s.public_key: that is this box's own public key", p.Name())
		}
		pc := wg.PeerConfig{PublicKey: p.PublicKey, AllowedIPs: p.AllowedIPs, PersistentKeepalive: p.PersistentKeepalive}
		out.Overlay = append(out.Overlay, p.AllowedIPs...)
		if p.PresharedKeyFile != "" {
			if pc.PresharedKey, err = readKeyFile(p.PresharedKeyFile); err != nil {
				return wg.Config{}, nil, fmt.Errorf("%s.preshared_key_file: %w", p.Name(), err)
			}
		}
		if pc.Endpoint, err = resolveEndpoint(context.Background(), p.Endpoint); err != nil {
			warnings = append(warnings, fmt.Sprintf("%s.endpoint %s: %v (tried again while the peer is silent)", p.Name(), p.Endpoint, err))
		}
		out.Peers = append(out.Peers, pc)
	}
	return out, warnings, nil
}

// tunnelMTU is the MTU inside the tunnel for an uplink MTU: WireGuard over
// IPv4 costs 60 bytes, over IPv6 80. The pseudowire's peer's endpoint
// decides; without one, the smaller (IPv6) MTU is safe either way.
func tunnelMTU(uplinkMTU int, ep netip.AddrPort) int {
	if ep.IsValid() && ep.Addr().Is4() {
		return uplinkMTU - wgOverhead4
	}
	return uplinkMTU - wgOverhead6
}

// Role is the daemon's WireGuard: the device, its Tunnel and the host
// TUN device. The main goroutine owns it.
type Role struct {
	dev    *wg.Device
	tunnel *wg.Tunnel
	link   netlink.Link // the host TUN (pwwg0)
	cfg    wg.Config
	conf   *config.WGConfig
	mtu    int
	log    *slog.Logger
	// resolver finds the XDP bind's routes (nil: the kernel's socket).
	resolver *xdpResolver
	// static is what pwctl shows of the configuration (publish), for the
	// servers' goroutines.
	static atomic.Pointer[client.WireGuard]
}

// Start brings up the host TUN device with c's overlay addresses
// and starts wireguard-go with cfg (from DeviceConfig) on a Tunnel over u
// (the engine's UMEM when the pseudowire runs inside the tunnel), its UDP
// on xdp (WireGuard's AF_XDP socket on the uplink, wireguard.bind: xdp) or,
// if nil, the kernel's socket. On error nothing is left.
func Start(c *config.Config, cfg wg.Config, warnings []string, u *xsk.UMEM, xdp *xsk.Pair, uplinkMTU int, log *slog.Logger) (_ *Role, err error) {
	for _, w := range warnings {
		log.Warn("wireguard: " + w)
	}
	r := &Role{cfg: cfg, conf: c.WireGuard, log: log}
	var ep netip.AddrPort
	if i := c.WGPeerIndex(); i >= 0 {
		ep = cfg.Peers[i].Endpoint
	}
	if c.OverWireGuard() && c.IsVXLAN() {
		// VXLAN goes to every peer: IPv4's MTU only if every endpoint is.
		for _, p := range cfg.Peers {
			if !p.Endpoint.IsValid() || !p.Endpoint.Addr().Is4() {
				ep = netip.AddrPort{}
				break
			}
			ep = p.Endpoint
		}
	}
	r.mtu = tunnelMTU(uplinkMTU, ep)
	if r.mtu < 1280 {
		return nil, fmt.Errorf("the tunnel's MTU would be %d (uplink MTU %d): WireGuard needs an uplink MTU of at least 1360", r.mtu, uplinkMTU)
	}
	host, err := wg.CreateHostTUN(c.WireGuard.Interface, r.mtu)
	if err != nil {
		return nil, err
	}
	r.tunnel = wg.NewTunnel(u, r.mtu, host)
	defer func() {
		if err != nil {
			r.Close(false)
		}
	}()
	if r.link, err = netlink.LinkByName(c.WireGuard.Interface); err != nil {
		return nil, fmt.Errorf("wireguard.interface %s: %w", c.WireGuard.Interface, err)
	}
	if err := r.setAddresses(nil, c.WireGuard); err != nil {
		return nil, err
	}
	if err := netlink.LinkSetUp(r.link); err != nil {
		return nil, fmt.Errorf("bring %s up: %w", c.WireGuard.Interface, err)
	}
	if err := r.setRoutes(nil, c.WireGuard); err != nil {
		return nil, err
	}
	r.setPseudowirePeer(c)
	cfg.HostIfindex = r.link.Attrs().Index
	if xdp != nil {
		ul, err := netlink.LinkByName(c.Uplink)
		if err != nil {
			return nil, fmt.Errorf("uplink %s: %w", c.Uplink, err)
		}
		if r.resolver, err = newXDPResolver(ul.Attrs().Index); err != nil {
			return nil, fmt.Errorf("wireguard.bind xdp: %w", err)
		}
		cfg.XDP = wg.NewXDPBind(xdp.DL, xdp.UMEM, uint16(c.WireGuard.ListenPort), r.resolver.resolve)
	}
	r.cfg = cfg
	if r.dev, err = wg.NewDevice(r.tunnel, cfg, log); err != nil {
		return nil, err
	}
	r.setPseudowirePeer(c)
	return r, nil
}

// setPseudowirePeer tells the Tunnel and the device which peer and address
// carry the pseudowire, or, for VXLAN inside the tunnel, our VTEP address.
func (r *Role) setPseudowirePeer(c *config.Config) {
	if c.IsVXLAN() {
		r.tunnel.SetVXLAN(c.VTEPAddr())
		return
	}
	i := c.WGPeerIndex()
	r.tunnel.SetPeer(c.PeerAddr.As16(), i >= 0)
	if r.dev == nil {
		return
	}
	var k wg.Key
	if i >= 0 {
		k = c.WireGuard.Peers[i].PublicKey
	}
	r.dev.SetSessionPeer(k)
}

// setAddresses makes next's addresses the host TUN's, removing prev's
// that are gone.
func (r *Role) setAddresses(prev, next *config.WGConfig) error {
	want := map[netip.Prefix]bool{}
	for _, a := range next.Addresses {
		want[a] = true
	}
	if prev != nil {
		for _, a := range prev.Addresses {
			if !want[a] {
				netlink.AddrDel(r.link, nlAddr(a))
			}
		}
	}
	for _, a := range next.Addresses {
		if err := netlink.AddrReplace(r.link, nlAddr(a)); err != nil {
			return fmt.Errorf("add %s to %s: %w", a, next.Interface, err)
		}
	}
	return nil
}

func nlAddr(p netip.Prefix) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD // a point-to-point tunnel has no neighbours to ask
	}
	return a
}

// setRoutes routes the peers' allowed IPs that no overlay address's prefix
// covers to the host TUN (the kernel routes the covered ones already), as
// wg-quick does; prev's routes that are gone are removed.
func (r *Role) setRoutes(prev, next *config.WGConfig) error {
	routes := func(w *config.WGConfig) map[netip.Prefix]bool {
		m := map[netip.Prefix]bool{}
		if w == nil {
			return m
		}
		for _, p := range w.Peers {
		next:
			for _, a := range p.AllowedIPs {
				for _, own := range w.Addresses {
					if own.Masked().Contains(a.Addr()) && own.Bits() <= a.Bits() {
						continue next
					}
				}
				m[a] = true
			}
		}
		return m
	}
	want := routes(next)
	for a := range routes(prev) {
		if !want[a] {
			netlink.RouteDel(r.route(a))
		}
	}
	for a := range want {
		if err := netlink.RouteReplace(r.route(a)); err != nil {
			return fmt.Errorf("route %s to %s: %w", a, next.Interface, err)
		}
	}
	return nil
}

func (r *Role) route(p netip.Prefix) *netlink.Route {
	return &netlink.Route{LinkIndex: r.link.Attrs().Index, Dst: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
}

// reresolve sets again, from DNS, the endpoints given as names of peers
// whose last handshake is older than reresolveAfter.
func (r *Role) reresolve(ctx context.Context) {
	peers, err := r.dev.Peers()
	if err != nil {
		return
	}
	next := r.cfg
	next.Peers = append([]wg.PeerConfig(nil), r.cfg.Peers...)
	changed := false
	for i, p := range r.conf.Peers {
		if p.Endpoint == "" || i >= len(peers) || time.Since(peers[i].LastHandshake) < reresolveAfter {
			continue
		}
		if _, err := netip.ParseAddrPort(p.Endpoint); err == nil {
			continue // an address, not a name
		}
		ep, err := resolveEndpoint(ctx, p.Endpoint)
		if err != nil || ep == next.Peers[i].Endpoint {
			continue
		}
		r.log.Info("wireguard: endpoint name resolved anew", "peer", p.Name(), "endpoint", p.Endpoint, "address", ep.String())
		next.Peers[i].Endpoint = ep
		changed = true
	}
	if changed {
		if err := r.dev.Configure(next); err != nil {
			r.log.Warn("wireguard: set resolved endpoints", "err", err)
			return
		}
		r.cfg = next
	}
}

// reconfigure applies next's wireguard section: the device (peers, keys,
// port), the host TUN's addresses and routes, and the pseudowire's peer.
// It returns what undoes it.
func (r *Role) reconfigure(next *config.Config, cfg wg.Config) (undo func(), err error) {
	prevCfg, prevConf := r.cfg, r.conf
	cfg.HostIfindex = r.link.Attrs().Index
	if err := r.dev.Configure(cfg); err != nil {
		return nil, err
	}
	undo = func() {
		r.dev.Configure(prevCfg)
		r.setAddresses(next.WireGuard, prevConf)
		r.setRoutes(next.WireGuard, prevConf)
		r.cfg, r.conf = prevCfg, prevConf
	}
	if err := r.setAddresses(prevConf, next.WireGuard); err != nil {
		undo()
		return nil, err
	}
	if err := r.setRoutes(prevConf, next.WireGuard); err != nil {
		undo()
		return nil, err
	}
	r.cfg, r.conf = cfg, next.WireGuard
	r.setPseudowirePeer(next)
	return undo, nil
}

// close stops the device (which closes the Tunnel and the host TUN, and
// with it the TUN device, its addresses and routes).
func (r *Role) Close(bool) {
	defer func() {
		if r.resolver != nil {
			r.resolver.close()
		}
	}()
	if r.dev != nil {
		r.dev.Close()
		r.dev = nil
		return
	}
	if r.tunnel != nil {
		r.tunnel.Close()
	}
}

// Publish stores what pwctl shows of the configuration c (main
// goroutine).
func (r *Role) Publish(c *config.Config) {
	w := &client.WireGuard{Interface: r.conf.Interface, PublicKey: r.cfg.PrivateKey.PublicKey().String(),
		ListenPort: r.cfg.ListenPort, MTU: r.mtu, Pseudowire: c.OverWireGuard()}
	for _, a := range r.conf.Addresses {
		w.Addresses = append(w.Addresses, a.String())
	}
	pw := c.WGPeerIndex()
	for i, p := range r.conf.Peers {
		wp := client.WGPeer{PublicKey: p.PublicKey.String(), ConfiguredAs: p.Endpoint, Keepalive: p.PersistentKeepalive, Pseudowire: i == pw}
		for _, a := range p.AllowedIPs {
			wp.AllowedIPs = append(wp.AllowedIPs, a.String())
		}
		w.Peers = append(w.Peers, wp)
	}
	r.static.Store(w)
}

// status adds the published configuration with what the device says now.
func (r *Role) Status(s *client.Status) {
	if w := r.static.Load(); w != nil {
		s.WireGuard = r.live(*w)
	}
}

func (r *Role) AddCounters(s *stats.Snapshot) { r.dev.Snapshot(s) }

func (r *Role) Events() []feature.Event {
	return []feature.Event{
		{Every: reresolveEvery, Do: func() { r.reresolve(context.Background()) }},
		{Every: retryUnreachableEvery, Active: r.dev.Unreachable, Do: r.retryUnreachable},
	}
}

// retryUnreachableEvery: how often, while sends fail for want of a route,
// peers without a session are made to start a handshake again.
const retryUnreachableEvery = time.Second

func (r *Role) retryUnreachable() {
	if n, err := r.dev.RetryUnreachable(); err != nil {
		r.log.Warn("wireguard: " + err.Error())
	} else if n > 0 {
		r.log.Debug("wireguard: peers without a session retried after a send found no route", "peers", n)
	}
}

// Tunnel is the Tunnel that carries the pseudowire or VXLAN: the data
// path's uplink inside WireGuard.
func (r *Role) Tunnel() *wg.Tunnel { return r.tunnel }

// MTU is the tunnel's MTU.
func (r *Role) MTU() int { return r.mtu }

// reresolveEvery: how often WireGuard endpoint names of silent peers are
// looked up again.
const reresolveEvery = 30 * time.Second

// reload reads next's keys and resolves its endpoints; its step
// configures the device, the host TUN and the pseudowire's peer.
func (r *Role) Reload(old, next *config.Config) ([]feature.Step, error) {
	cfg, warnings, err := DeviceConfig(next)
	if err != nil {
		return nil, err
	}
	var undo func()
	return []feature.Step{{Name: "wireguard", Do: func() (err error) {
		undo, err = r.reconfigure(next, cfg)
		if err == nil {
			for _, w := range warnings {
				r.log.Warn("wireguard: " + w)
			}
		}
		return err
	}, Undo: func() { undo(); r.setPseudowirePeer(old) }}}, nil
}

// live adds to a copy of w what the device says now: endpoints,
// handshakes, bytes, failures, whether the pseudowire's session is up.
// Safe from any goroutine.
func (r *Role) live(w client.WireGuard) *client.WireGuard {
	w.Session = r.tunnel.SessionUp()
	peers, err := r.dev.Peers()
	if err != nil {
		return &w
	}
	byKey := map[string]wg.PeerStatus{}
	for _, p := range peers {
		byKey[p.PublicKey.String()] = p
	}
	w.Peers = append([]client.WGPeer(nil), w.Peers...)
	for i := range w.Peers {
		p, ok := byKey[w.Peers[i].PublicKey]
		if !ok {
			continue
		}
		w.Peers[i].Endpoint, w.Peers[i].RxBytes, w.Peers[i].TxBytes, w.Peers[i].HandshakeFailures = p.Endpoint, p.RxBytes, p.TxBytes, p.HandshakeFailures
		if !p.LastHandshake.IsZero() {
			t := p.LastHandshake
			w.Peers[i].LastHandshake = &t
		}
	}
	return &w
}

// Underlay is the underlay of VXLAN inside WireGuard: a VTEP is reachable
// when a peer's allowed IPs hold it, and there is no XDP program to tell.
type Underlay struct{ Config func() *config.Config }

func (u Underlay) NextHop(a netip.Addr) (frame.MAC, bool) {
	for _, p := range u.Config().WireGuard.Peers {
		for _, pfx := range p.AllowedIPs {
			if pfx.Contains(a) {
				return frame.MAC{}, true
			}
		}
	}
	return frame.MAC{}, false
}

func (Underlay) SetVTEPs([]netip.Addr) error { return nil }

var (
	_ feature.Feature = (*Role)(nil)
	_ feature.Counter = (*Role)(nil)
)
