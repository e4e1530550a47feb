package config

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// WGConfig is the wireguard section: an embedded WireGuard interface.
type WGConfig struct {
	PrivateKeyFile string
	ListenPort     int
	// Addresses are the overlay addresses of the host, on the kernel TUN
	// device Interface (pwwg0), for its own traffic over the tunnel (BGP,
	// SSH, ping); the first IPv6 one is also the pseudowire's source when
	// the pseudowire runs inside the tunnel.
	Addresses []netip.Prefix
	Interface string
	Peers     []WGPeer
	// BindXDP carries WireGuard's UDP on an AF_XDP socket of the uplink
	// instead of the kernel's UDP socket (bind: xdp).
	BindXDP bool
}

// WGPeer is one peer of the wireguard section.
type WGPeer struct {
	PublicKey        Key
	PresharedKeyFile string
	// Endpoint is host:port as written: an address, or a name resolved at
	// start and again while the peer is silent (dynamic DNS). "" waits for
	// the peer.
	Endpoint            string
	AllowedIPs          []netip.Prefix
	PersistentKeepalive int
	key                 string // "wireguard.peers[N]", for messages
}

// Name is the peer's place in the file ("wireguard.peers[N]"), for
// messages.
func (p *WGPeer) Name() string { return p.key }

// Defaults of the wireguard section.
const (
	DefaultWGPort      = 51820
	DefaultWGInterface = "pwwg0"
)

func (c *Config) wgPeer() *WGPeer { return &c.WireGuard.Peers[len(c.WireGuard.Peers)-1] }

var wgSchema = section{
	begin: func(c *Config) { c.WireGuard = &WGConfig{ListenPort: DefaultWGPort, Interface: DefaultWGInterface} },
	schema: map[string]any{
		"private_key_file": setter(func(c *Config, v string) error { return absPath(&c.WireGuard.PrivateKeyFile, v) }),
		"listen_port": setter(func(c *Config, v string) (err error) {
			c.WireGuard.ListenPort, err = intIn(v, 1, 65535)
			return
		}),
		"interface": setter(func(c *Config, v string) error { return ifname(&c.WireGuard.Interface, v) }),
		"bind": setter(func(c *Config, v string) error {
			switch v {
			case "kernel", "xdp":
				c.WireGuard.BindXDP = v == "xdp"
				return nil
			}
			return fmt.Errorf("%q is neither kernel nor xdp", v)
		}),
		"addresses": each(func(c *Config, v string) error {
			p, err := netip.ParsePrefix(v)
			if err != nil {
				return fmt.Errorf("%q is not an address with a prefix length, such as fd00:77::1/64", v)
			}
			c.WireGuard.Addresses = append(c.WireGuard.Addresses, p)
			return nil
		}),
		"peers": items{
			begin: func(c *Config) {
				c.WireGuard.Peers = append(c.WireGuard.Peers, WGPeer{key: fmt.Sprintf("wireguard.peers[%d]", len(c.WireGuard.Peers))})
			},
			schema: map[string]any{
				"public_key": setter(func(c *Config, v string) (err error) {
					c.wgPeer().PublicKey, err = ParseKey(v)
					return
				}),
				"preshared_key_file": setter(func(c *Config, v string) error { return absPath(&c.wgPeer().PresharedKeyFile, v) }),
				"endpoint": setter(func(c *Config, v string) error {
					if err := checkEndpoint(v); err != nil {
						return err
					}
					c.wgPeer().Endpoint = v
					return nil
				}),
				"allowed_ips": each(func(c *Config, v string) error {
					p, err := netip.ParsePrefix(v)
					if err != nil {
						return fmt.Errorf("%q is not a prefix such as fd00:77::2/128", v)
					}
					if p != p.Masked() {
						return fmt.Errorf("%s has host bits set (did you mean %s?)", p, p.Masked())
					}
					c.wgPeer().AllowedIPs = append(c.wgPeer().AllowedIPs, p)
					return nil
				}),
				"persistent_keepalive": setter(func(c *Config, v string) (err error) {
					c.wgPeer().PersistentKeepalive, err = intIn(v, 0, 65535)
					return
				}),
			},
		},
	},
}

// checkEndpoint checks host:port: a port, and an address or a host name.
func checkEndpoint(v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("%q is not host:port (an IPv6 address goes in brackets: [2001:db8::1]:51820)", v)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%q: port %q is not a number from 1 to 65535", v, port)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if host == "" || len(host) > 253 || strings.Trim(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != "" {
		return fmt.Errorf("%q: %q is neither an IP address nor a host name", v, host)
	}
	return nil
}

// checkWireGuard validates the wireguard section and how the pseudowire
// uses it.
func (c *Config) checkWireGuard(fail func(key, format string, args ...any) error) error {
	w := c.WireGuard
	if w == nil {
		return nil
	}
	switch {
	case w.PrivateKeyFile == "":
		return fail("wireguard.private_key_file", "missing: the file holding this box's private key (pwctl wg genkey > FILE)")
	case len(w.Addresses) == 0:
		return fail("wireguard", "addresses: at least one overlay address for this box")
	case len(w.Peers) == 0:
		return fail("wireguard", "peers: at least one peer")
	case w.Interface == c.Downlink || w.Interface == c.Uplink:
		return fail("wireguard.interface", "%s is already the downlink or uplink", w.Interface)
	}
	keys := map[Key]string{}
	var all []struct {
		p   netip.Prefix
		key string
	}
	for _, p := range w.Peers {
		switch {
		case p.PublicKey.IsZero():
			return fail(p.key, "public_key: missing")
		case keys[p.PublicKey] != "":
			return fail(p.key+".public_key", "the same key as %s", keys[p.PublicKey])
		case len(p.AllowedIPs) == 0:
			return fail(p.key, "allowed_ips: missing (the overlay addresses this peer may send from)")
		}
		keys[p.PublicKey] = p.key
		if ep, err := netip.ParseAddrPort(p.Endpoint); err == nil {
			for _, q := range w.Peers {
				for _, a := range q.AllowedIPs {
					if a.Contains(ep.Addr().Unmap()) {
						return fail(p.key+".endpoint", "%s is inside the tunnel (%s's allowed IP %s): WireGuard's own packets would loop", ep.Addr(), q.key, a)
					}
				}
			}
			for _, a := range w.Addresses {
				if a.Masked().Contains(ep.Addr().Unmap()) {
					return fail(p.key+".endpoint", "%s is inside the tunnel (this box's overlay prefix %s): WireGuard's own packets would loop", ep.Addr(), a.Masked())
				}
			}
		}
		for _, a := range p.AllowedIPs {
			for _, o := range all {
				if o.p.Overlaps(a) {
					return fail(p.key+".allowed_ips", "%s overlaps %s of %s", a, o.p, o.key)
				}
			}
			all = append(all, struct {
				p   netip.Prefix
				key string
			}{a, p.key})
		}
	}
	if w.BindXDP && !c.OverWireGuard() {
		return fail("wireguard.bind", "xdp needs the pseudowire or VXLAN inside WireGuard (the uplink's AF_XDP socket is otherwise the pseudowire's)")
	}
	if !c.OverWireGuard() || c.IsVXLAN() {
		return nil
	}
	if !c.WGSource().IsValid() {
		return fail("wireguard.addresses", "the pseudowire runs inside WireGuard (peer.address %s is a peer's allowed IP) and needs an IPv6 overlay address of this box", c.PeerAddr)
	}
	for _, a := range w.Addresses {
		if a.Addr() == c.PeerAddr {
			return fail("peer.address", "%s is one of this box's own wireguard.addresses", c.PeerAddr)
		}
	}
	return nil
}

// OverWireGuard reports whether the pseudowire (or VXLAN) runs inside the
// WireGuard tunnel: in ip6 mode, when peer.address is one of the wireguard
// peers' allowed IPs; in vxlan mode, when local.address is one of
// wireguard.addresses.
func (c *Config) OverWireGuard() bool {
	if c.IsVXLAN() {
		return c.WireGuard != nil && c.LocalAddr.IsValid() &&
			slices.ContainsFunc(c.WireGuard.Addresses, func(p netip.Prefix) bool { return p.Addr() == c.LocalAddr.Addr() })
	}
	return c.WGPeerIndex() >= 0
}

// WGPeerIndex returns the wireguard peer that carries the pseudowire, or -1.
func (c *Config) WGPeerIndex() int {
	if c.WireGuard == nil || c.Mode != ModeIP6 || !c.PeerAddr.IsValid() {
		return -1
	}
	for i, p := range c.WireGuard.Peers {
		for _, a := range p.AllowedIPs {
			if a.Contains(c.PeerAddr) {
				return i
			}
		}
	}
	return -1
}

// WGSource returns the pseudowire's source inside the tunnel: the first
// IPv6 address of wireguard.addresses.
func (c *Config) WGSource() netip.Addr {
	if c.WireGuard == nil {
		return netip.Addr{}
	}
	for _, a := range c.WireGuard.Addresses {
		if a.Addr().Is6() && !a.Addr().Is4In6() {
			return a.Addr()
		}
	}
	return netip.Addr{}
}
