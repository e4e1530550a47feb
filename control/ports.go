package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/pwgate/pwgate/bpf"
	"github.com/pwgate/pwgate/control/config"
	"github.com/pwgate/pwgate/control/nic"
	"github.com/pwgate/pwgate/control/uplink"
	"github.com/pwgate/pwgate/dataplane/xsk"
)

// ports are the data path's two ports as the kernel sees them: NIC
// settings, the XDP programs, their peer map, and the AF_XDP sockets the
// programs steer frames to.
type ports struct {
	objs *bpf.Objects
	pair *xsk.Pair
	// wg is WireGuard's socket on the uplink, over a UMEM of its own
	// (wireguard.bind: xdp; its DL is the uplink): the engine's uplink
	// is then the tunnel.
	wg    *xsk.Pair
	links []link.Link
	peers []bpf.PeerKey    // what the XDP peer map holds
	nic   []nic.Change     // settings changed, restored by close
	bound []*boundPort     // the interfaces the sockets are bound to: the LAN port, the uplink
	nl    *uplink.Resolver // look's netlink socket
}

// WaitPorts waits up to wait for c's ports (the pseudowire's, the anycast
// forwarder's) that are not there yet, and says so in the log. It returns
// false if ctx ends first. Whether they came is for the start's own check.
func WaitPorts(ctx context.Context, c *config.Config, wait time.Duration, log *slog.Logger) bool {
	var names []string
	if !c.AnycastOnly() {
		names = append(names, c.Downlink, c.Uplink)
	}
	if c.Anycast != nil && c.Anycast.Forward != nil {
		names = append(names, c.Anycast.Forward.Interfaces...)
	}
	start := time.Now()
	for said := ""; ; {
		missing := ""
		for _, n := range names {
			if _, err := net.InterfaceByName(n); err != nil {
				missing = n
				break
			}
		}
		switch {
		case missing == "":
			if said != "" {
				log.Info("the ports are there", "waited", time.Since(start).Round(time.Millisecond))
			}
			return true
		case time.Since(start) > wait:
			return true
		case missing != said:
			log.Warn("waiting for a port that is not there", "port", missing, "up_to", wait)
			said = missing
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// boundPort is an interface as the sockets were bound to it, and its link
// as last seen.
type boundPort struct {
	name  string
	index int
	down  time.Time     // when its link was seen down; zero while up
	downs atomic.Uint64 // times seen going down: ul_link_downs, dl_link_downs
}

// look looks at the bound ports (main goroutine, every second): a link
// that went down or came up is logged and counted. It returns an error
// naming the first port that is no longer there: removed (a device
// unplugged, its driver unbound) or replaced by another of the same name
// (a new index). Its socket is dead for good, and the kernel will never
// hand it another frame: only binding anew helps.
func (p *ports) look(log *slog.Logger) error {
	for _, b := range p.bound {
		l, err := p.nl.LinkByName(b.name)
		switch {
		case errors.Is(err, unix.ENODEV):
			return fmt.Errorf("port %s went away (%w): its AF_XDP socket is dead", b.name, err)
		case err != nil:
			// Netlink failing (out of buffers, say) is no sign the
			// port went: look again in a second.
			log.Warn("cannot look at a port", "port", b.name, "err", err)
			continue
		case l.Index != b.index:
			return fmt.Errorf("port %s was replaced (interface index %d, bound to %d): its AF_XDP socket is dead", b.name, l.Index, b.index)
		}
		switch {
		case !l.Up && b.down.IsZero():
			b.down = time.Now()
			b.downs.Add(1)
			log.Warn("port link down", "port", b.name)
		case l.Up && !b.down.IsZero():
			log.Info("port link up", "port", b.name, "was_down", time.Since(b.down).Round(100*time.Millisecond))
			b.down = time.Time{}
		}
	}
	return nil
}

// linkDowns returns how often the LAN port's and the uplink's links went
// down (any goroutine).
func (p *ports) linkDowns() (dl, ul uint64) {
	for i, b := range p.bound {
		if i == 0 {
			dl = b.downs.Load()
		} else {
			ul = b.downs.Load()
		}
	}
	return dl, ul
}

// openPorts prepares the interfaces for c: NIC settings and the LAN port's
// MTU first, then the XDP programs with c's peer, attached, and last the
// sockets, bound and registered in the programs' maps. The programs go on
// before the sockets are bound: a zero-copy driver resets its ring when a
// program is attached, and igb's socket bound before that never received
// (found on emulated igb); an MTU change with a program attached igb
// refuses. Frames that come between the attach and the registration are
// dropped and counted (dl_drop_no_socket, ul_drop_no_socket). On error
// everything is undone.
func openPorts(c *config.Config) (_ *ports, err error) {
	p := &ports{}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	// Inside WireGuard the engine's uplink is the tunnel. The uplink is the
	// kernel's (WireGuard's UDP through its socket: no program, no socket
	// of ours there) or, with wireguard.bind: xdp, WireGuard's own AF_XDP
	// socket's, to which the program sends WireGuard's port.
	ul, engineUplink, mode := c.Uplink, c.Uplink, bpfMode(c)
	var wgPort uint16
	if c.OverWireGuard() {
		ul, engineUplink, mode = "", "", bpf.ModeNone
		if c.WireGuard.BindXDP {
			ul, mode, wgPort = c.Uplink, bpf.ModeWireGuard, uint16(c.WireGuard.ListenPort)
		}
	}
	if p.nic, err = nic.Prepare(c.NICOffloads, c.Downlink, ul); err != nil {
		return nil, err
	}
	links, err := nic.PrepareLinks(c.Downlink, ul, c.FollowPeer != nil)
	if err != nil {
		return nil, err
	}
	p.nic = append(p.nic, links...)
	if c.DownlinkMTU != 0 {
		mtu, err := nic.SetMTU(c.Downlink, c.DownlinkMTU)
		if err != nil {
			return nil, err
		}
		p.nic = append(p.nic, mtu...)
	}
	if p.objs, err = bpf.Load(mode, c.LLDP != nil, wgPort); err != nil {
		return nil, err
	}
	if mode != bpf.ModeNone && mode != bpf.ModeWireGuard {
		if err = p.setPeers(peerKeys(c)); err != nil {
			return nil, err
		}
	}
	l, err := p.objs.AttachDownlink(c.Downlink, bpf.AttachMode(c.XDPMode))
	if err != nil {
		return nil, err
	}
	p.links = append(p.links, l)
	if ul != "" {
		if l, err = p.objs.AttachUplink(ul, bpf.AttachMode(c.XDPMode)); err != nil {
			return nil, err
		}
		p.links = append(p.links, l)
	}
	p.pair, err = xsk.Open(xsk.Config{Downlink: c.Downlink, Uplink: engineUplink, Bind: xsk.BindMode(c.XDPBind)})
	if errors.Is(err, xsk.ErrNoZeroCopy) {
		return nil, fmt.Errorf("xdp_bind: zerocopy: %w (drivers: %s %s, %s %s; xdp_bind: auto falls back to copy mode)",
			err, c.Downlink, nic.Driver(c.Downlink), c.Uplink, nic.Driver(c.Uplink))
	}
	if err != nil {
		return nil, err
	}
	if err = p.objs.RegisterDownlink(0, p.pair.DL.FD()); err != nil {
		return nil, err
	}
	if engineUplink != "" {
		if err = p.objs.RegisterUplink(0, p.pair.UL.FD()); err != nil {
			return nil, err
		}
	}
	if wgPort != 0 {
		// Half the chunks for each direction, each half the size of a
		// ring: the fill ring always takes back what was received.
		p.wg, err = xsk.Open(xsk.Config{Downlink: c.Uplink, Bind: xsk.BindMode(c.XDPBind), Chunks: 2 * wgRing, RingSize: wgRing})
		if errors.Is(err, xsk.ErrNoZeroCopy) {
			return nil, fmt.Errorf("xdp_bind: zerocopy: %w (driver: %s %s; xdp_bind: auto falls back to copy mode)", err, c.Uplink, nic.Driver(c.Uplink))
		}
		if err != nil {
			return nil, fmt.Errorf("wireguard.bind: xdp: %w", err)
		}
		if err = p.objs.RegisterUplink(0, p.wg.DL.FD()); err != nil {
			return nil, err
		}
	}
	for _, name := range []string{c.Downlink, ul} {
		if name == "" {
			continue
		}
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return nil, err
		}
		p.bound = append(p.bound, &boundPort{name: name, index: ifi.Index})
	}
	// look asks every second, all day: on a socket of its own, without
	// allocating.
	if p.nl, err = uplink.NewResolver(); err != nil {
		return nil, err
	}
	return p, nil
}

// wgRing is the ring size of WireGuard's socket (wireguard.bind: xdp).
const wgRing = 512

func bpfMode(c *config.Config) bpf.Mode {
	switch {
	case c.IsVXLAN():
		return bpf.ModeVXLAN
	case c.Mode == config.ModeIP6:
		return bpf.ModeIP6
	}
	return bpf.ModeEth
}

// peerKeys returns the XDP peer map's keys for c: in vxlan mode none, the
// VTEPs' controller sets them.
func peerKeys(c *config.Config) []bpf.PeerKey {
	switch {
	case c.IsVXLAN():
		return nil
	case c.Mode == config.ModeIP6:
		return []bpf.PeerKey{bpf.AddrPeer(c.PeerAddr)}
	}
	return []bpf.PeerKey{bpf.MACPeer(c.PeerMAC)}
}

// setPeers makes next the XDP program's peers; on error the old ones stay.
func (p *ports) setPeers(next []bpf.PeerKey) error {
	if err := p.objs.ReplacePeers(p.peers, next); err != nil {
		return err
	}
	p.peers = next
	return nil
}

// close detaches the programs, closes the sockets and restores the NIC
// settings. No data path goroutine may be running.
func (p *ports) close() error {
	var errs []error
	for _, l := range p.links {
		errs = append(errs, l.Close())
	}
	p.links = nil
	if p.pair != nil {
		errs = append(errs, p.pair.Close())
		p.pair = nil
	}
	if p.wg != nil {
		errs = append(errs, p.wg.Close())
		p.wg = nil
	}
	if p.objs != nil {
		errs = append(errs, p.objs.Close())
		p.objs = nil
	}
	errs = append(errs, nic.Restore(p.nic))
	p.nic = nil
	if p.nl != nil {
		p.nl.Close()
		p.nl = nil
	}
	return errors.Join(errs...)
}
