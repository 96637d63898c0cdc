//! Test packets: Ethernet (optionally 802.1Q) / IPv4 or IPv6 / UDP / QUIC, built by hand so
//! that every field can be wrong on purpose.

use std::net::IpAddr;

/// The client's and router's MACs in test frames.
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const ROUTER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

pub const QUIC_V1: u32 = 1;
pub const QUIC_V2: u32 = 0x6b33_43cf;

/// A UDP datagram in an Ethernet frame.
#[derive(Debug, Clone)]
pub struct Datagram {
    pub vlan: Option<u16>,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: Vec<u8>,
    /// IPv4 options (a multiple of 4 octets).
    pub ipv4_options: Vec<u8>,
    /// IPv4 flags and fragment offset field.
    pub ipv4_fragment: u16,
    /// IPv6: an extension header (next-header value, header) before UDP.
    pub ipv6_extension: Option<(u8, Vec<u8>)>,
    /// Overrides the UDP length field.
    pub udp_len: Option<u16>,
    /// IP protocol / next header instead of UDP (17).
    pub protocol: u8,
    /// Fill in the IPv4 header checksum and the UDP checksum (zero otherwise: the XDP
    /// programs never look, a stack that receives the packet does).
    pub checksums: bool,
}

impl Datagram {
    pub fn new(src: IpAddr, dst: IpAddr, src_port: u16, dst_port: u16, payload: Vec<u8>) -> Self {
        Self {
            vlan: None,
            src,
            dst,
            src_port,
            dst_port,
            payload,
            ipv4_options: Vec::new(),
            ipv4_fragment: 0x4000, // don't fragment
            ipv6_extension: None,
            udp_len: None,
            protocol: 17,
            checksums: false,
        }
    }

    pub fn frame(&self) -> Vec<u8> {
        let udp_len = self.udp_len.unwrap_or(8 + self.payload.len() as u16);
        let mut udp = Vec::new();
        udp.extend_from_slice(&self.src_port.to_be_bytes());
        udp.extend_from_slice(&self.dst_port.to_be_bytes());
        udp.extend_from_slice(&udp_len.to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(&self.payload);
        if self.checksums {
            let sum = checksum(&[&self.pseudo_header(udp.len()), &udp]);
            // 0 means "none" in UDP: an all-ones sum is sent as such.
            let sum = if sum == 0 { 0xffff } else { sum };
            udp[6..8].copy_from_slice(&sum.to_be_bytes());
        }
        self.frame_around(&udp)
    }

    /// The UDP checksum's pseudo-header for `udp_len` octets of UDP.
    fn pseudo_header(&self, udp_len: usize) -> Vec<u8> {
        let mut header = Vec::new();
        match (self.src, self.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                header.extend_from_slice(&src.octets());
                header.extend_from_slice(&dst.octets());
                header.extend_from_slice(&[0, 17]);
                header.extend_from_slice(&(udp_len as u16).to_be_bytes());
            }
            (src, dst) => {
                for addr in [src, dst] {
                    if let IpAddr::V6(v6) = addr {
                        header.extend_from_slice(&v6.octets());
                    }
                }
                header.extend_from_slice(&(udp_len as u32).to_be_bytes());
                header.extend_from_slice(&[0, 0, 0, 17]);
            }
        }
        header
    }

    /// The IP packet without its Ethernet header (and tag): what a tunnel carries.
    pub fn ip_packet(&self) -> Vec<u8> {
        let link = if self.vlan.is_some() { 18 } else { 14 };
        self.frame()[link..].to_vec()
    }

    /// The frame with `transport` after the IP header, whose protocol field says
    /// [`Self::protocol`]: the ports and payload unused.
    pub fn frame_around(&self, transport: &[u8]) -> Vec<u8> {
        let mut frame = Vec::new();
        frame.extend_from_slice(&ROUTER_MAC);
        frame.extend_from_slice(&CLIENT_MAC);
        if let Some(tag) = self.vlan {
            frame.extend_from_slice(&[0x81, 0x00]);
            frame.extend_from_slice(&tag.to_be_bytes());
        }
        match (self.src, self.dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                frame.extend_from_slice(&[0x08, 0x00]);
                let header_len = 20 + self.ipv4_options.len();
                frame.push(0x40 | (header_len / 4) as u8);
                frame.push(0);
                frame.extend_from_slice(&((header_len + transport.len()) as u16).to_be_bytes());
                frame.extend_from_slice(&[0x12, 0x34]);
                frame.extend_from_slice(&self.ipv4_fragment.to_be_bytes());
                frame.extend_from_slice(&[64, self.protocol, 0, 0]);
                frame.extend_from_slice(&src.octets());
                frame.extend_from_slice(&dst.octets());
                frame.extend_from_slice(&self.ipv4_options);
                if self.checksums {
                    let start = frame.len() - header_len;
                    let sum = checksum(&[&frame[start..]]);
                    frame[start + 10..start + 12].copy_from_slice(&sum.to_be_bytes());
                }
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                frame.extend_from_slice(&[0x86, 0xdd]);
                let extension_len = self.ipv6_extension.as_ref().map_or(0, |(_, h)| h.len());
                frame.extend_from_slice(&[0x60, 0, 0, 0]);
                frame.extend_from_slice(&((extension_len + transport.len()) as u16).to_be_bytes());
                let next = self
                    .ipv6_extension
                    .as_ref()
                    .map_or(self.protocol, |(nh, _)| *nh);
                frame.extend_from_slice(&[next, 64]);
                frame.extend_from_slice(&src.octets());
                frame.extend_from_slice(&dst.octets());
                if let Some((_, header)) = &self.ipv6_extension {
                    frame.extend_from_slice(header);
                }
            }
            _ => panic!("mixed address families"),
        }
        frame.extend_from_slice(transport);
        frame
    }
}

/// The Internet checksum (RFC 1071) of `parts` taken as one run of octets (each part but the
/// last of even length).
pub fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        for pair in part.chunks(2) {
            let word = u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]);
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A 1-RTT (short header) packet: first octet, DCID, a packet number and 24 octets of
/// "protected payload".
pub fn short_header(dcid: &[u8]) -> Vec<u8> {
    let mut packet = vec![0x41];
    packet.extend_from_slice(dcid);
    packet.extend_from_slice(&[0x00, 0x17]);
    packet.extend_from_slice(&[0xab; 24]);
    packet
}

/// A long header packet: `first` octet, version, DCID, SCID, then `rest` octets of payload.
pub fn long_header(first: u8, version: u32, dcid: &[u8], scid: &[u8], rest: usize) -> Vec<u8> {
    let mut packet = vec![first];
    packet.extend_from_slice(&version.to_be_bytes());
    packet.push(dcid.len() as u8);
    packet.extend_from_slice(dcid);
    packet.push(scid.len() as u8);
    packet.extend_from_slice(scid);
    packet.extend(std::iter::repeat_n(0xcd, rest));
    packet
}

/// An Initial: `first` octet, version, DCID, SCID, the token with its length (a
/// variable-length integer of the shortest form), then `rest` octets of payload.
pub fn initial(
    first: u8,
    version: u32,
    dcid: &[u8],
    scid: &[u8],
    token: &[u8],
    rest: usize,
) -> Vec<u8> {
    let mut packet = long_header(first, version, dcid, scid, 0);
    packet.extend_from_slice(&varint(token.len() as u64));
    packet.extend_from_slice(token);
    packet.extend(std::iter::repeat_n(0xcd, rest));
    packet
}

/// A QUIC variable-length integer (RFC 9000 §16), shortest form.
pub fn varint(value: u64) -> Vec<u8> {
    match value {
        0..=0x3f => vec![value as u8],
        0x40..=0x3fff => (0x4000 | value as u16).to_be_bytes().to_vec(),
        0x4000..=0x3fff_ffff => (0x8000_0000 | value as u32).to_be_bytes().to_vec(),
        _ => (0xc000_0000_0000_0000 | value).to_be_bytes().to_vec(),
    }
}

/// QUIC v1 long header packet types (first octet with the fixed bit and a 1-octet packet
/// number length).
pub mod v1 {
    pub const INITIAL: u8 = 0xc0;
    pub const ZERO_RTT: u8 = 0xd0;
    pub const HANDSHAKE: u8 = 0xe0;
    pub const RETRY: u8 = 0xf0;
}

/// QUIC v2 (RFC 9369) long header packet types.
pub mod v2 {
    pub const RETRY: u8 = 0xc0;
    pub const INITIAL: u8 = 0xd0;
    pub const ZERO_RTT: u8 = 0xe0;
    pub const HANDSHAKE: u8 = 0xf0;
}

/// A DNS query for example.com: UDP that is not QUIC.
pub fn dns_query() -> Vec<u8> {
    hex::decode("12340100000100000000000003777777076578616d706c6503636f6d0000010001").expect("hex")
}
