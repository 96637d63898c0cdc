//! Packets from capture files (pcap or pcapng), as Ethernet frames for `explain`: read as a
//! stream, one packet at a time, from a regular file of bounded size.

use std::{
    fs::File,
    io::{BufReader, Read as _, Take},
    path::Path,
};

use pcap_file::{
    DataLink,
    pcap::PcapReader,
    pcapng::{Block, PcapNgReader},
};

use crate::files::{self, FileError, MAX_CAPTURE_LEN};

#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path}: not a capture file: {message}")]
    Format { path: String, message: String },
    #[error("{path}: packet {packet}: link type {link:?} is not Ethernet, raw IP or Linux cooked")]
    LinkType {
        path: String,
        packet: usize,
        link: DataLink,
    },
    #[error("{path}: packet {packet}: not an IP packet, in a capture of raw IP")]
    NotIp { path: String, packet: usize },
    #[error("{path}: packet {packet}: shorter than its link type's header")]
    Truncated { path: String, packet: usize },
}

/// pcapng files start with a Section Header Block.
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

type Input = BufReader<Take<File>>;

enum Reader {
    Pcap(PcapReader<Input>),
    PcapNg(PcapNgReader<Input>),
}

/// The packets of a capture file, in order, as Ethernet frames.
pub struct Packets {
    path: String,
    reader: Reader,
    /// Packets read so far.
    count: usize,
}

/// Opens the capture at `path`.
pub fn open(path: &Path) -> Result<Packets, PcapError> {
    let shown = path.display().to_string();
    let file = files::open_regular(path)?;
    let len = file
        .metadata()
        .map_err(|source| FileError::Read {
            path: shown.clone(),
            source,
        })?
        .len();
    if len > MAX_CAPTURE_LEN {
        return Err(FileError::TooLarge {
            path: shown,
            limit: MAX_CAPTURE_LEN,
        }
        .into());
    }
    let mut input = BufReader::new(file.take(MAX_CAPTURE_LEN));
    let magic = std::io::BufRead::fill_buf(&mut input).map_err(|source| FileError::Read {
        path: shown.clone(),
        source,
    })?;
    let format_error = |err: pcap_file::PcapError| PcapError::Format {
        path: shown.clone(),
        message: err.to_string(),
    };
    let reader = if magic.starts_with(&PCAPNG_MAGIC) {
        Reader::PcapNg(PcapNgReader::new(input).map_err(format_error)?)
    } else {
        Reader::Pcap(PcapReader::new(input).map_err(format_error)?)
    };
    Ok(Packets {
        path: shown,
        reader,
        count: 0,
    })
}

impl Packets {
    /// The next packet's link type and data; `None` at the end.
    fn next_raw(&mut self) -> Option<Result<(DataLink, Vec<u8>), pcap_file::PcapError>> {
        match &mut self.reader {
            Reader::Pcap(reader) => {
                let link = reader.header().datalink;
                let packet = reader.next_packet()?;
                Some(packet.map(|packet| (link, packet.data.into_owned())))
            }
            Reader::PcapNg(reader) => loop {
                let (interface, data) = match reader.next_block()? {
                    Err(err) => return Some(Err(err)),
                    Ok(Block::EnhancedPacket(packet)) => {
                        (packet.interface_id as usize, packet.data.into_owned())
                    }
                    Ok(Block::SimplePacket(packet)) => (0, packet.data.into_owned()),
                    Ok(_) => continue,
                };
                let link = reader
                    .interfaces()
                    .get(interface)
                    .map_or(DataLink::ETHERNET, |description| description.linktype);
                return Some(Ok((link, data)));
            },
        }
    }
}

impl Iterator for Packets {
    type Item = Result<Vec<u8>, PcapError>;

    fn next(&mut self) -> Option<Self::Item> {
        let raw = self.next_raw()?;
        self.count += 1;
        let (path, packet) = (&self.path, self.count);
        Some(
            raw.map_err(|err| PcapError::Format {
                path: path.clone(),
                message: err.to_string(),
            })
            .and_then(|(link, data)| {
                to_ethernet(link, &data).ok_or_else(|| match link {
                    DataLink::RAW | DataLink::IPV4 | DataLink::IPV6 => PcapError::NotIp {
                        path: path.clone(),
                        packet,
                    },
                    DataLink::LINUX_SLL | DataLink::LINUX_SLL2 => PcapError::Truncated {
                        path: path.clone(),
                        packet,
                    },
                    _ => PcapError::LinkType {
                        path: path.clone(),
                        packet,
                        link,
                    },
                })
            }),
        )
    }
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
