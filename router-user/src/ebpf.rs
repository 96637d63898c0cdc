//! Loading the programs built by `build.rs` (the XDP router and the `SO_REUSEPORT` program
//! that selects local workers' sockets) with maps made to the [`Limits`], or the maps a
//! running router pinned, once they are checked against the contract in
//! `router_common::maps`.

use std::path::{Path, PathBuf};

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{MapError, MapInfo},
    programs::{ProgramError, SkReuseport, Xdp},
};
use router_common::maps::{Limits, MapKind, MapSpec, PINNED_MAPS, ROUTER_MAPS};

/// The router's object file, aligned for aya's ELF parser.
pub fn program_bytes() -> &'static [u8] {
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/router-ebpf"))
}

/// The name of the XDP program in the object file.
pub const PROGRAM_NAME: &str = "quic_router";
/// The name of the `SO_REUSEPORT` program that selects local workers' sockets.
pub const WORKER_PROGRAM_NAME: &str = "select_worker";

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot load the router's BPF object (needs root): {0}")]
    Object(#[from] EbpfError),
    #[error("the kernel refused a program of the router: {0}")]
    Program(#[from] ProgramError),
    #[error("the object has no program {0}")]
    NoProgram(&'static str),
    #[error("pinned map {path}: {source}")]
    PinnedInfo { path: String, source: MapError },
    #[error("cannot tell this machine's possible CPUs: {0}")]
    Cpus(String),
    #[error(
        "the running router's map {map} has {actual} entries where [limits] call for {expected}: \
         its maps were made with other limits; keep those, or `quic-router detach` first \
         (routing stops until the next start)"
    )]
    LimitsChanged {
        map: &'static str,
        actual: u32,
        expected: u32,
    },
    #[error(
        "the running router's map {map} has {field} {actual} where this build has {expected}: \
         it was pinned by another version; `quic-router detach` first"
    )]
    Layout {
        map: &'static str,
        field: &'static str,
        actual: u32,
        expected: u32,
    },
}

/// How to load the router.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions<'a> {
    /// The sizes of the maps that grow with the config.
    pub limits: Limits,
    /// Use (or create and pin) the state maps in this directory.
    pub pin_dir: Option<&'a Path>,
    /// Log a line per packet through aya-log (debug mode only).
    pub debug_log: bool,
    /// Whether and how to remember the backends of encrypted CIDs, so that later packets
    /// skip the AES passes.
    pub cid_cache: CidCacheMode,
    /// Record each packet's verdict for [`Router::explain`](crate::router::Router::explain).
    pub trace_verdicts: bool,
}

impl Default for LoadOptions<'_> {
    fn default() -> Self {
        Self {
            limits: Limits::DEFAULT,
            pin_dir: None,
            debug_log: false,
            cid_cache: CidCacheMode::PerCpu,
            trace_verdicts: false,
        }
    }
}

/// How the program remembers the backends of encrypted CIDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CidCacheMode {
    /// A region of the cache per CPU, which no other CPU reads or writes (production).
    PerCpu,
    /// One cache for all CPUs, for the benchmark's comparison only: a CPU could read an
    /// entry that another is writing, a CID with another's backend.
    Common,
    /// Decode every packet (benchmarks of the decoding).
    Off,
}

/// CPU numbers on this machine: its possible CPUs (the CID cache has a region for each). If
/// the possible CPUs had gaps in their numbers, the highest would find no region and decode
/// every packet: slower, never misrouted.
pub fn cpu_slots() -> Result<u32, LoadError> {
    aya::util::nr_cpus()
        .map(|cpus| cpus as u32)
        .map_err(|(path, err)| LoadError::Cpus(format!("{path}: {err}")))
}

/// What a map is, as the kernel or an object file describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapShape {
    pub kind: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
}

impl MapShape {
    /// What `spec` is under `limits` on a machine of `cpu_slots` CPU numbers.
    pub fn of(spec: &MapSpec, limits: &Limits, cpu_slots: u32) -> Self {
        Self {
            kind: spec.kind as u32,
            key_size: spec.key_size,
            value_size: spec.value_size,
            max_entries: spec.max_entries(limits, cpu_slots),
            flags: spec.flags,
        }
    }

    fn of_info(info: &MapInfo) -> Self {
        let kind = info.map_type().map_or(u32::MAX, |kind| kind as u32);
        Self {
            kind,
            key_size: info.key_size(),
            value_size: info.value_size(),
            max_entries: info.max_entries(),
            flags: info.map_flags() & !kernel_added_flags(kind),
        }
    }

    /// Whether a map of this shape can serve as `spec` under `limits` on a machine of
    /// `cpu_slots` CPU numbers; why not if not.
    pub fn check(&self, spec: &MapSpec, limits: &Limits, cpu_slots: u32) -> Result<(), LoadError> {
        let expected = Self::of(spec, limits, cpu_slots);
        let fields = [
            ("type", self.kind, expected.kind),
            ("key size", self.key_size, expected.key_size),
            ("value size", self.value_size, expected.value_size),
            ("flags", self.flags, expected.flags),
        ];
        for (field, actual, expected) in fields {
            if actual != expected {
                return Err(LoadError::Layout {
                    map: spec.name,
                    field,
                    actual,
                    expected,
                });
            }
        }
        match (
            self.max_entries == expected.max_entries,
            spec.sized_by_limits(),
        ) {
            (true, _) => Ok(()),
            (false, true) => Err(LoadError::LimitsChanged {
                map: spec.name,
                actual: self.max_entries,
                expected: expected.max_entries,
            }),
            (false, false) => Err(LoadError::Layout {
                map: spec.name,
                field: "entries",
                actual: self.max_entries,
                expected: expected.max_entries,
            }),
        }
    }
}

/// Flags the kernel sets by itself when it makes a map of `kind`: a devmap is read-only to
/// programs (`BPF_F_RDONLY_PROG`).
fn kernel_added_flags(kind: u32) -> u32 {
    const BPF_F_RDONLY_PROG: u32 = 1 << 7;
    if kind == MapKind::DevMapHash as u32 {
        BPF_F_RDONLY_PROG
    } else {
        0
    }
}

/// The pin path of `spec`'s map in `pin_dir`.
pub fn pin_path(pin_dir: &Path, spec: &MapSpec) -> PathBuf {
    pin_dir.join(spec.name)
}

/// Checks the maps pinned in `pin_dir` (those there are) against the contract under
/// `limits`, before anything adopts them.
fn check_pinned(pin_dir: &Path, limits: &Limits, cpu_slots: u32) -> Result<(), LoadError> {
    for spec in &PINNED_MAPS {
        let path = pin_path(pin_dir, spec);
        if !path.exists() {
            continue;
        }
        let info = MapInfo::from_pin(&path).map_err(|source| LoadError::PinnedInfo {
            path: path.display().to_string(),
            source,
        })?;
        MapShape::of_info(&info).check(spec, limits, cpu_slots)?;
    }
    Ok(())
}

/// Loads `object` (this build's is [`program_bytes`]) and both its programs into the kernel,
/// not attached.
pub fn load(object: &[u8], options: &LoadOptions<'_>) -> Result<Ebpf, LoadError> {
    let cpu_slots = cpu_slots()?;
    if let Some(pin_dir) = options.pin_dir {
        check_pinned(pin_dir, &options.limits, cpu_slots)?;
    }
    // aya-log's level: 0 is off, 4 is debug (every level up to it).
    let log_level: u8 = if options.debug_log { 4 } else { 0 };
    let trace = u8::from(options.trace_verdicts);
    let cid_cache = u8::from(options.cid_cache != CidCacheMode::Off);
    let cid_cache_sets = options.limits.cid_cache_sets();
    let cid_cache_stride = match options.cid_cache {
        CidCacheMode::Common => 0,
        CidCacheMode::PerCpu | CidCacheMode::Off => cid_cache_sets,
    };
    let pins: Vec<(&str, PathBuf)> = options
        .pin_dir
        .map(|dir| {
            PINNED_MAPS
                .iter()
                .map(|spec| (spec.name, pin_path(dir, spec)))
                .collect()
        })
        .unwrap_or_default();
    let mut loader = EbpfLoader::new();
    loader
        .override_global("TRACE_VERDICTS", &trace, true)
        .override_global("AYA_LOG_LEVEL", &log_level, true)
        .override_global("CID_CACHE_ON", &cid_cache, true)
        .override_global("CID_CACHE_SETS", &cid_cache_sets, true)
        .override_global("CID_CACHE_STRIDE", &cid_cache_stride, true);
    for spec in ROUTER_MAPS.iter().filter(|spec| spec.sized_by_limits()) {
        loader.map_max_entries(spec.name, spec.max_entries(&options.limits, cpu_slots));
    }
    for (name, path) in &pins {
        loader.map_pin_path(name, path.as_path());
    }
    let mut ebpf = loader.load(object)?;
    xdp_program(&mut ebpf)?.load()?;
    worker_program(&mut ebpf)?.load()?;
    Ok(ebpf)
}

/// The router's XDP program in `ebpf`.
pub fn xdp_program(ebpf: &mut Ebpf) -> Result<&mut Xdp, LoadError> {
    ebpf.program_mut(PROGRAM_NAME)
        .ok_or(LoadError::NoProgram(PROGRAM_NAME))?
        .try_into()
        .map_err(|_| LoadError::NoProgram(PROGRAM_NAME))
}

/// The `SO_REUSEPORT` program in `ebpf` that selects local workers' sockets.
pub fn worker_program(ebpf: &mut Ebpf) -> Result<&mut SkReuseport, LoadError> {
    ebpf.program_mut(WORKER_PROGRAM_NAME)
        .ok_or(LoadError::NoProgram(WORKER_PROGRAM_NAME))?
        .try_into()
        .map_err(|_| LoadError::NoProgram(WORKER_PROGRAM_NAME))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use router_common::maps::{Limits, ROUTER_MAPS};

    use super::*;

    /// Maps the object holds besides the router's own: its global data and aya-log's.
    const OTHER_MAPS: [&str; 4] = [".rodata", ".bss", "AYA_LOGS", "AYA_LOG_BUF"];

    fn object() -> aya_obj::Object {
        aya_obj::Object::parse(program_bytes()).expect("the built object parses")
    }

    fn shape(map: &aya_obj::Map) -> MapShape {
        MapShape {
            kind: map.map_type(),
            key_size: map.key_size(),
            value_size: map.value_size(),
            max_entries: map.max_entries(),
            flags: map.map_flags(),
        }
    }

    #[test]
    fn every_map_of_the_built_object_is_the_contracts() {
        let object = object();
        for spec in &ROUTER_MAPS {
            let map = object
                .maps
                .get(spec.name)
                .unwrap_or_else(|| panic!("the object has no map {}", spec.name));
            // The object is built for one CPU slot; the loader sizes the rest.
            shape(map)
                .check(spec, &Limits::DEFAULT, 1)
                .unwrap_or_else(|err| panic!("{err}"));
        }
        let contract: BTreeSet<&str> = ROUTER_MAPS.iter().map(|spec| spec.name).collect();
        let others: BTreeSet<&str> = object
            .maps
            .keys()
            .map(String::as_str)
            .filter(|name| !contract.contains(name))
            .collect();
        let allowed = BTreeSet::from(OTHER_MAPS);
        assert!(
            others.is_subset(&allowed),
            "maps outside the contract: {:?}",
            others.difference(&allowed).collect::<Vec<_>>()
        );
    }

    #[test]
    fn the_object_holds_the_routers_programs_only() {
        let object = object();
        let programs: BTreeSet<&str> = object.programs.keys().map(String::as_str).collect();
        assert_eq!(
            programs,
            BTreeSet::from([PROGRAM_NAME, WORKER_PROGRAM_NAME])
        );
    }

    #[test]
    fn a_map_of_another_shape_is_refused_with_the_reason() {
        let spec = router_common::maps::specs::SERVER_IDS;
        let limits = Limits::DEFAULT;
        let grown = Limits {
            server_ids: limits.server_ids * 2,
            ..limits
        };
        let made = MapShape::of(&spec, &limits, 2);
        assert!(made.check(&spec, &limits, 2).is_ok());
        assert!(matches!(
            made.check(&spec, &grown, 2),
            Err(LoadError::LimitsChanged {
                map: "SERVER_IDS",
                ..
            })
        ));
        let other_key = MapShape {
            key_size: made.key_size + 1,
            ..made
        };
        assert!(matches!(
            other_key.check(&spec, &limits, 2),
            Err(LoadError::Layout {
                field: "key size",
                ..
            })
        ));
        let fixed = router_common::maps::specs::STATS;
        let other_count = MapShape {
            max_entries: 3,
            ..MapShape::of(&fixed, &limits, 2)
        };
        assert!(matches!(
            other_count.check(&fixed, &grown, 2),
            Err(LoadError::Layout {
                field: "entries",
                ..
            })
        ));
    }
}
