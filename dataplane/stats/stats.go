// Package stats defines pwgate's counters, their names and meanings, and
// how the data path keeps them: each data goroutine owns a Shard and counts
// into plain memory; once per batch it publishes what changed with atomic
// stores; readers sum the published values of all shards. There is no
// atomic read-modify-write per packet and no lock.
package stats

import (
	"strings"
	"sync/atomic"
)

// Counter names one counter.
type Counter uint16

// The first twelve counters are the reference's (gpwstats), in the
// reference's order; the rest are pwgate's own. Their meanings are in Help.
// "ul" is the uplink (access network) port and "dl" the downlink (LAN)
// port; a drop is counted under the port the frame came in on.
const (
	ULRxPackets Counter = iota
	ULRxBytes
	ULRxBPDUs
	ULTxPackets
	ULTxBytes
	ULTxErrors
	DLRxPackets
	DLRxBytes
	DLRxBPDUs
	DLTxPackets
	DLTxBytes
	DLTxErrors

	ULTxFragments
	ULRxReassembled
	ULLastBPDU
	DLLastBPDU
	ULXDPToSocket
	ULXDPToKernel
	DLXDPToSocket
	ULSyscallErrors
	DLSyscallErrors
	ULLinkDowns
	DLLinkDowns
	WGRxDatagrams
	WGTxDatagrams
	WGRxInvalid
	WGRxLooped
	WGInvalidHandshakes
	WGHandshakeFailures
	WGHostToTunnel
	WGTunnelToHost
	WGBuffersMade
	ULTxFloodCopies
	EVPNMACsLearned
	EVPNMACsAged
	EVPNMACsMoved
	EVPNMACsDuplicate
	EVPNMACsOverLimit
	EVPNRoutesNotImported
	EVPNNotImportedNoVNI
	EVPNNotImportedOwnVTEP
	EVPNNotImportedFamily
	EVPNNotImportedVTEPPrefix
	EVPNNotImportedVTEPLimit
	EVPNNotImportedMACLimit
	EVPNARPSuppressed
	EVPNNDSuppressed
	EVPNARPFlooded
	EVPNNDFlooded
	EVPNAnswersDropped
	PeerKeepalivesTx
	PeerKeepalivesRx
	PeerKeepalivesLost
	PeerKeepalivesLate
	DLFollowPeerDowns
	LLDPTx
	LLDPRx
	LLDPRxBad
	LLDPRxIgnored

	ULDropTruncated
	ULDropNotPseudowire
	ULDropWrongPeer
	ULDropBadLength
	ULDropBadControlWord
	ULDropRunt
	ULDropLoneSecond
	ULDropIDMismatch
	ULDropReplaced
	ULDropOversize
	ULDropBadKeepalive
	ULDropLANDown
	ULDropTxRingFull
	ULDropRxRingFull
	ULDropNoSocket
	ULDropExtHeaders
	ULDropVXLANTruncated
	ULDropVXLANNotVXLAN
	ULDropVXLANNotForUs
	ULDropVXLANBadLength
	ULDropVXLANBadChecksum
	ULDropVXLANBadFlags
	ULDropNoVNI

	DLDropRunt
	DLDropOversize
	DLDropNoNextHop
	DLDropNoBuffer
	DLDropNoHeadroom
	DLDropNoSession
	DLDropNoVNI
	DLDropVXLANTooBig
	DLDropNoVTEP
	DLDropBadVTEP
	DLDropLocal
	DLDropTxRingFull
	DLDropRxRingFull
	DLDropNoSocket

	NumCounters
)

// NumReference is the number of counters the reference's statistics
// socket carries: the first NumReference counters, in order.
const NumReference = 12

var table = [NumCounters]struct{ name, help string }{
	{"ul_rx_packets", "pseudowire packets received from the peer"},
	{"ul_rx_bytes", "bytes of those packets, outer headers included"},
	{"ul_rx_bpdus", "BPDUs among the frames decapsulated from the uplink"},
	{"ul_tx_packets", "packets sent on the uplink; each piece of a split frame counts"},
	{"ul_tx_bytes", "bytes of those packets, outer headers included"},
	{"ul_tx_errors", "packets not sent on the uplink because its TX ring was full"},
	{"dl_rx_packets", "frames received from the LAN"},
	{"dl_rx_bytes", "bytes of those frames"},
	{"dl_rx_bpdus", "BPDUs among the frames received from the LAN"},
	{"dl_tx_packets", "frames sent to the LAN"},
	{"dl_tx_bytes", "bytes of those frames"},
	{"dl_tx_errors", "frames not sent to the LAN because its TX ring was full"},
	{"ul_tx_fragments", "pieces of split frames built for the uplink (two per frame)"},
	{"ul_rx_reassembled", "frames put back together from two pieces"},
	{"ul_last_bpdu", "Unix time of the last BPDU from the uplink, 0 if none yet"},
	{"dl_last_bpdu", "Unix time of the last BPDU from the LAN, 0 if none yet"},
	{"ul_xdp_to_socket", "uplink frames the XDP program steered to pwgated (pseudowire from the peer; WireGuard datagrams with wireguard.bind: xdp)"},
	{"ul_xdp_to_kernel", "uplink frames the XDP program passed to the kernel (everything that is not pseudowire)"},
	{"dl_xdp_to_socket", "LAN frames the XDP program steered to pwgated"},
	{"ul_syscall_errors", "failed system calls on the uplink's socket (link down or gone); frames stay queued"},
	{"dl_syscall_errors", "failed system calls on the LAN port's socket (link down or gone); frames stay queued"},
	{"ul_link_downs", "times the uplink's link was seen down (looked at every second)"},
	{"dl_link_downs", "times the LAN port's link was seen down (looked at every second)"},
	{"wg_rx_datagrams", "UDP datagrams received on the WireGuard port"},
	{"wg_tx_datagrams", "UDP datagrams sent from the WireGuard port"},
	{"wg_rx_invalid", "datagrams on the WireGuard port that are not WireGuard messages (unknown type or wrong length), dropped"},
	{"wg_rx_looped", "datagrams on the WireGuard port from an overlay address or through the tunnel itself, dropped (they would loop)"},
	{"wg_invalid_handshakes", "handshake messages that did not authenticate (a peer with a wrong key, or garbage), dropped"},
	{"wg_handshake_failures", "handshakes we started that got no answer within 5 seconds (retried)"},
	{"wg_host_to_tunnel", "packets from the host's overlay interface (pwwg0) into the tunnel"},
	{"wg_tunnel_to_host", "packets from the tunnel to the host's overlay interface (pwwg0)"},
	{"wg_buffers_made", "WireGuard message buffers made (64 KiB each, kept and reused): 4096 at the start, more only while more are in flight"},
	{"ul_tx_flood_copies", "VXLAN copies of broadcast, multicast and unknown-unicast frames, one per remote VTEP (ingress replication)"},
	{"evpn_macs_learned", "MACs learned on the LAN (and, without BGP, from remote VTEPs)"},
	{"evpn_macs_aged", "learned MACs forgotten after the aging time without a frame"},
	{"evpn_macs_moved", "MACs seen behind another port or VTEP than before (MAC mobility)"},
	{"evpn_macs_duplicate", "MACs found moving too often (RFC 7432 duplicate detection: 5 moves in 180 s); their moves are not announced until they settle"},
	{"evpn_macs_over_limit", "new MACs not learned because vxlan.mac_limit learned MACs are known (they are still flooded)"},
	{"evpn_routes_not_imported", "received EVPN routes not taken, for any of the reasons below (the sum of the evpn_routes_not_imported_* counters)"},
	{"evpn_routes_not_imported_no_vni", "received EVPN routes not taken: no configured VNI with their route target and VNI"},
	{"evpn_routes_not_imported_own_vtep", "received EVPN routes not taken: no next hop, or our own VTEP address as next hop"},
	{"evpn_routes_not_imported_family", "received EVPN routes not taken: their VTEP is not of our VTEP address's IP version"},
	{"evpn_routes_not_imported_vtep_prefix", "received EVPN routes not taken: their VTEP is outside vxlan.vtep_prefixes (or the neighbor's vtep_prefixes)"},
	{"evpn_routes_not_imported_vtep_limit", "received EVPN routes not taken: they name a new VTEP while as many VTEPs as the XDP program holds (1024) are in use; tried again as VTEPs go"},
	{"evpn_routes_not_imported_mac_limit", "received EVPN MAC routes not taken: vxlan.mac_limit MACs are known, or the MAC already has 16 routes; tried again as MACs go"},
	{"evpn_arp_suppressed", "ARP requests from the LAN not flooded (vxlan.vnis[].suppress): answered by pwgated for an address of a MAC+IP route, or kept on the LAN for a LAN host's own"},
	{"evpn_nd_suppressed", "IPv6 neighbour solicitations from the LAN not flooded, the same way"},
	{"evpn_arp_flooded", "ARP requests from the LAN flooded to the VTEPs with suppression on: for an unknown address, duplicate address probes and gratuitous ARP"},
	{"evpn_nd_flooded", "IPv6 neighbour solicitations from the LAN flooded with suppression on: for an unknown address, and duplicate address probes"},
	{"evpn_answers_dropped", "ARP replies and neighbour advertisements pwgated made but could not send on the LAN port (its queue to the decap goroutine full, or no free buffer)"},
	{"peer_keepalives_tx", "keepalives sent to the peer (peer.keepalive; also counted in ul_tx_packets)"},
	{"peer_keepalives_rx", "keepalives received from the peer (also counted in ul_rx_packets)"},
	{"peer_keepalives_lost", "keepalives from the peer that never came: gaps in their sequence numbers"},
	{"peer_keepalives_late", "keepalives from the peer that came after a later one (reordered): counted in peer_keepalives_lost at the gap, taken back from the loss pwctl status shows"},
	{"dl_follow_peer_downs", "times downlink.follow_peer took the LAN port down: at start until the peer is heard, and when it fell silent or stopped hearing us"},
	{"lldp_tx", "LLDPDUs sent (lldp section), on every LLDP port"},
	{"lldp_rx", "LLDPDUs received from neighbours and taken"},
	{"lldp_rx_bad", "LLDP frames received that are not a valid LLDPDU"},
	{"lldp_rx_ignored", "LLDPDUs received and not taken: more than 50 a second on a port, or a ninth neighbour on a port"},
	{"ul_drop_truncated", "uplink packets shorter than the outer headers and control word"},
	{"ul_drop_not_pseudowire", "uplink packets with the wrong EtherType, IP version or next header"},
	{"ul_drop_wrong_peer", "pseudowire (or VXLAN) packets from someone other than the peer (or a known VTEP); most are dropped in XDP"},
	{"ul_drop_bad_length", "uplink packets whose IPv6 payload length does not match"},
	{"ul_drop_bad_control_word", "uplink packets with a reserved control word"},
	{"ul_drop_runt", "uplink packets whose inner frame is shorter than an Ethernet header"},
	{"ul_drop_lone_second", "second halves with no first half held"},
	{"ul_drop_id_mismatch", "halves with different fragment IDs (both counted)"},
	{"ul_drop_replaced", "first halves replaced by a newer first half"},
	{"ul_drop_oversize", "frames longer than the largest frame accepted"},
	{"ul_drop_bad_keepalive", "packets from the peer with the keepalive control word whose body is not a keepalive"},
	{"ul_drop_lan_down", "frames from the peer not sent to the LAN while downlink.follow_peer holds the LAN port down (they would be queued and sent late)"},
	{"ul_drop_tx_ring_full", "frames for the LAN not sent because its TX ring was full"},
	{"ul_drop_rx_ring_full", "uplink packets the kernel dropped: RX ring full or no free buffer"},
	{"ul_drop_no_socket", "peer packets dropped in XDP because no socket served the queue"},
	{"ul_drop_ext_headers", "pseudowire packets behind IPv6 extension headers, dropped in XDP (the peer never sends them)"},
	{"ul_drop_vxlan_truncated", "VXLAN packets shorter than their headers"},
	{"ul_drop_vxlan_not_vxlan", "uplink packets steered to pwgated that are not IPv4/IPv6 UDP to the VXLAN port (or IP fragments)"},
	{"ul_drop_vxlan_not_for_us", "VXLAN packets to another address than our VTEP's"},
	{"ul_drop_vxlan_bad_length", "VXLAN packets whose IP or UDP length does not match"},
	{"ul_drop_vxlan_bad_checksum", "VXLAN packets with a wrong UDP checksum, or a zero one over IPv6 where not accepted"},
	{"ul_drop_vxlan_bad_flags", "VXLAN packets without the I flag"},
	{"ul_drop_no_vni", "VXLAN packets of a VNI not configured here"},

	{"dl_drop_runt", "LAN frames shorter than an Ethernet header"},
	{"dl_drop_oversize", "LAN frames too big to carry in two pieces"},
	{"dl_drop_no_next_hop", "LAN frames dropped because the next hop or own address is not known yet (ip6)"},
	{"dl_drop_no_buffer", "LAN frames dropped for want of a buffer for the second piece"},
	{"dl_drop_no_headroom", "LAN frames the driver delivered with too little room in front for the outer headers"},
	{"dl_drop_no_session", "LAN frames for the WireGuard peer dropped while no session was up, beyond the ones WireGuard holds until its handshake completes"},
	{"dl_drop_no_vni", "LAN frames of a VLAN (or untagged) that no VNI carries"},
	{"dl_drop_vxlan_too_big", "LAN frames too big for the VXLAN underlay's MTU (and not splittable to that VTEP)"},
	{"dl_drop_no_vtep", "LAN frames with nowhere to go: a VNI with no remote VTEP to flood to, or a VTEP whose next hop is not resolved"},
	{"dl_drop_bad_vtep", "LAN frames for a VTEP whose address is not of our VTEP address's IP version (never sent: such a VTEP is not imported)"},
	{"dl_drop_local", "LAN frames to a MAC on the LAN itself, dropped as a bridge does"},
	{"dl_drop_tx_ring_full", "packets for the uplink not sent because its TX ring was full"},
	{"dl_drop_rx_ring_full", "LAN frames the kernel dropped: RX ring full or no free buffer"},
	{"dl_drop_no_socket", "LAN frames dropped in XDP because no socket served the queue"},
}

// Name returns the counter's name, such as "ul_rx_bpdus".
func (c Counter) Name() string {
	if c < NumCounters {
		return table[c].name
	}
	return "unknown"
}

// Help says what the counter counts.
func (c Counter) Help() string {
	if c < NumCounters {
		return table[c].help
	}
	return ""
}

// IsTimestamp reports whether c holds a time (Unix nanoseconds in a
// Snapshot) rather than a count: merged as the latest, not added.
func (c Counter) IsTimestamp() bool { return c == ULLastBPDU || c == DLLastBPDU }

// Drop splits a drop counter's name into its port and reason
// ("ul", "lone_second"); ok is false for other counters.
func (c Counter) Drop() (port, reason string, ok bool) {
	port, reason, ok = strings.Cut(c.Name(), "_drop_")
	return port, reason, ok
}

// NotImported splits an EVPN refusal counter's name into its reason
// ("family"); ok is false for other counters, the total included.
func (c Counter) NotImported() (reason string, ok bool) {
	if reason, ok = strings.CutPrefix(c.Name(), "evpn_routes_not_imported_"); !ok {
		return "", false
	}
	return reason, true
}

// Lookup returns the counter with the given name.
func Lookup(name string) (Counter, bool) {
	for i, t := range table {
		if t.name == name {
			return Counter(i), true
		}
	}
	return 0, false
}

// Shard holds one goroutine's counters. Add, Set and Publish are for the
// owner only; Load may be called from anywhere.
type Shard struct {
	_    [64]byte
	c    [NumCounters]uint64 // owner's running values
	last [NumCounters]uint64 // values last published
	_    [64]byte
	pub  [NumCounters]atomic.Uint64
	_    [64]byte
}

// Add adds n to counter c.
func (s *Shard) Add(c Counter, n uint64) { s.c[c] += n }

// Inc adds one to counter c.
func (s *Shard) Inc(c Counter) { s.c[c]++ }

// Set sets counter c (for timestamps).
func (s *Shard) Set(c Counter, v uint64) { s.c[c] = v }

// Publish makes the owner's values visible to readers: one atomic store per
// counter that changed since the last call.
func (s *Shard) Publish() {
	for i := range s.c {
		if s.c[i] != s.last[i] {
			s.pub[i].Store(s.c[i])
			s.last[i] = s.c[i]
		}
	}
}

// Load returns the published value of c.
func (s *Shard) Load(c Counter) uint64 { return s.pub[c].Load() }

// Snapshot is a set of counter values at one moment.
type Snapshot [NumCounters]uint64

// Merge adds the published values of shards into s: counts are added,
// timestamps keep the latest.
func (s *Snapshot) Merge(shards ...*Shard) {
	for _, sh := range shards {
		for c := Counter(0); c < NumCounters; c++ {
			v := sh.Load(c)
			if c.IsTimestamp() {
				s[c] = max(s[c], v)
			} else {
				s[c] += v
			}
		}
	}
}

// Value returns c as shown to people and programs: counts as they are,
// timestamps in whole Unix seconds (0: never).
func (s *Snapshot) Value(c Counter) uint64 {
	if c.IsTimestamp() {
		return s[c] / 1e9
	}
	return s[c]
}

// Reference returns the counters the reference's statistics socket sends.
func (s *Snapshot) Reference() [NumReference]uint64 { return [NumReference]uint64(s[:NumReference]) }
