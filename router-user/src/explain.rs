//! What the kernel program did with one packet, as `quic-router explain` shows it
//! ([`Router::explain`](crate::router::Router::explain) finds it).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use router_common::maps::{BackendEntry, DELIVERY_GUE, DELIVERY_IPIP, LOCAL_WORKER_IFINDEX};
use serde::Serialize;

/// What the program did with one packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// `pass`, `drop`, `redirect` (or `tx`, `aborted`).
    pub action: &'static str,
    /// The backend the packet went to.
    pub backend: Option<String>,
    /// The server ID decoded from the token or the DCID (the one that routed the packet, or the
    /// last tried), whether or not a backend has it.
    pub server_id: Option<String>,
    /// The outcome counter the packet counted in.
    pub reason: &'static str,
    /// How the packet left for the backend: `l2`, `gue`, `ipip` or `local_worker`.
    pub delivery: Option<&'static str>,
    /// The outer addresses of an encapsulated packet.
    pub outer: Option<OuterAddresses>,
}

/// The outer header's addresses of a packet the router encapsulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OuterAddresses {
    pub source: IpAddr,
    pub destination: IpAddr,
}

impl Explanation {
    /// The delivery method of `entry`, and the outer addresses of `out` (the program's
    /// output frame) when the method encapsulates and `out` was encapsulated.
    pub fn delivery_of(
        entry: &BackendEntry,
        out: &[u8],
    ) -> (Option<&'static str>, Option<OuterAddresses>) {
        let method = match entry.delivery {
            _ if entry.ifindex == LOCAL_WORKER_IFINDEX => return (Some("local_worker"), None),
            DELIVERY_GUE => "gue",
            DELIVERY_IPIP => "ipip",
            _ => return (Some("l2"), None),
        };
        (Some(method), outer_addresses(out))
    }
}

/// The source and destination of the IP header behind a frame's Ethernet header.
fn outer_addresses(frame: &[u8]) -> Option<OuterAddresses> {
    let ip = frame.get(14..)?;
    let (source, destination) = match frame.get(12..14)? {
        [0x08, 0x00] => {
            let octets = |at: usize| -> Option<IpAddr> {
                let four: [u8; 4] = ip.get(at..at + 4)?.try_into().ok()?;
                Some(Ipv4Addr::from(four).into())
            };
            (octets(12)?, octets(16)?)
        }
        [0x86, 0xdd] => {
            let octets = |at: usize| -> Option<IpAddr> {
                let sixteen: [u8; 16] = ip.get(at..at + 16)?.try_into().ok()?;
                Some(Ipv6Addr::from(sixteen).into())
            };
            (octets(8)?, octets(24)?)
        }
        _ => return None,
    };
    Some(OuterAddresses {
        source,
        destination,
    })
}

impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "action={} backend={} server_id={} reason={}",
            self.action,
            self.backend.as_deref().unwrap_or("-"),
            self.server_id.as_deref().unwrap_or("-"),
            self.reason
        )?;
        if let Some(delivery) = self.delivery {
            write!(f, " delivery={delivery}")?;
        }
        if let Some(outer) = self.outer {
            write!(f, " outer={}->{}", outer.source, outer.destination)?;
        }
        Ok(())
    }
}

/// The name operators use for an XDP action.
pub fn action_name(action: u32) -> &'static str {
    match action {
        0 => "aborted",
        1 => "drop",
        XDP_PASS => "pass",
        3 => "tx",
        XDP_REDIRECT => "redirect",
        _ => "unknown",
    }
}

/// The XDP actions by which a packet leaves for a backend (to the stack for a local worker
/// or an unresolved next hop, redirected otherwise).
pub const XDP_PASS: u32 = 2;
pub const XDP_REDIRECT: u32 = 4;
