package lab

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pwgate/pwgate/control/client"
)

// The anycast lab's addresses: the client on 10.8.0.0/24 and fd00:8::/64
// behind the forwarder's port c0; server i on 10.9.i.0/24 and fd00:9:i::/64
// behind port s<i>; every server has both VIPs on its loopback and speaks
// BGP over IPv4 (the IPv4 VIP) and IPv6 (the IPv6 VIP).
const (
	AnycastVIP      = "192.0.2.80"
	AnycastVIP6     = "2001:db8:80::80"
	AnycastClient   = "10.8.0.2"
	AnycastClient6  = "fd00:8::2"
	AnycastFwdASN   = 65000
	AnycastHTTPPort = 8080 // each server's name, over HTTP/1.0
	AnycastTCPPort  = 9000 // each server's name on connect, then an echo
)

// AnycastOptions shape the anycast lab.
type AnycastOptions struct {
	Pwgated, Dir string
	Servers      int // 3 by default
	// Forwarder: "pwgate" (pwgated's XDP forwarder), "frr" (FRR 8.4 with
	// maximum-paths installing a kernel ECMP route) or "" (none: the lab
	// only, for the bench's kernel baselines).
	Forwarder string
	// Interval, Fall and Rise are the announcers' health checks.
	Interval   time.Duration
	Fall, Rise int
	Drain      time.Duration
	// Pseudowire makes the pwgate forwarder a pseudowire appliance too
	// (eth mode, downlink dl0 from the client's lan0, uplink ul0 to
	// namespace "wan"): anycast beside the pseudowire in one pwgated.
	Pseudowire bool
	// Bare leaves the servers without services and announcers (the
	// bench's kernel routing baselines need only their addresses).
	Bare bool
	// MoreNeighbors are more BGP neighbors of the pwgate forwarder
	// ("ADDRESS ASN"), such as a test's own speaker.
	MoreNeighbors []string
	// Unnumbered runs every session between the forwarder and a server
	// over IPv6 link-local addresses (FRR's "neighbor IFNAME interface",
	// pwgate's neighbors[].interface), both VIPs' families on it: the
	// IPv4 VIP with an IPv6 next hop (RFC 8950). The servers keep their
	// addresses for the traffic itself.
	Unnumbered bool
}

// Anycast is the anycast lab: a client, a forwarder and servers, each
// server with an HTTP and a TCP service and a pwgated announcer.
type Anycast struct {
	*Lab
	Opt     AnycastOptions
	Servers []*AnycastServer
	FwdSock string
	Fwd     *Proc
}

// AnycastServer is one server.
type AnycastServer struct {
	Name, NS, Addr, Gateway string // Addr on eth0; Gateway the forwarder's
	Addr6, Gateway6         string
	Port                    string // the forwarder's port towards it
	Socket, Config          string
	Announcer, Service      *Proc
	ASN                     int
}

// serviceScript serves the server's name over HTTP and, on the TCP port,
// says its name and echoes lines, one thread per connection.
const serviceScript = `import socketserver, sys, http.server
name = sys.argv[1]
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = (name + "\n").encode()
        self.send_response(200); self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
    def log_message(self, *a): pass
class E(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write((name + "\n").encode())
        for line in self.rfile:
            self.wfile.write(line)
import socket, threading
class T(socketserver.ThreadingTCPServer):
    address_family = socket.AF_INET6  # and IPv4, mapped
    allow_reuse_address = True
    daemon_threads = True
class W(http.server.ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
threading.Thread(target=T(("::", 9000), E).serve_forever, daemon=True).start()
W(("::", 8080), H).serve_forever()
`

// NewAnycast builds the lab and starts the services, the announcers and
// the forwarder.
func NewAnycast(l *Lab, o AnycastOptions) (*Anycast, error) {
	if o.Servers == 0 {
		o.Servers = 3
	}
	if o.Interval == 0 {
		o.Interval = 500 * time.Millisecond
	}
	if o.Fall == 0 {
		o.Fall = 3
	}
	if o.Rise == 0 {
		o.Rise = 2
	}
	a := &Anycast{Lab: l, Opt: o, FwdSock: filepath.Join(o.Dir, "fwd.sock")}
	names := []string{"fwd", "cl"}
	for i := 1; i <= o.Servers; i++ {
		s := &AnycastServer{Name: fmt.Sprintf("srv%d", i), NS: fmt.Sprintf("srv%d", i), Addr: fmt.Sprintf("10.9.%d.2", i),
			Gateway: fmt.Sprintf("10.9.%d.1", i), Addr6: fmt.Sprintf("fd00:9:%d::2", i), Gateway6: fmt.Sprintf("fd00:9:%d::1", i),
			Port: fmt.Sprintf("s%d", i), ASN: 65100 + i,
			Socket: filepath.Join(o.Dir, fmt.Sprintf("srv%d.sock", i)), Config: filepath.Join(o.Dir, fmt.Sprintf("srv%d.yaml", i))}
		a.Servers = append(a.Servers, s)
		names = append(names, s.NS)
	}
	if o.Pseudowire {
		names = append(names, "wan")
	}
	if err := l.AddNS(names...); err != nil {
		return nil, err
	}
	if o.Pseudowire {
		if err := l.Veth("cl", "lan0", "fwd", "dl0", 0); err != nil {
			return nil, err
		}
		if err := l.Veth("fwd", "ul0", "wan", "eth0", 0); err != nil {
			return nil, err
		}
	}
	if err := l.Veth("fwd", "c0", "cl", "eth0", 0); err != nil {
		return nil, err
	}
	// Checksums finished by the sender: XDP sees frames before a veth's
	// receiver would finish them (as on the other labs' hosts).
	if err := l.Script("cl", "ethtool -K eth0 tx off", "ip addr add "+AnycastClient+"/24 dev eth0", "ip route add default via 10.8.0.1",
		"ip -6 addr add "+AnycastClient6+"/64 dev eth0 nodad", "ip -6 route add default via fd00:8::1"); err != nil {
		return nil, err
	}
	if err := l.Script("fwd", "sysctl -qw net.ipv4.ip_forward=1", "sysctl -qw net.ipv4.fib_multipath_hash_policy=1",
		"sysctl -qw net.ipv6.conf.all.forwarding=1", "ip addr add 10.8.0.1/24 dev c0", "ip -6 addr add fd00:8::1/64 dev c0 nodad",
		"ethtool -K c0 tx off"); err != nil {
		return nil, err
	}
	script := filepath.Join(o.Dir, "service.py")
	if err := os.WriteFile(script, []byte(serviceScript), 0o644); err != nil {
		return nil, err
	}
	for _, s := range a.Servers {
		if err := l.Veth("fwd", s.Port, s.NS, "eth0", 0); err != nil {
			return nil, err
		}
		// GRO on makes the server's veth take frames redirected by XDP
		// (it runs NAPI); a NIC needs nothing of the kind.
		if err := l.Script("fwd", "ip addr add "+s.Gateway+"/24 dev "+s.Port, "ip -6 addr add "+s.Gateway6+"/64 dev "+s.Port+" nodad",
			"ethtool -K "+s.Port+" tx off"); err != nil {
			return nil, err
		}
		if err := l.Script(s.NS, "ethtool -K eth0 tx off gro on", "ip addr add "+s.Addr+"/24 dev eth0", "ip addr add "+AnycastVIP+"/32 dev lo",
			"ip -6 addr add "+s.Addr6+"/64 dev eth0 nodad", "ip -6 addr add "+AnycastVIP6+"/128 dev lo",
			"ip link set lo up", "ip route add default via "+s.Gateway, "ip -6 route add default via "+s.Gateway6); err != nil {
			return nil, err
		}
		if o.Bare {
			continue
		}
		if err := a.StartService(s); err != nil {
			return nil, err
		}
		if err := os.WriteFile(s.Config, []byte(a.AnnouncerConfig(s)), 0o644); err != nil {
			return nil, err
		}
	}
	if err := l.Script("cl", "ethtool -K eth0 gro on"); err != nil {
		return nil, err
	}
	switch o.Forwarder {
	case "pwgate":
		conf := filepath.Join(o.Dir, "fwd.yaml")
		if err := os.WriteFile(conf, []byte(a.ForwarderConfig()), 0o644); err != nil {
			return nil, err
		}
		p, err := l.Start("fwd", o.Pwgated, "--config", conf)
		if err != nil {
			return nil, err
		}
		a.Fwd = p
		if err := WaitPwgated(p, a.FwdSock, true, 15*time.Second); err != nil {
			return nil, err
		}
	case "frr":
		if err := l.StartFRR("fwd", a.FRRConfig()); err != nil {
			return nil, err
		}
	}
	for _, s := range a.Servers {
		if o.Bare {
			break
		}
		if err := a.StartAnnouncer(s); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// StartService starts server s's HTTP and TCP services.
func (a *Anycast) StartService(s *AnycastServer) error {
	p, err := a.Start(s.NS, "/usr/bin/python3", filepath.Join(a.Opt.Dir, "service.py"), s.Name)
	if err != nil {
		return err
	}
	s.Service = p
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if out, err := a.Exec(s.NS, "curl", "-s", "-m", "1", fmt.Sprintf("http://127.0.0.1:%d/", AnycastHTTPPort)); err == nil && strings.TrimSpace(out) == s.Name {
			return nil
		}
		if time.Now().After(deadline) || p.Exited() {
			return fmt.Errorf("%s's service does not answer: %s", s.Name, p.Out.String())
		}
	}
}

// StartAnnouncer starts server s's pwgated announcer.
func (a *Anycast) StartAnnouncer(s *AnycastServer) error {
	p, err := a.Start(s.NS, a.Opt.Pwgated, "--config", s.Config)
	if err != nil {
		return err
	}
	s.Announcer = p
	return WaitPwgated(p, s.Socket, true, 15*time.Second)
}

// AnnouncerConfig is server s's pwgated configuration.
func (a *Anycast) AnnouncerConfig(s *AnycastServer) string {
	if a.Opt.Unnumbered {
		return fmt.Sprintf(`bgp:
  asn: %d
  router_id: %s
  neighbors:
    - interface: eth0
      asn: %d
      hold_time: 9
      families: [ipv4-unicast, ipv6-unicast]
      export:
        - action: permit
          prefix: %s/32
        - action: permit
          prefix: %s/128
        - action: deny
`, s.ASN, s.Addr, AnycastFwdASN, AnycastVIP, AnycastVIP6) + a.announcerVIPs(s)
	}
	return fmt.Sprintf(`bgp:
  asn: %d
  router_id: %s
  listen: [%s, %s]
  neighbors:
    - address: %s
      asn: %d
      hold_time: 9
      export:
        - action: permit
          prefix: %s/32
        - action: deny
    - address: %s
      asn: %d
      hold_time: 9
      export:
        - action: permit
          prefix: %s/128
        - action: deny
`, s.ASN, s.Addr, s.Addr, s.Addr6, s.Gateway, AnycastFwdASN, AnycastVIP, s.Gateway6, AnycastFwdASN, AnycastVIP6) + a.announcerVIPs(s)
}

// announcerVIPs is the anycast section of server s's configuration.
func (a *Anycast) announcerVIPs(s *AnycastServer) string {
	drain := ""
	if a.Opt.Drain > 0 {
		drain = fmt.Sprintf("      drain: %s\n      drain_med: 1000\n", a.Opt.Drain)
	}
	return fmt.Sprintf(`anycast:
  vips:
    - prefix: %s/32
      check:
        http: http://127.0.0.1:%d/
      interval: %s
      timeout: %s
      rise: %d
      fall: %d
      med: 10
%s    - prefix: %s/128
      check:
        http: http://[::1]:%d/
      interval: %s
      timeout: %s
      rise: %d
      fall: %d
stats:
  socket: %s
`, AnycastVIP, AnycastHTTPPort, a.Opt.Interval, a.Opt.Interval/2, a.Opt.Rise, a.Opt.Fall, drain,
		AnycastVIP6, AnycastHTTPPort, a.Opt.Interval, a.Opt.Interval/2, a.Opt.Rise, a.Opt.Fall, s.Socket)
}

// ForwarderConfig is the pwgate forwarder's configuration.
func (a *Anycast) ForwarderConfig() string {
	var b strings.Builder
	if a.Opt.Pseudowire {
		b.WriteString("mode: eth\ndownlink:\n  interface: dl0\nuplink:\n  interface: ul0\npeer:\n  mac: 02:00:00:00:00:99\npoll: adaptive\n")
	}
	fmt.Fprintf(&b, "bgp:\n  asn: %d\n  router_id: 10.8.0.1\n  neighbors:\n", AnycastFwdASN)
	ports := []string{"c0"}
	for _, s := range a.Servers {
		if a.Opt.Unnumbered {
			fmt.Fprintf(&b, "    - interface: %s\n      asn: %d\n      hold_time: 9\n      max_prefix: 10\n      families: [ipv4-unicast, ipv6-unicast]\n", s.Port, s.ASN)
		} else {
			for _, addr := range []string{s.Addr, s.Addr6} {
				fmt.Fprintf(&b, "    - address: %s\n      asn: %d\n      hold_time: 9\n      max_prefix: 10\n", addr, s.ASN)
			}
		}
		ports = append(ports, s.Port)
	}
	for _, n := range a.Opt.MoreNeighbors {
		addr, asn, _ := strings.Cut(n, " ")
		fmt.Fprintf(&b, "    - address: %s\n      asn: %s\n      hold_time: 9\n", addr, asn)
	}
	fmt.Fprintf(&b, "anycast:\n  forward:\n    interfaces: [%s]\n    vips: [%s/32, %s/128]\nstats:\n  socket: %s\n",
		strings.Join(ports, ", "), AnycastVIP, AnycastVIP6, a.FwdSock)
	return b.String()
}

// FRRConfig is the FRR forwarder's: eBGP with every announcer and
// maximum-paths, so that zebra installs an ECMP route to the VIP.
func (a *Anycast) FRRConfig() string {
	var b strings.Builder
	fmt.Fprintf(&b, "frr defaults datacenter\nhostname fwd\n!\nrouter bgp %d\n bgp router-id 10.8.0.1\n no bgp ebgp-requires-policy\n bgp bestpath as-path multipath-relax\n", AnycastFwdASN)
	if a.Opt.Unnumbered {
		// As the operators run it: the session on the port, its address
		// learned from the server's router advertisements, IPv4 with
		// IPv6 next hops (the extended next hop capability comes with
		// "interface").
		for _, s := range a.Servers {
			fmt.Fprintf(&b, " neighbor %s interface remote-as external\n neighbor %s timers 3 9\n", s.Port, s.Port)
		}
		b.WriteString(" address-family ipv4 unicast\n  maximum-paths 16\n exit-address-family\n address-family ipv6 unicast\n")
		for _, s := range a.Servers {
			fmt.Fprintf(&b, "  neighbor %s activate\n", s.Port)
		}
		b.WriteString("  maximum-paths 16\n exit-address-family\n!\n")
		return b.String()
	}
	for _, s := range a.Servers {
		fmt.Fprintf(&b, " neighbor %s remote-as %d\n neighbor %s timers 3 9\n", s.Addr, s.ASN, s.Addr)
	}
	b.WriteString(" address-family ipv4 unicast\n  maximum-paths 16\n exit-address-family\n!\n")
	return b.String()
}

// StartFRR starts zebra and bgpd in namespace ns with configuration conf
// (FRRRunDir/NAMESPACE/frr.conf, owned by frr).
func (l *Lab) StartFRR(ns, conf string) error {
	dir := filepath.Join(FRRRunDir, l.NS(ns))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	file := filepath.Join(dir, "frr.conf")
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		return err
	}
	if u, err := user.Lookup("frr"); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		os.Chown(dir, uid, gid)
		os.Chown(file, uid, gid)
	}
	for _, d := range []string{"zebra", "bgpd"} {
		if _, err := l.Start(ns, "/usr/lib/frr/"+d, "-N", l.NS(ns), "-f", file); err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond) // zebra first
	}
	return nil
}

// Vtysh runs an FRR command in namespace ns.
func (l *Lab) Vtysh(ns, cmd string) (string, error) {
	return l.Exec(ns, "vtysh", "-N", l.NS(ns), "-c", cmd)
}

// WaitServers waits until the pwgate forwarder's table for the IPv4 VIP
// holds n servers.
func (a *Anycast) WaitServers(n int, timeout time.Duration) (*client.AnycastForward, error) {
	return a.WaitServersOf(0, n, timeout)
}

// WaitServersOf waits until the table of forwarded VIP vip (0: IPv4, 1:
// IPv6) holds n servers.
func (a *Anycast) WaitServersOf(vip, n int, timeout time.Duration) (*client.AnycastForward, error) {
	var last *client.AnycastForward
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		st, err := client.FetchAnycast(a.FwdSock, time.Second)
		if err != nil || len(st.Forward) <= vip {
			continue
		}
		last = &st.Forward[vip]
		k := 0
		for _, s := range last.Servers {
			if s.Slots > 0 {
				k++
			}
		}
		if k == n {
			return last, nil
		}
	}
	return last, fmt.Errorf("the forwarder does not have %d servers in its table after %v: %+v", n, timeout, last)
}
