//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// XDP programs of pwgated. The downlink belongs wholly to the pseudowire:
// every frame goes to the AF_XDP socket. On the uplink only pseudowire
// frames from the configured peer go to the socket; frames that claim to be
// pseudowire but come from anyone else are dropped and counted; everything
// else (NDP, SSH, BGP, ...) is passed to the kernel.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define PW_ETHERTYPE 0x96fc
#define PW_IPPROTO 252
#define MODE_ETH 1
#define MODE_IP6 2
#define MAX_QUEUES 64

// Written by pwgated at start and on reload.
struct config {
	__u8 mode;
	__u8 peer_mac[6];
	__u8 pad;
	__u8 peer_addr[16];
};

// Counter indexes; keep in step with bpf/maps.go.
enum {
	UL_TO_SOCKET,  // pseudowire frames from the peer, redirected to the socket
	UL_STRANGER,   // pseudowire frames from anyone else, dropped
	UL_PASS,       // other frames, passed to the kernel
	UL_NO_SOCKET,  // peer frames dropped because no socket serves the queue
	DL_TO_SOCKET,  // downlink frames redirected to the socket
	DL_NO_SOCKET,  // downlink frames dropped because no socket serves the queue
	NUM_COUNTERS,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} pw_config SEC(".maps");

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
	return to_socket(&dl_sockets, ctx->rx_queue_index, DL_TO_SOCKET, DL_NO_SOCKET);
}

static __always_inline int same16(const __u8 *a, const __u8 *b)
{
	const __u64 *x = (const __u64 *)a, *y = (const __u64 *)b;
	return x[0] == y[0] && x[1] == y[1];
}

static __always_inline int same6(const __u8 *a, const __u8 *b)
{
	return *(const __u32 *)a == *(const __u32 *)b && *(const __u16 *)(a + 4) == *(const __u16 *)(b + 4);
}

SEC("xdp")
int pwgate_uplink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 zero = 0;
	struct config *c;

	if ((void *)(eth + 1) > end)
		goto pass;
	c = bpf_map_lookup_elem(&pw_config, &zero);
	if (!c)
		goto pass;
	if (c->mode == MODE_ETH) {
		if (eth->h_proto != bpf_htons(PW_ETHERTYPE))
			goto pass;
		if (!same6(eth->h_source, c->peer_mac))
			goto stranger;
	} else {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if (eth->h_proto != bpf_htons(ETH_P_IPV6) || (void *)(ip6 + 1) > end)
			goto pass;
		if (ip6->nexthdr != PW_IPPROTO)
			goto pass;
		if (!same16((const __u8 *)&ip6->saddr, c->peer_addr))
			goto stranger;
	}
	return to_socket(&ul_sockets, ctx->rx_queue_index, UL_TO_SOCKET, UL_NO_SOCKET);
stranger:
	count(UL_STRANGER);
	return XDP_DROP;
pass:
	count(UL_PASS);
	return XDP_PASS;
}

char __license[] SEC("license") = "Dual BSD/GPL";
