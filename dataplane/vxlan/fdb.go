package vxlan

import (
	"sync/atomic"

	"github.com/pwgate/pwgate/dataplane/frame"
)

// Local is the Entry.VTEP of a MAC on our own LAN.
const Local = -1

// Entry says where frames to one MAC in one VNI go.
type Entry struct {
	// VTEP is an index into the Table's VTEPs, or Local.
	VTEP int32
	// Seen is, for a Local entry, the index of its slot in the Table's
	// Seen array, which the data path stamps when the MAC sends (for
	// aging).
	Seen int32
}

// Key is a MAC within a VNI, as the table knows it: the VNI's index in the
// table's VNIs in the top 16 bits, the MAC in the low 48.
type Key uint64

// MakeKey returns the key of mac in the VNI with index vni.
func MakeKey(vni int, mac frame.MAC) Key {
	return Key(uint64(vni)<<48 | uint64(mac[0])<<40 | uint64(mac[1])<<32 | uint64(mac[2])<<24 |
		uint64(mac[3])<<16 | uint64(mac[4])<<8 | uint64(mac[5]))
}

// MAC returns the key's MAC.
func (k Key) MAC() frame.MAC {
	return frame.MAC{byte(k >> 40), byte(k >> 32), byte(k >> 24), byte(k >> 16), byte(k >> 8), byte(k)}
}

// VNI returns the key's VNI index.
func (k Key) VNI() int { return int(k >> 48) }

func (k Key) hash() uint64 {
	h := uint64(k) * 0x9e3779b97f4a7c15
	return h ^ h>>29
}

// Shards is the number of pieces the table is cut into: a change rebuilds
// only the shards it touches.
const Shards = 256

// shard is an immutable open-addressing table.
type shard struct {
	keys []Key // 0: empty (key 0 is VNI index 0, MAC 00:..:00, never learned)
	vals []Entry
	mask uint64
}

func (s *shard) lookup(k Key, h uint64) (Entry, bool) {
	if s == nil {
		return Entry{}, false
	}
	for i := (h >> 8) & s.mask; ; i = (i + 1) & s.mask {
		switch s.keys[i] {
		case k:
			return s.vals[i], true
		case 0:
			return Entry{}, false
		}
	}
}

// VNI is one VNI as the data path sees it.
type VNI struct {
	ID   uint32
	VLAN uint16 // 802.1Q VLAN on the LAN port; 0: untagged
	// Flood lists the VTEPs (indexes) that get broadcast, multicast and
	// unknown-unicast frames (ingress replication).
	Flood []int32
	// Suppress answers the LAN's ARP requests and neighbour
	// solicitations for addresses in Table.Neigh instead of flooding them.
	Suppress bool
}

// Table is one immutable state of the forwarding database: the VNIs, the
// remote VTEPs and the MAC entries. The data path loads it once per batch
// (atomic.Pointer) and reads it without locks; the control goroutine
// builds a new one for every change (Builder).
type Table struct {
	VNIs  []VNI
	VTEPs []VTEP
	// VTEPGen changes when an index of VTEPs is given to another address
	// (state kept per VTEP index, such as reassembly, is then stale).
	VTEPGen uint64
	byVLAN  *[4096]int16 // VLAN → VNI index + 1 (0: none); [0] is the untagged VNI; shared
	shards  [Shards]*shard
	// Seen is shared by every Table of one Builder: Local entries' slots,
	// stamped by the data path (Unix seconds).
	Seen []atomic.Int64
	// Neigh is which MAC has an address in a VNI (suppression); shared
	// between Tables until it changes, never written once published.
	Neigh map[NeighKey]Neigh
}

// Lookup returns the entry of mac in the VNI with index vni.
func (t *Table) Lookup(vni int, mac frame.MAC) (Entry, bool) {
	k := MakeKey(vni, mac)
	h := k.hash()
	return t.shards[h&(Shards-1)].lookup(k, h)
}

// VNIForVLAN returns the index of the VNI carried as vlan on the LAN port
// (0: untagged), or -1.
func (t *Table) VNIForVLAN(vlan uint16) int { return int(t.byVLAN[vlan&4095]) - 1 }

// VNIIndex returns the index of VNI id, or -1 (a linear search: a box has
// few VNIs).
func (t *Table) VNIIndex(id uint32) int {
	for i := range t.VNIs {
		if t.VNIs[i].ID == id {
			return i
		}
	}
	return -1
}

// VTEPIndex returns the index of the VTEP at addr's 16-byte form, or -1.
func (t *Table) VTEPIndex(addr [16]byte) int {
	for i := range t.VTEPs {
		if t.VTEPs[i].Addr.As16() == addr {
			return i
		}
	}
	return -1
}

// Len returns the number of MAC entries.
func (t *Table) Len() int {
	n := 0
	for _, s := range t.shards {
		if s != nil {
			for _, k := range s.keys {
				if k != 0 {
					n++
				}
			}
		}
	}
	return n
}

// Each calls f for every MAC entry.
func (t *Table) Each(f func(Key, Entry)) {
	for _, s := range t.shards {
		if s == nil {
			continue
		}
		for i, k := range s.keys {
			if k != 0 {
				f(k, s.vals[i])
			}
		}
	}
}

// Builder is the control goroutine's master copy of the forwarding
// database; Publish makes an immutable Table of it, rebuilding only the
// shards that changed since the last one.
type Builder struct {
	entries map[Key]Entry
	byShard [Shards]map[Key]struct{}
	dirty   [Shards]bool
	last    *Table
	vnis    []VNI
	byVLAN  *[4096]int16
	vteps   []VTEP
	vtepGen uint64
	seen    []atomic.Int64
	neigh   map[NeighKey]Neigh
}

// NewBuilder returns an empty database with seen slots for local MACs.
func NewBuilder(seenSlots int) *Builder {
	return &Builder{entries: map[Key]Entry{}, seen: make([]atomic.Int64, seenSlots), byVLAN: new([4096]int16)}
}

// SetVNIs replaces the VNIs; indexes in entries refer to this slice, which
// the caller does not change afterwards.
func (b *Builder) SetVNIs(v []VNI) {
	b.vnis = v
	b.byVLAN = new([4096]int16)
	for i, x := range v {
		if b.byVLAN[x.VLAN&4095] == 0 {
			b.byVLAN[x.VLAN&4095] = int16(i + 1)
		}
	}
}

// SetVTEPs replaces the VTEPs; indexes in entries and flood lists refer to
// this slice, which the caller does not change afterwards. An index that
// now names another address than before starts a new VTEPGen.
func (b *Builder) SetVTEPs(v []VTEP) {
	for i := range min(len(v), len(b.vteps)) {
		if v[i].Addr != b.vteps[i].Addr {
			b.vtepGen++
			break
		}
	}
	b.vteps = v
}

// SetNeigh replaces the addresses' MACs; the caller does not change m
// afterwards.
func (b *Builder) SetNeigh(m map[NeighKey]Neigh) { b.neigh = m }

// Seen returns the slots Local entries are stamped in.
func (b *Builder) Seen() []atomic.Int64 { return b.seen }

// Set puts an entry.
func (b *Builder) Set(k Key, e Entry) {
	if old, ok := b.entries[k]; ok && old == e {
		return
	}
	b.entries[k] = e
	s := k.hash() & (Shards - 1)
	if b.byShard[s] == nil {
		b.byShard[s] = map[Key]struct{}{}
	}
	b.byShard[s][k] = struct{}{}
	b.dirty[s] = true
}

// Get returns an entry.
func (b *Builder) Get(k Key) (Entry, bool) {
	e, ok := b.entries[k]
	return e, ok
}

// Delete removes an entry.
func (b *Builder) Delete(k Key) {
	if _, ok := b.entries[k]; !ok {
		return
	}
	delete(b.entries, k)
	s := k.hash() & (Shards - 1)
	delete(b.byShard[s], k)
	b.dirty[s] = true
}

// Len returns the number of entries.
func (b *Builder) Len() int { return len(b.entries) }

// Publish returns a Table of the current state.
func (b *Builder) Publish() *Table {
	t := &Table{VNIs: b.vnis, VTEPs: b.vteps, VTEPGen: b.vtepGen, Seen: b.seen, byVLAN: b.byVLAN, Neigh: b.neigh}
	for s := range t.shards {
		if !b.dirty[s] && b.last != nil {
			t.shards[s] = b.last.shards[s]
			continue
		}
		b.dirty[s] = false
		keys := b.byShard[s]
		if len(keys) == 0 {
			continue
		}
		size := 8
		for size < 2*len(keys) {
			size <<= 1
		}
		sh := &shard{keys: make([]Key, size), vals: make([]Entry, size), mask: uint64(size - 1)}
		for k := range keys {
			h := k.hash()
			i := (h >> 8) & sh.mask
			for sh.keys[i] != 0 {
				i = (i + 1) & sh.mask
			}
			sh.keys[i], sh.vals[i] = k, b.entries[k]
		}
		t.shards[s] = sh
	}
	b.last = t
	return t
}
