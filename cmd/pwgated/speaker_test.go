package main

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/control/bgp"
	"github.com/pwgate/pwgate/dataplane/frame"
)

// speakerEnv, when set, makes the test binary a BGP neighbor under a
// test's control (runSpeaker) instead of running tests: a real GoBGP, run
// as a process of its own inside a lab namespace, so that every socket it
// opens is in that namespace.
const speakerEnv = "PWGATE_TEST_SPEAKER"

// runSpeaker is the neighbor's main: the environment says its address and
// the neighbor it peers with ("10.0.0.9 10.0.0.1": iBGP in the EVPN lab's
// AS, l2vpn-evpn), optionally their ASNs ("10.9.0.3 10.9.0.1 65200 65000":
// eBGP, ipv4-unicast); each line on standard input is a command, answered
// by "ok ..." or "error ..." on standard output:
//
//	vip PREFIX NEXTHOP MED     a unicast route to PREFIX via NEXTHOP
//	imet VTEP                  a flood route of VNI 101 with VTEP as next hop
//	vteps N FIRST              N flood routes, VTEPs FIRST, FIRST+1, ...
//	macs N VTEP                N MAC routes of VNI 101 behind VTEP
//	flap RATE SECONDS VTEP     a MAC route announced and withdrawn RATE times a second
//	withdraw                   every route announced so far withdrawn
func runSpeaker() int {
	f := strings.Fields(os.Getenv(speakerEnv))
	if len(f) != 2 && len(f) != 4 {
		fmt.Fprintln(os.Stderr, "speaker: want LOCAL NEIGHBOR [LOCAL-ASN NEIGHBOR-ASN] in", speakerEnv)
		return 2
	}
	local, nb := netip.MustParseAddr(f[0]), netip.MustParseAddr(f[1])
	asn, nbASN, fam := uint32(lab.EVPNASN), uint32(lab.EVPNASN), bgp.EVPN
	if len(f) == 4 {
		a, _ := strconv.Atoi(f[2])
		b, _ := strconv.Atoi(f[3])
		asn, nbASN, fam = uint32(a), uint32(b), bgp.IPv4Unicast
	}
	sp := bgp.NewGoBGP(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	err := sp.Start(bgp.Config{ASN: asn, RouterID: local, ListenAddrs: []netip.Addr{local},
		Neighbors: []bgp.Neighbor{{Address: nb, ASN: nbASN, HoldTime: 9, Keepalive: 3, Families: []bgp.Family{fam}, Source: local}}},
		func([]bgp.Update) {})
	if err != nil {
		fmt.Fprintln(os.Stderr, "speaker:", err)
		return 1
	}
	defer sp.Stop(false)
	var sent []bgp.Route
	rt := []bgp.RT{bgp.AutoRT(lab.EVPNASN, lab.EVPNVNI)}
	imet := func(vtep netip.Addr) bgp.Route {
		return bgp.Route{Kind: bgp.IMET, RD: vtep.String() + ":1", VNI: lab.EVPNVNI, RTs: rt, NextHop: vtep}
	}
	mac := func(vtep netip.Addr, i int) bgp.Route {
		m := frame.MAC{0x02, 0x66, 0, byte(i >> 16), byte(i >> 8), byte(i)}
		return bgp.Route{Kind: bgp.MACIP, RD: vtep.String() + ":1", MAC: m, VNI: lab.EVPNVNI, RTs: rt, NextHop: vtep}
	}
	announce := func(rs ...bgp.Route) error {
		for _, r := range rs {
			if err := sp.Announce(r); err != nil {
				return err
			}
			sent = append(sent, r)
		}
		return nil
	}
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		args := strings.Fields(in.Text())
		num := func(i int) int { n, _ := strconv.Atoi(args[i]); return n }
		var err error
		switch {
		case len(args) == 4 && args[0] == "vip":
			err = announce(bgp.Route{Kind: bgp.Prefix, Prefix: netip.MustParsePrefix(args[1]), NextHop: netip.MustParseAddr(args[2]),
				MED: uint32(num(3)), HasMED: true})
		case len(args) == 2 && args[0] == "imet":
			err = announce(imet(netip.MustParseAddr(args[1])))
		case len(args) == 3 && args[0] == "vteps":
			a := netip.MustParseAddr(args[2])
			for range num(1) {
				if err = announce(imet(a)); err != nil {
					break
				}
				a = a.Next()
			}
		case len(args) == 3 && args[0] == "macs":
			vtep := netip.MustParseAddr(args[2])
			for i := range num(1) {
				if err = announce(mac(vtep, i)); err != nil {
					break
				}
			}
		case len(args) == 4 && args[0] == "flap":
			vtep := netip.MustParseAddr(args[3])
			tick := time.NewTicker(time.Second / time.Duration(num(1)))
			for i, end := 0, time.Now().Add(time.Duration(num(2))*time.Second); time.Now().Before(end) && err == nil; i++ {
				<-tick.C
				r := mac(vtep, 1_000_000+i%8)
				if i%16 < 8 {
					err = sp.Announce(r)
				} else {
					err = sp.Withdraw(r)
				}
			}
			tick.Stop()
		case len(args) == 1 && args[0] == "withdraw":
			for _, r := range sent {
				if err = sp.Withdraw(r); err != nil {
					break
				}
			}
			sent = nil
		default:
			err = fmt.Errorf("unknown command %q", in.Text())
		}
		if err != nil {
			fmt.Println("error", err)
			continue
		}
		fmt.Println("ok", len(sent))
	}
	return 0
}

// speaker is a running neighbor (runSpeaker) seen from the test.
type speaker struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// startSpeaker starts a neighbor at local in lab namespace ns, peering
// with nb (and, if given, "LOCAL-ASN NEIGHBOR-ASN" for eBGP over
// ipv4-unicast); it is stopped when the test ends.
func startSpeaker(t *testing.T, l *lab.Lab, ns, local, nb string, asns ...string) *speaker {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", l.NS(ns), self)
	cmd.Env = append(os.Environ(), speakerEnv+"="+strings.Join(append([]string{local, nb}, asns...), " "))
	cmd.Stderr = os.Stderr
	s := &speaker{cmd: cmd}
	if s.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.out = bufio.NewScanner(out)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return s
}

// do sends one command and waits for its answer.
func (s *speaker) do(t *testing.T, format string, args ...any) {
	t.Helper()
	fmt.Fprintf(s.in, format+"\n", args...)
	if !s.out.Scan() {
		t.Fatalf("speaker: no answer to %q", fmt.Sprintf(format, args...))
	}
	if a := s.out.Text(); !strings.HasPrefix(a, "ok") {
		t.Fatalf("speaker: %q: %s", fmt.Sprintf(format, args...), a)
	}
}

// stop ends the neighbor: its session goes down and its routes with it.
func (s *speaker) stop() {
	s.in.Close()
	s.cmd.Process.Kill()
	s.cmd.Wait()
}
