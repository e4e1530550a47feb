package uplink

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pwgate/pwgate/bench/lab"
	"github.com/pwgate/pwgate/control/config"
)

// TestTrackerSkipsDeprecated: of two SLAAC-like addresses with our token,
// the one being renumbered away (deprecated) is not used, even when the
// kernel lists it first.
func TestTrackerSkipsDeprecated(t *testing.T) {
	l := lab.OnePort(t, "pwc")
	if err := l.Script("x",
		"ip addr add 2001:db8:2::a/64 dev ul0 nodad",
		"ip addr add 2001:db8:1::a/64 dev ul0 nodad preferred_lft 0"); err != nil {
		t.Fatal(err)
	}
	err := l.Do("x", func() error {
		tr, err := Open("ul0", &config.Config{PeerAddr: netip.MustParseAddr("2001:db8:b::b"), LocalToken: netip.MustParseAddr("::a")})
		if err != nil {
			return err
		}
		defer tr.Close()
		if got, why := tr.local(); got.String() != "2001:db8:2::a" {
			return fmt.Errorf("local address %v (%s), want 2001:db8:2::a", got, why)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestNextHopOnTheUplink: with a better default route by another port (a
// management port that hears router advertisements), the uplink's own
// route is taken; with none on the uplink, none is.
func TestNextHopOnTheUplink(t *testing.T) {
	l := lab.OnePort(t, "pwc")
	if err := l.Script("x", "ip link add mg0 type veth peer name mgp", "ip link set mg0 up", "ip link set mgp up",
		"ip addr add 2001:db8:a::a/64 dev ul0 nodad", "ip addr add 2001:db8:f::a/64 dev mg0 nodad",
		"ip -6 route add default via 2001:db8:f::1 dev mg0 metric 100",
		"ip -6 neigh replace 2001:db8:f::1 lladdr 02:00:00:00:0f:0f dev mg0 nud permanent",
		"ip -6 neigh replace 2001:db8:a::1 lladdr 02:00:00:00:0f:0a dev ul0 nud permanent"); err != nil {
		t.Fatal(err)
	}
	peer := netip.MustParseAddr("2001:db8:b::b")
	err := l.Do("x", func() error {
		ul, err := netlink.LinkByName("ul0")
		if err != nil {
			return err
		}
		r, err := NewResolver()
		if err != nil {
			return err
		}
		defer r.Close()
		oif := ul.Attrs().Index
		if h, why := r.NextHop(peer, oif); why == "" {
			return fmt.Errorf("a next hop with no route by the uplink: %+v", h)
		}
		if _, err := l.Exec("x", "ip", "-6", "route", "add", "default", "via", "2001:db8:a::1", "dev", "ul0", "metric", "1024"); err != nil {
			return err
		}
		h, why := r.NextHop(peer, oif)
		if why != "" || h.Ifname != "ul0" || h.Via.String() != "2001:db8:a::1" || h.MAC.String() != "02:00:00:00:0f:0a" {
			return fmt.Errorf("next hop %+v (%s), want 2001:db8:a::1 on ul0", h, why)
		}
		if h, why := r.NextHop(peer, 0); why != "" || h.Ifname != "mg0" {
			return fmt.Errorf("without an interface: %+v (%s), want the kernel's choice, mg0", h, why)
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
	l := lab.OnePort(t, "pwc")
	if err := l.Script("x", "ip addr add 2001:db8:a::a/64 dev ul0 nodad", "ip -6 route add default via 2001:db8:a::1 dev ul0"); err != nil {
		t.Fatal(err)
	}
	err := l.Do("x", func() error {
		tr, err := Open("ul0", &config.Config{PeerAddr: netip.MustParseAddr("2001:db8:b::b"), LocalAddr: netip.MustParsePrefix("2001:db8:a::a/64")})
		if err != nil {
			return err
		}
		defer tr.Close()
		if v := tr.View(); v.NotReady == "" {
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
		v := tr.View()
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

// nlMsg builds a netlink message: header, fixed part, attributes.
func nlMsg(typ uint16, fixed []byte, attrs ...[]byte) []byte {
	body := append([]byte(nil), fixed...)
	for _, a := range attrs {
		body = append(body, a...)
		for len(body)%4 != 0 {
			body = append(body, 0)
		}
	}
	h := make([]byte, unix.NLMSG_HDRLEN)
	binary.NativeEndian.PutUint32(h[0:4], uint32(len(h)+len(body)))
	binary.NativeEndian.PutUint16(h[4:6], typ)
	return append(h, body...)
}

func nlAttr(typ uint16, v []byte) []byte {
	a := make([]byte, 4, 4+len(v))
	binary.NativeEndian.PutUint16(a[0:2], uint16(4+len(v)))
	binary.NativeEndian.PutUint16(a[2:4], typ)
	return append(a, v...)
}

func le32(v uint32) []byte { b := make([]byte, 4); binary.NativeEndian.PutUint32(b, v); return b }

func TestNLWatchWakesOnlyOnChange(t *testing.T) {
	const us = 7
	w := &nlWatch{ifindex: us}
	gw := netip.MustParseAddr("fe80::1").AsSlice()
	route := func(typ uint16, oif, metric uint32) []byte {
		return nlMsg(typ, []byte{unix.AF_INET6, 0, 0, 0, unix.RT_TABLE_MAIN, 0, 0, 0, 0, 0, 0, 0},
			nlAttr(unix.RTA_GATEWAY, gw), nlAttr(unix.RTA_OIF, le32(oif)), nlAttr(unix.RTA_PRIORITY, le32(metric)))
	}
	neigh := func(typ uint16, ifindex uint32, state uint16, mac string) []byte {
		fixed := make([]byte, unix.SizeofNdMsg)
		fixed[0] = unix.AF_INET6
		binary.NativeEndian.PutUint32(fixed[4:8], ifindex)
		binary.NativeEndian.PutUint16(fixed[8:10], state)
		m, _ := net.ParseMAC(mac)
		return nlMsg(typ, fixed, nlAttr(unix.NDA_DST, gw), nlAttr(unix.NDA_LLADDR, m))
	}
	addr := func(typ uint16, flags, preferred uint32) []byte {
		fixed := []byte{unix.AF_INET6, 64, 0, 0, us, 0, 0, 0}
		ci := append(le32(preferred), le32(3600)...)
		ci = append(ci, make([]byte, 8)...)
		return nlMsg(typ, fixed, nlAttr(unix.IFA_ADDRESS, netip.MustParseAddr("2001:db8::a").AsSlice()),
			nlAttr(unix.IFA_CACHEINFO, ci), nlAttr(unix.IFA_FLAGS, le32(flags)))
	}
	for i, step := range []struct {
		what  string
		d     []byte
		wakes bool
	}{
		{"default route via the router", route(unix.RTM_NEWROUTE, us, 1024), true},
		{"the same route renewed by an RA", route(unix.RTM_NEWROUTE, us, 1024), false},
		{"a route on another interface", route(unix.RTM_NEWROUTE, us+1, 1024), false},
		{"another metric: another route", route(unix.RTM_NEWROUTE, us, 100), true},
		{"the route deleted", route(unix.RTM_DELROUTE, us, 1024), true},
		{"router resolved", neigh(unix.RTM_NEWNEIGH, us, unix.NUD_REACHABLE, "02:00:00:00:00:01"), true},
		{"REACHABLE to STALE", neigh(unix.RTM_NEWNEIGH, us, unix.NUD_STALE, "02:00:00:00:00:01"), false},
		{"another interface's neighbour", neigh(unix.RTM_NEWNEIGH, us+1, unix.NUD_FAILED, "02:00:00:00:00:09"), false},
		{"the router's MAC changed", neigh(unix.RTM_NEWNEIGH, us, unix.NUD_STALE, "02:00:00:00:00:02"), true},
		{"the router unreachable", neigh(unix.RTM_NEWNEIGH, us, unix.NUD_FAILED, "02:00:00:00:00:02"), true},
		{"SLAAC address, tentative", addr(unix.RTM_NEWADDR, unix.IFA_F_TENTATIVE, 1800), true},
		{"usable", addr(unix.RTM_NEWADDR, 0, 1800), true},
		{"lifetimes renewed by an RA", addr(unix.RTM_NEWADDR, 0, 1799), false},
		{"deprecated", addr(unix.RTM_NEWADDR, 0, 0), true},
		{"gone", addr(unix.RTM_DELADDR, 0, 0), true},
		{"two messages in one datagram, one a change", append(route(unix.RTM_NEWROUTE, us, 100), route(unix.RTM_NEWROUTE, us, 5)...), true},
		{"a truncated message", route(unix.RTM_NEWROUTE, us, 7)[:20], false},
	} {
		if got := w.datagram(step.d); got != step.wakes {
			t.Errorf("step %d, %s: woke %v, want %v", i, step.what, got, step.wakes)
		}
	}
	renewal := route(unix.RTM_NEWROUTE, us, 100)
	if n := testing.AllocsPerRun(100, func() { w.datagram(renewal) }); n != 0 {
		t.Errorf("a notification costs %.0f allocations, want 0", n)
	}
}
