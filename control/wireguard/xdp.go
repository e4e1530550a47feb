package wireguard

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/pwgate/pwgate/control/uplink"
	"github.com/pwgate/pwgate/dataplane/wg"
)

// xdpResolver finds the XDP bind's routes as the kernel's socket would
// take them: the route that leaves by the uplink, its source address and
// the next hop's MAC from the neighbour table; a next hop not resolved yet
// is prodded (an ICMP echo request makes the kernel resolve it) and the
// send fails until it is. The bind's route goroutine calls it, never a
// sender, once a second for each destination in use: the Resolver keeps
// its netlink socket and allocates nothing for a route found.
type xdpResolver struct {
	ifindex int
	mu      sync.Mutex // the bind's route goroutine, and close
	r       *uplink.Resolver
}

func newXDPResolver(ifindex int) (*xdpResolver, error) {
	r, err := uplink.NewResolver()
	if err != nil {
		return nil, err
	}
	return &xdpResolver{ifindex: ifindex, r: r}, nil
}

func (x *xdpResolver) resolve(dst netip.Addr) (wg.Route, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.r == nil {
		return wg.Route{}, errors.New("closed")
	}
	h, why := x.r.NextHop(dst, x.ifindex)
	switch {
	case why != "":
		return wg.Route{}, errors.New(why)
	case !h.Src.IsValid():
		return wg.Route{}, fmt.Errorf("the route to %s has no source address", dst)
	}
	return wg.Route{Src: h.Src, SrcMAC: h.SrcMAC, DstMAC: h.MAC}, nil
}

func (x *xdpResolver) close() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.r != nil {
		x.r.Close()
		x.r = nil
	}
}
