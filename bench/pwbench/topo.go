package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/bench/sink"
	"github.com/pwgate/pwgate/dataplane/frame"
)

// The bench topology, one per device under test and core layout:
//
//	lan (g0) ── dl0 [dut] ul0 ── (s0) wan
//
// Traffic from lan to wan is the encap direction, from wan to lan the
// decap direction. Each side generates (xdpgen or trafgen) and counts what
// arrives with the XDP sink. In the shared layout the device under test
// owns core dutCore: its NAPI threads and pwgated run there and nothing
// else does; generators, sinks and this program run on core genCore. The
// busy layout is described at layoutBusy.
const (
	prefix  = "pwbench-"
	dutCore = 1
	genCore = 0
	lanMTU  = 1600 // frames of 1614 bytes must reach the DUT whole
	wanMTU  = 1500 // the access network
)

var (
	macG0  = frame.MAC{0x02, 0x00, 0x00, 0x00, 0x0c, 0x01}
	macDL0 = frame.MAC{0x02, 0x00, 0x00, 0x00, 0x0d, 0x01}
	macUL0 = frame.MAC{0x02, 0x70, 0x63, 0x61, 0x70, 0x01}
	macS0  = frame.MAC{0x02, 0x70, 0x63, 0x61, 0x70, 0x02}
	addrUL = netip.MustParseAddr("2001:db8:1::1")
	addrS0 = netip.MustParseAddr("2001:db8:1::2")
)

// DUT kinds.
const (
	dutBridge = "bridge"
	dutVXLAN  = "vxlan"
	dutPWEth  = "pwgate-eth"
	dutPWIP6  = "pwgate-ip6"
	// pwgate as a VTEP (static remote, the kernel VXLAN baseline's
	// settings), and flooding every frame to three VTEPs.
	dutPWVXLAN  = "pwgate-vxlan"
	dutPWVXLAN3 = "pwgate-vxlan-flood3"
)

// pseudowires are pwgate's two pseudowire modes, the rows most tables
// compare with the kernel's.
var pseudowires = []string{dutPWEth, dutPWIP6}

// topo is one built topology.
type topo struct {
	kind     string
	layout   string
	l        *lab.Lab
	dir      string
	lan, wan *sink.Sink
	pwgated  *lab.Proc
	socket   string
	far      *farEnd // WireGuard kinds
	// varyDst spreads the encap direction's frames over destinations
	// (macChurn) instead of sources.
	varyDst bool
	// arpFor, if valid, makes the encap direction's frames ARP requests
	// for it, and the delivered frames the answers on the lan side.
	arpFor netip.Addr
}

func (t *topo) isPW() bool { return t.kind == dutPWEth || t.kind == dutPWIP6 }

func isPWVXLAN(kind string) bool {
	return kind == dutPWVXLAN || kind == dutPWVXLAN3 || kind == dutPWEVPN
}

// vteps are the remote VTEPs of the pwgate-vxlan topologies, all behind s0.
var vteps = []netip.Addr{addrS0, netip.MustParseAddr("2001:db8:1::3"), netip.MustParseAddr("2001:db8:1::4")}

// copies is how many packets the DUT sends for one frame from the lan.
func copies(kind string) int {
	if kind == dutPWVXLAN3 {
		return 3
	}
	return 1
}

func build(kind, layout, dir, bin string, profile string) (_ *topo, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	t := &topo{kind: kind, layout: layout, l: lab.New(prefix), dir: dir}
	defer func() {
		if err != nil {
			t.close()
		}
	}()
	l := t.l
	if err := l.AddNS("lan", "dut", "wan"); err != nil {
		return nil, err
	}
	mtu := wanMTU
	if kind == dutBridge {
		mtu = lanMTU // a software wire: both sides are LAN
	}
	if err := l.Veth("lan", "g0", "dut", "dl0", lanMTU); err != nil {
		return nil, err
	}
	if err := l.Veth("dut", "ul0", "wan", "s0", mtu); err != nil {
		return nil, err
	}
	for _, x := range []struct {
		ns, ifname string
		mac        frame.MAC
	}{{"lan", "g0", macG0}, {"dut", "dl0", macDL0}, {"dut", "ul0", macUL0}, {"wan", "s0", macS0}} {
		// NAPI in a thread of its own (so that its work can be placed on a
		// core), which veth uses only for senders without TSO; GRO on
		// makes veth run NAPI, without which a veth with no XDP program
		// drops the XDP generator's xdp_frames (the baselines' dl0 and
		// ul0).
		if err := l.Script(x.ns, "ip link set dev "+x.ifname+" address "+x.mac.String(),
			"ethtool -K "+x.ifname+" tso off gso off gro on"); err != nil {
			return nil, err
		}
		if _, err := l.Exec(x.ns, "sh", "-c", "echo 1 > /sys/class/net/"+x.ifname+"/threaded"); err != nil {
			return nil, err
		}
	}
	for _, x := range [][2]string{{"lan", "g0"}, {"wan", "s0"}} {
		// trafgen sends through a queue that absorbs the DUT's backpressure.
		if _, err := l.Exec(x[0], "tc", "qdisc", "add", "dev", x[1], "root", "pfifo", "limit", "4096"); err != nil {
			return nil, err
		}
	}
	if err := l.Do("lan", func() (err error) { t.lan, err = sink.Attach("g0"); return }); err != nil {
		return nil, err
	}
	if err := l.Do("wan", func() (err error) { t.wan, err = sink.Attach("s0"); return }); err != nil {
		return nil, err
	}
	switch kind {
	case dutBridge:
		err = l.Script("dut", "ip link add br0 type bridge", "ip link set dev dl0 master br0", "ip link set dev ul0 master br0", "ip link set dev br0 up")
	case dutVXLAN:
		err = l.Script("dut",
			"ip -6 addr add "+addrUL.String()+"/64 dev ul0 nodad",
			"ip -6 neigh add "+addrS0.String()+" lladdr "+macS0.String()+" dev ul0 nud permanent",
			"ip link add vx0 mtu "+strconv.Itoa(lanMTU)+" type vxlan id 42 local "+addrUL.String()+" remote "+addrS0.String()+
				" dstport 4789 udp6zerocsumtx udp6zerocsumrx dev ul0",
			"ip link add br0 type bridge", "ip link set dev dl0 master br0", "ip link set dev vx0 master br0",
			"ip link set dev vx0 up", "ip link set dev br0 up")
	case dutPWEth, dutPWIP6, dutPWVXLAN, dutPWVXLAN3, dutPWEVPN:
		err = t.startPwgated(bin, profile)
	case dutPWWG, dutPWWGXDP, dutStockWG:
		err = t.buildWG(bin, profile)
	case dutAnycast, dutKernelRes:
		err = t.buildAnycast(bin)
	}
	if err == nil {
		err = t.pin(layout)
	}
	if err != nil {
		return nil, err
	}
	return t, nil
}

func (t *topo) startPwgated(bin, profile string) error {
	t.socket = filepath.Join(t.dir, "pwgated.sock")
	poll, main, enc, dec := "adaptive", dutCore, dutCore, dutCore
	if t.layout == layoutBusy {
		poll, main, enc, dec = "busy", 0, 1, 0
	}
	c := fmt.Sprintf("mode: %s\ndownlink:\n  interface: dl0\nuplink:\n  interface: ul0\npoll: %s\n"+
		"cores:\n  main: %d\n  encap: %d\n  decap: %d\nstats:\n  socket: %s\n",
		map[string]string{dutPWEth: "eth", dutPWIP6: "ip6", dutPWVXLAN: "vxlan", dutPWVXLAN3: "vxlan", dutPWEVPN: "vxlan"}[t.kind], poll, main, enc, dec, t.socket)
	switch {
	case t.kind == dutPWEth:
		c += fmt.Sprintf("peer:\n  mac: %q\n", macS0)
	case t.kind == dutPWEVPN:
		return t.startEVPN(bin, profile, c)
	case isPWVXLAN(t.kind):
		// As the kernel baseline: VNI 42, zero UDP checksums both ways.
		var rem []string
		for _, v := range vteps[:copies(t.kind)] {
			rem = append(rem, v.String())
		}
		c += fmt.Sprintf("local:\n  address: %s/64\nvxlan:\n  vnis:\n    - vni: 42\n  remotes: [%s]\n  udp6_zero_checksum_tx: true\n  udp6_zero_checksum_rx: true\n",
			addrUL, strings.Join(rem, ", "))
		cmds := []string{"ip -6 addr add " + addrUL.String() + "/64 dev ul0 nodad"}
		for _, v := range vteps {
			cmds = append(cmds, "ip -6 neigh add "+v.String()+" lladdr "+macS0.String()+" dev ul0 nud permanent")
		}
		if err := t.l.Script("dut", cmds...); err != nil {
			return err
		}
	default:
		c += fmt.Sprintf("peer:\n  address: %s\nlocal:\n  address: %s/64\n", addrS0, addrUL)
		// The access network's other end is on-link and answers no NDP (its
		// sink drops nothing but test traffic, but nothing there speaks
		// IPv6): a permanent neighbour entry stands in.
		if err := t.l.Script("dut", "ip -6 addr add "+addrUL.String()+"/64 dev ul0 nodad",
			"ip -6 neigh add "+addrS0.String()+" lladdr "+macS0.String()+" dev ul0 nud permanent"); err != nil {
			return err
		}
	}
	return t.runPwgated(bin, profile, c)
}

// steadyProfile, as a topology's profile, serves pwgated's allocation
// profiles instead of writing a CPU profile.
const steadyProfile = "allocs"

// runPwgated starts pwgated with configuration c and waits until it is
// ready; profile is a file for its CPU profile, steadyProfile or empty.
func (t *topo) runPwgated(bin, profile, c string) error {
	cfg := filepath.Join(t.dir, "pwgated.yaml")
	if err := os.WriteFile(cfg, []byte(c), 0o644); err != nil {
		return err
	}
	// This program runs pinned to genCore; pwgated pins itself to dutCore.
	args := []string{"taskset", "-c", fmt.Sprintf("0-%d", runtime.NumCPU()-1), filepath.Join(bin, "pwgated"), "--config", cfg}
	switch profile {
	case "":
	case steadyProfile:
		// Every allocation sampled (it costs only where something
		// allocates), the profiles served for the steady-load run.
		args = append([]string{"env", "GODEBUG=memprofilerate=1"}, args...)
		args = append(args, "--debug-addr", lab.DebugAddr)
	default:
		args = append(args, "--cpuprofile", profile)
	}
	p, err := t.l.Start("dut", args...)
	if err != nil {
		return err
	}
	t.pwgated = p
	return lab.WaitPwgated(p, t.socket, true, 10*time.Second)
}

// pin puts the NAPI threads where the layout says: shared, the DUT's on
// dutCore and the generators' and sinks' on genCore; busy, each port's
// with the goroutine that receives from it (dl0 with encap on core 1, ul0
// with decap on core 0) and the far ends' with their generators (s0, the
// encap direction's sink, on core 0; g0 on core 1).
func (t *topo) pin(layout string) error {
	tasks, err := os.ReadDir("/proc")
	if err != nil {
		return err
	}
	for _, e := range tasks {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil || !strings.HasPrefix(string(comm), "napi/") {
			continue
		}
		core := genCore
		name := string(comm)
		switch {
		case layout == layoutBusy && (strings.HasPrefix(name, "napi/dl0-") || strings.HasPrefix(name, "napi/g0-")):
			core = 1
		case layout == layoutBusy:
			core = 0
		case strings.HasPrefix(name, "napi/dl0-") || strings.HasPrefix(name, "napi/ul0-"):
			core = dutCore
		}
		if err := pinTask(pid, core); err != nil {
			return fmt.Errorf("pin %s: %w", strings.TrimSpace(string(comm)), err)
		}
		// The sinks' receive (g0, s0) stands for the wire: it must not be
		// what limits the DUT. On the generators' core it ran beside
		// them, and the WireGuard far end's threads, encrypting flat out,
		// starved it at times: the DUT's LAN ring filled, and it dropped
		// most of the frames it had decrypted (a 1514-byte decap at 11 k/s
		// instead of about 110).
		if core == genCore && (strings.HasPrefix(name, "napi/g0-") || strings.HasPrefix(name, "napi/s0-")) {
			if err := unix.Setpriority(unix.PRIO_PROCESS, pid, -20); err != nil {
				return fmt.Errorf("raise %s: %w", strings.TrimSpace(name), err)
			}
		}
	}
	return nil
}

// stopPwgated stops the daemon (so that it writes its profile) and returns
// its log.
func (t *topo) stopPwgated() string {
	if t.pwgated == nil || t.pwgated.Exited() {
		return ""
	}
	t.pwgated.Signal(syscall.SIGTERM)
	t.pwgated.Wait(10 * time.Second)
	return t.pwgated.Out.String()
}

func (t *topo) close() {
	t.stopPwgated()
	if t.far != nil {
		t.far.close()
	}
	for _, s := range []*sink.Sink{t.lan, t.wan} {
		if s != nil {
			s.Close()
		}
	}
	t.l.Close()
}

// decapPackets returns what the wan side sends for an n-byte frame.
func (t *topo) decapPackets(n int) ([][]byte, int, error) { return decapPackets(t.kind, n) }

// pieces returns how many packets the wan side sends for an n-byte frame.
func (t *topo) pieces(n int) int {
	p, _, err := decapPackets(t.kind, n)
	if err != nil {
		return 1
	}
	return len(p)
}

// encapKind is the kind of packet the wan sink counts for the DUT's output.
func (t *topo) encapKind() sink.Kind {
	if isWG(t.kind) {
		return sink.WG
	}
	return encapKind(t.kind)
}
