//! The decapsulator for backends (`quic-router decap`): its XDP program (built from
//! router-ebpf's `quic-decap` binary) loaded with a host's tunnel addresses, the router
//! prefixes it takes packets from and the GUE port, attached through a link pinned at
//! `/sys/fs/bpf/quic-decap/<iface>/link`. A new `attach` swaps in a program loaded with the new
//! settings, atomically; `status` reads the settings and counters back from the maps of the
//! program the link holds, so that it shows what the kernel does.

use std::{
    fmt,
    net::IpAddr,
    path::{Path, PathBuf},
    str::FromStr,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, LpmTrie, Map, MapData, MapError, PerCpuArray, lpm_trie::Key as LpmKey},
    programs::{ProgramError, Xdp},
};
use router_common::decap::{
    DecapConfig, DecapOutcome, MAX_SOURCE_PREFIXES, MAX_TUNNEL_ADDRESSES, SOURCE_FAMILY_BITS,
    SourcePrefix, TunnelAddress, specs,
};
use router_common::flow_hash::flow_addr;
use serde::Serialize;

use crate::{
    attach::{self, AttachError, Attachment},
    netif::NetifError,
    pin::{BPFFS, PinError},
    router::Mode,
};

/// The decapsulator's object file, aligned for aya's ELF parser.
pub fn object() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/quic-decap"))
}

/// The name of the XDP program in the object file.
pub const PROGRAM_NAME: &str = "quic_decap";

#[derive(Debug, thiserror::Error)]
pub enum DecapError {
    #[error("{0:?} is not an IP address or prefix (198.18.0.0/24, 2001:db8::/64, or an address)")]
    Prefix(String),
    #[error("prefix {0} has bits set past its length")]
    HostBits(String),
    #[error("no --address: the decapsulator needs the host's tunnel address")]
    NoAddress,
    #[error("no --from: the decapsulator takes packets from router prefixes only")]
    NoSource,
    #[error("more than {MAX_TUNNEL_ADDRESSES} tunnel addresses")]
    TooManyAddresses,
    #[error("more than {MAX_SOURCE_PREFIXES} router prefixes")]
    TooManySources,
    #[error("{0} cannot be a tunnel address (unspecified, multicast or broadcast)")]
    NotAnAddress(IpAddr),
    #[error("GUE port 0: give a port from 1 to 65535, or no --gue-port for IP-in-IP only")]
    GuePort,
    #[error("cannot load the decapsulator (needs root): {0}")]
    Load(#[from] aya::EbpfError),
    #[error("the kernel refused the decapsulator: {0}")]
    Program(#[from] ProgramError),
    #[error("the decapsulator's map {map}: {source}")]
    Map { map: &'static str, source: MapError },
    #[error(transparent)]
    Attach(#[from] AttachError),
    #[error(transparent)]
    Pin(#[from] PinError),
    #[error(transparent)]
    Interface(#[from] NetifError),
    #[error("no decapsulator is attached to {0}")]
    NotAttached(String),
}

/// An IPv4 or IPv6 prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl FromStr for Prefix {
    type Err = DecapError;

    /// `198.18.0.0/24`, `2001:db8::/64`, or an address alone (all its bits).
    fn from_str(text: &str) -> Result<Self, DecapError> {
        let bad = || DecapError::Prefix(text.chars().take(64).collect());
        let (addr, len) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(len) => len
                .parse::<u8>()
                .ok()
                .filter(|&len| len <= bits)
                .ok_or_else(bad)?,
            None => bits,
        };
        let prefix = Self { addr, len };
        if prefix.masked() != addr {
            return Err(DecapError::HostBits(prefix.to_string()));
        }
        Ok(prefix)
    }
}

impl Prefix {
    /// The address with the bits past the prefix cleared.
    fn masked(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(v4) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.len)).unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.len))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
        }
    }

    /// The `DECAP_SOURCES` key.
    fn key(&self) -> LpmKey<SourcePrefix> {
        let (family, addr) = flow_addr(self.addr);
        LpmKey::new(
            SOURCE_FAMILY_BITS + u32::from(self.len),
            SourcePrefix { family, addr },
        )
    }

    /// The prefix a `DECAP_SOURCES` key holds.
    fn of_key(key: &LpmKey<SourcePrefix>) -> Self {
        let (data, prefix_len) = (key.data(), key.prefix_len());
        Self {
            addr: ip_of(data.family, data.addr),
            len: prefix_len.saturating_sub(SOURCE_FAMILY_BITS) as u8,
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn ip_of(family: u8, octets: [u8; 16]) -> IpAddr {
    if family == 4 {
        IpAddr::from([octets[0], octets[1], octets[2], octets[3]])
    } else {
        IpAddr::from(octets)
    }
}

/// What the decapsulator takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecapSettings {
    /// The host's tunnel addresses: encapsulated packets must be addressed to one.
    pub addresses: Vec<IpAddr>,
    /// Where encapsulated packets may come from: the routers' prefixes.
    pub sources: Vec<Prefix>,
    /// GUE's UDP port; None: IP-in-IP only.
    pub gue_port: Option<u16>,
}

impl DecapSettings {
    /// Checks the settings, with what is wrong.
    pub fn validate(&self) -> Result<(), DecapError> {
        if self.addresses.is_empty() {
            return Err(DecapError::NoAddress);
        }
        if self.sources.is_empty() {
            return Err(DecapError::NoSource);
        }
        if self.addresses.len() > MAX_TUNNEL_ADDRESSES as usize {
            return Err(DecapError::TooManyAddresses);
        }
        if self.sources.len() > MAX_SOURCE_PREFIXES as usize {
            return Err(DecapError::TooManySources);
        }
        if let Some(&addr) = self.addresses.iter().find(|addr| {
            addr.is_unspecified()
                || addr.is_multicast()
                || matches!(addr, IpAddr::V4(v4) if v4.is_broadcast())
        }) {
            return Err(DecapError::NotAnAddress(addr));
        }
        if self.gue_port == Some(0) {
            return Err(DecapError::GuePort);
        }
        Ok(())
    }
}

/// The decapsulator loaded with its settings (not attached).
pub struct Decapsulator {
    ebpf: Ebpf,
}

fn map_error(map: &'static str) -> impl FnOnce(MapError) -> DecapError {
    move |source| DecapError::Map { map, source }
}

impl Decapsulator {
    /// Loads the program and writes `settings` (validated first) into its maps.
    pub fn load(settings: &DecapSettings) -> Result<Self, DecapError> {
        settings.validate()?;
        let mut ebpf = EbpfLoader::new().load(object())?;
        let name = specs::DECAP_CONFIG.name;
        let mut config: Array<_, DecapConfig> =
            Array::try_from(ebpf.map_mut(name).ok_or(missing(name))?).map_err(map_error(name))?;
        let gue_port_be = settings.gue_port.unwrap_or(0).to_be();
        config
            .set(
                0,
                DecapConfig {
                    gue_port_be,
                    _pad: [0; 2],
                },
                0,
            )
            .map_err(map_error(name))?;
        let name = specs::DECAP_ADDRESSES.name;
        let mut addresses: HashMap<_, TunnelAddress, u8> =
            HashMap::try_from(ebpf.map_mut(name).ok_or(missing(name))?).map_err(map_error(name))?;
        for &addr in &settings.addresses {
            let (family, addr) = flow_addr(addr);
            let key = TunnelAddress {
                addr,
                family,
                _pad: [0; 3],
            };
            addresses.insert(key, 1, 0).map_err(map_error(name))?;
        }
        let name = specs::DECAP_SOURCES.name;
        let mut sources: LpmTrie<_, SourcePrefix, u8> =
            LpmTrie::try_from(ebpf.map_mut(name).ok_or(missing(name))?).map_err(map_error(name))?;
        for prefix in &settings.sources {
            sources
                .insert(&prefix.key(), 1, 0)
                .map_err(map_error(name))?;
        }
        program(&mut ebpf)?.load()?;
        Ok(Self { ebpf })
    }

    /// The XDP program (loaded).
    pub fn program(&mut self) -> &mut Xdp {
        program(&mut self.ebpf).expect("load checked the program")
    }

    /// Each outcome's count, summed over the CPUs.
    pub fn counters(&self) -> Result<Vec<(DecapOutcome, u64)>, DecapError> {
        let name = specs::DECAP_STATS.name;
        let map = self.ebpf.map(name).ok_or(missing(name))?;
        let stats: PerCpuArray<_, u64> = PerCpuArray::try_from(map).map_err(map_error(name))?;
        read_counters(&stats)
    }

    /// Attaches to `iface` in `mode` through the link pinned for it; a decapsulator already
    /// there is swapped for this one atomically.
    pub fn attach(&mut self, iface: &str, mode: Mode) -> Result<Attachment, DecapError> {
        let paths = DecapPaths::new(iface)?;
        crate::netif::lookup(iface)?;
        paths.prepare()?;
        let (attachment, _) = attach::attach(
            self.program(),
            iface,
            mode.name(),
            mode.xdp_mode(),
            &paths.link(),
            true,
        )?;
        Ok(attachment)
    }
}

fn missing(name: &'static str) -> DecapError {
    DecapError::Map {
        map: name,
        source: MapError::InvalidName {
            name: name.to_owned(),
        },
    }
}

fn program(ebpf: &mut Ebpf) -> Result<&mut Xdp, DecapError> {
    ebpf.program_mut(PROGRAM_NAME)
        .and_then(|program| program.try_into().ok())
        .ok_or(DecapError::Program(ProgramError::InvalidName {
            name: PROGRAM_NAME.to_owned(),
        }))
}

fn read_counters<T: std::borrow::Borrow<MapData>>(
    stats: &PerCpuArray<T, u64>,
) -> Result<Vec<(DecapOutcome, u64)>, DecapError> {
    DecapOutcome::ALL
        .iter()
        .map(|&outcome| {
            let per_cpu = stats
                .get(&(outcome as u32), 0)
                .map_err(map_error(specs::DECAP_STATS.name))?;
            Ok((outcome, per_cpu.iter().sum()))
        })
        .collect()
}

/// Where an interface's decapsulator is pinned.
struct DecapPaths {
    dir: PathBuf,
}

impl DecapPaths {
    fn new(iface: &str) -> Result<Self, PinError> {
        if !crate::netif::valid_name(iface) {
            return Err(PinError::Interface(iface.to_owned()));
        }
        Ok(Self {
            dir: Path::new(BPFFS).join("quic-decap").join(iface),
        })
    }

    fn link(&self) -> PathBuf {
        self.dir.join("link")
    }

    fn prepare(&self) -> Result<(), PinError> {
        crate::pin::private_pin_dir(&self.dir)
    }
}

/// Removes the decapsulator from `iface`; whether one was attached.
pub fn detach(iface: &str) -> Result<bool, DecapError> {
    let paths = DecapPaths::new(iface)?;
    let detached = attach::unpin_link(&paths.link())?;
    let _ = std::fs::remove_dir(&paths.dir);
    Ok(detached)
}

/// What an attached decapsulator does: read from its program's maps.
#[derive(Debug, Clone, Serialize)]
pub struct DecapStatus {
    pub iface: String,
    pub program_id: u32,
    pub settings: DecapSettings,
    pub counters: Vec<(String, u64)>,
}

/// The status of `iface`'s decapsulator.
pub fn status(iface: &str) -> Result<DecapStatus, DecapError> {
    let paths = DecapPaths::new(iface)?;
    let program_id = attach::attached_program(&paths.link())?
        .ok_or(DecapError::NotAttached(iface.to_owned()))?;
    let info = aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .find(|info| info.id() == program_id)
        .ok_or(DecapError::NotAttached(iface.to_owned()))?;
    let maps = info
        .map_ids()
        .map_err(DecapError::Program)?
        .unwrap_or_default();
    let mut by_name = std::collections::HashMap::new();
    for id in maps {
        let map = MapData::from_id(id).map_err(map_error("(by id)"))?;
        let name = map
            .info()
            .map_err(map_error("(by id)"))?
            .name_as_str()
            .unwrap_or_default()
            .to_owned();
        by_name.insert(name, map);
    }
    let mut take = |name: &'static str| by_name.remove(name).ok_or(missing(name));
    let config: Array<_, DecapConfig> =
        Array::try_from(Map::Array(take(specs::DECAP_CONFIG.name)?))
            .map_err(map_error(specs::DECAP_CONFIG.name))?;
    let gue_port_be = config
        .get(&0, 0)
        .map_err(map_error(specs::DECAP_CONFIG.name))?
        .gue_port_be;
    let addresses: HashMap<_, TunnelAddress, u8> =
        HashMap::try_from(Map::HashMap(take(specs::DECAP_ADDRESSES.name)?))
            .map_err(map_error(specs::DECAP_ADDRESSES.name))?;
    let mut addresses: Vec<IpAddr> = addresses
        .keys()
        .map(|key| key.map(|key| ip_of(key.family, key.addr)))
        .collect::<Result<_, _>>()
        .map_err(map_error(specs::DECAP_ADDRESSES.name))?;
    addresses.sort();
    let sources: LpmTrie<_, SourcePrefix, u8> =
        LpmTrie::try_from(Map::LpmTrie(take(specs::DECAP_SOURCES.name)?))
            .map_err(map_error(specs::DECAP_SOURCES.name))?;
    let mut sources: Vec<Prefix> = sources
        .keys()
        .map(|key| key.map(|key| Prefix::of_key(&key)))
        .collect::<Result<_, _>>()
        .map_err(map_error(specs::DECAP_SOURCES.name))?;
    sources.sort_by_key(|prefix| (prefix.addr, prefix.len));
    let stats: PerCpuArray<_, u64> =
        PerCpuArray::try_from(Map::PerCpuArray(take(specs::DECAP_STATS.name)?))
            .map_err(map_error(specs::DECAP_STATS.name))?;
    let counters = read_counters(&stats)?
        .into_iter()
        .map(|(outcome, count)| (outcome.name().to_owned(), count))
        .collect();
    Ok(DecapStatus {
        iface: iface.to_owned(),
        program_id,
        settings: DecapSettings {
            addresses,
            sources,
            gue_port: (gue_port_be != 0).then(|| u16::from_be(gue_port_be)),
        },
        counters,
    })
}
