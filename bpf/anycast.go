package bpf

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// Limits of the anycast forwarder's maps (anycast.c).
const (
	MaxVIPs     = 256
	MaxBackends = 4096
)

// Counter indexes of ac_counters (anycast.c's enum).
const (
	ACPass       = iota // not for a VIP: to the kernel
	ACForwarded         // to a server
	ACTTLExpired        // for a VIP with TTL 1 or 0: to the kernel
	ACTruncated         // for a VIP, headers cut short: dropped
	ACFragments         // fragments, hashed on the 3-tuple
	ACExtHeaders        // IPv6 with extension headers, hashed on the 3-tuple
	ACICMPErrors        // ICMP errors, hashed on the packet inside
	ACNoBackend         // for a VIP without a server: dropped
	ACNewFlows          // flows not in the flow table, placed by the Maglev table
	ACNumCounters
)

// ACCounterNames name the counters as pwctl and Prometheus show them.
var ACCounterNames = [ACNumCounters]string{"passed", "forwarded", "ttl_expired", "drop_truncated", "fragments",
	"ext_headers", "icmp_errors", "drop_no_server", "new_flows"}

// Backend is a server's next hop as the program writes it; Ifindex 0:
// the server is gone (its flows are placed again).
type Backend struct {
	Ifindex  int
	Dst, Src [6]byte
}

// Traffic is a packet and byte count.
type Traffic struct{ Packets, Bytes uint64 }

// Anycast is the loaded anycast forwarder.
type Anycast struct {
	objs      anycastObjects
	tableSize int
	gen       [MaxBackends]uint32 // of each backend index: flows remember it
}

// LoadAnycast loads the forwarder with Maglev tables of tableSize slots.
func LoadAnycast(tableSize int) (*Anycast, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("raise memlock limit: %w", err)
	}
	spec, err := loadAnycast()
	if err != nil {
		return nil, fmt.Errorf("load anycast program: %w", err)
	}
	if err := spec.Variables["ac_table_size"].Set(uint32(tableSize)); err != nil {
		return nil, err
	}
	spec.Maps["ac_rings"].InnerMap.MaxEntries = uint32(tableSize)
	a := &Anycast{tableSize: tableSize}
	if err := loadAndAssign(spec, &a.objs, "anycast program"); err != nil {
		return nil, err
	}
	return a, nil
}

// Close releases the program and maps (an attached link keeps the program
// until it is closed).
func (a *Anycast) Close() error { return a.objs.Close() }

// Attach attaches the forwarder to ifname; frames are forwarded only when
// addressed to ifname's MAC.
func (a *Anycast) Attach(ifname string, m AttachMode) (link.Link, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", ifname, err)
	}
	var mac [6]byte
	copy(mac[:], ifi.HardwareAddr)
	if err := a.SetPort(ifi.Index, mac); err != nil {
		return nil, err
	}
	return attach(a.objs.PwgateAnycast, ifname, m)
}

// SetPort tells the program port ifindex's MAC (Attach does).
func (a *Anycast) SetPort(ifindex int, mac [6]byte) error {
	if err := a.objs.AcPorts.Update(uint32(ifindex), anycastPort{Mac: mac}, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("anycast: port %d: %w", ifindex, err)
	}
	return nil
}

// Program is the XDP program (for tests that run it).
func (a *Anycast) Program() *ebpf.Program { return a.objs.PwgateAnycast }

func vipKey(p netip.Prefix) anycastVipKey {
	k := anycastVipKey{Prefixlen: uint32(p.Bits()), Addr: p.Addr().As16()}
	if p.Addr().Is4() {
		k.Prefixlen += 96
	}
	return k
}

// SetVIP makes packets to p use VIP id's table and counters.
func (a *Anycast) SetVIP(p netip.Prefix, id int) error {
	if id < 0 || id >= MaxVIPs {
		return fmt.Errorf("anycast: VIP index %d out of range", id)
	}
	if err := a.objs.AcVips.Update(vipKey(p.Masked()), anycastVip{Id: uint32(id)}, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("anycast: add VIP %s: %w", p, err)
	}
	return nil
}

// DeleteVIP stops forwarding p: its packets go to the kernel.
func (a *Anycast) DeleteVIP(p netip.Prefix) error {
	if err := a.objs.AcVips.Delete(vipKey(p.Masked())); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("anycast: remove VIP %s: %w", p, err)
	}
	return nil
}

// SetRing gives VIP id a new Maglev table: backends[i] is the index of
// slot i's server, -1 none. The table is written into a new map, which
// then replaces the old one in one update: a packet sees the old table or
// the new one, never a mixture.
func (a *Anycast) SetRing(id int, table []int32) error {
	if len(table) != a.tableSize {
		return fmt.Errorf("anycast: table of %d slots, want %d", len(table), a.tableSize)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: uint32(a.tableSize)})
	if err != nil {
		return fmt.Errorf("anycast: new table: %w", err)
	}
	defer m.Close() // the outer map holds its own reference
	keys := make([]uint32, len(table))
	vals := make([]uint32, len(table))
	for i, b := range table {
		keys[i] = uint32(i)
		if b >= 0 {
			vals[i] = uint32(b) + 1
		}
	}
	if _, err := m.BatchUpdate(keys, vals, nil); err != nil {
		return fmt.Errorf("anycast: fill table: %w", err)
	}
	if err := a.objs.AcRings.Update(uint32(id), m, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("anycast: swap table: %w", err)
	}
	return nil
}

// SetBackend writes server index i's next hop and zeroes its traffic.
// Flows placed on i before no longer follow it: they are placed again by
// the Maglev table.
func (a *Anycast) SetBackend(i int, b Backend) error {
	if i < 0 || i >= MaxBackends {
		return fmt.Errorf("anycast: server index %d out of range", i)
	}
	a.gen[i]++
	v := anycastBackend{Ifindex: uint32(b.Ifindex), Gen: a.gen[i], Dmac: b.Dst, Smac: b.Src}
	if err := a.objs.AcBackends.Update(uint32(i), v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("anycast: server %d: %w", i, err)
	}
	zero := make([]anycastBackendStats, ebpf.MustPossibleCPU())
	if err := a.objs.AcBackendStats.Update(uint32(i), zero, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("anycast: server %d: %w", i, err)
	}
	return nil
}

// VIPTraffic returns VIP id's forwarded traffic and its packets dropped
// for want of a server.
func (a *Anycast) VIPTraffic(id int) (Traffic, uint64, error) {
	var per []anycastVipStats
	if err := a.objs.AcVipStats.Lookup(uint32(id), &per); err != nil {
		return Traffic{}, 0, err
	}
	var t Traffic
	var none uint64
	for _, s := range per {
		t.Packets += s.Packets
		t.Bytes += s.Bytes
		none += s.NoBackend
	}
	return t, none, nil
}

// BackendTraffic returns what went to server index i.
func (a *Anycast) BackendTraffic(i int) (Traffic, error) {
	var per []anycastBackendStats
	if err := a.objs.AcBackendStats.Lookup(uint32(i), &per); err != nil {
		return Traffic{}, err
	}
	var t Traffic
	for _, s := range per {
		t.Packets += s.Packets
		t.Bytes += s.Bytes
	}
	return t, nil
}

// Counters returns the forwarder's counters summed over CPUs.
func (a *Anycast) Counters() ([ACNumCounters]uint64, error) {
	var out [ACNumCounters]uint64
	return out, sumCounters(a.objs.AcCounters, out[:])
}
