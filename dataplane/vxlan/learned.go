package vxlan

import "net/netip"

// Learned is a MAC a data goroutine saw where the forwarding database does
// not have it: on the LAN (VTEP Local), or behind a remote VTEP (an index
// of Table.VTEPs). The data goroutines push it to control/evpn, which owns
// the forwarding database.
type Learned struct {
	Key  Key
	VTEP int32
	// IP, from the LAN, is an address the MAC announced for itself (ARP,
	// neighbour discovery), for EVPN's MAC+IP routes.
	IP netip.Addr
}
