package anycast

import (
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/pwgate/pwgate/bpf"
	"github.com/pwgate/pwgate/control/bgp"
	"github.com/pwgate/pwgate/control/client"
)

// Dataplane is what the forwarder writes: the XDP program's maps
// (bpf.Anycast), or a fake in tests.
type Dataplane interface {
	SetVIP(p netip.Prefix, id int) error
	DeleteVIP(p netip.Prefix) error
	SetRing(id int, table []int32) error
	SetBackend(i int, b bpf.Backend) error // also zeroes i's traffic
	BackendTraffic(i int) (bpf.Traffic, error)
}

// Resolve returns how a server's next hop is reached, or why it is not.
type Resolve func(nextHop netip.Addr) (bpf.Backend, string)

// Trust says which neighbors' paths to a VIP name servers. The zero
// Trust takes every neighbor's path whose next hop is the neighbor's own
// address.
type Trust struct {
	// Neighbors are the neighbors, by address, whose paths may name
	// servers, and Interfaces the unnumbered ones (a link-local neighbor
	// on that interface). Both empty: every neighbor.
	Neighbors  []netip.Addr
	Interfaces []string
	// AnyNextHop takes a path whose next hop is not the address of the
	// neighbor that sent it (a route server's or reflector's).
	AnyNextHop bool
}

// Reasons a received path to a VIP names no server (Refused's keys).
const (
	// RefusedNeighbor: the neighbor is not one that may carry servers
	// (anycast.forward.neighbors).
	RefusedNeighbor = "neighbor"
	// RefusedNextHop: the next hop is not the neighbor's own address
	// (anycast.forward.next_hop: neighbor).
	RefusedNextHop = "next_hop"
)

// refusedReasons are Refused's keys, in order.
var refusedReasons = []string{RefusedNeighbor, RefusedNextHop}

// refusal is a received path that names no server, and why.
type refusal struct {
	u   bgp.Update
	why string // RefusedNeighbor or RefusedNextHop
}

// Forwarder turns BGP's paths to the VIPs into the XDP program's tables.
// It is used from one goroutine (the main goroutine).
type Forwarder struct {
	dp      Dataplane
	resolve Resolve
	log     *slog.Logger
	vips    []netip.Prefix                             // by id
	paths   map[netip.Prefix]map[netip.Addr]bgp.Update // VIP → peer → path that names a server
	// refused are the paths the trust refuses, kept so that a new trust
	// (a reload) can take them; refusedN counts refusals by reason.
	refused  map[netip.Prefix]map[netip.Addr]refusal
	refusedN map[string]uint64
	trust    Trust
	hops     map[netip.Addr]*backendState    // next hop → server
	free     []int                           // backend indexes free to take
	retired  []int                           // free once the tables no longer name them
	shares   map[netip.Prefix]map[string]int // slots per server
	gone     map[netip.Addr]bpf.Traffic      // traffic of a server's earlier entries
	owner    map[int]netip.Addr              // whose entry an index is
	next     int
	tables   map[netip.Prefix][]string // servers in each VIP's table now
	table    []int32
}

type backendState struct {
	index int // -1 until resolved
	b     bpf.Backend
	why   string
	users int
}

// NewForwarder returns a forwarder for vips (their order is their ids)
// with Maglev tables of size slots.
func NewForwarder(dp Dataplane, resolve Resolve, vips []netip.Prefix, size int, log *slog.Logger) (*Forwarder, error) {
	if len(vips) > bpf.MaxVIPs {
		return nil, fmt.Errorf("anycast: %d VIPs, at most %d", len(vips), bpf.MaxVIPs)
	}
	f := &Forwarder{dp: dp, resolve: resolve, log: log, vips: vips,
		paths: map[netip.Prefix]map[netip.Addr]bgp.Update{}, hops: map[netip.Addr]*backendState{},
		refused: map[netip.Prefix]map[netip.Addr]refusal{}, refusedN: map[string]uint64{},
		tables: map[netip.Prefix][]string{}, shares: map[netip.Prefix]map[string]int{}, gone: map[netip.Addr]bpf.Traffic{},
		owner: map[int]netip.Addr{}, table: make([]int32, size)}
	for id, p := range vips {
		if err := dp.SetRing(id, f.empty()); err != nil {
			return nil, err
		}
		if err := dp.SetVIP(p, id); err != nil {
			return nil, err
		}
		f.tables[p] = nil
	}
	return f, nil
}

func (f *Forwarder) empty() []int32 {
	for i := range f.table {
		f.table[i] = -1
	}
	return f.table
}

// Update takes BGP's changes: paths to the VIPs (exactly their prefixes)
// from each neighbor. A path the trust refuses names no server; it is
// counted by reason and shown in the status.
func (f *Forwarder) Update(us []bgp.Update) {
	changed := map[netip.Prefix]bool{}
	for _, u := range us {
		if u.Kind != bgp.Prefix || !slices.Contains(f.vips, u.Prefix) {
			continue
		}
		was := f.refused[u.Prefix][u.Peer].why
		if why := f.place(u); why != "" {
			f.refusedN[why]++
			if why != was {
				f.log.Warn("anycast: path refused", "vip", u.Prefix, "neighbor", u.Peer, "next_hop", u.NextHop, "why", refusedWhy(why))
			}
		}
		changed[u.Prefix] = true
	}
	for p := range changed {
		f.rebuild(p)
	}
	f.settle()
}

// place puts u, a neighbor's path to a VIP (or its withdrawal), in place
// of the neighbor's earlier path: among the servers, or among the refused
// paths, whose reason it returns.
func (f *Forwarder) place(u bgp.Update) (refused string) {
	m := f.paths[u.Prefix]
	if m == nil {
		m = map[netip.Addr]bgp.Update{}
		f.paths[u.Prefix] = m
	}
	old, had := m[u.Peer]
	delete(m, u.Peer)
	delete(f.refused[u.Prefix], u.Peer)
	if !u.Withdraw && u.NextHop.IsValid() {
		if refused = f.refuse(u); refused != "" {
			if f.refused[u.Prefix] == nil {
				f.refused[u.Prefix] = map[netip.Addr]refusal{}
			}
			f.refused[u.Prefix][u.Peer] = refusal{u: u, why: refused}
		} else {
			// Taken before the old path is let go: a path whose
			// attributes change (a drain) keeps its server's entry,
			// and the flows placed on it.
			m[u.Peer] = u
			f.use(u.NextHop)
		}
	}
	if had {
		f.release(old.NextHop)
	}
	return refused
}

// refuse returns why the trust refuses u, or "".
func (f *Forwarder) refuse(u bgp.Update) string {
	t := &f.trust
	if len(t.Neighbors) > 0 || len(t.Interfaces) > 0 {
		peer := u.Peer.WithZone("")
		ok := slices.Contains(t.Neighbors, peer.Unmap()) ||
			peer.IsLinkLocalUnicast() && u.Peer.Zone() != "" && slices.Contains(t.Interfaces, u.Peer.Zone())
		if !ok {
			return RefusedNeighbor
		}
	}
	if !t.AnyNextHop && u.NextHop.WithZone("").Unmap() != u.Peer.WithZone("").Unmap() {
		return RefusedNextHop
	}
	return ""
}

// SetTrust changes which paths name servers (a reload): the paths
// received so far, taken or refused, are weighed again. Refusals are
// counted as paths arrive, not here.
func (f *Forwarder) SetTrust(t Trust) {
	f.trust = Trust{Neighbors: make([]netip.Addr, len(t.Neighbors)), Interfaces: slices.Clone(t.Interfaces), AnyNextHop: t.AnyNextHop}
	for i, a := range t.Neighbors {
		f.trust.Neighbors[i] = a.WithZone("").Unmap()
	}
	changed := map[netip.Prefix]bool{}
	for _, p := range f.vips {
		var again []bgp.Update
		for _, u := range f.paths[p] {
			if f.refuse(u) != "" {
				again = append(again, u)
			}
		}
		for _, r := range f.refused[p] {
			if f.refuse(r.u) != r.why {
				again = append(again, r.u)
			}
		}
		for _, u := range again {
			if why := f.place(u); why != "" {
				f.log.Info("anycast: path refused", "vip", p, "neighbor", u.Peer, "next_hop", u.NextHop, "why", refusedWhy(why))
			}
			changed[p] = true
		}
	}
	for p := range changed {
		f.rebuild(p)
	}
	f.settle()
}

// Refused counts the received paths that named no server, by reason
// (RefusedNeighbor, RefusedNextHop; every reason, 0 too).
func (f *Forwarder) Refused() map[string]uint64 {
	out := make(map[string]uint64, len(refusedReasons))
	for _, r := range refusedReasons {
		out[r] = f.refusedN[r]
	}
	return out
}

// refusedWhy explains a refusal reason.
func refusedWhy(why string) string {
	switch why {
	case RefusedNeighbor:
		return "refused: the neighbor is not in anycast.forward.neighbors"
	case RefusedNextHop:
		return "refused: the next hop is not the neighbor's address (anycast.forward.next_hop: any takes it)"
	}
	return "refused: " + why
}

// settle frees the backend indexes the tables no longer name; their
// entries are cleared, so that flows still placed on them are placed
// again.
func (f *Forwarder) settle() {
	for _, i := range f.retired {
		if t, err := f.dp.BackendTraffic(i); err == nil {
			g := f.gone[f.owner[i]]
			g.Packets += t.Packets
			g.Bytes += t.Bytes
			f.gone[f.owner[i]] = g
		}
		delete(f.owner, i)
		if err := f.dp.SetBackend(i, bpf.Backend{}); err != nil {
			f.log.Error("anycast: clear server", "index", i, "err", err)
		}
	}
	f.free = append(f.free, f.retired...)
	f.retired = f.retired[:0]
}

func (f *Forwarder) use(nh netip.Addr) {
	b := f.hops[nh]
	if b == nil {
		b = &backendState{index: -1}
		f.hops[nh] = b
		f.refreshHop(nh, b)
	}
	b.users++
}

func (f *Forwarder) release(nh netip.Addr) {
	b := f.hops[nh]
	if b == nil {
		return
	}
	if b.users--; b.users == 0 {
		delete(f.hops, nh)
		if b.index >= 0 {
			f.retired = append(f.retired, b.index)
		}
	}
}

// refreshHop resolves nh again; it reports whether anything changed. A
// server whose next hop changes gets a new backend index (and its tables
// are rebuilt), so that no packet sees half of a rewritten entry.
func (f *Forwarder) refreshHop(nh netip.Addr, b *backendState) bool {
	nb, why := f.resolve(nh)
	if why != "" {
		changed := b.index >= 0 || b.why != why
		if b.index >= 0 {
			f.retired = append(f.retired, b.index)
			b.index = -1
		}
		if b.why != why {
			f.log.Info("anycast: server not reachable", "next_hop", nh, "why", why)
		}
		b.why = why
		return changed
	}
	if b.index >= 0 && nb == b.b {
		return false
	}
	old := b.index
	i, err := f.alloc()
	if err == nil {
		err = f.dp.SetBackend(i, nb)
	}
	if err != nil {
		f.log.Error("anycast: server", "next_hop", nh, "err", err)
		b.why = err.Error()
		return false
	}
	b.index, b.b, b.why = i, nb, ""
	f.owner[i] = nh
	if old >= 0 {
		f.retired = append(f.retired, old)
	}
	return true
}

func (f *Forwarder) alloc() (int, error) {
	if n := len(f.free); n > 0 {
		i := f.free[n-1]
		f.free = f.free[:n-1]
		return i, nil
	}
	if f.next >= bpf.MaxBackends {
		return 0, fmt.Errorf("more than %d servers", bpf.MaxBackends)
	}
	f.next++
	return f.next - 1, nil
}

// Refresh resolves every next hop again (routes and neighbours change)
// and rebuilds the tables of VIPs whose servers changed.
func (f *Forwarder) Refresh() {
	for nh, b := range f.hops {
		if !f.refreshHop(nh, b) {
			continue
		}
		for p, m := range f.paths {
			for _, u := range m {
				if u.NextHop == nh {
					f.rebuild(p)
					break
				}
			}
		}
	}
	f.settle()
}

// servers returns the servers that take p's new flows: the resolved next
// hops of the paths with the lowest MED (none counts as 0), leaving out
// paths with GRACEFUL_SHUTDOWN (RFC 8326) unless all have it. The others
// keep their flows (the program's flow table) but get no new ones: that is
// how a server drains.
func (f *Forwarder) servers(p netip.Prefix) []netip.Addr {
	var cand []bgp.Update
	for _, u := range f.paths[p] {
		if b := f.hops[u.NextHop]; b != nil && b.index >= 0 {
			cand = append(cand, u)
		}
	}
	if slices.ContainsFunc(cand, func(u bgp.Update) bool { return !draining(u) }) {
		cand = slices.DeleteFunc(cand, draining)
	}
	best := uint32(math.MaxUint32)
	for _, u := range cand {
		best = min(best, med(u))
	}
	var out []netip.Addr
	for _, u := range cand {
		if med(u) == best && !slices.Contains(out, u.NextHop) {
			out = append(out, u.NextHop)
		}
	}
	return out
}

func draining(u bgp.Update) bool { return slices.Contains(u.Communities, bgp.GracefulShutdown) }

func med(u bgp.Update) uint32 {
	if u.HasMED {
		return u.MED
	}
	return 0
}

// rebuild writes p's Maglev table over its resolved servers.
func (f *Forwarder) rebuild(p netip.Prefix) {
	id := slices.Index(f.vips, p)
	srv := f.servers(p)
	names := make([]string, len(srv))
	for i, s := range srv {
		names[i] = s.String()
	}
	if err := Maglev(f.table, names); err != nil {
		f.log.Error("anycast: table", "vip", p, "err", err)
		return
	}
	sh := map[string]int{}
	for i, n := range Shares(f.table, len(names)) {
		sh[names[i]] = n
	}
	f.shares[p] = sh
	for i, v := range f.table {
		if v >= 0 {
			f.table[i] = int32(f.hops[srv[v]].index)
		}
	}
	if err := f.dp.SetRing(id, f.table); err != nil {
		f.log.Error("anycast: table", "vip", p, "err", err)
		return
	}
	slices.Sort(names)
	if !slices.Equal(names, f.tables[p]) {
		f.log.Info("anycast: VIP's servers", "vip", p, "servers", names)
	}
	f.tables[p] = names
}

// Status returns the VIPs with their servers, their shares of the table
// and their traffic (all their entries', past ones too).
func (f *Forwarder) Status() []client.AnycastForward {
	var out []client.AnycastForward
	for id, p := range f.vips {
		st := client.AnycastForward{Prefix: p.String(), ID: id}
		for peer, u := range f.paths[p] {
			s := client.AnycastServer{NextHop: u.NextHop.String(), Peer: peer.String(), Index: -1}
			if u.HasMED {
				med := u.MED
				s.MED = &med
			}
			if b := f.hops[u.NextHop]; b != nil {
				s.Resolved, s.Why, s.Index = b.index >= 0, b.why, b.index
				if s.Resolved {
					if t, err := f.dp.BackendTraffic(b.index); err == nil {
						s.Packets, s.Bytes = t.Packets, t.Bytes
					}
					s.Port, s.MAC = f.portName(b.b.Ifindex), net.HardwareAddr(b.b.Dst[:]).String()
					s.Slots = f.shares[p][s.NextHop]
					s.Draining = s.Slots == 0
				}
			}
			g := f.gone[u.NextHop]
			s.Packets += g.Packets
			s.Bytes += g.Bytes
			st.Servers = append(st.Servers, s)
		}
		for peer, r := range f.refused[p] {
			s := client.AnycastServer{NextHop: r.u.NextHop.String(), Peer: peer.String(), Index: -1, Refused: r.why, Why: refusedWhy(r.why)}
			if r.u.HasMED {
				med := r.u.MED
				s.MED = &med
			}
			st.Servers = append(st.Servers, s)
		}
		slices.SortFunc(st.Servers, func(a, b client.AnycastServer) int {
			if c := strings.Compare(a.NextHop, b.NextHop); c != 0 {
				return c
			}
			return strings.Compare(a.Peer, b.Peer)
		})
		out = append(out, st)
	}
	return out
}

func (f *Forwarder) portName(ifindex int) string {
	if i, err := net.InterfaceByIndex(ifindex); err == nil {
		return i.Name
	}
	return fmt.Sprint(ifindex)
}

// InTable returns the servers in p's table now.
func (f *Forwarder) InTable(p netip.Prefix) []string { return f.tables[p] }

// Close removes the VIPs from the program: their packets go to the
// kernel.
func (f *Forwarder) Close() {
	for _, p := range f.vips {
		f.dp.DeleteVIP(p)
	}
}
