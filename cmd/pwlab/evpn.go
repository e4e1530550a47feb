package main

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
)

// buildEVPN makes the three-site EVPN lab and starts the pwgates; on error
// the caller tears it down.
func buildEVPN(l *lab.Lab, o options, dir string) (*lab.EVPN, error) {
	step("building the three-site EVPN lab (%s)", o)
	e, err := lab.NewEVPN(l, lab.EVPNOptions{Pwgated: bin("pwgated"), Dir: dir, FRR: true, WireGuard: o.encrypt == "wireguard"})
	if err != nil {
		return nil, err
	}
	step("starting pwgated on sites A and B (FRR runs site C)")
	if err := e.StartPwgated(e.A, e.B); err != nil {
		return nil, err
	}
	step("waiting for the BGP sessions and FRR's flood lists")
	if err := e.WaitSessions(45 * time.Second); err != nil {
		return nil, err
	}
	if err := e.WaitFRRFlood(15 * time.Second); err != nil {
		return nil, err
	}
	return e, nil
}

func runEVPNDemo(l *lab.Lab, o options, dir string) error {
	e, err := buildEVPN(l, o, dir)
	if err != nil {
		return err
	}
	under := "one IPv4 segment"
	if o.encrypt == "wireguard" {
		under = "WireGuard over one IPv4 segment"
	}
	fmt.Printf("\n    %s ── pwa (VTEP %s) ─┐\n    %s ── pwb (VTEP %s) ─┼─ %s\n    %s ── frrc (FRR, VTEP %s) ─┘   VNI %d, AS %d\n",
		e.A.HostIP, e.A.VTEP, e.B.HostIP, e.B.VTEP, under, e.C.HostIP, e.C.VTEP, lab.EVPNVNI, lab.EVPNASN)
	type demoStep struct {
		title string
		ns    string
		argv  []string
	}
	pwctl := func(s *lab.EVPNSite, args ...string) []string {
		return append([]string{bin("pwctl"), "--socket", s.Socket}, args...)
	}
	steps := []demoStep{
		{"ping from host A (pwgate) to host C (FRR's kernel VXLAN)", e.A.Host, []string{"ping", "-c", "3", "-i", "0.3", e.C.HostIP}},
		{"ping from host C to host B", e.C.Host, []string{"ping", "-c", "3", "-i", "0.3", e.B.HostIP}},
		{"pwctl bgp on site A", "", pwctl(e.A, "bgp")},
		{"pwctl evpn on site A: VNIs, flood lists, VTEPs", "", pwctl(e.A, "evpn")},
		{"pwctl fdb on site A: every MAC, where it is, its MAC mobility sequence", "", pwctl(e.A, "fdb")},
		{"FRR on site C: the EVPN routes, pwgate's among them", e.C.NS, []string{"vtysh", "-N", e.NS(e.C.NS), "-c", "show bgp l2vpn evpn route"}},
		{"FRR's kernel: where it sends each MAC", e.C.NS, []string{"bridge", "fdb", "show", "dev", "vxlan101"}},
		{"host A forgets host B's MAC and asks again: pwgate A answers the ARP request from B's MAC+IP route (vxlan.vnis[].suppress, on with EVPN), and tcpdump on host B's LAN sees no request for B's address",
			"", []string{"sh", "-c", fmt.Sprintf("f=$(mktemp); ip netns exec %[1]s timeout 3 tcpdump -l -n -e -i eth0 'arp and arp[6:2] = 1 and arp[24:4] = 0x%[4]s' 2>/dev/null >$f & sleep 1; "+
				"ip netns exec %[2]s ip neigh flush dev eth0 && ip netns exec %[2]s ping -c 1 -W 1 %[3]s >/dev/null && ip netns exec %[2]s ip neigh show %[3]s; wait; "+
				"echo \"ARP requests for %[3]s that reached host B's LAN: $(grep -c . $f)\"; cat $f; rm -f $f",
				e.NS(e.B.Host), e.NS(e.A.Host), e.B.HostIP, hexIPv4(e.B.HostIP))}},
		{"pwctl stats on site A: the ARP requests answered (evpn_arp_suppressed) and flooded", "", []string{"sh", "-c", strings.Join(pwctl(e.A, "stats"), " ") + " | grep -E 'evpn_(arp|nd)_'"}},
		{"check_pwbgp on site A", "", []string{bin("check_pwbgp"), "--socket", e.A.Socket}},
	}
	for _, st := range steps {
		fmt.Printf("\n=== %s\n$ %s\n", st.title, strings.Join(st.argv, " "))
		out, err := e.Exec(st.ns, st.argv...)
		if i := strings.Index(out, "vtysh.conf"); i >= 0 { // vtysh's warning about its own file
			out = out[strings.IndexByte(out[i:], '\n')+i+1:]
		}
		fmt.Print(out)
		if err != nil {
			return fmt.Errorf("%s: %w", st.title, err)
		}
	}
	fmt.Println()
	return nil
}

func upEVPN(l *lab.Lab, o options) error {
	e, err := buildEVPN(l, o, stateDir)
	if err != nil {
		l.Close()
		lab.Teardown(prefix)
		return err
	}
	l.Forget()
	pwctl, _ := filepath.Abs(bin("pwctl"))
	fmt.Printf(`
The lab is up (%s). Namespaces: %shosta, %spwa, %shostb, %spwb, %shostc, %sfrrc, %snet.
  ip netns exec %shosta ping %s
  %s --socket %s evpn
  %s --socket %s fdb
  vtysh -N %sfrrc -c 'show bgp l2vpn evpn route'
  logs, configurations and sockets: %s
  make lab-down    to remove it
`, o, prefix, prefix, prefix, prefix, prefix, prefix, prefix, prefix, e.C.HostIP, pwctl, e.A.Socket, pwctl, e.B.Socket, prefix, stateDir)
	return nil
}

// hexIPv4 is an IPv4 address as eight hex digits (tcpdump's filters).
func hexIPv4(a string) string {
	b := netip.MustParseAddr(a).As4()
	return fmt.Sprintf("%02x%02x%02x%02x", b[0], b[1], b[2], b[3])
}
