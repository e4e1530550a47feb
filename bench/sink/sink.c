//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// The benchmark's sink: counts the test traffic that reaches it, by kind,
// and drops it; everything else goes to the kernel.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

// Kinds; keep in step with sink.go.
enum {
	KIND_PLAIN,  // test frames, EtherType 0x88b5
	KIND_PW_ETH, // pseudowire in Ethernet
	KIND_PW_IP6, // pseudowire in IPv6
	KIND_VXLAN,  // VXLAN over IPv6, UDP port 4789
	KIND_WG,     // WireGuard transport messages over IPv6, UDP port 51820 (handshakes pass)
	KIND_IP4_UDP, // IPv4 UDP to port 9 (discard): the anycast forwarder's test traffic
	KIND_ARP_REPLY, // ARP replies (EVPN's ARP suppression answering the generator)
	NUM_KINDS,
};

// Per kind: packets, frames (a split frame's two pieces count once) and bytes.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NUM_KINDS * 3);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

static __always_inline void add(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&counts, &idx);
	if (v)
		*v += n;
}

static __always_inline int take(__u32 kind, __u32 len, int whole)
{
	add(kind * 3, 1);
	if (whole)
		add(kind * 3 + 1, 1);
	add(kind * 3 + 2, len);
	return XDP_DROP;
}

SEC("xdp")
int sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 len = end - data;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(0x88b5))
		return take(KIND_PLAIN, len, 1);
	if (eth->h_proto == bpf_htons(ETH_P_ARP)) {
		__u8 *arp = (void *)(eth + 1);
		if ((void *)(arp + 8) > end)
			return XDP_PASS;
		if (arp[6] == 0 && arp[7] == 2) // operation: reply
			return take(KIND_ARP_REPLY, len, 1);
		return XDP_PASS;
	}
	if (eth->h_proto == bpf_htons(0x96fc)) {
		__u8 *cw = (void *)(eth + 1);
		if ((void *)(cw + 2) > end)
			return XDP_PASS;
		return take(KIND_PW_ETH, len, !(cw[1] & 0x40));
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return XDP_PASS;
		if (ip6->nexthdr == 252) {
			__u8 *cw = (void *)(ip6 + 1);
			if ((void *)(cw + 2) > end)
				return XDP_PASS;
			return take(KIND_PW_IP6, len, !(cw[1] & 0x40));
		}
		if (ip6->nexthdr == 17) {
			struct udphdr *udp = (void *)(ip6 + 1);
			if ((void *)(udp + 1) > end)
				return XDP_PASS;
			if (udp->dest == bpf_htons(4789))
				return take(KIND_VXLAN, len, 1);
			if (udp->dest == bpf_htons(51820)) {
				__u8 *type = (void *)(udp + 1);
				if ((void *)(type + 1) > end)
					return XDP_PASS;
				if (*type == 4)
					return take(KIND_WG, len, 1);
			}
		}
	}
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end || ip->ihl != 5 || ip->protocol != 17)
			return XDP_PASS;
		struct udphdr *udp = (void *)(ip + 1);
		if ((void *)(udp + 1) > end)
			return XDP_PASS;
		if (udp->dest == bpf_htons(9))
			return take(KIND_IP4_UDP, len, 1);
	}
	return XDP_PASS;
}

char __license[] SEC("license") = "Dual BSD/GPL";
