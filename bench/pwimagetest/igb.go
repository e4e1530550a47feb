package main

// make image-test-igb: the image on the NIC the appliances have. Two VMs
// with 4 vCPUs and Intel 82576 NICs (qemu's -device igb, run by the igb
// driver that runs the boxes' I211s) for the LAN and uplink ports, and the
// DMI strings and CPU of the two boxes, so that --profile auto picks their
// profiles: A reports "Default string" in every DMI field, as these boxes'
// firmware does, and a Celeron J3160 (the C4's CPU: the profile comes from
// the CPU model); B reports Skynew IN-1 (from DMI). The modes are run on
// one boot of each VM: eth with the uplinks on one segment, then ip6 with
// the uplinks through a router (this namespace, with radvd), then ip6
// inside WireGuard with its UDP on the uplink's zero-copy AF_XDP socket
// (wireguard.bind: xdp):
//
//	hosta ── br-a ── [A: dl enp0s4, ul enp0s6] ── br-ul (eth) ── [B] ── br-b ── hostb
//	                                          └── br-ula ─ router ─ br-ulb ┘ (ip6)
//
// igb's virtual functions take the PCI slot beside it: the ports are two
// slots apart.

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/dataplane/frame/frametest"
	"github.com/pwgate/pwgate/dataplane/wg"
)

// igbVM is one appliance of the igb run.
type igbVM struct {
	*vm
	profile string   // the profile --profile auto must pick
	qemu    []string // its DMI strings and CPU
	monitor string   // qemu's monitor socket
	peer    int      // index of the other VM
}

func runIGB(image string, boot time.Duration) error {
	if !lab.IsRoot() {
		return errors.New("must run as root (namespaces, taps)")
	}
	if out, err := exec.Command("qemu-system-x86_64", "-device", "help").CombinedOutput(); err != nil || !strings.Contains(string(out), `name "igb"`) {
		return fmt.Errorf("this qemu has no -device igb (qemu 8.0 or later: make image-deps-igb installs bookworm-backports' qemu): %v", err)
	}
	e, err := newEnv()
	if err != nil {
		return err
	}
	defer e.close()
	dir, key, pub, l := e.dir, e.key, e.pub, e.l
	const celeronJ3160 = "Intel(R) Celeron(R) CPU  J3160  @ 1.60GHz"
	vms := []*igbVM{
		{vm: &vm{name: "a", ssh: 2201}, profile: "c4", peer: 1, qemu: []string{
			"-cpu", "qemu64,model-id=" + celeronJ3160,
			"-smbios", "type=1,manufacturer=Default string,product=Default string,version=Default string",
			"-smbios", "type=2,manufacturer=Default string,product=Default string"}},
		{vm: &vm{name: "b", ssh: 2202}, profile: "in-1", peer: 0, qemu: []string{
			"-smbios", "type=1,manufacturer=SKYNEW,product=IN-1",
			"-smbios", "type=2,manufacturer=SKYNEW,product=IN-1"}},
	}
	setup := []string{
		"ip link add br-ul type bridge ageing_time 0 stp_state 0", "ip link set br-ul up",
		"ip link add br-ula type bridge stp_state 0", "ip link add br-ulb type bridge stp_state 0",
		"ip link set br-ula up", "ip link set br-ulb up",
	}
	for i, v := range vms {
		files := map[string]string{
			"pwgated.yaml":    igbConfig("eth", v, vms[v.peer]),
			"mgmt.network":    "[Match]\nName=enp0s3\n\n[Network]\nDHCP=ipv4\n",
			"authorized_keys": string(pub),
		}
		if err := v.prepare(dir, image, files); err != nil {
			return err
		}
		v.monitor = filepath.Join(dir, v.name+"-monitor.sock")
		site, err := e.site(v.vm, i)
		if err != nil {
			return err
		}
		setup = append(setup, site...)
	}
	if err := l.Script("vms", setup...); err != nil {
		return err
	}
	start := time.Now()
	for i, v := range vms {
		args := append([]string{"-monitor", "unix:" + v.monitor + ",server=on,wait=off",
			"-netdev", "tap,id=dl,ifname=dl-" + v.name + ",script=no,downscript=no",
			"-device", fmt.Sprintf("igb,netdev=dl,id=lan,addr=0x4,mac=52:54:00:00:0%d:04", i+1),
			"-netdev", "tap,id=ul,ifname=ul-" + v.name + ",script=no,downscript=no",
			"-device", fmt.Sprintf("igb,netdev=ul,id=uplink,addr=0x6,mac=52:54:00:00:0%d:06", i+1)}, v.qemu...)
		if err := v.boot(l, "4", args...); err != nil {
			return err
		}
	}
	defer func() {
		for _, v := range vms {
			if b, err := os.ReadFile(v.serial); err == nil {
				os.WriteFile(filepath.Join(os.TempDir(), "pwimagetest-igb-"+v.name+"-serial.log"), b, 0o644)
			}
		}
	}()
	t := &igbRun{l: l, key: key, vms: vms}
	for _, v := range vms {
		if err := t.waitActive(v, start, boot); err != nil {
			return err
		}
	}
	if err := t.checkMode("eth"); err != nil {
		return fmt.Errorf("eth mode: %w", err)
	}
	if err := t.resets(); err != nil {
		return fmt.Errorf("eth mode: %w", err)
	}
	// xdp_bind: zerocopy must start on igb.
	b := vms[1]
	conf := igbConfig("eth", b, vms[0]) + "xdp_bind: zerocopy\n"
	if out, err := t.ssh(b.vm, "cat > /config/pwgated.yaml <<'EOF'\n"+conf+"EOF\nsystemctl restart pwgated && sleep 2 && systemctl is-active pwgated && pwctl status | grep 'xdp bind'"); err != nil || !strings.Contains(out, "zerocopy") {
		st, _ := t.ssh(b.vm, "journalctl -b -u pwgated --no-pager | tail -20")
		return fmt.Errorf("vm b with xdp_bind: zerocopy: %v\n%s\n%s", err, out, st)
	}
	fmt.Println("pwimagetest igb: vm b: xdp_bind: zerocopy starts, bound zero-copy")
	// ip6 mode: the uplinks through the router.
	if err := l.Script("vms", "ip link set ul-a nomaster", "ip link set ul-b nomaster",
		"ip link set ul-a master br-ula", "ip link set ul-b master br-ulb"); err != nil {
		return err
	}
	if err := l.RouterIPv6("vms", dir, []lab.RouterPort{{If: "br-ula", MAC: lab.RouterMACA, Addr: "2001:db8:a::1/64"}, {If: "br-ulb", MAC: lab.RouterMACB, Addr: "2001:db8:b::1/64"}}); err != nil {
		return err
	}
	for _, v := range vms {
		conf := igbConfig("ip6", v, vms[v.peer])
		if out, err := t.ssh(v.vm, "cat > /config/pwgated.yaml <<'EOF'\n"+conf+"EOF\nsystemctl restart pwgated"); err != nil {
			return fmt.Errorf("vm %s: ip6 mode: %v\n%s", v.name, err, out)
		}
	}
	for _, v := range vms {
		if err := t.waitActive(v, time.Now(), time.Minute); err != nil {
			return err
		}
	}
	if err := t.checkMode("ip6"); err != nil {
		return fmt.Errorf("ip6 mode: %w", err)
	}
	if err := t.reset("uplink of a (qemu: set_link)", vms[0], "set_link uplink off", "set_link uplink on", 5*time.Second); err != nil {
		return fmt.Errorf("ip6 mode: %w", err)
	}
	if err := t.wireGuard(); err != nil {
		return fmt.Errorf("ip6 inside WireGuard (bind: xdp): %w", err)
	}
	// The hardware watchdog: systemd feeds it; an update whose init
	// never finishes ends in a reset, and the old slot boots.
	for _, v := range vms {
		out, err := t.ssh(v.vm, "cd /sys/class/watchdog/watchdog0 && echo $(cat identity) $(cat state), timeout $(cat timeout) s; journalctl -b -o cat | grep -m1 'armed until the root'; journalctl -b -o cat | grep -m1 'Using hardware watchdog'")
		if err != nil || !strings.Contains(out, "active") || !strings.Contains(out, "armed until the root") || !strings.Contains(out, "Using hardware watchdog") {
			return fmt.Errorf("vm %s: the hardware watchdog is not active: %v\n%s", v.name, err, out)
		}
		fmt.Printf("pwimagetest igb: vm %s: hardware watchdog:\n%s", v.name, indent(out))
	}
	u := &updater{l: l, key: key, dir: dir, boot: boot, ssh: t.ssh}
	if err := u.hang(vms[0].vm, image); err != nil {
		return err
	}
	for _, v := range vms {
		t.ssh(v.vm, "systemctl poweroff")
	}
	for _, v := range vms {
		v.proc.Wait(2 * time.Minute)
	}
	return nil
}

// igbConfig is v's pwgated.yaml in mode, the poll mode and cores the
// profile's (busy, 0/2/3).
func igbConfig(mode string, v, peer *igbVM) string {
	c := fmt.Sprintf("mode: %s\ndownlink:\n  interface: enp0s4\n  mtu: 1600\nuplink:\n  interface: enp0s6\n", mode)
	if mode == "eth" {
		c += fmt.Sprintf("peer:\n  mac: \"52:54:00:00:0%d:06\"\n", peer.ssh-2200)
	} else {
		c += fmt.Sprintf("peer:\n  address: 2001:db8:%s::%s\nlocal:\n  token: \"::%s\"\n", peer.name, peer.name, v.name)
	}
	return c + "stats:\n  socket: /run/pwgate/pwgated.sock\n  group: adm\n"
}

// igbWGConfig is v's pwgated.yaml with the pseudowire (ip6) inside
// WireGuard, its UDP on the uplink's AF_XDP socket, zero-copy or not at
// all: the overlay fd00:77::a and ::b, the underlay the uplinks' SLAAC
// addresses (tokens ::a and ::b).
func igbWGConfig(v, peer *igbVM, peerKey wg.Key) string {
	c := fmt.Sprintf("mode: ip6\ndownlink:\n  interface: enp0s4\n  mtu: 1600\nuplink:\n  interface: enp0s6\nxdp_bind: zerocopy\npeer:\n  address: fd00:77::%s\n", peer.name)
	c += fmt.Sprintf("wireguard:\n  private_key_file: /config/wg.key\n  listen_port: 51820\n  bind: xdp\n  addresses: [fd00:77::%s/64]\n  peers:\n", v.name)
	c += fmt.Sprintf("    - public_key: %q\n      endpoint: \"[2001:db8:%s::%s]:51820\"\n      allowed_ips: [fd00:77::%s/128]\n      persistent_keepalive: 25\n", peerKey, peer.name, peer.name, peer.name)
	return c + "stats:\n  socket: /run/pwgate/pwgated.sock\n  group: adm\n"
}

// wireGuard runs the pseudowire inside WireGuard with wireguard.bind: xdp
// and xdp_bind: zerocopy: WireGuard's UDP on a zero-copy AF_XDP socket of
// igb's uplink, the traffic of checkMode through it.
func (t *igbRun) wireGuard() error {
	keys := make([]wg.Key, len(t.vms))
	for i := range keys {
		k, err := wg.GenerateKey()
		if err != nil {
			return err
		}
		keys[i] = k
	}
	for i, v := range t.vms {
		conf := igbWGConfig(v, t.vms[v.peer], keys[v.peer].PublicKey())
		cmd := fmt.Sprintf("(umask 077 && echo %s > /config/wg.key) && ip token set ::%s dev enp0s6 && cat > /config/pwgated.yaml <<'EOF'\n%sEOF\nsystemctl restart pwgated", keys[i], v.name, conf)
		if out, err := t.ssh(v.vm, cmd); err != nil {
			return fmt.Errorf("vm %s: %v\n%s", v.name, err, out)
		}
	}
	for _, v := range t.vms {
		if err := t.waitActive(v, time.Now(), time.Minute); err != nil {
			return err
		}
	}
	if err := t.checkMode("ip6+wg"); err != nil {
		return err
	}
	for _, v := range t.vms {
		out, err := t.ssh(v.vm, "pwctl wg")
		if err != nil {
			return fmt.Errorf("vm %s: pwctl wg: %v\n%s", v.name, err, out)
		}
		steered, err := t.counter(v, "ul_xdp_to_socket")
		if err != nil {
			return err
		}
		if steered == 0 {
			return fmt.Errorf("vm %s: no WireGuard datagram reached the AF_XDP socket (ul_xdp_to_socket 0)\n%s", v.name, out)
		}
		fmt.Printf("pwimagetest igb: ip6+wg mode: vm %s: %d datagrams by the zero-copy socket; pwctl wg:\n%s", v.name, steered, indent(out))
	}
	return nil
}

type igbRun struct {
	l   *lab.Lab
	key string
	vms []*igbVM
}

func (t *igbRun) ssh(v *vm, cmd string) (string, error) {
	return t.l.Exec("vms", sshArgs(t.key, v, cmd)...)
}

func (t *igbRun) waitActive(v *igbVM, start time.Time, limit time.Duration) error {
	for {
		out, err := t.ssh(v.vm, "systemctl is-active pwgated")
		if err == nil && strings.TrimSpace(out) == "active" {
			fmt.Printf("pwimagetest igb: vm %s: pwgated active %v after start\n", v.name, time.Since(start).Round(time.Second))
			return nil
		}
		if strings.TrimSpace(out) == "failed" || time.Since(start) > limit || v.proc.Exited() {
			st, _ := t.ssh(v.vm, "systemctl status pwgated --no-pager; journalctl -b -u pwgated --no-pager | tail -30")
			return fmt.Errorf("vm %s: pwgated not active (%q, %v)\n%s\nqemu: %s\nserial: %s", v.name, out, err, st, v.proc.Out.String(), tailFile(v.serial))
		}
		time.Sleep(5 * time.Second)
	}
}

// checkMode checks both appliances in mode: the profile and the igb ports
// as it sets them, XDP and the sockets, the threads, then traffic.
func (t *igbRun) checkMode(mode string) error {
	for _, v := range t.vms {
		out, err := t.ssh(v.vm, "journalctl -b -u pwgated -o cat | grep -m1 'hardware profile'; pwctl status; "+
			"for p in enp0s4 enp0s6; do ethtool -i $p | grep ^driver; ethtool -l $p | sed -n '/^Current/,$p' | grep Combined; ethtool -a $p | grep -E '^(RX|TX):'; ethtool -g $p | sed -n '/^Current/,$p' | grep -E '^(RX|TX):'; ip link show $p | grep -o 'xdp[a-z]*' | head -1; done; "+
			"for t in /proc/$(pidof pwgated)/task/*; do echo \"thread $(cut -d' ' -f39 $t/stat) $(grep Cpus_allowed_list $t/status | cut -f2)\"; done; "+
			"for i in $(awk '$NF ~ /^enp0s[46]/ {sub(\":\", \"\", $1); print $1}' /proc/interrupts); do echo \"irq $i $(cat /proc/irq/$i/smp_affinity_list) $(awk -v i=$i: '$1 == i {print $NF}' /proc/interrupts)\"; done")
		if err != nil {
			return fmt.Errorf("vm %s: %v\n%s", v.name, err, out)
		}
		if err := checkIGB(out, v.profile); err != nil {
			return fmt.Errorf("vm %s: %w\n%s", v.name, err, out)
		}
		fmt.Printf("pwimagetest igb: %s mode: vm %s:\n%s", mode, v.name, indent(out))
		ms, err := t.ssh(v.vm, "s=$(date +%s%N); pwctl status >/dev/null; e=$(date +%s%N); echo $(( (e-s)/1000000 ))")
		fmt.Printf("pwimagetest igb: %s mode: vm %s: pwctl status answered in %s ms (TCG: for the record, not checked) %v\n", mode, v.name, strings.TrimSpace(ms), err)
	}
	if err := t.traffic(mode); err != nil {
		return err
	}
	return nil
}

// checkIGB checks what checkMode's commands printed on one appliance.
func checkIGB(out, profile string) error {
	var errs []error
	want := func(ok bool, f string, a ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(f, a...))
		}
	}
	want(strings.Contains(out, "hardware profile from the box") && strings.Contains(out, "profile="+profile), "the log does not say profile %s was picked", profile)
	want(regexp.MustCompile(`profile +`+regexp.QuoteMeta(profile)+`: `).MatchString(out), "pwctl status does not show profile %s", profile)
	want(strings.Count(out, "driver: igb") == 2, "the ports' driver is not igb")
	want(regexp.MustCompile(`(?m)^Combined:\s+1$`).FindAllString(out, -1) != nil && len(regexp.MustCompile(`(?m)^Combined:\s+1$`).FindAllString(out, -1)) == 2, "not one combined channel on both ports")
	want(len(regexp.MustCompile(`(?m)^(RX|TX):\s+off$`).FindAllString(out, -1)) == 4, "pause is not off on both ports")
	want(len(regexp.MustCompile(`(?m)^(RX|TX):\s+1024$`).FindAllString(out, -1)) == 4, "the rings are not 1024 on both ports")
	want(len(regexp.MustCompile(`(?m)^xdp$`).FindAllString(out, -1)) == 2, "native XDP is not attached on both ports")
	want(regexp.MustCompile(`xdp bind +zerocopy`).MatchString(out), "the sockets are not bound zero-copy")
	// The main, encap and decap threads each on its own core (0, 2, 3),
	// and there last.
	pinned := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^thread (\d+) (\d+)$`).FindAllStringSubmatch(out, -1) {
		if m[1] == m[2] {
			pinned[m[2]] = true
		}
	}
	want(pinned["0"] && pinned["2"] && pinned["3"], "no threads pinned to cores 0, 2 and 3 that last ran there (have %v)", pinned)
	// The ports' interrupts on the profile's interrupt core, 1.
	irqs := regexp.MustCompile(`(?m)^irq \d+ (\S+) `).FindAllStringSubmatch(out, -1)
	on1 := 0
	for _, m := range irqs {
		if m[1] == "1" {
			on1++
		}
	}
	want(len(irqs) >= 2 && on1 == len(irqs), "the ports' interrupts are not all on core 1")
	return errors.Join(errs...)
}

// traffic: pings, 1614-byte frames split and reassembled, VLAN-tagged
// frames, BPDUs counted.
func (t *igbRun) traffic(mode string) error {
	var out string
	var err error
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(2 * time.Second) {
		if out, err = t.l.Exec("hosta", "ping", "-c", "3", "-W", "2", "10.77.0.2"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, v := range t.vms {
				st, _ := t.ssh(v.vm, "pwctl stats | grep -v ' 0$'; ip -s link; journalctl -b -u pwgated --no-pager | tail")
				fmt.Fprintf(&b, "vm %s:\n%s\n", v.name, st)
			}
			return fmt.Errorf("ping across the pseudowire: %v\n%s\n%s", err, out, b.String())
		}
	}
	fmt.Printf("pwimagetest igb: %s mode: ping hosta -> hostb: ok\n", mode)
	before, err := t.counter(t.vms[1], "ul_rx_reassembled")
	if err != nil {
		return err
	}
	if out, err = t.l.Exec("hosta", "ping", "-c", "3", "-W", "2", "-M", "do", "-s", "1572", "10.77.0.2"); err != nil {
		return fmt.Errorf("1614-byte frames: %v\n%s", err, out)
	}
	if out, err = t.l.Exec("hostb", "ping", "-c", "3", "-W", "2", "-M", "do", "-s", "1572", "10.77.0.1"); err != nil {
		return fmt.Errorf("1614-byte frames b -> a: %v\n%s", err, out)
	}
	after, err := t.counter(t.vms[1], "ul_rx_reassembled")
	if err != nil {
		return err
	}
	if after-before < 6 {
		return fmt.Errorf("b reassembled %d frames, want 6 or more", after-before)
	}
	fmt.Printf("pwimagetest igb: %s mode: 1614-byte frames both ways, split and reassembled (b: %d)\n", mode, after-before)
	// Tagged frames (802.1Q and QinQ, 64 to 1600 bytes) arrive byte for
	// byte as sent: igb would strip the outer tag with rx-vlan offload on.
	if err := t.tagged(); err != nil {
		return err
	}
	fmt.Printf("pwimagetest igb: %s mode: 6 VLAN-tagged frames (802.1Q, QinQ; 64, 1000, 1600 bytes) arrived on host b's LAN byte for byte\n", mode)
	for _, v := range t.vms {
		dir := map[string]string{"a": "dl", "b": "ul"}[v.name]
		out, err := t.ssh(v.vm, "/usr/lib/nagios/plugins/check_pwbpdu --direction "+dir)
		if err != nil || !strings.HasPrefix(out, "BPDU OK") {
			return fmt.Errorf("vm %s: check_pwbpdu: %v\n%s", v.name, err, out)
		}
		fmt.Printf("pwimagetest igb: %s mode: vm %s: %s", mode, v.name, out)
	}
	return nil
}

// tagged sends tagged frames from host a and checks that host b's LAN
// gets them byte for byte.
func (t *igbRun) tagged() error {
	frames := frametest.Tagged([]byte{0x02, 0xcc, 0, 0, 0, 0x0a})
	file := filepath.Join(os.TempDir(), "pwimagetest-igb-tagged.pcap")
	defer os.Remove(file)
	p, err := t.l.Start("hostb", "tcpdump", "--immediate-mode", "-i", "eth0", "-U", "-s", "0", "-w", file, "ether src 02:cc:00:00:00:0a")
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(p.Out.String(), "listening on"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) || p.Exited() {
			return fmt.Errorf("tcpdump did not start: %s", p.Out.String())
		}
	}
	err = t.l.Do("hosta", func() error { return lab.SendRaw("eth0", frames...) })
	time.Sleep(time.Second)
	p.Signal(syscall.SIGINT)
	p.Wait(5 * time.Second)
	if err != nil {
		return err
	}
	got, err := frametest.ReadPcap(file)
	if err != nil {
		return err
	}
	if len(got) != len(frames) {
		return fmt.Errorf("%d of %d tagged frames arrived on host b's LAN", len(got), len(frames))
	}
	for i := range got {
		if !bytes.Equal(got[i], frames[i]) {
			return fmt.Errorf("tagged frame %d changed on the way:\n got %x\nsent %x", i+1, got[i], frames[i])
		}
	}
	return nil
}

func (t *igbRun) counter(v *igbVM, name string) (uint64, error) {
	out, err := t.ssh(v.vm, "pwctl stats")
	if err != nil {
		return 0, fmt.Errorf("vm %s: pwctl stats: %v\n%s", v.name, err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "pwgate."+name {
			return strconv.ParseUint(f[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("vm %s: no counter %s", v.name, name)
}

// resets takes links down and up, and resets the driver: traffic comes
// back by itself within 5 s each time.
func (t *igbRun) resets() error {
	a := t.vms[0]
	for _, r := range []struct {
		what, down, up string
		limit          time.Duration
	}{
		{"uplink of a (qemu: set_link)", "set_link uplink off", "set_link uplink on", 5 * time.Second},
		{"LAN link of a (qemu: set_link)", "set_link lan off", "set_link lan on", 5 * time.Second},
		{"uplink of a (ethtool -G: igb resets its rings)", "ssh:ethtool -G enp0s6 rx 512 tx 512", "ssh:ethtool -G enp0s6 rx 1024 tx 1024", 5 * time.Second},
		{"uplink of a (ip link set down, up)", "ssh:ip link set enp0s6 down", "ssh:ip link set enp0s6 up", 5 * time.Second},
		{"LAN port of a (ip link set down, up)", "ssh:ip link set enp0s4 down", "ssh:ip link set enp0s4 up", 5 * time.Second},
		// The port's device removed and found again: a new interface
		// of the same name, a new index. pwgated exits, and systemd's
		// restart waits for the port (--wait-ports) and binds to it.
		// (qemu cannot unplug a device from q35's root bus, where igb's
		// virtual functions let the ports be: the guest removes it.)
		{"uplink of a removed from the PCI bus and found again (a new interface)", "ssh:echo 1 > /sys/bus/pci/devices/0000:00:06.0/remove",
			"ssh:echo 1 > /sys/bus/pci/rescan", time.Minute},
	} {
		if err := t.reset(r.what, a, r.down, r.up, r.limit); err != nil {
			return err
		}
	}
	out, err := t.ssh(a.vm, "systemctl show -p NRestarts --value pwgated; journalctl -b -u pwgated -o cat | grep -E 'went away|waiting for a port|the ports are there'")
	if err != nil || !strings.Contains(out, "went away") {
		return fmt.Errorf("vm a: pwgated after its uplink was removed: %v\n%s", err, out)
	}
	fmt.Printf("pwimagetest igb: vm a: pwgated restarted by systemd after its port went away (restarts, log):\n%s", indent(out))
	return nil
}

// reset does down, waits 3 s, does up and times traffic coming back,
// which must take limit at most. An action is a qemu monitor command, or
// "ssh:" and a command on v.
func (t *igbRun) reset(what string, v *igbVM, down, up string, limit time.Duration) error {
	do := func(action string) error {
		if cmd, ok := strings.CutPrefix(action, "ssh:"); ok {
			out, err := t.ssh(v.vm, cmd)
			if err != nil {
				return fmt.Errorf("%s: %v\n%s", cmd, err, out)
			}
			return nil
		}
		return monitor(v.monitor, action)
	}
	since, err := t.ssh(v.vm, "date '+%Y-%m-%d %H:%M:%S'")
	if err != nil {
		return err
	}
	if err := do(down); err != nil {
		return err
	}
	time.Sleep(3 * time.Second)
	if err := do(up); err != nil {
		return err
	}
	upAt := time.Now()
	for {
		if _, err := t.l.Exec("hosta", "ping", "-c", "1", "-W", "1", "10.77.0.2"); err == nil {
			break
		}
		if time.Since(upAt) > limit+30*time.Second {
			st, _ := t.ssh(v.vm, "pwctl stats | grep -v ' 0$'; journalctl -b -u pwgated --no-pager --since '"+strings.TrimSpace(since)+"'")
			return fmt.Errorf("%s: no traffic %v after it came back\n%s", what, limit+30*time.Second, st)
		}
	}
	took := time.Since(upAt)
	logs, _ := t.ssh(v.vm, "journalctl -b -u pwgated -o cat --no-pager --since '"+strings.TrimSpace(since)+"' | grep -v '^$' | head -8")
	fmt.Printf("pwimagetest igb: %s: traffic back %v after the link came up; pwgated logged:\n%s", what, took.Round(100*time.Millisecond), indent(logs))
	if took > limit {
		return fmt.Errorf("%s: traffic back only %v after the link came up, want %v at most", what, took.Round(100*time.Millisecond), limit)
	}
	return nil
}

// monitor runs one command on qemu's human monitor at path.
func monitor(path, cmd string) error {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return fmt.Errorf("qemu monitor: %w", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	var got strings.Builder
	for !strings.Contains(got.String(), "(qemu)") {
		n, err := c.Read(buf)
		if err != nil {
			return fmt.Errorf("qemu monitor: %w", err)
		}
		got.Write(buf[:n])
	}
	if _, err := c.Write([]byte(cmd + "\n")); err != nil {
		return fmt.Errorf("qemu monitor: %w", err)
	}
	got.Reset()
	for strings.Count(got.String(), "(qemu)") < 1 {
		n, err := c.Read(buf)
		if err != nil {
			return fmt.Errorf("qemu monitor: %s: %w", cmd, err)
		}
		got.Write(buf[:n])
	}
	if s := got.String(); strings.Contains(s, "rror") || strings.Contains(s, "not found") {
		return fmt.Errorf("qemu monitor: %s: %s", cmd, s)
	}
	return nil
}
