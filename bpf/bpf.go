// Package bpf holds pwgated's XDP programs (pwgate.c, compiled with bpf2go
// into the committed pwgate_bpfel.go and .o), loads them, attaches them as
// bpf links, and reads and writes their maps.
//
// A bpf link is tied to its file descriptor: when the process exits, for
// whatever reason, the kernel detaches the program. Nothing is pinned.
package bpf

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Mode is what the uplink program looks for, fixed when it is loaded
// (pwgate.c's pw_mode).
type Mode uint32

// Modes. With ModeNone the uplink program passes every frame to the
// kernel.
const (
	ModeNone Mode = 0
	ModeEth  Mode = 1 // EtherType 0x96fc from a peer's MAC
	ModeIP6  Mode = 2 // IPv6 next header 252 from a peer's address
	// ModeVXLAN: UDP to port 4789 over IPv4 or IPv6 from a VTEP's address
	// (AddrPeer: IPv4 addresses are stored IPv4-mapped).
	ModeVXLAN Mode = 3
	// ModeWireGuard: UDP to WireGuard's port over IPv4 or IPv6, from
	// anyone (the WireGuard XDP bind's socket).
	ModeWireGuard Mode = 4
)

// Counter indexes of pw_counters (pwgate.c's enum).
const (
	ULToSocket   = iota // pseudowire frames from a peer, to the socket
	ULStranger          // pseudowire frames from anyone else, dropped
	ULPass              // everything else, passed to the kernel
	ULNoSocket          // peer frames dropped: no socket on the queue
	DLToSocket          // downlink frames to the socket
	DLNoSocket          // downlink frames dropped: no socket on the queue
	ULExtHeaders        // pseudowire packets behind IPv6 extension headers, dropped
	NumCounters
)

// PeerKey is a key of the peer map: an IPv6 address, or a MAC in the first
// six bytes.
type PeerKey [16]byte

// MACPeer returns the key of a peer known by its MAC (eth mode).
func MACPeer(m [6]byte) PeerKey {
	var k PeerKey
	copy(k[:], m[:])
	return k
}

// AddrPeer returns the key of a peer known by its IP address; an IPv4
// address is stored IPv4-mapped.
func AddrPeer(a netip.Addr) PeerKey { return PeerKey(a.As16()) }

// AttachMode selects native (driver) or generic (skb) XDP.
type AttachMode int

// Attach modes. Native is the only fast one; generic works on any
// interface and exists for interfaces whose driver has no XDP support.
const (
	Native AttachMode = iota
	Generic
)

// Objects are the loaded programs and maps.
type Objects struct {
	objs pwgateObjects
}

// Load loads the programs and maps into the kernel, with the uplink
// program fixed to mode m (wgPort: WireGuard's UDP port, for
// ModeWireGuard) and, with passLLDP, the downlink program passing LLDP
// frames to the kernel instead of the socket.
func Load(m Mode, passLLDP bool, wgPort uint16) (*Objects, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("raise memlock limit: %w", err)
	}
	spec, err := loadPwgate()
	if err != nil {
		return nil, fmt.Errorf("load xdp programs: %w", err)
	}
	if err := spec.Variables["pw_mode"].Set(uint32(m)); err != nil {
		return nil, fmt.Errorf("set xdp mode: %w", err)
	}
	if err := spec.Variables["wg_port"].Set(wgPort); err != nil {
		return nil, fmt.Errorf("set xdp wireguard port: %w", err)
	}
	if passLLDP {
		if err := spec.Variables["dl_lldp"].Set(uint32(1)); err != nil {
			return nil, fmt.Errorf("set xdp lldp: %w", err)
		}
	}
	o := new(Objects)
	if err := loadAndAssign(spec, &o.objs, "xdp programs"); err != nil {
		return nil, err
	}
	return o, nil
}

// loadAndAssign loads spec into objs; a verifier's refusal comes with its
// whole log.
func loadAndAssign(spec *ebpf.CollectionSpec, objs any, what string) error {
	if err := spec.LoadAndAssign(objs, nil); err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return fmt.Errorf("load %s: %+v", what, verr)
		}
		return fmt.Errorf("load %s: %w", what, err)
	}
	return nil
}

// sumCounters reads a per-CPU array of uint64 counters, each summed over
// the CPUs.
func sumCounters(m *ebpf.Map, out []uint64) error {
	var perCPU []uint64
	for i := range out {
		if err := m.Lookup(uint32(i), &perCPU); err != nil {
			return fmt.Errorf("read xdp counter %d: %w", i, err)
		}
		out[i] = 0
		for _, v := range perCPU {
			out[i] += v
		}
	}
	return nil
}

// Close releases the programs and maps. Attached links keep the programs
// alive until they are closed themselves.
func (o *Objects) Close() error { return o.objs.Close() }

// MaxPeers is how many peers (VTEPs) the uplink program's peer map holds
// (MAX_PEERS in pwgate.c).
const MaxPeers = 1024

// ReplacePeers makes next the set of peers: it adds every key of next,
// then deletes the keys of prev that are not in next, so that a peer in
// both is never missing. When the map is too full for that (a full set of
// VTEPs with one replaced), the keys that go are deleted first. On error
// the map holds prev again.
func (o *Objects) ReplacePeers(prev, next []PeerKey) error {
	gone := slices.DeleteFunc(slices.Clone(prev), func(k PeerKey) bool { return slices.Contains(next, k) })
	add := slices.DeleteFunc(slices.Clone(next), func(k PeerKey) bool { return slices.Contains(prev, k) })
	added, err := o.addPeers(add)
	if err != nil && len(gone) > 0 {
		if err = o.deletePeers(gone); err == nil {
			var more int
			more, err = o.addPeers(add[added:])
			added += more
		}
		if err != nil {
			o.deletePeers(add[:added])
			o.addPeers(gone)
			return err
		}
		return nil
	}
	if err != nil {
		o.deletePeers(add[:added])
		return err
	}
	return o.deletePeers(gone)
}

// addPeers adds keys until one fails, and returns how many it added.
func (o *Objects) addPeers(keys []PeerKey) (int, error) {
	for i, k := range keys {
		if err := o.objs.PwPeers.Update(k, uint32(1), ebpf.UpdateAny); err != nil {
			return i, fmt.Errorf("add xdp peer: %w", err)
		}
	}
	return len(keys), nil
}

func (o *Objects) deletePeers(keys []PeerKey) error {
	for _, k := range keys {
		if err := o.objs.PwPeers.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("remove xdp peer: %w", err)
		}
	}
	return nil
}

// Peers returns the keys of the peer map.
func (o *Objects) Peers() ([]PeerKey, error) {
	var out []PeerKey
	var k PeerKey
	var v uint32
	it := o.objs.PwPeers.Iterate()
	for it.Next(&k, &v) {
		out = append(out, k)
	}
	return out, it.Err()
}

// AttachDownlink attaches the downlink program to ifname.
func (o *Objects) AttachDownlink(ifname string, m AttachMode) (link.Link, error) {
	return attach(o.objs.PwgateDownlink, ifname, m)
}

// AttachUplink attaches the uplink program to ifname.
func (o *Objects) AttachUplink(ifname string, m AttachMode) (link.Link, error) {
	return attach(o.objs.PwgateUplink, ifname, m)
}

func attach(p *ebpf.Program, ifname string, m AttachMode) (link.Link, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", ifname, err)
	}
	flags := link.XDPDriverMode
	if m == Generic {
		flags = link.XDPGenericMode
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: p, Interface: ifi.Index, Flags: flags})
	switch {
	case err == nil:
		return l, nil
	case m == Native && (errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL)):
		return nil, fmt.Errorf("interface %s has no native XDP support (xdp_mode: generic forces the slow generic mode): %w", ifname, err)
	case errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST):
		return nil, fmt.Errorf("interface %s already has an XDP program attached (is another pwgated running?): %w", ifname, err)
	}
	return nil, fmt.Errorf("attach xdp to %s: %w", ifname, err)
}

// RegisterDownlink makes the downlink program send queue's frames to the
// AF_XDP socket fd.
func (o *Objects) RegisterDownlink(queue, fd int) error {
	return register(o.objs.DlSockets, queue, fd)
}

// RegisterUplink makes the uplink program send queue's peer frames to the
// AF_XDP socket fd.
func (o *Objects) RegisterUplink(queue, fd int) error {
	return register(o.objs.UlSockets, queue, fd)
}

func register(m *ebpf.Map, queue, fd int) error {
	if err := m.Update(uint32(queue), uint32(fd), ebpf.UpdateAny); err != nil {
		return fmt.Errorf("register socket for queue %d: %w", queue, err)
	}
	return nil
}

// Counters returns the programs' counters summed over CPUs.
func (o *Objects) Counters() ([NumCounters]uint64, error) {
	var out [NumCounters]uint64
	return out, sumCounters(o.objs.PwCounters, out[:])
}
