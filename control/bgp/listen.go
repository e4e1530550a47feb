package bgp

import (
	"net"
	"net/netip"
	"slices"
)

// sessionSource returns the local address of the session with n: its
// Source, or else the address the kernel picks toward it now (an
// unnumbered neighbor's: our link-local address on its interface);
// invalid when none is known.
func sessionSource(n Neighbor) netip.Addr {
	switch {
	case n.Interface != "":
		return linkLocal(n.Interface)
	case n.Source.IsValid():
		return n.Source
	}
	return kernelSource(n.Address)
}

// SessionSources returns the local addresses of the sessions with ns:
// each neighbor's Source, or else the address the kernel picks toward it
// at start (an unnumbered one's: our link-local address on its
// interface). Sorted, without duplicates.
func SessionSources(ns []Neighbor) []netip.Addr {
	var out []netip.Addr
	for _, n := range ns {
		if a := sessionSource(n); a.IsValid() {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

// bindable reports whether a is an address of this host (binding a UDP
// socket to it sends nothing).
func bindable(a netip.Addr) bool {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// listens reports whether a listener on one of addrs takes connections
// to a: a itself, or the unspecified address of its version.
func listens(addrs []netip.Addr, a netip.Addr) bool {
	return a.IsValid() && slices.ContainsFunc(addrs, func(l netip.Addr) bool {
		return l == a || l.IsUnspecified() && l.Is4() == a.Is4()
	})
}

// linkLocal returns the first IPv6 link-local address of interface
// ifname (without zone), or an invalid one.
func linkLocal(ifname string) netip.Addr {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return netip.Addr{}
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Is6() && ip.IsLinkLocalUnicast() {
				return ip
			}
		}
	}
	return netip.Addr{}
}
