package uplink

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"golang.org/x/sys/unix"
)

// nlWatch follows the kernel's route, neighbour and address notifications
// for one interface on one netlink socket, read into one buffer: nothing is
// allocated per notification. (The netlink package's subscriptions
// allocate 64 KiB for every read, and a router advertising every few
// seconds makes a read every few seconds, all day long.)
type nlWatch struct {
	fd      int
	ifindex int32
	buf     []byte
	pfd     []unix.PollFd
	routes  seen[routeKey, int32]
	neighs  seen[netip.Addr, neighState]
	addrs   seen[netip.Prefix, bool]
}

type routeKey struct {
	family, dstLen uint8
	dst, gw        [16]byte
	table          uint32
	metric         uint32
}

type neighState struct {
	usable bool
	mac    [6]byte
}

// nlGroups are the notifications nlWatch reads.
const nlGroups = unix.RTMGRP_NEIGH | unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR

func newNLWatch(ifindex int) (*nlWatch, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: nlGroups}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &nlWatch{fd: fd, ifindex: int32(ifindex), buf: make([]byte, 1<<16), pfd: []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}}, nil
}

// nlPollMs is how long run waits in poll(2) before it looks at done.
const nlPollMs = 200

// run reads notifications until done is closed and calls wake when one
// changes something the uplink's view reads, or when some were lost
// (the socket's buffer overran: the view reads everything again).
func (w *nlWatch) run(done <-chan struct{}, wake func()) {
	defer unix.Close(w.fd)
	for {
		select {
		case <-done:
			return
		default:
		}
		if n, err := unix.Poll(w.pfd, nlPollMs); n <= 0 || err != nil {
			continue
		}
		for {
			n, err := unix.Read(w.fd, w.buf)
			if errors.Is(err, unix.EAGAIN) {
				break
			}
			if err != nil { // ENOBUFS: notifications lost
				wake()
				continue
			}
			if w.datagram(w.buf[:n]) {
				wake()
			}
		}
	}
}

// datagram reads the messages of one netlink datagram and reports
// whether any of them changed what the view reads.
func (w *nlWatch) datagram(b []byte) bool {
	changed := false
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			break
		}
		if w.message(binary.NativeEndian.Uint16(b[4:6]), b[unix.NLMSG_HDRLEN:l]) {
			changed = true
		}
		b = b[min(len(b), (l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1)):]
	}
	return changed
}

// message reads one route, neighbour or address message.
func (w *nlWatch) message(typ uint16, body []byte) bool {
	switch typ {
	case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		if len(body) < unix.SizeofRtMsg {
			return false
		}
		k := routeKey{family: body[0], dstLen: body[1], table: uint32(body[4])}
		var oif int32
		for t, v := range attrs(body[unix.SizeofRtMsg:]) {
			switch t {
			case unix.RTA_DST:
				copy(k.dst[:], v)
			case unix.RTA_GATEWAY:
				copy(k.gw[:], v)
			case unix.RTA_OIF:
				oif = int32(u32(v))
			case unix.RTA_PRIORITY:
				k.metric = u32(v)
			case unix.RTA_TABLE:
				k.table = u32(v)
			}
		}
		if oif != w.ifindex && oif != 0 {
			return false
		}
		return w.routes.changed(k, oif, typ == unix.RTM_DELROUTE)
	case unix.RTM_NEWNEIGH, unix.RTM_DELNEIGH:
		if len(body) < unix.SizeofNdMsg || int32(binary.NativeEndian.Uint32(body[4:8])) != w.ifindex {
			return false
		}
		st := neighState{usable: int(binary.NativeEndian.Uint16(body[8:10]))&usableNUD != 0}
		var ip netip.Addr
		for t, v := range attrs(body[unix.SizeofNdMsg:]) {
			switch t {
			case unix.NDA_DST:
				ip, _ = netip.AddrFromSlice(v)
			case unix.NDA_LLADDR:
				copy(st.mac[:], v)
			}
		}
		return w.neighs.changed(ip.Unmap(), st, typ == unix.RTM_DELNEIGH)
	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		if len(body) < unix.SizeofIfAddrmsg || int32(binary.NativeEndian.Uint32(body[4:8])) != w.ifindex {
			return false
		}
		flags := uint32(body[2])
		var addr, local netip.Addr
		preferred := uint32(1)
		for t, v := range attrs(body[unix.SizeofIfAddrmsg:]) {
			switch t {
			case unix.IFA_ADDRESS:
				addr, _ = netip.AddrFromSlice(v)
			case unix.IFA_LOCAL:
				local, _ = netip.AddrFromSlice(v)
			case unix.IFA_CACHEINFO:
				preferred = u32(v)
			case unix.IFA_FLAGS:
				flags = u32(v)
			}
		}
		if local.IsValid() {
			addr = local
		}
		const unusable = unix.IFA_F_TENTATIVE | unix.IFA_F_DADFAILED | unix.IFA_F_DEPRECATED
		return w.addrs.changed(netip.PrefixFrom(addr, int(body[1])), flags&unusable == 0 && preferred != 0, typ == unix.RTM_DELADDR)
	}
	return false
}

// attrs yields the type and value of each route attribute in b.
func attrs(b []byte) func(yield func(uint16, []byte) bool) {
	return func(yield func(uint16, []byte) bool) {
		for len(b) >= unix.SizeofRtAttr {
			l := int(binary.NativeEndian.Uint16(b[0:2]))
			if l < unix.SizeofRtAttr || l > len(b) {
				return
			}
			if !yield(binary.NativeEndian.Uint16(b[2:4])&^unix.NLA_F_NESTED, b[unix.SizeofRtAttr:l]) {
				return
			}
			b = b[min(len(b), (l+unix.RTA_ALIGNTO-1)&^(unix.RTA_ALIGNTO-1)):]
		}
	}
}

// u32 reads a native-endian 32-bit attribute (0 if it is short).
func u32(v []byte) uint32 {
	if len(v) < 4 {
		return 0
	}
	return binary.NativeEndian.Uint32(v)
}

// seen remembers what the last notification said about each route,
// neighbour or address, so that one that changes nothing the view reads
// wakes nobody: a router advertisement renews the default route's and
// the SLAAC address's lifetimes every few seconds, and the next hop's
// neighbour entry goes REACHABLE, STALE, DELAY, PROBE and back while
// frames bypass the kernel. (Each wake-up re-reads addresses, routes
// and neighbours through the netlink package: allocations.)
type seen[K, V comparable] struct{ m map[K]V }

// seenMax bounds what seen keeps (a busy segment's neighbours): past it,
// it starts again, and the first notification of each wakes once more.
const seenMax = 256

// changed records what a notification says about k (v, or gone) and
// reports whether that differs from what the last one said.
func (s *seen[K, V]) changed(k K, v V, gone bool) bool {
	old, had := s.m[k]
	if gone { // seen or not: the view may have used it
		delete(s.m, k)
		return true
	}
	if had && old == v {
		return false
	}
	if s.m == nil || len(s.m) >= seenMax {
		s.m = make(map[K]V, seenMax)
	}
	s.m[k] = v
	return true
}
