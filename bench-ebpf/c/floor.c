// The floor's work written in C, built with clang: a yardstick for the Rust floor
// (`floor_redirect` in ../src/main.rs), never part of the product. Parses Ethernet (one
// 802.1Q tag), IPv4 (options, fragments) or IPv6, and UDP with the same length checks, takes
// the slot `source port % 4`, writes the slot's Ethernet addresses and redirects through the
// slot's devmap entry. XDP_PASS program beside it, for the same run's baseline.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define SLOTS 4

struct macs {
	unsigned char addresses[12];
};

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} C_FLOOR_PORTS SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SLOTS);
	__type(key, __u32);
	__type(value, struct macs);
} C_FLOOR_MACS SEC(".maps");

SEC("xdp")
int c_floor_redirect(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	__u16 proto = eth->h_proto;
	void *l3 = eth + 1;
	if (proto == bpf_htons(ETH_P_8021Q)) {
		if (l3 + 4 > end)
			return XDP_PASS;
		proto = *(__u16 *)(l3 + 2);
		l3 += 4;
	}
	struct udphdr *udp;
	void *ip_end;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > end || ip->version != 4 || ip->ihl < 5)
			return XDP_PASS;
		if (ip->frag_off & bpf_htons(0x3fff) || ip->protocol != IPPROTO_UDP)
			return XDP_PASS;
		udp = l3 + ip->ihl * 4;
		ip_end = l3 + bpf_ntohs(ip->tot_len);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip = l3;
		if ((void *)(ip + 1) > end || ip->version != 6 || ip->nexthdr != IPPROTO_UDP)
			return XDP_PASS;
		udp = (void *)(ip + 1);
		ip_end = (void *)(ip + 1) + bpf_ntohs(ip->payload_len);
	} else {
		return XDP_PASS;
	}
	if ((void *)(udp + 1) > end || ip_end > end ||
	    (void *)udp + bpf_ntohs(udp->len) > ip_end)
		return XDP_PASS;
	__u32 slot = bpf_ntohs(udp->source) % SLOTS;
	struct macs *macs = bpf_map_lookup_elem(&C_FLOOR_MACS, &slot);
	if (!macs)
		return XDP_DROP;
	__builtin_memcpy(eth, macs->addresses, 12);
	return bpf_redirect_map(&C_FLOOR_PORTS, slot, XDP_DROP);
}

SEC("xdp")
int c_floor_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
