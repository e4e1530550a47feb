// Command pwimagetest is make image-test: it boots two appliances from
// the image in qemu (TCG, OVMF) and checks that they carry a pseudowire.
//
//	pwimagetest [--image bin/pwgate.img] [--boot 8m] [--check | --igb]
//
// With --igb (make image-test-igb) it boots the appliances on emulated igb
// NICs instead (igb.go).
//
// With --check (make image-check, run by CI) it boots nothing: the
// partition table, the ESP's and configuration partition's files, the
// root file system's contents and the update bundle are checked
// (check.go).
//
// The configuration partitions are written before boot (mtools, no
// mount): an eth-mode pseudowire between the VMs' uplinks, SSH keys made
// for the run, the management port on qemu's user network (SSH forwarded
// to 127.0.0.1). Around the VMs, in network namespaces:
//
//	hosta ── br-a ── [VM A: dl enp0s4, ul enp0s5] ── br-ul ── [VM B] ── br-b ── hostb
//
// br-a (the root) and br-b speak STP, so BPDUs cross the pseudowire. The
// checks: both VMs boot and pwgated runs (systemctl over SSH), ping from
// hosta to hostb, 1614-byte frames (split in two on the uplink and
// reassembled, by pwctl stats), check_pwbpdu OK on both: on A for the
// BPDUs from its LAN, on B for those from the far site; A's pwgated chose
// no hardware profile from qemu's DMI strings and said so; then B rebooted
// with a bad pwgated.yaml comes back over SSH with pwgated stopped, not
// restarting, the reason in its log; then A is updated (update.go).
package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
)

const prefix = "pwimg-"

func main() {
	image := flag.String("image", "bin/pwgate.img", "the image make image built")
	boot := flag.Duration("boot", 8*time.Minute, "how long a boot may take (TCG is slow)")
	only := flag.Bool("check", false, "only check the image's partitions and files (no qemu: make image-check)")
	igb := flag.Bool("igb", false, "boot two appliances with 4 vCPUs and emulated igb NICs, as the boxes (make image-test-igb)")
	flag.Parse()
	if *igb {
		if err := runIGB(*image, *boot); err != nil {
			fmt.Fprintf(os.Stderr, "pwimagetest igb: FAIL: %v\n", err)
			lab.Teardown(prefix)
			os.Exit(1)
		}
		fmt.Println("pwimagetest igb: PASS")
		return
	}
	if *only {
		if err := check(*image); err != nil {
			fmt.Fprintf(os.Stderr, "pwimagetest: FAIL: %v\n", err)
			os.Exit(1)
		}
		fmt.Println("pwimagetest: image check PASS")
		return
	}
	if err := run(*image, *boot); err != nil {
		fmt.Fprintf(os.Stderr, "pwimagetest: FAIL: %v\n", err)
		lab.Teardown(prefix)
		os.Exit(1)
	}
	fmt.Println("pwimagetest: PASS")
}

// vm is one appliance.
type vm struct {
	name, image, vars, serial string
	ssh                       int // forwarded SSH port on 127.0.0.1 in the "vms" namespace
	proc                      *lab.Proc
	bootID                    string // of the boot before the last reboot, while it comes back
}

func run(image string, boot time.Duration) error {
	if !lab.IsRoot() {
		return errors.New("must run as root (namespaces, taps)")
	}
	for _, t := range []string{"qemu-system-x86_64", "mcopy", "sfdisk", "ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s not found (make image-deps)", t)
		}
	}
	e, err := newEnv()
	if err != nil {
		return err
	}
	defer e.close()
	dir, key, pub, l := e.dir, e.key, e.pub, e.l
	vms := []*vm{{name: "a", ssh: 2201}, {name: "b", ssh: 2202}}
	setup := []string{
		// group_fwd_mask 0x4000: the uplinks' hub forwards LLDP
		// (01:80:c2:00:00:0e), so that each appliance hears the other's.
		"ip link add br-ul type bridge ageing_time 0 stp_state 0 group_fwd_mask 0x4000", "ip link set br-ul up",
	}
	for i, v := range vms {
		files := map[string]string{
			"pwgated.yaml":    fmt.Sprintf("mode: eth\ndownlink:\n  interface: enp0s4\nuplink:\n  interface: enp0s5\npeer:\n  mac: \"52:54:00:00:0%d:05\"\npoll: adaptive\nstats:\n  socket: /run/pwgate/pwgated.sock\n  group: adm\nlldp:\n  interval: 5s\n  system_name: site-%s\n  ports: [enp0s3]\n", 2-i, v.name),
			"mgmt.network":    "[Match]\nName=enp0s3\n\n[Network]\nDHCP=ipv4\n",
			"authorized_keys": string(pub),
			// A trial boot of an update has a minute to become healthy.
			"update.env": "PWGATE_BOOT_CHECK=--deadline 60s\n",
		}
		if v.name == "a" { // b keeps the image's default servers, and sends no syslog
			files["timesyncd.conf"] = "[Time]\nNTP=10.0.2.2\n" // qemu's user network: the host's 127.0.0.1
			files["syslog.yaml"] = fmt.Sprintf("servers:\n  - address: 10.0.2.2\n    port: %d\n  - address: 10.0.2.2\n    port: %d\n    protocol: tcp\nhostname: site-a\n", syslogUDPPort, syslogTCPPort)
		}
		if err := v.prepare(dir, image, files); err != nil {
			return err
		}
		site, err := e.site(v, i)
		if err != nil {
			return err
		}
		setup = append(setup, site...)
	}
	if err := l.Script("vms", setup...); err != nil {
		return err
	}
	ntp, err := serveNTP(l)
	if err != nil {
		return err
	}
	defer ntp.Close()
	logs, err := serveSyslog(l)
	if err != nil {
		return err
	}
	defer logs.Close()
	start := time.Now()
	for i, v := range vms {
		if err := v.start(l, i); err != nil {
			return err
		}
	}
	defer func() {
		for _, v := range vms {
			if b, err := os.ReadFile(v.serial); err == nil {
				os.WriteFile(filepath.Join(os.TempDir(), "pwimagetest-"+v.name+"-serial.log"), b, 0o644)
			}
		}
	}()
	ssh := func(v *vm, cmd string) (string, error) {
		return l.Exec("vms", sshArgs(key, v, cmd)...)
	}
	for _, v := range vms {
		for {
			out, err := ssh(v, "systemctl is-active pwgated")
			if err == nil && strings.TrimSpace(out) == "active" {
				fmt.Printf("pwimagetest: vm %s: pwgated active %v after start\n", v.name, time.Since(start).Round(time.Second))
				break
			}
			if strings.TrimSpace(out) == "failed" {
				st, _ := ssh(v, "systemctl status pwgated --no-pager; journalctl -b -u pwgated --no-pager | tail -20")
				return fmt.Errorf("vm %s: pwgated failed:\n%s", v.name, st)
			}
			if v.proc.Exited() {
				return fmt.Errorf("vm %s: qemu exited: %s", v.name, v.proc.Out.String())
			}
			if time.Since(start) > boot {
				st, _ := ssh(v, "systemctl status pwgated --no-pager; journalctl -b -u pwgated --no-pager | tail -20")
				return fmt.Errorf("vm %s: pwgated not active %v after start (last: %q, %v)\n%s\nserial: %s", v.name, boot, out, err, st, tailFile(v.serial))
			}
			time.Sleep(5 * time.Second)
		}
	}
	// STP's forward delay (4 s) on both host bridges, then traffic.
	var out string
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(2 * time.Second) {
		if out, err = l.Exec("hosta", "ping", "-c", "3", "-W", "2", "10.77.0.2"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, v := range vms {
				st, _ := ssh(v, "pwctl stats; ip -s link")
				fmt.Fprintf(&b, "vm %s:\n%s\n", v.name, st)
			}
			br, _ := l.Exec("vms", "bridge", "link")
			return fmt.Errorf("ping across the pseudowire: %v\n%s\n%s\nbridges:\n%s", err, out, b.String(), br)
		}
	}
	fmt.Println("pwimagetest: ping hosta -> hostb across the pseudowire: ok")
	if out, err = l.Exec("hosta", "ping", "-c", "3", "-W", "2", "-M", "do", "-s", "1572", "10.77.0.2"); err != nil {
		return fmt.Errorf("1614-byte frames: %v\n%s", err, out)
	}
	stats, err := ssh(vms[1], "pwctl stats")
	if err != nil {
		return fmt.Errorf("pwctl stats on b: %v\n%s", err, stats)
	}
	var reassembled uint64
	for _, line := range strings.Split(stats, "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "pwgate.ul_rx_reassembled" {
			fmt.Sscan(f[1], &reassembled)
		}
	}
	if reassembled < 3 {
		return fmt.Errorf("b reassembled %d frames, want 3 or more; pwctl stats:\n%s", reassembled, stats)
	}
	fmt.Printf("pwimagetest: 1614-byte frames split and reassembled (b: ul_rx_reassembled %d)\n", reassembled)
	// Which kernel booted, and how pwgated's sockets are bound on its
	// virtio-net ports (zero-copy where the driver offers it).
	for _, v := range vms {
		out, err := ssh(v, "uname -r; pwctl status | grep 'xdp bind'")
		if err != nil {
			return fmt.Errorf("vm %s: kernel and xdp bind: %v\n%s", v.name, err, out)
		}
		fmt.Printf("pwimagetest: vm %s: kernel %s\n", v.name, strings.Join(strings.Fields(out), " "))
	}
	// br-a is the root bridge: its BPDUs enter A from the LAN and reach B
	// from the uplink (B's bridge, not root, sends none on its root port).
	for _, v := range vms {
		dir := map[string]string{"a": "dl", "b": "ul"}[v.name]
		out, err := ssh(v, "/usr/lib/nagios/plugins/check_pwbpdu --direction "+dir)
		if err != nil || !strings.HasPrefix(out, "BPDU OK") {
			return fmt.Errorf("vm %s: check_pwbpdu: %v\n%s", v.name, err, out)
		}
		fmt.Printf("pwimagetest: vm %s: %s", v.name, out)
	}
	// The manual, as an operator on the box reads it.
	if out, err := ssh(vms[0], "man -P cat pwgated.yaml 2>&1 | grep -c peer.address; man -P cat pwctl 2>&1 | grep -c check_pwbpdu"); err != nil || strings.Contains(out, "\n0") || strings.HasPrefix(out, "0") {
		return fmt.Errorf("vm a: man pwgated.yaml and man pwctl: %v\n%s", err, out)
	}
	fmt.Println("pwimagetest: vm a: man pwgated.yaml and man pwctl show the manuals")
	// Time: a's servers from its configuration partition (the lab's
	// SNTP server), b's the image's default ones (unreachable here).
	// (The box has no D-Bus, so no timedatectl: timesyncd's flag file and
	// log, and the configuration as systemd merges it.)
	var synced string
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(3 * time.Second) {
		synced, err = ssh(vms[0], "test -e /run/systemd/timesync/synchronized && journalctl -b -u systemd-timesyncd -o cat | grep -m1 'Contacted time server'")
		if err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || !strings.Contains(synced, "10.0.2.2:123") {
		st, _ := ssh(vms[0], "ls -l /run/systemd/timesync; systemd-analyze cat-config systemd/timesyncd.conf; journalctl -b -u systemd-timesyncd --no-pager | tail")
		return fmt.Errorf("vm a: not synchronised to the server in /config/timesyncd.conf: %v %q\n%s", err, synced, st)
	}
	servers, err := ssh(vms[1], "systemd-analyze cat-config systemd/timesyncd.conf | grep -E '^(NTP|FallbackNTP)='")
	if err != nil || !strings.Contains(servers, "FallbackNTP=2.debian.pool.ntp.org") || strings.Contains(servers, "\nNTP=") || strings.HasPrefix(servers, "NTP=") {
		return fmt.Errorf("vm b: default time servers: %v %q", err, servers)
	}
	fmt.Printf("pwimagetest: vm a: time synchronised from /config/timesyncd.conf: %s", synced)
	fmt.Printf("pwimagetest: vm b: no timesyncd.conf, the image's servers: %s", servers)
	// LLDP: each appliance hears the other on its uplink (the LAN bridges
	// send none); the management port runs it too, without trouble (qemu's
	// user network has no neighbour to hear).
	var lldp string
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(3 * time.Second) {
		lldp, err = ssh(vms[0], "pwctl status | grep ^lldp")
		if strings.Contains(lldp, "enp0s5: site-b port enp0s5") || time.Now().After(deadline) {
			break
		}
	}
	if !strings.Contains(lldp, "enp0s5: site-b port enp0s5") || !strings.Contains(lldp, "enp0s3: no neighbour heard") {
		return fmt.Errorf("vm a: LLDP: want site-b heard on the uplink, the management port open; pwctl status says:\n%s (%v)", lldp, err)
	}
	fmt.Printf("pwimagetest: vm a: pwctl status:\n%s", lldp)
	if err := checkSyslog(logs, func(cmd string) (string, error) { return ssh(vms[0], cmd) }); err != nil {
		return fmt.Errorf("vm a: remote syslog: %w", err)
	}
	if out, err := ssh(vms[1], "systemctl is-active pwgate-syslog"); strings.TrimSpace(out) != "inactive" {
		return fmt.Errorf("vm b, without syslog.yaml: pwgate-syslog is %q (%v), want inactive", strings.TrimSpace(out), err)
	}
	// --profile auto reads the box's DMI strings: qemu's fit no profile.
	profile, err := ssh(vms[0], "journalctl -b -u pwgated -o cat | grep -m1 'hardware profile'")
	if err != nil || !strings.Contains(profile, "generic") {
		return fmt.Errorf("vm a: pwgated's log says nothing of the hardware profile it chose: %v\n%s", err, profile)
	}
	fmt.Printf("pwimagetest: vm a: pwgated --profile auto: %s", profile)
	// A bad configuration, as an operator might write it: after a reboot
	// pwgated stays stopped (exit 2, not restarted), the reason is in its
	// log, and the box answers over SSH.
	b := vms[1]
	u := &updater{l: l, key: key, dir: dir, boot: boot, ssh: ssh}
	b.bootID = u.bootID(b)
	if out, err := ssh(b, "cp /config/pwgated.yaml /config/pwgated.yaml.good && printf 'mode: ethernet\\n' > /config/pwgated.yaml && sync && systemctl reboot"); err != nil && !strings.Contains(out, "closed") {
		fmt.Printf("pwimagetest: reboot b: %v %s\n", err, out)
	}
	rebooted := time.Now()
	if _, err := u.waitBoot(b); err != nil {
		return fmt.Errorf("after a reboot with a bad configuration: %w", err)
	}
	var state string
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(3 * time.Second) {
		state, _ = ssh(b, "systemctl is-active pwgated; systemctl show -p NRestarts --value pwgated; journalctl -b -u pwgated --no-pager -o cat")
		if strings.HasPrefix(state, "failed\n") || time.Now().After(deadline) {
			break
		}
	}
	lines := strings.SplitN(state, "\n", 3)
	if len(lines) < 3 || lines[0] != "failed" || lines[1] != "0" || !strings.Contains(lines[2], "mode") {
		return fmt.Errorf("vm b with a bad configuration: want pwgated failed, not restarted, the reason logged; got:\n%s", state)
	}
	fmt.Printf("pwimagetest: vm b with a bad pwgated.yaml: back over SSH %v after the reboot, pwgated failed and not restarted:\n%s", time.Since(rebooted).Round(time.Second), pwgatedLines(lines[2]))
	if out, err := ssh(b, "mv /config/pwgated.yaml.good /config/pwgated.yaml && systemctl restart pwgated && systemctl is-active pwgated"); err != nil {
		return fmt.Errorf("vm b: the good configuration back: %v\n%s", err, out)
	}
	// A change applied with a confirmation window, and a reboot inside
	// it: the box comes back on the previous file (pwctl config).
	b.bootID = u.bootID(b)
	if out, err := ssh(b, "{ cat /config/pwgated.yaml; echo '# unconfirmed'; } | pwctl config apply - --confirm 10m -m 'reboot test' && sync && systemctl reboot"); err != nil && !strings.Contains(out, "closed") {
		fmt.Printf("pwimagetest: vm b: apply and reboot: %v %s\n", err, out)
	}
	rebooted = time.Now()
	if _, err := u.waitBoot(b); err != nil {
		return fmt.Errorf("after a reboot inside a confirmation window: %w", err)
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(3 * time.Second) {
		state, _ = ssh(b, "systemctl is-active pwgated; grep -c unconfirmed /config/pwgated.yaml; journalctl -b -u pwgated -o cat | grep 'change rolled back'")
		if strings.HasPrefix(state, "active\n") || time.Now().After(deadline) {
			break
		}
	}
	if lines := strings.SplitN(state, "\n", 3); len(lines) < 3 || lines[0] != "active" || lines[1] != "0" || !strings.Contains(lines[2], "restarted before it was confirmed") {
		return fmt.Errorf("vm b after a reboot inside a confirmation window: want pwgated active on the previous file, the rollback logged; got:\n%s", state)
	}
	fmt.Printf("pwimagetest: vm b: pwctl config apply --confirm 10m, then a reboot: back %v later on the previous file:\n    %s\n", time.Since(rebooted).Round(time.Second), strings.TrimSpace(strings.SplitN(state, "\n", 3)[2]))
	if err := u.run(vms[0], image); err != nil {
		return err
	}
	for _, v := range vms {
		ssh(v, "systemctl poweroff")
	}
	for _, v := range vms {
		v.proc.Wait(2 * time.Minute)
	}
	return nil
}

// sshArgs is the command line of ssh running cmd on v as root, with the
// run's key, forgetting host keys (each boot of a fresh image makes one).
// serveNTP answers SNTP requests on 127.0.0.1:123 in the vms namespace,
// which the VMs reach as 10.0.2.2 (qemu's user network): a stratum-1 server
// whose clock is this machine's.
func serveNTP(l *lab.Lab) (io.Closer, error) {
	var conn net.PacketConn
	if err := l.Do("vms", func() (err error) { conn, err = net.ListenPacket("udp4", "127.0.0.1:123"); return err }); err != nil {
		return nil, fmt.Errorf("the lab's NTP server: %w", err)
	}
	go func() {
		req := make([]byte, 512)
		for {
			n, addr, err := conn.ReadFrom(req)
			if err != nil {
				return
			}
			if n < 48 {
				continue
			}
			recv := ntpTime(time.Now())
			r := make([]byte, 48)
			r[0] = req[0]&0x38 | 4             // no leap warning, the client's version, mode 4 (server)
			r[1], r[2], r[3] = 1, req[2], 0xec // stratum 1, the client's poll, precision 2^-20
			copy(r[12:16], "LOCL")
			binary.BigEndian.PutUint64(r[16:], recv) // reference time
			copy(r[24:32], req[40:48])               // originate: the client's transmit time
			binary.BigEndian.PutUint64(r[32:], recv)
			binary.BigEndian.PutUint64(r[40:], ntpTime(time.Now()))
			conn.WriteTo(r, addr)
		}
	}()
	return conn, nil
}

// ntpTime is t as an NTP timestamp: seconds since 1900 and a fraction.
func ntpTime(t time.Time) uint64 {
	return (uint64(t.Unix())+2208988800)<<32 | uint64(t.Nanosecond())<<32/1e9
}

func sshArgs(key string, v *vm, cmd string) []string {
	return []string{"ssh", "-i", key, "-p", fmt.Sprint(v.ssh), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR", "root@127.0.0.1", cmd}
}

// env is what a run sets up first: a directory for its files, its SSH
// key (the file and the public key) and the lab's namespaces (vms, where
// qemu runs, and the hosts hosta and hostb).
type env struct {
	dir, key string
	pub      []byte
	l        *lab.Lab
}

func newEnv() (_ *env, err error) {
	if err := lab.Teardown(prefix); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("/var/tmp", "pwimagetest")
	if err != nil {
		return nil, err
	}
	e := &env{dir: dir, key: filepath.Join(dir, "id"), l: lab.New(prefix)}
	e.l.Log = func(f string, a ...any) { fmt.Printf("  lab: "+f+"\n", a...) }
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", e.key).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ssh-keygen: %v: %s", err, out)
	}
	if e.pub, err = os.ReadFile(e.key + ".pub"); err != nil {
		return nil, err
	}
	if err = e.l.AddNS("vms", "hosta", "hostb"); err != nil {
		return nil, err
	}
	return e, nil
}

// site makes VM v's (the i-th) LAN: host namespace "host"+v.name, its
// eth0 at 10.77.0.(i+1) in bridge br-<name> (STP; a's is the root) with
// v's LAN tap dl-<name>; v's uplink tap ul-<name> goes into br-ul. It
// returns the commands for the vms namespace.
func (e *env) site(v *vm, i int) ([]string, error) {
	host := "host" + v.name
	if err := e.l.Veth("vms", "h"+v.name, host, "eth0", 1600); err != nil {
		return nil, err
	}
	// The hosts send finished checksums, as a real LAN does (a veth
	// leaves them to a NIC that is not there).
	if err := e.l.Script(host, "ethtool -K eth0 tx off", fmt.Sprintf("ip addr add 10.77.0.%d/24 dev eth0", i+1)); err != nil {
		return nil, err
	}
	return []string{
		"ip tuntap add dl-" + v.name + " mode tap", "ip tuntap add ul-" + v.name + " mode tap",
		"ip link set dl-" + v.name + " mtu 1600 up", "ip link set ul-" + v.name + " up",
		fmt.Sprintf("ip link add br-%s mtu 1600 type bridge stp_state 1 forward_delay 400 hello_time 100 priority %d", v.name, 4096+28672*i),
		"ip link set dl-" + v.name + " master br-" + v.name, "ip link set ul-" + v.name + " master br-ul", "ip link set br-" + v.name + " up",
		"ip link set h" + v.name + " master br-" + v.name,
	}, nil
}

func (e *env) close() {
	e.l.Close()
	os.RemoveAll(e.dir)
}

// prepare gives v a copy of the image in dir with files on its
// configuration partition, and UEFI variables of its own.
func (v *vm) prepare(dir, image string, files map[string]string) error {
	v.image, v.vars, v.serial = filepath.Join(dir, v.name+".img"), filepath.Join(dir, v.name+"-vars.fd"), filepath.Join(dir, v.name+"-serial.log")
	if out, err := exec.Command("cp", "--sparse=always", image, v.image).CombinedOutput(); err != nil {
		return fmt.Errorf("copy the image: %v: %s", err, out)
	}
	if out, err := exec.Command("cp", "/usr/share/OVMF/OVMF_VARS_4M.fd", v.vars).CombinedOutput(); err != nil {
		return fmt.Errorf("OVMF: %v: %s", err, out)
	}
	if err := writeConfig(v.image, dir, files); err != nil {
		return fmt.Errorf("vm %s: %w", v.name, err)
	}
	return nil
}

// start boots the VM (the i-th: its MAC addresses) in qemu, with
// virtio-net ports.
func (v *vm) start(l *lab.Lab, i int) error {
	return v.boot(l, "2",
		"-netdev", "tap,id=dl,ifname=dl-"+v.name+",script=no,downscript=no",
		// ctrl_vlan=off: virtio-net's VLAN filter cannot be turned off
		// from the guest, and pwgated refuses a port that would drop
		// the LAN's tagged frames.
		"-device", fmt.Sprintf("virtio-net-pci,netdev=dl,addr=0x4,host_mtu=1600,ctrl_vlan=off,mac=52:54:00:00:0%d:04", i+1),
		"-netdev", "tap,id=ul,ifname=ul-"+v.name+",script=no,downscript=no",
		"-device", fmt.Sprintf("virtio-net-pci,netdev=ul,addr=0x5,ctrl_vlan=off,mac=52:54:00:00:0%d:05", i+1))
}

// boot starts qemu with cpus vCPUs, the management port (virtio-net on
// qemu's user network, SSH forwarded) and more arguments.
func (v *vm) boot(l *lab.Lab, cpus string, more ...string) error {
	args := append([]string{"-machine", "q35", "-m", "1024", "-smp", cpus,
		"-drive", "if=pflash,format=raw,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd",
		"-drive", "if=pflash,format=raw,file=" + v.vars,
		"-drive", "file=" + v.image + ",format=raw,if=virtio",
		"-display", "none", "-serial", "file:" + v.serial,
		// The chipset watchdog qemu has (the boxes have iTCO): the
		// initrd arms it, systemd feeds it.
		"-device", "i6300esb,addr=0x10",
		"-netdev", fmt.Sprintf("user,id=m,hostfwd=tcp:127.0.0.1:%d-:22", v.ssh),
		"-device", fmt.Sprintf("virtio-net-pci,netdev=m,addr=0x3,mac=52:54:00:00:%02x:03", v.ssh-2200)}, more...)
	p, err := l.Start("vms", append([]string{"qemu-system-x86_64"}, args...)...)
	if err != nil {
		return err
	}
	v.proc = p
	return nil
}

// writeConfig puts files on the image's configuration partition.
func writeConfig(image, dir string, files map[string]string) error {
	ps, err := partitions(image)
	if err != nil {
		return err
	}
	for _, p := range ps {
		if p.Name != "pwgate-config" {
			continue
		}
		for name, content := range files {
			f := filepath.Join(dir, name)
			if err := os.WriteFile(f, []byte(content), 0o600); err != nil {
				return err
			}
			if out, err := exec.Command("mcopy", "-o", "-i", fmt.Sprintf("%s@@%d", image, p.Start), f, "::/"+name).CombinedOutput(); err != nil {
				return fmt.Errorf("mcopy %s: %v: %s", name, err, out)
			}
		}
		return nil
	}
	return errors.New("no pwgate-config partition")
}

// pwgatedLines returns the lines of a log that name pwgated, indented.
func pwgatedLines(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if strings.Contains(l, "pwgated") {
			b.WriteString("    " + l + "\n")
		}
	}
	return b.String()
}

func tailFile(name string) string {
	b, _ := os.ReadFile(name)
	b = bytes.ReplaceAll(b, []byte("\r"), nil)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}
