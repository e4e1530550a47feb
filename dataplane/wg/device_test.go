package wg

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"

	"github.com/pwgate/pwgate/dataplane/stats"
	"github.com/pwgate/pwgate/dataplane/xsk"
)

// TestKeys checks key derivation against RFC 7748's test vector (Alice's
// key pair) and, where wireguard-tools is installed, against wg pubkey.
func TestKeys(t *testing.T) {
	var alice Key
	hex.Decode(alice[:], []byte("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"))
	pub := alice.PublicKey()
	if got := hex.EncodeToString(pub[:]); got != "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a" {
		t.Fatalf("public key %s", got)
	}
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if k[0]&7 != 0 || k[31]&128 != 0 || k[31]&64 == 0 {
		t.Fatalf("generated key not clamped: %x", k)
	}
	back, err := ParseKey(k.String() + "\n")
	if err != nil || back != k {
		t.Fatalf("ParseKey(String()) = %v, %v", back, err)
	}
	for _, bad := range []string{"", "abc", strings.Repeat("A", 43), k.String()[:40] + "!!!="} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) accepted", bad)
		}
	}
	if _, err := exec.LookPath("wg"); err != nil {
		t.Log("wg not installed: no comparison with wireguard-tools")
		return
	}
	cmd := exec.Command("wg", "pubkey")
	cmd.Stdin = strings.NewReader(k.String() + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(out)) != k.PublicKey().String() {
		t.Fatalf("wg pubkey says %s, we say %s", out, k.PublicKey())
	}
}

// pair is two embedded WireGuard devices talking over 127.0.0.1: the
// whole path of an encrypted pseudowire packet without namespaces.
type pair struct {
	ua, ub *xsk.UMEM
	ta, tb *Tunnel
	da, db *Device
}

func newPair(t testing.TB) *pair {
	t.Helper()
	ka, _ := GenerateKey()
	kb, _ := GenerateKey()
	p := &pair{ua: xsk.NewFakeUMEM(64), ub: xsk.NewFakeUMEM(64)}
	p.ta, p.tb = NewTunnel(p.ua, 1420, nil), NewTunnel(p.ub, 1420, nil)
	p.ta.SetPeer(overlayB.As16(), true)
	p.tb.SetPeer(overlayA.As16(), true)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var err error
	if p.db, err = NewDevice(p.tb, Config{PrivateKey: kb, ListenPort: 0, Peers: []PeerConfig{
		{PublicKey: ka.PublicKey(), AllowedIPs: []netip.Prefix{netip.PrefixFrom(overlayA, 128)}}}}, log); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.db.Close)
	portB := boundPort(t, p.db) // the port the kernel chose
	if p.da, err = NewDevice(p.ta, Config{PrivateKey: ka, Peers: []PeerConfig{
		{PublicKey: kb.PublicKey(), Endpoint: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), portB),
			AllowedIPs: []netip.Prefix{netip.PrefixFrom(overlayB, 128)}}}}, log); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.da.Close)
	p.da.SetSessionPeer(kb.PublicKey())
	p.db.SetSessionPeer(ka.PublicKey())
	p.tb.Fill([]uint64{20 * p.ub.ChunkSize, 21 * p.ub.ChunkSize, 22 * p.ub.ChunkSize})
	return p
}

// boundPort reads the device's listening port from its configuration.
func boundPort(t testing.TB, d *Device) uint16 {
	t.Helper()
	text, err := d.dev.IpcGet()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, "listen_port="); ok {
			var p uint16
			for _, c := range v {
				p = p*10 + uint16(c-'0')
			}
			return p
		}
	}
	t.Fatal("no listen port")
	return 0
}

// receive waits for one packet on the engine's side of tun.
func receive(t testing.TB, tun *Tunnel, u *xsk.UMEM) []byte {
	t.Helper()
	descs := make([]xsk.Desc, 4)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		tun.Wait(100 * time.Millisecond)
		if n := tun.Receive(descs); n > 0 {
			return append([]byte(nil), u.Frame(descs[0].Addr, descs[0].Len)...)
		}
	}
	t.Fatal("nothing arrived through WireGuard")
	return nil
}

func TestThroughWireGuard(t *testing.T) {
	p := newPair(t)
	pkt := pwPacket(overlayA, overlayB, 1300)
	transmit(t, p.ta, p.ua, 1, pkt) // held until the handshake completes
	if got := receive(t, p.tb, p.ub); !bytes.Equal(got, pkt) {
		t.Fatalf("B received %x", got[:min(len(got), 64)])
	}
	if !p.ta.SessionUp() || !p.tb.SessionUp() {
		t.Errorf("sessions: A %v, B %v", p.ta.SessionUp(), p.tb.SessionUp())
	}
	peers, err := p.da.Peers()
	if err != nil || len(peers) != 1 || peers[0].LastHandshake.IsZero() || peers[0].TxBytes == 0 || peers[0].Endpoint == "" {
		t.Fatalf("A's peer: %+v %v", peers, err)
	}
	// B counts its handshake response once its send returns, which may
	// be after A has answered it.
	var s stats.Snapshot
	for deadline := time.Now().Add(time.Second); ; time.Sleep(10 * time.Millisecond) {
		s = stats.Snapshot{}
		p.db.Snapshot(&s)
		if s[stats.WGTxDatagrams] >= 1 || time.Now().After(deadline) {
			break
		}
	}
	if s[stats.WGRxDatagrams] < 2 || s[stats.WGTxDatagrams] < 1 {
		t.Errorf("B's datagrams: %d in, %d out", s[stats.WGRxDatagrams], s[stats.WGTxDatagrams])
	}
}

// TestConfigureKeepsSessions: a reload that adds a peer leaves the
// existing one's session as it was (same handshake), and removing the
// peer stops the traffic.
func TestConfigureKeepsSessions(t *testing.T) {
	p := newPair(t)
	transmit(t, p.ta, p.ua, 1, pwPacket(overlayA, overlayB, 100))
	receive(t, p.tb, p.ub)
	before, _ := p.da.Peers()
	next := p.da.cfg
	other, _ := GenerateKey()
	next.Peers = append(append([]PeerConfig(nil), next.Peers...), PeerConfig{PublicKey: other.PublicKey(), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("fd00:77::9/128")}})
	if err := p.da.Configure(next); err != nil {
		t.Fatal(err)
	}
	after, _ := p.da.Peers()
	if len(after) != 2 || !after[0].LastHandshake.Equal(before[0].LastHandshake) {
		t.Fatalf("after adding a peer: %+v (before %+v)", after, before)
	}
	transmit(t, p.ta, p.ua, 2, pwPacket(overlayA, overlayB, 100))
	receive(t, p.tb, p.ub)
	if err := p.da.Configure(Config{PrivateKey: next.PrivateKey, ListenPort: next.ListenPort}); err != nil {
		t.Fatal(err)
	}
	if peers, _ := p.da.Peers(); len(peers) != 0 {
		t.Fatalf("peers after removing them all: %+v", peers)
	}
}

// TestRetryUnreachable: a handshake initiation that could not be sent
// makes wireguard-go wait its 5-second retransmission timer; after a send
// found no route, RetryUnreachable re-adds the peer without a session, and
// the next packet starts a handshake at once. A peer with a session is
// left alone.
func TestRetryUnreachable(t *testing.T) {
	p := newPair(t)
	good := p.da.cfg
	lost := good
	lost.Peers = []PeerConfig{good.Peers[0]}
	lost.Peers[0].Endpoint = netip.AddrPortFrom(lost.Peers[0].Endpoint.Addr(), 9) // nobody listens
	if err := p.da.Configure(lost); err != nil {
		t.Fatal(err)
	}
	transmit(t, p.ta, p.ua, 1, pwPacket(overlayA, overlayB, 100)) // an initiation, lost
	time.Sleep(200 * time.Millisecond)
	if err := p.da.Configure(good); err != nil { // updated in place: the timer runs on
		t.Fatal(err)
	}
	if n, err := p.da.RetryUnreachable(); n != 0 || err != nil {
		t.Fatalf("RetryUnreachable without a failed send: %d, %v", n, err)
	}
	p.da.bind.unreachable.Store(true) // what countingBind.Send does on ENETUNREACH
	if !p.da.Unreachable() {
		t.Fatal("Unreachable() false")
	}
	if n, err := p.da.RetryUnreachable(); n != 1 || err != nil {
		t.Fatalf("RetryUnreachable: %d peers, %v", n, err)
	}
	start := time.Now()
	transmit(t, p.ta, p.ua, 2, pwPacket(overlayA, overlayB, 100))
	receive(t, p.tb, p.ub)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the handshake waited %v: the retransmission timer, not the retry", d)
	}
	p.da.bind.unreachable.Store(true)
	if n, err := p.da.RetryUnreachable(); n != 0 || err != nil {
		t.Errorf("RetryUnreachable with a session: %d peers, %v", n, err)
	}
	if p.da.Unreachable() {
		t.Error("Unreachable() still true after RetryUnreachable")
	}
}

// TestSendUnreachable: the kernel's answers that mean "no route yet" mark
// the bind; others do not.
func TestSendUnreachable(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{&net.OpError{Op: "write", Err: os.NewSyscallError("sendmmsg", syscall.ENETUNREACH)}, true},
		{&net.OpError{Op: "write", Err: os.NewSyscallError("sendmsg", syscall.EADDRNOTAVAIL)}, true},
		{&net.OpError{Op: "write", Err: os.NewSyscallError("sendmsg", syscall.EHOSTUNREACH)}, true},
		{&net.OpError{Op: "write", Err: os.NewSyscallError("sendmsg", syscall.EMSGSIZE)}, false},
		{nil, false},
	} {
		var bc bindCounters
		b := &countingBind{Bind: failingBind{NewKernelBind(), c.err}, c: &bc}
		if err := b.Send([][]byte{{1}}, nil); err != c.err {
			t.Errorf("Send returned %v, want %v", err, c.err)
		}
		if bc.unreachable.Load() != c.want {
			t.Errorf("%v: unreachable %v, want %v", c.err, !c.want, c.want)
		}
	}
}

type failingBind struct {
	conn.Bind
	err error
}

func (f failingBind) Send([][]byte, conn.Endpoint) error { return f.err }

func TestUAPI(t *testing.T) {
	var k Key
	k[0] = 1
	cfg := Config{PrivateKey: k, ListenPort: 51820, Peers: []PeerConfig{{PublicKey: k, PersistentKeepalive: 25,
		Endpoint:   netip.MustParseAddrPort("[2001:db8::1]:51820"),
		AllowedIPs: []netip.Prefix{netip.MustParsePrefix("fd00:77::2/128"), netip.MustParsePrefix("10.77.255.0/31")}}}}
	got := fullUAPI(cfg)
	for _, want := range []string{"private_key=01000000", "listen_port=51820\nreplace_peers=true\n", "endpoint=[2001:db8::1]:51820\n",
		"persistent_keepalive_interval=25\nreplace_allowed_ips=true\nallowed_ip=fd00:77::2/128\nallowed_ip=10.77.255.0/31\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("UAPI lacks %q:\n%s", want, got)
		}
	}
}

// TestLoopedDropped: datagrams from an address inside the overlay are
// refused before wireguard-go sees them (here B's overlay claims
// 127.0.0.0/8, where A's datagrams come from): no handshake, and every one
// counted.
func TestLoopedDropped(t *testing.T) {
	p := newPair(t)
	cfg := p.db.cfg
	cfg.Overlay = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	if err := p.db.Configure(cfg); err != nil {
		t.Fatal(err)
	}
	transmit(t, p.ta, p.ua, 1, pwPacket(overlayA, overlayB, 100))
	var s stats.Snapshot
	for deadline := time.Now().Add(3 * time.Second); s[stats.WGRxLooped] == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no datagram counted as looped")
		}
		s = stats.Snapshot{}
		p.db.Snapshot(&s)
	}
	if peers, _ := p.db.Peers(); !peers[0].LastHandshake.IsZero() {
		t.Fatal("a handshake from inside the overlay was accepted")
	}
}

// BenchmarkWireGuardPair measures wireguard-go's own cost per packet, as
// CPU time (cpu-ns/pkt, both devices: encryption, the UDP sockets over
// loopback, decryption, and the Tunnels): what make bench compares the
// encrypted pseudowire with. One side's cost is about half.
func BenchmarkWireGuardPair(b *testing.B) {
	for _, n := range []int{64, 1400} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			p := newPair(b)
			p.tb.Fill(nil)
			pkt := pwPacket(overlayA, overlayB, n)
			transmit(b, p.ta, p.ua, 1, pkt)
			receive(b, p.tb, p.ub)
			// The engine's sides, driven from here: A transmits from a few
			// chunks, B receives into a few and hands them straight back.
			descs := make([]xsk.Desc, 64)
			comp := make([]uint64, 64)
			for i := range descs {
				addr := uint64(i)*p.ua.ChunkSize + xsk.RxHeadroom
				copy(p.ua.Mem[addr:], pkt)
				descs[i] = xsk.Desc{Addr: addr, Len: uint32(len(pkt))}
			}
			fill := make([]uint64, 32)
			for i := range fill {
				fill[i] = uint64(32+i) * p.ub.ChunkSize
			}
			p.tb.Fill(fill)
			got := make([]xsk.Desc, 64)
			var ru0, ru1 unix.Rusage
			unix.Getrusage(unix.RUSAGE_SELF, &ru0)
			b.ResetTimer()
			received := 0
			for received < b.N {
				p.ta.Transmit(descs[:min(32, b.N-received)])
				p.ta.Kick()
				for p.ta.Complete(comp) == 0 && p.tb.rx.Len() == 0 {
					time.Sleep(10 * time.Microsecond)
				}
				p.tb.Wait(time.Millisecond)
				k := p.tb.Receive(got)
				for _, d := range got[:k] {
					p.tb.Fill([]uint64{p.ub.Base(d.Addr)})
				}
				received += k
				for p.ta.Complete(comp) > 0 {
				}
			}
			b.StopTimer()
			unix.Getrusage(unix.RUSAGE_SELF, &ru1)
			cpu := time.Duration(ru1.Utime.Nano()-ru0.Utime.Nano()+ru1.Stime.Nano()-ru0.Stime.Nano()) * time.Nanosecond
			b.ReportMetric(float64(cpu.Nanoseconds())/float64(received), "cpu-ns/pkt")
		})
	}
}
