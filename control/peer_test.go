package control

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pwgate/pwgate/control/client"
	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/dataplane"
	"github.com/pwgate/pwgate/dataplane/stats"
)

type fakePeer struct {
	path    dataplane.Path
	snap    stats.Snapshot
	lanDown bool
}

func (f *fakePeer) SetLANDown(down bool) { f.lanDown = down }

func (f *fakePeer) Path() dataplane.Path       { return f.path }
func (f *fakePeer) Snapshot(s *stats.Snapshot) { *s = f.snap }

type fakeLink struct {
	up    bool
	calls int
	fail  error
}

func (l *fakeLink) setUp(up bool) error {
	l.calls++
	if l.fail != nil {
		return l.fail
	}
	l.up = up
	return nil
}

func followConfig(hold time.Duration) *config.Config {
	return &config.Config{Keepalive: &config.Keepalive{Interval: 100 * time.Millisecond, Timeout: 300 * time.Millisecond},
		FollowPeer: &config.FollowPeer{Hold: hold}}
}

// TestFollowPeer walks link-loss forwarding through its states: waiting
// at start, down when the peer falls silent or stops hearing us, up only
// after the hold without a break, up again on Close; and refusals of the
// kernel are reported once, then retried.
func TestFollowPeer(t *testing.T) {
	src, link := &fakePeer{path: dataplane.Path{Heard: -1, KeepaliveHeard: -1}}, &fakeLink{up: true}
	p := newPeerRole(followConfig(time.Second), src, link, slog.New(slog.NewTextHandler(io.Discard, nil)))
	status := func() *client.PeerPath {
		var s client.Status
		p.Status(&s)
		return s.Path
	}
	p.check()
	if link.up || !src.lanDown || status().State != "waiting" || !status().FollowPeer.LANDown {
		t.Fatalf("at start: link up %v, state %s: the LAN port must wait for the peer", link.up, status().State)
	}
	p.started = time.Now().Add(-time.Second) // the timeout has passed, nothing heard
	p.check()
	if link.up || link.calls != 1 || status().State != "silent" || status().Loss != 1 || !status().FollowPeer.LANDown {
		t.Fatalf("silent peer: link up %v after %d calls, %+v", link.up, link.calls, status())
	}
	heard := dataplane.Path{Heard: time.Millisecond, KeepaliveHeard: time.Millisecond, RTT: 2 * time.Millisecond}
	src.path = heard
	p.check()
	if link.up || status().State != "up" {
		t.Fatalf("heard again: up before the hold (%+v)", status())
	}
	// A peer that says it does not hear us, for less than the timeout, is
	// no fault (it may have just started), but the hold does not run
	// either: the port comes up only once the peer hears us.
	src.path.Deaf = 200 * time.Millisecond
	p.check()
	if status().State != "up" || !p.goodFrom.IsZero() || link.up {
		t.Fatalf("peer deaf for less than the timeout: %+v, good from %v", status(), p.goodFrom)
	}
	src.path.Deaf = time.Second // one-way
	p.check()
	if status().State != "one-way" || !p.goodFrom.IsZero() {
		t.Fatalf("one-way: %+v, good from %v", status(), p.goodFrom)
	}
	src.path = heard
	p.check()
	p.goodFrom = p.goodFrom.Add(-time.Second) // the hold has passed
	p.check()
	if !link.up || src.lanDown || status().FollowPeer.LANDown || status().FollowPeer.Downs != 1 {
		t.Fatalf("after the hold: link up %v, %+v", link.up, status().FollowPeer)
	}
	src.path.Deaf = time.Second // a one-way fault takes it down
	p.check()
	if link.up {
		t.Fatal("one-way fault: LAN port still up")
	}
	var s stats.Snapshot
	p.AddCounters(&s)
	if s[stats.DLFollowPeerDowns] != 2 {
		t.Errorf("dl_follow_peer_downs = %d, want 2 (at start, and the one-way fault)", s[stats.DLFollowPeerDowns])
	}
	link.fail = errors.New("operation not permitted")
	p.Close(false)
	if link.up || status().FollowPeer.Error != "operation not permitted" {
		t.Fatalf("failed close: %+v", status().FollowPeer)
	}
	link.fail = nil
	p.Close(false)
	if !link.up || status().FollowPeer.Error != "" {
		t.Fatalf("close: link up %v, %+v", link.up, status().FollowPeer)
	}
}

// TestFollowPeerReload: turning follow_peer off brings the port up,
// an undone reload puts the old settings back, and without keepalives the
// status has no path and the role no tick.
func TestFollowPeerReload(t *testing.T) {
	src, link := &fakePeer{path: dataplane.Path{Heard: time.Hour, KeepaliveHeard: -1}}, &fakeLink{up: true}
	on := followConfig(0)
	p := newPeerRole(on, src, link, slog.New(slog.NewTextHandler(io.Discard, nil)))
	p.check()
	if link.up {
		t.Fatal("silent peer: LAN port up")
	}
	off := &config.Config{}
	steps, err := p.Reload(on, off)
	if err != nil || len(steps) != 1 {
		t.Fatal(steps, err)
	}
	steps[0].Do()
	if !p.active() {
		t.Fatal("inactive while the port is down")
	}
	p.check()
	if !link.up || p.active() {
		t.Fatalf("follow_peer off: link up %v, active %v", link.up, p.active())
	}
	var s client.Status
	if p.Status(&s); s.Path != nil {
		t.Errorf("status without keepalives: %+v", s.Path)
	}
	steps[0].Undo()
	if p.follow == nil || p.ka == nil {
		t.Error("undo did not put follow_peer back")
	}
}

func TestPeerWarnings(t *testing.T) {
	p := newPeerRole(&config.Config{Keepalive: &config.Keepalive{Interval: 100 * time.Millisecond, Timeout: 300 * time.Millisecond}},
		&fakePeer{}, &fakeLink{up: true}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	p.started = time.Now().Add(-time.Second)
	for _, tt := range []struct {
		path dataplane.Path
		want string
	}{
		{dataplane.Path{Heard: time.Millisecond, KeepaliveHeard: time.Millisecond, PeerInterval: 100 * time.Millisecond}, ""},
		{dataplane.Path{Heard: -1, KeepaliveHeard: -1}, ""},
		{dataplane.Path{Heard: time.Millisecond, KeepaliveHeard: -1}, "the peer sends no keepalives"},
		{dataplane.Path{Heard: time.Millisecond, KeepaliveHeard: time.Millisecond, PeerInterval: time.Second}, "the peer sends keepalives every 1s, more than half our timeout 300ms"},
	} {
		if got := p.warning(tt.path); !strings.HasPrefix(got, tt.want) || (tt.want == "") != (got == "") {
			t.Errorf("%+v: %q, want %q", tt.path, got, tt.want)
		}
	}
}

func TestLossRatio(t *testing.T) {
	src := &fakePeer{path: dataplane.Path{Heard: time.Millisecond, KeepaliveHeard: time.Millisecond, HearsUs: true}}
	p := newPeerRole(followConfig(0), src, &fakeLink{up: true}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for i := range 15 {
		src.snap[stats.PeerKeepalivesRx] = uint64(i) * 9
		src.snap[stats.PeerKeepalivesLost] = uint64(i)
		p.started = time.Now().Add(-time.Duration(i) * time.Second)
		p.sampleLoss(time.Now())
	}
	if r := p.lossRatio(); r != 0.1 {
		t.Errorf("loss %v, want 0.1", r)
	}
	// Every gap a reordering: nothing lost.
	for i := range 15 {
		src.snap[stats.PeerKeepalivesRx] = uint64(i) * 10
		src.snap[stats.PeerKeepalivesLost] = uint64(i)
		src.snap[stats.PeerKeepalivesLate] = uint64(i)
		p.started = time.Now().Add(-time.Duration(i+15) * time.Second)
		p.sampleLoss(time.Now())
	}
	if r := p.lossRatio(); r != 0 {
		t.Errorf("loss %v with every gap filled late, want 0", r)
	}
}

func TestAfterStop(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tt := range []struct {
		c      *config.Config
		result string
		down   bool
	}{
		{followConfig(0), "signal", true},
		{followConfig(0), "watchdog", true},
		{followConfig(0), "", true}, // by hand
		{followConfig(0), "success", false},
		{&config.Config{Keepalive: &config.Keepalive{Interval: time.Second, Timeout: 3 * time.Second}}, "signal", false},
	} {
		link := &fakeLink{up: true}
		if err := afterStop(tt.c, tt.result, link, log); err != nil || link.up == tt.down {
			t.Errorf("follow_peer %v, result %q: err %v, link up %v", tt.c.FollowPeer != nil, tt.result, err, link.up)
		}
	}
	c := followConfig(0)
	c.Downlink = "dl9"
	err := afterStop(c, "signal", &fakeLink{fail: errors.New("no such device")}, log)
	if err == nil || err.Error() != "follow_peer: taking dl9 down after pwgated stopped (signal): no such device" {
		t.Errorf("failure: %v", err)
	}
}
