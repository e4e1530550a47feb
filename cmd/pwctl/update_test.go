package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pwgate/pwgate/control/update"
)

// applianceRoot lays out what pwctl update touches under a directory:
// slot a booted and blessed (serial 100), slot b's partition a file, the
// configuration partition mounted.
func applianceRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	a := update.Appliance()
	for _, d := range []string{a.ESP + "/loader/entries", a.Parts, filepath.Dir(a.Cmdline), a.EFIVars, filepath.Dir(a.Release), filepath.Dir(a.Mountinfo)} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range map[string]string{
		a.ESP + "/loader/entries/pwgate-a.conf": update.EntryText("a", "v1", 1, ""),
		a.Parts + "/root-b":                     "",
		a.Cmdline:                               "ro pwgate.slot=a\n",
		a.Release:                               "pwgate v1\nserial 100\n",
		a.Mountinfo:                             "24 22 8:4 / " + filepath.Join(root, filepath.Dir(a.PublicKey)) + " rw - vfat /dev/sda4 rw\n",
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func pwctlIn(stdin string, args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

func TestUpdateCommand(t *testing.T) {
	root := applianceRoot(t)
	dir := t.TempDir()
	var files []string
	for _, n := range update.Files {
		files = append(files, filepath.Join(dir, n))
		os.WriteFile(files[len(files)-1], []byte(n), 0o644)
	}
	key, _, code := pwctlIn("", "update", "genkey")
	if code != 0 {
		t.Fatal("genkey failed")
	}
	os.WriteFile(filepath.Join(dir, "key"), []byte(key), 0o600)
	pub, _, code := pwctlIn(key, "update", "pubkey")
	if code != 0 {
		t.Fatal("pubkey failed")
	}
	os.MkdirAll(filepath.Join(root, "config"), 0o755)
	os.WriteFile(filepath.Join(root, "config/update.pub"), []byte(pub), 0o644)
	bundle := filepath.Join(dir, "x.update")
	if _, e, code := pwctlIn("", append([]string{"update", "pack", "--version", "v2", "--serial", "200", "--key", filepath.Join(dir, "key"), "--out", bundle}, files...)...); code != 0 {
		t.Fatalf("pack: %s", e)
	}
	out, e, code := pwctlIn("", "update", bundle, "--root", root, "--no-reboot")
	if code != 0 || !strings.Contains(out, "slot b holds pwgate v2 and boots next") {
		t.Fatalf("update: exit %d\n%s%s", code, out, e)
	}
	out, _, code = pwctlIn("", "update", "--root", root, "--status")
	for _, want := range []string{"booted:       slot a", "boots next:   slot b", "slot b:       pwgate v2, generation 2, trial pending", "signature checked", "outcome:      waiting: slot b boots next", "pwgate v2 (serial 200) into slot b"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if out, _, _ := pwctlIn("", "update", "entry", "a", "v9", "7"); out != update.EntryText("a", "v9", 7, "") {
		t.Errorf("entry: %q", out)
	}
	// A box that is not on trial passes its boot check at once.
	if out, e, code := pwctlIn("", "update", "check-boot", "--root", root, "--deadline", "1ms"); code != 0 || !strings.Contains(out, "not a trial boot") {
		t.Errorf("check-boot: %d %s%s", code, out, e)
	}
}

func TestUpdateCommandErrors(t *testing.T) {
	root := applianceRoot(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"update"}, 2, "usage"},
		{[]string{"update", "--status", "x"}, 2, "no operand"},
		{[]string{"update", "pack", "a", "b", "c"}, 2, "--out"},
		{[]string{"update", "entry", "c", "v", "1"}, 2, "SLOT"},
		{[]string{"update", "check-boot", "--want", "ospf"}, 2, "ospf"},
		{[]string{"update", "pubkey"}, 1, "private key"},
		{[]string{"update", "/nonexistent.update", "--root", root}, 1, "no such file"},
		{[]string{"update", "-", "--root", root, "--no-reboot"}, 1, "not a pwgate update"},
		{[]string{"update", "-", "--root", root, "--tries", "0"}, 1, "tries 0"},
		{[]string{"update", "--status"}, 1, "pwgate.slot="}, // this machine is not an appliance
	} {
		_, e, code := pwctlIn("garbage", tc.args...)
		if code != tc.code || !strings.Contains(e, tc.want) {
			t.Errorf("%v: exit %d, %q; want %d and %q", tc.args, code, e, tc.code, tc.want)
		}
	}
}

// An older build is refused unless --allow-downgrade; pack needs a
// serial; a box whose configuration partition is not mounted installs
// nothing.
func TestUpdateCommandSerials(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for _, n := range update.Files {
		files = append(files, filepath.Join(dir, n))
		os.WriteFile(files[len(files)-1], []byte(n), 0o644)
	}
	pack := func(serial string) string {
		out := filepath.Join(dir, serial+".update")
		if _, e, code := pwctlIn("", append([]string{"update", "pack", "--version", "v0.9", "--serial", serial, "--out", out}, files...)...); code != 0 {
			t.Fatalf("pack: %s", e)
		}
		return out
	}
	older, none := pack("99"), pack("0")
	for _, tc := range []struct {
		name string
		args []string
		prep func(root string)
		code int
		want string
	}{
		{"older", []string{older}, nil, 1, "pwgate v0.9 (serial 99) is older than the running root (serial 100): refused as a downgrade (pwctl update --allow-downgrade installs it anyway) (the booted slot is unchanged"},
		{"no serial", []string{none}, nil, 1, "refused as a downgrade"},
		{"older, allowed", []string{older, "--allow-downgrade"}, nil, 0, "downgrading (--allow-downgrade): pwgate v0.9 has serial 99, the running root 100"},
		{"no serial, allowed", []string{"--allow-downgrade", none}, nil, 0, "slot b holds pwgate v0.9"},
		{"configuration not mounted", []string{older, "--allow-downgrade"}, func(root string) {
			os.WriteFile(filepath.Join(root, update.Appliance().Mountinfo), nil, 0o644)
		}, 1, "config is not mounted"},
		{"pack without a serial", []string{"pack", "--version", "v", "--out", filepath.Join(dir, "x"), files[0], files[1], files[2]}, nil, 2, "--serial N is required"},
		{"pack with a negative serial", []string{"pack", "--version", "v", "--serial", "-2", "--out", filepath.Join(dir, "x"), files[0], files[1], files[2]}, nil, 2, "--serial N is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := applianceRoot(t)
			if tc.prep != nil {
				tc.prep(root)
			}
			out, e, code := pwctlIn("", append(append([]string{"update"}, tc.args...), "--root", root, "--no-reboot")...)
			if code != tc.code || !strings.Contains(out+e, tc.want) {
				t.Errorf("exit %d, want %d and %q:\n%s%s", code, tc.code, tc.want, out, e)
			}
		})
	}
	if _, e, _ := pwctlIn("", "update", "--help"); !strings.Contains(e, "--allow-downgrade") {
		t.Errorf("the usage does not name --allow-downgrade:\n%s", e)
	}
}
