// Command pwfailover is make failover: how long the LAN loses traffic
// when one of two parallel pseudowires dies, with and without
// downlink.follow_peer, under legacy STP (Linux bridges) and RSTP (Open
// vSwitch; the kernel bridge has no RSTP and mstpd is not packaged in
// Debian).
//
//	pwfailover [--bridges stp,rstp] [--encrypt wireguard] [--only FAULT] [--bin bin] [--out bench/results]
//
// The lab: two LAN bridges, brA (the root, priority 4096) and brB, in one
// namespace; two pseudowires between them, each its own pair of pwgates in
// eth mode over its own access network (a hub), with keepalives every
// 100 ms (down after 300 ms). Path 1 costs 100 on both bridges and path 2
// 200, so path 1 carries the traffic and brB blocks its port to path 2. A
// host on each bridge pings the other every 10 ms; the outage is the
// longest gap between replies around the fault. The faults, on path 1:
//
//   - the far pwgated killed, on the root's side (pwa1): pwb1 is the one
//     that notices, and takes brB's root port down;
//   - the far pwgated killed, on the other side (pwb1): pwa1 notices and
//     takes a port of the root down; brB keeps its root port, whose far
//     end no longer answers, until its bridge protocol's own timers say so;
//   - the same pwgated crashed under systemd: its ExecStopPost
//     (pwgated --stopped) takes the LAN port down at once with
//     follow_peer, and the pwgated started 2 s later (RestartSec) holds it
//     down until the peer is heard;
//   - the access network between them cut (the hub's port to pwa1 taken
//     out of the hub, links up): both notice.
//
// After each fault the path is mended (the pwgated started again, the hub
// port put back) and the bridges are left to come back to path 1 before the
// next case. The bridges run the protocols' default timers (hello 2 s, max
// age 20 s, forward delay 15 s). With --encrypt wireguard each pseudowire
// runs in ip6 mode inside WireGuard instead (the uplinks' addresses on the
// hub, the keepalives inside the tunnel). Results go to
// bench/results/failover-*.md.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/dataplane/wg"
)

const prefix = "pwfo-"

var (
	only    string // --only
	encrypt string // --encrypt
)

func main() {
	bridges := flag.String("bridges", "rstp,stp", "bridge protocols to measure: rstp, stp or both")
	bin := flag.String("bin", "bin", "directory holding pwgated")
	out := flag.String("out", "bench/results", "results directory")
	flag.StringVar(&only, "only", "", "measure only the faults whose name contains this")
	flag.StringVar(&encrypt, "encrypt", "none", "none (eth mode) or wireguard (ip6 mode inside WireGuard)")
	flag.Parse()
	if encrypt != "none" && encrypt != "wireguard" {
		fmt.Fprintf(os.Stderr, "pwfailover: --encrypt %q: want none or wireguard\n", encrypt)
		os.Exit(2)
	}
	lab.Teardown(prefix)
	var rows []row
	for _, kind := range strings.Split(*bridges, ",") {
		r, err := measure(kind, *bin)
		rows = append(rows, r...)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pwfailover: %s: %v\n", kind, err)
			lab.Teardown(prefix)
			os.Exit(2)
		}
	}
	report := render(rows)
	fmt.Print(report)
	name := filepath.Join(*out, "failover-"+time.Now().UTC().Format("20060102-150405")+".md")
	if err := os.WriteFile(name, []byte(report), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "pwfailover: %v\n", err)
		os.Exit(2)
	}
	fmt.Println("written to", name)
}

// row is one measurement.
type row struct {
	bridge, fault string
	follow        bool
	outage        time.Duration // longest gap between replies
	from          time.Duration // when it began, from the fault
	note          string
}

// fo is the failover lab.
type fo struct {
	*lab.Lab
	kind, dir, bin string
	pw             map[string]*lab.Proc // pwa1, pwb1, pwa2, pwb2
	follow         bool
	wgKey          map[string]wg.Key // --encrypt wireguard: each pwgated's
}

var pws = []string{"pwa1", "pwb1", "pwa2", "pwb2"}

func ulMAC(pw string) string { return fmt.Sprintf("02:00:00:0%c:0%c:01", pw[2], pw[3]) }

func peerOf(pw string) string {
	if pw[2] == 'a' {
		return "pwb" + pw[3:]
	}
	return "pwa" + pw[3:]
}

// lanPort is the bridge's port toward pw: a1, b1, a2, b2.
func lanPort(pw string) string { return pw[2:] }

func measure(kind, bin string) ([]row, error) {
	if kind != "stp" && kind != "rstp" {
		return nil, fmt.Errorf("unknown bridge protocol %q: want stp or rstp", kind)
	}
	dir, err := os.MkdirTemp("", "pwfailover")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	f := &fo{Lab: lab.New(prefix + kind + "-"), kind: kind, dir: dir, bin: filepath.Join(bin, "pwgated"), pw: map[string]*lab.Proc{}, wgKey: map[string]wg.Key{}}
	defer f.Close()
	if err := f.build(); err != nil {
		return nil, err
	}
	var rows []row
	for _, follow := range []bool{false, true} {
		if err := f.setFollow(follow); err != nil {
			return rows, err
		}
		for _, fault := range faults {
			if !strings.Contains(fault.name, only) {
				continue
			}
			if err := f.waitConverged(3 * time.Minute); err != nil {
				return rows, fmt.Errorf("before %q: %w", fault.name, err)
			}
			r, err := f.run(fault)
			if err != nil {
				return rows, fmt.Errorf("%s: %w", fault.name, err)
			}
			fmt.Printf("%s, follow_peer %v, %s: outage %v from %+v\n", kind, follow, fault.name, r.outage, r.from)
			rows = append(rows, r)
		}
	}
	return rows, nil
}

func (f *fo) build() error {
	if err := f.AddNS("lan", "ha", "hb", "net1", "net2", "pwa1", "pwb1", "pwa2", "pwb2"); err != nil {
		return err
	}
	for _, pw := range pws {
		if err := f.Veth("lan", lanPort(pw), pw, "dl0", 0); err != nil {
			return err
		}
		net := "net" + pw[3:]
		if err := f.Veth(pw, "ul0", net, pw[2:3], 0); err != nil {
			return err
		}
		if err := f.Script(pw, "ip link set dev ul0 address "+ulMAC(pw)); err != nil {
			return err
		}
		if encrypt == "wireguard" {
			if err := f.Script(pw, "ip -6 addr add "+ulAddr(pw)+"/64 dev ul0 nodad"); err != nil {
				return err
			}
			k, err := wg.GenerateKey()
			if err != nil {
				return err
			}
			f.wgKey[pw] = k
			if err := os.WriteFile(f.keyFile(pw), []byte(k.String()+"\n"), 0o600); err != nil {
				return err
			}
		}
	}
	for _, net := range []string{"net1", "net2"} {
		if err := f.Script(net, "ip link add br0 type bridge ageing_time 0 stp_state 0", "ip link set dev a master br0",
			"ip link set dev b master br0", "ip link set br0 up"); err != nil {
			return err
		}
	}
	for i, h := range []string{"ha", "hb"} {
		if err := f.Veth("lan", h, h, "eth0", 0); err != nil {
			return err
		}
		// The hosts' kernels fill in no checksum a NIC would (TX
		// offload off), as on every lab peer that sends to pwgate.
		if err := f.Script(h, "ethtool -K eth0 tx off", fmt.Sprintf("ip addr add 10.78.0.%d/24 dev eth0", i+1)); err != nil {
			return err
		}
	}
	var err error
	if f.kind == "stp" {
		err = f.buildSTP()
	} else {
		err = f.buildRSTP()
	}
	if err != nil {
		return err
	}
	for _, pw := range pws {
		if err := f.start(pw); err != nil {
			return err
		}
	}
	return nil
}

// buildSTP makes two Linux bridges speaking 802.1D with its default timers.
func (f *fo) buildSTP() error {
	for _, b := range []struct{ name, prio, p1, p2, host string }{{"brA", "4096", "a1", "a2", "ha"}, {"brB", "32768", "b1", "b2", "hb"}} {
		if err := f.Script("lan", "ip link add "+b.name+" type bridge stp_state 1 priority "+b.prio,
			"ip link set dev "+b.p1+" master "+b.name, "ip link set dev "+b.p2+" master "+b.name,
			"ip link set dev "+b.host+" master "+b.name, "bridge link set dev "+b.p1+" cost 100",
			"bridge link set dev "+b.p2+" cost 200", "ip link set "+b.name+" up"); err != nil {
			return err
		}
	}
	return nil
}

// buildRSTP runs Open vSwitch (its own database and switch daemon, in the
// lan namespace, files in f.dir) with two RSTP bridges.
func (f *fo) buildRSTP() error {
	db := filepath.Join(f.dir, "conf.db")
	if _, err := f.Exec("", "ovsdb-tool", "create", db, "/usr/share/openvswitch/vswitch.ovsschema"); err != nil {
		return err
	}
	os.Setenv("OVS_RUNDIR", f.dir) // the bridges' management sockets
	os.Setenv("OVS_DBDIR", f.dir)
	sock := "unix:" + filepath.Join(f.dir, "db.sock")
	if _, err := f.Start("lan", "ovsdb-server", db, "--remote=p"+sock, "--unixctl="+filepath.Join(f.dir, "ovsdb.ctl"), "--no-chdir"); err != nil {
		return err
	}
	vsctl := func(args ...string) error {
		_, err := f.Exec("lan", append([]string{"ovs-vsctl", "--db=" + sock, "--timeout=20"}, args...)...)
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); vsctl("--no-wait", "init") != nil; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			return errors.New("ovsdb-server does not answer")
		}
	}
	if _, err := f.Start("lan", "ovs-vswitchd", sock, "--unixctl="+filepath.Join(f.dir, "vswitchd.ctl"), "--no-chdir"); err != nil {
		return err
	}
	for _, b := range []struct{ name, prio, p1, p2, host string }{{"brA", "4096", "a1", "a2", "ha"}, {"brB", "32768", "b1", "b2", "hb"}} {
		if err := vsctl("add-br", b.name, "--", "set", "bridge", b.name, "datapath_type=netdev", "rstp_enable=true",
			"other_config:rstp-priority="+b.prio); err != nil {
			return err
		}
		for _, p := range []struct{ port, extra string }{{b.p1, "other_config:rstp-path-cost=100"}, {b.p2, "other_config:rstp-path-cost=200"},
			{b.host, "other_config:rstp-port-admin-edge=true"}} {
			if err := vsctl("add-port", b.name, p.port, "--", "set", "port", p.port, p.extra); err != nil {
				return err
			}
		}
		if err := f.Script("lan", "ip link set "+b.name+" up"); err != nil {
			return err
		}
	}
	return nil
}

// config is pw's configuration.
func (f *fo) config(pw string) string {
	mode, peer, wgs := "eth", fmt.Sprintf("mac: %q", ulMAC(peerOf(pw))), ""
	if encrypt == "wireguard" {
		o := peerOf(pw)
		mode, peer = "ip6", "address: "+overlay(o)
		wgs = fmt.Sprintf("wireguard:\n  private_key_file: %s\n  listen_port: 51820\n  addresses: [%s/64]\n  peers:\n    - public_key: %q\n      endpoint: \"[%s]:51820\"\n      allowed_ips: [%s/128]\n",
			f.keyFile(pw), overlay(pw), f.wgKey[o].PublicKey(), ulAddr(o), overlay(o))
	}
	c := fmt.Sprintf("mode: %s\ndownlink:\n  interface: dl0\n", mode)
	if f.follow {
		c += "  follow_peer: true\n  follow_peer_hold: 1s\n"
	}
	return c + fmt.Sprintf("uplink:\n  interface: ul0\npoll: adaptive\npeer:\n  %s\n  keepalive:\n    interval: 100ms\n    timeout: 300ms\nstats:\n  socket: %s\n%s",
		peer, f.socket(pw), wgs)
}

// ulAddr and overlay are pw's uplink and WireGuard addresses (--encrypt
// wireguard): fd00:f1::a on pwa1's uplink, fd00:77:1::a inside.
func ulAddr(pw string) string  { return fmt.Sprintf("fd00:f%c::%c", pw[3], pw[2]) }
func overlay(pw string) string { return fmt.Sprintf("fd00:77:%c::%c", pw[3], pw[2]) }

func (f *fo) keyFile(pw string) string { return filepath.Join(f.dir, pw+".key") }

func (f *fo) socket(pw string) string { return filepath.Join(f.dir, pw+".sock") }
func (f *fo) file(pw string) string   { return filepath.Join(f.dir, pw+".yaml") }

func (f *fo) start(pw string) error {
	if err := os.WriteFile(f.file(pw), []byte(f.config(pw)), 0o644); err != nil {
		return err
	}
	p, err := f.Start(pw, f.bin, "--config", f.file(pw))
	if err != nil {
		return err
	}
	f.pw[pw] = p
	return lab.WaitPwgated(p, f.socket(pw), true, 20*time.Second)
}

// setFollow turns follow_peer on or off in every pwgated (a reload).
func (f *fo) setFollow(on bool) error {
	f.follow = on
	for _, pw := range pws {
		if err := os.WriteFile(f.file(pw), []byte(f.config(pw)), 0o644); err != nil {
			return err
		}
		if err := f.pw[pw].Signal(syscall.SIGHUP); err != nil {
			return err
		}
	}
	time.Sleep(time.Second)
	return nil
}

// state returns the state of the bridge port, lower case: forwarding,
// blocking (or discarding), listening, learning, disabled.
func (f *fo) state(port string) string {
	if f.kind == "stp" {
		out, _ := f.Exec("lan", "bridge", "link", "show", "dev", port)
		if _, s, ok := strings.Cut(out, " state "); ok {
			return strings.Fields(s)[0]
		}
		return "?"
	}
	out, _ := f.Exec("lan", "ovs-vsctl", "--db=unix:"+filepath.Join(f.dir, "db.sock"), "get", "port", port, "rstp_status:rstp_port_state")
	return strings.ToLower(strings.Trim(strings.TrimSpace(out), `"`))
}

// waitConverged waits until path 1 carries the traffic (a1 and b1
// forwarding, b2 blocked) and pings cross.
func (f *fo) waitConverged(timeout time.Duration) error {
	last := ""
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		a1, b1, b2 := f.state("a1"), f.state("b1"), f.state("b2")
		last = fmt.Sprintf("a1 %s, b1 %s, b2 %s", a1, b1, b2)
		if a1 != "forwarding" || b1 != "forwarding" || (b2 != "blocking" && b2 != "discarding") {
			continue
		}
		if _, err := f.Exec("ha", "ping", "-q", "-c", "3", "-i", "0.1", "-W", "1", "10.78.0.2"); err == nil {
			return nil
		}
	}
	return fmt.Errorf("path 1 not carrying traffic after %v: %s", timeout, last)
}

// fault is something that kills path 1, and what mends it; the outage
// is watched for at least window.
type fault struct {
	name      string
	cut, mend func(*fo) error
	window    time.Duration
}

var faults = []fault{
	{"far pwgated killed, root's side", func(f *fo) error { return f.kill("pwa1") }, func(f *fo) error { return f.start("pwa1") }, 3 * time.Second},
	{"far pwgated killed, other side", func(f *fo) error { return f.kill("pwb1") }, func(f *fo) error { return f.start("pwb1") }, 3 * time.Second},
	// What systemd does when pwgated dies: its ExecStopPost (pwgated
	// --stopped) at once, and a new pwgated RestartSec (2 s) later; the
	// window covers the new one coming up and the LAN going back to path 1.
	{"far pwgated crashed under systemd, other side", func(f *fo) error {
		if err := f.kill("pwb1"); err != nil {
			return err
		}
		if _, err := f.Exec("pwb1", f.bin, "--stopped", "--config", f.file("pwb1")); err != nil {
			return err
		}
		time.Sleep(2 * time.Second)
		return f.start("pwb1")
	}, func(*fo) error { return nil }, 10 * time.Second},
	{"access network cut", func(f *fo) error { return f.Script("net1", "ip link set dev a nomaster") },
		func(f *fo) error { return f.Script("net1", "ip link set dev a master br0") }, 3 * time.Second},
}

func (f *fo) kill(pw string) error {
	p := f.pw[pw]
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	_, err := p.Wait(5 * time.Second)
	return err
}

// run measures one fault: pings every 10 ms from ha to hb, the fault one
// second in, until the fault's window has passed and replies have come
// for two seconds without a gap (at most two minutes); then mends it.
func (f *fo) run(ft fault) (row, error) {
	r := row{bridge: f.kind, fault: ft.name, follow: f.follow}
	p, err := f.Start("ha", "ping", "-D", "-i", "0.01", "10.78.0.2")
	if err != nil {
		return r, err
	}
	time.Sleep(time.Second)
	at := time.Now()
	if err := ft.cut(f); err != nil {
		return r, err
	}
	for deadline := at.Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if time.Since(at) >= ft.window && flowing(p.Out.String(), 2*time.Second) {
			break
		}
	}
	p.Signal(syscall.SIGINT)
	p.Wait(5 * time.Second)
	r.outage, r.from, r.note = outage(p.Out.String(), at)
	if err := ft.mend(f); err != nil {
		return r, err
	}
	return r, nil
}

// flowing reports whether replies came in the last d without a gap of more
// than 100 ms, up to now.
func flowing(out string, d time.Duration) bool {
	now := time.Now()
	prev := now.Add(-d)
	lines := strings.Split(out, "\n")
	for _, l := range lines {
		t, ok := reply(l)
		if !ok || t.Before(now.Add(-d)) {
			continue
		}
		if t.Sub(prev) > 100*time.Millisecond {
			return false
		}
		prev = t
	}
	return now.Sub(prev) <= 100*time.Millisecond
}

// reply parses the time of ping -D's "[1733430000.123456] 64 bytes from ...".
func reply(line string) (time.Time, bool) {
	if !strings.HasPrefix(line, "[") || !strings.Contains(line, " bytes from ") {
		return time.Time{}, false
	}
	ts, _, _ := strings.Cut(line[1:], "]")
	sec, err := strconv.ParseFloat(ts, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, int64(sec*1e9)), true
}

// outage returns the longest gap between replies that ends after at and
// when it began (from at), and a note when no reply came after at.
func outage(out string, at time.Time) (gap, from time.Duration, note string) {
	var prev time.Time
	after := false
	for _, l := range strings.Split(out, "\n") {
		t, ok := reply(l)
		if !ok {
			continue
		}
		if !prev.IsZero() && t.After(at) && t.Sub(prev) > gap {
			gap, from = t.Sub(prev), prev.Sub(at)
		}
		after = after || t.After(at)
		prev = t
	}
	if !after {
		note = "no reply after the fault within 2 minutes"
	}
	return gap, from, note
}

func render(rows []row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# make failover, %s\n\n", time.Now().UTC().Format(time.RFC3339))
	what := "eth-mode pseudowires"
	if encrypt == "wireguard" {
		what = "ip6-mode pseudowires inside WireGuard"
	}
	b.WriteString("Two parallel " + what + " between two LAN bridges (brA the root); keepalives every 100 ms, down after 300 ms, follow_peer hold 1 s; pings every 10 ms. Outage: the longest gap between replies around the fault; began: when that gap began, from the fault.\n\n")
	b.WriteString("| bridges | fault on the primary path | follow_peer | outage | began |\n|---|---|---|---:|---:|\n")
	for _, r := range rows {
		o := r.outage.Round(time.Millisecond).String()
		if r.note != "" {
			o = r.note
		}
		fmt.Fprintf(&b, "| %s | %s | %v | %s | %+.2fs |\n", map[string]string{"stp": "legacy STP (Linux bridges, 802.1D timers)", "rstp": "RSTP (Open vSwitch)"}[r.bridge], r.fault, map[bool]string{true: "on", false: "off"}[r.follow], o, r.from.Seconds())
	}
	return b.String()
}
