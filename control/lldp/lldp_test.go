package lldp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/dataplane/stats"
)

var (
	macA = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xa}
	macB = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xb}
)

func TestFrameParse(t *testing.T) {
	in := Info{TTL: 120, PortDesc: "pwgate LAN port", SystemName: "site-a", SystemDesc: "pwgate dev", Caps: CapBridge,
		Mgmt: []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}}
	f := Frame(macA, macB, "dl0", in)
	if !bytes.Equal(f[:6], Group[:]) || !bytes.Equal(f[6:12], macA) || f[12] != 0x88 || f[13] != 0xcc {
		t.Fatalf("header % x", f[:14])
	}
	got, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.ChassisID, want.PortID = macB.String(), "dl0"
	if got.ChassisID != want.ChassisID || got.PortID != want.PortID || got.TTL != 120 || got.PortDesc != in.PortDesc ||
		got.SystemName != in.SystemName || got.SystemDesc != in.SystemDesc || got.Caps != CapBridge || len(got.Mgmt) != 2 || got.Mgmt[1] != in.Mgmt[1] {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if len(Frame(macA, macB, "x", Info{})) < 60 {
		t.Error("a frame shorter than Ethernet's minimum")
	}
}

// An LLDPDU shaped as lldpd sends it, and one of a switch with
// a network-address chassis ID, a locally assigned port ID and strings
// with control characters and trailing NULs.
func TestParseOthers(t *testing.T) {
	lldpd, _ := hex.DecodeString("0180c200000e02000000000188cc" +
		"020704020000000001" + // chassis: MAC 02:00:00:00:00:01
		"040703020000000001" + // port: MAC
		"06020078" + // TTL 120
		"0a05686f737461" + // system name "hosta"
		"0c0a44656269616e2031320a" + // system description "Debian 12\n"
		"080465746830" + // port description "eth0"
		"0e0400800080" + // capabilities: station, station
		"0000")
	got, err := Parse(lldpd)
	if err != nil {
		t.Fatal(err)
	}
	if got.ChassisID != "02:00:00:00:00:01" || got.PortID != "02:00:00:00:00:01" || got.TTL != 120 || got.SystemName != "hosta" ||
		got.SystemDesc != "Debian 12?" || got.PortDesc != "eth0" || got.Caps != 0x80 {
		t.Fatalf("%+v", got)
	}
	sw, _ := hex.DecodeString("0180c200000e02000000000288cc" +
		"020605" + "01c0000201" + // chassis: network address 192.0.2.1
		"0406" + "07" + "47693031" + "00" + // port: locally assigned "Gi01\0"
		"06020000" + // TTL 0
		"0000")
	if got, err := Parse(sw); err != nil || got.ChassisID != "192.0.2.1" || got.PortID != "Gi01" || got.TTL != 0 {
		t.Fatalf("%+v %v", got, err)
	}
}

func TestParseErrors(t *testing.T) {
	good := Frame(macA, macB, "dl0", Info{TTL: 120, SystemName: "x"})
	for _, c := range []struct {
		name string
		f    []byte
		want string
	}{
		{"short", good[:10], "not an LLDP frame"},
		{"other EtherType", append(append([]byte{}, good[:12]...), 0x08, 0x00), "not an LLDP frame"},
		{"empty", good[:14], "ends before"},
		{"truncated header", good[:15], "truncated TLV header"},
		{"TLV past the end", good[:14+2+3], "bytes, 3 left"},
		{"port ID first", append(append([]byte{}, good[:14]...), 0x04, 0x02, 5, 'x'), "must come first"},
		{"end after chassis", append(append([]byte{}, good[:14+9]...), 0, 0), "TLV 2 is type 0"},
		{"chassis ID of one byte", append(append([]byte{}, good[:14]...), 0x02, 0x01, 4), "length 1"},
	} {
		if _, err := Parse(c.f); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Frame(macA, macB, "dl0", Info{TTL: 120, SystemName: "x", Mgmt: []netip.Addr{netip.MustParseAddr("2001:db8::1")}}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := Parse(b)
		if err != nil {
			return
		}
		for _, s := range []string{in.ChassisID, in.PortID, in.PortDesc, in.SystemName, in.SystemDesc} {
			if len(s) > maxString || strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0 {
				t.Fatalf("kept %q", s)
			}
		}
		if len(in.Mgmt) > 4 {
			t.Fatalf("%d management addresses", len(in.Mgmt))
		}
	})
}

// fakePort is an LLDP port in memory.
type fakePort struct {
	mu     sync.Mutex
	sent   [][]byte
	in     chan []byte
	closed chan struct{}
	once   sync.Once
	fail   error
	errs   chan error // read returns these first
}

func newFakePort() *fakePort {
	return &fakePort{in: make(chan []byte, 100), closed: make(chan struct{}), errs: make(chan error, 1)}
}

func (p *fakePort) send(f []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail != nil {
		return p.fail
	}
	p.sent = append(p.sent, f)
	return nil
}

func (p *fakePort) read(buf []byte) (int, error) {
	select {
	case err := <-p.errs:
		return 0, err
	default:
	}
	select {
	case f := <-p.in:
		return copy(buf, f), nil
	case <-p.closed:
		return 0, os.ErrClosed
	}
}

func (p *fakePort) close() error { p.once.Do(func() { close(p.closed) }); return nil }

func (p *fakePort) hwaddr() net.HardwareAddr { return macA }

func (p *fakePort) frames() []Info {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Info
	for _, f := range p.sent {
		in, _ := Parse(f)
		out = append(out, in)
	}
	return out
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testConfig(extra ...string) *config.Config {
	return &config.Config{Mode: config.ModeEth, Downlink: "dl0", Uplink: "ul0",
		LLDP: &config.LLDP{Interval: 30 * time.Second, SystemName: "site-a", Ports: extra}}
}

// TestRole: our LLDPDUs on every port at start, each interval, again at
// once after a reload, and TTL 0 at close; neighbours kept until their TTL
// runs out, replaced, removed on TTL 0, at most MaxNeighbors a port and
// MaxRate a second; a port that cannot be opened is tried again.
func TestRole(t *testing.T) {
	ports := map[string]*fakePort{"dl0": newFakePort(), "ul0": newFakePort(), "mgmt0": newFakePort()}
	missing := true
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	open := func(name string) (portIO, error) {
		if name == "mgmt0" && missing {
			return nil, errors.New("no such interface")
		}
		return ports[name], nil
	}
	r := start(testConfig("mgmt0"), open, clock.now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer r.Close(false)
	for _, n := range []string{"dl0", "ul0"} {
		fs := ports[n].frames()
		if len(fs) != 1 || fs[0].PortID != n || fs[0].SystemName != "site-a" || fs[0].TTL != 120 || !strings.HasPrefix(fs[0].SystemDesc, "pwgate") {
			t.Fatalf("%s sent %+v", n, fs)
		}
	}
	var st client.Status
	r.Status(&st)
	if st.LLDP == nil || len(st.LLDP.Ports) != 3 || st.LLDP.Ports[2].Error != "no such interface" {
		t.Fatalf("status %+v", st.LLDP)
	}
	// Neighbours.
	hear := func(port string, in Info) {
		r.receive(&lldpPort{}, nil) // (a nil frame is bad)
		p := r.ports[map[string]int{"dl0": 0, "ul0": 1, "mgmt0": 2}[port]]
		r.receive(p, Frame(macB, macB, "Gi0/1", in))
	}
	hear("dl0", Info{TTL: 120, SystemName: "sw1", PortDesc: "to pwgate", Caps: CapBridge})
	hear("dl0", Info{TTL: 120, SystemName: "sw1 renamed", PortDesc: "to pwgate", Caps: CapBridge}) // the same neighbour
	st = client.Status{}
	r.Status(&st)
	if n := st.LLDP.Neighbors; len(n) != 1 || n[0].Port != "dl0" || n[0].SystemName != "sw1 renamed" || n[0].PortID != "Gi0/1" || n[0].Caps[0] != "bridge" {
		t.Fatalf("neighbours %+v", n)
	}
	var s stats.Snapshot
	r.AddCounters(&s)
	if s[stats.LLDPRx] != 2 || s[stats.LLDPRxBad] != 2 || s[stats.LLDPTx] != 2 {
		t.Errorf("counters rx %d bad %d tx %d", s[stats.LLDPRx], s[stats.LLDPRxBad], s[stats.LLDPTx])
	}
	// Expiry, and the interval: nothing new before it, everything at it.
	clock.add(29 * time.Second)
	r.tick()
	if len(ports["dl0"].frames()) != 1 {
		t.Error("sent before the interval")
	}
	clock.add(time.Second)
	missing = false
	r.tick()
	if len(ports["dl0"].frames()) != 2 || len(ports["mgmt0"].frames()) != 1 {
		t.Errorf("at the interval: dl0 %d frames, mgmt0 (opened again) %d", len(ports["dl0"].frames()), len(ports["mgmt0"].frames()))
	}
	clock.add(91 * time.Second)
	r.tick()
	st = client.Status{}
	r.Status(&st)
	if len(st.LLDP.Neighbors) != 0 {
		t.Errorf("a neighbour kept past its TTL: %+v", st.LLDP.Neighbors)
	}
	// TTL 0 removes; a ninth neighbour is ignored; so is the 51st LLDPDU
	// in a second.
	hear("ul0", Info{TTL: 120})
	hear("ul0", Info{TTL: 0})
	p := r.ports[1]
	for i := range MaxNeighbors + 1 {
		r.receive(p, Frame(macB, macB, "port"+string(rune('a'+i)), Info{TTL: 120}))
	}
	st = client.Status{}
	r.Status(&st)
	if len(st.LLDP.Neighbors) != MaxNeighbors {
		t.Errorf("%d neighbours, want %d", len(st.LLDP.Neighbors), MaxNeighbors)
	}
	for range MaxRate {
		r.receive(p, Frame(macB, macB, "porta", Info{TTL: 120}))
	}
	s = stats.Snapshot{}
	r.AddCounters(&s)
	if s[stats.LLDPRxIgnored] < 2 {
		t.Errorf("lldp_rx_ignored %d: the ninth neighbour and the rate limit", s[stats.LLDPRxIgnored])
	}
	// A reload: another name and interval, the management port gone
	// (goodbye with TTL 0).
	next := testConfig()
	next.LLDP.SystemName, next.LLDP.Interval = "site-b", 10*time.Second
	steps, err := r.Reload(testConfig("mgmt0"), next)
	if err != nil || len(steps) != 1 || steps[0].Do() != nil {
		t.Fatalf("reload: %v %v", steps, err)
	}
	if fs := ports["dl0"].frames(); fs[len(fs)-1].SystemName != "site-b" || fs[len(fs)-1].TTL != 40 {
		t.Errorf("after the reload: %+v", fs[len(fs)-1])
	}
	if fs := ports["mgmt0"].frames(); fs[len(fs)-1].TTL != 0 {
		t.Errorf("a port dropped by the reload got %+v last, want TTL 0", fs[len(fs)-1])
	}
	steps[0].Undo()
	if fs := ports["dl0"].frames(); fs[len(fs)-1].SystemName != "site-a" {
		t.Errorf("after the undo: %+v", fs[len(fs)-1])
	}
	r.Close(false)
	if fs := ports["ul0"].frames(); fs[len(fs)-1].TTL != 0 {
		t.Errorf("at close: %+v, want TTL 0", fs[len(fs)-1])
	}
}

// TestReader: frames read from a port reach the table, also after a
// failed read (the link was down); closing ends the reader.
func TestReader(t *testing.T) {
	dl := newFakePort()
	dl.errs <- errors.New("network is down")
	r := start(testConfig(), func(string) (portIO, error) { return dl, nil }, time.Now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	dl.in <- Frame(macB, macB, "Gi0/2", Info{TTL: 120, SystemName: "sw2"})
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var st client.Status
		r.Status(&st)
		if len(st.LLDP.Neighbors) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the frame read was not taken")
		}
	}
	r.Close(false) // returns only once the readers have
}

// TestPortGone: a read that says the interface is gone closes the port,
// and the tick after an interval opens it again (a new socket on the
// interface as it is now).
func TestPortGone(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	var mu sync.Mutex
	opened := map[string]int{}
	gone := newFakePort()
	gone.errs <- unix.ENODEV
	open := func(name string) (portIO, error) {
		mu.Lock()
		defer mu.Unlock()
		opened[name]++
		if name == "dl0" && opened[name] == 1 {
			return gone, nil
		}
		return newFakePort(), nil
	}
	r := start(testConfig(), open, clock.now, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer r.Close(false)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var st client.Status
		r.Status(&st)
		if st.LLDP.Ports[0].Error == "receive: "+unix.ENODEV.Error() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gone port not closed: %+v", st.LLDP.Ports)
		}
	}
	select {
	case <-gone.closed:
	default:
		t.Error("the dead socket was not closed")
	}
	clock.add(30 * time.Second)
	r.tick()
	mu.Lock()
	defer mu.Unlock()
	if opened["dl0"] != 2 || opened["ul0"] != 1 {
		t.Errorf("opened %v, want dl0 twice and ul0 once", opened)
	}
}
