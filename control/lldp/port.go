package lldp

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// packetIgnoreOutgoing is PACKET_IGNORE_OUTGOING (Linux 4.20): the socket
// does not see the frames sent on its interface, ours included.
const packetIgnoreOutgoing = 23

// A port is a packet socket for LLDP on one interface: it sends our
// LLDPDUs and receives the neighbours'. On a pwgate LAN port the XDP
// program passes LLDP to the kernel when LLDP is on (bpf.Load); on the
// uplink everything that is not pseudowire reaches the kernel anyway.
type port struct {
	name string
	mac  net.HardwareAddr
	f    *os.File // non-blocking, in Go's poller: Close wakes the reader
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func openPort(name string) (*port, error) {
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("lldp: %w", err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(htons(EtherType)))
	if err != nil {
		return nil, fmt.Errorf("lldp on %s: packet socket: %w", name, err)
	}
	fail := func(what string, err error) (*port, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("lldp on %s: %s: %w", name, what, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(EtherType), Ifindex: ifi.Index}); err != nil {
		return fail("bind", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, packetIgnoreOutgoing, 1); err != nil {
		return fail("PACKET_IGNORE_OUTGOING", err)
	}
	mreq := &unix.PacketMreq{Ifindex: int32(ifi.Index), Type: unix.PACKET_MR_MULTICAST, Alen: 6}
	copy(mreq.Address[:], Group[:])
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP, mreq); err != nil {
		return fail("join 01:80:c2:00:00:0e", err)
	}
	return &port{name: name, mac: ifi.HardwareAddr, f: os.NewFile(uintptr(fd), "lldp:"+name)}, nil
}

func (p *port) send(frame []byte) error {
	_, err := p.f.Write(frame)
	return err
}

// read reads one frame into buf; it fails once the port is closed.
func (p *port) read(buf []byte) (int, error) { return p.f.Read(buf) }

func (p *port) close() error { return p.f.Close() }
