//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// XDP programs of pwgated. The downlink belongs wholly to the data path:
// every frame goes to the AF_XDP socket, except, with pwgated's LLDP on
// (dl_lldp), LLDP frames, which stop at pwgate as at any bridge and go to
// the kernel, where pwgated's LLDP reads them. On the uplink only frames from a
// configured peer go to the socket: pseudowire from the peer (eth and ip6
// modes), VXLAN from a known VTEP (vxlan mode); frames that claim to be
// pseudowire or VXLAN but come from anyone else are dropped and counted;
// everything else (NDP, SSH, BGP, ...) is passed to the kernel. In
// WireGuard mode (the XDP bind) every UDP datagram to WireGuard's port goes
// to the socket, from anyone: WireGuard's peers roam, and wireguard-go
// authenticates what it takes.
//
// The mode is a constant set when the program is loaded (0: nothing
// configured, everything passes). The peers are the keys of a hash map:
// pwgated adds a new peer before it deletes the old one, and a lookup sees
// a whole key or none, so a packet never meets a half-written peer.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define PW_ETHERTYPE 0x96fc
#define PW_IPPROTO 252
#define MODE_ETH 1
#define MODE_IP6 2
#define MODE_VXLAN 3
#define MODE_WG 4
#define VXLAN_PORT 4789
#define MAX_QUEUES 64
#define MAX_PEERS 1024
#define MAX_EXT_HEADERS 4

// Set by pwgated at load time (bpf.Load).
volatile const __u32 pw_mode = 0;
// Set by pwgated at load time: 1 passes the downlink's LLDP to the kernel.
volatile const __u32 dl_lldp = 0;
// Set by pwgated at load time: WireGuard's UDP port (MODE_WG).
volatile const __u16 wg_port = 0;

// A peer: its IPv6 address (ip6 mode; a VTEP's in vxlan mode, IPv4
// addresses mapped as ::ffff:a.b.c.d), or its MAC in the first six bytes
// and zeros after (eth mode).
struct peer_key {
	__u8 addr[16];
};

// Counter indexes; keep in step with bpf.go.
enum {
	UL_TO_SOCKET,   // pseudowire frames from a peer, redirected to the socket
	UL_STRANGER,    // pseudowire frames from anyone else, dropped
	UL_PASS,        // other frames, passed to the kernel
	UL_NO_SOCKET,   // peer frames dropped because no socket serves the queue
	DL_TO_SOCKET,   // downlink frames redirected to the socket
	DL_NO_SOCKET,   // downlink frames dropped because no socket serves the queue
	UL_EXT_HEADERS, // pseudowire packets behind IPv6 extension headers, dropped
	NUM_COUNTERS,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PEERS);
	__type(key, struct peer_key);
	__type(value, __u32);
} pw_peers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NUM_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} pw_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} ul_sockets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} dl_sockets SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&pw_counters, &idx);
	if (v)
		*v += 1;
}

static __always_inline int to_socket(void *sockets, __u32 queue, __u32 ok, __u32 none)
{
	if (!bpf_map_lookup_elem(sockets, &queue)) {
		count(none);
		return XDP_DROP;
	}
	count(ok);
	return bpf_redirect_map(sockets, queue, XDP_DROP);
}

SEC("xdp")
int pwgate_downlink(struct xdp_md *ctx)
{
	if (dl_lldp) {
		void *data = (void *)(long)ctx->data;
		struct ethhdr *eth = data;
		if ((void *)(eth + 1) <= (void *)(long)ctx->data_end && eth->h_proto == bpf_htons(ETH_P_LLDP))
			return XDP_PASS;
	}
	return to_socket(&dl_sockets, ctx->rx_queue_index, DL_TO_SOCKET, DL_NO_SOCKET);
}

// ext_next walks the IPv6 extension headers after the fixed header and
// returns the upper-layer protocol, or -1 when the chain is longer than we
// look or runs past the packet.
static __always_inline int ext_next(__u8 nh, void *p, void *end)
{
#pragma unroll
	for (int i = 0; i < MAX_EXT_HEADERS; i++) {
		__u8 *h = p;
		__u32 len;

		switch (nh) {
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS:
			if ((void *)(h + 2) > end)
				return -1;
			len = ((__u32)h[1] + 1) * 8;
			break;
		case IPPROTO_FRAGMENT:
			if ((void *)(h + 2) > end)
				return -1;
			len = 8;
			break;
		case IPPROTO_AH:
			if ((void *)(h + 2) > end)
				return -1;
			len = ((__u32)h[1] + 2) * 4;
			break;
		default:
			return nh;
		}
		nh = h[0];
		p += len;
	}
	return -1;
}

// udp_to reports whether the frame at eth is a UDP datagram to port
// (network order) over IPv6, or IPv4 without options and not a fragment,
// and puts its source address into key (IPv4 mapped).
static __always_inline int udp_to(struct ethhdr *eth, void *end, __u16 port, struct peer_key *key)
{
	struct udphdr *udp;

	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end || ip6->nexthdr != IPPROTO_UDP)
			return 0;
		udp = (void *)(ip6 + 1);
		__builtin_memcpy(key->addr, &ip6->saddr, sizeof(key->addr));
	} else if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP || ip->ihl != 5 ||
		    (ip->frag_off & bpf_htons(0x3fff)))
			return 0;
		udp = (void *)(ip + 1);
		key->addr[10] = 0xff;
		key->addr[11] = 0xff;
		__builtin_memcpy(&key->addr[12], &ip->saddr, 4);
	} else {
		return 0;
	}
	return (void *)(udp + 1) <= end && udp->dest == port;
}

SEC("xdp")
int pwgate_uplink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct peer_key key = {};

	if (pw_mode == 0 || (void *)(eth + 1) > end)
		goto pass;
	if (pw_mode == MODE_WG) {
		if (!udp_to(eth, end, bpf_htons(wg_port), &key))
			goto pass;
		return to_socket(&ul_sockets, ctx->rx_queue_index, UL_TO_SOCKET, UL_NO_SOCKET);
	}
	if (pw_mode == MODE_VXLAN) {
		if (!udp_to(eth, end, bpf_htons(VXLAN_PORT), &key))
			goto pass;
	} else if (pw_mode == MODE_ETH) {
		if (eth->h_proto != bpf_htons(PW_ETHERTYPE))
			goto pass;
		__builtin_memcpy(key.addr, eth->h_source, ETH_ALEN);
	} else {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if (eth->h_proto != bpf_htons(ETH_P_IPV6) || (void *)(ip6 + 1) > end)
			goto pass;
		if (ip6->nexthdr != PW_IPPROTO) {
			if (ext_next(ip6->nexthdr, ip6 + 1, end) == PW_IPPROTO) {
				count(UL_EXT_HEADERS);
				return XDP_DROP;
			}
			goto pass;
		}
		__builtin_memcpy(key.addr, &ip6->saddr, sizeof(key.addr));
	}
	if (!bpf_map_lookup_elem(&pw_peers, &key)) {
		count(UL_STRANGER);
		return XDP_DROP;
	}
	return to_socket(&ul_sockets, ctx->rx_queue_index, UL_TO_SOCKET, UL_NO_SOCKET);
pass:
	count(UL_PASS);
	return XDP_PASS;
}

char __license[] SEC("license") = "Dual BSD/GPL";
