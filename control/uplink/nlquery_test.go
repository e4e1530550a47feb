package uplink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/pwgate/pwgate/bench/lab"
)

// TestResolver: the Resolver finds IPv6 and IPv4 next hops (and IPv4's
// by an IPv6 next hop), their source
// addresses and MACs, by the uplink or on a zoned link-local address;
// says which next hop is not resolved yet and when there is no route;
// and finds a resolved one without allocating.
func TestResolver(t *testing.T) {
	l := lab.OnePort(t, "pwc")
	if err := l.Script("x", "ip addr add 2001:db8:a::a/64 dev ul0 nodad", "ip addr add 192.0.2.10/24 dev ul0",
		"ip -6 route add default via 2001:db8:a::1 dev ul0",
		"ip -6 route add 2001:db8:c::/64 via 2001:db8:a::2 dev ul0",
		"ip route add 198.51.100.0/24 via 192.0.2.1 dev ul0",
		"ip route add 100.64.0.0/24 via inet6 fe80::1 dev ul0",
		"ip -6 neigh replace 2001:db8:a::1 lladdr 02:00:00:00:0f:0a dev ul0 nud permanent",
		"ip -6 neigh replace fe80::1 lladdr 02:00:00:00:0f:0b dev ul0 nud permanent",
		"ip neigh replace 192.0.2.1 lladdr 02:00:00:00:0f:0c dev ul0 nud permanent"); err != nil {
		t.Fatal(err)
	}
	err := l.Do("x", func() error {
		ul, err := netlink.LinkByName("ul0")
		if err != nil {
			return err
		}
		own := ul.Attrs().HardwareAddr.String()
		r, err := NewResolver()
		if err != nil {
			return err
		}
		defer r.Close()
		for _, c := range []struct{ dst, via, src, mac, why string }{
			{"2001:db8:b::b", "2001:db8:a::1", "2001:db8:a::a", "02:00:00:00:0f:0a", ""},
			{"198.51.100.7", "192.0.2.1", "192.0.2.10", "02:00:00:00:0f:0c", ""},
			{"100.64.0.9", "fe80::1", "192.0.2.10", "02:00:00:00:0f:0b", ""}, // RFC 8950: RTA_VIA
			{"fe80::1%ul0", "fe80::1", "invalid IP", "02:00:00:00:0f:0b", ""},
			{"2001:db8:c::c", "2001:db8:a::2", "2001:db8:a::a", "00:00:00:00:00:00", "next hop 2001:db8:a::2 not resolved on ul0 yet"},
			{"fe80::1%nosuch0", "invalid IP", "invalid IP", "00:00:00:00:00:00", "next hop fe80::1%nosuch0: interface nosuch0: no such device"},
		} {
			h, why := r.NextHop(netip.MustParseAddr(c.dst), ul.Attrs().Index)
			if !strings.HasPrefix(why, c.why) || c.why == "" && why != "" || h.Via.String() != c.via || h.Src.String() != c.src || h.MAC.String() != c.mac {
				return fmt.Errorf("%s: %+v (%q), want via %s from %s to %s (%q)", c.dst, h, why, c.via, c.src, c.mac, c.why)
			}
			if why == "" && (h.Ifname != "ul0" || h.Ifindex != ul.Attrs().Index || h.SrcMAC.String() != own) {
				return fmt.Errorf("%s: %+v, want ul0 (%d) from %s", c.dst, h, ul.Attrs().Index, own)
			}
		}
		// (With an interface given, the kernel finds IPv4 on its link.)
		if _, why := r.NextHop(netip.MustParseAddr("203.0.113.1"), 0); why != "no route to 203.0.113.1 (no router advertisement yet?)" {
			return fmt.Errorf("no IPv4 default route: %q", why)
		}
		if _, why := r.NextHop(netip.MustParseAddr("fe80::1%lo"), ul.Attrs().Index); why != "the route to fe80::1%lo does not leave by the uplink ul0" {
			return fmt.Errorf("on another link: %q", why)
		}
		peer := netip.MustParseAddr("2001:db8:b::b")
		if n := testing.AllocsPerRun(100, func() { r.NextHop(peer, ul.Attrs().Index) }); n != 0 {
			return fmt.Errorf("%v allocations per lookup, want 0", n)
		}
		// Links by name: index, up and running, gone.
		if lk, err := r.LinkByName("ul0"); err != nil || lk != (Link{Index: ul.Attrs().Index, Up: true}) {
			return fmt.Errorf("ul0: %+v %v", lk, err)
		}
		if n := testing.AllocsPerRun(100, func() { r.LinkByName("ul0") }); n != 0 {
			return fmt.Errorf("%v allocations per link, want 0", n)
		}
		if _, err := r.LinkByName("nosuch0"); !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("nosuch0: %v, want ENODEV", err)
		}
		if _, err := l.Exec("x", "ip", "link", "set", "ulp", "down"); err != nil {
			return err
		}
		if lk, err := r.LinkByName("ul0"); err != nil || lk.Up {
			return fmt.Errorf("ul0 with its peer down: %+v %v, want not running", lk, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestAnswer: the answer to this question is found among stale ones, an
// error is the kernel's errno, and an acknowledgement is no answer.
func TestAnswer(t *testing.T) {
	msg := func(typ uint16, seq uint32, body ...byte) []byte {
		b := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(body)+4)
		binary.NativeEndian.PutUint16(b[4:6], typ)
		binary.NativeEndian.PutUint32(b[8:12], seq)
		b = append(b, body...)
		binary.NativeEndian.PutUint32(b[0:4], uint32(len(b)))
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	errno := func(e int32) []byte { return binary.NativeEndian.AppendUint32(nil, uint32(-e)) }
	d := append(msg(unix.RTM_NEWROUTE, 6, 1, 2, 3), msg(unix.RTM_NEWROUTE, 7, 4, 5)...)
	if body, err, ok := answer(d, 7, unix.RTM_NEWROUTE); !ok || err != nil || len(body) != 2 || body[0] != 4 {
		t.Errorf("answer 7: %v %v %v", body, err, ok)
	}
	if _, _, ok := answer(d, 8, unix.RTM_NEWROUTE); ok {
		t.Error("an answer to a question not asked")
	}
	if _, err, ok := answer(msg(unix.NLMSG_ERROR, 3, errno(int32(unix.ENOENT))...), 3, unix.RTM_NEWNEIGH); !ok || err != unix.ENOENT {
		t.Errorf("ENOENT: %v %v", err, ok)
	}
	if _, err, ok := answer(msg(unix.NLMSG_ERROR, 3, errno(0)...), 3, unix.RTM_NEWNEIGH); !ok || err != errNoAnswer {
		t.Errorf("an acknowledgement: %v %v", err, ok)
	}
	if _, _, ok := answer([]byte{200, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, 0, 0); ok {
		t.Error("a message longer than its datagram")
	}
}

// FuzzAnswer: nothing in an answer makes its parsers panic or read past it.
func FuzzAnswer(f *testing.F) {
	f.Add([]byte{20, 0, 0, 0, 24, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 10, 128, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, want := range []uint16{unix.RTM_NEWROUTE, unix.RTM_NEWLINK, unix.RTM_NEWNEIGH} {
			body, _, _ := answer(b, 1, want)
			parseRoute(body)
			parseLink(body)
			parseNeigh(body)
		}
		parseRoute(b)
		parseLink(b)
		parseNeigh(b)
	})
}
