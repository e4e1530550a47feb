package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/control/update"
)

// updater runs the update tests on one appliance: a bundle whose pwgated
// never becomes ready rolls back by itself; a good one is blessed and
// stays; power lost while a slot is written leaves the booted slot.
type updater struct {
	l        *lab.Lab
	key, dir string
	boot     time.Duration
	ssh      func(*vm, string) (string, error)
}

func (u *updater) run(v *vm, image string) error {
	good, bad, err := u.bundles(strings.TrimSuffix(image, ".img") + ".update")
	if err != nil {
		return err
	}

	// 1. pwgated never ready: the trial boot fails, the box comes back on slot a.
	if err := u.install(v, bad); err != nil {
		return err
	}
	slot, err := u.waitBoot(v)
	if err != nil {
		return err
	}
	if slot == "b" {
		st, _ := u.ssh(v, "pwctl update --status")
		fmt.Printf("pwimagetest: vm %s on trial in slot b:\n%s", v.name, indent(st))
		if slot, err = u.waitBoot(v); err != nil {
			return err
		}
	}
	// The trial boot's log is there too: the box keeps its machine ID, so
	// journald keeps one journal across boots.
	st, _ := u.ssh(v, "pwctl update --status; journalctl -b -1 -u pwgate-boot-check -o cat --no-pager | grep -m1 'rebooting into slot'")
	if slot != "a" || !strings.Contains(st, "rolled back: slot b failed its trial boot") || !strings.Contains(st, "rebooting into slot a") {
		return fmt.Errorf("vm %s after an update whose pwgated is never ready: want slot a and a rollback, got slot %s:\n%s", v.name, slot, st)
	}
	fmt.Printf("pwimagetest: vm %s: an update whose pwgated never becomes ready rolled back by itself:\n%s", v.name, indent(st))

	// 2. A good update is blessed, carries traffic, and stays after a reboot.
	if err := u.install(v, good); err != nil {
		return err
	}
	if slot, err = u.waitBoot(v); err != nil || slot != "b" {
		return fmt.Errorf("vm %s after a good update: booted slot %q, %v", v.name, slot, err)
	}
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(3 * time.Second) {
		if st, _ = u.ssh(v, "pwctl update --status"); strings.Contains(st, "blessed: slot b") {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("vm %s: the good update was not blessed within 3 min:\n%s", v.name, st)
		}
	}
	fmt.Printf("pwimagetest: vm %s: a good update is blessed:\n%s", v.name, indent(st))
	if err := u.ping(); err != nil {
		return err
	}
	u.ssh(v, "systemctl reboot")
	if slot, err = u.waitBoot(v); err != nil || slot != "b" {
		return fmt.Errorf("vm %s rebooted after a blessed update: booted slot %q, %v", v.name, slot, err)
	}
	if err := u.ping(); err != nil {
		return err
	}
	fmt.Printf("pwimagetest: vm %s: rebooted, still on slot b, the pseudowire carries pings\n", v.name)

	// 3. Power lost while slot a is written: the box boots slot b.
	log := filepath.Join(u.dir, "update.log")
	cmd, err := u.sshCmd(v, "pwctl update -", good, log)
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
		if b, _ := os.ReadFile(log); strings.Contains(string(b), "writing root.sqfs") {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(log)
			return fmt.Errorf("vm %s: the update did not start writing:\n%s", v.name, b)
		}
	}
	time.Sleep(3 * time.Second)
	v.proc.Signal(syscall.SIGKILL)
	v.proc.Wait(30 * time.Second)
	cmd.Wait()
	fmt.Printf("pwimagetest: vm %s: power cut (qemu killed) while pwctl update wrote slot a\n", v.name)
	if err := v.start(u.l, 0); err != nil {
		return err
	}
	if slot, err = u.waitBoot(v); err != nil || slot != "b" {
		return fmt.Errorf("vm %s after a power cut during an update: booted slot %q, %v", v.name, slot, err)
	}
	st, _ = u.ssh(v, "pwctl update --status")
	if !strings.Contains(st, "not finished: slot a was being written") {
		return fmt.Errorf("vm %s after a power cut during an update: status:\n%s", v.name, st)
	}
	if err := u.ping(); err != nil {
		return err
	}
	fmt.Printf("pwimagetest: vm %s: back on slot b after the power cut, the pseudowire carries pings:\n%s", v.name, indent(st))
	return nil
}

// bundles makes two updates from the image's own bundle: good (the same
// files, a new version) and bad (its pwgated never becomes ready).
func (u *updater) bundles(built string) (good, bad string, err error) {
	files, version, serial, err := u.unpack(built)
	if err != nil {
		return "", "", err
	}
	good = filepath.Join(u.dir, "good.update")
	// The image's serial: the same build again, which a box installs
	// (an older one it refuses).
	if err := pack(good, version+"-good", serial, files); err != nil {
		return "", "", err
	}
	start := time.Now()
	never := "#!/bin/sh\n# pwimagetest: a pwgated that never becomes ready\necho 'pwgated: this build never becomes ready (pwimagetest)' >&2\nexec sleep infinity\n"
	if bad, err = u.variant(files, "never-ready", version, serial, "usr/local/sbin/pwgated", never); err != nil {
		return "", "", err
	}
	fmt.Printf("pwimagetest: update bundles made (good, and one whose pwgated never becomes ready) in %v\n", time.Since(start).Round(time.Second))
	return good, bad, nil
}

// unpack writes the files of the bundle built into u's directory.
func (u *updater) unpack(built string) (files []string, version string, serial int64, err error) {
	f, err := os.Open(built)
	if err != nil {
		return nil, "", 0, fmt.Errorf("the image's update bundle: %w (make image writes it)", err)
	}
	defer f.Close()
	b, err := update.Open(f, nil)
	if err != nil {
		return nil, "", 0, err
	}
	for _, name := range update.Files {
		p := filepath.Join(u.dir, name)
		out, err := os.Create(p)
		if err != nil {
			return nil, "", 0, err
		}
		_, err = b.Copy(out)
		out.Close()
		if err != nil {
			return nil, "", 0, err
		}
		files = append(files, p)
	}
	return files, b.Manifest.Version, b.Manifest.Serial, nil
}

// variant packs a bundle of files (unpack's) whose root file system has
// the file at path (in the root) replaced by a script.
func (u *updater) variant(files []string, name, version string, serial int64, path, script string) (string, error) {
	root := filepath.Join(u.dir, name+"-root")
	defer os.RemoveAll(root)
	if out, err := exec.Command("unsquashfs", "-q", "-n", "-d", root, files[0]).CombinedOutput(); err != nil {
		return "", fmt.Errorf("unsquashfs: %v: %s", err, out)
	}
	os.Remove(filepath.Join(root, path)) // a link (init) is replaced, not followed
	if err := os.WriteFile(filepath.Join(root, path), []byte(script), 0o755); err != nil {
		return "", err
	}
	sq := filepath.Join(u.dir, name+".sqfs")
	if out, err := exec.Command("mksquashfs", root, sq, "-quiet", "-no-progress", "-noappend", "-comp", "xz").CombinedOutput(); err != nil {
		return "", fmt.Errorf("mksquashfs: %v: %s", err, out)
	}
	bundle := filepath.Join(u.dir, name+".update")
	return bundle, pack(bundle, version+"-"+name, serial, []string{sq, files[1], files[2]})
}

// hang installs a bundle whose init never finishes: nothing in it ever
// runs, so only the hardware watchdog the initrd armed resets the box,
// and the old slot boots.
func (u *updater) hang(v *vm, image string) error {
	files, version, serial, err := u.unpack(strings.TrimSuffix(image, ".img") + ".update")
	if err != nil {
		return err
	}
	hangs := "#!/bin/sh\n# pwimagetest: an init that never finishes\necho 'pwimagetest: this init never finishes' > /dev/kmsg\nexec sleep infinity\n"
	bundle, err := u.variant(files, "init-hangs", version, serial, "usr/sbin/init", hangs)
	if err != nil {
		return err
	}
	from, _ := u.ssh(v, "cat /proc/cmdline")
	if err := u.install(v, bundle); err != nil {
		return err
	}
	start := time.Now()
	slot, err := u.waitBoot(v)
	if err != nil {
		return fmt.Errorf("after an update whose init hangs: %w", err)
	}
	st, _ := u.ssh(v, "pwctl update --status")
	if !slices.Contains(strings.Fields(from), "pwgate.slot="+slot) || !strings.Contains(st, "rolled back") {
		return fmt.Errorf("vm %s after an update whose init hangs: booted slot %s (was: %s), want the old one and a rollback:\n%s", v.name, slot, from, st)
	}
	serial2, _ := os.ReadFile(v.serial)
	var seen []string
	for _, l := range strings.Split(strings.ReplaceAll(string(serial2), "\r", ""), "\n") {
		if strings.Contains(l, "pwgate: hardware watchdog") || strings.Contains(l, "this init never finishes") || strings.Contains(l, "i6300ESB") {
			seen = append(seen, l)
		}
	}
	fmt.Printf("pwimagetest: vm %s: an update whose init never finishes: reset by the watchdog, back on slot %s %v after the install by itself; the serial console said:\n%s%s",
		v.name, slot, time.Since(start).Round(time.Second), indent(strings.Join(seen[max(0, len(seen)-8):], "\n")), indent(st))
	return nil
}

func pack(out, version string, serial int64, files []string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := update.Pack(f, version, serial, files, nil); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// sshCmd starts cmd on v over SSH with the file in on its standard
// input, its output to the file log.
func (u *updater) sshCmd(v *vm, cmd, in, log string) (*exec.Cmd, error) {
	stdin, err := os.Open(in)
	if err != nil {
		return nil, err
	}
	out, err := os.Create(log)
	if err != nil {
		return nil, err
	}
	c := exec.Command("ip", append([]string{"netns", "exec", u.l.NS("vms")}, sshArgs(u.key, v, cmd)...)...)
	c.Stdin, c.Stdout, c.Stderr = stdin, out, out
	if err := c.Start(); err != nil {
		return nil, err
	}
	return c, nil
}

// install sends a bundle with pwctl update over SSH, as an operator
// would, and checks that the box writes it and reboots.
func (u *updater) install(v *vm, bundle string) error {
	v.bootID = u.bootID(v)
	log := filepath.Join(u.dir, "update.log")
	start := time.Now()
	c, err := u.sshCmd(v, "pwctl update -", bundle, log)
	if err != nil {
		return err
	}
	c.Wait() // the reboot may cut the session
	out, _ := os.ReadFile(log)
	if !strings.Contains(string(out), "rebooting into the new slot") {
		return fmt.Errorf("vm %s: pwctl update %s:\n%s", v.name, filepath.Base(bundle), out)
	}
	fmt.Printf("pwimagetest: vm %s: pwctl update - < %s (%v):\n%s", v.name, filepath.Base(bundle), time.Since(start).Round(time.Second), indent(string(out)))
	return nil
}

// bootID is v's current boot ID, "" when it does not answer.
func (u *updater) bootID(v *vm) string {
	out, err := u.ssh(v, "cat /proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// waitBoot waits for v to come back from a reboot over SSH and returns
// the slot it booted (the boot's ID and command line read in one go: the
// box may go down again at any moment).
func (u *updater) waitBoot(v *vm) (string, error) {
	start := time.Now()
	for {
		out, _ := u.ssh(v, "cat /proc/sys/kernel/random/boot_id /proc/cmdline")
		if id, cmdline, ok := strings.Cut(out, "\n"); ok && len(id) == 36 && id != v.bootID {
			v.bootID = id
			for _, f := range strings.Fields(cmdline) {
				if s, ok := strings.CutPrefix(f, "pwgate.slot="); ok {
					fmt.Printf("pwimagetest: vm %s: booted slot %s (%v after it went down)\n", v.name, s, time.Since(start).Round(time.Second))
					return s, nil
				}
			}
			return "", fmt.Errorf("vm %s: no slot on the kernel command line: %q", v.name, cmdline)
		}
		if time.Since(start) > u.boot {
			return "", fmt.Errorf("vm %s did not come back over SSH within %v\nserial: %s", v.name, u.boot, tailFile(v.serial))
		}
		time.Sleep(3 * time.Second)
	}
}

// ping checks the pseudowire with pwgated just started: STP's forward
// delay first.
func (u *updater) ping() error {
	var out string
	var err error
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		if out, err = u.l.Exec("hosta", "ping", "-c", "3", "-W", "2", "10.77.0.2"); err == nil {
			return nil
		}
	}
	return fmt.Errorf("ping across the pseudowire: %v\n%s", err, out)
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}
