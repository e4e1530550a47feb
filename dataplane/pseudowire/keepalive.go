package pseudowire

import (
	"encoding/binary"
	"time"

	"github.com/pwgate/pwgate/dataplane/frame"
)

// Keepalives are pwgate's own addition to the wire format (WIRE.md,
// "Keepalives"): sent only when configured, so that a peer running the
// reference never sees one. A keepalive is a packet with the usual outer
// headers and the control word CWKeepalive, the second-half bit without
// the fragment bit, which the reference never sends. Its body is shaped as
// an Ethernet frame to a reserved group address that bridges do not
// forward, with the IEEE's local experimental EtherType, so that a
// receiver that looked only at the fragment bit and delivered it to its
// LAN would deliver a frame everyone ignores.
const (
	CWKeepalive ControlWord = 0x4001
	// KeepaliveLen is the body's length; a longer body is accepted and
	// its extra bytes are ignored (room for later versions).
	KeepaliveLen       = 48
	keepaliveEtherType = 0x88b5
	keepaliveVersion   = 1
	keepaliveHearing   = 1 // flags: the sender hears us
)

var (
	keepaliveDst = frame.MAC{0x01, 0x80, 0xc2, 0x00, 0x00, 0x0f}
	keepaliveSrc = frame.MAC{'p', 'w', 'g', 'a', 't', 'e'}
)

// Keepalive is the body of a keepalive. Times are the sender's monotonic
// clock in nanoseconds; the receiver measures the round trip as its own
// clock now minus Echo (its own Sent, echoed) minus Held.
type Keepalive struct {
	Hearing  bool          // the sender has heard from us within its timeout
	Interval time.Duration // how often the sender sends keepalives (to the microsecond)
	Seq      uint32        // counts keepalives; a gap is a loss
	Sent     int64         // when the sender sent this
	Echo     int64         // the last Sent the sender received from us; 0 if none
	Held     int64         // how long the sender held Echo before sending this
}

// Put writes k into b[:KeepaliveLen].
//
//	 0  destination 01:80:c2:00:00:0f   6  source "pwgate"   12  EtherType 0x88b5
//	14  version 1   15  flags (bit 0: hearing)   16  interval, µs (u32)
//	20  sequence (u32)   24  sent (u64)   32  echo (u64)   40  held (u64)
//
// All fields are big-endian.
func (k *Keepalive) Put(b []byte) {
	b = b[:KeepaliveLen]
	eth := frame.Ethernet(b)
	eth.SetDst(keepaliveDst)
	eth.SetSrc(keepaliveSrc)
	eth.SetEtherType(keepaliveEtherType)
	b[14], b[15] = keepaliveVersion, 0
	if k.Hearing {
		b[15] = keepaliveHearing
	}
	binary.BigEndian.PutUint32(b[16:], uint32(min(k.Interval.Microseconds(), 1<<32-1)))
	binary.BigEndian.PutUint32(b[20:], k.Seq)
	binary.BigEndian.PutUint64(b[24:], uint64(k.Sent))
	binary.BigEndian.PutUint64(b[32:], uint64(k.Echo))
	binary.BigEndian.PutUint64(b[40:], uint64(k.Held))
}

// ParseKeepalive reads a keepalive's body. It refuses a body that is too
// short, not shaped as Put writes it, of another version, or whose times
// are negative.
func ParseKeepalive(b []byte, k *Keepalive) bool {
	if len(b) < KeepaliveLen {
		return false
	}
	eth := frame.Ethernet(b)
	if eth.Dst() != keepaliveDst || eth.Src() != keepaliveSrc || eth.EtherType() != keepaliveEtherType || b[14] != keepaliveVersion {
		return false
	}
	*k = Keepalive{
		Hearing:  b[15]&keepaliveHearing != 0,
		Interval: time.Duration(binary.BigEndian.Uint32(b[16:])) * time.Microsecond,
		Seq:      binary.BigEndian.Uint32(b[20:]),
		Sent:     int64(binary.BigEndian.Uint64(b[24:])),
		Echo:     int64(binary.BigEndian.Uint64(b[32:])),
		Held:     int64(binary.BigEndian.Uint64(b[40:])),
	}
	return k.Sent >= 0 && k.Echo >= 0 && k.Held >= 0
}

// Keepalive writes a keepalive packet carrying k at the start of buf and
// returns its length.
func (e *Encapsulator) Keepalive(buf []byte, k *Keepalive) (int, error) {
	n := e.ov + KeepaliveLen
	if len(buf) < n {
		return 0, ErrShortBuffer
	}
	e.header(buf, KeepaliveLen, CWKeepalive)
	k.Put(buf[e.ov:])
	return n, nil
}
