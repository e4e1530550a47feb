package wg

import (
	"bufio"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/pwgate/pwgate/dataplane/stats"
)

// Config is a WireGuard interface: our key and port, and the peers.
type Config struct {
	PrivateKey Key
	ListenPort int
	Peers      []PeerConfig
	// Overlay are the tunnel's own prefixes (this box's overlay addresses'
	// and the peers' allowed IPs) and HostIfindex the host TUN device: a
	// datagram from either is refused (counted as wg_rx_looped).
	Overlay     []netip.Prefix
	HostIfindex int
	// XDP, if set, carries WireGuard's UDP instead of the kernel's socket
	// (wireguard.bind: xdp); a change of it needs a new Device.
	XDP *XDPBind
}

// PeerConfig is one peer.
type PeerConfig struct {
	PublicKey    Key
	PresharedKey Key            // zero: none
	Endpoint     netip.AddrPort // zero: none (the peer finds us)
	AllowedIPs   []netip.Prefix
	// PersistentKeepalive is in seconds; 0 is off.
	PersistentKeepalive int
}

func (p *PeerConfig) equal(q *PeerConfig) bool {
	return p.PublicKey == q.PublicKey && p.PresharedKey == q.PresharedKey && p.Endpoint == q.Endpoint &&
		slices.Equal(p.AllowedIPs, q.AllowedIPs) && p.PersistentKeepalive == q.PersistentKeepalive
}

// PeerStatus is what the device says about a peer.
type PeerStatus struct {
	PublicKey         Key
	Endpoint          string    // current (after roaming), "" if none
	LastHandshake     time.Time // zero: never
	RxBytes, TxBytes  uint64
	HandshakeFailures uint64 // handshakes we started that got no answer
}

// Device is an embedded wireguard-go device over a Tunnel, with the
// kernel's UDP socket.
type Device struct {
	dev      *device.Device
	tunnel   *Tunnel
	bind     bindCounters
	binder   *countingBind
	xdp      *XDPBind   // nil: the kernel's socket
	mu       sync.Mutex // cfg: Configure (main goroutine) against Peers (anyone)
	cfg      Config
	log      *slog.Logger
	failures atomic.Pointer[map[string]*atomic.Uint64] // by wireguard-go's short peer name

	invalidHandshakes, handshakeFailures atomic.Uint64
	sessionPeer                          atomic.Pointer[string] // short name of the pseudowire's peer

	logMu   sync.Mutex
	logLast map[string]time.Time // rate limit of wireguard-go's errors, by format
}

// NewDevice starts wireguard-go on t with cfg. log receives wireguard-go's
// errors (rate-limited). On error nothing is left running, t included.
//
// wireguard-go's 64 KiB message buffers are recycled (recycler), not
// bounded: on Linux its PreallocatedBuffersPerPool is 0. Bounding them from
// here was tried: the bench's far end then stopped sending for good, all
// 1,024 buffers out. The likely cycle: with packets staged while a new
// session is being confirmed, a receiver that got the peer's first packet
// under the new key waits for a buffer before it hands that packet on, and
// the buffers are held by the staged packets that wait for it.
func NewDevice(t *Tunnel, cfg Config, log *slog.Logger) (*Device, error) {
	d := &Device{tunnel: t, log: log, logLast: map[string]time.Time{}}
	d.setFailureNames(cfg)
	var udp conn.Bind = NewKernelBind()
	if cfg.XDP != nil {
		udp, d.xdp = cfg.XDP, cfg.XDP
	}
	d.binder = &countingBind{Bind: udp, c: &d.bind, ready: make(chan struct{})}
	d.binder.overlay.Store(&overlay{prefixes: cfg.Overlay, ifindex: int32(cfg.HostIfindex)})
	msgBuffersPrealloc.Do(func() { msgBuffers.prealloc(maxFree) })
	d.dev = device.NewDevice(t, d.binder, &device.Logger{Verbosef: d.verbosef, Errorf: d.errorf})
	// The device's TUN reader takes its buffers only after it has asked
	// the bind's BatchSize, which waits for ready.
	if !msgBuffers.install(d.dev) {
		log.Warn("wireguard-go's message buffer pool is not where this build expects it: its buffers are not recycled")
	}
	close(d.binder.ready)
	if err := d.dev.IpcSet(fullUAPI(cfg)); err != nil {
		d.dev.Close()
		return nil, fmt.Errorf("configure wireguard: %w", err)
	}
	if err := d.dev.Up(); err != nil {
		d.dev.Close()
		return nil, fmt.Errorf("start wireguard (listen port %d): %w", cfg.ListenPort, err)
	}
	d.cfg = cfg
	return d, nil
}

// PublicKey returns the device's public key.
func (d *Device) PublicKey() Key {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg.PrivateKey.PublicKey()
}

// Configure changes the device to next: peers that are gone are removed,
// new ones added, changed ones updated in place; peers that did not change
// keep their sessions. A new private key or port is applied too.
func (d *Device) Configure(next Config) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b strings.Builder
	if next.PrivateKey != d.cfg.PrivateKey {
		fmt.Fprintf(&b, "private_key=%s\n", next.PrivateKey.Hex())
	}
	if next.ListenPort != d.cfg.ListenPort {
		fmt.Fprintf(&b, "listen_port=%d\n", next.ListenPort)
	}
	old := map[Key]*PeerConfig{}
	for i := range d.cfg.Peers {
		old[d.cfg.Peers[i].PublicKey] = &d.cfg.Peers[i]
	}
	for i := range next.Peers {
		p := &next.Peers[i]
		o, ok := old[p.PublicKey]
		delete(old, p.PublicKey)
		switch {
		case !ok:
			writePeer(&b, p, false)
		case !o.equal(p):
			writePeer(&b, p, true)
		}
	}
	for k := range old {
		fmt.Fprintf(&b, "public_key=%s\nremove=true\n", k.Hex())
	}
	d.binder.overlay.Store(&overlay{prefixes: next.Overlay, ifindex: int32(next.HostIfindex)})
	if b.Len() == 0 {
		d.cfg = next
		return nil
	}
	if err := d.dev.IpcSet(b.String()); err != nil {
		return fmt.Errorf("configure wireguard: %w", err)
	}
	d.setFailureNames(next)
	d.cfg = next
	return nil
}

// fullUAPI is cfg in wireguard's configuration protocol, replacing
// everything.
func fullUAPI(cfg Config) string {
	var b strings.Builder
	fmt.Fprintf(&b, "private_key=%s\nlisten_port=%d\nreplace_peers=true\n", cfg.PrivateKey.Hex(), cfg.ListenPort)
	for i := range cfg.Peers {
		writePeer(&b, &cfg.Peers[i], false)
	}
	return b.String()
}

func writePeer(b *strings.Builder, p *PeerConfig, update bool) {
	fmt.Fprintf(b, "public_key=%s\n", p.PublicKey.Hex())
	if update {
		b.WriteString("update_only=true\n")
	}
	fmt.Fprintf(b, "preshared_key=%s\n", p.PresharedKey.Hex())
	if p.Endpoint.IsValid() {
		fmt.Fprintf(b, "endpoint=%s\n", p.Endpoint)
	}
	fmt.Fprintf(b, "persistent_keepalive_interval=%d\nreplace_allowed_ips=true\n", p.PersistentKeepalive)
	for _, a := range p.AllowedIPs {
		fmt.Fprintf(b, "allowed_ip=%s\n", a)
	}
}

func (d *Device) setFailureNames(cfg Config) {
	m := map[string]*atomic.Uint64{}
	if old := d.failures.Load(); old != nil {
		m = make(map[string]*atomic.Uint64, len(*old))
		for k, v := range *old {
			m[k] = v
		}
	}
	for _, p := range cfg.Peers {
		if _, ok := m[p.PublicKey.Short()]; !ok {
			m[p.PublicKey.Short()] = new(atomic.Uint64)
		}
	}
	d.failures.Store(&m)
}

// Peers returns every peer's state, in the configuration's order.
func (d *Device) Peers() ([]PeerStatus, error) {
	text, err := d.dev.IpcGet()
	if err != nil {
		return nil, err
	}
	byKey := map[Key]*PeerStatus{}
	var cur *PeerStatus
	var sec, nsec int64
	flush := func() {
		if cur != nil && sec != 0 {
			cur.LastHandshake = time.Unix(sec, nsec)
		}
		sec, nsec = 0, 0
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "public_key":
			flush()
			cur = &PeerStatus{}
			if b, err := parseHexKey(v); err == nil {
				cur.PublicKey = b
				byKey[b] = cur
			}
		case "endpoint":
			if cur != nil {
				cur.Endpoint = v
			}
		case "last_handshake_time_sec":
			sec, _ = strconv.ParseInt(v, 10, 64)
		case "last_handshake_time_nsec":
			nsec, _ = strconv.ParseInt(v, 10, 64)
		case "rx_bytes":
			if cur != nil {
				cur.RxBytes, _ = strconv.ParseUint(v, 10, 64)
			}
		case "tx_bytes":
			if cur != nil {
				cur.TxBytes, _ = strconv.ParseUint(v, 10, 64)
			}
		}
	}
	flush()
	failures := *d.failures.Load()
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]PeerStatus, 0, len(d.cfg.Peers))
	for _, p := range d.cfg.Peers {
		st := PeerStatus{PublicKey: p.PublicKey}
		if s, ok := byKey[p.PublicKey]; ok {
			st = *s
		}
		if c := failures[p.PublicKey.Short()]; c != nil {
			st.HandshakeFailures = c.Load()
		}
		out = append(out, st)
	}
	return out, nil
}

func parseHexKey(s string) (Key, error) {
	var k Key
	if len(s) != 64 {
		return k, fmt.Errorf("bad key")
	}
	for i := range k {
		v, err := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
		if err != nil {
			return k, err
		}
		k[i] = byte(v)
	}
	return k, nil
}

// Unreachable reports whether a datagram could not be sent for want of a
// route or source address since RetryUnreachable last ran.
func (d *Device) Unreachable() bool { return d.bind.unreachable.Load() }

// RetryUnreachable re-adds the peers with an endpoint and no session
// after a send failed for want of a route, and returns their number.
// wireguard-go, whose handshake initiation could not be sent, tries again
// only after its 5-second retransmission timer; a peer added anew sends
// its initiation with the next packet for it, so a tunnel whose uplink
// was not configured yet (pwgated started before the router's
// advertisement) comes up within a second of the route, not up to ten
// later. Peers with a session are left alone.
func (d *Device) RetryUnreachable() (int, error) {
	if !d.bind.unreachable.Swap(false) {
		return 0, nil
	}
	peers, err := d.Peers()
	if err != nil {
		return 0, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var b strings.Builder
	n := 0
	for i := range d.cfg.Peers {
		p := &d.cfg.Peers[i]
		if !p.Endpoint.IsValid() || i >= len(peers) || peers[i].PublicKey != p.PublicKey ||
			(!peers[i].LastHandshake.IsZero() && time.Since(peers[i].LastHandshake) < sessionLife) {
			continue
		}
		fmt.Fprintf(&b, "public_key=%s\nremove=true\n", p.PublicKey.Hex())
		writePeer(&b, p, false)
		n++
	}
	if n == 0 {
		return 0, nil
	}
	if err := d.dev.IpcSet(b.String()); err != nil {
		return 0, fmt.Errorf("re-add unreachable peers: %w", err)
	}
	return n, nil
}

// SetSessionPeer names the peer that carries the pseudowire: its
// handshakes and keepalives mark the Tunnel's session up. A zero key:
// none.
func (d *Device) SetSessionPeer(k Key) {
	if k.IsZero() {
		d.sessionPeer.Store(nil)
		return
	}
	s := k.Short()
	d.sessionPeer.Store(&s)
}

// Snapshot adds the device's counts (and its Tunnel's) into s.
func (d *Device) Snapshot(s *stats.Snapshot) {
	d.tunnel.Snapshot(s)
	s[stats.WGRxDatagrams] += d.bind.rx.Load()
	s[stats.WGTxDatagrams] += d.bind.tx.Load()
	s[stats.WGRxInvalid] += d.bind.invalid.Load()
	s[stats.WGRxLooped] += d.bind.looped.Load()
	s[stats.WGInvalidHandshakes] += d.invalidHandshakes.Load()
	s[stats.WGHandshakeFailures] += d.handshakeFailures.Load()
	s[stats.WGBuffersMade] += msgBuffers.made.Load() // the process's, as pwgated has one Device
	if d.xdp != nil {
		d.xdp.snapshot(s)
	}
}

// Close stops wireguard-go, which closes the Tunnel.
func (d *Device) Close() { d.dev.Close() }

// wireguard-go's log lines that pwgate counts (its format strings).
const (
	fmtInvalidInitiation = "Received invalid initiation message from %s"
	fmtInvalidResponse   = "Received invalid response message from %s"
	fmtInvalidMAC1       = "Received packet with invalid mac1"
	fmtHandshakeRetry    = "%s - Handshake did not complete after %d seconds, retrying (try %d)"
	fmtHandshakeDone     = "%v - Received handshake response"
	fmtKeepalive         = "%v - Receiving keepalive packet"
)

func (d *Device) verbosef(format string, args ...any) {
	switch format {
	case fmtInvalidInitiation, fmtInvalidResponse, fmtInvalidMAC1:
		d.invalidHandshakes.Add(1)
	case fmtHandshakeRetry:
		d.handshakeFailures.Add(1)
		if len(args) > 0 {
			if c := (*d.failures.Load())[fmt.Sprint(args[0])]; c != nil {
				c.Add(1)
			}
		}
	case fmtHandshakeDone, fmtKeepalive:
		// As initiator, a response means the session's keys are in use;
		// as responder, the initiator's first keepalive confirms them.
		if p := d.sessionPeer.Load(); p != nil && len(args) > 0 && fmt.Sprint(args[0]) == *p {
			d.tunnel.MarkSession()
		}
	}
}

// errorf logs wireguard-go's errors, each kind at most every 10 seconds.
func (d *Device) errorf(format string, args ...any) {
	d.logMu.Lock()
	last, seen := d.logLast[format]
	now := time.Now()
	if seen && now.Sub(last) < 10*time.Second {
		d.logMu.Unlock()
		return
	}
	d.logLast[format] = now
	d.logMu.Unlock()
	d.log.Warn("wireguard: " + fmt.Sprintf(format, args...))
}

// CreateHostTUN makes the kernel TUN device for the host's overlay
// traffic (down; the caller sets addresses and brings it up).
func CreateHostTUN(name string, mtu int) (HostTUN, error) {
	t, err := tun.CreateTUN(name, mtu)
	if err != nil {
		return nil, fmt.Errorf("create TUN device %s: %w", name, err)
	}
	go func() {
		for range t.Events() { // nobody needs them; keep the sender from blocking
		}
	}()
	return t, nil
}
