package anycast

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/pwgate/pwgate/bpf"
	"github.com/pwgate/pwgate/control/bgp"
)

type fakeDP struct {
	vips     map[netip.Prefix]int
	rings    map[int][]int32
	backends map[int]bpf.Backend
	fail     error
}

func newFakeDP() *fakeDP {
	return &fakeDP{vips: map[netip.Prefix]int{}, rings: map[int][]int32{}, backends: map[int]bpf.Backend{}}
}

func (d *fakeDP) SetVIP(p netip.Prefix, id int) error { d.vips[p] = id; return d.fail }
func (d *fakeDP) DeleteVIP(p netip.Prefix) error      { delete(d.vips, p); return nil }
func (d *fakeDP) SetRing(id int, t []int32) error {
	if d.fail != nil {
		return d.fail
	}
	d.rings[id] = append([]int32(nil), t...)
	return nil
}
func (d *fakeDP) SetBackend(i int, b bpf.Backend) error { d.backends[i] = b; return d.fail }
func (d *fakeDP) BackendTraffic(i int) (bpf.Traffic, error) {
	return bpf.Traffic{Packets: 1, Bytes: 100}, nil
}

// server returns the next hop's last byte behind each slot of VIP id's
// table, as the data path would reach it.
func (d *fakeDP) servers(id int) []int {
	out := make([]int, len(d.rings[id]))
	for i, b := range d.rings[id] {
		out[i] = -1
		if b >= 0 {
			out[i] = int(d.backends[int(b)].Dst[5])
		}
	}
	return out
}

func TestForwarder(t *testing.T) {
	dp := newFakeDP()
	macs := map[netip.Addr]byte{}
	resolve := func(nh netip.Addr) (bpf.Backend, string) {
		m, ok := macs[nh]
		if !ok {
			return bpf.Backend{}, "next hop not resolved"
		}
		return bpf.Backend{Ifindex: 3, Dst: [6]byte{2, 0, 0, 0, m, nh.As4()[3]}}, ""
	}
	f, err := NewForwarder(dp, resolve, []netip.Prefix{vip}, DefaultTableSize, quiet())
	if err != nil {
		t.Fatal(err)
	}
	if dp.vips[vip] != 0 || len(dp.rings[0]) != DefaultTableSize || dp.rings[0][0] != -1 {
		t.Fatal("the VIP was not set up with an empty table")
	}
	path := func(i byte, withdraw bool) bgp.Update {
		a := netip.AddrFrom4([4]byte{10, 0, 0, i})
		return bgp.Update{Route: bgp.Route{Kind: bgp.Prefix, Prefix: vip, NextHop: a}, Peer: a, Withdraw: withdraw}
	}
	for i := byte(1); i <= 3; i++ {
		macs[netip.AddrFrom4([4]byte{10, 0, 0, i})] = 1
	}
	f.Update([]bgp.Update{path(1, false), path(2, false), path(3, false), path(4, false), // 4 is not resolved
		{Route: bgp.Route{Kind: bgp.Prefix, Prefix: netip.MustParsePrefix("198.51.100.0/24"), NextHop: netip.MustParseAddr("10.0.0.9")}}})
	before := dp.servers(0)
	count := map[int]int{}
	for _, s := range before {
		count[s]++
	}
	if len(count) != 3 || count[4] != 0 || count[-1] != 0 {
		t.Fatalf("shares %v", count)
	}
	st := f.Status()
	if len(st) != 1 || len(st[0].Servers) != 4 || st[0].Servers[3].Resolved || st[0].Servers[0].Slots != count[1] {
		t.Errorf("status %+v", st)
	}
	// Server 2 leaves: its slots move, and few others (Maglev's bound).
	f.Update([]bgp.Update{path(2, true)})
	after := dp.servers(0)
	moved := 0
	for i := range before {
		if before[i] != 2 && after[i] != before[i] {
			moved++
		}
		if after[i] == 2 {
			t.Fatal("a withdrawn server keeps slots")
		}
	}
	if moved > DefaultTableSize/50 {
		t.Errorf("%d of the staying servers' slots moved", moved)
	}
	// Server 4's next hop resolves; server 1's MAC changes: both show up
	// in the table at the next refresh, 1 under a new backend index.
	macs[netip.AddrFrom4([4]byte{10, 0, 0, 4})] = 1
	macs[netip.AddrFrom4([4]byte{10, 0, 0, 1})] = 7
	f.Refresh()
	count = map[int]int{}
	for _, b := range dp.rings[0] {
		be := dp.backends[int(b)]
		count[int(be.Dst[5])]++
		if be.Dst[5] == 1 && be.Dst[4] != 7 {
			t.Fatal("server 1's new MAC is not in the table")
		}
	}
	if len(count) != 3 || count[4] == 0 {
		t.Errorf("after refresh: %v", count)
	}
	// Every path gone: an empty table (the program drops and counts).
	f.Update([]bgp.Update{path(1, true), path(3, true), path(4, true)})
	for _, s := range dp.servers(0) {
		if s != -1 {
			t.Fatal("servers left in the table")
		}
	}
	if len(f.hops) != 0 {
		t.Errorf("next hops kept: %v", f.hops)
	}
	f.Close()
	if len(dp.vips) != 0 {
		t.Error("Close left the VIP in the program")
	}
}

func TestForwarderErrors(t *testing.T) {
	dp := newFakeDP()
	dp.fail = errors.New("map full")
	if _, err := NewForwarder(dp, nil, []netip.Prefix{vip}, 251, quiet()); err == nil {
		t.Error("a data path that fails was taken")
	}
	many := make([]netip.Prefix, bpf.MaxVIPs+1)
	if _, err := NewForwarder(newFakeDP(), nil, many, 251, quiet()); err == nil {
		t.Error("too many VIPs were taken")
	}
}

// A path with a worse MED, or GRACEFUL_SHUTDOWN, leaves the table but
// keeps its server (its flows stay); when every path drains, all take
// new flows again.
func TestForwarderDrain(t *testing.T) {
	dp := newFakeDP()
	resolve := func(nh netip.Addr) (bpf.Backend, string) {
		return bpf.Backend{Ifindex: 3, Dst: [6]byte{2, 0, 0, 0, 1, nh.As4()[3]}}, ""
	}
	f, err := NewForwarder(dp, resolve, []netip.Prefix{vip}, 251, quiet())
	if err != nil {
		t.Fatal(err)
	}
	path := func(i byte, med uint32, comms ...uint32) bgp.Update {
		a := netip.AddrFrom4([4]byte{10, 0, 0, i})
		return bgp.Update{Route: bgp.Route{Kind: bgp.Prefix, Prefix: vip, NextHop: a, MED: med, HasMED: true, Communities: comms}, Peer: a}
	}
	in := func() map[int]bool {
		m := map[int]bool{}
		for _, s := range dp.servers(0) {
			m[s] = true
		}
		return m
	}
	f.Update([]bgp.Update{path(1, 10), path(2, 10), path(3, 10)})
	if len(in()) != 3 {
		t.Fatal(in())
	}
	f.Update([]bgp.Update{path(2, 1000, bgp.GracefulShutdown)})
	if m := in(); len(m) != 2 || m[2] {
		t.Errorf("drained server 2 still in the table: %v", m)
	}
	st := f.Status()[0].Servers
	if !st[1].Draining || st[1].Index < 0 || dp.backends[st[1].Index].Ifindex == 0 {
		t.Errorf("drained server lost its entry: %+v", st[1])
	}
	f.Update([]bgp.Update{path(3, 20)}) // blue/green: 3 is worse than 1
	if m := in(); len(m) != 1 || !m[1] {
		t.Errorf("by MED: %v", m)
	}
	f.Update([]bgp.Update{path(1, 1000, bgp.GracefulShutdown), path(3, 1000, bgp.GracefulShutdown)})
	if m := in(); len(m) != 3 {
		t.Errorf("all draining: %v", m)
	}
	// Withdrawn: its entry is cleared (its flows are placed again).
	idx := f.Status()[0].Servers[1].Index
	f.Update([]bgp.Update{{Route: bgp.Route{Kind: bgp.Prefix, Prefix: vip}, Peer: netip.AddrFrom4([4]byte{10, 0, 0, 2}), Withdraw: true}})
	if dp.backends[idx].Ifindex != 0 {
		t.Error("a withdrawn server's entry was not cleared")
	}
}

// A neighbor's path names a server only when its next hop is the
// neighbor's own address, unless the trust says any next hop: a path
// from the access router (or any neighbor) naming another box, such as
// one behind a gateway, takes no flows (issue 21 finding 5).
func TestForwarderNextHopIsTheNeighbor(t *testing.T) {
	dp := newFakeDP()
	resolve := func(nh netip.Addr) (bpf.Backend, string) {
		return bpf.Backend{Ifindex: 3, Dst: [6]byte{2, 0, 0, 0, 1, nh.As4()[3]}}, ""
	}
	f, err := NewForwarder(dp, resolve, []netip.Prefix{vip}, 251, quiet())
	if err != nil {
		t.Fatal(err)
	}
	a := func(i byte) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, i}) }
	path := func(peer, nh byte, med uint32) bgp.Update {
		return bgp.Update{Route: bgp.Route{Kind: bgp.Prefix, Prefix: vip, NextHop: a(nh), MED: med, HasMED: true}, Peer: a(peer)}
	}
	in := func() map[int]bool {
		m := map[int]bool{}
		for _, s := range dp.servers(0) {
			m[s] = true
		}
		return m
	}
	// 1 and 2 announce themselves; 9 (a router) names 7, with a better MED.
	f.Update([]bgp.Update{path(1, 1, 10), path(2, 2, 10), path(9, 7, 0)})
	if m := in(); len(m) != 2 || !m[1] || !m[2] {
		t.Fatalf("a third party's next hop took the table: %v", m)
	}
	// The same server's address, announced by a neighbor other than the server.
	f.Update([]bgp.Update{path(9, 1, 0)})
	if m := in(); len(m) != 2 || !m[1] || !m[2] {
		t.Fatalf("a neighbor naming another neighbor took the table: %v", m)
	}
	// An IPv4-mapped next hop is the neighbor's address.
	f.Update([]bgp.Update{{Route: bgp.Route{Kind: bgp.Prefix, Prefix: vip, NextHop: netip.AddrFrom16(a(2).As16()), MED: 10, HasMED: true}, Peer: a(2)}})
	if m := in(); len(m) != 2 || !m[2] {
		t.Fatalf("a mapped next hop was refused: %v", m)
	}
	if n := f.Refused()[RefusedNextHop]; n != 2 {
		t.Errorf("refused for their next hop: %d, want 2 (%v)", n, f.Refused())
	}
	var seen bool
	for _, s := range f.Status()[0].Servers {
		if s.Peer == "10.0.0.9" {
			seen = true
			if s.Refused != RefusedNextHop || s.Why == "" || s.Slots != 0 || s.Resolved {
				t.Errorf("refused path's status %+v", s)
			}
		}
	}
	if !seen {
		t.Error("the refused path is not in the status")
	}
	// next_hop: any takes it (a route server or reflector's paths).
	f.SetTrust(Trust{AnyNextHop: true})
	if m := in(); len(m) != 1 || !m[1] {
		t.Errorf("with any next hop, the best MED (server 1 through 9): %v", m)
	}
	f.SetTrust(Trust{})
	if m := in(); len(m) != 2 {
		t.Errorf("back to strict: %v", m)
	}
	// A withdrawal of a refused path forgets it.
	f.Update([]bgp.Update{{Route: bgp.Route{Kind: bgp.Prefix, Prefix: vip}, Peer: a(9), Withdraw: true}})
	for _, s := range f.Status()[0].Servers {
		if s.Peer == "10.0.0.9" {
			t.Errorf("withdrawn refused path still shown: %+v", s)
		}
	}
}

// With anycast.forward.neighbors, only those neighbors' paths name
// servers: the access router's path with the lowest MED takes no flows
// (issue 21 finding 5).
func TestForwarderTrustedNeighbors(t *testing.T) {
	dp := newFakeDP()
	resolve := func(nh netip.Addr) (bpf.Backend, string) {
		return bpf.Backend{Ifindex: 3, Dst: [6]byte{2, 0, 0, 0, 1, nh.As16()[15]}}, ""
	}
	f, err := NewForwarder(dp, resolve, []netip.Prefix{vip}, 251, quiet())
	if err != nil {
		t.Fatal(err)
	}
	f.SetTrust(Trust{Neighbors: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}, Interfaces: []string{"eth3"}})
	a := func(i byte) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, i}) }
	path := func(peer netip.Addr, med uint32) bgp.Update {
		return bgp.Update{Route: bgp.Route{Kind: bgp.Prefix, Prefix: vip, NextHop: peer.WithZone(""), MED: med, HasMED: true}, Peer: peer}
	}
	in := func() map[int]bool {
		m := map[int]bool{}
		for _, s := range dp.servers(0) {
			m[s] = true
		}
		return m
	}
	router := a(254)
	f.Update([]bgp.Update{path(a(1), 10), path(a(2), 10), path(router, 0)})
	if m := in(); len(m) != 2 || !m[1] || !m[2] {
		t.Fatalf("the access router took the table: %v", m)
	}
	if n := f.Refused()[RefusedNeighbor]; n != 1 {
		t.Errorf("refused for their neighbor: %d (%v)", n, f.Refused())
	}
	// An unnumbered neighbor on a listed interface (its link-local
	// address, zoned) is trusted; one on another interface is not.
	on := netip.MustParseAddr("fe80::5%eth3")
	off := netip.MustParseAddr("fe80::6%eth4")
	f.Update([]bgp.Update{path(on, 10), path(off, 10)})
	if m := in(); len(m) != 3 || !m[5] || m[6] {
		t.Errorf("unnumbered neighbors: %v", m)
	}
	if n := f.Refused()[RefusedNeighbor]; n != 2 {
		t.Errorf("refused for their neighbor: %d (%v)", n, f.Refused())
	}
	// A reload that lists the router lets its path in (kept while refused).
	f.SetTrust(Trust{Neighbors: []netip.Addr{router}})
	if m := in(); len(m) != 1 || !m[254] {
		t.Errorf("after the trust changed: %v", m)
	}
	f.SetTrust(Trust{}) // every neighbor
	if m := in(); len(m) != 1 || !m[254] {
		t.Errorf("every neighbor: %v", m)
	}
}
