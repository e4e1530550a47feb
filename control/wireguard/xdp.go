package wireguard

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"

	"github.com/pwgate/pwgate/control/uplink"
	"github.com/pwgate/pwgate/dataplane/wg"
)

// xdpResolver finds the XDP bind's routes as the kernel's socket would
// take them: the route that leaves by the uplink, its source address and
// the next hop's MAC from the neighbour table; a next hop not resolved yet
// is prodded (an ICMP echo request makes the kernel resolve it) and the
// send fails until it is. The bind's route goroutine calls it, never a
// sender.
type xdpResolver struct {
	uplink netlink.Link
	mu     sync.Mutex // the prober: the bind's senders, and close
	prober uplink.Prober
}

func (x *xdpResolver) resolve(dst netip.Addr) (wg.Route, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	// The link anew: its MAC may have changed since the start.
	l, err := netlink.LinkByIndex(x.uplink.Attrs().Index)
	if err != nil {
		return wg.Route{}, fmt.Errorf("uplink %s: %w", x.uplink.Attrs().Name, err)
	}
	h, why := uplink.ResolveNextHop(dst, l, &x.prober)
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
	x.prober.Close()
}
