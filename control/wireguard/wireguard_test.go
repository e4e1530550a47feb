package wireguard

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pwgate/pwgate/dataplane/wg"
	"golang.org/x/sys/unix"
)

func TestReadKeyFile(t *testing.T) {
	dir := t.TempDir()
	k, _ := wg.GenerateKey()
	good := filepath.Join(dir, "good.key")
	os.WriteFile(good, []byte(k.String()+"\n"), 0o600)
	if got, err := readKeyFile(good); err != nil || got != k {
		t.Fatalf("readKeyFile: %v %v", got, err)
	}
	open := filepath.Join(dir, "open.key")
	os.WriteFile(open, []byte(k.String()+"\n"), 0o640)
	if _, err := readKeyFile(open); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("group-readable key: %v", err)
	}
	bad := filepath.Join(dir, "bad.key")
	os.WriteFile(bad, []byte("not a key\n"), 0o600)
	if _, err := readKeyFile(bad); err == nil || !strings.Contains(err.Error(), "not a WireGuard key") {
		t.Fatalf("bad key: %v", err)
	}
	if _, err := readKeyFile(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing file accepted")
	}
}

// TestReadKeyFileRefuses: a key file is refused, with the command that
// fixes it, unless it is a regular file (not a link to one, not a FIFO
// that would block the start) owned by pwgated's user, with no access for
// group or others, and small.
func TestReadKeyFileRefuses(t *testing.T) {
	dir := t.TempDir()
	k, _ := wg.GenerateKey()
	write := func(name string, mode os.FileMode, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // past the umask
			t.Fatal(err)
		}
		return p
	}
	good := write("good.key", 0o600, k.String()+"\n")
	link := filepath.Join(dir, "link.key")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.key")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "dir.key")
	os.Mkdir(sub, 0o700)
	tests := []struct {
		name, path string
		want       []string
	}{
		{"group-readable", write("group.key", 0o640, k.String()+"\n"), []string{"group.key", "mode 0640", "chmod 600 "}},
		{"other-readable", write("other.key", 0o604, k.String()+"\n"), []string{"other.key", "mode 0604", "chmod 600 "}},
		{"group-writable", write("gw.key", 0o620, k.String()+"\n"), []string{"gw.key", "chmod 600 "}},
		{"symlink", link, []string{"link.key", "symbolic link"}},
		{"fifo", fifo, []string{"fifo.key", "not a regular file but a FIFO"}},
		{"directory", sub, []string{"dir.key", "not a regular file but a directory"}},
		{"missing", filepath.Join(dir, "missing.key"), []string{"open " + filepath.Join(dir, "missing.key"), "no such file"}},
		{"too large", write("big.key", 0o600, k.String()+"\n"+strings.Repeat("#", 1<<20)), []string{"big.key", "too large"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			type result struct {
				k   wg.Key
				err error
			}
			done := make(chan result, 1)
			go func() {
				k, err := readKeyFile(tt.path)
				done <- result{k, err}
			}()
			var r result
			select {
			case r = <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("readKeyFile(%s) still blocked after 5 s", tt.path)
			}
			if r.err == nil {
				t.Fatalf("accepted: %v", r.k)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.err.Error(), w) {
					t.Errorf("error %q lacks %q", r.err, w)
				}
			}
		})
	}
	t.Run("wrong owner", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("only root can give a file to another user: run the tests as root to check a key owned by uid 1000 is refused")
		}
		p := write("owner.key", 0o600, k.String()+"\n")
		if err := os.Chown(p, 1000, -1); err != nil {
			t.Fatal(err)
		}
		_, err := readKeyFile(p)
		for _, w := range []string{"owner.key", "owned by uid 1000", "chown root " + p} {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("error %v lacks %q", err, w)
			}
		}
	})
	t.Run("ok", func(t *testing.T) {
		if got, err := readKeyFile(good); err != nil || got != k {
			t.Fatalf("readKeyFile: %v %v", got, err)
		}
		// A key file may hold the key alone, without a newline.
		if got, err := readKeyFile(write("bare.key", 0o600, k.String())); err != nil || got != k {
			t.Fatalf("readKeyFile without newline: %v %v", got, err)
		}
	})
}

func TestTunnelMTU(t *testing.T) {
	for _, tt := range []struct {
		ep   string
		want int
	}{{"", 1420}, {"[2001:db8::1]:51820", 1420}, {"192.0.2.1:51820", 1440}} {
		var ep netip.AddrPort
		if tt.ep != "" {
			ep = netip.MustParseAddrPort(tt.ep)
		}
		if got := tunnelMTU(1500, ep); got != tt.want {
			t.Errorf("endpoint %q: MTU %d, want %d", tt.ep, got, tt.want)
		}
	}
}
