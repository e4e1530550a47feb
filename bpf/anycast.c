//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// pwgate's anycast forwarder. On the client-facing port, a packet to a VIP
// (a prefix in ac_vips) goes to one of the VIP's servers: the VIP's Maglev
// table (ac_rings, one inner array per VIP, swapped whole by pwgated) is
// indexed by a hash of the 5-tuple (source and destination address,
// protocol, ports), of the 3-tuple for fragments, packets behind IPv6
// extension headers and ICMP other than errors, and for ICMP errors of the
// 5-tuple of the packet inside, turned around, so that "fragmentation
// needed" reaches the server whose packet was too big. The packet's MACs
// become the server's next hop's, its TTL or hop limit drops by one (the
// IPv4 checksum updated), and it leaves by the server's port
// (bpf_redirect). Everything else is passed to the kernel unchanged
// (frames not addressed to the port's own MAC too), and so are VIP packets
// whose TTL would expire (the kernel sends the ICMP time exceeded). Truncated VIP packets are dropped; every case is
// counted.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define MAX_VIPS 256

// ICMP and ICMPv6 headers as far as needed (linux/icmp.h pulls in libc).
struct icmphdr {
	__u8 type;
	__u8 code;
	__u16 checksum;
	__u32 rest;
};
#define ICMP_DEST_UNREACH 3
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#define icmp6hdr icmphdr
#define icmp6_type type
#define MAX_BACKENDS 4096

// A VIP prefix: IPv4 as ::ffff:a.b.c.d with 96 added to its length.
struct vip_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct vip {
	__u32 id; // index of its ring and counters
	__u32 pad;
};

// A server's next hop: the port it is reached by and the MACs to write.
// gen changes whenever the index is given to another server.
struct backend {
	__u32 ifindex; // 0: none (the server is gone)
	__u32 gen;
	__u8 dmac[6];
	__u8 smac[6];
};

struct vip_stats {
	__u64 packets;
	__u64 bytes;
	__u64 no_backend;
};

struct backend_stats {
	__u64 packets;
	__u64 bytes;
};

// Counter indexes; keep in step with anycast.go.
enum {
	AC_PASS,         // not for a VIP: to the kernel
	AC_FORWARDED,    // to a server
	AC_TTL_EXPIRED,  // for a VIP with TTL or hop limit 1 or 0: to the kernel
	AC_TRUNCATED,    // for a VIP, headers cut short: dropped
	AC_FRAGMENTS,    // fragments, hashed on the 3-tuple
	AC_EXT_HEADERS,  // IPv6 with extension headers, hashed on the 3-tuple
	AC_ICMP_ERRORS,  // ICMP errors, hashed on the packet inside
	AC_NO_BACKEND,   // for a VIP with no server: dropped
	AC_NEW_FLOWS,    // flows not in the flow table: placed by the Maglev table
	AC_NUM_COUNTERS,
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MAX_VIPS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct vip_key);
	__type(value, struct vip);
} ac_vips SEC(".maps");

struct ring {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65537); // the table size: set by pwgated at load time
	__type(key, __u32);
	__type(value, __u32); // backend index + 1; 0: no server
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, MAX_VIPS);
	__type(key, __u32);
	__array(values, struct ring);
} ac_rings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct backend);
} ac_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_VIPS);
	__type(key, __u32);
	__type(value, struct vip_stats);
} ac_vip_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct backend_stats);
} ac_backend_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AC_NUM_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} ac_counters SEC(".maps");

// The flow table: which server each flow went to. A flow stays with its
// server while the server is there (in the Maglev table or not: a drained
// server keeps its flows), whatever the table says now; a TCP SYN opens
// a new one (opens).
struct flow_val {
	__u32 backend;
	__u32 gen;
};

// The flow a packet belongs to, as the client sent it.
struct flow {
	__u32 src[4];
	__u32 dst[4];
	__u32 ports; // source << 16 | destination; 0 for the 3-tuple
	__u32 proto;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct flow);
	__type(value, struct flow_val);
} ac_flows SEC(".maps");

// Connections being opened: the server a SYN was sent to, until the
// connection's next segment confirms it and moves it to ac_flows. A flood
// of SYNs from spoofed sources churns this table, never the established
// flows, which would otherwise be evicted and, during a drain, move
// servers.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flow);
	__type(value, struct flow_val);
} ac_opening SEC(".maps");

// The forwarder's ports: a frame is only forwarded when it is addressed to
// the port it came in on (a router takes no frames for others, such as
// unknown unicast a switch floods).
struct port {
	__u8 mac[6];
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32); // ifindex
	__type(value, struct port);
} ac_ports SEC(".maps");

// Set at load time: the ring's size (a prime).
volatile const __u32 ac_table_size = 65537;

static __always_inline int same_mac(const __u8 *a, const __u8 *b)
{
	return *(const __u32 *)a == *(const __u32 *)b && *(const __u16 *)(a + 4) == *(const __u16 *)(b + 4);
}

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&ac_counters, &idx);
	if (v)
		*v += 1;
}

// MurmurHash3's 32-bit mixing: the same hash on every forwarder.
static __always_inline __u32 mix(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51;
	k = (k << 15) | (k >> 17);
	k *= 0x1b873593;
	h ^= k;
	h = (h << 13) | (h >> 19);
	return h * 5 + 0xe6546b64;
}

static __always_inline __u32 fmix(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}


static __always_inline __u32 flow_hash(struct flow *f)
{
	__u32 h = 0x70776761; // "pwga"
	for (int i = 0; i < 4; i++)
		h = mix(h, f->src[i]);
	for (int i = 0; i < 4; i++)
		h = mix(h, f->dst[i]);
	h = mix(h, f->ports);
	h = mix(h, f->proto);
	return fmix(h);
}

// ports reads a TCP, UDP or SCTP header's ports at p; 0 if the protocol
// has none; -1 if they are cut short.
static __always_inline int read_ports(__u8 proto, void *p, void *end, __u32 *ports)
{
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != IPPROTO_SCTP) {
		*ports = 0;
		return 0;
	}
	__be16 *pp = p;
	if ((void *)(pp + 2) > end)
		return -1;
	*ports = (__u32)bpf_ntohs(pp[0]) << 16 | bpf_ntohs(pp[1]);
	return 0;
}

// opens says whether a TCP segment at p opens a connection: SYN without
// ACK. A client that reuses a closed connection's ports opens a new
// connection, which the Maglev table places (a drained server takes no
// new ones), not the flow table.
static __always_inline int opens(__u8 proto, void *p, void *end)
{
	__u8 *flags = p + 13;
	if (proto != IPPROTO_TCP || (void *)(flags + 1) > end)
		return 0;
	return (*flags & 0x12) == 0x02;
}

static __always_inline void map4(__u32 *dst, __be32 a)
{
	dst[0] = 0;
	dst[1] = 0;
	dst[2] = bpf_htonl(0xffff);
	dst[3] = a;
}

// forward sends the packet of flow f to its server: the flow table's, or
// for a new flow (or a connection opening: fresh) the Maglev table's. A
// SYN's server is kept in ac_opening and enters ac_flows with the
// connection's next segment.
static __always_inline int forward(struct xdp_md *ctx, struct vip *v, struct flow *f, int fresh, struct ethhdr *eth,
				   __u8 *ttl, struct iphdr *ip4)
{
	__u32 id = v->id;
	struct vip_stats *vs = bpf_map_lookup_elem(&ac_vip_stats, &id);
	__u32 b = 0;
	struct backend *be = 0;
	struct flow_val *fv = 0;
	int opening = 0;
	if (fresh) {
		bpf_map_delete_elem(&ac_flows, f); // the client reopens: the old connection is over
	} else {
		fv = bpf_map_lookup_elem(&ac_flows, f);
		if (!fv) {
			fv = bpf_map_lookup_elem(&ac_opening, f);
			opening = fv != 0;
		}
	}
	if (fv) {
		b = fv->backend;
		be = bpf_map_lookup_elem(&ac_backends, &b);
		if (be && (!be->ifindex || be->gen != fv->gen))
			be = 0;
		if (be && opening) { // confirmed: an established flow now
			struct flow_val nv = {.backend = b, .gen = be->gen};
			bpf_map_update_elem(&ac_flows, f, &nv, BPF_ANY);
			bpf_map_delete_elem(&ac_opening, f);
		}
	}
	if (!be) {
		void *ring = bpf_map_lookup_elem(&ac_rings, &id);
		__u32 *slot = 0;
		if (ring) {
			__u32 i = flow_hash(f) % ac_table_size;
			slot = bpf_map_lookup_elem(ring, &i);
		}
		b = slot ? *slot : 0;
		if (b) {
			b -= 1;
			be = bpf_map_lookup_elem(&ac_backends, &b);
		}
		if (!be || !be->ifindex) {
			if (vs)
				vs->no_backend++;
			count(AC_NO_BACKEND);
			return XDP_DROP;
		}
		struct flow_val nv = {.backend = b, .gen = be->gen};
		bpf_map_update_elem(fresh ? (void *)&ac_opening : (void *)&ac_flows, f, &nv, BPF_ANY);
		count(AC_NEW_FLOWS);
	}
	__u64 len = ctx->data_end - ctx->data;
	if (ip4) {
		// RFC 1141's incremental update, as the kernel's ip_decrease_ttl.
		__u32 check = ip4->check;
		check += bpf_htons(0x0100);
		ip4->check = (__sum16)(check + (check >= 0xFFFF));
	}
	(*ttl)--;
	__builtin_memcpy(eth->h_dest, be->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, be->smac, ETH_ALEN);
	if (vs) {
		vs->packets++;
		vs->bytes += len;
	}
	struct backend_stats *bs = bpf_map_lookup_elem(&ac_backend_stats, &b);
	if (bs) {
		bs->packets++;
		bs->bytes += len;
	}
	count(AC_FORWARDED);
	return bpf_redirect(be->ifindex, 0);
}

static __always_inline int do_ip4(struct xdp_md *ctx, struct ethhdr *eth, void *p, void *end)
{
	struct iphdr *ip = p;
	if ((void *)(ip + 1) > end)
		return XDP_PASS; // the kernel judges what is not even an IPv4 header
	struct vip_key k = {.prefixlen = 128};
	map4((__u32 *)k.addr, ip->daddr);
	struct vip *v = bpf_map_lookup_elem(&ac_vips, &k);
	if (!v) {
		count(AC_PASS);
		return XDP_PASS;
	}
	__u32 hl = ip->ihl * 4;
	if (hl < sizeof(*ip) || p + hl > end || bpf_ntohs(ip->tot_len) < hl) {
		count(AC_TRUNCATED);
		return XDP_DROP;
	}
	if (ip->ttl <= 1) {
		count(AC_TTL_EXPIRED);
		return XDP_PASS;
	}
	struct flow f = {.proto = ip->protocol};
	int fresh = 0;
	map4(f.src, ip->saddr);
	map4(f.dst, ip->daddr);
	void *l4 = p + hl;
	if (ip->frag_off & bpf_htons(0x3fff)) { // MF or an offset
		count(AC_FRAGMENTS);
	} else if (ip->protocol == IPPROTO_ICMP) {
		struct icmphdr *ic = l4;
		if ((void *)(ic + 1) > end) {
			count(AC_TRUNCATED);
			return XDP_DROP;
		}
		if (ic->type == ICMP_DEST_UNREACH || ic->type == ICMP_TIME_EXCEEDED || ic->type == ICMP_PARAMETERPROB) {
			// The packet inside went from the server (the VIP) to the
			// client: its flow turned around is the client's.
			struct iphdr *in = (void *)(ic + 1);
			if ((void *)(in + 1) > end || in->ihl < 5) {
				count(AC_TRUNCATED);
				return XDP_DROP;
			}
			count(AC_ICMP_ERRORS);
			f.proto = in->protocol;
			map4(f.src, in->daddr);
			map4(f.dst, in->saddr);
			__u32 ports;
			if (read_ports(in->protocol, (void *)in + in->ihl * 4, end, &ports) < 0) {
				count(AC_TRUNCATED);
				return XDP_DROP;
			}
			f.ports = ports >> 16 | ports << 16;
		}
	} else if (read_ports(ip->protocol, l4, end, &f.ports) < 0) {
		count(AC_TRUNCATED);
		return XDP_DROP;
	} else {
		fresh = opens(ip->protocol, l4, end);
	}
	return forward(ctx, v, &f, fresh, eth, &ip->ttl, ip);
}

static __always_inline int is_ext(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS || nh == IPPROTO_FRAGMENT ||
	       nh == IPPROTO_AH;
}

static __always_inline int do_ip6(struct xdp_md *ctx, struct ethhdr *eth, void *p, void *end)
{
	struct ipv6hdr *ip = p;
	if ((void *)(ip + 1) > end)
		return XDP_PASS;
	struct vip_key k = {.prefixlen = 128};
	__builtin_memcpy(k.addr, &ip->daddr, 16);
	struct vip *v = bpf_map_lookup_elem(&ac_vips, &k);
	if (!v) {
		count(AC_PASS);
		return XDP_PASS;
	}
	if (ip->hop_limit <= 1) {
		count(AC_TTL_EXPIRED);
		return XDP_PASS;
	}
	struct flow f = {.proto = ip->nexthdr};
	int fresh = 0;
	__builtin_memcpy(f.src, &ip->saddr, 16);
	__builtin_memcpy(f.dst, &ip->daddr, 16);
	void *l4 = ip + 1;
	if (is_ext(ip->nexthdr)) {
		// Fragments and packets behind extension headers: the 3-tuple
		// (ports may be in another fragment or far behind).
		count(ip->nexthdr == IPPROTO_FRAGMENT ? AC_FRAGMENTS : AC_EXT_HEADERS);
		f.proto = 0;
	} else if (ip->nexthdr == IPPROTO_ICMPV6) {
		struct icmp6hdr *ic = l4;
		if ((void *)(ic + 1) > end) {
			count(AC_TRUNCATED);
			return XDP_DROP;
		}
		if (ic->icmp6_type >= 1 && ic->icmp6_type <= 4) { // errors
			struct ipv6hdr *in = (void *)(ic + 1);
			if ((void *)(in + 1) > end) {
				count(AC_TRUNCATED);
				return XDP_DROP;
			}
			count(AC_ICMP_ERRORS);
			f.proto = in->nexthdr;
			__builtin_memcpy(f.src, &in->daddr, 16);
			__builtin_memcpy(f.dst, &in->saddr, 16);
			__u32 ports = 0;
			if (!is_ext(in->nexthdr) && read_ports(in->nexthdr, in + 1, end, &ports) < 0) {
				count(AC_TRUNCATED);
				return XDP_DROP;
			}
			if (is_ext(in->nexthdr))
				f.proto = 0;
			f.ports = ports >> 16 | ports << 16;
		}
	} else if (read_ports(ip->nexthdr, l4, end, &f.ports) < 0) {
		count(AC_TRUNCATED);
		return XDP_DROP;
	} else {
		fresh = opens(ip->nexthdr, l4, end);
	}
	return forward(ctx, v, &f, fresh, eth, &ip->hop_limit, 0);
}

SEC("xdp")
int pwgate_anycast(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	__u32 in = ctx->ingress_ifindex;
	struct port *port = bpf_map_lookup_elem(&ac_ports, &in);
	if (!port || !same_mac(eth->h_dest, port->mac)) {
		count(AC_PASS); // not ours to route: the kernel decides
		return XDP_PASS;
	}
	switch (eth->h_proto) {
	case bpf_htons(ETH_P_IP):
		return do_ip4(ctx, eth, eth + 1, end);
	case bpf_htons(ETH_P_IPV6):
		return do_ip6(ctx, eth, eth + 1, end);
	}
	count(AC_PASS);
	return XDP_PASS;
}

char __license[] SEC("license") = "Dual BSD/GPL";
