package wg

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"sync/atomic"
	"syscall"

	"golang.zx2c4.com/wireguard/conn"
)

// WireGuard message types and sizes (the protocol's, as wireguard-go's
// device package has them).
const (
	msgInitiation    = 1
	msgResponse      = 2
	msgCookieReply   = 3
	msgTransport     = 4
	sizeInitiation   = 148
	sizeResponse     = 92
	sizeCookieReply  = 64
	minSizeTransport = 32 // header and authentication tag: a keepalive
)

// validMessage reports whether p is shaped like a WireGuard message: a
// known type and that type's length. It is the check wireguard-go makes
// before it looks further, so nothing valid is refused; what fails it is
// counted and dropped here rather than silently inside wireguard-go.
func validMessage(p []byte) bool {
	if len(p) < 4 {
		return false
	}
	switch binary.LittleEndian.Uint32(p) {
	case msgInitiation:
		return len(p) == sizeInitiation
	case msgResponse:
		return len(p) == sizeResponse
	case msgCookieReply:
		return len(p) == sizeCookieReply
	case msgTransport:
		return len(p) >= minSizeTransport
	}
	return false
}

// bindCounters are the UDP side's counts; several goroutines add to them,
// once per batch.
type bindCounters struct {
	rx, tx, invalid, looped atomic.Uint64
	// unreachable: a send failed for want of a route or a source address
	// (the uplink not configured yet), since Device.RetryUnreachable last
	// looked.
	unreachable atomic.Bool
}

// overlay is what a datagram must not come from: an address inside the
// tunnel's overlay, or the host TUN device. Such a datagram is WireGuard's
// own UDP gone round through the tunnel (a peer that picked its overlay
// address as source while its uplink had none, say); accepted, it would
// move the peer's endpoint into the overlay and make every packet loop.
type overlay struct {
	prefixes []netip.Prefix
	ifindex  int32 // the host TUN device; 0: unknown
}

func (o *overlay) contains(ep conn.Endpoint) bool {
	if o == nil {
		return false
	}
	if o.ifindex != 0 {
		if e, ok := ep.(interface{ SrcIfidx() int32 }); ok && e.SrcIfidx() == o.ifindex {
			return true
		}
	}
	a := ep.DstIP().Unmap()
	for _, p := range o.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// countingBind is WireGuard's UDP (KernelBind or XDPBind) with counts;
// datagrams that are not WireGuard messages, or that come from inside the
// overlay, are dropped and counted.
type countingBind struct {
	conn.Bind
	c       *bindCounters
	overlay atomic.Pointer[overlay]
	ready   chan struct{} // closed once NewDevice has set up the device's buffers; nil: no wait
}

// BatchSize implements conn.Bind. wireguard-go's TUN reader asks it before
// it takes its first buffers, so it waits for ready.
func (b *countingBind) BatchSize() int {
	if b.ready != nil {
		<-b.ready
	}
	return b.Bind.BatchSize()
}

// Open implements conn.Bind.
func (b *countingBind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	fns, actual, err := b.Bind.Open(port)
	if err != nil {
		return nil, 0, err
	}
	out := make([]conn.ReceiveFunc, len(fns))
	for i, fn := range fns {
		out[i] = func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
			n, err := fn(packets, sizes, eps)
			bad, looped := 0, 0
			o := b.overlay.Load()
			for j := 0; j < n; j++ {
				switch {
				case !validMessage(packets[j][:sizes[j]]):
					sizes[j] = 0 // wireguard-go skips it
					bad++
				case o.contains(eps[j]):
					sizes[j] = 0
					looped++
				}
			}
			b.c.rx.Add(uint64(n))
			if bad > 0 {
				b.c.invalid.Add(uint64(bad))
			}
			if looped > 0 {
				b.c.looped.Add(uint64(looped))
			}
			return n, err
		}
	}
	return out, actual, nil
}

// Send implements conn.Bind.
func (b *countingBind) Send(bufs [][]byte, ep conn.Endpoint) error {
	err := b.Bind.Send(bufs, ep)
	switch {
	case err == nil:
		b.c.tx.Add(uint64(len(bufs)))
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.EADDRNOTAVAIL):
		b.c.unreachable.Store(true)
	}
	return err
}
