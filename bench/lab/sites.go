package lab

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/dataplane/wg"
)

// The addresses of the two-site lab. The uplinks use the reference
// captures' MACs and, in ip6 mode, its addresses, so that what the lab
// sends can be compared byte for byte with the reference captures
// (dataplane/frame/frametest/reference).
const (
	ULMAC      = "02:70:63:61:70:01" // both appliances' uplinks, as in the captures
	RouterMACA = "02:00:00:00:0f:0a"
	RouterMACB = "02:00:00:00:0f:0b"
	PrefixA    = "2001:db8:a::/64"
	PrefixB    = "2001:db8:b::/64"
	AddrA      = "2001:db8:a::a" // prefix A + token ::a
	AddrB      = "2001:db8:b::b"
	HostA4     = "10.77.0.1"
	HostB4     = "10.77.0.2"
	HostMTU    = 1600 // LAN links: 1600-byte IP packets must cross whole

	// WireGuard overlay of the two-site lab (SitesOptions.WireGuard).
	OverlayA  = "fd00:77::1"
	OverlayB  = "fd00:77::2"
	Overlay4A = "10.77.255.1"
	Overlay4B = "10.77.255.0"
	WGPort    = 51820
)

// SitesOptions shape a two-site lab.
type SitesOptions struct {
	Mode    string // "eth" or "ip6"
	Pwgated string // path of the pwgated binary
	Dir     string // directory for configurations, sockets and logs
	// STP puts a Linux bridge with STP on each host (br0, holding the link
	// to the appliance), so that real BPDUs cross the pseudowire.
	STP bool
	// Stats, if set, returns more keys of a site's stats section (indented
	// by two spaces), such as its Prometheus address.
	Stats func(*Site) string
	// WireGuard (ip6 mode) runs the pseudowire inside WireGuard between the
	// sites' uplink addresses, which the lab sets itself (::a and ::b).
	WireGuard bool
	// WireGuardBind is wireguard.bind ("": the default, the kernel's
	// socket).
	WireGuardBind string
	// Keepalive, if set, is peer.keepalive's interval and timeout;
	// FollowPeer turns on downlink.follow_peer with this hold.
	Keepalive  [2]time.Duration
	FollowPeer *time.Duration
}

// Site is one end: a host namespace and an appliance namespace.
type Site struct {
	Name   string // "a" or "b"
	Host   string // namespace of the host (LAN side)
	PW     string // namespace of the appliance
	HostIf string // the host's interface toward the appliance (eth0)
	HostIP string // IPv4 address of the host
	LANIf  string // the host's L3 interface: br0 with STP, else eth0
	Config string // the appliance's configuration file
	Socket string // its statistics socket
	Proc   *Proc  // the running pwgated, if started
	Peer   string // the peer's MAC (eth) or address (ip6; inside WireGuard: its overlay address)
	Token  string // ip6: the token of its own address
	// WireGuard: the site's key pair and key file, and its overlay
	// addresses.
	WGKey             wg.Key
	WGKeyFile         string
	Overlay, Overlay4 string
}

// Sites is the two-site lab:
//
//	hosta ── pwa ══ net ══ pwb ── hostb
//
// "net" is the access network: in eth mode a bridge working as a hub (so
// that both uplinks may carry the reference's one MAC), in ip6 mode a Linux
// router with radvd joining 2001:db8:a::/64 and 2001:db8:b::/64.
type Sites struct {
	*Lab
	Opt  SitesOptions
	A, B *Site
}

// NewSites builds the topology (without starting the appliances).
func NewSites(l *Lab, o SitesOptions) (*Sites, error) {
	if o.Mode != "eth" && o.Mode != "ip6" {
		return nil, fmt.Errorf("mode %q: want eth or ip6", o.Mode)
	}
	if o.WireGuard && o.Mode != "ip6" {
		return nil, fmt.Errorf("WireGuard runs in the ip6 lab")
	}
	s := &Sites{Lab: l, Opt: o}
	s.A = &Site{Name: "a", Host: "hosta", PW: "pwa", HostIf: "eth0", HostIP: HostA4}
	s.B = &Site{Name: "b", Host: "hostb", PW: "pwb", HostIf: "eth0", HostIP: HostB4}
	if err := l.AddNS("hosta", "pwa", "net", "pwb", "hostb"); err != nil {
		return nil, err
	}
	for _, site := range []*Site{s.A, s.B} {
		if err := s.buildSite(site); err != nil {
			return nil, err
		}
	}
	var err error
	if o.Mode == "eth" {
		err = s.buildHub()
	} else {
		err = s.buildRouter()
	}
	if err != nil {
		return nil, err
	}
	s.A.Peer, s.B.Peer = ULMAC, ULMAC
	if o.Mode == "ip6" {
		s.A.Peer, s.B.Peer, s.A.Token, s.B.Token = AddrB, AddrA, "::a", "::b"
	}
	if o.WireGuard {
		if err := s.setupWireGuard(); err != nil {
			return nil, err
		}
	}
	for _, site := range []*Site{s.A, s.B} {
		site.Config = filepath.Join(o.Dir, "pw"+site.Name+".yaml")
		site.Socket = filepath.Join(o.Dir, "pw"+site.Name+".sock")
		if err := os.WriteFile(site.Config, []byte(s.ConfigFor(site, site.Peer)), 0o644); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// ConfigFor returns site's YAML configuration with the given peer.
func (s *Sites) ConfigFor(site *Site, peer string) string {
	c := fmt.Sprintf("mode: %s\ndownlink:\n  interface: dl0\n  mtu: %d\n", s.Opt.Mode, HostMTU)
	if h := s.Opt.FollowPeer; h != nil {
		c += fmt.Sprintf("  follow_peer: true\n  follow_peer_hold: %v\n", *h)
	}
	c += "uplink:\n  interface: ul0\npoll: adaptive\n"
	if s.Opt.Mode == "eth" {
		c += fmt.Sprintf("peer:\n  mac: %q\n", peer)
	} else {
		c += fmt.Sprintf("peer:\n  address: %s\n", peer)
	}
	if k := s.Opt.Keepalive; k[0] != 0 {
		c += fmt.Sprintf("  keepalive:\n    interval: %v\n    timeout: %v\n", k[0], k[1])
	}
	switch {
	case s.Opt.WireGuard:
		c += s.WireGuardSection(site, s.Other(site).WGKey.PublicKey(), "")
	case s.Opt.Mode == "ip6":
		c += fmt.Sprintf("local:\n  token: %q\n", site.Token)
	}
	c += fmt.Sprintf("stats:\n  socket: %s\n", filepath.Join(s.Opt.Dir, "pw"+site.Name+".sock"))
	if s.Opt.Stats != nil {
		c += s.Opt.Stats(site)
	}
	return c
}

func (s *Sites) buildSite(site *Site) error {
	// dl0 starts at 1500, as a NIC does: pwgated sets downlink.mtu, without
	// which the 1614-byte frames of the LAN would not reach XDP.
	if err := s.Veth(site.Host, site.HostIf, site.PW, "dl0", HostMTU); err != nil {
		return err
	}
	if _, err := s.Exec(site.PW, "ip", "link", "set", "dl0", "mtu", "1500"); err != nil {
		return err
	}
	// XDP sees frames before the sending kernel fills in offloaded
	// checksums; a real LAN delivers finished frames, so the lab's hosts
	// must compute theirs.
	if _, err := s.Exec(site.Host, "ethtool", "-K", site.HostIf, "tx", "off"); err != nil {
		return err
	}
	site.LANIf = site.HostIf
	if s.Opt.STP {
		site.LANIf = "br0"
		prio := "32768"
		if site.Name == "a" {
			prio = "4096" // the root bridge, whatever the MACs are
		}
		if err := s.Script(site.Host,
			"ip link add br0 mtu 1600 type bridge stp_state 1 hello_time 100 forward_delay 200 max_age 600 priority "+prio,
			"ip link set "+site.HostIf+" master br0",
			"ip link set br0 up"); err != nil {
			return err
		}
	}
	return s.Script(site.Host,
		"ip addr add "+site.HostIP+"/24 dev "+site.LANIf,
		"sysctl -qw net.ipv4.icmp_echo_ignore_broadcasts=0")
}

func (s *Sites) buildHub() error {
	for _, site := range []*Site{s.A, s.B} {
		if err := s.Veth(site.PW, "ul0", "net", site.Name, 0); err != nil {
			return err
		}
		if _, err := s.Exec(site.PW, "ip", "link", "set", "dev", "ul0", "address", ULMAC); err != nil {
			return err
		}
	}
	return s.Script("net",
		"ip link add br0 type bridge ageing_time 0 stp_state 0",
		"ip link set dev a master br0", "ip link set dev b master br0", "ip link set br0 up")
}

func (s *Sites) buildRouter() error {
	for _, site := range []*Site{s.A, s.B} {
		if err := s.Veth(site.PW, "ul0", "net", site.Name, 0); err != nil {
			return err
		}
		if err := s.Script(site.PW, "ip link set dev ul0 address "+ULMAC); err != nil {
			return err
		}
	}
	return s.RouterIPv6("net", s.Opt.Dir, []RouterPort{{"a", RouterMACA, "2001:db8:a::1/64"}, {"b", RouterMACB, "2001:db8:b::1/64"}})
}

// RouterPort is one of RouterIPv6's interfaces: its name in the router's
// namespace, its MAC, and its address with the prefix it advertises.
type RouterPort struct {
	If, MAC, Addr string
}

// RouterIPv6 makes namespace ns an IPv6 router whose radvd advertises each
// port's prefix (on-link, SLAAC), every 3 to 4 seconds; dir holds radvd's
// configuration.
func (l *Lab) RouterIPv6(ns, dir string, ports []RouterPort) error {
	var b strings.Builder
	for _, p := range ports {
		if err := l.Script(ns, "ip link set dev "+p.If+" address "+p.MAC, "ip -6 addr add "+p.Addr+" dev "+p.If+" nodad"); err != nil {
			return err
		}
		pfx, err := netip.ParsePrefix(p.Addr)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "interface %s {\n  AdvSendAdvert on;\n  MinRtrAdvInterval 3;\n  MaxRtrAdvInterval 4;\n  prefix %s {\n    AdvOnLink on;\n    AdvAutonomous on;\n  };\n};\n", p.If, pfx.Masked())
	}
	if _, err := l.Exec(ns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"); err != nil {
		return err
	}
	conf := filepath.Join(dir, "radvd.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return err
	}
	_, err := l.Start(ns, "radvd", "--nodaemon", "--config", conf, "--pidfile", filepath.Join(dir, "radvd.pid"), "--logmethod", "stderr")
	return err
}

// StartPwgated starts site's appliance and waits until its statistics
// socket answers.
func (s *Sites) StartPwgated(site *Site, args ...string) error {
	if len(args) == 0 {
		args = []string{"--config", site.Config}
	}
	p, err := s.Start(site.PW, append([]string{s.Opt.Pwgated}, args...)...)
	if err != nil {
		return err
	}
	site.Proc = p
	if err := WaitPwgated(p, site.Socket, false, 10*time.Second); err != nil {
		return fmt.Errorf("site %s: %w", site.Name, err)
	}
	return nil
}

// StopPwgated sends SIGTERM and returns the exit code.
func (s *Sites) StopPwgated(site *Site) (int, error) {
	if site.Proc == nil {
		return 0, errors.New("not started")
	}
	if err := site.Proc.Signal(syscall.SIGTERM); err != nil {
		return -1, err
	}
	return site.Proc.Wait(10 * time.Second)
}

// WaitReady waits until site's appliance says it can send (ip6 mode: own
// address and next hop known).
func (s *Sites) WaitReady(site *Site, timeout time.Duration) error {
	if err := WaitPwgated(site.Proc, site.Socket, true, timeout); err != nil {
		return fmt.Errorf("site %s: %w", site.Name, err)
	}
	return nil
}

// WaitPwgated waits until the pwgated serving socket runs its data path
// (its socket answers before that, saying it is starting), and with ready
// until it says it can send (ip6 mode: own address and next hop
// known). It gives up early when p, if given, exits.
func WaitPwgated(p *Proc, socket string, ready bool, timeout time.Duration) error {
	want := map[bool]string{false: "answering", true: "ready"}[ready]
	last := "no answer yet"
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		if p != nil && p.Exited() {
			return fmt.Errorf("pwgated exited: %s", p.Out.String())
		}
		st, err := client.FetchStatus(socket, time.Second)
		switch {
		case err != nil:
			last = err.Error()
		case st.NotReady == "starting":
			last = "starting"
		case !ready || st.Ready:
			return nil
		default:
			last = st.NotReady
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pwgated at %s not %s after %v: %s", socket, want, timeout, last)
		}
	}
}

// WaitForwarding waits until the STP bridges of both hosts forward.
func (s *Sites) WaitForwarding(timeout time.Duration) error {
	if !s.Opt.STP {
		return nil
	}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		ok := true
		for _, site := range []*Site{s.A, s.B} {
			out, err := s.Exec(site.Host, "bridge", "link", "show", "dev", site.HostIf)
			if err != nil || !strings.Contains(out, "state forwarding") {
				ok = false
			}
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("host bridges not forwarding after %v", timeout)
}

// Counters returns site's counters by name.
func (s *Sites) Counters(site *Site) (map[string]uint64, error) {
	cs, err := client.FetchCounters(site.Socket, 5*time.Second)
	m := map[string]uint64{}
	for _, c := range cs {
		m[c.Name] = c.Value
	}
	return m, err
}

// Other returns the other site.
func (s *Sites) Other(site *Site) *Site {
	if site == s.A {
		return s.B
	}
	return s.A
}

// setupWireGuard makes each site's key pair and key file, and sets the
// uplinks' IPv6 tokens (pwgated leaves the uplink's address to the system
// when the pseudowire runs inside WireGuard).
func (s *Sites) setupWireGuard() error {
	s.A.Overlay, s.A.Overlay4, s.B.Overlay, s.B.Overlay4 = OverlayA, Overlay4A, OverlayB, Overlay4B
	s.A.Peer, s.B.Peer = OverlayB, OverlayA
	for _, site := range []*Site{s.A, s.B} {
		k, err := wg.GenerateKey()
		if err != nil {
			return err
		}
		site.WGKey = k
		site.WGKeyFile = filepath.Join(s.Opt.Dir, "pw"+site.Name+".key")
		if err := os.WriteFile(site.WGKeyFile, []byte(k.String()+"\n"), 0o600); err != nil {
			return err
		}
		if _, err := s.Exec(site.PW, "ip", "token", "set", site.Token, "dev", "ul0"); err != nil {
			return err
		}
	}
	return nil
}

// WireGuardSection returns site's wireguard section with the other site
// as its peer (public key peerKey), and more peers' YAML (indented by four
// spaces, list items) after it.
func (s *Sites) WireGuardSection(site *Site, peerKey wg.Key, morePeers string) string {
	o := s.Other(site)
	bind := ""
	if s.Opt.WireGuardBind != "" {
		bind = "  bind: " + s.Opt.WireGuardBind + "\n"
	}
	return fmt.Sprintf(`wireguard:
  private_key_file: %s
  listen_port: %d
%s  addresses: [%s/64, %s/31]
  peers:
    - public_key: %q
      endpoint: "[%s]:%d"
      allowed_ips: [%s/128, %s/32]
      persistent_keepalive: 25
%s`, site.WGKeyFile, WGPort, bind, site.Overlay, site.Overlay4, peerKey, map[*Site]string{s.A: AddrA, s.B: AddrB}[o], WGPort, o.Overlay, o.Overlay4, morePeers)
}
