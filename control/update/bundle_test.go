package update

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// entry is one tar entry of a crafted bundle.
type entry struct {
	h    tar.Header
	data []byte
}

// goodMembers are the files of a good unsigned bundle of serial and its
// manifest, for a test to spoil.
func goodMembers(serial int64) (Manifest, []entry) {
	m := Manifest{Version: "v2", Serial: serial}
	var ms []entry
	for i, name := range Files {
		data := bytes.Repeat([]byte{byte('A' + i)}, 100+i)
		m.Files = append(m.Files, File{Name: name, Size: int64(len(data)), SHA256: sha256.Sum256(data)})
		ms = append(ms, entry{tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))}, data})
	}
	return m, ms
}

// craft is the tar of m's text, its signature if sig is not nil, then files.
func craft(t *testing.T, m Manifest, sig []byte, files []entry) []byte {
	t.Helper()
	text := m.Marshal()
	all := []entry{{tar.Header{Name: manifestName, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(text))}, text}}
	if sig != nil {
		all = append(all, entry{tar.Header{Name: sigName, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(sig))}, sig})
	}
	all = append(all, files...)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range all {
		h := e.h
		must(t, tw.WriteHeader(&h))
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	must(t, tw.Close())
	return buf.Bytes()
}

// spoiled is a good bundle that spoil changed.
func spoiled(t *testing.T, spoil func(m *Manifest, files []entry)) []byte {
	t.Helper()
	m, files := goodMembers(newerSerial)
	spoil(&m, files)
	return craft(t, m, nil, files)
}

// notRegular makes vmlinuz a tar entry of type typ that carries no data,
// its manifest entry agreeing (no bytes, the empty hash): only its type is
// wrong.
func notRegular(typ byte, link string) func(*Manifest, []entry) {
	return func(m *Manifest, files []entry) {
		m.Files[1].Size, m.Files[1].SHA256 = 0, sha256.Sum256(nil)
		files[1] = entry{tar.Header{Name: "vmlinuz", Typeflag: typ, Linkname: link, Mode: 0o644, Devmajor: 1, Devminor: 3}, nil}
	}
}

// sparse makes vmlinuz a GNU sparse file (PAX format 0.1): 4 bytes in the
// bundle that read as the manifest's 101 (the rest zeros).
func sparse(t *testing.T) []byte {
	m, files := goodMembers(newerSerial)
	logical := append([]byte("BBBB"), make([]byte, 97)...)
	m.Files[1].Size, m.Files[1].SHA256 = int64(len(logical)), sha256.Sum256(logical)
	// tar.Writer refuses GNU.sparse records: write them under another
	// name of the same length and rename them in the archive's bytes.
	files[1] = entry{tar.Header{Name: "vmlinuz", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4, Format: tar.FormatPAX,
		PAXRecords: map[string]string{"ZZZ.sparse.numblocks": "1", "ZZZ.sparse.map": "0,4", "ZZZ.sparse.size": "101"}}, []byte("BBBB")}
	b := craft(t, m, nil, files)
	return bytes.ReplaceAll(b, []byte("ZZZ.sparse."), []byte("GNU.sparse."))
}

// The bundle's members are read as the (signed) manifest says, regular
// files only, and the box's update policy holds: each case failed
// before issue 21's finding 9 was fixed, except those marked.
func TestInstallRefusesWhatTheManifestDoesNotSay(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	pub := priv.Public().(ed25519.PublicKey)
	signedGood := func() []byte {
		m, files := goodMembers(newerSerial)
		return craft(t, m, ed25519.Sign(priv, m.Marshal()), files)
	}
	withKey := func(b *box) { must(t, os.WriteFile(b.PublicKey, []byte(EncodeKey(pub)), 0o644)) }
	unmount := func(b *box) { must(t, os.WriteFile(b.Mountinfo, []byte(mountinfo("/elsewhere")), 0o644)) }
	for _, tc := range []struct {
		name, want string
		data       func() []byte
		prep       func(*box)
	}{
		// Members: sizes.
		{"a long vmlinuz (a 4-byte manifest entry)", "vmlinuz is 65536 bytes, its manifest says 4: refused before writing it", func() []byte {
			return spoiled(t, func(m *Manifest, files []entry) {
				data := bytes.Repeat([]byte{'B'}, 64<<10)
				m.Files[1].Size, m.Files[1].SHA256 = 4, sha256.Sum256(data[:4])
				files[1] = entry{tar.Header{Name: "vmlinuz", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))}, data}
			})
		}, nil},
		{"a long root", "root.sqfs is 65536 bytes, its manifest says 4", func() []byte {
			return spoiled(t, func(m *Manifest, files []entry) {
				data := bytes.Repeat([]byte{'A'}, 64<<10)
				m.Files[0].Size, m.Files[0].SHA256 = 4, sha256.Sum256(data[:4])
				files[0] = entry{tar.Header{Name: "root.sqfs", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))}, data}
			})
		}, nil},
		{"a short initrd", "initrd.img is 3 bytes, its manifest says 102", func() []byte {
			return spoiled(t, func(m *Manifest, files []entry) {
				files[2] = entry{tar.Header{Name: "initrd.img", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3}, []byte("CCC")}
			})
		}, nil},
		// Members: types.
		{"vmlinuz a symbolic link", "vmlinuz is a symbolic link, not a regular file", func() []byte { return spoiled(t, notRegular(tar.TypeSymlink, "/etc/shadow")) }, nil},
		{"vmlinuz a hard link", "vmlinuz is a hard link, not a regular file", func() []byte { return spoiled(t, notRegular(tar.TypeLink, "root.sqfs")) }, nil},
		{"vmlinuz a directory", "vmlinuz is a directory", func() []byte { return spoiled(t, notRegular(tar.TypeDir, "")) }, nil},
		{"vmlinuz a device", "vmlinuz is a device", func() []byte { return spoiled(t, notRegular(tar.TypeChar, "")) }, nil},
		{"vmlinuz a FIFO", "vmlinuz is a FIFO", func() []byte { return spoiled(t, notRegular(tar.TypeFifo, "")) }, nil},
		{"vmlinuz a sparse file", "vmlinuz is a sparse file", func() []byte { return sparse(t) }, nil},
		{"the signature a symbolic link", "manifest.sig is a symbolic link", func() []byte {
			m, files := goodMembers(newerSerial)
			text := m.Marshal()
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			must(t, tw.WriteHeader(&tar.Header{Name: manifestName, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(text))}))
			tw.Write(text)
			must(t, tw.WriteHeader(&tar.Header{Name: sigName, Typeflag: tar.TypeSymlink, Linkname: "manifest", Mode: 0o644}))
			for _, f := range files {
				must(t, tw.WriteHeader(&f.h))
				tw.Write(f.data)
			}
			must(t, tw.Close())
			return buf.Bytes()
		}, nil},
		{"a signature of 65 bytes without a key", "manifest.sig is 65 bytes, its manifest says 64", func() []byte {
			m, files := goodMembers(newerSerial)
			return craft(t, m, append(ed25519.Sign(priv, m.Marshal()), 0), files)
		}, nil},
		// Members: names are compared, never used as paths (passed before).
		{"vmlinuz by a path out of the ESP", `bundle member "../../vmlinuz" where "vmlinuz" belongs`, func() []byte {
			return spoiled(t, func(m *Manifest, files []entry) { files[1].h.Name = "../../vmlinuz" })
		}, nil},
		{"root.sqfs by an absolute path", `bundle member "/root.sqfs" where "root.sqfs" belongs`, func() []byte {
			return spoiled(t, func(m *Manifest, files []entry) { files[0].h.Name = "/root.sqfs" })
		}, nil},
		// Serials.
		{"an older bundle", "pwgate v2 (serial 99) is older than the running root (serial 100): refused as a downgrade", func() []byte {
			return serialBundle(t, "v2", runningSerial-1, 10, nil)
		}, nil},
		{"an older signed bundle (a replay)", "refused as a downgrade", func() []byte {
			return serialBundle(t, "v2", runningSerial-1, 10, priv)
		}, withKey},
		{"a bundle without a serial", "pwgate v0.9 (serial 0) is older", func() []byte {
			return serialBundle(t, "v0.9", 0, 10, nil)
		}, nil},
		{"no release file", "cannot tell whether pwgate v2 is older", func() []byte { return bundle(t, "v2", 10, nil) },
			func(b *box) { must(t, os.Remove(b.Release)) }},
		{"a bad release file", "bad serial", func() []byte { return bundle(t, "v2", 10, nil) },
			func(b *box) { must(t, os.WriteFile(b.Release, []byte("pwgate v1\nserial x\n"), 0o644)) }},
		// The key's partition.
		{"the configuration partition not mounted", "is not mounted: the configuration partition would say whether updates must be signed", func() []byte {
			return bundle(t, "v2", 10, nil)
		}, unmount},
		{"the configuration partition not mounted, a signed bundle", "is not mounted", signedGood, unmount},
		{"no mount table", "is the configuration partition mounted", func() []byte { return bundle(t, "v2", 10, nil) },
			func(b *box) { must(t, os.Remove(b.Mountinfo)) }},
		{"the key file a directory", "read the update key", signedGood, func(b *box) { must(t, os.Mkdir(b.PublicKey, 0o755)) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBox(t)
			must(t, os.WriteFile(b.ESP+"/loader/entries/pwgate-b.conf", []byte(EntryText("b", "v0", 0, "")), 0o644))
			if tc.prep != nil {
				tc.prep(b)
			}
			before, err := b.Entries()
			must(t, err)
			_, err = b.Install(bytes.NewReader(tc.data()), 1, quiet)
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
			if st, err := b.Status(); err == nil && st.Last != nil && st.Last.Written {
				t.Errorf("the record says written: %+v", st.Last)
			}
			for _, name := range Files[1:] {
				if fi, err := os.Stat(filepath.Join(b.ESP, "b", name)); err == nil && fi.Size() > 200 {
					t.Errorf("%s: %d bytes on the ESP", name, fi.Size())
				}
			}
		})
	}
}

// counter counts what is written to it.
type counter struct{ n int }

func (c *counter) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }

// A member longer than its manifest entry is refused before any of it is
// written (it was written whole, 64 MiB for a 4-byte entry, and then
// found damaged).
func TestCopyWritesNoMoreThanTheManifestSays(t *testing.T) {
	b := spoiled(t, func(m *Manifest, files []entry) {
		data := bytes.Repeat([]byte{'B'}, 1<<20)
		m.Files[1].Size, m.Files[1].SHA256 = 4, sha256.Sum256(data[:4])
		files[1] = entry{tar.Header{Name: "vmlinuz", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))}, data}
	})
	bu, err := Open(bytes.NewReader(b), nil)
	must(t, err)
	var c counter
	if _, err := bu.Copy(&c); err != nil {
		t.Fatalf("root.sqfs: %v", err)
	}
	c = counter{}
	if _, err := bu.Copy(&c); err == nil || !strings.Contains(err.Error(), "refused before writing it") {
		t.Errorf("vmlinuz: %v", err)
	}
	if c.n > 4 {
		t.Errorf("%d bytes of vmlinuz written, its manifest says 4", c.n)
	}
}

func TestDowngrade(t *testing.T) {
	for _, tc := range []struct {
		name   string
		serial int64
		opts   Options
		prep   func(*box)
		log    string
	}{
		{"the same build again", runningSerial, Options{Tries: 1}, nil, ""},
		{"a newer one", runningSerial + 1, Options{Tries: 1}, nil, ""},
		{"an older one, allowed", runningSerial - 1, Options{Tries: 1, AllowDowngrade: true}, nil, "downgrading (--allow-downgrade)"},
		{"no serial, allowed", 0, Options{Tries: 1, AllowDowngrade: true}, nil, "downgrading"},
		{"no release file, allowed", runningSerial - 1, Options{Tries: 1, AllowDowngrade: true}, func(b *box) { must(t, os.Remove(b.Release)) }, "not comparing serials"},
		{"a root from before serials", 1, Options{Tries: 1}, func(b *box) { must(t, os.WriteFile(b.Release, []byte("pwgate v0\n"), 0o644)) }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBox(t)
			if tc.prep != nil {
				tc.prep(b)
			}
			var logs strings.Builder
			rec, err := b.InstallWith(bytes.NewReader(serialBundle(t, "v2", tc.serial, 10, nil)), tc.opts, func(f string, a ...any) { logs.WriteString(f + "\n") })
			if err != nil {
				t.Fatal(err)
			}
			if !rec.Written || rec.Serial != tc.serial {
				t.Errorf("record %+v", rec)
			}
			if !strings.Contains(logs.String(), tc.log) {
				t.Errorf("log lacks %q:\n%s", tc.log, logs.String())
			}
		})
	}
}

// The key is read from a partition that is not mounted only if it is
// there; a mount point's name may have escapes in the mount table.
func TestKeyPartition(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	b := newBox(t)
	must(t, os.WriteFile(b.PublicKey, []byte(EncodeKey(pub)), 0o644))
	must(t, os.WriteFile(b.Mountinfo, nil, 0o644))
	rec, err := b.Install(bytes.NewReader(bundle(t, "v2", 10, priv)), 1, quiet)
	if err != nil || !rec.Signed {
		t.Errorf("a key where it belongs: %+v %v", rec, err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		table, dir string
		want       bool
	}{
		{mountinfo("/config"), "/config", true},
		{mountinfo("/config"), "/config/", true},
		{mountinfo("/config"), "/", true},
		{mountinfo("/config"), "/conf", false},
		{mountinfo("/my config"), "/my config", true},
		{"24 22 8:4 / /my\\040config\\ rw - vfat /dev/sda4 rw\n", "/my config\\", true},
		{"garbage\n\n", "/config", false},
	} {
		p := filepath.Join(dir, "mountinfo")
		must(t, os.WriteFile(p, []byte(tc.table), 0o644))
		if got, err := isMountPoint(p, tc.dir); err != nil || got != tc.want {
			t.Errorf("%q in %q: %v %v, want %v", tc.dir, tc.table, got, err, tc.want)
		}
	}
}

func TestManifestSerial(t *testing.T) {
	m, _ := goodMembers(1763800000)
	text := string(m.Marshal())
	if !strings.Contains(text, "\nserial 1763800000\n") {
		t.Fatalf("no serial line:\n%s", text)
	}
	got, err := ParseManifest([]byte(text))
	if err != nil || got.Serial != 1763800000 {
		t.Fatalf("%+v %v", got, err)
	}
	none, _ := goodMembers(0)
	if got, err := ParseManifest(none.Marshal()); err != nil || got.Serial != 0 || strings.Contains(string(none.Marshal()), "serial") {
		t.Errorf("no serial: %+v %v", got, err)
	}
	for name, bad := range map[string]string{
		"zero":     strings.Replace(text, "serial 1763800000", "serial 0", 1),
		"negative": strings.Replace(text, "serial 1763800000", "serial -5", 1),
		"signed":   strings.Replace(text, "serial 1763800000", "serial +5", 1),
		"hex":      strings.Replace(text, "serial 1763800000", "serial 0x10", 1),
		"too big":  strings.Replace(text, "serial 1763800000", "serial 9223372036854775808", 1),
		"twice":    strings.Replace(text, "serial 1763800000", "serial 1763800000\nserial 1763800001", 1),
		"no value": strings.Replace(text, "serial 1763800000", "serial", 1),
	} {
		if m, err := ParseManifest([]byte(bad)); err == nil {
			t.Errorf("%s: accepted as %+v", name, m)
		}
	}
	if err := Pack(&bytes.Buffer{}, "v1", -1, nil, nil); err == nil {
		t.Error("a negative serial packed")
	}
}

// FuzzParseManifest: whatever a manifest says, parsing it does not panic,
// and a manifest that parses marshals to one that parses the same (seeds
// in testdata/fuzz/FuzzParseManifest).
func FuzzParseManifest(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		if m.Serial < 0 || m.Version == "" || len(m.Files) != len(Files) {
			t.Fatalf("parsed as %+v", m)
		}
		again, err := ParseManifest(m.Marshal())
		if err != nil {
			t.Fatalf("a parsed manifest does not parse again: %v", err)
		}
		if !bytes.Equal(again.Marshal(), m.Marshal()) {
			t.Fatalf("%q parses as %q", m.Marshal(), again.Marshal())
		}
	})
}
