package control

import (
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/pwgate/pwgate/bench/lab"
)

// newNS makes a namespace with ul0 (and its veth peer ulp), up, for tests
// of what pwgated reads from the kernel.
func newNS(t *testing.T) *lab.Lab {
	t.Helper()
	if testing.Short() || !lab.IsRoot() {
		t.Skip("privileged test: needs root for network namespaces, and not -short")
	}
	l := lab.New(fmt.Sprintf("pwc%d-", os.Getpid()))
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := l.AddNS("x"); err != nil {
		t.Fatal(err)
	}
	if err := l.Veth("x", "ul0", "x", "ulp", 0); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestTrackerSkipsDeprecated: of two SLAAC-like addresses with our token,
// the one being renumbered away (deprecated) is not used, even when the
// kernel lists it first.
func TestTrackerSkipsDeprecated(t *testing.T) {
	l := newNS(t)
	if err := l.Script("x",
		"ip addr add 2001:db8:2::a/64 dev ul0 nodad",
		"ip addr add 2001:db8:1::a/64 dev ul0 nodad preferred_lft 0"); err != nil {
		t.Fatal(err)
	}
	err := l.Do("x", func() error {
		tr, err := newTracker("ul0", &Config{PeerAddr: netip.MustParseAddr("2001:db8:b::b"), LocalToken: netip.MustParseAddr("::a")})
		if err != nil {
			return err
		}
		defer tr.close()
		if got, why := tr.local(); got.String() != "2001:db8:2::a" {
			return fmt.Errorf("local address %v (%s), want 2001:db8:2::a", got, why)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestTrackerFollowsKernel: a change in the uplink's neighbour table
// reaches the main goroutine as a notification, without polling.
func TestTrackerFollowsKernel(t *testing.T) {
	l := newNS(t)
	if err := l.Script("x", "ip addr add 2001:db8:a::a/64 dev ul0 nodad", "ip -6 route add default via 2001:db8:a::1 dev ul0"); err != nil {
		t.Fatal(err)
	}
	err := l.Do("x", func() error {
		tr, err := newTracker("ul0", &Config{PeerAddr: netip.MustParseAddr("2001:db8:b::b"), LocalAddr: netip.MustParsePrefix("2001:db8:a::a/64")})
		if err != nil {
			return err
		}
		defer tr.close()
		if v := tr.view(); v.NotReady == "" {
			return fmt.Errorf("ready without a neighbour entry: %+v", v)
		}
		for len(tr.Changed()) > 0 {
			<-tr.Changed()
		}
		start := time.Now()
		if _, err := l.Exec("x", "ip", "-6", "neigh", "replace", "2001:db8:a::1", "lladdr", "02:00:00:00:0f:0a", "dev", "ul0", "nud", "reachable"); err != nil {
			return err
		}
		select {
		case <-tr.Changed():
		case <-time.After(2 * time.Second):
			return fmt.Errorf("no notification after the neighbour entry changed")
		}
		v := tr.view()
		if v.NotReady != "" || v.NextHop.String() != "02:00:00:00:0f:0a" {
			return fmt.Errorf("after the notification: %+v", v)
		}
		t.Logf("neighbour change seen after %v", time.Since(start))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSeenWakesOnlyOnChange(t *testing.T) {
	var s seen[string, bool]
	steps := []struct {
		k     string
		v     bool
		gone  bool
		wakes bool
	}{
		{"2001:db8::1/64", false, false, true}, // new, tentative
		{"2001:db8::1/64", false, false, false},
		{"2001:db8::1/64", true, false, true},  // usable now
		{"2001:db8::1/64", true, false, false}, // a lifetime renewed
		{"2001:db8::1/64", true, true, true},   // gone
		{"2001:db8::2/64", true, true, true},   // gone, never seen: still wakes
		{"2001:db8::1/64", true, false, true},  // back
	}
	for i, st := range steps {
		if got := s.changed(st.k, st.v, st.gone); got != st.wakes {
			t.Errorf("step %d %+v: woke %v", i, st, got)
		}
	}
	for i := range seenMax + 10 {
		s.changed(fmt.Sprint(i), true, false)
	}
	if len(s.m) > seenMax {
		t.Errorf("seen keeps %d entries, more than %d", len(s.m), seenMax)
	}
}
