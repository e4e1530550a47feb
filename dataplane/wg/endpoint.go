package wg

import (
	"net/netip"
	"strconv"
	"sync/atomic"
)

// maxEndpoints bounds the endpoints a receive side remembers (one per
// source address and port heard, and our address it reached): datagrams
// from ever new sources make new ones rather than growing the map.
const maxEndpoints = 1024

// endpoint is a peer's address and port, and our address (and interface)
// its datagrams reached; both binds make them. Endpoints are shared: only
// noSrc changes, when wireguard-go clears the source (a handshake
// unanswered, a new fwmark); the peer's next datagram then makes a new
// endpoint.
type endpoint struct {
	dst     netip.AddrPort // unmapped; a link-local one carries its zone
	scope   uint32         // dst's interface, for a link-local dst
	src     netip.Addr     // zero: the kernel picks
	ifindex int32          // the interface the datagram came in on; 0: unknown
	noSrc   atomic.Bool    // ClearSrc was called: the kernel picks
}

func (e *endpoint) ClearSrc()           { e.noSrc.Store(true) }
func (e *endpoint) SrcToString() string { return e.src.String() }
func (e *endpoint) DstToString() string { return e.dst.String() }
func (e *endpoint) DstToBytes() []byte  { b, _ := e.dst.MarshalBinary(); return b }
func (e *endpoint) DstIP() netip.Addr   { return e.dst.Addr() }
func (e *endpoint) SrcIP() netip.Addr   { return e.src }
func (e *endpoint) SrcIfidx() int32     { return e.ifindex }

// epKey is what makes an endpoint: the peer's address and port (and
// scope), and where its datagram reached us.
type epKey struct {
	from    netip.AddrPort
	scope   uint32
	to      netip.Addr
	ifindex int32
}

// endpoints is a receive side's endpoints (one goroutine's): the same one
// for a key each time, so that no datagram allocates.
type endpoints struct {
	m       map[epKey]*endpoint
	last    *endpoint // a peer sends runs of datagrams
	lastKey epKey
}

// get returns k's endpoint; a cleared one is made anew, and when the map
// is full it is emptied rather than grown.
func (c *endpoints) get(k epKey) *endpoint {
	if c.last != nil && c.lastKey == k && !c.last.noSrc.Load() {
		return c.last
	}
	ep, ok := c.m[k]
	if !ok || ep.noSrc.Load() {
		if c.m == nil {
			c.m = map[epKey]*endpoint{}
		} else if len(c.m) >= maxEndpoints {
			clear(c.m)
		}
		ep = &endpoint{dst: k.from, scope: k.scope, src: k.to, ifindex: k.ifindex}
		if k.scope != 0 {
			ep.dst = netip.AddrPortFrom(k.from.Addr().WithZone(strconv.Itoa(int(k.scope))), k.from.Port())
		}
		c.m[k] = ep
	}
	c.last, c.lastKey = ep, k
	return ep
}
