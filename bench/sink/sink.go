// Package sink is the benchmark's receiving end: an XDP program that
// counts the test traffic reaching an interface, by kind, and drops it.
package sink

import (
	"fmt"
	"net"

	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// Kind is a kind of test traffic.
type Kind int

// Kinds the sink tells apart (sink.c's enum).
const (
	Plain    Kind = iota // test frames, EtherType 0x88b5
	PWEth                // pseudowire in Ethernet
	PWIP6                // pseudowire in IPv6
	VXLAN                // VXLAN over IPv6
	WG                   // WireGuard transport messages over IPv6 (handshakes are passed to the kernel)
	IP4UDP               // IPv4 UDP to port 9 (discard): the anycast forwarder's test traffic
	ARPReply             // ARP replies (EVPN's ARP suppression answering the generator)
	numKinds
)

// Count is what arrived of one kind.
type Count struct {
	Packets, Frames, Bytes uint64
}

// Sink is the program attached to one interface.
type Sink struct {
	objs sinkObjects
	l    link.Link
}

// Attach loads the program and attaches it, natively, to ifname (in the
// calling thread's network namespace).
func Attach(ifname string) (*Sink, error) {
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, err
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	s := new(Sink)
	if err := loadSinkObjects(&s.objs, nil); err != nil {
		return nil, fmt.Errorf("load sink: %w", err)
	}
	s.l, err = link.AttachXDP(link.XDPOptions{Program: s.objs.Sink, Interface: ifi.Index, Flags: link.XDPDriverMode})
	if err != nil {
		s.objs.Close()
		return nil, fmt.Errorf("attach sink to %s: %w", ifname, err)
	}
	return s, nil
}

// Read returns what has arrived of kind k so far.
func (s *Sink) Read(k Kind) (Count, error) {
	var c Count
	for i, dst := range []*uint64{&c.Packets, &c.Frames, &c.Bytes} {
		var perCPU []uint64
		if err := s.objs.Counts.Lookup(uint32(int(k)*3+i), &perCPU); err != nil {
			return c, err
		}
		for _, v := range perCPU {
			*dst += v
		}
	}
	return c, nil
}

// Close detaches the program.
func (s *Sink) Close() error {
	s.l.Close()
	return s.objs.Close()
}
