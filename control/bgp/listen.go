package bgp

import (
	"net"
	"net/netip"
	"slices"
)

// sessionSource returns the local address of the session with the
// numbered neighbor n: its Source, or else the address the kernel picks
// toward it now; invalid when neither is known, and for an unnumbered
// neighbor.
func sessionSource(n Neighbor) netip.Addr {
	switch {
	case n.Interface != "":
		return netip.Addr{}
	case n.Source.IsValid():
		return n.Source
	}
	return kernelSource(n.Address)
}

// SessionSources returns the local addresses of the sessions with ns, the
// addresses pwgated listens on when Config.ListenAddrs is empty: each
// numbered neighbor's Source, or else the address the kernel picks toward
// it at start. Unnumbered neighbors add none: pwgated connects to them
// (see passive). Sorted, without duplicates.
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
