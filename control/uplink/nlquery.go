package uplink

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/pwgate/pwgate/dataplane/frame"
)

// nlQuery asks the kernel one question at a time (a route, a link, a
// neighbour) on one netlink socket, into one buffer: an answer is parsed
// in place and allocates nothing. (The netlink package allocates 64 KiB
// per read and an object per attribute, and lists the whole neighbour
// table to find one entry; the WireGuard XDP bind asks once a second for
// each peer, all day.)
type nlQuery struct {
	fd     int
	seq    uint32
	req    [64]byte
	buf    []byte
	ifname string // the last interface name answered, reused while it is unchanged
}

// nlTimeout bounds how long a question waits for the kernel's answer.
const nlTimeout = 2 // seconds

func openQuery() (*nlQuery, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	tv := unix.Timeval{Sec: nlTimeout}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Connect(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	// A link's answer carries its statistics and per-family settings:
	// a few KiB; 32 KiB leaves room.
	return &nlQuery{fd: fd, buf: make([]byte, 32<<10)}, nil
}

func (q *nlQuery) close() {
	if q.fd >= 0 {
		unix.Close(q.fd)
		q.fd = -1
	}
}

// nextHop is Resolver.NextHop's work (see there).
func (q *nlQuery) nextHop(dst netip.Addr, oif int, p *prober) (Hop, string) {
	var h Hop
	if dst.Zone() != "" && dst.IsLinkLocalUnicast() {
		i, _, err := q.linkByName(dst.Zone())
		if err != nil {
			return Hop{}, fmt.Sprintf("next hop %s: %v", dst, err)
		}
		h.Via, h.Ifindex = dst.WithZone(""), i
	} else {
		dst = dst.Unmap()
		gw, src, out, err := q.route(dst, oif)
		if err != nil {
			return Hop{}, fmt.Sprintf("no route to %s (no router advertisement yet?)", dst)
		}
		h.Via, h.Src, h.Ifindex = dst, src, out
		if gw.IsValid() {
			h.Via = gw
		}
	}
	if oif != 0 && h.Ifindex != oif {
		name, _, _ := q.link(oif)
		return Hop{}, fmt.Sprintf("the route to %s does not leave by the uplink %s", dst, name)
	}
	name, mac, err := q.link(h.Ifindex)
	if err != nil {
		return Hop{}, fmt.Sprintf("the route to %s leaves by interface %d: %v", dst, h.Ifindex, err)
	}
	h.Ifname, h.SrcMAC = name, mac
	m, ok, err := q.neigh(h.Via, h.Ifindex)
	switch {
	case ok:
		h.MAC = m
		return h, ""
	case err != nil:
		return h, fmt.Sprintf("next hop %s on %s: the neighbour table: %v", h.Via, h.Ifname, err)
	}
	p.prod(h.Via, h.Ifname)
	return h, fmt.Sprintf("next hop %s not resolved on %s yet", h.Via, h.Ifname)
}

// route asks for the route to dst (leaving by oif, if not 0): its gateway
// (invalid when dst is on the link), preferred source and interface.
func (q *nlQuery) route(dst netip.Addr, oif int) (gw, src netip.Addr, out int, err error) {
	family, bits := byte(unix.AF_INET6), byte(128)
	if dst.Is4() {
		family, bits = unix.AF_INET, 32
	}
	b := q.begin(unix.RTM_GETROUTE, unix.SizeofRtMsg)
	b[0], b[1] = family, bits
	binary.NativeEndian.PutUint32(b[8:12], unix.RTM_F_LOOKUP_TABLE)
	q.attr(unix.RTA_DST, dst.AsSlice())
	if oif != 0 {
		q.attrU32(unix.RTA_OIF, uint32(oif))
	}
	body, err := q.ask(unix.RTM_NEWROUTE)
	if err != nil {
		return gw, src, 0, err
	}
	gw, src, out = parseRoute(body)
	return gw, src, out, nil
}

// parseRoute reads a route's gateway, preferred source and interface.
func parseRoute(body []byte) (gw, src netip.Addr, oif int) {
	if len(body) < unix.SizeofRtMsg {
		return
	}
	for t, v := range attrs(body[unix.SizeofRtMsg:]) {
		switch t {
		case unix.RTA_GATEWAY:
			gw = addrFrom(v)
		case unix.RTA_VIA: // IPv4 by an IPv6 next hop (RFC 8950): family, address
			if len(v) > 2 {
				gw = addrFrom(v[2:])
			}
		case unix.RTA_PREFSRC:
			src = addrFrom(v)
		case unix.RTA_OIF:
			oif = int(u32(v))
		}
	}
	return
}

// link asks for an interface's name and MAC (zero if it has none of six
// bytes).
func (q *nlQuery) link(index int) (string, frame.MAC, error) {
	b := q.begin(unix.RTM_GETLINK, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(b[4:8], uint32(index))
	body, err := q.ask(unix.RTM_NEWLINK)
	if err != nil {
		return "", frame.MAC{}, err
	}
	_, _, name, mac := parseLink(body)
	if string(name) != q.ifname { // compared without a copy
		q.ifname = string(name)
	}
	return q.ifname, mac, nil
}

// linkByName asks for the interface called name: its index and flags.
func (q *nlQuery) linkByName(name string) (int, uint32, error) {
	if len(name) >= unix.IFNAMSIZ {
		return 0, 0, fmt.Errorf("interface %s: %w", name, unix.ENODEV)
	}
	q.begin(unix.RTM_GETLINK, unix.SizeofIfInfomsg)
	q.attrString(unix.IFLA_IFNAME, name)
	body, err := q.ask(unix.RTM_NEWLINK)
	if err != nil {
		return 0, 0, fmt.Errorf("interface %s: %w", name, err)
	}
	i, flags, _, _ := parseLink(body)
	return i, flags, nil
}

// parseLink reads a link's index, flags, name (without its NUL) and MAC.
func parseLink(body []byte) (index int, flags uint32, name []byte, mac frame.MAC) {
	if len(body) < unix.SizeofIfInfomsg {
		return
	}
	index = int(int32(binary.NativeEndian.Uint32(body[4:8])))
	flags = binary.NativeEndian.Uint32(body[8:12])
	for t, v := range attrs(body[unix.SizeofIfInfomsg:]) {
		switch t {
		case unix.IFLA_IFNAME:
			name = v
			for i, c := range v {
				if c == 0 {
					name = v[:i]
					break
				}
			}
		case unix.IFLA_ADDRESS:
			if len(v) == 6 {
				mac = frame.MAC(v)
			}
		}
	}
	return
}

// neigh asks the neighbour table for addr on the interface: its MAC, if
// the kernel has one it would send to; no entry is no error.
func (q *nlQuery) neigh(addr netip.Addr, index int) (frame.MAC, bool, error) {
	family := byte(unix.AF_INET6)
	if addr.Is4() {
		family = unix.AF_INET
	}
	b := q.begin(unix.RTM_GETNEIGH, unix.SizeofNdMsg)
	b[0] = family
	binary.NativeEndian.PutUint32(b[4:8], uint32(index))
	q.attr(unix.NDA_DST, addr.AsSlice())
	body, err := q.ask(unix.RTM_NEWNEIGH)
	if errors.Is(err, unix.ENOENT) {
		return frame.MAC{}, false, nil
	}
	if err != nil {
		return frame.MAC{}, false, err
	}
	m, ok := parseNeigh(body)
	return m, ok, nil
}

// parseNeigh reads a neighbour's MAC, if its state is one to send to.
func parseNeigh(body []byte) (frame.MAC, bool) {
	if len(body) < unix.SizeofNdMsg || int(binary.NativeEndian.Uint16(body[8:10]))&usableNUD == 0 {
		return frame.MAC{}, false
	}
	for t, v := range attrs(body[unix.SizeofNdMsg:]) {
		if t == unix.NDA_LLADDR && len(v) == 6 {
			return frame.MAC(v), true
		}
	}
	return frame.MAC{}, false
}

func addrFrom(v []byte) netip.Addr {
	a, _ := netip.AddrFromSlice(v)
	return a.Unmap()
}

// begin starts a request of type typ with a zeroed header of n bytes,
// which it returns.
func (q *nlQuery) begin(typ uint16, n int) []byte {
	q.seq++
	h := q.req[:unix.NLMSG_HDRLEN+n]
	clear(h)
	binary.NativeEndian.PutUint32(h[0:4], uint32(len(h)))
	binary.NativeEndian.PutUint16(h[4:6], typ)
	binary.NativeEndian.PutUint16(h[6:8], unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(h[8:12], q.seq)
	return h[unix.NLMSG_HDRLEN:]
}

// attr appends an attribute to the request begun.
func (q *nlQuery) attr(typ uint16, v []byte) { copy(q.attrSpace(typ, len(v)), v) }

// attrString appends a NUL-terminated string attribute.
func (q *nlQuery) attrString(typ uint16, v string) { copy(q.attrSpace(typ, len(v)+1), v) }

// attrSpace appends an attribute of n zero bytes and returns them.
func (q *nlQuery) attrSpace(typ uint16, n int) []byte {
	at := int(binary.NativeEndian.Uint32(q.req[0:4]))
	l := unix.SizeofRtAttr + n
	end := at + (l+unix.RTA_ALIGNTO-1)&^(unix.RTA_ALIGNTO-1)
	a := q.req[at:end]
	clear(a)
	binary.NativeEndian.PutUint16(a[0:2], uint16(l))
	binary.NativeEndian.PutUint16(a[2:4], typ)
	binary.NativeEndian.PutUint32(q.req[0:4], uint32(end))
	return a[unix.SizeofRtAttr:l]
}

func (q *nlQuery) attrU32(typ uint16, v uint32) {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	q.attr(typ, b[:])
}

var (
	errNoAnswer  = errors.New("netlink: no answer")
	errTruncated = errors.New("netlink: the answer is longer than the buffer")
)

// ask sends the request begun and returns the body of the answer of type
// want, skipping answers to earlier questions that timed out.
func (q *nlQuery) ask(want uint16) ([]byte, error) {
	if q.fd < 0 {
		return nil, errors.New("netlink: closed")
	}
	if _, err := unix.Write(q.fd, q.req[:binary.NativeEndian.Uint32(q.req[0:4])]); err != nil {
		return nil, err
	}
	for {
		n, err := unix.Read(q.fd, q.buf)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			if errors.Is(err, unix.EAGAIN) {
				return nil, errNoAnswer
			}
			return nil, err
		}
		if n >= len(q.buf) { // the rest of the datagram is gone
			return nil, errTruncated
		}
		if body, err, ok := answer(q.buf[:n], q.seq, want); ok {
			return body, err
		}
	}
}

// answer finds, in one netlink datagram, the message answering question
// seq: its body when of type want, or the error the kernel sent.
func answer(b []byte, seq uint32, want uint16) ([]byte, error, bool) {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return nil, nil, false
		}
		typ, s, body := binary.NativeEndian.Uint16(b[4:6]), binary.NativeEndian.Uint32(b[8:12]), b[unix.NLMSG_HDRLEN:l]
		if s == seq {
			switch {
			case typ == unix.NLMSG_ERROR && len(body) >= 4:
				if e := -int32(binary.NativeEndian.Uint32(body[0:4])); e > 0 {
					return nil, unix.Errno(e), true
				}
				return nil, errNoAnswer, true // an acknowledgement, not an answer
			case typ == want:
				return body, nil, true
			}
		}
		b = b[min(len(b), (l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1)):]
	}
	return nil, nil, false
}

// Resolver asks the kernel about next hops and links: it keeps its
// netlink socket, and an answer found allocates nothing. It is not safe
// for concurrent use.
type Resolver struct {
	q *nlQuery
	p prober
}

// NewResolver opens a Resolver's netlink socket.
func NewResolver() (*Resolver, error) {
	q, err := openQuery()
	if err != nil {
		return nil, err
	}
	return &Resolver{q: q}, nil
}

// NextHop asks the kernel's routing table how to reach dst and its
// neighbour table for the next hop's MAC. With oif, the route is the one
// that leaves by that interface (ip route get DST oif IF), whatever route
// the kernel would take for its own traffic: the pseudowire leaves by its
// uplink even when another port (a management port hearing router
// advertisements, found on the image) has a default route too; oif 0
// takes the kernel's own choice. An unresolved next hop is prodded with
// an echo request.
//
// A link-local dst with a zone (an unnumbered BGP neighbor's next hop) is
// on the link of the interface the zone names, whatever the routes say.
func (r *Resolver) NextHop(dst netip.Addr, oif int) (Hop, string) {
	return r.q.nextHop(dst, oif, &r.p)
}

// Link is an interface as the kernel has it now.
type Link struct {
	Index int
	Up    bool // administratively up, and the link running (IFF_UP, IFF_RUNNING)
}

// LinkByName asks for the interface called name without allocating;
// errors.Is(err, unix.ENODEV) when there is none.
func (r *Resolver) LinkByName(name string) (Link, error) {
	i, flags, err := r.q.linkByName(name)
	if err != nil {
		return Link{}, err
	}
	const upRunning = unix.IFF_UP | unix.IFF_RUNNING
	return Link{Index: i, Up: flags&upRunning == upRunning}, nil
}

// Close closes the socket and the prober.
func (r *Resolver) Close() {
	r.q.close()
	r.p.close()
}
