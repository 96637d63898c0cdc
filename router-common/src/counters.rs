//! What the programs count: one per-CPU counter per outcome. Each list below is the one
//! place an outcome is defined: the kernel counts by its index, and `stats`, the metrics,
//! `explain` and the documentation's tables show its name and meaning.

/// Defines a list of counters: a `repr(u32)` enum numbered in order, with [`ALL`](Outcome::ALL),
/// [`COUNT`](Outcome::COUNT), the name operators see and the meaning its doc comment gives.
#[macro_export]
macro_rules! counter_list {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[doc = $doc:literal])+ $variant:ident => $label:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[repr(u32)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[doc = $doc])+ $variant, )+
        }

        impl $name {
            /// Every counter, in index order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
            /// The number of counters: the entries of the map that holds them.
            pub const COUNT: u32 = Self::ALL.len() as u32;

            /// The name operators see.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $label,)+
                }
            }

            /// What the counter counts (its doc comment, one line).
            pub const fn meaning(self) -> &'static str {
                match self {
                    $(Self::$variant => $crate::counters::doc_line(concat!($($doc),+)),)+
                }
            }

            /// The counter at index `value`.
            pub fn from_u32(value: u32) -> Option<Self> {
                Self::ALL.get(value as usize).copied()
            }
        }
    };
}

/// A doc comment's lines joined: without the space that `///` leaves in front.
pub const fn doc_line(joined: &'static str) -> &'static str {
    match joined.as_bytes() {
        [b' ', ..] => joined.split_at(1).1,
        _ => joined,
    }
}

counter_list! {
    /// What the XDP program did with a packet.
    pub enum Outcome {
        /// Sent to the server its DCID names, any header type: redirected to a host, passed
        /// to the stack for a local worker.
        RoutedByServerId => "routed_by_server_id",
        /// An Initial whose token (NEW_TOKEN or Retry) starts with a block that names a
        /// server: sent to the server that issued the token, whatever the DCID names.
        RoutedByToken => "routed_by_token",
        /// An Initial or 0-RTT packet without such a token, from the client address, port and
        /// DCID of an Initial routed by its token moments before: sent where that went.
        RoutedByTokenFlow => "routed_by_token_flow",
        /// An Initial or 0-RTT packet whose DCID names no server (client-chosen): sent by
        /// the fallback hash.
        InitialHashed => "initial_hashed",
        /// Any other packet whose DCID decodes to a server ID no backend has: sent by the
        /// fallback hash.
        UnknownServerId => "unknown_server_id",
        /// Any other packet whose DCID has codepoint 0b111 or an inactive one: sent by the
        /// fallback hash.
        UnroutableCodepoint => "unroutable_codepoint",
        /// Any other packet whose DCID is too short for its config, or too long to decode
        /// (an unknown QUIC version): sent by the fallback hash.
        UnroutableLength => "unroutable_length",
        /// UDP to a listener that is not a QUIC packet (bad lengths, empty, a QUIC v1/v2
        /// long header with a connection ID over 20 octets): dropped.
        MalformedQuic => "malformed_quic",
        /// Not UDP to a listener (or too short to tell): passed to the stack untouched.
        NotListener => "not_listener",
        /// An IP fragment: passed to the stack untouched.
        Fragment => "fragment",
        /// IPv6 with extension headers before UDP: passed to the stack untouched.
        Ipv6Extension => "ipv6_extension_headers",
        /// A fallback with no active backend: dropped.
        NoBackend => "no_backend",
        /// The backend's interface is not in the redirect map (or gone), or a tunnel's
        /// headers could not be written (lengths that disagree with the frame, no headroom):
        /// dropped.
        RedirectFailed => "redirect_failed",
        /// An ICMP or ICMPv6 error about a UDP datagram a listener sent (too big, unreachable,
        /// time exceeded): sent to the backend that the fallback hash gives its reversed
        /// 4-tuple.
        IcmpToBackend => "icmp_to_backend",
        /// A packet for a backend behind a tunnel that would exceed the egress MTU once
        /// encapsulated: answered from the VIP with ICMP "fragmentation needed" or ICMPv6
        /// "packet too big" carrying the MTU left inside the tunnel (dropped unanswered over
        /// the rate limit, or if it is itself an ICMP error or from no host).
        TooBig => "too_big",
        /// A packet for a backend behind a tunnel whose next hop the kernel's routes and
        /// neighbours do not give yet (no neighbour entry, no route, forwarding off):
        /// encapsulated and passed to the stack, which resolves or drops it (dropped if it
        /// came in with an 802.1Q tag).
        NextHopUnresolved => "next_hop_unresolved",
        /// A unicast frame for another MAC on the interface the controller attached to (a
        /// switch's flood): passed to the stack untouched, which drops it; routers on one
        /// segment do not all route a flooded packet.
        OtherHost => "other_host",
    }
}

counter_list! {
    /// What the `SO_REUSEPORT` program did with a datagram for local workers.
    pub enum LocalOutcome {
        /// Given to the socket of the worker its DCID names.
        Worker => "local_worker_by_server_id",
        /// An Initial whose token names a server, or a packet of its connection attempt:
        /// given to the socket of the worker that issued the token.
        Token => "local_worker_by_token",
        /// The DCID names no server (a new connection's client-chosen DCID, an unknown
        /// server ID, an unroutable CID, not QUIC): given to the worker the fallback table
        /// picks for the 4-tuple, the one the XDP program passed it for.
        Fallback => "local_worker_by_fallback",
        /// The DCID names a backend with no socket in this group (a remote host, or a
        /// worker that has not registered): the kernel's own choice by 4-tuple hash.
        NotRegistered => "local_not_registered",
        /// The DCID names no server and the fallback table's backend has no socket in this
        /// group (none active, a remote host): the kernel's own choice.
        KernelChoice => "local_kernel_choice",
    }
}
