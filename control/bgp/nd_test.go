package bgp

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
)

var ll = netip.MustParseAddr("fe80::1")

func TestParseRA(t *testing.T) {
	good := buildRA(net.HardwareAddr{2, 0, 0, 0, 0, 1})
	if err := parseRA(good, 255, ll); err != nil {
		t.Fatalf("our own advertisement: %v", err)
	}
	if err := parseRA(buildRA(nil), 255, ll); err != nil {
		t.Fatalf("without options: %v", err)
	}
	with := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, c := range []struct {
		name string
		b    []byte
		hops int
		src  netip.Addr
	}{
		{"hop limit 254 (from beyond the link)", good, 254, ll},
		{"global source", good, 255, netip.MustParseAddr("2001:db8::1")},
		{"IPv4-mapped source", good, 255, netip.MustParseAddr("::ffff:169.254.0.1")},
		{"short", good[:15], 255, ll},
		{"router solicitation", with(func(b []byte) []byte { b[0] = 133; return b }), 255, ll},
		{"code 1", with(func(b []byte) []byte { b[1] = 1; return b }), 255, ll},
		{"option of length 0", with(func(b []byte) []byte { b[17] = 0; return b }), 255, ll},
		{"option past the end", with(func(b []byte) []byte { b[17] = 2; return b }), 255, ll},
		{"one byte of option", append(append([]byte(nil), good...), 1), 255, ll},
	} {
		if err := parseRA(c.b, c.hops, c.src); err == nil {
			t.Errorf("%s: taken", c.name)
		}
	}
}

func FuzzParseRA(f *testing.F) {
	f.Add(buildRA(net.HardwareAddr{2, 0, 0, 0, 0, 1}))
	f.Add(buildRA(nil))
	f.Add([]byte{134, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 4, 64, 192})
	f.Fuzz(func(t *testing.T, b []byte) {
		if parseRA(b, 255, ll) == nil && (len(b) < 16 || b[0] != 134) {
			t.Fatalf("took %x", b)
		}
	})
}

// fakeLinks is linkNeighbors without its socket: heard is called by hand.
type fakeLinks struct {
	*linkNeighbors
	learned []string // "IF ADDR" as reported
	start   bool     // what learned answers
	up      map[netip.Addr]bool
}

func newFakeLinks(ifs ...string) *fakeLinks {
	f := &fakeLinks{start: true, up: map[netip.Addr]bool{}}
	f.linkNeighbors = &linkNeighbors{log: slog.New(slog.NewTextHandler(io.Discard, nil)), ifs: map[string]*linkState{},
		learned: func(ifname string, a netip.Addr) bool {
			f.learned = append(f.learned, ifname+" "+a.String())
			return f.start
		},
		up: func(a netip.Addr) bool { return f.up[a] }}
	f.set(ifs)
	return f
}

func TestLinkNeighbors(t *testing.T) {
	f := newFakeLinks("s0", "s1")
	a, b := netip.MustParseAddr("fe80::a"), netip.MustParseAddr("fe80::b")
	back := func(ifname string) { f.ifs[ifname].taken = time.Now().Add(-raChange) }
	f.heard("s9", a, nil) // not an unnumbered neighbor's interface
	f.heard("s0", a, errBad)
	if len(f.learned) != 0 || f.addr("s0").IsValid() || f.ignoredOn("s0") != 1 {
		t.Fatalf("learned %v, s0 %v, ignored %d", f.learned, f.addr("s0"), f.ignoredOn("s0"))
	}
	f.heard("s0", a, nil)
	f.heard("s0", a, nil) // heard again: nothing new
	f.heard("s1", a, nil) // the same address on another link
	if got := f.addr("s0"); got != a.WithZone("s0") {
		t.Fatalf("s0's neighbor %v", got)
	}
	if want := []string{"s0 fe80::a%s0", "s1 fe80::a%s1"}; !slices.Equal(f.learned, want) {
		t.Fatalf("learned %v, want %v", f.learned, want)
	}

	// A second router while the first is fresh: kept aside, counted.
	f.up[a.WithZone("s0")] = true
	f.heard("s0", b, nil)
	back("s0")
	f.look(time.Now())
	if f.addr("s0") != a.WithZone("s0") || len(f.learned) != 2 || f.ignoredOn("s0") != 2 {
		t.Fatalf("a second router taken: %v, learned %v, ignored %d", f.addr("s0"), f.learned, f.ignoredOn("s0"))
	}
	// The first's session down (the router was replaced): the one kept
	// aside is taken at the next look...
	f.up[a.WithZone("s0")] = false
	f.look(time.Now())
	if f.addr("s0") != b.WithZone("s0") || len(f.learned) != 3 {
		t.Fatalf("the new router not taken: %v, learned %v", f.addr("s0"), f.learned)
	}
	// ...but not within raChange of the last change (a flood from ever
	// new sources).
	f.heard("s0", a, nil)
	f.look(time.Now())
	if f.addr("s0") != b.WithZone("s0") || len(f.learned) != 3 {
		t.Fatalf("changed twice within %v: %v, learned %v", raChange, f.addr("s0"), f.learned)
	}

	// Up, but not heard for raStale: another router is taken at once.
	f.up[b.WithZone("s0")] = true
	f.ifs["s0"].heard = time.Now().Add(-raStale - time.Second)
	back("s0")
	f.heard("s0", a, nil)
	if f.addr("s0") != a.WithZone("s0") || len(f.learned) != 4 {
		t.Fatalf("a stale neighbor kept: %v, learned %v", f.addr("s0"), f.learned)
	}

	// A session that could not start is tried again when next heard,
	// at most once per raChange.
	f.start = false
	back("s1")
	f.ifs["s1"].heard = time.Time{}
	f.heard("s1", b, nil)
	n := len(f.learned)
	f.start = true
	f.heard("s1", b, nil)
	if len(f.learned) != n {
		t.Fatalf("retried within %v: %v", raChange, f.learned)
	}
	back("s1")
	f.heard("s1", b, nil)
	f.heard("s1", b, nil)
	if len(f.learned) != n+1 {
		t.Fatalf("a neighbor whose session did not start: learned %v", f.learned)
	}

	// A flood: past raRate a second, counted and not looked at.
	f.ifs["s1"].second = time.Now()
	before := f.ignoredOn("s1")
	for range 3 * raRate {
		f.heard("s1", b, nil)
	}
	if got := f.ignoredOn("s1") - before; got < 2*raRate-1 {
		t.Errorf("a flood of %d advertisements: %d ignored", 3*raRate, got)
	}

	// An interface no longer unnumbered is forgotten.
	f.set([]string{"s1"})
	if f.addr("s0").IsValid() {
		t.Fatal("s0 kept")
	}
}

var errBad = net.UnknownNetworkError("bad")
