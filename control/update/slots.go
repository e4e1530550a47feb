package update

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// System is where an appliance keeps what updates touch. Tests point it
// at a temporary directory.
type System struct {
	ESP       string // the EFI system partition's mount point
	Parts     string // partitions by GPT label (root-a, root-b)
	Cmdline   string // the kernel's command line (pwgate.slot=)
	State     string // the record of the last update, on the data partition
	PublicKey string // Ed25519 key updates must be signed with; absent (its directory mounted): none
	Mountinfo string // the kernel's mount table: PublicKey's directory must be mounted
	Release   string // the running root's release file: its version and serial
	EFIVars   string // efivarfs (LoaderBootCountPath: a trial boot)
	MachineID string // the box's machine ID, kept on the data partition
	Journal   string // journald's persistent directory
}

// Appliance is the image's layout (hw/image).
func Appliance() System {
	return System{ESP: "/efi", Parts: "/dev/disk/by-partlabel", Cmdline: "/proc/cmdline",
		State: "/var/lib/pwgate/update.json", PublicKey: "/config/update.pub", Mountinfo: "/proc/self/mountinfo",
		Release: "/etc/pwgate-release", EFIVars: "/sys/firmware/efi/efivars",
		MachineID: "/var/lib/pwgate/machine-id", Journal: "/var/log/journal"}
}

// Slots are the root slots.
var Slots = []string{"a", "b"}

// Entry is one slot's boot loader entry: loader/entries/pwgate-SLOT[+LEFT[-DONE]].conf.
type Entry struct {
	File       string `json:"file"`
	Slot       string `json:"slot"`
	Version    string `json:"version"`    // pwgate's
	Generation int    `json:"generation"` // the entry's "version": the newest boots first
	TriesLeft  int    `json:"tries_left"` // -1: no boot counting (blessed)
	TriesDone  int    `json:"tries_done"`
	MachineID  string `json:"machine_id,omitempty"` // systemd.machine_id= on its command line
}

var entryName = regexp.MustCompile(`^pwgate-([ab])(?:\+(\d+)(?:-(\d+))?)?\.conf$`)

// EntryText is the boot loader entry of a slot holding version. The sort
// key and generation make systemd-boot choose the newest entry that has
// tries left (or none to count), so that a slot on trial boots first and
// a slot that failed its trial sorts last by itself. machineID, if not
// empty, is the box's (PinMachineID): the root is read-only, and without
// it each boot would have a new one.
func EntryText(slot, version string, generation int, machineID string) string {
	id := ""
	if machineID != "" {
		id = " systemd.machine_id=" + machineID
	}
	return fmt.Sprintf(`title pwgate %s (slot %s)
sort-key pwgate
version %d
linux /%s/vmlinuz
initrd /%s/initrd.img
options root=PARTLABEL=root-%s rootfstype=squashfs ro console=tty0 console=ttyS0,115200 panic=10 pwgate.slot=%s%s
`, version, strings.ToUpper(slot), generation, slot, slot, slot, slot, id)
}

func (s System) entriesDir() string { return filepath.Join(s.ESP, "loader", "entries") }

// Entries lists the slots' boot loader entries, by slot.
func (s System) Entries() (map[string]Entry, error) {
	des, err := os.ReadDir(s.entriesDir())
	if err != nil {
		return nil, err
	}
	out := map[string]Entry{}
	for _, de := range des {
		m := entryName.FindStringSubmatch(de.Name())
		if m == nil {
			continue
		}
		e := Entry{File: de.Name(), Slot: m[1], TriesLeft: -1}
		if m[2] != "" {
			e.TriesLeft, _ = strconv.Atoi(m[2])
			if m[3] != "" {
				e.TriesDone, _ = strconv.Atoi(m[3])
			}
		}
		b, err := os.ReadFile(filepath.Join(s.entriesDir(), de.Name()))
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			switch {
			case len(f) >= 3 && f[0] == "title" && f[1] == "pwgate":
				e.Version = f[2]
			case len(f) == 2 && f[0] == "version":
				e.Generation, _ = strconv.Atoi(f[1])
			case len(f) > 1 && f[0] == "options":
				for _, o := range f[1:] {
					if id, ok := strings.CutPrefix(o, "systemd.machine_id="); ok {
						e.MachineID = id
					}
				}
			}
		}
		if old, dup := out[e.Slot]; dup {
			return nil, fmt.Errorf("two boot entries for slot %s: %s and %s", e.Slot, old.File, e.File)
		}
		out[e.Slot] = e
	}
	return out, nil
}

// State says what an entry's file name says, from the booted slot's view.
func (e Entry) State(booted string) string {
	switch {
	case e.TriesLeft < 0:
		return "good"
	case e.Slot == booted:
		return "on trial (this boot; blessed when healthy)"
	case e.TriesLeft > 0:
		return "trial pending (boots next)"
	default:
		return "bad (failed its trial boot)"
	}
}

// NextBoot is the slot systemd-boot picks from entries, as it sorts them
// (our entries all carry the same sort key): entries with no tries left
// last, then the highest generation ("version") first.
func NextBoot(entries map[string]Entry) string {
	best := ""
	for _, slot := range Slots {
		e, ok := entries[slot]
		if !ok {
			continue
		}
		if best == "" {
			best = slot
			continue
		}
		b := entries[best]
		if bad, bbad := e.TriesLeft == 0, b.TriesLeft == 0; bad != bbad {
			if !bad {
				best = slot
			}
			continue
		}
		if e.Generation > b.Generation {
			best = slot
		}
	}
	return best
}

// BootedSlot is the slot the running system came from.
func (s System) BootedSlot() (string, error) {
	b, err := os.ReadFile(s.Cmdline)
	if err != nil {
		return "", err
	}
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, "pwgate.slot="); ok && (v == "a" || v == "b") {
			return v, nil
		}
	}
	return "", errors.New("not booted from a pwgate slot (no pwgate.slot= on the kernel command line)")
}

// Other is the slot that is not slot.
func Other(slot string) string {
	if slot == "a" {
		return "b"
	}
	return "a"
}

// Record is what the last update did, kept on the data partition.
type Record struct {
	Started    time.Time `json:"started"`
	From       string    `json:"from"`
	To         string    `json:"to"`
	Version    string    `json:"version"`
	Serial     int64     `json:"serial,omitempty"` // the manifest's
	Generation int       `json:"generation"`
	Signed     bool      `json:"signed"`
	Written    bool      `json:"written"` // every file written and checked; the entry made
	Trial      string    `json:"trial,omitempty"`
}

func (s System) readRecord() (*Record, error) {
	b, err := os.ReadFile(s.State)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", s.State, err)
	}
	return &r, nil
}

func (s System) writeRecord(r Record) error {
	b, _ := json.MarshalIndent(r, "", "  ")
	return writeFileSync(s.State, append(b, '\n'))
}

// publicKey is the configured signing key, or nil when the configuration
// partition is mounted and holds none (unsigned bundles are then
// accepted). It fails closed: when the key's partition is not mounted
// (its fstab line says nofail) nobody can tell whether a key is
// configured, and that is an error, not "no key".
func (s System) publicKey() (ed25519.PublicKey, error) {
	b, err := os.ReadFile(s.PublicKey)
	if errors.Is(err, os.ErrNotExist) {
		dir := filepath.Dir(s.PublicKey)
		mounted, err := isMountPoint(s.Mountinfo, dir)
		if err != nil {
			return nil, fmt.Errorf("is the configuration partition mounted: %w", err)
		}
		if !mounted {
			return nil, fmt.Errorf("%s is not mounted: the configuration partition would say whether updates must be signed (update.pub), so nothing is installed until it is", dir)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the update key: %w", err)
	}
	k, err := DecodeKey(string(b), ed25519.PublicKeySize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.PublicKey, err)
	}
	return k, nil
}

// isMountPoint says whether dir is a mount point in mountinfo (the
// format of /proc/self/mountinfo: the fifth field, octal escapes).
func isMountPoint(mountinfo, dir string) (bool, error) {
	b, err := os.ReadFile(mountinfo)
	if err != nil {
		return false, err
	}
	dir = filepath.Clean(dir)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && filepath.Clean(unescapeMount(f[4])) == dir {
			return true, nil
		}
	}
	return false, nil
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// RunningSerial is the serial of the running root (its release file's
// "serial N" line), 0 for a root built before serials.
func (s System) RunningSerial() (int64, error) {
	b, err := os.ReadFile(s.Release)
	if err != nil {
		return 0, fmt.Errorf("the running version: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "serial "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("%s: bad serial %q", s.Release, v)
			}
			return n, nil
		}
	}
	return 0, nil
}

// Options say how Install installs.
type Options struct {
	Tries int // trial boots before the box falls back: 1 to 9
	// AllowDowngrade installs a bundle whose serial is lower than the
	// running root's (pwctl update --allow-downgrade). Without it such a
	// bundle is refused; an equal serial (the same build again) is not.
	AllowDowngrade bool
}

// Install is InstallWith the given tries, refusing downgrades.
func (s System) Install(r io.Reader, tries int, logf func(string, ...any)) (Record, error) {
	return s.InstallWith(r, Options{Tries: tries}, logf)
}

// InstallWith writes the bundle from r into the slot not booted and makes
// it boot next for o.Tries trial boots. Nothing of the new slot is
// bootable until every file was written, synced and matched its hash: a
// power loss or a bad bundle at any point leaves the booted slot the one
// that boots. A bundle older than the running root (a lower serial) is
// refused unless o.AllowDowngrade.
func (s System) InstallWith(r io.Reader, o Options, logf func(string, ...any)) (Record, error) {
	var rec Record
	tries := o.Tries
	if tries < 1 || tries > 9 {
		return rec, fmt.Errorf("tries %d: want 1 to 9", tries)
	}
	booted, err := s.BootedSlot()
	if err != nil {
		return rec, err
	}
	target := Other(booted)
	entries, err := s.Entries()
	if err != nil {
		return rec, err
	}
	if e, ok := entries[booted]; ok && e.TriesLeft >= 0 {
		return rec, fmt.Errorf("slot %s is on trial and not yet blessed: update again once it is (pwctl update --status)", booted)
	}
	pub, err := s.publicKey()
	if err != nil {
		return rec, err
	}
	b, err := Open(r, pub)
	if err != nil {
		return rec, err
	}
	if err := s.checkSerial(b.Manifest, o.AllowDowngrade, logf); err != nil {
		return rec, err
	}
	gen := 0
	for _, e := range entries {
		gen = max(gen, e.Generation)
	}
	rec = Record{Started: time.Now().UTC(), From: booted, To: target, Version: b.Manifest.Version, Serial: b.Manifest.Serial, Generation: gen + 1, Signed: b.Signed}
	logf("installing pwgate %s into slot %s (booted: slot %s)", rec.Version, target, booted)
	// The target slot's entry goes first: from here on the slot is not
	// bootable until its new entry exists.
	if e, ok := entries[target]; ok {
		if err := os.Remove(filepath.Join(s.entriesDir(), e.File)); err != nil {
			return rec, err
		}
		if err := syncDir(s.entriesDir()); err != nil {
			return rec, err
		}
	}
	if err := s.writeRecord(rec); err != nil {
		return rec, err
	}
	// The slot's old kernel and initrd make room for the new ones (the
	// ESP holds two sets, not three).
	dir := filepath.Join(s.ESP, target)
	if err := os.RemoveAll(dir); err != nil {
		return rec, err
	}
	dev := filepath.Join(s.Parts, "root-"+target)
	if err := writeSlot(dev, b, logf); err != nil {
		return rec, err
	}
	for _, name := range Files[1:] {
		if err := writeChecked(filepath.Join(dir, name), b); err != nil {
			return rec, err
		}
	}
	name := fmt.Sprintf("pwgate-%s+%d.conf", target, tries)
	if err := writeFileSync(filepath.Join(s.entriesDir(), name), []byte(EntryText(target, rec.Version, rec.Generation, s.pinnedMachineID()))); err != nil {
		return rec, err
	}
	rec.Written = true
	if err := s.writeRecord(rec); err != nil {
		return rec, err
	}
	logf("slot %s holds pwgate %s and boots next (%s, %d trial boot(s)); slot %s stays the fallback", target, rec.Version, name, tries, booted)
	return rec, nil
}

// checkSerial refuses a bundle older than the running root unless
// allowed; before anything is written.
func (s System) checkSerial(m Manifest, allowDowngrade bool, logf func(string, ...any)) error {
	running, err := s.RunningSerial()
	if err != nil {
		if allowDowngrade {
			logf("not comparing serials (--allow-downgrade): %v", err)
			return nil
		}
		return fmt.Errorf("%w: cannot tell whether pwgate %s is older (pwctl update --allow-downgrade installs it anyway)", err, m.Version)
	}
	switch {
	case m.Serial >= running:
		return nil
	case allowDowngrade:
		logf("downgrading (--allow-downgrade): pwgate %s has serial %d, the running root %d", m.Version, m.Serial, running)
		return nil
	default:
		return fmt.Errorf("pwgate %s (serial %d) is older than the running root (serial %d): refused as a downgrade (pwctl update --allow-downgrade installs it anyway)", m.Version, m.Serial, running)
	}
}

// writeSlot streams root.sqfs onto the slot's partition and syncs it.
func writeSlot(dev string, b *Bundle, logf func(string, ...any)) error {
	f, err := os.OpenFile(dev, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("slot partition: %w", err)
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	want := b.Manifest.Files[0].Size
	if fi, _ := f.Stat(); fi.Mode().IsRegular() && size < want {
		size = want // a file stands in for the partition in tests: it grows
	}
	if want > size {
		return fmt.Errorf("root.sqfs is %d MiB, the slot %s only %d MiB", want>>20, dev, size>>20)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	logf("writing root.sqfs (%d MiB) to %s", want>>20, dev)
	if _, err := b.Copy(f); err != nil {
		return err
	}
	return f.Sync()
}

// writeChecked writes the bundle's next file to path, renamed into
// place only when its hash matched.
func writeChecked(path string, b *Bundle) error {
	return replaceFile(path, func(w io.Writer) error { _, err := b.Copy(w); return err })
}

// writeFileSync writes a small file whole.
func writeFileSync(path string, data []byte) error {
	return replaceFile(path, func(w io.Writer) error { _, err := w.Write(data); return err })
}

// replaceFile replaces path with what fill writes, or leaves it as it was:
// a temporary file beside it, synced, renamed over path only when fill
// succeeded, the directory synced.
func replaceFile(path string, fill func(io.Writer) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".new"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	err = fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Status is the slots and the last update, for pwctl update --status.
type Status struct {
	Booted  string            `json:"booted"`
	Next    string            `json:"next_boot"`
	Entries map[string]Entry  `json:"entries"`
	States  map[string]string `json:"states"`
	Last    *Record           `json:"last_update,omitempty"`
	Outcome string            `json:"outcome,omitempty"`
}

// Status reads the slots' entries and the record of the last update.
func (s System) Status() (Status, error) {
	var st Status
	var err error
	if st.Booted, err = s.BootedSlot(); err != nil {
		return st, err
	}
	if st.Entries, err = s.Entries(); err != nil {
		return st, err
	}
	st.Next = NextBoot(st.Entries)
	st.States = map[string]string{}
	for slot, e := range st.Entries {
		st.States[slot] = e.State(st.Booted)
	}
	if st.Last, err = s.readRecord(); err != nil {
		return st, err
	}
	if r := st.Last; r != nil {
		st.Outcome = outcome(*r, st.Booted, st.Entries)
	}
	return st, nil
}

// outcome says what became of the last update.
func outcome(r Record, booted string, entries map[string]Entry) string {
	e, ok := entries[r.To]
	switch {
	case !r.Written:
		return fmt.Sprintf("not finished: slot %s was being written and is not bootable; slot %s boots", r.To, booted)
	case !ok || e.Generation != r.Generation:
		return fmt.Sprintf("slot %s has been written over since", r.To)
	case e.TriesLeft < 0 && booted == r.To:
		return fmt.Sprintf("blessed: slot %s is healthy and boots from now on", r.To)
	case e.TriesLeft < 0:
		return fmt.Sprintf("blessed, but slot %s is booted now", booted)
	case booted == r.To:
		return fmt.Sprintf("on trial: slot %s booted and is blessed once healthy", r.To)
	case e.TriesLeft > 0:
		return fmt.Sprintf("waiting: slot %s boots next, on trial", r.To)
	default:
		why := ""
		if r.Trial != "" {
			why = " (" + r.Trial + ")"
		}
		return fmt.Sprintf("rolled back: slot %s failed its trial boot%s; slot %s boots", r.To, why, booted)
	}
}

var machineIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)

// pinnedMachineID is the box's machine ID from the data partition, or "".
func (s System) pinnedMachineID() string {
	b, err := os.ReadFile(s.MachineID)
	if id := strings.TrimSpace(string(b)); err == nil && machineIDPattern.MatchString(id) {
		return id
	}
	return ""
}

// PinMachineID keeps the box's machine ID across boots: the root is
// read-only, so systemd makes a new one at each boot unless the kernel's
// command line names it, and journald then starts a new directory each
// boot that its size limit never counts (the 16 MiB data partition would
// fill). On the first boot the running ID (current) is kept on the data
// partition; every slot's entry gets it on its command line (from the
// next boot on); once booted with it, the journals of boots before it are
// removed. It logs what it changes.
func (s System) PinMachineID(current string, logf func(string, ...any)) error {
	if !machineIDPattern.MatchString(current) {
		return fmt.Errorf("machine ID %q: want 32 hex digits", current)
	}
	id := s.pinnedMachineID()
	if id == "" {
		if err := writeFileSync(s.MachineID, []byte(current+"\n")); err != nil {
			return err
		}
		id = current
		logf("machine ID %s kept on the data partition", id)
	}
	entries, err := s.Entries()
	if err != nil {
		return err
	}
	for _, slot := range Slots {
		e, ok := entries[slot]
		if !ok || e.MachineID == id {
			continue
		}
		if err := writeFileSync(filepath.Join(s.entriesDir(), e.File), []byte(EntryText(slot, e.Version, e.Generation, id))); err != nil {
			return err
		}
		logf("slot %s boots with machine ID %s from now on (%s)", slot, id, e.File)
	}
	if current != id {
		return nil
	}
	des, err := os.ReadDir(s.Journal)
	if err != nil {
		return nil // no persistent journal
	}
	for _, de := range des {
		if de.IsDir() && de.Name() != id && machineIDPattern.MatchString(de.Name()) {
			if err := os.RemoveAll(filepath.Join(s.Journal, de.Name())); err != nil {
				return err
			}
			logf("removed the journal of boots before the machine ID was kept (%s)", de.Name())
		}
	}
	return nil
}
