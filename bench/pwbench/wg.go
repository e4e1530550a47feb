package main

// The WireGuard cases: the pseudowire inside pwgated's embedded WireGuard
// against the stack users would otherwise build, a bridge and kernel
// VXLAN over a stock wireguard-go TUN (this kernel has no WireGuard
// module). The wan side runs the far end (farend.go): its sink counts
// WireGuard transport messages and passes the handshakes to it. For the
// decap direction the far end encrypts what the far site would send
// (pseudowire or VXLAN packets) on the generator core.

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/pwgate/pwgate/dataplane/frame"
	"github.com/pwgate/pwgate/dataplane/pseudowire"
	"github.com/pwgate/pwgate/dataplane/wg"
)

// WireGuard DUT kinds.
const (
	dutPWWG    = "pwgate-ip6+wg"
	dutPWWGXDP = "pwgate-ip6+wg-xdp" // wireguard.bind: xdp
	dutStockWG = "vxlan+wireguard-go"
)

var (
	overlayDUT = netip.MustParseAddr("fd00:77::1")
	overlayWan = netip.MustParseAddr("fd00:77::2")
)

const (
	wgPort    = 51820
	wgTunMTU  = wanMTU - 80 // WireGuard over IPv6
	vxlanOver = 40 + 8 + 8 + 14
)

func isWG(kind string) bool { return kind == dutPWWG || kind == dutPWWGXDP || kind == dutStockWG }

// wgSizes are the frame sizes of the WireGuard cases.
var wgSizes = []int{64, 512, 1400, 1514}

// buildWG sets up the DUT and the far end for a WireGuard kind.
func (t *topo) buildWG(bin, profile string) error {
	dutKey, err := wg.GenerateKey()
	if err != nil {
		return err
	}
	wanKey, _ := wg.GenerateKey()
	for _, x := range []struct{ ns, ifname, addr, peer, peerMAC string }{
		{"dut", "ul0", addrUL.String(), addrS0.String(), macS0.String()},
		{"wan", "s0", addrS0.String(), addrUL.String(), macUL0.String()},
	} {
		if err := t.l.Script(x.ns, "ip -6 addr add "+x.addr+"/64 dev "+x.ifname+" nodad",
			"ip -6 neigh add "+x.peer+" lladdr "+x.peerMAC+" dev "+x.ifname+" nud permanent"); err != nil {
			return err
		}
	}
	// The far end, on the generator core (farend.go). Its kernel finishes
	// its UDP checksums, as a NIC would (pwgated's XDP bind checks them).
	if err := t.l.Script("wan", "ethtool -K s0 tx off"); err != nil {
		return err
	}
	if t.far, err = startFarEnd(t.l, wanKey, dutKey.PublicKey(), addrUL); err != nil {
		return err
	}
	if t.kind == dutStockWG {
		if err := t.wireguardGo("dut", dutKey, wanKey.PublicKey(), overlayDUT, overlayWan, addrS0, dutCore); err != nil {
			return err
		}
		return t.l.Script("dut",
			"ip link add vx0 mtu "+strconv.Itoa(wgTunMTU-vxlanOver+14)+" type vxlan id 42 local "+overlayDUT.String()+" remote "+overlayWan.String()+
				" dstport 4789 udp6zerocsumtx udp6zerocsumrx dev wgdut",
			"ip link add br0 type bridge", "ip link set dev dl0 master br0", "ip link set dev vx0 master br0",
			"ip link set dev vx0 up", "ip link set dev br0 up")
	}
	keyFile := filepath.Join(t.dir, "dut.key")
	if err := os.WriteFile(keyFile, []byte(dutKey.String()+"\n"), 0o600); err != nil {
		return err
	}
	t.socket = filepath.Join(t.dir, "pwgated.sock")
	c := fmt.Sprintf(`mode: ip6
downlink:
  interface: dl0
uplink:
  interface: ul0
peer:
  address: %s
poll: adaptive
cores:
  main: %d
  encap: %d
  decap: %d
wireguard:
  private_key_file: %s
  listen_port: %d
  bind: %s
  addresses: [%s/64]
  peers:
    - public_key: %q
      endpoint: "[%s]:%d"
      allowed_ips: [%s/128]
stats:
  socket: %s
`, overlayWan, dutCore, dutCore, dutCore, keyFile, wgPort, map[bool]string{true: "xdp", false: "kernel"}[t.kind == dutPWWGXDP], overlayDUT, wanKey.PublicKey(), addrS0, wgPort, overlayWan, t.socket)
	return t.runPwgated(bin, profile, c)
}

// wireguardGo starts Debian's wireguard-go as wg<ns> in ns, pinned to core,
// with one peer at endpoint.
func (t *topo) wireguardGo(ns string, key, peer wg.Key, own, peerOverlay, endpoint netip.Addr, core int) error {
	// A name of its own in each namespace: wireguard-go's control socket
	// (/var/run/wireguard/NAME.sock) is not in the namespace, and a second
	// wg0 would take the first one's.
	dev := "wg" + ns
	if _, err := t.l.Start(ns, "taskset", "-c", strconv.Itoa(core), "env", "WG_PROCESS_FOREGROUND=1", "wireguard-go", dev); err != nil {
		return err
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, err1 := t.l.Exec(ns, "ip", "link", "show", dev)
		_, err2 := t.l.Exec(ns, "wg", "show", dev)
		if err1 == nil && err2 == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("wireguard-go did not start in %s", ns)
		}
	}
	keyFile := filepath.Join(t.dir, ns+"-wg.key")
	if err := os.WriteFile(keyFile, []byte(key.String()+"\n"), 0o600); err != nil {
		return err
	}
	return t.l.Script(ns,
		fmt.Sprintf("wg set %s private-key %s listen-port %d peer %s endpoint [%s]:%d allowed-ips %s/128 persistent-keepalive 25",
			dev, keyFile, wgPort, peer, endpoint, wgPort, peerOverlay),
		"ip link set dev "+dev+" mtu "+strconv.Itoa(wgTunMTU), "ip -6 addr add "+own.String()+"/64 dev "+dev+" nodad", "ip link set dev "+dev+" up")
}

// wgInner returns what the far site sends through the tunnel for an
// n-byte frame: pseudowire packets (ip6-tun: IPv6, no Ethernet) or one
// VXLAN packet, and the inner frame's source MAC offset in the first.
func wgInner(kind string, n int) ([][]byte, int, error) {
	inner := plain(n, srcB, floodB)
	if kind == dutStockWG {
		p := make([]byte, frame.IPv6Len+8+8, frame.IPv6Len+16+n)
		frame.IPv6(p).Encode(uint16(16+n), 17, 64, overlayWan, overlayDUT)
		udp := p[frame.IPv6Len:]
		binary.BigEndian.PutUint16(udp[0:], 49152)
		binary.BigEndian.PutUint16(udp[2:], 4789)
		binary.BigEndian.PutUint16(udp[4:], uint16(16+n))
		binary.BigEndian.PutUint32(udp[8:], 0x08000000)
		binary.BigEndian.PutUint32(udp[12:], 42<<8)
		return [][]byte{append(p, inner...)}, len(p) + 6, nil
	}
	e, err := pseudowire.NewEncapsulator(pseudowire.EncapConfig{Mode: pseudowire.ModeIP6Tun, MTU: wgTunMTU, SrcAddr: overlayWan, DstAddr: overlayDUT})
	if err != nil {
		return nil, 0, err
	}
	buf := make([]byte, 256+n)
	copy(buf[256:], inner)
	if e.Pieces(n) == 1 {
		start, err := e.Encap(buf, 256, n)
		return [][]byte{buf[start:]}, e.Overhead() + 6, err
	}
	second := make([]byte, 4096)
	n1, n2, err := e.Fragment(buf, 256, n, second)
	start := 256 - e.Overhead()
	return [][]byte{buf[start : start+n1], second[:n2]}, e.Overhead() + 6, err
}

// wgPieces is how many WireGuard messages an n-byte frame becomes.
func wgPieces(kind string, n int) int {
	p, _, err := wgInner(kind, n)
	if err != nil {
		return 1
	}
	return len(p)
}

// wgFits reports whether the kind carries n-byte frames at all: the stock
// stack's VXLAN inside a 1420-byte tunnel cannot carry frames above 1364
// bytes (the hosts would have to lower their MTU).
func wgFits(kind string, n int) bool {
	return kind != dutStockWG || n <= wgTunMTU-vxlanOver+14
}
