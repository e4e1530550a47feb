package control

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pwgate/pwgate/dataplane/wg"
)

const wgKeyB = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="

// wgYAML is site A of the lab with the pseudowire inside WireGuard.
const wgYAML = `mode: ip6
downlink:
  interface: dl0
uplink:
  interface: ul0
peer:
  address: fd00:77::2
wireguard:
  private_key_file: /etc/pwgate/wg.key
  listen_port: 51820
  addresses: [fd00:77::1/64, 10.77.255.1/31]
  peers:
    - public_key: "` + wgKeyB + `"
      endpoint: "site-b.example.net:51820"
      allowed_ips: [fd00:77::2/128, 10.77.255.0/32]
      persistent_keepalive: 25
`

func TestParseWireGuard(t *testing.T) {
	c, err := Parse("f.yaml", []byte(wgYAML))
	if err != nil {
		t.Fatal(err)
	}
	w := c.WireGuard
	if w == nil || w.ListenPort != 51820 || w.Interface != DefaultWGInterface || len(w.Addresses) != 2 || len(w.Peers) != 1 {
		t.Fatalf("%+v", w)
	}
	p := w.Peers[0]
	if p.PublicKey.String() != wgKeyB || p.Endpoint != "site-b.example.net:51820" || len(p.AllowedIPs) != 2 || p.PersistentKeepalive != 25 {
		t.Fatalf("peer %+v", p)
	}
	if !c.OverWireGuard() || c.WGSource() != netip.MustParseAddr("fd00:77::1") {
		t.Fatalf("over wireguard %v, source %v", c.OverWireGuard(), c.WGSource())
	}
	// The same peer outside the allowed IPs: WireGuard for the host only,
	// the pseudowire over plain IPv6 (which needs local.*).
	plain := strings.Replace(wgYAML, "address: fd00:77::2\n", "address: 2001:db8:b::b\nlocal:\n  token: ::a\n", 1)
	if c, err := Parse("f.yaml", []byte(plain)); err != nil || c.OverWireGuard() {
		t.Fatalf("plain pseudowire beside WireGuard: over %v, %v", c != nil && c.OverWireGuard(), err)
	}
}

func TestParseWireGuardErrors(t *testing.T) {
	rep := func(old, new string) string { return strings.Replace(wgYAML, old, new, 1) }
	tests := []struct{ name, yaml, want string }{
		{"bad key", rep(wgKeyB, "abc"), "f.yaml:13: wireguard.peers[0].public_key: not a WireGuard key"},
		{"bad endpoint", rep("site-b.example.net:51820", "site-b.example.net"), `f.yaml:14: wireguard.peers[0].endpoint: "site-b.example.net" is not host:port`},
		{"bad port", rep("site-b.example.net:51820", "site-b:0"), "port \"0\" is not a number from 1 to 65535"},
		{"ipv6 endpoint without brackets", rep("site-b.example.net:51820", "2001:db8::1:51820"), "is not host:port"},
		{"bad host", rep("site-b.example.net:51820", "site_b!:51820"), "neither an IP address nor a host name"},
		{"bad allowed ip", rep("10.77.255.0/32", "10.77.255.0"), `f.yaml:15: wireguard.peers[0].allowed_ips[1]: "10.77.255.0" is not a prefix`},
		{"host bits", rep("10.77.255.0/32", "10.77.255.1/31"), "10.77.255.1/31 has host bits set (did you mean 10.77.255.0/31?)"},
		{"allowed ips not a list", rep("allowed_ips: [fd00:77::2/128, 10.77.255.0/32]", "allowed_ips: fd00:77::2/128"), "wireguard.peers[0].allowed_ips: want a list"},
		{"unknown peer key", rep("persistent_keepalive: 25", "keepalive: 25"), "f.yaml:16: wireguard.peers[0].keepalive: unknown key"},
		{"no key file", rep("  private_key_file: /etc/pwgate/wg.key\n", ""), "wireguard.private_key_file: missing"},
		{"relative key file", rep("/etc/pwgate/wg.key", "wg.key"), `wireguard.private_key_file: "wg.key" is not an absolute path`},
		{"bad port number", rep("listen_port: 51820", "listen_port: 70000"), "wireguard.listen_port: 70000 is out of range 1..65535"},
		{"bad address", rep("10.77.255.1/31", "10.77.255.1"), `wireguard.addresses[1]: "10.77.255.1" is not an address with a prefix length`},
		{"no peers", rep(wgYAML[strings.Index(wgYAML, "  peers:"):], ""), "wireguard: peers: at least one peer"},
		{"peer without allowed ips", rep("      allowed_ips: [fd00:77::2/128, 10.77.255.0/32]\n", ""), "wireguard.peers[0]: allowed_ips: missing"},
		{"two peers, one key", wgYAML + `    - public_key: "` + wgKeyB + `"
      allowed_ips: [fd00:77::3/128]
`, "wireguard.peers[1].public_key: the same key as wireguard.peers[0]"},
		{"overlapping allowed ips", wgYAML + `    - public_key: "` + strings.Replace(wgKeyB, "H", "J", 1) + `"
      allowed_ips: [fd00:77::/64]
`, "wireguard.peers[1].allowed_ips: fd00:77::/64 overlaps fd00:77::2/128 of wireguard.peers[0]"},
		{"no ipv6 overlay address", rep("addresses: [fd00:77::1/64, 10.77.255.1/31]", "addresses: [10.77.255.1/31]"), "needs an IPv6 overlay address"},
		{"local with the pseudowire inside", rep("  address: fd00:77::2\n", "  address: fd00:77::2\nlocal:\n  token: ::a\n"), "local.token: not with the pseudowire inside WireGuard"},
		{"interface is the uplink", rep("  listen_port: 51820\n", "  listen_port: 51820\n  interface: ul0\n"), "wireguard.interface: ul0 is already the downlink or uplink"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

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
