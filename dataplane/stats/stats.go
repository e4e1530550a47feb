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
// reference's order; the rest are pwgate's own. "ul" is the uplink (access
// network) port and "dl" the downlink (LAN) port; a drop is counted under
// the port the frame came in on.
const (
	ULRxPackets Counter = iota // pseudowire packets received from the peer
	ULRxBytes                  // their bytes, outer headers included
	ULRxBPDUs                  // BPDUs among the frames decapsulated from the uplink
	ULTxPackets                // packets sent on the uplink (each piece of a split frame counts)
	ULTxBytes                  // their bytes, outer headers included
	ULTxErrors                 // packets not sent on the uplink: its TX ring was full
	DLRxPackets                // frames received from the LAN
	DLRxBytes                  // their bytes
	DLRxBPDUs                  // BPDUs among them
	DLTxPackets                // frames sent to the LAN
	DLTxBytes                  // their bytes
	DLTxErrors                 // frames not sent to the LAN: its TX ring was full

	ULTxFragments   // uplink packets that are pieces of a split frame (two per frame)
	ULRxReassembled // frames put back together from two pieces
	ULLastBPDU      // Unix time in ns of the last BPDU from the uplink (0: never)
	DLLastBPDU      // Unix time in ns of the last BPDU from the LAN (0: never)

	ULDropTruncated      // shorter than the outer headers and control word
	ULDropNotPseudowire  // wrong EtherType, IP version or next header
	ULDropWrongPeer      // pseudowire from someone other than the peer (mostly dropped in XDP)
	ULDropBadLength      // IPv6 payload length inconsistent with the packet
	ULDropBadControlWord // reserved control word
	ULDropRunt           // inner frame shorter than an Ethernet header
	ULDropLoneSecond     // second half with no first half held
	ULDropIDMismatch     // halves with different IDs (both counted)
	ULDropReplaced       // first half replaced by a newer first half
	ULDropOversize       // frame over the maximum frame size
	ULDropTxRingFull     // decapsulated frame not sent: LAN TX ring full
	ULDropRxRingFull     // dropped by the kernel: uplink socket's RX ring full or no buffer
	ULDropNoSocket       // peer packet dropped in XDP: no socket on the queue

	DLDropRunt       // frame shorter than an Ethernet header
	DLDropOversize   // frame too big for two pieces
	DLDropNoNextHop  // ip6 mode: no next hop (or no own address) yet
	DLDropNoBuffer   // no spare buffer for the second piece
	DLDropTxRingFull // not sent: uplink TX ring full
	DLDropRxRingFull // dropped by the kernel: LAN socket's RX ring full or no buffer
	DLDropNoSocket   // dropped in XDP: no socket on the queue

	NumCounters
)

// NumReference is the number of counters the reference's statistics
// socket carries: the first NumReference counters, in order.
const NumReference = 12

var names = [NumCounters]string{
	"ul_rx_packets", "ul_rx_bytes", "ul_rx_bpdus", "ul_tx_packets", "ul_tx_bytes", "ul_tx_errors",
	"dl_rx_packets", "dl_rx_bytes", "dl_rx_bpdus", "dl_tx_packets", "dl_tx_bytes", "dl_tx_errors",
	"ul_tx_fragments", "ul_rx_reassembled", "ul_last_bpdu", "dl_last_bpdu",
	"ul_drop_truncated", "ul_drop_not_pseudowire", "ul_drop_wrong_peer", "ul_drop_bad_length",
	"ul_drop_bad_control_word", "ul_drop_runt", "ul_drop_lone_second", "ul_drop_id_mismatch",
	"ul_drop_replaced", "ul_drop_oversize", "ul_drop_tx_ring_full", "ul_drop_rx_ring_full", "ul_drop_no_socket",
	"dl_drop_runt", "dl_drop_oversize", "dl_drop_no_next_hop", "dl_drop_no_buffer",
	"dl_drop_tx_ring_full", "dl_drop_rx_ring_full", "dl_drop_no_socket",
}

// Name returns the counter's name, such as "ul_rx_bpdus".
func (c Counter) Name() string {
	if c < NumCounters {
		return names[c]
	}
	return "unknown"
}

// IsTimestamp reports whether c holds a time rather than a count: summed
// as the latest, not added.
func (c Counter) IsTimestamp() bool { return c == ULLastBPDU || c == DLLastBPDU }

// Drop splits a drop counter's name into its port and reason
// ("ul", "lone_second"); ok is false for other counters.
func (c Counter) Drop() (port, reason string, ok bool) {
	port, reason, ok = strings.Cut(c.Name(), "_drop_")
	return port, reason, ok
}

// Lookup returns the counter with the given name.
func Lookup(name string) (Counter, bool) {
	for i, n := range names {
		if n == name {
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

// Reference returns the counters the reference's statistics socket sends.
func (s *Snapshot) Reference() [NumReference]uint64 { return [NumReference]uint64(s[:NumReference]) }
