//! The router config file (TOML): listeners, QUIC-LB configs, backends and the limits the
//! maps are made to. Parsed and validated in full before anything is applied; every error
//! names the file, the line and the problem.
//!
//! ```
//! use router_user::config::{self, Reach};
//!
//! let text = r#"
//! [[listener]]
//! address = "198.18.0.10"
//! port = 443
//!
//! [[quic_lb]]
//! config_rotation = 0
//! server_id_len = 2
//! nonce_len = 6
//!
//! [[backend]]
//! name = "alpha"
//! server_ids = { 0 = ["0a01"] }
//! interface = "eth1"
//! next_hop_mac = "02:00:00:00:0a:01"
//! "#;
//! let config = config::parse(text, "router.toml".as_ref()).unwrap();
//! assert_eq!(config.backends[0].server_ids, [(0, vec![0x0a, 0x01])]);
//! assert!(matches!(&config.backends[0].reach, Reach::Host { interface, .. } if interface == "eth1"));
//!
//! let error = config::parse(&text.replace("0a01", "0a"), "router.toml".as_ref()).unwrap_err();
//! assert_eq!(
//!     error.to_string(),
//!     "router.toml:13: backend alpha: server ID \"0a\" is not 2 octets of hex (config rotation 0)"
//! );
//! ```

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    ops::Range,
    path::{Path, PathBuf},
};

use router_common::{
    maps::Limits,
    quic_lb::{CONFIG_ROTATIONS, ConfigError as ParamsError, ConfigParams, Key, Mode},
};
use serde::Deserialize;
use toml::Spanned;

use crate::{
    announce::{self, AnnounceSettings},
    decap::Prefix,
    files::{self, FileError, MAX_CONFIG_LEN},
    health::HealthSettings,
    key::load_key_file,
    netif,
};

/// A validated router config.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    pub listeners: Vec<Listener>,
    pub cid_configs: Vec<CidConfig>,
    pub backends: Vec<Backend>,
    /// How backends reached by GUE or IP-in-IP are encapsulated (`[encapsulation]`).
    pub encapsulation: Encapsulation,
    /// The sizes of the maps: a running router's cannot change.
    pub limits: Limits,
    /// Backend health checks (`[health]`): none without the section.
    pub health: Option<HealthSettings>,
    /// The VIPs' routes for the BGP daemon (`[announce]`): none without the section.
    pub announce: Option<AnnounceSettings>,
}

impl RouterConfig {
    /// A digest of what decides which backend each packet goes to: the listeners, the
    /// QUIC-LB configs' parameters and modes (not their keys), and the backends in file
    /// order (the fallback table depends on it) with their server IDs, weights and states.
    /// Routers whose digests (and key files) agree route every packet alike; how each
    /// reaches a backend (interface, MAC, tunnel, outer sources) and its map sizes are its
    /// own. 32 hex digits (SipHash-1-3, 128 bits, over a canonical text).
    pub fn routing_digest(&self) -> String {
        use std::fmt::Write as _;
        let mut text = String::new();
        let mut listeners = self.listeners.clone();
        listeners.sort();
        for l in &listeners {
            let routing = match l.initial_routing {
                InitialRouting::Cid => "cid",
                InitialRouting::Hash => "hash",
            };
            let _ = writeln!(text, "listener {} {} {routing}", l.address, l.port);
        }
        let mut codepoints: Vec<&CidConfig> = self.cid_configs.iter().collect();
        codepoints.sort_by_key(|c| c.params.config_rotation);
        for c in codepoints {
            let p = &c.params;
            let _ = writeln!(
                text,
                "quic_lb {} {} {} {} {} {}",
                p.config_rotation,
                p.server_id_len,
                p.nonce_len,
                p.length_self_description,
                p.server_use_len,
                c.mode().name()
            );
        }
        for b in &self.backends {
            let mut ids: Vec<String> = b
                .server_ids
                .iter()
                .map(|(codepoint, id)| format!("{codepoint}:{}", hex::encode(id)))
                .collect();
            ids.sort();
            let _ = writeln!(
                text,
                "backend {} {} {} {}",
                b.name,
                b.weight,
                b.state.name(),
                ids.join(",")
            );
        }
        let mut hasher = siphasher::sip128::SipHasher13::new();
        std::hash::Hasher::write(&mut hasher, text.as_bytes());
        format!(
            "{:032x}",
            siphasher::sip128::Hasher128::finish128(&hasher).as_u128()
        )
    }
}

/// A VIP and UDP port that QUIC arrives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Listener {
    pub address: IpAddr,
    pub port: u16,
    pub initial_routing: InitialRouting,
}

/// How Initial and 0-RTT packets are routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum InitialRouting {
    /// By their token (Initials) or their DCID when it names a server (a resumed connection
    /// goes back to the server that issued the token or the CID), else by the 4-tuple hash.
    #[default]
    Cid,
    /// By the 4-tuple hash only, whatever the token or DCID (for comparison, or clients that
    /// put stale CIDs in Initials).
    Hash,
}

/// One QUIC-LB configuration, with its key when it has one.
#[derive(Debug, Clone)]
pub struct CidConfig {
    pub params: ConfigParams,
    pub key: Option<Key>,
    /// Where the key came from (watched for changes by the controller).
    pub key_file: Option<PathBuf>,
}

impl CidConfig {
    /// How it protects server IDs.
    pub fn mode(&self) -> Mode {
        Mode::of(self.key.is_some(), self.params.plaintext_len())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BackendState {
    /// Takes new connections (fallback traffic) and the traffic that names it.
    #[default]
    Active,
    /// Keeps the traffic that names it; no fallback traffic.
    Draining,
}

impl BackendState {
    /// The name in the config file, the run state and messages.
    pub fn name(self) -> &'static str {
        match self {
            BackendState::Active => "active",
            BackendState::Draining => "draining",
        }
    }
}

/// A server: where to send the packets whose connection IDs carry its server IDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    pub name: String,
    /// (config rotation codepoint, server ID) pairs.
    pub server_ids: Vec<(u8, Vec<u8>)>,
    pub reach: Reach,
    pub weight: u32,
    pub state: BackendState,
}

/// How the router reaches a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// A host behind `interface`: the packet's Ethernet destination becomes `next_hop_mac`
    /// (the host's, or the next router's when `delivery` encapsulates).
    Host {
        interface: String,
        next_hop_mac: [u8; 6],
        delivery: Delivery,
    },
    /// A host behind a tunnel (`delivery` is `gue` or `ipip`, never `l2`) with no configured
    /// next hop: the kernel's routes and neighbours give it, packet by packet.
    Routed { delivery: Delivery },
    /// A worker on the router's own host: its socket in the listener's `SO_REUSEPORT` group
    /// gets the packets (the worker registers it, see `router_user::local`).
    LocalWorker,
}

/// How packets reach a host (`delivery`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// The packet as it came, with the next hop's MAC (`l2`): the host is on the segment.
    #[default]
    L2,
    /// Inside GUE to the host's tunnel address (`gue`).
    Gue { tunnel: IpAddr },
    /// Inside IP-in-IP to the host's tunnel address (`ipip`).
    Ipip { tunnel: IpAddr },
}

/// `[encapsulation]`: the outer source prefixes (each flow's source address varies within
/// them) and GUE's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Encapsulation {
    pub source4: Option<Prefix>,
    pub source6: Option<Prefix>,
    pub gue_port: Option<u16>,
}

/// Why `address` cannot be a listener's VIP, if it cannot.
fn not_a_vip(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V4(v4) if v4.is_unspecified() => Some("the unspecified address"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("the broadcast address"),
        IpAddr::V4(v4) if v4.is_multicast() => Some("a multicast address"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some("the unspecified address"),
        IpAddr::V6(v6) if v6.is_multicast() => Some("a multicast address"),
        // Packets carry it as IPv4: the listener would never match.
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
            Some("an IPv4-mapped IPv6 address (give the IPv4 address)")
        }
        _ => None,
    }
}

/// The longest backend name.
const MAX_BACKEND_NAME_LEN: usize = 64;

/// Whether `name` may name a backend: 1 to 64 ASCII letters, digits, `-`, `_` or `.`, so that
/// it shows the same in the file, the logs, the CLI's tables and the metrics' labels.
fn valid_backend_name(name: &str) -> bool {
    (1..=MAX_BACKEND_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// At most 80 characters of `text`, to quote it in a message.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((end, _)) => format!("{}...", &text[..end]),
        None => text.to_owned(),
    }
}

/// The largest weight: the fallback table has 65,537 slots to share.
pub const MAX_WEIGHT: u32 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path}: not UTF-8 text")]
    NotText { path: String },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: String,
        line: usize,
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    limits: Option<RawLimits>,
    #[serde(default)]
    listener: Vec<Spanned<RawListener>>,
    #[serde(default)]
    quic_lb: Vec<Spanned<RawQuicLb>>,
    #[serde(default)]
    backend: Vec<Spanned<RawBackend>>,
    encapsulation: Option<Spanned<RawEncapsulation>>,
    health: Option<RawHealth>,
    announce: Option<RawAnnounce>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnnounce {
    table: Spanned<u64>,
    drain_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEncapsulation {
    source4: Option<Spanned<String>>,
    source6: Option<Spanned<String>>,
    gue_port: Option<Spanned<u16>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHealth {
    interval_ms: Option<Spanned<u64>>,
    rise: Option<Spanned<u64>>,
    fall: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    backends: Option<Spanned<u32>>,
    server_ids: Option<Spanned<u32>>,
    listeners: Option<Spanned<u32>>,
    cid_cache_entries: Option<Spanned<u32>>,
}

/// The smallest CID cache: 512 sets per CPU.
const MIN_CID_CACHE_ENTRIES: u32 = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    address: Spanned<String>,
    port: Spanned<u16>,
    #[serde(default)]
    initial_routing: InitialRouting,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuicLb {
    config_rotation: Spanned<u8>,
    server_id_len: Spanned<u8>,
    nonce_len: Spanned<u8>,
    key_file: Option<Spanned<String>>,
    length_self_description: Option<bool>,
    server_use_len: Option<Spanned<u8>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    name: Spanned<String>,
    #[serde(default)]
    server_ids: BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
    interface: Option<Spanned<String>>,
    next_hop_mac: Option<Spanned<String>>,
    local_worker: Option<bool>,
    weight: Option<Spanned<u32>>,
    #[serde(default)]
    state: BackendState,
    delivery: Option<Spanned<String>>,
    tunnel_address: Option<Spanned<String>>,
}

/// Reads and validates the config file at `path`. Relative key file paths are taken from
/// the config file's directory.
pub fn load(path: &Path) -> Result<RouterConfig, ConfigError> {
    parse(&read_text(path)?, path)
}

/// The text of the config file at `path`: a regular file of at most [`MAX_CONFIG_LEN`]
/// octets of UTF-8.
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    String::from_utf8(files::read_regular(path, MAX_CONFIG_LEN)?).map_err(|_| {
        ConfigError::NotText {
            path: path.display().to_string(),
        }
    })
}

/// Validates `text` as the contents of the config file at `path`.
pub fn parse(text: &str, path: &Path) -> Result<RouterConfig, ConfigError> {
    let context = Context { text, path };
    let raw: RawConfig = toml::from_str(text).map_err(|err| {
        let span = err.span().unwrap_or(0..0);
        context.error(span, err.message().trim().replace('\n', " "))
    })?;
    let limits = context.limits(raw.limits.as_ref())?;
    let listeners = context.listeners(&raw.listener, &limits)?;
    let cid_configs = context.cid_configs(&raw.quic_lb)?;
    let encapsulation = context.encapsulation(raw.encapsulation.as_ref())?;
    let backends = context.backends(&raw.backend, &cid_configs, &limits, &encapsulation)?;
    let health = raw
        .health
        .as_ref()
        .map(|raw| context.health(raw))
        .transpose()?;
    let announce = raw
        .announce
        .as_ref()
        .map(|raw| context.announce(raw))
        .transpose()?;
    Ok(RouterConfig {
        listeners,
        cid_configs,
        backends,
        encapsulation,
        limits,
        health,
        announce,
    })
}

struct Context<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Context<'_> {
    fn error(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        let start = span.start.min(self.text.len());
        ConfigError::Invalid {
            path: self.path.display().to_string(),
            line: self.text[..start].matches('\n').count() + 1,
            message: message.into(),
        }
    }

    /// `[limits]`: each within its range; today's sizes where it is silent.
    fn limits(&self, raw: Option<&RawLimits>) -> Result<Limits, ConfigError> {
        let mut limits = Limits::DEFAULT;
        let Some(raw) = raw else {
            return Ok(limits);
        };
        let fields = [
            (
                "backends",
                &raw.backends,
                &mut limits.backends,
                1,
                Limits::MAX.backends,
            ),
            (
                "server_ids",
                &raw.server_ids,
                &mut limits.server_ids,
                1,
                Limits::MAX.server_ids,
            ),
            (
                "listeners",
                &raw.listeners,
                &mut limits.listeners,
                1,
                Limits::MAX.listeners,
            ),
            (
                "cid_cache_entries",
                &raw.cid_cache_entries,
                &mut limits.cid_cache_entries,
                MIN_CID_CACHE_ENTRIES,
                Limits::MAX.cid_cache_entries,
            ),
        ];
        for (name, given, limit, min, max) in fields {
            if let Some(given) = given {
                let value = *given.get_ref();
                if !(min..=max).contains(&value) {
                    return Err(self.error(
                        given.span(),
                        format!("limits.{name} = {value} is out of range {min}..={max}"),
                    ));
                }
                *limit = value;
            }
        }
        if let Some(given) = &raw.cid_cache_entries
            && !limits.cid_cache_entries.is_power_of_two()
        {
            return Err(self.error(
                given.span(),
                format!(
                    "limits.cid_cache_entries = {} is not a power of two (the program finds a CID's set by its bits)",
                    limits.cid_cache_entries
                ),
            ));
        }
        Ok(limits)
    }

    fn listeners(
        &self,
        raw: &[Spanned<RawListener>],
        limits: &Limits,
    ) -> Result<Vec<Listener>, ConfigError> {
        if raw.is_empty() {
            return Err(self.error(0..0, "no [[listener]]: the router needs at least one"));
        }
        let most = limits.listeners as usize;
        if raw.len() > most {
            return Err(self.error(
                raw[most].span(),
                format!("more than {most} listeners (limits.listeners)"),
            ));
        }
        let mut seen = BTreeSet::new();
        raw.iter()
            .map(|entry| {
                let entry = entry.get_ref();
                let address: IpAddr = entry.address.get_ref().parse().map_err(|_| {
                    self.error(
                        entry.address.span(),
                        format!(
                            "listener address {:?} is not an IP address",
                            entry.address.get_ref()
                        ),
                    )
                })?;
                if let Some(why) = not_a_vip(address) {
                    return Err(self.error(
                        entry.address.span(),
                        format!(
                            "listener address {address} is {why}: a VIP is one unicast address"
                        ),
                    ));
                }
                let port = *entry.port.get_ref();
                if port == 0 {
                    return Err(self.error(entry.port.span(), "listener port 0 is not a port"));
                }
                let listener = Listener {
                    address,
                    port,
                    initial_routing: entry.initial_routing,
                };
                if !seen.insert((address, port)) {
                    return Err(self.error(
                        entry.address.span(),
                        format!("listener {address} port {port} is given twice"),
                    ));
                }
                Ok(listener)
            })
            .collect()
    }

    fn cid_configs(&self, raw: &[Spanned<RawQuicLb>]) -> Result<Vec<CidConfig>, ConfigError> {
        if raw.len() > CONFIG_ROTATIONS {
            return Err(self.error(
                raw[CONFIG_ROTATIONS].span(),
                "more than 7 [[quic_lb]] configs",
            ));
        }
        let mut seen = BTreeSet::new();
        raw.iter()
            .map(|entry| {
                let table = entry.span();
                let entry = entry.get_ref();
                let params = ConfigParams {
                    config_rotation: *entry.config_rotation.get_ref(),
                    server_id_len: *entry.server_id_len.get_ref(),
                    nonce_len: *entry.nonce_len.get_ref(),
                    length_self_description: entry.length_self_description.unwrap_or(true),
                    server_use_len: entry.server_use_len.as_ref().map_or(0, |n| *n.get_ref()),
                };
                params.validate().map_err(|err| {
                    // Point at the field the rule is about.
                    let span = match err {
                        ParamsError::ReservedConfigRotation
                        | ParamsError::ConfigRotationOutOfRange(_) => entry.config_rotation.span(),
                        ParamsError::ServerIdLenOutOfRange(_) => entry.server_id_len.span(),
                        ParamsError::NonceLenOutOfRange(_)
                        | ParamsError::PlaintextTooLong { .. } => entry.nonce_len.span(),
                        ParamsError::CidTooLong { .. } => entry
                            .server_use_len
                            .as_ref()
                            .map_or(table.clone(), Spanned::span),
                    };
                    self.error(span, err.to_string())
                })?;
                if !seen.insert(params.config_rotation) {
                    return Err(self.error(
                        entry.config_rotation.span(),
                        format!("config rotation {} is given twice", params.config_rotation),
                    ));
                }
                let key_file = entry
                    .key_file
                    .as_ref()
                    .map(|file| self.relative(file.get_ref()));
                let key = match (&entry.key_file, &key_file) {
                    (Some(file), Some(path)) => Some(
                        load_key_file(path)
                            .map_err(|err| self.error(file.span(), err.to_string()))?,
                    ),
                    _ => None,
                };
                Ok(CidConfig {
                    params,
                    key,
                    key_file,
                })
            })
            .collect()
    }

    fn relative(&self, file: &str) -> PathBuf {
        let file = Path::new(file);
        match self.path.parent() {
            Some(dir) if file.is_relative() => dir.join(file),
            _ => file.to_owned(),
        }
    }

    fn backends(
        &self,
        raw: &[Spanned<RawBackend>],
        cid_configs: &[CidConfig],
        limits: &Limits,
        encapsulation: &Encapsulation,
    ) -> Result<Vec<Backend>, ConfigError> {
        let most = limits.backends as usize;
        if raw.len() > most {
            return Err(self.error(
                raw[most].span(),
                format!("more than {most} backends (limits.backends)"),
            ));
        }
        let server_id_len = |codepoint: u8| {
            cid_configs
                .iter()
                .find(|config| config.params.config_rotation == codepoint)
                .map(|config| config.params.server_id_len as usize)
        };
        let mut names = BTreeSet::new();
        let mut owners: BTreeMap<(u8, Vec<u8>), String> = BTreeMap::new();
        let mut backends = Vec::with_capacity(raw.len());
        for entry in raw {
            let entry = entry.get_ref();
            let name = entry.name.get_ref().clone();
            if !valid_backend_name(&name) {
                return Err(self.error(
                    entry.name.span(),
                    format!(
                        "backend name {:?} must be 1 to {MAX_BACKEND_NAME_LEN} letters, digits, '-', '_' or '.'",
                        shorten(&name)
                    ),
                ));
            }
            if !names.insert(name.clone()) {
                return Err(self.error(entry.name.span(), format!("backend {name} is given twice")));
            }
            let mut server_ids = Vec::new();
            for (codepoint_text, ids) in &entry.server_ids {
                // One digit: parse() would also take "+0" or "00".
                let codepoint = (codepoint_text.len() == 1)
                    .then(|| codepoint_text.parse::<u8>().ok())
                    .flatten()
                    .filter(|&c| server_id_len(c).is_some())
                    .ok_or_else(|| {
                        self.error(
                            ids.span(),
                            format!(
                                "backend {name}: server_ids key {codepoint_text:?} is not the config rotation of a [[quic_lb]]"
                            ),
                        )
                    })?;
                let len = server_id_len(codepoint).unwrap_or_default();
                for id in ids.get_ref() {
                    let bytes = hex::decode(id.get_ref()).ok().filter(|b| b.len() == len).ok_or_else(|| {
                        self.error(
                            id.span(),
                            format!(
                                "backend {name}: server ID {:?} is not {len} octets of hex (config rotation {codepoint})",
                                id.get_ref()
                            ),
                        )
                    })?;
                    if let Some(owner) = owners.insert((codepoint, bytes.clone()), name.clone()) {
                        return Err(self.error(
                            id.span(),
                            format!(
                                "server ID {} (config rotation {codepoint}) belongs to both {owner} and {name}",
                                id.get_ref()
                            ),
                        ));
                    }
                    server_ids.push((codepoint, bytes));
                }
            }
            if owners.len() > limits.server_ids as usize {
                return Err(self.error(
                    entry.name.span(),
                    format!(
                        "more than {} server IDs in all (limits.server_ids)",
                        limits.server_ids
                    ),
                ));
            }
            let weight = match &entry.weight {
                None => 1,
                Some(weight) if (1..=MAX_WEIGHT).contains(weight.get_ref()) => *weight.get_ref(),
                Some(weight) => {
                    return Err(self.error(
                        weight.span(),
                        format!(
                            "backend {name}: weight {} is out of range 1..={MAX_WEIGHT} (drain a backend with state = \"draining\")",
                            weight.get_ref()
                        ),
                    ));
                }
            };
            let reach = self.reach(&name, entry, encapsulation)?;
            backends.push(Backend {
                name,
                server_ids,
                reach,
                weight,
                state: entry.state,
            });
        }
        Ok(backends)
    }

    /// `[health]`: each within its range; the defaults where it is silent.
    fn health(&self, raw: &RawHealth) -> Result<HealthSettings, ConfigError> {
        let value = |field: &Option<Spanned<u64>>, name: &str, range: Range<u64>, default: u64| {
            let Some(given) = field else {
                return Ok(default);
            };
            let value = *given.get_ref();
            if range.contains(&value) {
                Ok(value)
            } else {
                Err(self.error(
                    given.span(),
                    format!(
                        "health.{name} = {value} is out of range {}..={}",
                        range.start,
                        range.end - 1
                    ),
                ))
            }
        };
        let defaults = HealthSettings::default();
        let interval_ms = value(
            &raw.interval_ms,
            "interval_ms",
            HealthSettings::INTERVALS_MS,
            defaults.interval.as_millis() as u64,
        )?;
        let counts = HealthSettings::COUNTS;
        Ok(HealthSettings {
            interval: std::time::Duration::from_millis(interval_ms),
            rise: value(&raw.rise, "rise", counts.clone(), defaults.rise.into())? as u32,
            fall: value(&raw.fall, "fall", counts, defaults.fall.into())? as u32,
        })
    }

    /// `[announce]`: a table that is not the kernel's own, and a drain within its range.
    fn announce(&self, raw: &RawAnnounce) -> Result<AnnounceSettings, ConfigError> {
        let table = *raw.table.get_ref();
        let table = u32::try_from(table)
            .ok()
            .filter(|&table| !announce::reserved_table(table))
            .ok_or_else(|| {
                self.error(
                    raw.table.span(),
                    format!(
                        "announce.table = {table} is not a table of the router's own (1..=4294967295, not 253, 254 or 255: default, main, local)"
                    ),
                )
            })?;
        let drain = match &raw.drain_ms {
            None => AnnounceSettings::DEFAULT_DRAIN,
            Some(given) if *given.get_ref() <= AnnounceSettings::MAX_DRAIN_MS => {
                std::time::Duration::from_millis(*given.get_ref())
            }
            Some(given) => {
                return Err(self.error(
                    given.span(),
                    format!(
                        "announce.drain_ms = {} is out of range 0..={}",
                        given.get_ref(),
                        AnnounceSettings::MAX_DRAIN_MS
                    ),
                ));
            }
        };
        Ok(AnnounceSettings { table, drain })
    }

    /// `[encapsulation]`: prefixes without host bits, of their family; a GUE port from 1.
    fn encapsulation(
        &self,
        raw: Option<&Spanned<RawEncapsulation>>,
    ) -> Result<Encapsulation, ConfigError> {
        let Some(raw) = raw else {
            return Ok(Encapsulation::default());
        };
        let prefix = |field: &Option<Spanned<String>>, name: &str, v6: bool| {
            field
                .as_ref()
                .map(|text| {
                    let prefix: Prefix = text.get_ref().parse().map_err(|err| {
                        self.error(text.span(), format!("encapsulation.{name}: {err}"))
                    })?;
                    if prefix.addr.is_ipv6() != v6 {
                        return Err(self.error(
                            text.span(),
                            format!(
                                "encapsulation.{name} must be an IPv{} prefix",
                                if v6 { 6 } else { 4 }
                            ),
                        ));
                    }
                    Ok(prefix)
                })
                .transpose()
        };
        let raw_ref = raw.get_ref();
        let gue_port = match &raw_ref.gue_port {
            Some(port) if *port.get_ref() == 0 => {
                return Err(self.error(port.span(), "encapsulation.gue_port must be 1 to 65535"));
            }
            port => port.as_ref().map(|port| *port.get_ref()),
        };
        Ok(Encapsulation {
            source4: prefix(&raw_ref.source4, "source4", false)?,
            source6: prefix(&raw_ref.source6, "source6", true)?,
            gue_port,
        })
    }

    /// How a host is reached: `l2` (the default), or `gue` / `ipip` to its
    /// `tunnel_address`, which `[encapsulation]` must then provide for.
    fn delivery(
        &self,
        name: &str,
        entry: &RawBackend,
        encapsulation: &Encapsulation,
    ) -> Result<Delivery, ConfigError> {
        let method = entry
            .delivery
            .as_ref()
            .map_or("l2", |method| method.get_ref().as_str());
        let span = entry
            .delivery
            .as_ref()
            .map_or_else(|| entry.name.span(), Spanned::span);
        if method == "l2" {
            if let Some(tunnel) = &entry.tunnel_address {
                return Err(self.error(
                    tunnel.span(),
                    format!("backend {name}: tunnel_address is for delivery = \"gue\" or \"ipip\""),
                ));
            }
            return Ok(Delivery::L2);
        }
        if !matches!(method, "gue" | "ipip") {
            return Err(self.error(
                span,
                format!(
                    "backend {name}: delivery {:?} is not l2, gue or ipip",
                    shorten(method)
                ),
            ));
        }
        let tunnel_text = entry.tunnel_address.as_ref().ok_or_else(|| {
            self.error(
                span.clone(),
                format!("backend {name}: delivery = {method:?} needs a tunnel_address"),
            )
        })?;
        let tunnel: IpAddr = tunnel_text
            .get_ref()
            .parse()
            .ok()
            .filter(|addr: &IpAddr| !addr.is_unspecified() && !addr.is_multicast())
            .ok_or_else(|| {
                self.error(
                    tunnel_text.span(),
                    format!(
                        "backend {name}: tunnel_address {:?} is not a unicast IP address",
                        shorten(tunnel_text.get_ref())
                    ),
                )
            })?;
        let (source, table_key) = if tunnel.is_ipv6() {
            (encapsulation.source6, "source6")
        } else {
            (encapsulation.source4, "source4")
        };
        if source.is_none() {
            return Err(self.error(
                tunnel_text.span(),
                format!("backend {name}: a tunnel to {tunnel} needs [encapsulation] {table_key}"),
            ));
        }
        if method == "gue" {
            if encapsulation.gue_port.is_none() {
                return Err(self.error(
                    span,
                    format!("backend {name}: delivery = \"gue\" needs [encapsulation] gue_port"),
                ));
            }
            Ok(Delivery::Gue { tunnel })
        } else {
            Ok(Delivery::Ipip { tunnel })
        }
    }

    /// A host's interface, next hop and delivery, or a local worker (which has none).
    fn reach(
        &self,
        name: &str,
        entry: &RawBackend,
        encapsulation: &Encapsulation,
    ) -> Result<Reach, ConfigError> {
        if entry.local_worker == Some(true) {
            if let Some(given) = entry
                .interface
                .as_ref()
                .map(Spanned::span)
                .or_else(|| entry.next_hop_mac.as_ref().map(Spanned::span))
                .or_else(|| entry.delivery.as_ref().map(Spanned::span))
                .or_else(|| entry.tunnel_address.as_ref().map(Spanned::span))
            {
                return Err(self.error(
                    given,
                    format!(
                        "backend {name}: a local worker has no interface, next_hop_mac, delivery or tunnel_address (its socket is on this host)"
                    ),
                ));
            }
            return Ok(Reach::LocalWorker);
        }
        let delivery = self.delivery(name, entry, encapsulation)?;
        if delivery != Delivery::L2 {
            match (&entry.interface, &entry.next_hop_mac) {
                (None, None) => return Ok(Reach::Routed { delivery }),
                (Some(given), None) | (None, Some(given)) => {
                    return Err(self.error(
                        given.span(),
                        format!(
                            "backend {name}: a tunnel's next hop is interface and next_hop_mac together, or neither (the kernel's routes)"
                        ),
                    ));
                }
                (Some(_), Some(_)) => {}
            }
        }
        let missing = |field: &str| {
            self.error(
                entry.name.span(),
                format!("backend {name}: {field} is missing (or set local_worker = true)"),
            )
        };
        let interface = entry
            .interface
            .as_ref()
            .ok_or_else(|| missing("interface"))?;
        let next_hop_mac = entry
            .next_hop_mac
            .as_ref()
            .ok_or_else(|| missing("next_hop_mac"))?;
        let mac = parse_mac(next_hop_mac.get_ref()).ok_or_else(|| {
            self.error(
                next_hop_mac.span(),
                format!(
                    "backend {name}: next_hop_mac {:?} is not a MAC address (aa:bb:cc:dd:ee:ff)",
                    shorten(next_hop_mac.get_ref())
                ),
            )
        })?;
        if mac == [0; 6] || mac[0] & 1 != 0 {
            return Err(self.error(
                next_hop_mac.span(),
                format!(
                    "backend {name}: next_hop_mac {} is not a unicast MAC address (zero, broadcast and multicast addresses name no host)",
                    next_hop_mac.get_ref()
                ),
            ));
        }
        let interface_name = interface.get_ref().clone();
        if !netif::valid_name(&interface_name) {
            return Err(self.error(
                interface.span(),
                format!(
                    "backend {name}: {:?} is not an interface name (1 to 15 characters, not . or .., no /, :, spaces or control characters)",
                    shorten(&interface_name)
                ),
            ));
        }
        Ok(Reach::Host {
            interface: interface_name,
            next_hop_mac: mac,
            delivery,
        })
    }
}

/// `aa:bb:cc:dd:ee:ff`: six pairs of hex digits (upper or lower case).
pub fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for octet in &mut mac {
        let part = parts.next()?;
        // Not from_str_radix alone: it takes a sign ("+2").
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *octet = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}
