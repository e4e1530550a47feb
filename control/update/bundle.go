// Package update installs appliance updates into the inactive root slot
// and reports on them: the bundle format, the slots and their boot loader
// entries (systemd-boot with boot counting), the trial boot's health check
// and the record of the last update.
//
// A bundle is a tar archive: "manifest" (the version, the serial and each
// file's size and SHA-256), "manifest.sig" when signed (Ed25519 over the
// manifest), then root.sqfs, vmlinuz and initrd.img in that order, each a
// plain regular file (no links, devices, directories or sparse files).
// The files stream straight to the slot while they are hashed, never more
// of a file than its manifest states: nothing is marked bootable before
// every hash matched.
package update

import (
	"archive/tar"
	"bufio"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// Files are the members a bundle carries after its manifest, in order.
var Files = []string{"root.sqfs", "vmlinuz", "initrd.img"}

const (
	manifestName = "manifest"
	sigName      = "manifest.sig"
	magic        = "pwgate-update 1"
	maxManifest  = 4096
)

// File is one member of a bundle as its manifest describes it.
type File struct {
	Name   string
	Size   int64
	SHA256 [32]byte
}

// Manifest says what a bundle holds.
type Manifest struct {
	Version string // pwgate's version (git describe), for people
	// Serial orders builds: a later build has a larger one (make image
	// uses the commit's time, SOURCE_DATE_EPOCH, in seconds since 1970
	// UTC). 0: none (a bundle from before serials).
	Serial int64
	Files  []File
}

// Marshal is the manifest's text, the bytes a signature covers.
func (m Manifest) Marshal() []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nversion %s\n", magic, m.Version)
	if m.Serial > 0 {
		fmt.Fprintf(&b, "serial %d\n", m.Serial)
	}
	for _, f := range m.Files {
		fmt.Fprintf(&b, "file %s %d %x\n", f.Name, f.Size, f.SHA256)
	}
	return []byte(b.String())
}

// ParseManifest reads a manifest and checks that it lists exactly Files.
func ParseManifest(b []byte) (Manifest, error) {
	var m Manifest
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) == 0 || lines[0] != magic {
		return m, errors.New("not a pwgate update (its manifest does not start with \"" + magic + "\")")
	}
	for i, line := range lines[1:] {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "version" && m.Version == "":
			m.Version = f[1]
		case len(f) == 2 && f[0] == "serial" && m.Serial == 0:
			n, err := strconv.ParseUint(f[1], 10, 63)
			if err != nil || n == 0 {
				return m, fmt.Errorf("manifest line %d: bad serial %q (want a number from 1 to 2^63-1)", i+2, f[1])
			}
			m.Serial = int64(n)
		case len(f) == 4 && f[0] == "file":
			size, err := strconv.ParseInt(f[2], 10, 64)
			sum, herr := hex.DecodeString(f[3])
			if err != nil || size < 0 || herr != nil || len(sum) != 32 {
				return m, fmt.Errorf("manifest line %d: bad file line %q", i+2, line)
			}
			file := File{Name: f[1], Size: size}
			copy(file.SHA256[:], sum)
			m.Files = append(m.Files, file)
		default:
			return m, fmt.Errorf("manifest line %d: unexpected %q", i+2, line)
		}
	}
	if m.Version == "" {
		return m, errors.New("manifest: no version")
	}
	if len(m.Files) != len(Files) {
		return m, fmt.Errorf("manifest: %d files, want %s", len(m.Files), strings.Join(Files, ", "))
	}
	for i, f := range m.Files {
		if f.Name != Files[i] {
			return m, fmt.Errorf("manifest: file %d is %q, want %q", i+1, f.Name, Files[i])
		}
	}
	return m, nil
}

// Pack writes a bundle of version and serial (0: none) from the files at
// paths (in Files' order), signed with key if it is not nil.
func Pack(w io.Writer, version string, serial int64, paths []string, key ed25519.PrivateKey) error {
	if version == "" || strings.ContainsAny(version, " \t\n") {
		return fmt.Errorf("bad version %q", version)
	}
	if serial < 0 {
		return fmt.Errorf("bad serial %d", serial)
	}
	if len(paths) != len(Files) {
		return fmt.Errorf("want %d files (%s)", len(Files), strings.Join(Files, ", "))
	}
	m := Manifest{Version: version, Serial: serial}
	for i, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			return err
		}
		file := File{Name: Files[i], Size: n}
		h.Sum(file.SHA256[:0])
		m.Files = append(m.Files, file)
	}
	tw := tar.NewWriter(w)
	add := func(name string, size int64, r io.Reader) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	text := m.Marshal()
	if err := add(manifestName, int64(len(text)), strings.NewReader(string(text))); err != nil {
		return err
	}
	if key != nil {
		sig := ed25519.Sign(key, text)
		if err := add(sigName, int64(len(sig)), strings.NewReader(string(sig))); err != nil {
			return err
		}
	}
	for i, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		err = add(Files[i], m.Files[i].Size, io.LimitReader(f, m.Files[i].Size))
		f.Close()
		if err != nil {
			return err
		}
	}
	return tw.Close()
}

// Bundle reads a bundle member by member.
type Bundle struct {
	Manifest Manifest
	Signed   bool // a signature was present and verified
	tr       *tar.Reader
	hdr      *tar.Header // the member Copy writes next, if Open read its header
	next     int
}

// Open reads the manifest (and its signature) at the start of r. With a
// public key, an unsigned bundle or a bad signature is refused.
func Open(r io.Reader, pub ed25519.PublicKey) (*Bundle, error) {
	tr := tar.NewReader(bufio.NewReaderSize(r, 1<<20))
	text, err := member(tr, manifestName, maxManifest)
	if err != nil {
		return nil, err
	}
	m, err := ParseManifest(text)
	if err != nil {
		return nil, err
	}
	b := &Bundle{Manifest: m, tr: tr}
	h, err := tr.Next()
	if err != nil {
		return nil, fmt.Errorf("bundle ends after its manifest: %w", err)
	}
	if h.Name == sigName {
		if err := regular(h, sigName, ed25519.SignatureSize); err != nil {
			return nil, err
		}
		sig, err := io.ReadAll(io.LimitReader(tr, ed25519.SignatureSize))
		if err != nil {
			return nil, fmt.Errorf("read bundle member %s: %w", sigName, err)
		}
		if pub != nil {
			if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, text, sig) {
				return nil, errors.New("the bundle's signature does not match the configured key: refused")
			}
			b.Signed = true
		}
		if h, err = tr.Next(); err != nil {
			return nil, fmt.Errorf("bundle ends after its signature: %w", err)
		}
	} else if pub != nil {
		return nil, errors.New("this box takes signed updates only (a key is configured) and the bundle is not signed: refused")
	}
	if h.Name != Files[0] {
		return nil, fmt.Errorf("bundle member %q where %q belongs", h.Name, Files[0])
	}
	b.hdr = h
	return b, nil
}

// member reads the next member, which must be called name.
func member(tr *tar.Reader, name string, max int64) ([]byte, error) {
	h, err := tr.Next()
	if err != nil {
		return nil, fmt.Errorf("not a pwgate update (no tar member %q): %w", name, err)
	}
	if h.Name != name || h.Size > max {
		return nil, fmt.Errorf("not a pwgate update (first member %q, %d bytes; want %q)", h.Name, h.Size, name)
	}
	if err := regular(h, name, -1); err != nil {
		return nil, fmt.Errorf("not a pwgate update: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(tr, max))
	if err != nil {
		return nil, fmt.Errorf("read bundle member %s: %w", name, err)
	}
	return b, nil
}

// regular checks that h is the plain regular file name of size bytes
// (size < 0: any): links, devices, directories and sparse files are
// refused, whatever their name (bundle members are never paths on the
// box: their names are compared, not opened).
func regular(h *tar.Header, name string, size int64) error {
	if h.Name != name {
		return fmt.Errorf("bundle member %q where %q belongs", h.Name, name)
	}
	if h.Typeflag != tar.TypeReg {
		return fmt.Errorf("bundle member %s is a %s, not a regular file: refused", name, typeName(h.Typeflag))
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return fmt.Errorf("bundle member %s is a sparse file: refused", name)
		}
	}
	if size >= 0 && h.Size != size {
		return fmt.Errorf("bundle member %s is %d bytes, its manifest says %d: refused before writing it", name, h.Size, size)
	}
	return nil
}

// typeName says what a tar entry of type t is.
func typeName(t byte) string {
	switch t {
	case tar.TypeLink:
		return "hard link"
	case tar.TypeSymlink:
		return "symbolic link"
	case tar.TypeChar, tar.TypeBlock:
		return "device"
	case tar.TypeDir:
		return "directory"
	case tar.TypeFifo:
		return "FIFO"
	case tar.TypeGNUSparse:
		return "sparse file"
	}
	return fmt.Sprintf("tar entry of type %q", t)
}

// Copy writes the next file to w and checks its size and hash. The
// caller must not use what it wrote if Copy fails.
func (b *Bundle) Copy(w io.Writer) (File, error) {
	if b.next >= len(Files) {
		return File{}, errors.New("no more files in the bundle")
	}
	want := b.Manifest.Files[b.next]
	hdr := b.hdr
	b.hdr = nil
	if hdr == nil {
		var err error
		if hdr, err = b.tr.Next(); err != nil {
			return want, fmt.Errorf("bundle ends before %s: %w", want.Name, err)
		}
	}
	b.next++
	// The member's header must state what the (signed) manifest does, and
	// no more than that is read from it: a long member is refused before
	// any of it is written.
	if err := regular(hdr, want.Name, want.Size); err != nil {
		return want, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(b.tr, want.Size))
	if err != nil {
		return want, fmt.Errorf("%s: %w", want.Name, err)
	}
	var sum [32]byte
	h.Sum(sum[:0])
	if n != want.Size || sum != want.SHA256 {
		return want, fmt.Errorf("%s: %d bytes with SHA-256 %x, the manifest says %d bytes with %x: the bundle is damaged", want.Name, n, sum[:8], want.Size, want.SHA256[:8])
	}
	return want, nil
}

// EncodeKey and DecodeKey give keys as one line of base64.
func EncodeKey(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

// DecodeKey reads a base64 key of size bytes.
func DecodeKey(s string, size int) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(k) != size {
		return nil, fmt.Errorf("not a base64 key of %d bytes", size)
	}
	return k, nil
}
