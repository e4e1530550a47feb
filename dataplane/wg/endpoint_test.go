package wg

import (
	"net/netip"
	"testing"
)

// wireguard-go's ClearSrc leaves the shared endpoint's source unused, and
// the peer's next datagram makes a new endpoint with it.
func TestEndpointsClearSrc(t *testing.T) {
	var c endpoints
	k := epKey{from: netip.MustParseAddrPort("[2001:db8::2]:51820"), to: netip.MustParseAddr("2001:db8::1")}
	e := c.get(k)
	if c.get(k) != e {
		t.Fatal("a second endpoint for one source")
	}
	e.ClearSrc()
	if f := c.get(k); f == e || f.noSrc.Load() || f.src != k.to {
		t.Errorf("after ClearSrc: the same endpoint %v, or one without the source", f == e)
	}
}

// Datagrams from ever new sources do not grow the endpoints beyond
// maxEndpoints.
func TestEndpointsBounded(t *testing.T) {
	var c endpoints
	to := netip.MustParseAddr("2001:db8::1")
	for i := 0; i < 3*maxEndpoints; i++ {
		k := epKey{from: netip.AddrPortFrom(netip.MustParseAddr("2001:db8::2"), uint16(i)), to: to}
		if e := c.get(k); e.dst != k.from || e.src != to {
			t.Fatalf("endpoint %v for %v", e.dst, k.from)
		}
		if len(c.m) > maxEndpoints {
			t.Fatalf("%d endpoints", len(c.m))
		}
	}
}
