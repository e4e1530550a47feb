// Package nic prepares pwgated's ports and restores them at exit: links
// up and promiscuous, and the NIC settings that would change frames
// before XDP sees them turned off (or, by policy, refused or left), each
// change recorded so that Restore undoes exactly it.
package nic

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"unsafe"

	"github.com/pwgate/pwgate/control/config"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// NIC settings that change or drop frames before XDP sees them. With them
// on, the LAN's frames would not cross as they were sent: a NIC with
// rx-vlan offload (igb's default) strips VLAN tags into metadata that XDP
// does not see, a VLAN filter drops tagged frames of VLANs nobody
// configured on the port, LRO and hardware GRO merge frames, rx-fcs keeps
// the FCS on, rx-all delivers frames with a bad FCS. Checksum offloads only
// report and stay on; software GRO runs after XDP and stays on (it helps
// the kernel's own traffic on the uplink).
var (
	dlFeatures = []string{"rx-vlan-hw-parse", "rx-vlan-stag-hw-parse", "rx-vlan-filter", "rx-vlan-stag-filter",
		"rx-lro", "rx-gro-hw", "rx-fcs", "rx-all"}
	ulFeatures = []string{"rx-lro", "rx-gro-hw", "rx-fcs", "rx-all"}
)

// Change is one setting pwgated changed, to be restored: the port
// brought "up", made "promisc", its "mtu" set (was the MTU before), or an
// offload (any other feature) turned off.
type Change struct {
	ifname, feature string
	now, was        int // the MTU set, and the one before
}

func (c Change) String() string {
	switch c.feature {
	case "up":
		return c.ifname + " up"
	case "promisc":
		return c.ifname + " promisc on"
	case "mtu":
		return fmt.Sprintf("%s mtu %d (was %d)", c.ifname, c.now, c.was)
	}
	return c.ifname + " " + c.feature + " off"
}

// SetMTU sets ifname's MTU to mtu, unless it has it already, and returns
// the change to restore. A driver may refuse an MTU while XDP is attached
// (igb above 1604): openPorts sets it first.
func SetMTU(ifname string, mtu int) ([]Change, error) {
	l, err := netlink.LinkByName(ifname)
	if err != nil {
		return nil, err
	}
	was := l.Attrs().MTU
	if was == mtu {
		return nil, nil
	}
	if err := netlink.LinkSetMTU(l, mtu); err != nil {
		return nil, fmt.Errorf("set %s's MTU to %d (downlink.mtu; driver %s): %w", ifname, mtu, Driver(ifname), err)
	}
	return []Change{{ifname: ifname, feature: "mtu", now: mtu, was: was}}, nil
}

// PrepareLinks brings the ports up and makes the downlink promiscuous: it
// takes the LAN's frames for every MAC, as a bridge port does (a NIC's
// unicast filter, igb's or virtio-net's, would drop the frames for the far
// site's hosts; a veth has none, so the lab alone does not show it). It
// returns what it changed, to be restored; on error nothing is left
// changed. The downlink brought up is not among the changes: it stays up
// after pwgated, since a LAN port found down may be follow_peer's doing
// (pwgated --stopped after a crash), and a LAN port left down would cut
// the LAN off for good. With followPeer it is left as it is:
// downlink.follow_peer owns its state, and brings it up once the peer is
// heard.
func PrepareLinks(downlink, uplink string, followPeer bool) ([]Change, error) {
	var changes []Change
	for _, p := range []struct {
		ifname  string
		promisc bool
		keep    bool // leave it down if it is
		restore bool // put it down again at exit if it was down
	}{{downlink, true, followPeer, false}, {uplink, false, false, true}} {
		if p.ifname == "" {
			continue
		}
		l, err := netlink.LinkByName(p.ifname)
		if err == nil && p.promisc && l.Attrs().Promisc == 0 {
			if err = netlink.SetPromiscOn(l); err == nil {
				changes = append(changes, Change{ifname: p.ifname, feature: "promisc"})
			}
		}
		if err == nil && !p.keep && l.Attrs().Flags&net.FlagUp == 0 {
			if err = netlink.LinkSetUp(l); err == nil && p.restore {
				changes = append(changes, Change{ifname: p.ifname, feature: "up"})
			}
		}
		if err != nil {
			Restore(changes)
			return nil, fmt.Errorf("prepare %s: %w", p.ifname, err)
		}
	}
	return changes, nil
}

// Prepare applies policy to the frame-changing settings of the
// downlink and uplink and returns what it changed. On error nothing is
// left changed.
func Prepare(policy config.NICPolicy, downlink, uplink string) ([]Change, error) {
	if policy == config.NICIgnore {
		return nil, nil
	}
	var changes []Change
	ports := []struct {
		ifname string
		names  []string
	}{{downlink, dlFeatures}}
	if uplink != "" {
		ports = append(ports, struct {
			ifname string
			names  []string
		}{uplink, ulFeatures})
	}
	for i, p := range ports {
		f, err := readFeatures(p.ifname)
		if err != nil {
			Restore(changes)
			return nil, fmt.Errorf("read %s's offload settings: %w", p.ifname, err)
		}
		drv := Driver(p.ifname)
		var off []string
		for _, name := range p.names {
			on, fixed, ok := f.state(name)
			if !ok {
				continue
			}
			turnOff, err := decide(policy, p.ifname, drv, name, i == 0, on, fixed)
			if err != nil {
				Restore(changes)
				return nil, err
			}
			if turnOff {
				off = append(off, name)
			}
		}
		if len(off) == 0 {
			continue
		}
		if err := f.set(p.ifname, off, false); err != nil {
			Restore(changes)
			return nil, fmt.Errorf("turn off %s on %s: %w", strings.Join(off, ", "), p.ifname, err)
		}
		for _, name := range off {
			changes = append(changes, Change{ifname: p.ifname, feature: name})
		}
	}
	return changes, nil
}

// promiscNoVLANFilter are the drivers that stop filtering VLANs while the
// port is promiscuous, though they report rx-vlan-filter on and fixed:
// igb (the I211's driver) does so in igb_set_rx_mode. PrepareLinks makes
// the downlink promiscuous.
var promiscNoVLANFilter = map[string]bool{"igb": true}

// decide says whether Prepare turns the feature name off on ifname (driver
// drv; the downlink when downlink is set), or why it refuses the port.
func decide(policy config.NICPolicy, ifname, drv, name string, downlink, on, fixed bool) (bool, error) {
	switch {
	case !on:
		return false, nil
	case fixed && name == "rx-vlan-filter" && downlink && promiscNoVLANFilter[drv]:
		return false, nil
	case fixed:
		return false, fmt.Errorf("%s has %s on and its driver (%s) cannot turn it off: frames would not cross unchanged", ifname, name, drv)
	case policy == config.NICCheck:
		return false, fmt.Errorf("%s has %s on, which changes frames before pwgated sees them: run \"ethtool -K %s %s off\" (or set nic_offloads: fix)", ifname, name, ifname, name)
	}
	return true, nil
}

// Driver returns the name of ifname's driver, or "?".
func Driver(ifname string) string {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "?"
	}
	defer unix.Close(fd)
	info, err := unix.IoctlGetEthtoolDrvinfo(fd, ifname)
	if err != nil {
		return "?"
	}
	return unix.ByteSliceToString(info.Driver[:])
}

// Restore turns back on what Prepare turned off.
func Restore(changes []Change) error {
	var errs []error
	for _, c := range changes {
		var err error
		switch c.feature {
		case "up", "promisc", "mtu":
			var l netlink.Link
			if l, err = netlink.LinkByName(c.ifname); err != nil {
				break
			}
			switch c.feature {
			case "up":
				err = netlink.LinkSetDown(l)
			case "promisc":
				err = netlink.SetPromiscOff(l)
			default:
				err = netlink.LinkSetMTU(l, c.was)
			}
		default:
			var f *features
			if f, err = readFeatures(c.ifname); err == nil {
				err = f.set(c.ifname, []string{c.feature}, true)
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("restore %s on %s: %w", c.feature, c.ifname, err))
		}
	}
	return errors.Join(errs...)
}

// features are an interface's netdev features as the ethtool ioctl
// reports them.
type features struct {
	names  []string
	blocks []featureBlock
}

type featureBlock struct{ available, requested, active, neverChanged uint32 }

const (
	ethGStringLen = 32
	ethSSFeatures = 4 // ETH_SS_FEATURES: the string set of netdev features
)

// ifreqData is struct ifreq with a pointer in its union.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [16]byte
}

func ethtool(ifname string, data unsafe.Pointer) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var ifr ifreqData
	if len(ifname) >= len(ifr.name) {
		return unix.EINVAL
	}
	copy(ifr.name[:], ifname)
	ifr.data = data
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); e != 0 {
		return e
	}
	return nil
}

func readFeatures(ifname string) (*features, error) {
	// How many features the kernel has names for.
	info := struct {
		cmd, reserved uint32
		mask          uint64
		count         uint32
	}{cmd: unix.ETHTOOL_GSSET_INFO, mask: 1 << ethSSFeatures}
	if err := ethtool(ifname, unsafe.Pointer(&info)); err != nil {
		return nil, fmt.Errorf("ETHTOOL_GSSET_INFO: %w", err)
	}
	n := int(info.count)
	// Their names.
	strs := make([]byte, 12+n*ethGStringLen)
	*(*[3]uint32)(unsafe.Pointer(&strs[0])) = [3]uint32{unix.ETHTOOL_GSTRINGS, ethSSFeatures, uint32(n)}
	if err := ethtool(ifname, unsafe.Pointer(&strs[0])); err != nil {
		return nil, fmt.Errorf("ETHTOOL_GSTRINGS: %w", err)
	}
	f := &features{names: make([]string, n), blocks: make([]featureBlock, (n+31)/32)}
	for i := range f.names {
		f.names[i] = unix.ByteSliceToString(strs[12+i*ethGStringLen : 12+(i+1)*ethGStringLen])
	}
	// Their state.
	get := make([]uint32, 2+4*len(f.blocks))
	get[0], get[1] = unix.ETHTOOL_GFEATURES, uint32(len(f.blocks))
	if err := ethtool(ifname, unsafe.Pointer(&get[0])); err != nil {
		return nil, fmt.Errorf("ETHTOOL_GFEATURES: %w", err)
	}
	for i := range f.blocks {
		b := get[2+4*i:]
		f.blocks[i] = featureBlock{b[0], b[1], b[2], b[3]}
	}
	return f, nil
}

// state returns whether the feature called name is on and whether it is
// fixed (the driver cannot change it); ok is false for an unknown name.
func (f *features) state(name string) (on, fixed, ok bool) {
	for i, n := range f.names {
		if n == name {
			b, bit := f.blocks[i/32], uint32(1)<<(i%32)
			return b.active&bit != 0, b.available&bit == 0 || b.neverChanged&bit != 0, true
		}
	}
	return false, false, false
}

// set switches the named features on or off.
func (f *features) set(ifname string, names []string, on bool) error {
	req := make([]uint32, 2+2*len(f.blocks))
	req[0], req[1] = unix.ETHTOOL_SFEATURES, uint32(len(f.blocks))
	for _, name := range names {
		i := -1
		for j, n := range f.names {
			if n == name {
				i = j
			}
		}
		if i < 0 {
			return fmt.Errorf("no feature %s", name)
		}
		req[2+2*(i/32)] |= 1 << (i % 32) // valid
		if on {
			req[3+2*(i/32)] |= 1 << (i % 32) // requested
		}
	}
	if err := ethtool(ifname, unsafe.Pointer(&req[0])); err != nil {
		return fmt.Errorf("ETHTOOL_SFEATURES: %w", err)
	}
	g, err := readFeatures(ifname)
	if err != nil {
		return err
	}
	for _, name := range names {
		if now, _, _ := g.state(name); now != on {
			return fmt.Errorf("%s is still %s", name, map[bool]string{true: "on", false: "off"}[now])
		}
	}
	return nil
}
