package lab

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/dataplane/wg"
)

// FRRRunDir holds each FRR instance's sockets, pid files and
// configuration: FRRRunDir/NAMESPACE, which FRR's -N option selects.
const FRRRunDir = "/var/run/frr"

// The EVPN lab's addresses.
const (
	EVPNASN     = 4200000000 // one iBGP AS, a four-byte one (FRR's auto RT cuts it to 59904)
	VTEPNet4    = "10.0.0.0/24"
	EVPNHostNet = "10.77.0.0/24" // VNI 101, untagged
	EVPNVNI     = 101
	EVPNVLANVNI = 202
	EVPNVLAN    = 20
	// EVPNHostMTU leaves room for VXLAN over IPv4 in a 1500-byte underlay
	// (50 bytes) and over IPv6 (70): the LAN MTU of the operator's setup
	// without WireGuard.
	EVPNHostMTU = 1430
	// SVIAddr is the FRR site's bridge address (advertise-svi-ip).
	SVIAddr = "10.77.0.254"
)

// EVPNOptions shape the EVPN lab.
type EVPNOptions struct {
	Pwgated string
	Dir     string
	// IPv6 puts pwgate A and B on the routed IPv6 access network (radvd),
	// with IPv6 VTEPs, BGP over IPv6 and no FRR site: what FRR cannot do.
	// Otherwise the three sites share one IPv4 segment.
	IPv6 bool
	// FRR adds site C: FRR 8.4 with kernel VXLAN and a bridge, set up as
	// an operator's site is (IPv4 only).
	FRR bool
	// Static runs pwgate without BGP: static remotes.
	Static bool
	// Split sets vxlan.split: pwgate.
	Split bool
	// HostMTU is the hosts' MTU (default EVPNHostMTU).
	HostMTU int
	// Extra, if set, returns more YAML for a pwgate site's configuration.
	Extra func(*EVPNSite) string
	// LogLevel is pwgated's --log-level (default info).
	LogLevel string
	// Families, if set, are the fabric peer group's address families
	// (default: l2vpn-evpn), for a VTEP that also runs anycast.
	Families []string
	// MoreNeighbors are more BGP neighbors of site A (in the fabric peer
	// group), such as a test's own speaker.
	MoreNeighbors []string
	// VTEPPrefixes are the pwgate sites' vxlan.vtep_prefixes.
	VTEPPrefixes []string
	// MACLimit is the pwgate sites' vxlan.mac_limit (0: the default).
	MACLimit int
	// MaxPrefix is the fabric peer group's max_prefix (0: the default).
	MaxPrefix int
	// Unnumbered leaves site B out and runs site A's session with the
	// FRR site over IPv6 link-local addresses (pwgate's
	// neighbors[].interface, FRR's "neighbor ul0 interface"): the
	// segment is their link, the VTEPs keep their IPv4 addresses.
	Unnumbered bool
	// WireGuard runs the VTEPs and BGP inside WireGuard (IPv4 overlay
	// 10.99.0.0/24 over the IPv4 segment): pwgate's embedded one, and
	// wireguard-go on the FRR site, as the operator's setup does.
	WireGuard bool
}

// EVPNSite is a site of the EVPN lab: a host and its VTEP (a pwgate, or FRR
// with kernel VXLAN).
type EVPNSite struct {
	Name      string // "a", "b", "c"
	Host, NS  string // namespaces: the host, the VTEP
	HostIP    string // on VNI 101 (VNI 202, VLAN 20 on the pwgate sites' LANs, has no host addresses: this kernel has no 802.1Q devices)
	VTEP      string // VTEP address
	Underlay  string // the uplink's own address (WireGuard: VTEP is the overlay's)
	RouterID  string
	FRR       bool
	WGKey     wg.Key
	WGKeyFile string
	Config    string // pwgated's configuration file
	Socket    string
	Proc      *Proc
}

// EVPN is the EVPN lab:
//
//	hosta ── pwa ─┐
//	hostb ── pwb ─┼─ net
//	hostc ── frrc ┘
//
// "net" is a bridge (IPv4 VTEPs 10.0.0.1 to 10.0.0.3 on one segment) or,
// with IPv6, a router with radvd between 2001:db8:a::/64 and
// 2001:db8:b::/64 (VTEPs 2001:db8:a::a and 2001:db8:b::b).
type EVPN struct {
	*Lab
	Opt     EVPNOptions
	A, B, C *EVPNSite
	Sites   []*EVPNSite
}

// NewEVPN builds the topology and writes the configurations (without
// starting anything but the router and FRR).
func NewEVPN(l *Lab, o EVPNOptions) (*EVPN, error) {
	if o.HostMTU == 0 {
		o.HostMTU = EVPNHostMTU
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.IPv6 && (o.FRR || o.WireGuard) {
		return nil, fmt.Errorf("the FRR and WireGuard sites have IPv4 VTEPs")
	}
	if o.WireGuard && o.Static {
		return nil, fmt.Errorf("the WireGuard lab runs BGP")
	}
	if o.Unnumbered && (!o.FRR || o.IPv6 || o.WireGuard || o.Static) {
		return nil, fmt.Errorf("the unnumbered lab is sites A and C (FRR) on one IPv4 segment")
	}
	e := &EVPN{Lab: l, Opt: o}
	e.A = &EVPNSite{Name: "a", Host: "hosta", NS: "pwa", HostIP: "10.77.0.1", VTEP: "10.0.0.1", RouterID: "10.0.0.1"}
	e.B = &EVPNSite{Name: "b", Host: "hostb", NS: "pwb", HostIP: "10.77.0.2", VTEP: "10.0.0.2", RouterID: "10.0.0.2"}
	e.Sites = []*EVPNSite{e.A, e.B}
	if o.Unnumbered {
		e.B, e.Sites = nil, []*EVPNSite{e.A}
	}
	if o.IPv6 {
		e.A.VTEP, e.B.VTEP = AddrA, AddrB
	}
	if o.FRR {
		e.C = &EVPNSite{Name: "c", Host: "hostc", NS: "frrc", HostIP: "10.77.0.3", VTEP: "10.0.0.3", RouterID: "10.0.0.3", FRR: true}
		e.Sites = append(e.Sites, e.C)
	}
	for i, s := range e.Sites {
		s.Underlay = s.VTEP
		if o.WireGuard {
			// The operator's setup: VTEPs and router IDs are the sites'
			// WireGuard addresses.
			s.VTEP = fmt.Sprintf("10.99.0.%d", i+1)
			s.RouterID = s.VTEP
			k, err := wg.GenerateKey()
			if err != nil {
				return nil, err
			}
			s.WGKey, s.WGKeyFile = k, filepath.Join(o.Dir, "wg"+s.Name+".key")
			if err := os.WriteFile(s.WGKeyFile, []byte(k.String()+"\n"), 0o600); err != nil {
				return nil, err
			}
		}
	}
	for _, s := range e.Sites {
		if err := l.AddNS(s.Host, s.NS); err != nil {
			return nil, err
		}
	}
	if err := l.AddNS("net"); err != nil {
		return nil, err
	}
	for _, s := range e.Sites {
		if err := e.buildHost(s); err != nil {
			return nil, err
		}
		if err := l.Veth(s.NS, "ul0", "net", s.Name, 0); err != nil {
			return nil, err
		}
	}
	if o.IPv6 {
		if err := l.RouterIPv6("net", o.Dir, []RouterPort{{"a", RouterMACA, "2001:db8:a::1/64"}, {"b", RouterMACB, "2001:db8:b::1/64"}}); err != nil {
			return nil, err
		}
	} else {
		cmds := []string{"ip link add br0 type bridge stp_state 0", "ip link set br0 up"}
		for _, s := range e.Sites {
			cmds = append(cmds, "ip link set dev "+s.Name+" master br0")
		}
		if err := l.Script("net", cmds...); err != nil {
			return nil, err
		}
	}
	for _, s := range e.Sites {
		if o.WireGuard && !s.FRR {
			// Inside WireGuard the uplink's address is the system's.
			if err := e.Script(s.NS, "ip addr add "+s.Underlay+"/24 dev ul0"); err != nil {
				return nil, err
			}
		}
		if s.FRR {
			if err := e.buildFRR(s); err != nil {
				return nil, err
			}
			continue
		}
		s.Config = filepath.Join(o.Dir, "pw"+s.Name+".yaml")
		s.Socket = filepath.Join(o.Dir, "pw"+s.Name+".sock")
		if err := os.WriteFile(s.Config, []byte(e.ConfigFor(s)), 0o644); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func (e *EVPN) buildHost(s *EVPNSite) error {
	lan := "dl0"
	if s.FRR {
		lan = "lan"
	}
	if err := e.Veth(s.Host, "eth0", s.NS, lan, e.Opt.HostMTU); err != nil {
		return err
	}
	return e.Script(s.Host, "ethtool -K eth0 tx off", "ip addr add "+s.HostIP+"/24 dev eth0", "sysctl -qw net.ipv4.icmp_echo_ignore_broadcasts=0")
}

// others returns the sites other than s.
func (e *EVPN) others(s *EVPNSite) []*EVPNSite {
	var out []*EVPNSite
	for _, o := range e.Sites {
		if o != s {
			out = append(out, o)
		}
	}
	return out
}

// ConfigFor returns a pwgate site's configuration.
func (e *EVPN) ConfigFor(s *EVPNSite) string {
	var b strings.Builder
	prefix := 24
	if e.Opt.IPv6 {
		prefix = 64
	}
	fmt.Fprintf(&b, "mode: vxlan\ndownlink:\n  interface: dl0\nuplink:\n  interface: ul0\npoll: adaptive\nlocal:\n  address: %s/%d\n", s.VTEP, prefix)
	if e.Opt.WireGuard {
		fmt.Fprintf(&b, "wireguard:\n  private_key_file: %s\n  listen_port: %d\n  addresses: [%s/24]\n  peers:\n", s.WGKeyFile, WGPort, s.VTEP)
		for _, o := range e.others(s) {
			fmt.Fprintf(&b, "    - public_key: %q\n      endpoint: \"%s:%d\"\n      allowed_ips: [%s/32]\n", o.WGKey.PublicKey(), o.Underlay, WGPort, o.VTEP)
		}
	}
	fmt.Fprintf(&b, "vxlan:\n  vnis:\n    - vni: %d\n    - vni: %d\n      vlan: %d\n", EVPNVNI, EVPNVLANVNI, EVPNVLAN)
	if e.Opt.Split {
		b.WriteString("  split: pwgate\n")
	}
	if e.Opt.MACLimit > 0 {
		fmt.Fprintf(&b, "  mac_limit: %d\n", e.Opt.MACLimit)
	}
	if len(e.Opt.VTEPPrefixes) > 0 {
		fmt.Fprintf(&b, "  vtep_prefixes: [%s]\n", strings.Join(e.Opt.VTEPPrefixes, ", "))
	}
	if e.Opt.Static {
		var rs []string
		for _, o := range e.others(s) {
			rs = append(rs, o.VTEP)
		}
		fmt.Fprintf(&b, "  remotes: [%s]\n", strings.Join(rs, ", "))
	} else {
		fmt.Fprintf(&b, "bgp:\n  asn: %d\n  router_id: %s\n  peer_groups:\n    - name: fabric\n      asn: %d\n      hold_time: 9\n      keepalive: 3\n",
			EVPNASN, s.RouterID, EVPNASN)
		if len(e.Opt.Families) > 0 {
			fmt.Fprintf(&b, "      families: [%s]\n", strings.Join(e.Opt.Families, ", "))
		}
		if e.Opt.MaxPrefix > 0 {
			fmt.Fprintf(&b, "      max_prefix: %d\n", e.Opt.MaxPrefix)
		}
		b.WriteString("  neighbors:\n")
		for _, o := range e.others(s) {
			if e.Opt.Unnumbered {
				fmt.Fprintf(&b, "    - interface: ul0\n      peer_group: fabric\n      description: site %s\n", o.Name)
				continue
			}
			fmt.Fprintf(&b, "    - address: %s\n      peer_group: fabric\n      description: site %s\n", o.VTEP, o.Name)
		}
		if s == e.A {
			for _, n := range e.Opt.MoreNeighbors {
				fmt.Fprintf(&b, "    - address: %s\n      peer_group: fabric\n", n)
			}
		}
	}
	fmt.Fprintf(&b, "stats:\n  socket: %s\n", filepath.Join(e.Opt.Dir, "pw"+s.Name+".sock"))
	if e.Opt.Extra != nil {
		b.WriteString(e.Opt.Extra(s))
	}
	return b.String()
}

// FRRConfig returns the FRR site's configuration: the operator's setup
// (iBGP peer group, advertise-all-vni, advertise-svi-ip).
func (e *EVPN) FRRConfig(s *EVPNSite) string {
	var b strings.Builder
	fmt.Fprintf(&b, "frr defaults traditional\nhostname site%s\nlog stdout informational\n!\nrouter bgp %d\n bgp router-id %s\n no bgp default ipv4-unicast\n", s.Name, EVPNASN, s.RouterID)
	b.WriteString(" neighbor fabric peer-group\n neighbor fabric remote-as " + strconv.Itoa(EVPNASN) + "\n neighbor fabric timers 3 9\n")
	for _, o := range e.others(s) {
		if e.Opt.Unnumbered {
			b.WriteString(" neighbor ul0 interface peer-group fabric\n")
			break
		}
		fmt.Fprintf(&b, " neighbor %s peer-group fabric\n", o.VTEP)
	}
	b.WriteString(" !\n address-family l2vpn evpn\n  neighbor fabric activate\n  advertise-all-vni\n  advertise-svi-ip\n exit-address-family\n!\n")
	return b.String()
}

// buildFRR sets up the FRR site: kernel VXLAN (no learning, neighbour
// suppression) in a bridge with the host's link, and zebra and bgpd.
func (e *EVPN) buildFRR(s *EVPNSite) error {
	// As on the hosts: a real NIC sends finished checksums, a veth leaves
	// the UDP checksum of the kernel's VXLAN for the receiver to finish,
	// which XDP sees unfinished.
	if err := e.Script(s.NS, "ethtool -K ul0 tx off", "ip addr add "+s.Underlay+"/24 dev ul0"); err != nil {
		return err
	}
	vxMTU := 1450
	if e.Opt.WireGuard {
		if err := e.frrWireGuard(s); err != nil {
			return err
		}
		vxMTU = 1370 // wireguard-go's 1420, less VXLAN's 50: the operator's MTU
	}
	err := e.Script(s.NS,
		"ip link add br101 type bridge stp_state 0",
		fmt.Sprintf("ip link add vxlan101 mtu %d type vxlan id %d local %s dstport 4789 nolearning", vxMTU, EVPNVNI, s.VTEP),
		"ip link set vxlan101 master br101",
		"ip link set lan master br101",
		"bridge link set dev vxlan101 neigh_suppress on learning off",
		"ip addr add "+SVIAddr+"/24 dev br101",
		"ip link set vxlan101 up", "ip link set br101 up")
	if err != nil {
		return err
	}
	return e.StartFRR(s.NS, e.FRRConfig(s))
}

// frrWireGuard starts wireguard-go (wg0, the overlay address) on the FRR
// site, with the pwgate sites as peers.
func (e *EVPN) frrWireGuard(s *EVPNSite) error {
	if _, err := e.Start(s.NS, "wireguard-go", "-f", "wg0"); err != nil {
		return err
	}
	// wireguard-go makes the TUN device before its control socket: wait
	// for the socket (wg show answers), or wg set finds no socket, falls
	// back to the kernel's WireGuard, which is not there, and fails
	// ("Protocol not supported"; CI's run of TestEVPNWireGuard).
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := e.Exec(s.NS, "wg", "show", "wg0"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("wireguard-go made no wg0 with its control socket")
		}
	}
	args := []string{"wg", "set", "wg0", "private-key", s.WGKeyFile, "listen-port", fmt.Sprint(WGPort)}
	for _, o := range e.others(s) {
		args = append(args, "peer", o.WGKey.PublicKey().String(), "endpoint", fmt.Sprintf("%s:%d", o.Underlay, WGPort), "allowed-ips", o.VTEP+"/32")
	}
	if _, err := e.Exec(s.NS, args...); err != nil {
		return err
	}
	return e.Script(s.NS, "ip addr add "+s.VTEP+"/24 dev wg0", "ip link set wg0 up")
}

// Vtysh runs an FRR command on the FRR site.
func (e *EVPN) Vtysh(s *EVPNSite, cmd string) (string, error) { return e.Lab.Vtysh(s.NS, cmd) }

// VtyshJSON runs an FRR command ending in json and decodes its answer.
func (e *EVPN) VtyshJSON(s *EVPNSite, cmd string, v any) error {
	out, err := e.Vtysh(s, cmd)
	if err != nil {
		return err
	}
	// vtysh warns about its missing configuration file first.
	if i := strings.IndexAny(out, "{["); i > 0 {
		out = out[i:]
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("%s: %w: %.300s", cmd, err, out)
	}
	return nil
}

// StartPwgated starts the pwgate sites and waits until they run.
func (e *EVPN) StartPwgated(sites ...*EVPNSite) error {
	for _, s := range sites {
		p, err := e.Start(s.NS, e.Opt.Pwgated, "--config", s.Config, "--log-level", e.Opt.LogLevel)
		if err != nil {
			return err
		}
		s.Proc = p
		if err := WaitPwgated(p, s.Socket, true, 15*time.Second); err != nil {
			return fmt.Errorf("site %s: %w", s.Name, err)
		}
	}
	return nil
}

// WaitSessions waits until every BGP session of the running pwgate sites
// is established (FRR's too, seen from pwgate's side).
func (e *EVPN) WaitSessions(timeout time.Duration) error {
	last := ""
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		ok := true
		for _, s := range e.Sites {
			if s.FRR || s.Proc == nil {
				continue
			}
			st, err := client.FetchStatus(s.Socket, time.Second)
			if err != nil || st.BGP == nil {
				ok, last = false, fmt.Sprintf("site %s: %v", s.Name, err)
				break
			}
			for _, n := range st.BGP.Neighbors {
				if n.State != "established" {
					ok, last = false, fmt.Sprintf("site %s: neighbor %s %s", s.Name, n.Neighbor, n.State)
				}
			}
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("BGP sessions not established after %v: %s", timeout, last)
}

// WaitFRRFlood waits until the FRR site's kernel floods VNI 101 to every
// pwgate site (FRR installed their flood routes).
func (e *EVPN) WaitFRRFlood(timeout time.Duration) error {
	if e.C == nil {
		return nil
	}
	out := ""
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		out, _ = e.Exec(e.C.NS, "bridge", "fdb", "show", "dev", "vxlan101")
		ok := true
		for _, s := range e.Sites {
			ok = ok && (s.FRR || strings.Contains(out, "00:00:00:00:00:00 dst "+s.VTEP))
		}
		if ok {
			return nil
		}
	}
	return fmt.Errorf("FRR's kernel does not flood to every pwgate site after %v:\n%s", timeout, out)
}
