package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/pwgate/pwgate/control/update"
)

// partition is one row of the image's partition table.
type partition struct {
	Start, Size int64
	Type, Name  string
}

// partitions reads the image's GPT (sfdisk), offsets in bytes.
func partitions(image string) ([]partition, error) {
	out, err := exec.Command("sfdisk", "-J", image).Output()
	if err != nil {
		return nil, fmt.Errorf("sfdisk: %w", err)
	}
	var pt struct {
		PartitionTable struct {
			Label      string `json:"label"`
			SectorSize int64  `json:"sectorsize"`
			Partitions []partition
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(out, &pt); err != nil {
		return nil, err
	}
	if pt.PartitionTable.Label != "gpt" {
		return nil, fmt.Errorf("partition table %q, want gpt", pt.PartitionTable.Label)
	}
	ss := pt.PartitionTable.SectorSize
	if ss == 0 {
		ss = 512
	}
	ps := pt.PartitionTable.Partitions
	for i := range ps {
		ps[i].Start *= ss
		ps[i].Size *= ss
	}
	return ps, nil
}

// check is make image-check: without booting anything, the image has the
// partitions, files and boot entry it should, and the update bundle
// beside it holds the same root file system as slot A.
func check(image string) error {
	ps, err := partitions(image)
	if err != nil {
		return err
	}
	want := []struct{ name, typ string }{
		{"ESP", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"},
		{"root-a", "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"},
		{"root-b", "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"},
		{"pwgate-config", "0FC63DAF-8483-4772-8E79-3D69D8477DE4"},
		{"pwgate-data", "0FC63DAF-8483-4772-8E79-3D69D8477DE4"},
	}
	if len(ps) != len(want) {
		return fmt.Errorf("%d partitions, want %d", len(ps), len(want))
	}
	byName := map[string]partition{}
	for i, w := range want {
		if ps[i].Name != w.name || !strings.EqualFold(ps[i].Type, w.typ) {
			return fmt.Errorf("partition %d is %q (type %s), want %q (type %s)", i+1, ps[i].Name, ps[i].Type, w.name, w.typ)
		}
		byName[w.name] = ps[i]
	}
	fmt.Printf("pwimagetest: partitions: %s\n", describe(ps))
	fat := func(part, path string) (string, error) {
		out, err := exec.Command("mtype", "-i", fmt.Sprintf("%s@@%d", image, byName[part].Start), "::"+path).Output()
		if err != nil {
			return "", fmt.Errorf("%s: %s: %w", part, path, err)
		}
		return string(out), nil
	}
	for _, f := range []struct{ part, path, has string }{
		{"ESP", "/loader/loader.conf", "default pwgate-*"},
		{"ESP", "/loader/entries/pwgate-a.conf", "root=PARTLABEL=root-a"},
		{"ESP", "/EFI/BOOT/BOOTX64.EFI", "systemd-boot"},
		{"ESP", "/a/vmlinuz", "HdrS"},
		{"pwgate-config", "/README.txt", "update.env"},
		{"pwgate-config", "/pwgated.yaml.example", "mode:"},
		{"pwgate-config", "/syslog.yaml.example", "servers:"},
	} {
		out, err := fat(f.part, f.path)
		if err != nil {
			return err
		}
		if !strings.Contains(out, f.has) {
			return fmt.Errorf("%s: %s lacks %q", f.part, f.path, f.has)
		}
	}
	fmt.Println("pwimagetest: ESP: systemd-boot, loader.conf, slot A's entry, kernel; configuration partition: README and examples")

	// Slot A's squashfs and the bundle's root are the same bytes.
	f, err := os.Open(strings.TrimSuffix(image, ".img") + ".update")
	if err != nil {
		return fmt.Errorf("the update bundle: %w", err)
	}
	defer f.Close()
	b, err := update.Open(f, nil)
	if err != nil {
		return err
	}
	root := b.Manifest.Files[0]
	img, err := os.Open(image)
	if err != nil {
		return err
	}
	defer img.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(img, byName["root-a"].Start, root.Size)); err != nil {
		return err
	}
	if !bytes.Equal(h.Sum(nil), root.SHA256[:]) {
		return errors.New("slot A does not hold the bundle's root.sqfs")
	}
	if root.Size > byName["root-b"].Size {
		return fmt.Errorf("root.sqfs (%d bytes) does not fit slot B (%d)", root.Size, byName["root-b"].Size)
	}
	fmt.Printf("pwimagetest: bundle pwgate %s: its root.sqfs (%d MiB) is slot A's, and fits slot B (%d MiB)\n", b.Manifest.Version, root.Size>>20, byName["root-b"].Size>>20)

	// What the root file system must hold.
	dir, err := os.MkdirTemp("", "pwimagecheck")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	sq := filepath.Join(dir, "root.sqfs")
	out, err := os.Create(sq)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, io.NewSectionReader(img, byName["root-a"].Start, root.Size))
	out.Close()
	if err != nil {
		return err
	}
	list, err := exec.Command("unsquashfs", "-l", "-d", "", sq).Output()
	if err != nil {
		return fmt.Errorf("unsquashfs -l: %w", err)
	}
	files := map[string]bool{}
	for _, l := range strings.Split(string(list), "\n") {
		files[strings.TrimPrefix(l, "/")] = true
	}
	for _, p := range []string{"usr/local/sbin/pwgated", "usr/local/bin/pwctl", "usr/lib/nagios/plugins/check_pwbpdu", "usr/lib/nagios/plugins/check_pwbgp", "usr/lib/nagios/plugins/check_pwpath",
		"etc/systemd/system/pwgated.service", "etc/systemd/system/pwgate-boot-check.service", "etc/systemd/system/pwgate-machine-id.service",
		"etc/systemd/system/boot-complete.target.requires/pwgate-boot-check.service", "usr/lib/systemd/systemd-bless-boot", "etc/fstab", "etc/pwgate-release",
		"usr/bin/man", "usr/share/man/man5/pwgated.yaml.5.gz", "usr/share/man/man1/pwctl.1.gz",
		"usr/lib/systemd/systemd-timesyncd", "etc/systemd/timesyncd.conf.d/pwgate.conf",
		"usr/sbin/rsyslogd", "etc/systemd/system/pwgate-syslog.service", "etc/systemd/system/multi-user.target.wants/pwgate-syslog.service",
		"etc/systemd/system.conf.d/pwgate-watchdog.conf", "etc/initramfs-tools/scripts/init-bottom/pwgate-watchdog"} {
		if !files[p] {
			return fmt.Errorf("the root file system lacks /%s", p)
		}
	}
	fstab, err := exec.Command("unsquashfs", "-cat", sq, "etc/fstab").Output()
	if err != nil {
		return err
	}
	for _, m := range []string{"/var", "/config", "/efi"} {
		if !strings.Contains(string(fstab), " "+m+" ") {
			return fmt.Errorf("/etc/fstab does not mount %s:\n%s", m, fstab)
		}
	}
	fmt.Printf("pwimagetest: root file system: %d paths, pwgated and its units, man pages, systemd-bless-boot, systemd-timesyncd, rsyslogd and pwgate-syslog.service, the hardware watchdog's settings, /var /config /efi in fstab\n", len(files))
	return nil
}

func describe(ps []partition) string {
	var s []string
	for _, p := range ps {
		s = append(s, fmt.Sprintf("%s %d MiB", p.Name, p.Size>>20))
	}
	return strings.Join(s, ", ")
}
