// Command pwctl reads a running pwgated's counters and status, makes
// WireGuard keys, and updates the appliance (pwctl update).
//
//	pwctl [--socket PATH | --config FILE] stats [--json]
//	pwctl [--socket PATH | --config FILE] status [--json]
//	pwctl [--socket PATH | --config FILE] wg [--json]
//	pwctl [--socket PATH | --config FILE] fdb|evpn|bgp [--json]
//	pwctl wg genkey | pwctl wg pubkey
//	pwctl config apply|confirm|rollback|history|diff|show (see config.go)
//	pwctl update FILE|- | --status | check-boot (see update.go)
//	pwctl syslog check|rsyslog FILE (see syslog.go)
//
// Invoked as "gpwstats" (a symlink), it prints the reference's twelve
// counters in the reference tool's format from the reference protocol
// socket, so that scripts written for ginzado-pseudowire keep working.
package main

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/dataplane/stats"
	"github.com/pwgate/pwgate/dataplane/wg/wgkey"
)

const timeout = 5 * time.Second

func main() {
	if filepath.Base(os.Args[0]) == "gpwstats" {
		os.Exit(gpwstats(os.Stdout, client.DefaultGPWSocket))
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: pwctl [--socket PATH | --config FILE] stats [--json]
       pwctl [--socket PATH | --config FILE] status [--json]
       pwctl [--socket PATH | --config FILE] wg [--json]
       pwctl [--socket PATH | --config FILE] fdb|evpn|bgp [--json]
       pwctl [--socket PATH | --config FILE] anycast [--json]
       pwctl [--socket PATH | --config FILE] anycast drain|resume VIP
       pwctl wg genkey          a new WireGuard private key (as wg genkey)
       pwctl wg pubkey          the public key of the private key on stdin (as wg pubkey)
       pwctl config apply|confirm|rollback|history|diff|show ...
                                change the configuration, with a rollback
                                unless confirmed (pwctl config --help)
       pwctl update ...         install an update into the other root slot
                                (pwctl update --help)
       pwctl syslog check|rsyslog FILE [OUT]
                                check syslog.yaml, make rsyslogd's
                                configuration from it (pwctl syslog --help)
       pwctl --version

  stats   every counter, one a line (the reference's twelve first)
  status  mode, peer, next hop, cores, memory, age of the last BPDU each way
  wg      the WireGuard interface and its peers: endpoints, handshakes, bytes
  fdb     the VXLAN forwarding database: each MAC, its VNI and VTEP, where
          it was learned, its MAC mobility sequence and idle time
  evpn    the VNIs (RD, RT, flood list, largest frame) and remote VTEPs
  bgp     the BGP sessions: state, uptime, routes received and advertised
  anycast announced VIPs (health, state, MED) and forwarded VIPs (servers,
          table shares, packets); drain re-announces a VIP with its drain
          MED and GRACEFUL_SHUTDOWN, then withdraws it; resume ends that
`)
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pwctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(stderr) }
	socket := fs.String("socket", client.DefaultStatsSocket, "pwgated's statistics `socket`")
	configFile := fs.String("config", "", "read the socket's path from pwgated's configuration `file`")
	version := fs.Bool("version", false, "print the version")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *version {
		fmt.Fprintln(stdout, "pwctl", client.Version)
		return 0
	}
	if *configFile != "" {
		c, err := config.LoadFile(*configFile)
		if err != nil {
			fmt.Fprintf(stderr, "pwctl: %v\n", err)
			return 2
		}
		*socket = c.StatsSocket
	}
	if fs.NArg() == 0 {
		usage(stderr)
		return 2
	}
	cmd, rest := fs.Arg(0), fs.Args()[1:]
	switch cmd {
	case "update":
		return updateCmd(rest, *socket, stdin, stdout, stderr)
	case "config":
		return configCmd(rest, *socket, stdin, stdout, stderr)
	case "syslog":
		return syslogCmd(rest, stdout, stderr)
	}
	sub := flag.NewFlagSet("pwctl "+cmd, flag.ContinueOnError)
	sub.SetOutput(stderr)
	asJSON := sub.Bool("json", false, "print JSON")
	if err := sub.Parse(rest); err != nil {
		return 2
	}
	operands := sub.Args()
	if cmd == "wg" && len(operands) == 1 && (operands[0] == "genkey" || operands[0] == "pubkey") {
		return keys(operands[0], stdin, stdout, stderr)
	}
	if cmd == "anycast" && len(operands) > 0 {
		if len(operands) != 2 || operands[0] != "drain" && operands[0] != "resume" {
			fmt.Fprintln(stderr, "pwctl: want anycast drain|resume VIP")
			return 2
		}
		if err := client.AnycastControl(*socket, operands[0], operands[1], timeout); err != nil {
			fmt.Fprintf(stderr, "pwctl: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: %s\n", operands[1], map[string]string{"drain": "draining", "resume": "resumed"}[operands[0]])
		return 0
	}
	if len(operands) > 0 {
		fmt.Fprintf(stderr, "pwctl: unexpected argument %q\n", operands[0])
		return 2
	}
	var err error
	switch cmd {
	case "stats":
		err = printStats(stdout, *socket, *asJSON)
	case "status":
		err = printStatus(stdout, *socket, *asJSON)
	case "wg":
		err = printWG(stdout, *socket, *asJSON)
	case "fdb":
		err = printFDB(stdout, *socket, *asJSON)
	case "evpn":
		err = printEVPN(stdout, *socket, *asJSON)
	case "bgp":
		err = printBGP(stdout, *socket, *asJSON)
	case "anycast":
		err = printAnycast(stdout, *socket, *asJSON)
	default:
		fmt.Fprintf(stderr, "pwctl: unknown command %q\n", cmd)
		usage(stderr)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "pwctl: %v\n", err)
		return 1
	}
	return 0
}

func printStats(w io.Writer, socket string, asJSON bool) error {
	if asJSON {
		b, err := client.Query(socket, client.ReqStats, timeout)
		if err == nil {
			_, err = w.Write(b)
		}
		return err
	}
	cs, err := client.FetchCounters(socket, timeout)
	if err != nil {
		return err
	}
	width := 0
	for _, c := range cs {
		width = max(width, len(c.Name))
	}
	for _, c := range cs {
		fmt.Fprintf(w, "pwgate.%-*s %20d\n", width, c.Name, c.Value)
	}
	return nil
}

func printStatus(w io.Writer, socket string, asJSON bool) error {
	s, err := client.FetchStatus(socket, timeout)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(w).Encode(s)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("mode", s.Mode)
	switch {
	case s.Mode == "anycast": // no ports of its own
		if a := s.Anycast; a != nil {
			up := 0
			for _, v := range a.VIPs {
				if v.Announced {
					up++
				}
			}
			row("anycast", fmt.Sprintf("%d of %d VIPs announced, %d forwarded (pwctl anycast)", up, len(a.VIPs), len(a.Forward)))
		}
	default:
		row("downlink", s.Downlink)
		row("uplink", fmt.Sprintf("%s (MTU %d)", s.Uplink, s.UplinkMTU))
		row("peer", s.Peer)
		if s.Local != "" {
			row("local", s.Local)
		}
		if e := s.EVPN; e != nil { // a VTEP: a next hop per VTEP
			resolved := 0
			for _, v := range e.VTEPs {
				if v.Resolved {
					resolved++
				}
			}
			row("remote VTEPs", fmt.Sprintf("%d, %d with their next hop resolved (pwctl evpn)", len(e.VTEPs), resolved))
			break
		}
		nh := s.NextHop
		if s.Via != "" {
			nh += " via " + s.Via
		}
		row("next hop", nh)
	}
	if b := s.BGP; b != nil {
		est := 0
		for _, n := range b.Neighbors {
			if n.State == "established" {
				est++
			}
		}
		row("bgp", fmt.Sprintf("%d of %d sessions established (pwctl bgp)", est, len(b.Neighbors)))
	}
	if s.Ready {
		row("ready", "yes")
	} else {
		row("ready", "no: "+s.NotReady)
	}
	if p := s.Path; p != nil {
		row("path", pathLine(p))
		if f := p.FollowPeer; f != nil {
			row("follow peer", followLine(f))
		}
	}
	if l := s.LLDP; l != nil {
		for _, line := range lldpLines(l) {
			row("lldp", line)
		}
	}
	if w := s.WireGuard; w != nil {
		session := ""
		if w.Pseudowire {
			session = map[bool]string{true: ", pseudowire session up", false: ", pseudowire session DOWN"}[w.Session]
		}
		row("wireguard", fmt.Sprintf("%s, port %d, MTU %d, %d peers%s (pwctl wg)", w.Interface, w.ListenPort, w.MTU, len(w.Peers), session))
	}
	row("profile", cmp.Or(s.Profile, "none (generic)"))
	if s.Mode != "anycast" {
		row("poll", s.Poll)
		row("xdp bind", s.XDPBind)
	}
	if len(s.NICChanges) > 0 {
		row("port settings", strings.Join(s.NICChanges, ", ")+" (until exit)")
	}
	r := s.Runtime
	row("GOMAXPROCS", fmt.Sprint(r.GOMAXPROCS))
	for _, t := range r.Threads {
		where := fmt.Sprintf("cores %s", cores(t.Allowed))
		if t.LastCore >= 0 {
			where += fmt.Sprintf(", last ran on %d", t.LastCore)
		}
		if t.TID > 0 {
			where += fmt.Sprintf(" (thread %d)", t.TID)
		}
		row(t.Name+" goroutine", where)
	}
	row("memory", fmt.Sprintf("heap %s, resident %s (%s own, %s of files), Go holds %s, %d GC cycles, %d goroutines, %d threads, %d open files",
		bytesIEC(r.HeapBytes), bytesIEC(r.RSSBytes), bytesIEC(r.RSSAnonBytes), bytesIEC(r.RSSFileBytes), bytesIEC(r.GoHeldBytes), r.GCCycles, r.Goroutines, r.OSThreads, r.FDs))
	row("uptime", (time.Duration(s.Uptime) * time.Second).String())
	row("last BPDU", fmt.Sprintf("from uplink %s, from LAN %s", age(s.LastBPDU.UL), age(s.LastBPDU.DL)))
	cfg := s.Config
	if s.ConfigRevision > 0 {
		cfg += fmt.Sprintf(" (revision %d)", s.ConfigRevision)
	}
	if p := s.ConfigPending; p != nil {
		cfg += fmt.Sprintf("; UNCONFIRMED: revision %d comes back at %s unless pwctl config confirm", p.Rollback, p.Deadline.Local().Format(time.TimeOnly))
	}
	row("config", cfg)
	row("version", fmt.Sprintf("%s (pid %d)", s.Version, s.PID))
	return tw.Flush()
}

// lldpLines says who is cabled to each LLDP port: "dl0: sw1 port
// Gi0/3 (uplink to pwgate), chassis 00:11:..., 12s ago", a port's trouble,
// or that nothing was heard.
func lldpLines(l *client.LLDP) []string {
	var out []string
	for _, p := range l.Ports {
		heard := 0
		for _, n := range l.Neighbors {
			if n.Port != p.Name {
				continue
			}
			heard++
			who := n.SystemName
			if who == "" {
				who = "chassis " + n.ChassisID
			}
			line := fmt.Sprintf("%s: %s port %s", p.Name, who, n.PortID)
			if n.PortDesc != "" && n.PortDesc != n.PortID {
				line += " (" + n.PortDesc + ")"
			}
			if n.SystemName != "" {
				line += ", chassis " + n.ChassisID
			}
			if len(n.Mgmt) > 0 {
				line += ", address " + strings.Join(n.Mgmt, " ")
			}
			out = append(out, line+fmt.Sprintf(", %s ago", (time.Duration(n.Age)*time.Second).String()))
		}
		switch {
		case p.Error != "":
			out = append(out, fmt.Sprintf("%s: %s", p.Name, p.Error))
		case heard == 0:
			out = append(out, fmt.Sprintf("%s: no neighbour heard", p.Name))
		}
	}
	return out
}

// pathLine says what keepalives tell of the peer: "up, rtt 1.2ms, jitter
// 0.1ms, loss 0.0% (last 10 s), heard 20ms ago; keepalives every 100ms,
// down after 300ms".
func pathLine(p *client.PeerPath) string {
	secs := func(v float64) string {
		return (time.Duration(v * float64(time.Second))).Round(10 * time.Microsecond).String()
	}
	line := p.State
	switch p.State {
	case client.PathSilent, client.PathWaiting:
		line = strings.ToUpper(p.State)
	case client.PathOneWay:
		line = "ONE-WAY (the peer does not hear us)"
	}
	if p.RTT > 0 {
		line += fmt.Sprintf(", rtt %s, jitter %s", secs(p.RTT), secs(p.Jitter))
	}
	line += fmt.Sprintf(", loss %.1f%% (last 10 s)", 100*p.Loss)
	switch {
	case p.HeardAgo < 0:
		line += ", never heard"
	default:
		line += ", heard " + secs(p.HeardAgo) + " ago"
	}
	line += fmt.Sprintf("; keepalives every %s, down after %s", secs(p.Interval), secs(p.Timeout))
	if p.Warning != "" {
		line += "; WARNING: " + p.Warning
	}
	return line
}

// followLine says what downlink.follow_peer did.
func followLine(f *client.FollowPeerStatus) string {
	line := "LAN port up"
	if f.LANDown {
		line = "LAN port DOWN (the peer is not heard, or does not hear us)"
	}
	if !f.Since.IsZero() {
		line += " since " + f.Since.Local().Format(time.DateTime)
	}
	line += fmt.Sprintf(", taken down %d times, hold %s", f.Downs, time.Duration(f.Hold*float64(time.Second)))
	if f.Error != "" {
		line += "; cannot change the port: " + f.Error
	}
	return line
}

// cores formats a core list as the kernel does: "0-3,6".
func cores(cs []int) string {
	if len(cs) == 0 {
		return "?"
	}
	var parts []string
	for i := 0; i < len(cs); {
		j := i
		for j+1 < len(cs) && cs[j+1] == cs[j]+1 {
			j++
		}
		if j > i {
			parts = append(parts, fmt.Sprintf("%d-%d", cs[i], cs[j]))
		} else {
			parts = append(parts, fmt.Sprint(cs[i]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

func bytesIEC(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
}

func age(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return time.Since(*t).Round(100*time.Millisecond).String() + " ago"
}

// gpwstats is the reference's client: send a 4-byte 0, read twelve
// host-order uint64s, print them as the reference's tool did.
func gpwstats(w io.Writer, socket string) int {
	fail := func(what string) int { fmt.Fprintln(w, what); return 255 }
	c, err := net.DialTimeout("unix", socket, timeout)
	if err != nil {
		return fail("connect failed")
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(make([]byte, 4)); err != nil {
		return fail("send failed")
	}
	b := make([]byte, 8*stats.NumReference)
	if _, err := io.ReadFull(c, b); err != nil {
		return fail("recv failed")
	}
	for i := 0; i < stats.NumReference; i++ {
		name := "gpwstats." + stats.Counter(i).Name()
		fmt.Fprintf(w, "%s%s %20d\n", name, strings.Repeat(" ", len("gpwstats.ul_rx_packets")-len(name)), binary.NativeEndian.Uint64(b[8*i:]))
	}
	return 0
}

// keys is "pwctl wg genkey" and "pwctl wg pubkey", compatible with wg's.
func keys(op string, stdin io.Reader, stdout, stderr io.Writer) int {
	if op == "genkey" {
		k, err := wgkey.GenerateKey()
		if err != nil {
			fmt.Fprintf(stderr, "pwctl: %v\n", err)
			return 1
		}
		fmt.Fprintln(stdout, k)
		return 0
	}
	b, err := io.ReadAll(io.LimitReader(stdin, 1024))
	if err != nil {
		fmt.Fprintf(stderr, "pwctl: %v\n", err)
		return 1
	}
	k, err := wgkey.Parse(string(b))
	if err != nil {
		fmt.Fprintf(stderr, "pwctl: a private key on standard input: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, k.PublicKey())
	return 0
}

// printWG shows the WireGuard interface as wg show does.
func printWG(w io.Writer, socket string, asJSON bool) error {
	s, err := client.FetchStatus(socket, timeout)
	if err != nil {
		return err
	}
	if s.WireGuard == nil {
		return fmt.Errorf("pwgated at %s has no wireguard section", socket)
	}
	if asJSON {
		return json.NewEncoder(w).Encode(s.WireGuard)
	}
	g := s.WireGuard
	fmt.Fprintf(w, "interface: %s\n  public key: %s\n  listening port: %d\n  MTU inside the tunnel: %d\n  addresses: %s\n",
		g.Interface, g.PublicKey, g.ListenPort, g.MTU, strings.Join(g.Addresses, ", "))
	for _, p := range g.Peers {
		fmt.Fprintf(w, "\npeer: %s", p.PublicKey)
		if p.Pseudowire {
			fmt.Fprintf(w, " (pseudowire, session %s)", map[bool]string{true: "up", false: "DOWN"}[g.Session])
		}
		fmt.Fprintln(w)
		ep := p.Endpoint
		if ep == "" {
			ep = "(none yet)"
		}
		if p.ConfiguredAs != "" && p.ConfiguredAs != p.Endpoint {
			ep += " (configured " + p.ConfiguredAs + ")"
		}
		fmt.Fprintf(w, "  endpoint: %s\n  allowed ips: %s\n", ep, strings.Join(p.AllowedIPs, ", "))
		if p.LastHandshake != nil {
			fmt.Fprintf(w, "  latest handshake: %s\n", age(p.LastHandshake))
		} else {
			fmt.Fprintf(w, "  latest handshake: never\n")
		}
		fmt.Fprintf(w, "  transfer: %s received, %s sent\n  handshakes unanswered: %d\n", bytesIEC(p.RxBytes), bytesIEC(p.TxBytes), p.HandshakeFailures)
		if p.Keepalive > 0 {
			fmt.Fprintf(w, "  persistent keepalive: every %d seconds\n", p.Keepalive)
		}
	}
	return nil
}
