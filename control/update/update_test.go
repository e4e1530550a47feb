package update

import (
	"bytes"
	"crypto/ed25519"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pwgate/pwgate/control/client"
)

// box is an appliance in a directory: slot a booted and blessed (serial
// runningSerial), slot b's partition a file of slotSize bytes, the
// configuration partition mounted.
type box struct {
	System
	dir string
}

const (
	slotSize      = 64 << 10
	runningSerial = 100
	newerSerial   = 200 // bundle's
)

func newBox(t *testing.T) *box {
	t.Helper()
	dir := t.TempDir()
	s := System{ESP: filepath.Join(dir, "efi"), Parts: filepath.Join(dir, "parts"), Cmdline: filepath.Join(dir, "cmdline"),
		State: filepath.Join(dir, "var/update.json"), PublicKey: filepath.Join(dir, "config/update.pub"), EFIVars: filepath.Join(dir, "efivars"),
		MachineID: filepath.Join(dir, "var/machine-id"), Journal: filepath.Join(dir, "var/journal"),
		Mountinfo: filepath.Join(dir, "mountinfo"), Release: filepath.Join(dir, "etc/pwgate-release")}
	for _, d := range []string{s.ESP + "/loader/entries", s.ESP + "/a", s.Parts, s.EFIVars, filepath.Dir(s.PublicKey), filepath.Dir(s.Release)} {
		must(t, os.MkdirAll(d, 0o755))
	}
	must(t, os.WriteFile(s.Mountinfo, []byte(mountinfo(filepath.Dir(s.PublicKey))), 0o644))
	must(t, os.WriteFile(s.Release, []byte(fmt.Sprintf("pwgate v1\nserial %d\n", runningSerial)), 0o644))
	must(t, os.WriteFile(s.ESP+"/loader/entries/pwgate-a.conf", []byte(EntryText("a", "v1", 1, "")), 0o644))
	for _, slot := range Slots {
		must(t, os.WriteFile(filepath.Join(s.Parts, "root-"+slot), make([]byte, slotSize), 0o644))
	}
	b := &box{System: s, dir: dir}
	b.boot("a")
	return b
}

// boot is what systemd-boot and the kernel do: the entry it picks counts
// a try, the kernel's command line names its slot, and the EFI variable
// says whether this boot is a trial.
func (b *box) boot(slot string) {
	must(nil, os.WriteFile(b.Cmdline, []byte("root=PARTLABEL=root-"+slot+" pwgate.slot="+slot+"\n"), 0o644))
	os.Remove(filepath.Join(b.EFIVars, bootCountVar))
	es, _ := b.Entries()
	e := es[slot]
	if e.TriesLeft > 0 {
		n := fmt.Sprintf("pwgate-%s+%d-%d.conf", slot, e.TriesLeft-1, e.TriesDone+1)
		must(nil, os.Rename(filepath.Join(b.entriesDir(), e.File), filepath.Join(b.entriesDir(), n)))
		must(nil, os.WriteFile(filepath.Join(b.EFIVars, bootCountVar), []byte("x"), 0o644))
	}
}

// bless is systemd-bless-boot.
func (b *box) bless(slot string) {
	es, _ := b.Entries()
	must(nil, os.Rename(filepath.Join(b.entriesDir(), es[slot].File), filepath.Join(b.entriesDir(), "pwgate-"+slot+".conf")))
}

func must(t *testing.T, err error) {
	if err != nil {
		if t == nil {
			panic(err)
		}
		t.Helper()
		t.Fatal(err)
	}
}

// mountinfo is a mount table in which config is mounted (among others).
func mountinfo(config string) string {
	return "22 1 0:20 / / ro,relatime - squashfs /dev/sda2 ro\n" +
		"23 22 0:21 / /var rw - ext4 /dev/sda5 rw\n" +
		"24 22 8:4 / " + strings.ReplaceAll(config, " ", "\\040") + " rw,relatime - vfat /dev/sda4 rw,umask=0077\n"
}

// bundle packs a bundle of version (serial newerSerial) with a root of n bytes.
func bundle(t *testing.T, version string, n int, key ed25519.PrivateKey) []byte {
	t.Helper()
	return serialBundle(t, version, newerSerial, n, key)
}

// serialBundle packs a bundle of version and serial with a root of n bytes.
func serialBundle(t *testing.T, version string, serial int64, n int, key ed25519.PrivateKey) []byte {
	t.Helper()
	dir := t.TempDir()
	var paths []string
	for i, name := range Files {
		p := filepath.Join(dir, name)
		size := 100 + i
		if i == 0 {
			size = n
		}
		must(t, os.WriteFile(p, bytes.Repeat([]byte{byte('A' + i)}, size), 0o644))
		paths = append(paths, p)
	}
	var buf bytes.Buffer
	must(t, Pack(&buf, version, serial, paths, key))
	return buf.Bytes()
}

func quiet(string, ...any) {}

func TestInstallTrialBlessed(t *testing.T) {
	b := newBox(t)
	rec, err := b.Install(bytes.NewReader(bundle(t, "v2", 5000, nil)), 1, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if rec.To != "b" || rec.Generation != 2 || !rec.Written || rec.Signed {
		t.Errorf("record %+v", rec)
	}
	root, _ := os.ReadFile(filepath.Join(b.Parts, "root-b"))
	if !bytes.Equal(root[:5000], bytes.Repeat([]byte{'A'}, 5000)) {
		t.Error("slot b does not hold root.sqfs")
	}
	if k, _ := os.ReadFile(b.ESP + "/b/vmlinuz"); len(k) != 101 {
		t.Errorf("vmlinuz: %d bytes", len(k))
	}
	st, err := b.Status()
	must(t, err)
	if st.Next != "b" || st.Entries["b"].File != "pwgate-b+1.conf" || !strings.HasPrefix(st.Outcome, "waiting") {
		t.Errorf("after install: %+v", st)
	}
	b.boot("b")
	if !b.Trial() {
		t.Fatal("the new slot's first boot is not a trial")
	}
	must(t, b.CheckBoot(time.Second, time.Millisecond, func() (bool, string) { return true, "" }, quiet))
	b.bless("b")
	st, err = b.Status()
	must(t, err)
	if st.Next != "b" || st.States["b"] != "good" || !strings.HasPrefix(st.Outcome, "blessed: slot b") {
		t.Errorf("after the blessing: %+v", st)
	}
	b.boot("b") // and it stays
	if b.Trial() {
		t.Error("a blessed slot boots on trial")
	}
	// The next update goes into slot a, with the next generation.
	rec, err = b.Install(bytes.NewReader(bundle(t, "v3", 100, nil)), 2, quiet)
	must(t, err)
	if rec.To != "a" || rec.Generation != 3 {
		t.Errorf("second update: %+v", rec)
	}
	if es, _ := b.Entries(); es["a"].File != "pwgate-a+2.conf" || es["a"].Version != "v3" {
		t.Errorf("slot a's entry: %+v", es["a"])
	}
}

func TestInstallTrialFailsAndRollsBack(t *testing.T) {
	b := newBox(t)
	_, err := b.Install(bytes.NewReader(bundle(t, "v2", 5000, nil)), 1, quiet)
	must(t, err)
	b.boot("b")
	err = b.CheckBoot(20*time.Millisecond, time.Millisecond, func() (bool, string) { return false, "pwgated not ready: starting" }, quiet)
	if err == nil || !strings.Contains(err.Error(), "rebooting into slot a") {
		t.Fatalf("CheckBoot: %v", err)
	}
	// The box reboots; systemd-boot passes over the entry without tries.
	es, _ := b.Entries()
	if next := NextBoot(es); next != "a" {
		t.Fatalf("after a failed trial slot %s boots (entries %+v)", next, es)
	}
	b.boot("a")
	st, err := b.Status()
	must(t, err)
	if !strings.Contains(st.Outcome, "rolled back: slot b failed its trial boot (not healthy within 20ms: pwgated not ready: starting)") ||
		st.States["b"] != "bad (failed its trial boot)" || st.States["a"] != "good" {
		t.Errorf("status after the rollback: %+v", st)
	}
	// Updating again is allowed and writes slot b again.
	rec, err := b.Install(bytes.NewReader(bundle(t, "v2.1", 100, nil)), 1, quiet)
	must(t, err)
	if rec.To != "b" || rec.Generation != 3 {
		t.Errorf("update after a rollback: %+v", rec)
	}
}

func TestNotATrial(t *testing.T) {
	b := newBox(t)
	called := false
	must(t, b.CheckBoot(time.Millisecond, time.Millisecond, func() (bool, string) { called = true; return false, "x" }, quiet))
	if called {
		t.Error("a normal boot was judged")
	}
}

// Whatever goes wrong while a slot is written, the booted slot stays
// the one that boots and the other is not bootable.
func TestInstallFailuresLeaveTheBootedSlot(t *testing.T) {
	good := bundle(t, "v2", 5000, nil)
	damaged := bytes.Clone(good)
	damaged[bytes.Index(damaged, bytes.Repeat([]byte{'A'}, 100))+50] ^= 1
	_, priv, _ := ed25519.GenerateKey(nil)
	for _, tc := range []struct {
		name, want string
		data       []byte
		prep       func(*box)
	}{
		{"damaged root", "the bundle is damaged", damaged, nil},
		{"cut short (power loss while copying)", "root.sqfs", good[:len(good)/2], nil},
		{"not a bundle", "not a pwgate update", []byte("hello"), nil},
		{"root larger than the slot", "the slot", bundle(t, "v2", slotSize+1, nil), func(b *box) {
			// a real partition does not grow: make it a directory's device stand-in
			must(t, os.Remove(filepath.Join(b.Parts, "root-b")))
			must(t, os.Symlink("/dev/zero", filepath.Join(b.Parts, "root-b")))
		}},
		{"no slot partition", "slot partition", good, func(b *box) { must(t, os.Remove(filepath.Join(b.Parts, "root-b"))) }},
		{"unsigned with a key configured", "not signed", good, func(b *box) {
			must(t, os.WriteFile(b.PublicKey, []byte(EncodeKey(priv.Public().(ed25519.PublicKey))), 0o644))
		}},
		{"signed with another key", "does not match", bundle(t, "v2", 10, priv), func(b *box) {
			pub, _, _ := ed25519.GenerateKey(nil)
			must(t, os.WriteFile(b.PublicKey, []byte(EncodeKey(pub)), 0o644))
		}},
		{"the booted slot is on trial", "on trial", good, func(b *box) {
			must(t, os.Rename(b.ESP+"/loader/entries/pwgate-a.conf", b.ESP+"/loader/entries/pwgate-a+0-1.conf"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBox(t)
			// slot b held an older, bootable version before
			must(t, os.WriteFile(b.ESP+"/loader/entries/pwgate-b.conf", []byte(EntryText("b", "v0", 0, "")), 0o644))
			if tc.prep != nil {
				tc.prep(b)
			}
			before, err := b.Entries()
			must(t, err)
			_, err = b.Install(bytes.NewReader(tc.data), 1, quiet)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
			es, err := b.Entries()
			must(t, err)
			if es["a"] != before["a"] {
				t.Errorf("the booted slot's entry changed: %+v", es["a"])
			}
			if e, ok := es["b"]; ok && e != before["b"] {
				t.Errorf("slot b has an entry for what was not written: %+v", e)
			}
			if next := NextBoot(es); next != NextBoot(before) && next != "a" {
				t.Errorf("slot %s boots next (entries %+v)", next, es)
			}
			if st, err := b.Status(); err == nil && st.Last != nil && st.Last.Written {
				t.Errorf("the record says written: %+v", st.Last)
			}
		})
	}
}

func TestSigned(t *testing.T) {
	b := newBox(t)
	pub, priv, _ := ed25519.GenerateKey(nil)
	must(t, os.WriteFile(b.PublicKey, []byte(EncodeKey(pub)+"\n"), 0o644))
	rec, err := b.Install(bytes.NewReader(bundle(t, "v2", 10, priv)), 1, quiet)
	must(t, err)
	if !rec.Signed {
		t.Error("a checked signature is not recorded")
	}
}

func TestNotBootedFromASlot(t *testing.T) {
	b := newBox(t)
	must(t, os.WriteFile(b.Cmdline, []byte("root=/dev/sda1\n"), 0o644))
	if _, err := b.Install(bytes.NewReader(bundle(t, "v2", 10, nil)), 1, quiet); err == nil || !strings.Contains(err.Error(), "pwgate.slot=") {
		t.Errorf("got %v", err)
	}
	if _, err := b.Install(nil, 0, quiet); err == nil || !strings.Contains(err.Error(), "tries 0") {
		t.Errorf("tries 0: %v", err)
	}
}

func TestNextBoot(t *testing.T) {
	e := func(slot string, gen, left int) Entry { return Entry{Slot: slot, Generation: gen, TriesLeft: left} }
	for _, tc := range []struct {
		a, b Entry
		want string
	}{
		{e("a", 1, -1), e("b", 2, 1), "b"},  // a trial boots first
		{e("a", 1, -1), e("b", 2, 0), "a"},  // a failed trial sorts last
		{e("a", 1, -1), e("b", 2, -1), "b"}, // blessed: the newest
		{e("a", 3, 1), e("b", 2, -1), "a"},
	} {
		if got := NextBoot(map[string]Entry{"a": tc.a, "b": tc.b}); got != tc.want {
			t.Errorf("%+v %+v: %s, want %s", tc.a, tc.b, got, tc.want)
		}
	}
	if got := NextBoot(map[string]Entry{"a": e("a", 1, -1)}); got != "a" {
		t.Errorf("one entry: %s", got)
	}
}

func TestParseManifestErrors(t *testing.T) {
	ok := Manifest{Version: "v1"}
	for _, n := range Files {
		ok.Files = append(ok.Files, File{Name: n, Size: 1})
	}
	if _, err := ParseManifest(ok.Marshal()); err != nil {
		t.Fatal(err)
	}
	text := string(ok.Marshal())
	for name, bad := range map[string]string{
		"magic":      strings.Replace(text, magic, "pwgate-update 2", 1),
		"no version": strings.Replace(text, "version v1\n", "", 1),
		"bad size":   strings.Replace(text, "root.sqfs 1", "root.sqfs -1", 1),
		"bad hash":   strings.Replace(text, " 0000", " zz00", 1),
		"order":      strings.Replace(strings.Replace(text, "vmlinuz", "X", 1), "initrd.img", "vmlinuz", 1),
		"missing":    text[:strings.LastIndex(strings.TrimSuffix(text, "\n"), "\n")+1],
		"junk":       text + "hello\n",
	} {
		if _, err := ParseManifest([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := Pack(&bytes.Buffer{}, "two words", 1, nil, nil); err == nil {
		t.Error("a version with a space packed")
	}
}

func TestHealthy(t *testing.T) {
	now := time.Now()
	ready := client.Status{Ready: true}
	for _, tc := range []struct {
		st    client.Status
		wants []string
		ok    bool
		why   string
	}{
		{client.Status{NotReady: "no next hop"}, nil, false, "no next hop"},
		{ready, nil, true, ""},
		{ready, []string{"bpdu"}, false, "no BPDU"},
		{client.Status{Ready: true, LastBPDU: client.BPDUTimes{UL: &now}}, []string{"bpdu"}, true, ""},
		{ready, []string{"bgp"}, false, "no BGP sessions"},
		{client.Status{Ready: true, BGP: &client.BGP{Neighbors: []client.Neighbor{{Neighbor: "fe80::1", State: "active"}}}}, []string{"bgp"}, false, "fe80::1 is active"},
		{client.Status{Ready: true, BGP: &client.BGP{Neighbors: []client.Neighbor{{State: "established"}}}}, []string{"bgp"}, true, ""},
	} {
		ok, why := Healthy(tc.st, tc.wants)
		if ok != tc.ok || !strings.Contains(why, tc.why) {
			t.Errorf("%+v %v: %v %q", tc.st, tc.wants, ok, why)
		}
	}
	if _, err := ParseWants("bpdu,ospf"); err == nil {
		t.Error("ospf accepted")
	}
	if w, err := ParseWants("bpdu,bgp"); err != nil || len(w) != 2 {
		t.Errorf("%v %v", w, err)
	}
}

func FuzzOpen(f *testing.F) {
	f.Add([]byte("pwgate-update 1\nversion v\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := ParseManifest(b); err == nil {
			if _, err := ParseManifest(m.Marshal()); err != nil {
				t.Fatalf("a parsed manifest does not parse again: %v", err)
			}
		}
		bu, err := Open(bytes.NewReader(b), nil)
		if err != nil {
			return
		}
		for range Files {
			if _, err := bu.Copy(io.Discard); err != nil {
				return
			}
		}
		if _, err := bu.Copy(io.Discard); err == nil {
			t.Fatal("a fourth file copied")
		}
	})
}

func TestPinMachineID(t *testing.T) {
	b := newBox(t)
	const first, second = "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210"
	must(t, os.MkdirAll(filepath.Join(b.Journal, first), 0o755))
	must(t, os.WriteFile(b.ESP+"/loader/entries/pwgate-b+0-1.conf", []byte(EntryText("b", "v0", 0, "")), 0o644))
	// First boot: the transient ID is kept and goes onto both entries.
	must(t, b.PinMachineID(first, quiet))
	es, err := b.Entries()
	must(t, err)
	if es["a"].MachineID != first || es["b"].MachineID != first || es["b"].File != "pwgate-b+0-1.conf" || es["a"].Generation != 1 || es["a"].Version != "v1" {
		t.Errorf("entries after the first boot: %+v", es)
	}
	// A boot that came up with another ID (the entry was not yet
	// rewritten) keeps the pinned one and the journals.
	must(t, os.MkdirAll(filepath.Join(b.Journal, second), 0o755))
	must(t, b.PinMachineID(second, quiet))
	if id, _ := os.ReadFile(b.MachineID); strings.TrimSpace(string(id)) != first {
		t.Errorf("the kept ID changed to %q", id)
	}
	if _, err := os.Stat(filepath.Join(b.Journal, second)); err != nil {
		t.Error("a journal was removed before the box booted with its kept ID")
	}
	// Booted with it: the other boots' journals go.
	must(t, b.PinMachineID(first, quiet))
	if _, err := os.Stat(filepath.Join(b.Journal, second)); err == nil {
		t.Error("the journal of a boot with another ID was kept")
	}
	if _, err := os.Stat(filepath.Join(b.Journal, first)); err != nil {
		t.Error("the current journal was removed")
	}
	// An update's entry carries it.
	must(t, os.Remove(b.ESP+"/loader/entries/pwgate-b+0-1.conf"))
	_, err = b.Install(bytes.NewReader(bundle(t, "v2", 10, nil)), 1, quiet)
	must(t, err)
	if es, _ := b.Entries(); es["b"].MachineID != first {
		t.Errorf("the update's entry: %+v", es["b"])
	}
	if err := b.PinMachineID("nonsense", quiet); err == nil {
		t.Error("a bad machine ID accepted")
	}
}
