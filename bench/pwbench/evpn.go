package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/control/bgp"
	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/dataplane/frame"
)

// The EVPN control plane's costs, measured end to end:
//
//   - churn: pwgated as a VTEP whose BGP neighbor (a GoBGP speaker run by
//     this program in the wan namespace) announces churnMACs MACs behind
//     two VTEPs and then moves churnRate of them a second; the encap
//     direction's frames go to those MACs. Frames/s with and without the
//     churn, in one run.
//   - install: the EVPN lab with an FRR site; FRR learns installMACs MACs
//     on its LAN port (bridge fdb entries, as if hosts had sent) and
//     announces them; the time until pwgate's forwarding database has them
//     all.
const (
	dutPWEVPN   = "pwgate-vxlan-evpn"
	churnMACs   = 10000
	churnRate   = 1000 // moves a second
	installMACs = 10000
	churnASN    = 65000
)

// The ARP storm: requests from the lan for arpKnown, which the churn
// speaker announces in a MAC+IP route (answered by pwgate, not flooded),
// and for arpUnknown, which no route names (flooded to churnVTEPs VTEPs,
// as every request was before ARP suppression).
var (
	arpSender  = netip.MustParseAddr("10.99.255.1")
	arpKnown   = netip.MustParseAddr("10.99.0.1")
	arpUnknown = netip.MustParseAddr("10.99.0.2")
	arpMAC     = frame.MAC{0x02, 0xbb, 0xff, 0, 0, 1}
)

// churnVTEPs is how many VTEPs the churn speaker announces (IMET routes).
const churnVTEPs = 2

// macChurn is the i-th MAC the churn speaker announces.
func macChurn(i int) frame.MAC { return frame.MAC{0x02, 0xbb, 0, 0, byte(i >> 8), byte(i)} }

// evpnResult is what the EVPN phase measured.
type evpnResult struct {
	Churn         *churnResult `json:"churn,omitempty"`
	FRRInstall    float64      `json:"frr_10k_install_seconds"`
	FRRMACs       int          `json:"frr_macs_installed"`
	InstallDetail string       `json:"install_detail,omitempty"`
	Error         string       `json:"error,omitempty"`
}

// churnResult is the churn measurement (shared layout: pwgated, control
// plane included, on the DUT core). This VM's two cores cannot give the
// control plane a core of its own as the appliance does (the busy layout
// puts it with the encap generator, which it then starves), so besides the
// one-core frame rates it reports the encap thread's own CPU per frame,
// which is what decides the rate on a core of its own, and the control
// plane's CPU per move.
type churnResult struct {
	BaseFPS       float64 `json:"fps_without_churn"`
	ChurnFPS      float64 `json:"fps_with_churn"`
	BaseEncapNS   float64 `json:"encap_thread_ns_per_frame_without"`
	ChurnEncapNS  float64 `json:"encap_thread_ns_per_frame_with"`
	ControlPerMov float64 `json:"control_plane_us_per_move"`
	MovesPerSec   float64 `json:"moves_per_second"`
	GoBGPInstall  float64 `json:"gobgp_10k_install_seconds"`
	// The ARP storm (64-byte requests at the generator's rate): for a known
	// address, answered by pwgate; for an unknown one, flooded. Frames/s
	// handled, the encap thread's CPU per request, and what each request
	// became: answers on the lan side, VXLAN copies to the VTEPs.
	ARPFPS, ARPEncapNS, ARPAnswers, ARPCopies         float64 `json:",omitempty"`
	FloodFPS, FloodEncapNS, FloodAnswers, FloodCopies float64 `json:",omitempty"`
	Profile                                           string  `json:"pprof_top,omitempty"` // pwgated during the runs
}

// startEVPN starts pwgated as a VTEP with a BGP neighbor at addrS0 (in the
// wan namespace) and no static remotes; the neighbor's routes are above
// the default prefix limit, so it has a limit of its own.
func (t *topo) startEVPN(bin, profile, c string) error {
	c += fmt.Sprintf("local:\n  address: %s/64\nvxlan:\n  vnis:\n    - vni: 42\n  udp6_zero_checksum_tx: true\n  udp6_zero_checksum_rx: true\n"+
		"bgp:\n  asn: %d\n  router_id: 10.255.0.1\n  neighbors:\n    - address: %s\n      asn: %d\n      max_prefix: %d\n", addrUL, churnASN, addrS0, churnASN, 2*churnMACs)
	cmds := []string{"ip -6 addr add " + addrUL.String() + "/64 dev ul0 nodad"}
	for _, v := range vteps[1:] {
		cmds = append(cmds, "ip -6 neigh add "+v.String()+" lladdr "+macS0.String()+" dev ul0 nud permanent")
	}
	if err := t.l.Script("dut", cmds...); err != nil {
		return err
	}
	// The speaker's side: its address on s0 (NDP works; the sink passes
	// everything but test traffic).
	if err := t.l.Script("wan", "ip -6 addr add "+addrS0.String()+"/64 dev s0 nodad"); err != nil {
		return err
	}
	t.varyDst = true
	return t.runPwgated(bin, profile, c)
}

// remoteMACs returns how many remote MACs pwgated's forwarding database holds.
func remoteMACs(socket string) int {
	st, err := client.FetchStatus(socket, time.Second)
	if err != nil || st.EVPN == nil {
		return -1
	}
	return st.EVPN.MACs.Remote
}

func waitMACs(socket string, n int, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	for time.Since(start) < timeout {
		if remoteMACs(socket) >= n {
			return time.Since(start), nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return 0, fmt.Errorf("%d of %d MACs in the forwarding database after %v", remoteMACs(socket), n, timeout)
}

// evpnBench runs both measurements.
func evpnBench(bin, dir string, dur time.Duration) *evpnResult {
	r := &evpnResult{Churn: &churnResult{}}
	if err := churnBench(r.Churn, bin, filepath.Join(dir, "churn"), dur); err != nil {
		r.Error, r.Churn = "churn: "+err.Error(), nil
	}
	if err := installBench(r, bin, filepath.Join(dir, "install")); err != nil {
		r.Error = strings.TrimPrefix(r.Error+"; install: "+err.Error(), "; ")
	}
	return r
}

func churnBench(r *churnResult, bin, dir string, dur time.Duration) error {
	prof := filepath.Join(dir, "pwgated.pprof")
	t, err := build(dutPWEVPN, layoutShared, dir, bin, prof)
	if err != nil {
		return err
	}
	defer func() {
		t.close()
		r.Profile = pprofTop(filepath.Join(bin, "pwgated"), prof)
	}()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	startFile := filepath.Join(dir, "start-churn")
	sp, err := t.l.Start("wan", "taskset", "-c", fmt.Sprint(genCore), self, "bgp-churn", "-start", startFile)
	if err != nil {
		return err
	}
	defer func() {
		sp.Signal(syscall.SIGTERM)
		sp.Wait(5 * time.Second)
		fmt.Print(sp.Out.String())
	}()
	took, err := waitMACs(t.socket, churnMACs, 60*time.Second)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, sp.Out.String())
	}
	r.GoBGPInstall = took.Seconds() // from the session's start: an upper bound
	c := caseSpec{DUT: dutPWEVPN, Gen: genXDP, Layout: layoutShared, Size: 64, Direction: dirEncap}
	base := t.run(c, dur, nil)
	if base.Error != "" {
		return errors.New(base.Error)
	}
	if base.FPS == 0 {
		cs, _ := client.FetchCounters(t.socket, time.Second)
		var nz []string
		for _, x := range cs {
			if x.Value != 0 {
				nz = append(nz, fmt.Sprintf("%s=%d", x.Name, x.Value))
			}
		}
		return fmt.Errorf("nothing delivered; counters: %s", strings.Join(nz, " "))
	}
	r.BaseFPS, r.BaseEncapNS = base.FPS, base.Split.Encap
	if err := arpStorm(r, t, c, dur); err != nil {
		return err
	}
	before := counter(t.socket, "evpn_macs_moved")
	if err := os.WriteFile(startFile, nil, 0o644); err != nil {
		return err
	}
	time.Sleep(time.Second)
	at := time.Now()
	churn := t.run(c, dur, nil)
	r.MovesPerSec = float64(counter(t.socket, "evpn_macs_moved")-before) / (time.Since(at).Seconds() + 1)
	if churn.Error != "" {
		return errors.New(churn.Error)
	}
	r.ChurnFPS, r.ChurnEncapNS = churn.FPS, churn.Split.Encap
	if r.MovesPerSec > 0 {
		// pwgated's other threads (GoBGP, the controller, the runtime),
		// per second, above the quiet run's.
		r.ControlPerMov = max(0, churn.Split.Main*churn.FPS-base.Split.Main*base.FPS) / r.MovesPerSec / 1000
	}
	fmt.Printf("evpn churn: %.0f kfps without, %.0f kfps with %.0f moves/s (%.2f×) on one core; encap thread %.0f → %.0f ns/frame; control plane %.0f µs/move; 10k MACs from GoBGP in %.2f s\n",
		base.FPS/1000, churn.FPS/1000, r.MovesPerSec, churn.FPS/max(1, base.FPS), r.BaseEncapNS, r.ChurnEncapNS, r.ControlPerMov, r.GoBGPInstall)
	return nil
}

// arpStorm measures ARP requests for a known address (answered) and an
// unknown one (flooded) on the churn topology, before the churn.
func arpStorm(r *churnResult, t *topo, c caseSpec, dur time.Duration) error {
	defer func() { t.arpFor = netip.Addr{} }()
	for _, x := range []struct {
		target                      netip.Addr
		fps, encap, answers, copies *float64
	}{{arpKnown, &r.ARPFPS, &r.ARPEncapNS, &r.ARPAnswers, &r.ARPCopies}, {arpUnknown, &r.FloodFPS, &r.FloodEncapNS, &r.FloodAnswers, &r.FloodCopies}} {
		t.arpFor = x.target
		a := t.run(c, dur, nil)
		if a.Error != "" {
			return fmt.Errorf("arp for %s: %s", x.target, a.Error)
		}
		*x.fps, *x.encap, *x.answers, *x.copies = a.FPS, a.Split.Encap, a.AnsweredPerRequest, a.CopiesPerRequest
	}
	fmt.Printf("evpn arp storm: for a known address %.0f kfps, %.2f answers and %.2f VXLAN copies a request, encap thread %.0f ns/request; "+
		"for an unknown one %.0f kfps, %.2f answers and %.2f copies, %.0f ns/request; forwarding a frame %.0f ns\n",
		r.ARPFPS/1000, r.ARPAnswers, r.ARPCopies, r.ARPEncapNS, r.FloodFPS/1000, r.FloodAnswers, r.FloodCopies, r.FloodEncapNS, r.BaseEncapNS)
	return nil
}

func counter(socket, name string) uint64 {
	cs, _ := client.FetchCounters(socket, time.Second)
	for _, c := range cs {
		if c.Name == name {
			return c.Value
		}
	}
	return 0
}

// installBench times FRR's MACs into pwgate's forwarding database.
func installBench(r *evpnResult, bin, dir string) error {
	if _, err := os.Stat("/usr/lib/frr/bgpd"); err != nil {
		return fmt.Errorf("FRR is not installed")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	l := lab.New(prefix)
	defer l.Close()
	// FRR's MAC routes are more than the default max_prefix: an operator
	// with that many MACs raises it as here.
	e, err := lab.NewEVPN(l, lab.EVPNOptions{Pwgated: filepath.Join(bin, "pwgated"), Dir: dir, FRR: true, MaxPrefix: 4 * max(churnMACs, installMACs)})
	if err != nil {
		return err
	}
	if err := e.StartPwgated(e.A, e.B); err != nil {
		return err
	}
	if err := e.WaitSessions(45 * time.Second); err != nil {
		return err
	}
	before := remoteMACs(e.A.Socket)
	var b strings.Builder
	for i := range installMACs {
		fmt.Fprintf(&b, "fdb add 02:cd:00:00:%02x:%02x dev lan master dynamic\n", i>>8, i&0xff)
	}
	batch := filepath.Join(dir, "fdb.batch")
	if err := os.WriteFile(batch, []byte(b.String()), 0o644); err != nil {
		return err
	}
	start := time.Now()
	if _, err := e.Exec(e.C.NS, "bridge", "-batch", batch); err != nil {
		return err
	}
	batchTook := time.Since(start)
	_, err = waitMACs(e.A.Socket, before+installMACs, 60*time.Second)
	r.FRRMACs = remoteMACs(e.A.Socket) - before
	if err != nil {
		return err
	}
	r.FRRInstall = time.Since(start).Seconds()
	r.InstallDetail = fmt.Sprintf("from the first bridge fdb add on FRR's site (the batch itself took %.2f s) to the last MAC in pwgate's forwarding database", batchTook.Seconds())
	fmt.Printf("evpn install: %d MACs from FRR in pwgate's forwarding database in %.2f s\n", r.FRRMACs, r.FRRInstall)
	return nil
}

// runChurn is "pwbench bgp-churn": a GoBGP speaker at addrS0 (run in the
// wan namespace) announcing churnMACs MACs behind two VTEPs, then, once
// the start file exists, moving churnRate a second (each to the other VTEP,
// with the next sequence number, as RFC 7432 §15 has it), until SIGTERM.
func runChurn(args []string) error {
	fs := flag.NewFlagSet("bgp-churn", flag.ContinueOnError)
	start := fs.String("start", "", "file whose appearance starts the moves")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sp := bgp.NewGoBGP(log)
	err := sp.Start(bgp.Config{ASN: churnASN, RouterID: netip.MustParseAddr("10.255.0.2"), ListenAddrs: []netip.Addr{addrS0},
		Neighbors: []bgp.Neighbor{{Address: addrUL, ASN: churnASN, Source: addrS0, Families: []bgp.Family{bgp.EVPN}}}},
		func([]bgp.Update) {})
	if err != nil {
		return err
	}
	defer sp.Stop(false)
	rt := []bgp.RT{bgp.AutoRT(churnASN, 42)}
	rd := func(v int) string { return fmt.Sprintf("10.255.0.%d:1", v+2) }
	for v := range churnVTEPs {
		if err := sp.Announce(bgp.Route{Kind: bgp.IMET, RD: rd(v), VNI: 42, RTs: rt, NextHop: vteps[v]}); err != nil {
			return err
		}
	}
	if err := sp.Announce(bgp.Route{Kind: bgp.MACIP, RD: rd(0), MAC: arpMAC, IP: arpKnown, VNI: 42, RTs: rt, NextHop: vteps[0]}); err != nil {
		return err
	}
	where := make([]int, churnMACs)
	seq := make([]uint32, churnMACs)
	route := func(i int) bgp.Route {
		return bgp.Route{Kind: bgp.MACIP, RD: rd(where[i]), MAC: macChurn(i), VNI: 42, RTs: rt, Seq: seq[i], NextHop: vteps[where[i]]}
	}
	for i := range churnMACs {
		if err := sp.Announce(route(i)); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	for {
		if _, err := os.Stat(*start); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(50 * time.Millisecond):
		}
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	began, moves := time.Now(), 0
	defer func() {
		fmt.Printf("bgp-churn: %d moves in %.1f s: %.0f a second\n", moves, time.Since(began).Seconds(), float64(moves)/time.Since(began).Seconds())
	}()
	for i := 0; ; {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		for range churnRate / 100 {
			old := route(i)
			where[i], seq[i] = 1-where[i], seq[i]+1
			sp.Announce(route(i))
			sp.Withdraw(old)
			i, moves = (i+1)%churnMACs, moves+1
		}
	}
}
