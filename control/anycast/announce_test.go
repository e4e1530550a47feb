package anycast

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pwgate/pwgate/control/bgp"
	"github.com/pwgate/pwgate/control/bgp/bgptest"
	"github.com/pwgate/pwgate/control/config"
)

type switchCheck struct{ fail atomic.Bool }

func (c *switchCheck) Run(time.Time) error {
	if c.fail.Load() {
		return errors.New("down")
	}
	return nil
}
func (c *switchCheck) String() string { return "switch" }

var vip = netip.MustParsePrefix("192.0.2.80/32")

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func eventually(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 5*time.Second {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("not within 5 s: %s", what)
	return 0
}

func announced(sp *bgptest.Fake) (bgp.Route, bool) {
	return sp.Get((&bgp.Route{Kind: bgp.Prefix, Prefix: vip}).ID())
}

func TestAnnouncerRiseFallDrain(t *testing.T) {
	sp := bgptest.New()
	a := NewAnnouncer(sp, quiet())
	c := &switchCheck{}
	cfg := VIP{VIP: config.VIP{Prefix: vip, Interval: 20 * time.Millisecond, Timeout: 10 * time.Millisecond, Rise: 2, Fall: 3,
		MED: 10, HasMED: true, Communities: []uint32{65000<<16 | 80}, Drain: 100 * time.Millisecond, DrainMED: 1000}, Probe: c}
	a.Set([]VIP{cfg})
	defer a.Close()
	eventually(t, "announced after rise", func() bool { _, ok := announced(sp); return ok })
	r, _ := announced(sp)
	if r.MED != 10 || !r.HasMED || r.NextHop.IsValid() || !slices.Equal(r.Communities, cfg.Communities) {
		t.Errorf("route %v", r)
	}
	// Fall failures withdraw it, within interval × fall (and a little).
	c.fail.Store(true)
	if d := eventually(t, "withdrawn after fall", func() bool { _, ok := announced(sp); return !ok }); d > 3*cfg.Interval+100*time.Millisecond {
		t.Errorf("withdrawn after %v, want about %v", d, 3*cfg.Interval)
	}
	if s := a.Status()[0]; s.State != string(Down) || s.Healthy || s.LastError != "down" || s.Failures < 3 {
		t.Errorf("status %+v", s)
	}
	c.fail.Store(false)
	eventually(t, "announced again", func() bool { _, ok := announced(sp); return ok })
	// Drain: the drain MED and GRACEFUL_SHUTDOWN, then a withdrawal.
	if err := a.Drain(vip); err != nil {
		t.Fatal(err)
	}
	eventually(t, "drain MED", func() bool { r, _ := announced(sp); return r.MED == 1000 })
	r, _ = announced(sp)
	if !slices.Contains(r.Communities, bgp.GracefulShutdown) || !slices.Contains(r.Communities, cfg.Communities[0]) {
		t.Errorf("drained route's communities %v", r.Communities)
	}
	eventually(t, "withdrawn after the drain", func() bool { _, ok := announced(sp); return !ok })
	if s := a.Status()[0]; s.State != string(Drained) {
		t.Errorf("state %s after the drain", s.State)
	}
	time.Sleep(3 * cfg.Interval)
	if _, ok := announced(sp); ok {
		t.Fatal("a drained VIP came back while healthy")
	}
	if err := a.Resume(vip); err != nil {
		t.Fatal(err)
	}
	eventually(t, "resumed", func() bool { r, ok := announced(sp); return ok && r.MED == 10 })
	// A reload with a new MED re-announces at once.
	cfg.MED = 20
	a.Set([]VIP{cfg})
	eventually(t, "new MED", func() bool { r, _ := announced(sp); return r.MED == 20 })
	if err := a.Drain(netip.MustParsePrefix("192.0.2.81/32")); err == nil {
		t.Error("draining an unknown VIP did not fail")
	}
	// Removed by a reload: drained, then withdrawn.
	a.Set(nil)
	eventually(t, "drain on removal", func() bool { r, _ := announced(sp); return r.MED == 1000 })
	eventually(t, "withdrawn on removal", func() bool { _, ok := announced(sp); return !ok })
}

// TestAnnouncerWaitsForClock: with anycast.clock_wait, no check runs (and
// the status says why) until the clock is synchronised; then the VIP rises
// as usual. A clock never synchronised holds the checks for the wait only.
func TestAnnouncerWaitsForClock(t *testing.T) {
	defer func(p time.Duration) { clockPoll = p }(clockPoll)
	clockPoll = 5 * time.Millisecond
	cfg := VIP{VIP: config.VIP{Prefix: vip, Interval: 10 * time.Millisecond, Timeout: 10 * time.Millisecond, Rise: 1, Fall: 1}, Probe: &switchCheck{}}
	var synced atomic.Bool
	sp := bgptest.New()
	a := NewAnnouncer(sp, quiet())
	a.WaitForClock(time.Minute, synced.Load)
	a.Set([]VIP{cfg})
	time.Sleep(100 * time.Millisecond)
	if s := a.Status()[0]; s.Checks != 0 || s.Announced || !strings.Contains(s.LastError, "waiting for the system clock") {
		t.Fatalf("checked before the clock was synchronised: %+v", s)
	}
	synced.Store(true)
	eventually(t, "announced once the clock is synchronised", func() bool { _, ok := announced(sp); return ok })
	a.Close()

	sp = bgptest.New()
	a = NewAnnouncer(sp, quiet())
	a.WaitForClock(150*time.Millisecond, func() bool { return false })
	a.Set([]VIP{cfg})
	if d := eventually(t, "announced after the wait", func() bool { _, ok := announced(sp); return ok }); d < 100*time.Millisecond {
		t.Errorf("announced %v after the start: the wait was not kept", d)
	}
	a.Close()

	// A synchronised clock, or no wait: nothing waits.
	a = NewAnnouncer(bgptest.New(), quiet())
	a.WaitForClock(time.Minute, func() bool { return true })
	a.WaitForClock(0, func() bool { return false })
	if !a.clockReady.Load() {
		t.Error("the checks wait although the clock is synchronised or no wait is set")
	}
	a.Close()
}

func TestAnnouncerSpeakerFails(t *testing.T) {
	sp := bgptest.New()
	sp.Fail = errors.New("no speaker")
	a := NewAnnouncer(sp, quiet())
	a.Set([]VIP{{VIP: config.VIP{Prefix: vip, Interval: 10 * time.Millisecond, Timeout: 10 * time.Millisecond, Rise: 1, Fall: 1}, Probe: &switchCheck{}}})
	eventually(t, "up", func() bool { return a.Status()[0].State == string(Up) })
	if a.Status()[0].Announced {
		t.Error("announced although the speaker failed")
	}
	a.Close()
}

// A plain http check keeps its connection, and replaces it at once when
// the server closed it.
func TestHTTPCheckKeepAlive(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	c, err := ParseCheck("http", srv.URL+"/health", 200)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if err := run(c, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("5 checks took %d connections", n)
	}
	srv.CloseClientConnections()
	time.Sleep(50 * time.Millisecond)
	if err := run(c, time.Second); err != nil {
		t.Errorf("after the server closed the connection: %v", err)
	}
	c.(*HTTPCheck).Close()
}

func TestChecks(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(200 * time.Millisecond)
		}
		if r.URL.Path == "/bad" {
			w.WriteHeader(503)
		}
	}))
	defer srv.Close()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()
	for _, tc := range []struct {
		kind, target string
		want         int
		ok           bool
	}{
		{"http", srv.URL + "/", 0, true},
		{"http", srv.URL + "/bad", 200, false},
		{"http", srv.URL + "/bad", 503, true},
		{"http", srv.URL + "/slow", 200, false}, // timeout
		{"tcp", srv.Listener.Addr().String(), 0, true},
		{"tcp", closedAddr, 0, false},
		{"exec", "true", 0, true},
		{"exec", "false", 0, false},
		{"exec", "false", 1, true},
		{"exec", "sleep 5", 0, false}, // killed at the timeout
	} {
		c, err := ParseCheck(tc.kind, tc.target, tc.want)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.kind, tc.target, err)
		}
		start := time.Now()
		err = run(c, 100*time.Millisecond)
		if (err == nil) != tc.ok {
			t.Errorf("%s: %v", c, err)
		}
		if time.Since(start) > time.Second {
			t.Errorf("%s took %v", c, time.Since(start))
		}
	}
	for _, bad := range [][2]string{{"http", "ftp://x/"}, {"http", "no url"}, {"tcp", "nohostport"}, {"exec", ""}, {"exec", "/no/such/program"}, {"icmp", "x"}} {
		if _, err := ParseCheck(bad[0], bad[1], 0); err == nil {
			t.Errorf("%s %q was taken", bad[0], bad[1])
		}
	}
	if _, err := ParseCheck("http", "http://x/", 700); err == nil {
		t.Error("status 700 was taken")
	}
}

func TestReadAnswer(t *testing.T) {
	for _, tc := range []struct {
		in   string
		code int
		keep bool
		bad  bool
	}{
		{"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\nNEXT", 200, true, false},
		{"HTTP/1.1 503 Busy\r\ncontent-length: 0\r\n\r\n", 503, true, false},
		{"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 200, false, false},
		{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", 200, false, false},
		{"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 200, false, false},
		{"HTTP/1.1 200 OK\r\n\r\n", 200, false, false}, // no length: read to the close
		{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", 200, false, false},
		{"SSH-2.0-OpenSSH\r\n", 0, false, true},
		{"HTTP/1.1 2x0 OK\r\n\r\n", 0, false, true},
		{"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", 0, false, true}, // cut in the headers
		{"", 0, false, true},
	} {
		br := bufio.NewReader(strings.NewReader(tc.in))
		code, keep, err := readAnswer(br)
		if (err != nil) != tc.bad || code != tc.code || keep != tc.keep {
			t.Errorf("%q: %d %v %v", tc.in, code, keep, err)
		}
		if tc.keep {
			if rest, _ := io.ReadAll(br); strings.Contains(tc.in, "NEXT") && string(rest) != "NEXT" {
				t.Errorf("%q: the body was not skipped: %q left", tc.in, rest)
			}
		}
	}
}

func FuzzReadAnswer(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
	f.Add([]byte("HTTP/1.0 503 x\r\nConnection: close\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		code, keep, err := readAnswer(bufio.NewReader(bytes.NewReader(b)))
		if err == nil && (code < 0 || code > 999) {
			t.Fatalf("code %d", code)
		}
		if err != nil && keep {
			t.Fatal("keep after an error")
		}
	})
}

// A VIP removed by a reload and added again within its drain time stays
// announced: the removal's drain must not withdraw the route the VIP has
// again (issue 21 finding 7).
func TestAnnouncerReAddedWhileDraining(t *testing.T) {
	sp := bgptest.New()
	a := NewAnnouncer(sp, quiet())
	defer a.Close()
	cfg := VIP{VIP: config.VIP{Prefix: vip, Interval: 20 * time.Millisecond, Timeout: 10 * time.Millisecond, Rise: 1, Fall: 1,
		MED: 10, HasMED: true, Drain: 200 * time.Millisecond, DrainMED: 1000}, Probe: &switchCheck{}}
	a.Set([]VIP{cfg})
	eventually(t, "announced", func() bool { r, ok := announced(sp); return ok && r.MED == 10 })
	a.Set(nil)
	eventually(t, "drain on removal", func() bool { r, _ := announced(sp); return r.MED == 1000 })
	a.Set([]VIP{cfg})
	eventually(t, "announced again with its own MED", func() bool { r, ok := announced(sp); return ok && r.MED == 10 })
	time.Sleep(cfg.Drain + 100*time.Millisecond) // past the old drain's end
	r, ok := announced(sp)
	s := a.Status()
	if len(s) != 1 || s[0].State != string(Up) || !s[0].Announced {
		t.Fatalf("status %+v", s)
	}
	if !ok || r.MED != 10 || slices.Contains(r.Communities, bgp.GracefulShutdown) {
		t.Fatalf("the status says announced, but the speaker has %v (announced %v); log %v", r, ok, sp.Log)
	}
	// Removed again: this drain ends in a withdrawal, as before.
	a.Set(nil)
	eventually(t, "withdrawn after the second removal", func() bool { _, ok := announced(sp); return !ok })
}

// Close (SIGTERM) withdraws at once: a stop is not a drain. Neither an up
// VIP with a drain time, nor one a reload is draining, nor a check that
// takes its whole timeout keeps the process past systemd's stop timeout
// (issue 21 finding 7).
func TestAnnouncerCloseWithdrawsAtOnce(t *testing.T) {
	sp := bgptest.New()
	a := NewAnnouncer(sp, quiet())
	other := netip.MustParsePrefix("192.0.2.81/32")
	slow := netip.MustParsePrefix("192.0.2.82/32")
	mk := func(p netip.Prefix) VIP {
		return VIP{VIP: config.VIP{Prefix: p, Interval: 20 * time.Millisecond, Timeout: 10 * time.Millisecond, Rise: 1, Fall: 1,
			Drain: 10 * time.Second, DrainMED: 1000}, Probe: &switchCheck{}}
	}
	sc := &slowCheck{}
	slowVIP := mk(slow)
	slowVIP.Probe, slowVIP.Timeout = sc, 8*time.Second
	a.Set([]VIP{mk(vip), mk(other)})
	id := func(p netip.Prefix) string { return (&bgp.Route{Kind: bgp.Prefix, Prefix: p}).ID() }
	eventually(t, "both announced", func() bool {
		_, ok1 := sp.Get(id(vip))
		_, ok2 := sp.Get(id(other))
		return ok1 && ok2
	})
	// The slow VIP: announced once (checks pass), then its next check hangs.
	a.Set([]VIP{mk(vip), mk(other), slowVIP})
	eventually(t, "slow VIP announced", func() bool { _, ok := sp.Get(id(slow)); return ok })
	sc.setDelay(8 * time.Second)
	time.Sleep(100 * time.Millisecond) // its check is running now
	a.Set([]VIP{mk(vip), slowVIP})     // a reload drains other
	eventually(t, "other draining", func() bool { r, _ := sp.Get(id(other)); return r.MED == 1000 })
	start := time.Now()
	a.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v: a stop must withdraw at once", d)
	}
	for _, p := range []netip.Prefix{vip, other, slow} {
		if r, ok := sp.Get(id(p)); ok {
			t.Errorf("%s still announced after Close: %v", p, r)
		}
	}
}

// slowCheck passes after d.
type slowCheck struct {
	mu sync.Mutex
	d  time.Duration
}

func (c *slowCheck) setDelay(d time.Duration) { c.mu.Lock(); c.d = d; c.mu.Unlock() }
func (c *slowCheck) Run(deadline time.Time) error {
	c.mu.Lock()
	d := c.d
	c.mu.Unlock()
	if d == 0 {
		return nil
	}
	select {
	case <-time.After(d):
		return nil
	case <-time.After(time.Until(deadline)):
		return errors.New("timeout")
	}
}
func (c *slowCheck) String() string { return "slow" }
