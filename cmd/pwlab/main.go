// Command pwlab builds pwgate's two-site lab in network namespaces, for
// people who want to see the appliance work without hardware:
//
//	pwlab demo [--mode ip6|eth|evpn] [--encrypt none|wireguard]   build, show traffic and counters, tear down
//	pwlab up   [--mode ip6|eth|evpn] [--encrypt none|wireguard]   build and leave it running
//	pwlab down                                                     tear down what up built
//
//	hosta ── pwa ══ access network ══ pwb ── hostb
//
// Each host has a Linux bridge with STP; the access network is a router
// with radvd joining two /64s (ip6 mode) or a hub (eth mode). With --mode
// evpn it is three sites instead, two pwgates and FRR 8.4 with kernel
// VXLAN, in one BGP EVPN fabric (bench/lab's EVPN lab). pwlab finds
// pwgated, pwctl and the checks next to its own executable. It needs root.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pwgate/pwgate/bench/lab"
)

const (
	prefix   = "pwlab-"
	stateDir = "/run/pwlab"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// options are the lab's shape.
type options struct {
	mode    string // ip6, eth or evpn
	encrypt string // none or wireguard
}

func (o options) String() string {
	what := o.mode + " mode"
	if o.mode == "evpn" {
		what = "three-site BGP EVPN with FRR"
	}
	if o.encrypt == "wireguard" {
		return what + " inside WireGuard"
	}
	return what
}

func run(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: pwlab demo|up|down [--mode ip6|eth|evpn] [--encrypt none|wireguard]")
		return 2
	}
	fs := flag.NewFlagSet("pwlab "+args[0], flag.ContinueOnError)
	var o options
	fs.StringVar(&o.mode, "mode", "ip6", "pseudowire mode ip6 or eth, or evpn: three VXLAN sites with BGP EVPN")
	fs.StringVar(&o.encrypt, "encrypt", "none", "none, or wireguard: the pseudowire (ip6 mode) or the VTEPs (evpn) inside WireGuard")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	switch {
	case o.mode != "ip6" && o.mode != "eth" && o.mode != "evpn":
		fmt.Fprintf(os.Stderr, "pwlab: --mode %q: want ip6, eth or evpn\n", o.mode)
		return 2
	case o.encrypt != "none" && o.encrypt != "wireguard":
		fmt.Fprintf(os.Stderr, "pwlab: --encrypt %q: want none or wireguard\n", o.encrypt)
		return 2
	case o.encrypt == "wireguard" && o.mode == "eth":
		fmt.Fprintln(os.Stderr, "pwlab: --encrypt wireguard runs in ip6 or evpn mode")
		return 2
	}
	if err := preflight(); err != nil {
		fmt.Fprintf(os.Stderr, "pwlab: %v\n", err)
		return 1
	}
	var err error
	switch args[0] {
	case "demo":
		err = demo(o)
	case "up":
		err = up(o)
	case "down":
		err = down()
	default:
		fmt.Fprintf(os.Stderr, "pwlab: unknown command %q (want demo, up or down)\n", args[0])
		return 2
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pwlab: %v\n", err)
		return 1
	}
	return 0
}

// preflight refuses early, before anything is built, what cannot work.
func preflight() error {
	if os.Geteuid() != 0 {
		return errors.New("must run as root: the lab creates network namespaces and attaches XDP programs")
	}
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("this kernel cannot open AF_XDP sockets (CONFIG_XDP_SOCKETS): %w", err)
	}
	unix.Close(fd)
	return nil
}

func bin(name string) string {
	exe, err := os.Executable()
	if err != nil {
		return name
	}
	return filepath.Join(filepath.Dir(exe), name)
}

// build makes the lab and starts both appliances; on error it has removed
// everything again.
func build(l *lab.Lab, o options, dir string) (*lab.Sites, error) {
	step("building the two-site lab (%s)", o)
	s, err := lab.NewSites(l, lab.SitesOptions{Mode: o.mode, Pwgated: bin("pwgated"), Dir: dir, STP: true, WireGuard: o.encrypt == "wireguard"})
	if err != nil {
		return nil, err
	}
	step("starting pwgated on both sites")
	for _, site := range []*lab.Site{s.A, s.B} {
		if err := s.StartPwgated(site); err != nil {
			return nil, err
		}
	}
	for _, site := range []*lab.Site{s.A, s.B} {
		if err := s.WaitReady(site, 30*time.Second); err != nil {
			return nil, err
		}
	}
	step("waiting for the hosts' STP bridges to forward")
	if err := s.WaitForwarding(20 * time.Second); err != nil {
		return nil, err
	}
	return s, nil
}

func step(format string, args ...any) {
	fmt.Printf("--- "+format+"\n", args...)
}

func show(s *lab.Sites, title, ns string, argv ...string) error {
	fmt.Printf("\n=== %s\n$ %s\n", title, strings.Join(argv, " "))
	out, err := s.Exec(ns, argv...)
	fmt.Print(out)
	return err
}

// demo builds the lab, shows it working and tears it down, also when
// interrupted.
func demo(o options) (err error) {
	if left, _ := lab.Leftovers(prefix); len(left) > 0 {
		return fmt.Errorf("a lab is up (%s): run make lab-down first", strings.Join(left, " "))
	}
	dir, err := os.MkdirTemp("", "pwlab")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	l := lab.New(prefix)
	defer func() {
		step("tearing down")
		if cerr := l.Close(); cerr != nil && err == nil {
			err = cerr
		}
		// Whatever a step interrupted half-way may have made: sweep.
		lab.Teardown(prefix)
	}()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() {
		if o.mode == "evpn" {
			done <- runEVPNDemo(l, o, dir)
			return
		}
		done <- runDemo(l, o, dir)
	}()
	select {
	case err = <-done:
		return err
	case <-ctx.Done():
		fmt.Println("\ninterrupted")
		l.Close()
		select { // let the step in progress notice, briefly
		case <-done:
		case <-time.After(2 * time.Second):
		}
		return errors.New("interrupted")
	}
}

func runDemo(l *lab.Lab, o options, dir string) error {
	s, err := build(l, o, dir)
	if err != nil {
		return err
	}
	a, b := s.A, s.B
	net := map[string]string{"ip6": "router (radvd, 2001:db8:a::/64 | 2001:db8:b::/64)", "eth": "hub"}[o.mode]
	if o.encrypt == "wireguard" {
		net = "WireGuard over the " + net
	}
	fmt.Printf("\n    %s ── pwa ══ %s ══ pwb ── %s\n", a.HostIP, net, b.HostIP)
	type demoStep struct {
		title string
		ns    string
		argv  []string
	}
	steps := []demoStep{
		{"ping from host A to host B", a.Host, []string{"ping", "-c", "3", "-i", "0.3", b.HostIP}},
		{"fragmented ping: 1600-byte packets, don't fragment (1614-byte frames, split in two on the uplink)", a.Host,
			[]string{"ping", "-c", "3", "-i", "0.3", "-M", "do", "-s", "1572", b.HostIP}},
	}
	if o.encrypt == "wireguard" {
		steps = append(steps,
			demoStep{"full-size frames through WireGuard: 1500-byte packets, don't fragment (the hosts keep MTU 1500; the tunnel's is 1420)", a.Host,
				[]string{"ping", "-c", "3", "-i", "0.3", "-M", "do", "-s", "1472", b.HostIP}},
			demoStep{"pwctl wg on site A", a.PW, []string{bin("pwctl"), "--socket", a.Socket, "wg"}},
			demoStep{"the host's own traffic over the overlay: site A pings site B's pwwg0", a.PW, []string{"ping", "-c", "2", "-i", "0.3", lab.OverlayB}})
	}
	steps = append(steps,
		demoStep{"pwctl status on site A", a.PW, []string{bin("pwctl"), "--socket", a.Socket, "status"}},
		demoStep{"pwctl stats on site A", a.PW, []string{bin("pwctl"), "--socket", a.Socket, "stats"}},
		demoStep{"pwctl stats on site B", b.PW, []string{bin("pwctl"), "--socket", b.Socket, "stats"}},
		demoStep{"check_pwbpdu on site B: BPDUs from site A's bridge over 5 s", b.PW, []string{bin("check_pwbpdu"), "--socket", b.Socket}})
	for _, st := range steps {
		if err := show(s, st.title, st.ns, st.argv...); err != nil {
			return fmt.Errorf("%s: %w", st.title, err)
		}
	}
	fmt.Println()
	return nil
}

// up builds the lab and leaves it running, its state in /run/pwlab.
func up(o options) error {
	if left, _ := lab.Leftovers(prefix); len(left) > 0 {
		return fmt.Errorf("a lab is already up (%s): run make lab-down first", strings.Join(left, " "))
	}
	os.RemoveAll(stateDir)
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return err
	}
	l := lab.New(prefix)
	l.Detach, l.LogDir = true, stateDir
	if o.mode == "evpn" {
		return upEVPN(l, o)
	}
	s, err := build(l, o, stateDir)
	if err != nil {
		l.Close()
		lab.Teardown(prefix)
		return err
	}
	l.Forget()
	pwctl, _ := filepath.Abs(bin("pwctl"))
	fmt.Printf(`
The lab is up (%s). Namespaces: %shosta, %spwa, %snet, %spwb, %shostb.
  ip netns exec %shosta ping %s
  ip netns exec %spwa %s --socket %s stats
  ip netns exec %spwb %s --socket %s status
  logs, configurations and sockets: %s
  make lab-down    to remove it
`, o, prefix, prefix, prefix, prefix, prefix, prefix, s.B.HostIP, prefix, pwctl, s.A.Socket, prefix, pwctl, s.B.Socket, stateDir)
	return nil
}

func down() error {
	err := lab.Teardown(prefix)
	os.RemoveAll(stateDir)
	if err == nil {
		step("lab removed")
	}
	if out, _ := exec.Command("pgrep", "-f", bin("pwgated")).Output(); len(out) > 0 {
		return fmt.Errorf("pwgated processes still running: %s", out)
	}
	return err
}
