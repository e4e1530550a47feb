package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/bpf"
	"github.com/pwgate/pwgate/control/anycast"
	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/dataplane/frame"
)

// The anycast phase:
//
//   - remap: how many existing flows change server when one of N servers
//     leaves (N = 3 and 8), for pwgate's XDP forwarder (its Maglev table
//     alone, as a forwarder that just started sees it, and with its flow
//     table) and for the kernel's multipath routes (hash-threshold ECMP
//     with fib_multipath_hash_policy 1, and a resilient nexthop group),
//     all asked about the same remapFlows TCP flows: pwgate's program by
//     BPF_PROG_RUN, the kernel by "ip route get … ipproto tcp sport …";
//     each server leaves in turn and the results are averaged.
//   - checks: the CPU one pwgated announcer uses for checkVIPs VIPs with
//     HTTP checks every second against a local server.
const (
	remapFlows = 4000
	// synFlows established flows meet synFloodSYNs SYNs (more than the
	// 262,144 flows the flow table holds).
	synFlows     = 10000
	synFloodSYNs = 400000
	// checkVIPs: each of the 3 servers' announcers checks its 100 VIPs;
	// checkVIPsAll: all 300 checks in one announcer, for comparison.
	checkVIPs    = 100
	checkVIPsAll = 300
)

type anycastResult struct {
	Remap []remapRow `json:"remap"`
	// SYNFloodKept is the fraction of established flows still on their
	// server after a SYN flood, SYNFloodRate the SYNs per second.
	SYNFloodKept float64 `json:"syn_flood_kept"`
	SYNFloodRate float64 `json:"syn_flood_rate"`
	// CheckCPU is one announcer's CPU for checkVIPs checks a second, in
	// percent of one core; CheckCPUAll for checkVIPsAll.
	CheckCPU    float64 `json:"check_cpu_percent"`
	CheckCPUAll float64 `json:"check_cpu_all_percent"`
	Error       string  `json:"error,omitempty"`
}

// remapRow is one way of spreading flows, N servers, one leaving.
type remapRow struct {
	Method  string `json:"method"`
	Servers int    `json:"servers"`
	// Moved is the fraction of all flows whose server changed (the
	// leaving server's included: they must move); Disrupted the fraction
	// of the staying servers' flows that moved.
	Moved     float64 `json:"moved"`
	Disrupted float64 `json:"disrupted"`
}

func anycastBench(bin, dir string) *anycastResult {
	r := &anycastResult{}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.Error = err.Error()
		return r
	}
	for _, n := range []int{3, 8} {
		// Every server leaves in turn; the rows are the averages.
		sum := map[string]*remapRow{}
		var order []string
		for gone := range n {
			rows, err := remapPwgate(n, gone)
			if err == nil {
				var k []remapRow
				k, err = remapKernel(bin, dir, n, gone)
				rows = append(rows, k...)
			}
			if err != nil {
				r.Error = err.Error()
				return r
			}
			for _, x := range rows {
				if sum[x.Method] == nil {
					sum[x.Method] = &remapRow{Method: x.Method, Servers: n}
					order = append(order, x.Method)
				}
				sum[x.Method].Moved += x.Moved / float64(n)
				sum[x.Method].Disrupted += x.Disrupted / float64(n)
			}
		}
		for _, m := range order {
			r.Remap = append(r.Remap, *sum[m])
		}
	}
	for _, row := range r.Remap {
		fmt.Printf("  %-34s %d servers: %5.1f%% of flows moved, %4.1f%% of the staying servers' flows\n", row.Method, row.Servers, 100*row.Moved, 100*row.Disrupted)
	}
	kept, rate, err := synFlood()
	if err != nil {
		r.Error = err.Error()
		return r
	}
	r.SYNFloodKept, r.SYNFloodRate = kept, rate
	fmt.Printf("  SYN flood: %d SYNs from spoofed sources at %.0f k/s kept %.1f%% of %d established flows on their server (one of 3 draining)\n",
		synFloodSYNs, rate/1e3, 100*kept, synFlows)
	for _, x := range []struct {
		n   int
		dst *float64
	}{{checkVIPs, &r.CheckCPU}, {checkVIPsAll, &r.CheckCPUAll}} {
		cpu, err := checkCost(bin, dir, x.n)
		if err != nil {
			r.Error = err.Error()
			return r
		}
		*x.dst = cpu
		fmt.Printf("  health checks: %d HTTP checks a second cost the announcer %.2f%% of one core\n", x.n, cpu)
	}
	return r
}

// servers returns the indexes of n servers, and of those left when server
// gone leaves.
func servers(n, gone int) (all, rest []int) {
	for i := range n {
		all = append(all, i)
		if i != gone {
			rest = append(rest, i)
		}
	}
	return all, rest
}

// flow i: a client in 10.8.0.0/24 (10.8.0.3 to .252) and a source port.
func flowOf(i int) (netip.Addr, uint16) {
	return netip.AddrFrom4([4]byte{10, 8, 0, byte(3 + i%250)}), uint16(20000 + i/250)
}

func serverName(i int) string { return fmt.Sprintf("10.9.%d.2", i+1) }

// moved compares two assignments of the flows; gone is the server that
// left.
func moved(before, after []string, gone string) (all, staying float64) {
	var m, stay, stayMoved int
	for i := range before {
		if before[i] != after[i] {
			m++
		}
		if before[i] != gone {
			stay++
			if before[i] != after[i] {
				stayMoved++
			}
		}
	}
	return float64(m) / float64(len(before)), float64(stayMoved) / float64(max(stay, 1))
}

// remapPwgate runs the flows through pwgate's program; server gone
// leaves.
func remapPwgate(n, gone int) ([]remapRow, error) {
	load := func() (*bpf.Anycast, error) { return loadForwarder(n) }
	ring := setRing
	assign := func(a *bpf.Anycast) ([]string, error) {
		out := make([]string, remapFlows)
		for i := range out {
			src, sport := flowOf(i)
			frame := tcpFrame(src, netip.MustParseAddr(lab.AnycastVIP), sport, 80)
			res := make([]byte, len(frame))
			ret, err := a.Program().Run(&ebpf.RunOptions{Data: frame, DataOut: res})
			if err != nil {
				return nil, err
			}
			if ret != 4 { // XDP_REDIRECT
				return nil, fmt.Errorf("anycast program: verdict %d", ret)
			}
			out[i] = serverName(int(res[5]))
		}
		return out, nil
	}
	all, rest := servers(n, gone)
	a, err := load()
	if err != nil {
		return nil, err
	}
	defer a.Close()
	if err := ring(a, all); err != nil {
		return nil, err
	}
	before, err := assign(a)
	if err != nil {
		return nil, err
	}
	// The server leaves: its entry goes, the table moves on.
	if err := a.SetBackend(gone, bpf.Backend{}); err != nil {
		return nil, err
	}
	if err := ring(a, rest); err != nil {
		return nil, err
	}
	withTable, err := assign(a)
	if err != nil {
		return nil, err
	}
	// A forwarder that starts now: the table alone.
	b, err := load()
	if err != nil {
		return nil, err
	}
	defer b.Close()
	if err := ring(b, rest); err != nil {
		return nil, err
	}
	fresh, err := assign(b)
	if err != nil {
		return nil, err
	}
	m1, d1 := moved(before, fresh, serverName(gone))
	m2, d2 := moved(before, withTable, serverName(gone))
	return []remapRow{{"pwgate Maglev table (65537 slots)", n, m1, d1}, {"pwgate Maglev + flow table", n, m2, d2}}, nil
}

// loadForwarder loads pwgate's anycast program with the lab's VIP and n
// servers, for BPF_PROG_RUN.
func loadForwarder(n int) (*bpf.Anycast, error) {
	vip := netip.MustParsePrefix(lab.AnycastVIP + "/32")
	a, err := bpf.LoadAnycast(anycast.DefaultTableSize)
	if err != nil {
		return nil, err
	}
	// BPF_PROG_RUN's frames come in on the loopback device, to the zero
	// MAC tcpFrame writes.
	if err := a.SetPort(1, [6]byte{}); err != nil {
		a.Close()
		return nil, err
	}
	if err := a.SetVIP(vip, 0); err != nil {
		a.Close()
		return nil, err
	}
	for i := range n {
		if err := a.SetBackend(i, bpf.Backend{Ifindex: 1, Dst: [6]byte{2, 0, 0, 0, 0, byte(i)}}); err != nil {
			a.Close()
			return nil, err
		}
	}
	return a, nil
}

// setRing fills the VIP's Maglev table with servers.
func setRing(a *bpf.Anycast, servers []int) error {
	names := make([]string, len(servers))
	for i, s := range servers {
		names[i] = serverName(s)
	}
	tab := make([]int32, anycast.DefaultTableSize)
	if err := anycast.Maglev(tab, names); err != nil {
		return err
	}
	for i, v := range tab {
		tab[i] = int32(servers[v])
	}
	return a.SetRing(0, tab)
}

// synFlood measures what a SYN flood from spoofed sources does to
// established flows: synFlows flows are placed over 3 servers, one is
// drained (out of the table, keeping its flows), then synFloodSYNs SYNs
// from new sources go through the program as fast as BPF_PROG_RUN takes
// them; it returns the fraction of the established flows still on their
// server afterwards, and the SYNs per second.
func synFlood() (kept, rate float64, err error) {
	a, err := loadForwarder(3)
	if err != nil {
		return 0, 0, err
	}
	defer a.Close()
	if err := setRing(a, []int{0, 1, 2}); err != nil {
		return 0, 0, err
	}
	run := func(frame []byte) (int, error) {
		res := make([]byte, len(frame))
		ret, err := a.Program().Run(&ebpf.RunOptions{Data: frame, DataOut: res})
		if err == nil && ret != 4 { // XDP_REDIRECT
			err = fmt.Errorf("anycast program: verdict %d", ret)
		}
		return int(res[5]), err
	}
	vip := netip.MustParseAddr(lab.AnycastVIP)
	before := make([]int, synFlows)
	for i := range before {
		src, sport := flowOf(i)
		if before[i], err = run(tcpFrame(src, vip, sport, 80)); err != nil {
			return 0, 0, err
		}
	}
	if err := setRing(a, []int{1, 2}); err != nil { // server 0 drains
		return 0, 0, err
	}
	syn := tcpFrame(netip.MustParseAddr("198.18.0.0"), vip, 0, 80)
	syn[14+20+13] = 0x02
	t0 := time.Now()
	for i := range synFloodSYNs {
		binary.BigEndian.PutUint16(syn[14+12+2:], uint16(i>>16))
		binary.BigEndian.PutUint16(syn[14+20:], uint16(i))
		if _, err := run(syn); err != nil {
			return 0, 0, err
		}
	}
	rate = synFloodSYNs / time.Since(t0).Seconds()
	n := 0
	for i, b := range before {
		src, sport := flowOf(i)
		s, err := run(tcpFrame(src, vip, sport, 80))
		if err != nil {
			return 0, 0, err
		}
		if s == b {
			n++
		}
	}
	return float64(n) / synFlows, rate, nil
}

// tcpFrame is an Ethernet frame with an IPv4 TCP segment of an
// established connection (ACK): the flows whose server a leaving server
// changes, or not. (A SYN would open a new connection, which the
// forwarder places by its table whatever the flow table says.)
func tcpFrame(src, dst netip.Addr, sport, dport uint16) []byte {
	f := make([]byte, 14+20+20)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], 40)
	s, d := src.As4(), dst.As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp, sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	tcp[12], tcp[13] = 5<<4, 0x10
	return f
}

// remapKernel asks the kernel of a forwarder namespace (the anycast lab,
// bare) which next hop each flow takes, before and after a server leaves.
func remapKernel(bin, dir string, n, gone int) ([]remapRow, error) {
	l := lab.New(prefix)
	defer l.Close()
	a, err := lab.NewAnycast(l, lab.AnycastOptions{Pwgated: filepath.Join(bin, "pwgated"), Dir: dir, Servers: n, Bare: true})
	if err != nil {
		return nil, err
	}
	var batch strings.Builder
	for i := range remapFlows {
		src, sport := flowOf(i)
		fmt.Fprintf(&batch, "route get %s from %s iif c0 ipproto tcp sport %d dport 80\n", lab.AnycastVIP, src, sport)
	}
	file := filepath.Join(dir, "flows.batch")
	if err := os.WriteFile(file, []byte(batch.String()), 0o644); err != nil {
		return nil, err
	}
	assign := func() ([]string, error) {
		out, err := a.Exec("fwd", "ip", "-batch", file)
		if err != nil {
			return nil, err
		}
		var via []string
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			for i := 0; i+1 < len(f); i++ {
				if f[i] == "via" {
					via = append(via, f[i+1])
					break
				}
			}
		}
		if len(via) != remapFlows {
			return nil, fmt.Errorf("ip route get answered %d of %d flows: %.300s", len(via), remapFlows, out)
		}
		return via, nil
	}
	ecmp := func(servers []int) string {
		cmd := "ip route replace " + lab.AnycastVIP + "/32"
		for _, s := range servers {
			cmd += " nexthop via " + serverName(s)
		}
		return cmd
	}
	all, rest := servers(n, gone)
	var rows []remapRow
	// Hash-threshold ECMP.
	if err := a.Script("fwd", ecmp(all)); err != nil {
		return nil, err
	}
	before, err := assign()
	if err != nil {
		return nil, err
	}
	if err := a.Script("fwd", ecmp(rest)); err != nil {
		return nil, err
	}
	after, err := assign()
	if err != nil {
		return nil, err
	}
	m, d := moved(before, after, serverName(gone))
	rows = append(rows, remapRow{"kernel ECMP (hash policy 1)", n, m, d})
	// A resilient nexthop group.
	cmds := []string{"ip route del " + lab.AnycastVIP + "/32"}
	group := ""
	for i := range all {
		cmds = append(cmds, fmt.Sprintf("ip nexthop add id %d via %s dev s%d", i+1, serverName(i), i+1))
		if group != "" {
			group += "/"
		}
		group += fmt.Sprint(i + 1)
	}
	cmds = append(cmds, "ip nexthop add id 100 group "+group+" type resilient buckets 512 idle_timer 0",
		"ip route replace "+lab.AnycastVIP+"/32 nhid 100")
	if err := a.Script("fwd", cmds...); err != nil {
		return nil, err
	}
	if before, err = assign(); err != nil {
		return nil, err
	}
	if err := a.Script("fwd", fmt.Sprintf("ip nexthop del id %d", gone+1)); err != nil {
		return nil, err
	}
	if after, err = assign(); err != nil {
		return nil, err
	}
	m, d = moved(before, after, serverName(gone))
	rows = append(rows, remapRow{"kernel resilient group (512 buckets)", n, m, d})
	return rows, nil
}

// checkCost runs one announcer with n VIPs, each an HTTP check a second
// against a local server of its own, and reads its CPU time over 20 s.
func checkCost(bin, dir string, n int) (float64, error) {
	l := lab.New(prefix)
	defer l.Close()
	if err := l.AddNS("chk"); err != nil {
		return 0, err
	}
	if err := l.Script("chk", "ip link set lo up", "ip addr add 10.9.0.1/32 dev lo"); err != nil {
		return 0, err
	}
	// The checked server is this program's (a listener made in the
	// namespace): it must not be what fails.
	// Each VIP checks a port of its own (a service per VIP: the most
	// work for the announcer).
	for i := range n {
		var ln net.Listener
		if err := l.Do("chk", func() (err error) { ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 8000+i)); return }); err != nil {
			return 0, err
		}
		defer ln.Close()
		go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) }))
	}
	var b strings.Builder
	sock := filepath.Join(dir, "chk.sock")
	fmt.Fprintf(&b, "bgp:\n  asn: 65001\n  router_id: 10.9.0.1\n  neighbors:\n    - address: 10.9.0.2\n      asn: 65000\nanycast:\n  vips:\n")
	for i := range n {
		fmt.Fprintf(&b, "    - prefix: 198.18.%d.%d/32\n      check:\n        http: http://127.0.0.1:%d/health\n      interval: 1s\n", i/250, 1+i%250, 8000+i)
	}
	fmt.Fprintf(&b, "stats:\n  socket: %s\n", sock)
	conf := filepath.Join(dir, "chk.yaml")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		return 0, err
	}
	args := []string{filepath.Join(bin, "pwgated"), "--config", conf}
	if f := os.Getenv("PWBENCH_CHECK_PROFILE"); f != "" {
		args = append(args, "--cpuprofile", f) // written when pwgated stops
	}
	p, err := l.Start("chk", args...)
	if err != nil {
		return 0, err
	}
	if err := lab.WaitPwgated(p, sock, true, 15*time.Second); err != nil {
		return 0, err
	}
	time.Sleep(5 * time.Second) // every VIP checked a few times
	pid := fmt.Sprint(p.Cmd.Process.Pid)
	t0, c0 := time.Now(), taskTicks(pid)
	time.Sleep(20 * time.Second)
	t1, c1 := time.Now(), taskTicks(pid)
	s, err := client.FetchAnycast(sock, time.Second)
	if err != nil {
		return 0, err
	}
	var checks, failures uint64
	for _, v := range s.VIPs {
		checks += v.Checks
		failures += v.Failures
	}
	if len(s.VIPs) != n || checks < uint64(20*n) || failures > 0 {
		return 0, fmt.Errorf("the announcer did not check as asked: %d VIPs, %d checks, %d failed (%s)", len(s.VIPs), checks, failures, s.VIPs[0].LastError)
	}
	p.Signal(syscall.SIGTERM)
	p.Wait(10 * time.Second)
	return 100 * float64(c1-c0) * tick.Seconds() / t1.Sub(t0).Seconds(), nil
}

// The forwarder's throughput: VIP traffic from the lan side (the clients)
// through the DUT to three servers' next hops behind ul0 (all on s0, whose
// sink counts them), by pwgate's XDP forwarder and by the kernel's
// forwarding with a resilient nexthop group, in the same run. The
// generator varies the UDP source port over its flows.
const (
	dutAnycast   = "pwgate-anycast"
	dutKernelRes = "kernel-resilient"
	anycastVIP   = "192.0.2.80"
)

// anycastServers are the servers' next hops, all on s0.
var anycastServers = []string{"10.20.0.2", "10.20.0.3", "10.20.0.4"}

func isAnycast(kind string) bool { return kind == dutAnycast || kind == dutKernelRes }

// vipFrame is an n-byte Ethernet frame from a client to the VIP: IPv4,
// UDP to port 9 without a checksum (so that varying the source port keeps
// it valid). Its source port is at byte 34: the generator's field.
func vipFrame(n int) []byte {
	f := make([]byte, n)
	e := frame.Ethernet(f)
	e.SetDst(macDL0)
	e.SetSrc(macG0)
	e.SetEtherType(0x0800)
	ip := f[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(n-14))
	s, d := netip.MustParseAddr("10.30.0.2").As4(), netip.MustParseAddr(anycastVIP).As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	binary.BigEndian.PutUint16(ip[10:], frame.Fold(frame.Checksum(0, ip)))
	binary.BigEndian.PutUint16(f[34:], 1000)
	binary.BigEndian.PutUint16(f[36:], 9)
	binary.BigEndian.PutUint16(f[38:], uint16(n-34))
	return f
}

// vipFieldOff is what startXDP takes for the source port (it adds 4).
const vipFieldOff = 30

// buildAnycast sets up the DUT's addresses and either the kernel's route
// or pwgate's forwarder with three announcers in the wan namespace.
func (t *topo) buildAnycast(bin string) error {
	cmds := []string{"sysctl -qw net.ipv4.ip_forward=1", "ip addr add 10.30.0.1/24 dev dl0", "ip addr add 10.20.0.1/24 dev ul0",
		"ip neigh replace 10.30.0.2 lladdr " + macG0.String() + " dev dl0 nud permanent"}
	for _, s := range anycastServers {
		cmds = append(cmds, "ip neigh replace "+s+" lladdr "+macS0.String()+" dev ul0 nud permanent")
	}
	if err := t.l.Script("dut", cmds...); err != nil {
		return err
	}
	// The sink on s0 takes ARP replies (the EVPN phase's ARP storm
	// counts them), so the announcers could not resolve the DUT.
	wan := []string{"ip neigh replace 10.20.0.1 lladdr " + macUL0.String() + " dev s0 nud permanent"}
	for _, s := range anycastServers {
		wan = append(wan, "ip addr add "+s+"/24 dev s0")
	}
	if err := t.l.Script("wan", wan...); err != nil {
		return err
	}
	if t.kind == dutKernelRes {
		var nh []string
		group := []string{}
		for i, s := range anycastServers {
			nh = append(nh, fmt.Sprintf("ip nexthop add id %d via %s dev ul0", i+1, s))
			group = append(group, fmt.Sprint(i+1))
		}
		nh = append(nh, "ip nexthop add id 100 group "+strings.Join(group, "/")+" type resilient buckets 512 idle_timer 0",
			"ip route add "+anycastVIP+"/32 nhid 100")
		return t.l.Script("dut", nh...)
	}
	// Three announcers, one per server address, each announcing the VIP
	// with its own address as next hop.
	for i, s := range anycastServers {
		sock := filepath.Join(t.dir, fmt.Sprintf("ann%d.sock", i))
		c := fmt.Sprintf("bgp:\n  asn: %d\n  router_id: %s\n  listen: [%s]\n  neighbors:\n    - address: 10.20.0.1\n      asn: 65000\n      source: %s\n"+
			"anycast:\n  vips:\n    - prefix: %s/32\n      next_hop: %s\n      check:\n        exec: true\n      interval: 1s\n      rise: 1\nstats:\n  socket: %s\n",
			65101+i, s, s, s, anycastVIP, s, sock)
		cfg := filepath.Join(t.dir, fmt.Sprintf("ann%d.yaml", i))
		if err := os.WriteFile(cfg, []byte(c), 0o644); err != nil {
			return err
		}
		p, err := t.l.Start("wan", "taskset", "-c", fmt.Sprint(genCore), filepath.Join(bin, "pwgated"), "--config", cfg)
		if err != nil {
			return err
		}
		if err := lab.WaitPwgated(p, sock, true, 10*time.Second); err != nil {
			return err
		}
	}
	t.socket = filepath.Join(t.dir, "pwgated.sock")
	var b strings.Builder
	fmt.Fprintf(&b, "bgp:\n  asn: 65000\n  router_id: 10.20.0.1\n  listen: [10.20.0.1]\n  neighbors:\n")
	for i, s := range anycastServers {
		fmt.Fprintf(&b, "    - address: %s\n      asn: %d\n", s, 65101+i)
	}
	fmt.Fprintf(&b, "anycast:\n  forward:\n    interfaces: [dl0, ul0]\n    vips: [%s/32]\nstats:\n  socket: %s\n", anycastVIP, t.socket)
	if err := t.runPwgated(bin, "", b.String()); err != nil {
		return err
	}
	// Every server in the table.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		a, err := client.FetchAnycast(t.socket, time.Second)
		if err == nil && len(a.Forward) == 1 {
			n := 0
			for _, s := range a.Forward[0].Servers {
				if s.Slots > 0 {
					n++
				}
			}
			if n == len(anycastServers) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the forwarder does not have its %d servers: %+v %v", len(anycastServers), a, err)
		}
	}
}
