package statsrv

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/dataplane/stats"
)

// fakeSource is a Source whose counters the test sets.
type fakeSource struct {
	mu sync.Mutex
	s  stats.Snapshot
	st client.Status
}

func (f *fakeSource) Snapshot() stats.Snapshot { f.mu.Lock(); defer f.mu.Unlock(); return f.s }
func (f *fakeSource) Status() client.Status    { f.mu.Lock(); defer f.mu.Unlock(); return f.st }
func (f *fakeSource) FDB() []client.FDBEntry {
	if f.st.Mode != "vxlan" {
		return nil
	}
	return []client.FDBEntry{{VNI: 101, MAC: "02:00:00:00:00:01", VTEP: "local", Origin: "lan"}}
}

func newFake() *fakeSource {
	f := &fakeSource{st: client.Status{Mode: "ip6", Peer: "2001:db8:b::b", Ready: true, Started: time.Unix(1700000000, 0), Version: "test", XDPBind: "copy"}}
	for c := stats.Counter(0); c < stats.NumCounters; c++ {
		f.s[c] = uint64(c) + 1
	}
	f.s[stats.ULLastBPDU] = 1700000123_456_000_000
	f.s[stats.DLLastBPDU] = 0
	return f
}

func TestMarshalCounters(t *testing.T) {
	f := newFake()
	b := client.MarshalCounters(&f.s)
	var m map[string]uint64
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if len(m) != int(stats.NumCounters) || m["ul_rx_packets"] != 1 || m["dl_tx_errors"] != 12 || m["ul_last_bpdu"] != 1700000123 || m["dl_last_bpdu"] != 0 {
		t.Errorf("counters: %v", m)
	}
	if !bytes.HasPrefix(b, []byte(`{"ul_rx_packets":1,"ul_rx_bytes":2,`)) || !bytes.HasSuffix(b, []byte("}\n")) {
		t.Errorf("not in counter order or not one line: %s", b)
	}
}

// TestEncodeGPW checks the reference's byte layout (WIRE.md): twelve
// host-order uint64s, ul_rx_packets first, dl_tx_errors last.
func TestEncodeGPW(t *testing.T) {
	f := newFake()
	b := client.EncodeGPW(&f.s)
	if len(b) != 96 {
		t.Fatalf("%d bytes, want 96", len(b))
	}
	names := []string{"ul_rx_packets", "ul_rx_bytes", "ul_rx_bpdus", "ul_tx_packets", "ul_tx_bytes", "ul_tx_errors",
		"dl_rx_packets", "dl_rx_bytes", "dl_rx_bpdus", "dl_tx_packets", "dl_tx_bytes", "dl_tx_errors"}
	for i, n := range names {
		c, _ := stats.Lookup(n)
		if got := binary.NativeEndian.Uint64(b[8*i:]); got != f.s[c] {
			t.Errorf("word %d (%s) = %d, want %d", i, n, got, f.s[c])
		}
	}
	// On the little-endian machines pwgate runs on, ul_rx_packets = 1 is
	// 01 00 00 00 00 00 00 00.
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 && !bytes.Equal(b[:8], []byte{1, 0, 0, 0, 0, 0, 0, 0}) {
		t.Errorf("first word % x", b[:8])
	}
}

func TestStatsSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "pw.sock")
	f := newFake()
	srv, err := ServeStats(path, "", f)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %v %v, want a 0660 socket", fi.Mode(), err)
	}
	cs, err := client.FetchCounters(path, time.Second)
	if err != nil || len(cs) != int(stats.NumCounters) || cs[0] != (client.Counter{Name: "ul_rx_packets", Value: 1}) || cs[14].Value != 1700000123 {
		t.Fatalf("FetchCounters: %v %v", cs, err)
	}
	st, err := client.FetchStatus(path, time.Second)
	if err != nil || st.Peer != "2001:db8:b::b" || !st.Ready || !st.Started.Equal(f.st.Started) {
		t.Fatalf("FetchStatus: %+v %v", st, err)
	}
	if _, err := client.Query(path, "reboot", time.Second); err == nil || !strings.Contains(err.Error(), "unknown request") {
		t.Fatalf("unknown request: %v", err)
	}
	if _, err := client.FetchFDB(path, time.Second); err == nil || !strings.Contains(err.Error(), "not a VXLAN tunnel end") {
		t.Fatalf("fdb of a pseudowire: %v", err)
	}
	f.mu.Lock()
	f.st.Mode = "vxlan"
	f.mu.Unlock()
	if fdb, err := client.FetchFDB(path, time.Second); err != nil || len(fdb) != 1 || fdb[0].VTEP != "local" {
		t.Fatalf("fdb: %+v %v", fdb, err)
	}
	// A second daemon must not steal the socket.
	if _, err := ServeStats(path, "", f); err == nil || !strings.Contains(err.Error(), "is another pwgated running") {
		t.Fatalf("second server: %v", err)
	}
	if _, err := ServeStats(filepath.Join(dir, "x.sock"), "no-such-group-here", f); err == nil {
		t.Fatal("unknown group accepted")
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket file left after Close: %v", err)
	}
	if _, err := client.FetchCounters(path, time.Second); err == nil || !strings.Contains(err.Error(), "is it running?") {
		t.Fatalf("daemon gone: %v", err)
	}
	// A stale socket file from a dead daemon is replaced.
	ln, _ := net.Listen("unix", path)
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	srv, err = ServeStats(path, "", f)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	srv.Close()
}

func TestQueryPermission(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root may open any socket; the integration test checks this as an ordinary user")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "pw.sock")
	srv, err := ServeStats(path, "", newFake())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	os.Chmod(path, 0)
	if _, err := client.Query(path, client.ReqStats, time.Second); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("want permission denied, got %v", err)
	}
}

func TestGPWSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gpw.sock")
	f := newFake()
	srv, err := ServeGPW(path, "", f)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The reference's client sends an int 0 and reads 96 bytes; a client
	// may ask again on the same connection.
	for i := 0; i < 2; i++ {
		if _, err := c.Write([]byte{0, 0, 0, 0}); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 96)
		c.SetDeadline(time.Now().Add(time.Second))
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, client.EncodeGPW(&f.s)) {
			t.Fatalf("answer %d: % x", i, b)
		}
		f.mu.Lock()
		f.s[stats.ULRxBPDUs] += 5
		f.mu.Unlock()
	}
}

func TestPrometheus(t *testing.T) {
	f := newFake()
	srv, err := ServePrometheus("127.0.0.1:0", f)
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.(*promServer).addr
	defer srv.Close()
	get := func() string {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	out := get()
	for _, want := range []string{
		"# TYPE pwgate_ul_rx_packets_total counter\npwgate_ul_rx_packets_total 1\n",
		"# HELP pwgate_ul_rx_bpdus_total BPDUs among the frames decapsulated from the uplink.\n",
		fmt.Sprintf(`pwgate_drops_total{direction="ul",reason="lone_second"} %d`, stats.ULDropLoneSecond+1),
		fmt.Sprintf(`pwgate_drops_total{direction="dl",reason="no_next_hop"} %d`, stats.DLDropNoNextHop+1),
		`pwgate_last_bpdu_timestamp_seconds{direction="ul"} 1.700000123456e+09`,
		`pwgate_last_bpdu_timestamp_seconds{direction="dl"} 0`,
		"pwgate_ready 1\n",
		"pwgate_start_time_seconds 1.7e+09\n",
		`pwgate_info{mode="ip6",peer="2001:db8:b::b",version="test",xdp_bind="copy"} 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if want := fmt.Sprintf(`pwgate_evpn_routes_not_imported_total{reason="family"} %d`, stats.EVPNNotImportedFamily+1); !strings.Contains(out, want) {
		t.Errorf("metrics lack %q", want)
	}
	if strings.Contains(out, `reason="ul_rx_packets"`) || strings.Contains(out, "not_imported_family_total") {
		t.Error("EVPN refusals exported wrongly")
	}
	if strings.Contains(out, "last_bpdu_total") || strings.Contains(out, "drop_lone_second_total") {
		t.Error("timestamps or drops exported as plain counters")
	}
	f.mu.Lock()
	f.s[stats.ULRxPackets] = 99
	f.st.BGP = &client.BGP{Neighbors: []client.Neighbor{{Neighbor: "10.0.0.2", State: "established", Advertised: 3, Received: map[string]int{"l2vpn-evpn": 7}},
		{Neighbor: "10.0.0.3", State: "active", Received: map[string]int{}, PrefixLimitResets: 2}}}
	f.st.EVPN = &client.EVPN{MACs: client.MACCounts{Local: 4, Remote: 9}, VTEPs: []client.VTEP{{Resolved: true}, {Resolved: false}},
		RoutesReceived: map[string]int{"macip": 9, "imet": 2}, RoutesAnnounced: map[string]int{"macip": 4, "imet": 1}}
	f.st.Path = &client.PeerPath{State: "up", RTT: 0.0015, Jitter: 0.0002, Loss: 0.25, FollowPeer: &client.FollowPeerStatus{}}
	f.mu.Unlock()
	out = get()
	for _, want := range []string{
		"pwgate_ul_rx_packets_total 99\n",
		`pwgate_bgp_session_up{neighbor="10.0.0.2"} 1`,
		`pwgate_bgp_session_up{neighbor="10.0.0.3"} 0`,
		`pwgate_bgp_routes_received{family="l2vpn-evpn",neighbor="10.0.0.2"} 7`,
		`pwgate_bgp_routes_advertised{neighbor="10.0.0.2"} 3`,
		`pwgate_bgp_prefix_limit_resets_total{neighbor="10.0.0.3"} 2`,
		`pwgate_evpn_macs{where="remote"} 9`,
		`pwgate_evpn_vteps{resolved="no"} 1`,
		`pwgate_evpn_routes{direction="announced",type="imet"} 1`,
		"pwgate_evpn_macs_learned_total",
		"pwgate_peer_up 1\n",
		"pwgate_peer_rtt_seconds 0.0015\n",
		"pwgate_peer_jitter_seconds 0.0002\n",
		"pwgate_peer_loss_ratio 0.25\n",
		"pwgate_follow_peer_lan_down 0\n",
		"pwgate_dl_follow_peer_downs_total ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// fakeAnycast is a fakeSource that runs anycast and records the control
// requests that reached it.
type fakeAnycast struct {
	*fakeSource
	calls []string
}

func (f *fakeAnycast) Anycast() *client.Anycast {
	return &client.Anycast{VIPs: []client.AnycastVIP{{Prefix: "192.0.2.80/32", State: "up"}}}
}

func (f *fakeAnycast) Control(verb, prefix string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, verb+" "+prefix)
	return nil
}

func (f *fakeAnycast) controlCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// TestStatsSocketControlNeedsRoot: a peer that is neither root nor
// pwgated's own user (the monitoring group) may read everything but not
// drain or resume a VIP; root may.
func TestStatsSocketControlNeedsRoot(t *testing.T) {
	other := 1000 // the test runs as root in CI
	if os.Geteuid() != 0 {
		other = os.Geteuid() + 1
	}
	var mu sync.Mutex
	uid, uidErr := other, error(nil)
	logged := &syncWriter{w: &bytes.Buffer{}}
	f := &fakeAnycast{fakeSource: newFake()}
	path := filepath.Join(t.TempDir(), "pw.sock")
	s := &statsServer{src: f, log: slog.New(slog.NewTextHandler(logged, nil)), peerUID: func(net.Conn) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return uid, uidErr
	}}
	srv, err := serveStatsSocket(path, "", s)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

	// Reading stays open to the group.
	if _, err := client.FetchCounters(path, time.Second); err != nil {
		t.Fatalf("stats as uid %d: %v", other, err)
	}
	if _, err := client.FetchStatus(path, time.Second); err != nil {
		t.Fatalf("status as uid %d: %v", other, err)
	}
	if a, err := client.FetchAnycast(path, time.Second); err != nil || len(a.VIPs) != 1 {
		t.Fatalf("anycast as uid %d: %+v %v", other, a, err)
	}
	// Changing state does not.
	for _, verb := range []string{"drain", "resume"} {
		err := client.AnycastControl(path, verb, "192.0.2.80/32", time.Second)
		if err == nil || !strings.Contains(err.Error(), "anycast "+verb+" needs root") || !strings.Contains(err.Error(), fmt.Sprint("uid ", other)) {
			t.Fatalf("anycast %s as uid %d: %v", verb, other, err)
		}
	}
	if c := f.controlCalls(); len(c) != 0 {
		t.Fatalf("refused requests reached the announcer: %q", c)
	}
	if n := s.refused.Load(); n != 2 {
		t.Errorf("refused counter %d, want 2", n)
	}
	// Refusals are logged, at most once per logEvery.
	if out := logged.String(); strings.Count(out, "control request refused") != 1 || !strings.Contains(out, "uid=") {
		t.Errorf("log of refusals:\n%s", out)
	}
	// A peer whose credentials cannot be read is not root.
	mu.Lock()
	uidErr = errors.New("no credentials")
	mu.Unlock()
	if err := client.AnycastControl(path, "drain", "192.0.2.80/32", time.Second); err == nil || !strings.Contains(err.Error(), "needs root") || !strings.Contains(err.Error(), "no credentials") {
		t.Fatalf("anycast drain without credentials: %v", err)
	}
	// Root may.
	mu.Lock()
	uid, uidErr = 0, nil
	mu.Unlock()
	for _, verb := range []string{"drain", "resume"} {
		if err := client.AnycastControl(path, verb, "192.0.2.80/32", time.Second); err != nil {
			t.Fatalf("anycast %s as root: %v", verb, err)
		}
	}
	if c := f.controlCalls(); len(c) != 2 || c[0] != "drain 192.0.2.80/32" || c[1] != "resume 192.0.2.80/32" {
		t.Fatalf("control requests as root: %q", c)
	}
	if n := s.refused.Load(); n != 3 {
		t.Errorf("refused counter %d, want 3", n)
	}
}

// TestStatsSocketPeerUID: the server reads the connecting process's user
// id from the socket (SO_PEERCRED), and a real ServeStats lets this
// process (root in CI, else pwgated's own user) drain.
func TestStatsSocketPeerUID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pw.sock")
	got := make(chan int, 1)
	s := &statsServer{src: newFake(), log: slog.New(slog.DiscardHandler), peerUID: func(c net.Conn) (int, error) {
		uid, err := peerCredUID(c)
		if err != nil {
			t.Errorf("peerCredUID: %v", err)
		}
		got <- uid
		return uid, err
	}}
	srv, err := serveStatsSocket(path, "", s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.FetchStatus(path, time.Second); err != nil {
		t.Fatal(err)
	}
	if uid := <-got; uid != os.Geteuid() {
		t.Errorf("SO_PEERCRED uid %d, want %d", uid, os.Geteuid())
	}
	srv.Close()
	if _, err := peerCredUID(nil); err == nil {
		t.Error("peerCredUID of a non-unix connection: no error")
	}

	f := &fakeAnycast{fakeSource: newFake()}
	srv, err = ServeStats(path, "", f)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := client.AnycastControl(path, "drain", "192.0.2.80/32", time.Second); err != nil {
		t.Fatalf("anycast drain as uid %d (pwgated's own): %v", os.Geteuid(), err)
	}
	if c := f.controlCalls(); len(c) != 1 {
		t.Fatalf("control requests: %q", c)
	}
}

// syncWriter serializes writes to w (the server logs from its
// connections' goroutines).
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

// TestListenRefusesNonSocket: a wrong stats.socket path must not delete a
// file that happens to be there; a stale socket is replaced.
func TestListenRefusesNonSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "important")
	if err := os.WriteFile(path, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ServeStats(path, "", newFake()); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("ServeStats over a file: %v", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "keep me" {
		t.Fatalf("file after ServeStats: %q %v", b, err)
	}
	// A socket nobody answers on (a dead daemon's) is replaced.
	sock := filepath.Join(dir, "stale.sock")
	srv, err := ServeStats(sock, "", newFake())
	if err != nil {
		t.Fatal(err)
	}
	srv.(*server).ln.(interface{ SetUnlinkOnClose(bool) }).SetUnlinkOnClose(false)
	srv.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Fatal("stale socket not left behind for the test")
	}
	srv, err = ServeStats(sock, "", newFake())
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	srv.Close()
}
