//! Packets from capture files (pcap or pcapng), as Ethernet frames for `explain`.

use std::{fs::File, io::Read as _, path::Path};

use pcap_file::{
    DataLink,
    pcap::PcapReader,
    pcapng::{Block, PcapNgReader},
};

#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a capture file: {message}")]
    Format { path: String, message: String },
    #[error("{path}: packet {packet}: link type {link:?} is not Ethernet, raw IP or Linux cooked")]
    LinkType {
        path: String,
        packet: usize,
        link: DataLink,
    },
}

/// pcapng files start with a Section Header Block.
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

/// Every packet of the capture at `path`, as an Ethernet frame.
pub fn read_packets(path: &Path) -> Result<Vec<Vec<u8>>, PcapError> {
    let shown = path.display().to_string();
    let read_error = |source| PcapError::Read {
        path: shown.clone(),
        source,
    };
    let mut bytes = Vec::new();
    File::open(path)
        .and_then(|mut file| file.read_to_end(&mut bytes))
        .map_err(read_error)?;
    let format_error = |err: pcap_file::PcapError| PcapError::Format {
        path: shown.clone(),
        message: err.to_string(),
    };
    let mut frames = Vec::new();
    let mut push = |link: DataLink, data: &[u8]| match to_ethernet(link, data) {
        Some(frame) => {
            frames.push(frame);
            Ok(())
        }
        None => Err(PcapError::LinkType {
            path: shown.clone(),
            packet: frames.len() + 1,
            link,
        }),
    };
    if bytes.starts_with(&PCAPNG_MAGIC) {
        let mut reader = PcapNgReader::new(&bytes[..]).map_err(format_error)?;
        while let Some(block) = reader.next_block() {
            let (interface, data) = match block.map_err(format_error)? {
                Block::EnhancedPacket(packet) => {
                    (packet.interface_id as usize, packet.data.into_owned())
                }
                Block::SimplePacket(packet) => (0, packet.data.into_owned()),
                _ => continue,
            };
            let link = reader
                .interfaces()
                .get(interface)
                .map_or(DataLink::ETHERNET, |description| description.linktype);
            push(link, &data)?;
        }
    } else {
        let mut reader = PcapReader::new(&bytes[..]).map_err(format_error)?;
        let link = reader.header().datalink;
        while let Some(packet) = reader.next_packet() {
            push(link, &packet.map_err(format_error)?.data)?;
        }
    }
    Ok(frames)
}

/// The packet as an Ethernet frame: as it is, or behind a made-up Ethernet header for raw IP
/// and Linux cooked captures (`tcpdump -i any`).
fn to_ethernet(link: DataLink, data: &[u8]) -> Option<Vec<u8>> {
    let (ethertype, ip) = match link {
        DataLink::ETHERNET => return Some(data.to_vec()),
        DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => {
            let ethertype = match data.first()? >> 4 {
                4 => [0x08, 0x00],
                6 => [0x86, 0xdd],
                _ => return None,
            };
            (ethertype, data)
        }
        // SLL: 16-octet header, protocol in its last two octets.
        DataLink::LINUX_SLL => ([*data.get(14)?, *data.get(15)?], data.get(16..)?),
        // SLL2: 20-octet header, protocol first.
        DataLink::LINUX_SLL2 => ([*data.first()?, *data.get(1)?], data.get(20..)?),
        _ => return None,
    };
    let mut frame = Vec::with_capacity(14 + ip.len());
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02]);
    frame.extend_from_slice(&ethertype);
    frame.extend_from_slice(ip);
    Some(frame)
}
