// Package client is pwgated's statistics socket protocol, shared by the
// daemon and the tools that read it (pwctl, check_pwbpdu): the request
// words, the documents answered, and a client. It imports only the
// standard library and dataplane/stats, so that a monitoring plugin built
// on it stays small.
//
// The protocol: a client connects to the unix socket, writes one request
// word and a newline, and reads one JSON document and a newline; then the
// connection closes. An error is answered as {"error": "..."}.
package client

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/pwgate/pwgate/dataplane/stats"
)

// Default socket paths.
const (
	DefaultStatsSocket = "/run/pwgate/pwgated.sock"
	DefaultGPWSocket   = "/run/gpwstats.socket" // the reference's binary protocol
)

// Requests of the statistics socket.
const (
	ReqStats  = "stats"  // the counters, as an object in counter order
	ReqStatus = "status" // Status
	ReqFDB    = "fdb"    // []FDBEntry (mode: vxlan)
	// ReqAnycast + " drain PREFIX" or " resume PREFIX" drains or resumes
	// an announced VIP, for root only (pwgated reads the client's
	// credentials; the socket's group may only read); alone, it answers
	// Status.Anycast.
	ReqAnycast = "anycast"
)

// Version is set by the linker (-X) for releases.
var Version = "dev"

// Status is what "pwctl status" shows.
type Status struct {
	Mode      string    `json:"mode"`
	Downlink  string    `json:"downlink"`
	Uplink    string    `json:"uplink"`
	Peer      string    `json:"peer"`
	Local     string    `json:"local,omitempty"`
	Via       string    `json:"via,omitempty"`
	NextHop   string    `json:"next_hop"`
	Ready     bool      `json:"ready"`
	NotReady  string    `json:"not_ready,omitempty"`
	Poll      string    `json:"poll"`
	XDPBind   string    `json:"xdp_bind"`          // "zerocopy" or "copy": how the sockets were bound
	Profile   string    `json:"profile,omitempty"` // the hardware profile in force ("c4: Partaker C4, ..."); none: generic
	Config    string    `json:"config"`
	Started   time.Time `json:"started"`
	Uptime    float64   `json:"uptime_seconds"`
	LastBPDU  BPDUTimes `json:"last_bpdu"`
	PID       int       `json:"pid"`
	Version   string    `json:"version"`
	UplinkMTU int       `json:"uplink_mtu"`
	// NICChanges lists the port settings pwgated changed at start (and
	// restores on exit), such as "dl0 rx-vlan-hw-parse off".
	NICChanges []string   `json:"nic_changes,omitempty"`
	Runtime    Runtime    `json:"runtime"`
	WireGuard  *WireGuard `json:"wireguard,omitempty"`
	EVPN       *EVPN      `json:"evpn,omitempty"`
	BGP        *BGP       `json:"bgp,omitempty"`
	Anycast    *Anycast   `json:"anycast,omitempty"`
	// ConfigRevision is the kept revision of the running file (0: none
	// kept yet); ConfigPending a change that rolls itself back unless
	// confirmed (pwctl config).
	ConfigRevision int            `json:"config_revision,omitempty"`
	ConfigPending  *ConfigPending `json:"config_pending,omitempty"`
	// Path is the pseudowire's peer as keepalives show it (peer.keepalive).
	Path *PeerPath `json:"path,omitempty"`
	// LLDP is what pwgated's LLDP knows of its ports' neighbours (lldp).
	LLDP *LLDP `json:"lldp,omitempty"`
}

// LLDP is the ports LLDP runs on and the neighbours heard on them.
type LLDP struct {
	Interval  float64        `json:"interval_seconds"`
	Ports     []LLDPPort     `json:"ports"`
	Neighbors []LLDPNeighbor `json:"neighbors"`
}

// LLDPPort is one of our LLDP ports.
type LLDPPort struct {
	Name  string `json:"name"`
	Error string `json:"error,omitempty"` // the last failure to send on it, or to open it
}

// LLDPNeighbor is what a neighbour's last LLDPDU said (its strings made
// printable and cut to 255 bytes).
type LLDPNeighbor struct {
	Port       string   `json:"port"` // ours, where it was heard
	ChassisID  string   `json:"chassis_id"`
	PortID     string   `json:"port_id"`
	PortDesc   string   `json:"port_description,omitempty"`
	SystemName string   `json:"system_name,omitempty"`
	SystemDesc string   `json:"system_description,omitempty"`
	Caps       []string `json:"capabilities,omitempty"`
	Mgmt       []string `json:"management_addresses,omitempty"`
	TTL        int      `json:"ttl_seconds"`
	Age        float64  `json:"age_seconds"` // since its last LLDPDU
}

// The states of PeerPath.State.
const (
	PathUp      = "up"
	PathSilent  = "silent"  // nothing from the peer for the timeout (or never)
	PathOneWay  = "one-way" // the peer's keepalives say, for longer than the timeout, that it does not hear us
	PathWaiting = "waiting" // just started: not heard yet, but not for the timeout either
)

// PeerPath is what keepalives tell of the peer, and link-loss forwarding.
type PeerPath struct {
	Interval float64 `json:"interval_seconds"` // our keepalives' interval
	Timeout  float64 `json:"timeout_seconds"`
	State    string  `json:"state"` // PathUp, PathSilent, PathOneWay or PathWaiting
	// Warning says what looks misconfigured: the peer sends no
	// keepalives, or sends them less often than half our timeout.
	Warning string `json:"warning,omitempty"`
	// HeardAgo and KeepaliveAgo: seconds since the last packet, and the
	// last keepalive, from the peer; -1: never.
	HeardAgo     float64 `json:"heard_ago_seconds"`
	KeepaliveAgo float64 `json:"keepalive_ago_seconds"`
	PeerInterval float64 `json:"peer_interval_seconds,omitempty"` // the peer's keepalives' interval
	RTT          float64 `json:"rtt_seconds"`                     // last round trip; 0 until measured
	Jitter       float64 `json:"jitter_seconds"`
	// Loss is the share of the peer's keepalives lost over the last 10 s
	// (1 while the peer is silent).
	Loss       float64           `json:"loss"`
	FollowPeer *FollowPeerStatus `json:"follow_peer,omitempty"`
}

// FollowPeerStatus is downlink.follow_peer's state.
type FollowPeerStatus struct {
	LANDown bool      `json:"lan_down"` // the LAN port is down because of the peer
	Since   time.Time `json:"since"`    // of the LAN port's current state, as follow_peer set it
	Downs   uint64    `json:"downs"`    // times taken down
	Hold    float64   `json:"hold_seconds"`
	Error   string    `json:"error,omitempty"` // the last failure to change the port
}

// Anycast is the announcer's and the forwarder's state ("pwctl anycast").
type Anycast struct {
	VIPs    []AnycastVIP     `json:"vips,omitempty"`    // announced while healthy
	Forward []AnycastForward `json:"forward,omitempty"` // spread over servers
	// Counters are the forwarder's XDP counters by name (passed,
	// forwarded, ttl_expired, drop_truncated, ...).
	Counters map[string]uint64 `json:"counters,omitempty"`
	// PathsRefused counts the received paths to forwarded VIPs that
	// named no server, by reason: "neighbor" (not in
	// anycast.forward.neighbors), "next_hop" (not the neighbor's address).
	PathsRefused map[string]uint64 `json:"paths_refused,omitempty"`
}

// AnycastVIP is one VIP of the announcer.
type AnycastVIP struct {
	Prefix      string    `json:"prefix"`
	Check       string    `json:"check"`
	State       string    `json:"state"` // down, up, draining, drained
	Healthy     bool      `json:"healthy"`
	LastCheck   time.Time `json:"last_check"`
	LastError   string    `json:"last_error,omitempty"`
	Since       time.Time `json:"since"`
	Announced   bool      `json:"announced"`
	MED         *uint32   `json:"med,omitempty"`
	DrainUntil  time.Time `json:"drain_until,omitzero"`
	Checks      uint64    `json:"checks"`
	Failures    uint64    `json:"failures"`
	Transitions uint64    `json:"transitions"`
}

// AnycastForward is one VIP of the forwarder.
type AnycastForward struct {
	Prefix    string          `json:"prefix"`
	ID        int             `json:"id"`
	Servers   []AnycastServer `json:"servers"`
	Packets   uint64          `json:"packets"`
	Bytes     uint64          `json:"bytes"`
	NoServers uint64          `json:"no_server_drops"`
}

// AnycastServer is one BGP path to a forwarded VIP.
type AnycastServer struct {
	NextHop  string  `json:"next_hop"`
	Peer     string  `json:"peer"`
	MED      *uint32 `json:"med,omitempty"`
	Resolved bool    `json:"resolved"`
	Why      string  `json:"why,omitempty"`
	Port     string  `json:"port,omitempty"`
	MAC      string  `json:"mac,omitempty"`
	Slots    int     `json:"slots"` // its share of the Maglev table
	// Draining: resolved but out of the table (a worse MED or
	// GRACEFUL_SHUTDOWN): it keeps its flows and gets no new ones.
	Draining bool   `json:"draining"`
	Packets  uint64 `json:"packets"`
	Bytes    uint64 `json:"bytes"`
	Index    int    `json:"-"` // the program's server index; -1 none
	// Refused is why the path names no server ("neighbor", "next_hop"),
	// if it does not; Why explains it.
	Refused string `json:"refused,omitempty"`
}

// EVPN is the VXLAN tunnel end's state ("pwctl evpn").
type EVPN struct {
	Local string    `json:"local"` // our VTEP address
	VNIs  []VNI     `json:"vnis"`
	VTEPs []VTEP    `json:"vteps"`
	MACs  MACCounts `json:"macs"`
	// RoutesReceived counts the EVPN routes imported, by type
	// ("macip", "imet"); RoutesAnnounced those originated.
	RoutesReceived  map[string]int `json:"routes_received"`
	RoutesAnnounced map[string]int `json:"routes_announced"`
}

// VNI is one VXLAN segment's state.
type VNI struct {
	VNI  uint32 `json:"vni"`
	VLAN uint16 `json:"vlan"` // 0: untagged
	RD   string `json:"rd,omitempty"`
	RT   string `json:"rt,omitempty"`
	// Flood lists the VTEPs broadcast and unknown unicast go to.
	Flood []string `json:"flood"`
	// MaxFrame is the largest LAN frame the VNI carries to a VTEP that
	// is not pwgate (MaxFramePwgate: to one that is, with split: pwgate).
	MaxFrame       int `json:"max_frame"`
	MaxFramePwgate int `json:"max_frame_pwgate"`
	LocalMACs      int `json:"local_macs"`
	RemoteMACs     int `json:"remote_macs"`
}

// VTEP is a remote tunnel end.
type VTEP struct {
	Address  string `json:"address"`
	NextHop  string `json:"next_hop"` // MAC; "" while unresolved
	Resolved bool   `json:"resolved"`
	Pwgate   bool   `json:"pwgate"` // takes split frames
	Static   bool   `json:"static"`
	MACs     int    `json:"macs"`
}

// MACCounts sums up the forwarding database.
type MACCounts struct {
	Local      int `json:"local"`
	Remote     int `json:"remote"`
	Duplicates int `json:"duplicates"`
	Limit      int `json:"limit"`
}

// FDBEntry is one MAC in the forwarding database ("pwctl fdb").
type FDBEntry struct {
	VNI  uint32 `json:"vni"`
	MAC  string `json:"mac"`
	VTEP string `json:"vtep"` // "local" or the remote VTEP's address
	// Origin is "lan" (learned on the LAN), "evpn" (a received route) or
	// "data" (learned from a received frame).
	Origin    string   `json:"origin"`
	Seq       uint32   `json:"seq"`
	Sticky    bool     `json:"sticky,omitempty"`
	Duplicate bool     `json:"duplicate,omitempty"`
	IdleSecs  int64    `json:"idle_seconds,omitempty"` // learned MACs: since the last frame
	IPs       []string `json:"ips,omitempty"`
}

// BGP is the embedded speaker's state ("pwctl bgp").
type BGP struct {
	ASN       uint32     `json:"asn"`
	RouterID  string     `json:"router_id"`
	Neighbors []Neighbor `json:"neighbors"`
}

// Neighbor is one BGP session.
type Neighbor struct {
	Neighbor    string         `json:"neighbor"` // address, or "if:NAME"
	Address     string         `json:"address,omitempty"`
	ASN         uint32         `json:"asn"`
	Description string         `json:"description,omitempty"`
	State       string         `json:"state"`
	Since       *time.Time     `json:"since,omitempty"` // established since
	Received    map[string]int `json:"received"`        // routes accepted, by family
	Advertised  int            `json:"advertised"`
	// PrefixLimitResets counts the sessions pwgate ended because the
	// neighbor sent more routes than its max_prefix.
	PrefixLimitResets int `json:"prefix_limit_resets,omitempty"`
	// RouterAdvertisementsIgnored counts, for an unnumbered neighbor, the
	// router advertisements on its interface refused or not taken.
	RouterAdvertisementsIgnored uint64 `json:"router_advertisements_ignored,omitempty"`
}

// WireGuard is the embedded WireGuard interface's state ("pwctl wg").
type WireGuard struct {
	Interface  string   `json:"interface"` // the host's overlay TUN device
	PublicKey  string   `json:"public_key"`
	ListenPort int      `json:"listen_port"`
	MTU        int      `json:"mtu"`       // inside the tunnel
	Addresses  []string `json:"addresses"` // the host's overlay addresses
	// Pseudowire is true when the pseudowire runs inside the tunnel;
	// Session then says whether its peer's session is up.
	Pseudowire bool     `json:"pseudowire"`
	Session    bool     `json:"session"`
	Peers      []WGPeer `json:"peers"`
}

// WGPeer is one WireGuard peer's state.
type WGPeer struct {
	PublicKey         string     `json:"public_key"`
	Endpoint          string     `json:"endpoint,omitempty"`            // current, after roaming
	ConfiguredAs      string     `json:"configured_endpoint,omitempty"` // as written (a name, maybe)
	AllowedIPs        []string   `json:"allowed_ips"`
	LastHandshake     *time.Time `json:"last_handshake"` // nil: never
	RxBytes           uint64     `json:"rx_bytes"`
	TxBytes           uint64     `json:"tx_bytes"`
	HandshakeFailures uint64     `json:"handshake_failures"`
	Keepalive         int        `json:"persistent_keepalive"`
	Pseudowire        bool       `json:"pseudowire"` // carries the pseudowire
}

// Runtime is what the Go runtime and the kernel say about the process.
type Runtime struct {
	GOMAXPROCS int `json:"gomaxprocs"`
	// Threads are the data goroutines' threads and where the kernel lets
	// them and last ran them; "main" covers every other thread.
	Threads   []Thread `json:"threads"`
	GCCycles  uint64   `json:"gc_cycles"`  // garbage collections since start: 0 in steady state
	Allocs    uint64   `json:"allocs"`     // heap allocations since start (objects)
	HeapBytes uint64   `json:"heap_bytes"` // live and unswept heap objects
	// AllocBytes is the bytes allocated on the heap since start; a
	// collection starts when the heap reaches HeapGoalBytes, or when none
	// has run for two minutes (the runtime's periodic one).
	AllocBytes    uint64 `json:"alloc_bytes"`
	HeapGoalBytes uint64 `json:"heap_goal_bytes"`
	Goroutines    int    `json:"goroutines"`
	RSSBytes      uint64 `json:"rss_bytes"`
	// RSSAnonBytes is the resident memory of the process's own (anonymous)
	// pages: heap, stacks, packet memory; RSSFileBytes the resident pages of
	// files (the binary's code, touched as it runs: bounded by its size).
	RSSAnonBytes uint64 `json:"rss_anon_bytes"`
	RSSFileBytes uint64 `json:"rss_file_bytes"`
	// GoHeldBytes is the memory the Go runtime holds from the kernel and
	// has not given back (all of /memory/classes less heap/released):
	// its heap, stacks and metadata. Resident pages of it are part of
	// RSSAnonBytes, so RSSAnonBytes less the packet memory cannot grow
	// past it.
	GoHeldBytes uint64 `json:"go_held_bytes"`
	OSThreads   int    `json:"os_threads"`
	FDs         int    `json:"fds"`
}

// Thread is one goroutine's OS thread as the kernel sees it.
type Thread struct {
	Name     string `json:"name"`      // "encap", "decap" or "main"
	TID      int    `json:"tid"`       // 0 for "main" (several threads)
	Allowed  []int  `json:"allowed"`   // cores it may run on (sched_getaffinity)
	LastCore int    `json:"last_core"` // core it last ran on (/proc: processor); -1 unknown
}

// BPDUTimes is when the last BPDU was seen in each direction; nil: never.
type BPDUTimes struct {
	UL *time.Time `json:"ul"`
	DL *time.Time `json:"dl"`
}

// Query sends one request to a pwgated statistics socket and returns the
// answer. Its errors say what an operator should do: the daemon is not
// running, or the caller may not use the socket.
func Query(socket, req string, timeout time.Duration) ([]byte, error) {
	c, err := net.DialTimeout("unix", socket, timeout)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED):
			return nil, fmt.Errorf("cannot reach pwgated at %s: is it running? (%w)", socket, errors.Unwrap(errors.Unwrap(err)))
		case errors.Is(err, os.ErrPermission):
			return nil, fmt.Errorf("permission denied on %s: the socket is for root and the group set in stats.group", socket)
		}
		return nil, fmt.Errorf("cannot reach pwgated at %s: %w", socket, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(req + "\n")); err != nil {
		return nil, fmt.Errorf("query %s: %w", socket, err)
	}
	b, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return nil, fmt.Errorf("query %s: %w", socket, err)
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return nil, fmt.Errorf("pwgated at %s: %s", socket, e.Error)
	}
	return b, nil
}

// Counter is one named value as reported by the statistics socket.
type Counter struct {
	Name  string
	Value uint64
}

// FetchCounters returns the counters in their documented order; names this
// version does not know follow at the end.
func FetchCounters(socket string, timeout time.Duration) ([]Counter, error) {
	b, err := Query(socket, ReqStats, timeout)
	if err != nil {
		return nil, err
	}
	var m map[string]uint64
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("pwgated at %s answered %q: %w", socket, b, err)
	}
	var out []Counter
	for c := stats.Counter(0); c < stats.NumCounters; c++ {
		if v, ok := m[c.Name()]; ok {
			out = append(out, Counter{c.Name(), v})
			delete(m, c.Name())
		}
	}
	for _, n := range slices.Sorted(maps.Keys(m)) {
		out = append(out, Counter{n, m[n]})
	}
	return out, nil
}

// FetchStatus returns the daemon's status.
func FetchStatus(socket string, timeout time.Duration) (Status, error) {
	var s Status
	b, err := Query(socket, ReqStatus, timeout)
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("pwgated at %s answered %q: %w", socket, b, err)
	}
	return s, nil
}

// FetchFDB returns the daemon's VXLAN forwarding database.
func FetchFDB(socket string, timeout time.Duration) ([]FDBEntry, error) {
	b, err := Query(socket, ReqFDB, timeout)
	if err != nil {
		return nil, err
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return nil, fmt.Errorf("pwgated at %s: %s", socket, e.Error)
	}
	var f []FDBEntry
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("pwgated at %s answered %q: %w", socket, b, err)
	}
	return f, nil
}

// MarshalCounters renders s as a JSON object in counter order, with
// timestamps in Unix seconds.
func MarshalCounters(s *stats.Snapshot) []byte {
	b := []byte{'{'}
	for c := stats.Counter(0); c < stats.NumCounters; c++ {
		if c > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, c.Name())
		b = append(b, ':')
		b = strconv.AppendUint(b, s.Value(c), 10)
	}
	return append(b, '}', '\n')
}

// EncodeGPW returns the reference's 96-byte answer for s: ul_rx_packets,
// ul_rx_bytes, ul_rx_bpdus, ul_tx_packets, ul_tx_bytes, ul_tx_errors,
// dl_rx_packets, dl_rx_bytes, dl_rx_bpdus, dl_tx_packets, dl_tx_bytes,
// dl_tx_errors, each a uint64 in host byte order.
func EncodeGPW(s *stats.Snapshot) []byte {
	b := make([]byte, 0, 8*stats.NumReference)
	for _, v := range s.Reference() {
		b = binary.NativeEndian.AppendUint64(b, v)
	}
	return b
}

// FetchAnycast returns the daemon's anycast state.
func FetchAnycast(socket string, timeout time.Duration) (*Anycast, error) {
	b, err := Query(socket, ReqAnycast, timeout)
	if err != nil {
		return nil, err
	}
	var a Anycast
	if err := json.Unmarshal(b, &a); err != nil {
		return nil, fmt.Errorf("pwgated at %s answered %q: %w", socket, b, err)
	}
	return &a, nil
}

// AnycastControl drains or resumes (verb) an announced VIP.
func AnycastControl(socket, verb, prefix string, timeout time.Duration) error {
	_, err := Query(socket, ReqAnycast+" "+verb+" "+prefix, timeout)
	return err
}
