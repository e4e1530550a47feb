//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// The benchmark's generator: run with BPF_PROG_RUN in live-frames mode on
// one end of a veth pair, it sends each packet out of that end (XDP_TX),
// so that the other end receives it as an xdp_frame, the way a NIC driver
// hands XDP its receive pages, without the socket-buffer copies a socket
// generator costs. Up to three 16-bit fields of the packet are set per
// packet to base + (n mod flows), so that traffic spreads over many flows.
//
// With split_at set, the data holds two packets back to back (the two
// pieces of a split pseudowire frame): even runs send the first (the tail
// trimmed at split_at), odd runs the second (the head moved to split_at).
// Live-frames mode resets the packet's pointers before every run and keeps
// its bytes, so the pieces alternate as a sender's would.
//
// The pages are recycled with what the receiver left in them: a router
// (the kernel's forwarding, an XDP forwarder) rewrites the MACs and the TTL
// in place. With restore set, the first restore bytes are written again
// from the packet's own header each run (single packets only).

#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define MAX_FIELDS 3

// Set at load time.
volatile const __u32 flows = 1;
volatile const __u32 field_off[MAX_FIELDS] = {0, 0, 0}; // 0: unused
volatile const __u16 field_base[MAX_FIELDS] = {0, 0, 0};
volatile const __u32 split_at = 0;
#define MAX_RESTORE 64
volatile const __u32 restore = 0;
volatile const __u8 header[MAX_RESTORE] = {};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} seq SEC(".maps");

SEC("xdp")
int xdpgen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&seq, &zero);

	if (!n)
		return XDP_ABORTED;
	__u64 k = *n;
	*n += 1;
	if (split_at) {
		if (k & 1) {
			if (bpf_xdp_adjust_head(ctx, split_at))
				return XDP_ABORTED;
			return XDP_TX;
		}
		if (bpf_xdp_adjust_tail(ctx, -(int)((long)end - (long)data - split_at)))
			return XDP_ABORTED;
		data = (void *)(long)ctx->data;
		end = (void *)(long)ctx->data_end;
		k >>= 1;
	}
	if (restore) {
		if (data + MAX_RESTORE > end)
			return XDP_ABORTED;
#pragma unroll
		for (int i = 0; i < MAX_RESTORE; i++)
			if (i < restore)
				((__u8 *)data)[i] = header[i];
	}
	if (flows > 1) {
		__u16 v = k % flows;
#pragma unroll
		for (int i = 0; i < MAX_FIELDS; i++) {
			__u32 off = field_off[i];
			if (off == 0 || off > 2048)
				continue;
			__u8 *p = data + off;
			if ((void *)(p + 2) > end)
				continue;
			*(__u16 *)p = bpf_htons(field_base[i] + v);
		}
	}
	return XDP_TX;
}

char __license[] SEC("license") = "Dual BSD/GPL";
