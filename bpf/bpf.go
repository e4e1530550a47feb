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

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Modes written into the configuration map (pwgate.c's MODE_*).
const (
	ModeEth = 1
	ModeIP6 = 2
)

// Counter indexes of pw_counters (pwgate.c's enum).
const (
	ULToSocket = iota // pseudowire frames from the peer, to the socket
	ULStranger        // pseudowire frames from anyone else, dropped
	ULPass            // everything else, passed to the kernel
	ULNoSocket        // peer frames dropped: no socket on the queue
	DLToSocket        // downlink frames to the socket
	DLNoSocket        // downlink frames dropped: no socket on the queue
	NumCounters
)

// Config is what the uplink program matches on.
type Config struct {
	Mode     uint8
	PeerMAC  [6]byte    // eth mode
	PeerAddr netip.Addr // ip6 mode
}

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

// Load loads the programs and maps into the kernel.
func Load() (*Objects, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("raise memlock limit: %w", err)
	}
	o := new(Objects)
	if err := loadPwgateObjects(&o.objs, nil); err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return nil, fmt.Errorf("load xdp programs: %+v", verr)
		}
		return nil, fmt.Errorf("load xdp programs: %w", err)
	}
	return o, nil
}

// Close releases the programs and maps. Attached links keep the programs
// alive until they are closed themselves.
func (o *Objects) Close() error { return o.objs.Close() }

// SetConfig writes the uplink program's configuration.
func (o *Objects) SetConfig(c Config) error {
	v := pwgateConfig{Mode: c.Mode, PeerMac: c.PeerMAC}
	if c.PeerAddr.IsValid() {
		v.PeerAddr = c.PeerAddr.As16()
	}
	if err := o.objs.PwConfig.Update(uint32(0), &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("write xdp config: %w", err)
	}
	return nil
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
	var perCPU []uint64
	for i := range out {
		if err := o.objs.PwCounters.Lookup(uint32(i), &perCPU); err != nil {
			return out, fmt.Errorf("read xdp counter %d: %w", i, err)
		}
		for _, v := range perCPU {
			out[i] += v
		}
	}
	return out, nil
}
