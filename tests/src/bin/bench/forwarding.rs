//! Forwarding rate end to end through the namespace topology: the generator (`harness`) in
//! the client namespace sends QUIC short-header packets, bounded in time and count, whose CIDs
//! name three backends under all four QUIC-LB configs; a sink at each backend's interface (an
//! XDP program) counts what arrives and whether the CID names that backend. The generator
//! has CPU 0; the forwarder has the last CPU (the router interface's NAPI, threaded, pinned
//! there). The sinks run there too: a redirect schedules the receiving veth's NAPI on its
//! own CPU, and CPU 0 has no room left beside the generator. That is the same work for every
//! forwarder; the program run times (BPF statistics) tell the sinks' share. In one run,
//! interleaved round by round:
//!
//! - the floor: the parse-and-redirect XDP program, native mode, slot by source port;
//! - quic-router: the router's XDP program, native mode;
//! - user space: a UDP router on an ordinary socket in the router namespace (the VIP on its
//!   loopback, one thread, recvmmsg/sendmmsg batches), doing the same CID routing with
//!   router-common's decoder and the router's own tables.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4},
    os::fd::AsRawFd as _,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread::{self, JoinHandle},
    time::Duration,
};

use aya::{
    Ebpf,
    maps::{Array, DevMap, MapData, PerCpuArray},
    sys::{Stats, enable_stats},
};
use bench_ebpf::{SinkCounter, map_names, program_names};
use integration_tests::{
    ConfigFile,
    addresses::{QUIC_PORT, VIP4, backend4},
    attach_router, attach_router_with, backend_text,
    config_text::Reach,
    fixtures::BACKENDS,
    load_bench_programs, load_router, netns, options_for, standard_config_text, take_map,
    topology::Topology,
    xdp_program,
};
use router_common::{
    flow_hash::{FlowAddr, flow_hash},
    maps::{FALLBACK_TABLE_SIZE, ServerIdKey},
    quic_lb::{Config, Decoder},
};
use router_user::{
    config::{RouterConfig, parse_mac},
    netif,
    router::{CidCacheMode, LoadOptions, Mode, Router},
    tables::RoutingTables,
};

use crate::harness::{
    GENERATOR_CPU, Generator, MessageBatch, busy, cpu_times, flow_payloads, forwarding_cpu,
    load_and_attach, ns_per_run, pin_napi_threads, pin_to_cpu, receiving_socket, sockaddr_in,
    udp_rcvbuf_errors_in, xdp_run_stats,
};

pub struct Settings {
    /// How long the generator sends, per measurement.
    pub seconds: f64,
    /// The most packets it sends, per measurement.
    pub max_packets: u64,
    /// Measurements per forwarder; the median is reported.
    pub rounds: usize,
}

pub(crate) const FLOWS: usize = 12;
pub(crate) const BACKEND_COUNT: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarder {
    Floor,
    Router,
    /// The router with one CID cache for all CPUs (a plain array instead of a per-CPU one).
    RouterCommonCache,
    UserSpace,
}

impl Forwarder {
    /// The forwarders of [`Layout::OneForwardingCpu`].
    pub const ALL: [Self; 3] = [Self::Floor, Self::Router, Self::UserSpace];
    /// The forwarders of [`Layout::EveryCpu`].
    pub const EVERY_CPU: [Self; 3] = [Self::Floor, Self::Router, Self::RouterCommonCache];

    pub fn name(self) -> &'static str {
        match self {
            Self::Floor => "floor: parse + devmap redirect (XDP native)",
            Self::Router => "quic-router (XDP native)",
            Self::RouterCommonCache => "quic-router, one CID cache for all CPUs (XDP native)",
            Self::UserSpace => "user-space UDP router (recvmmsg/sendmmsg)",
        }
    }

    pub fn id(self) -> &'static str {
        match self {
            Self::Floor => "floor",
            Self::Router => "quic_router",
            Self::RouterCommonCache => "quic_router_common_cache",
            Self::UserSpace => "user_space",
        }
    }
}

/// Where the generator and the forwarder run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// The generator on CPU 0; the forwarder (the router interface's NAPI, threaded, pinned)
    /// and the sinks on the last CPU.
    OneForwardingCpu,
    /// Every CPU generates and forwards: each veth has a queue per CPU, the frames a CPU
    /// sends take its own queue, and that queue's NAPI (softirq) runs on it, the forwarder
    /// and the sinks with it. The forwarder's program runs on all CPUs at once.
    EveryCpu,
}

impl Layout {
    pub fn id(self) -> &'static str {
        match self {
            Self::OneForwardingCpu => "one_forwarding_cpu",
            Self::EveryCpu => "every_cpu",
        }
    }

    fn forwarders(self) -> &'static [Forwarder] {
        match self {
            Self::OneForwardingCpu => &Forwarder::ALL,
            Self::EveryCpu => &Forwarder::EVERY_CPU,
        }
    }

    fn generator_cpus(self) -> Vec<usize> {
        match self {
            Self::OneForwardingCpu => vec![GENERATOR_CPU],
            Self::EveryCpu => (0..cpus()).collect(),
        }
    }
}

/// The machine's CPUs.
pub fn cpus() -> usize {
    thread::available_parallelism().map_or(1, usize::from)
}

/// One measurement.
#[derive(Debug, Clone)]
pub struct Run {
    pub layout: Layout,
    pub forwarder: Forwarder,
    pub sent: u64,
    pub delivered: u64,
    /// `delivered` by the CPU that forwarded it.
    pub delivered_by_cpu: Vec<u64>,
    /// Delivered to a backend other than the one the CID names.
    pub misrouted: u64,
    /// Dropped because the user-space router's socket buffer was full.
    pub router_overflows: u64,
    pub seconds: f64,
    /// Share of the time the forwarding CPU was busy (1.0: the forwarder was the bound).
    pub forwarding_cpu_busy: f64,
    /// The same for the generator's CPU.
    pub generator_cpu_busy: f64,
    /// Average run time of the XDP forwarder's program, and of the sinks' (which share the
    /// forwarding CPU), under this traffic, in ns (BPF statistics, from the warm-up round).
    pub forwarder_ns: Option<f64>,
    pub sink_ns: Option<f64>,
}

impl Run {
    pub fn delivered_pps(&self) -> f64 {
        self.delivered as f64 / self.seconds
    }

    pub fn offered_pps(&self) -> f64 {
        self.sent as f64 / self.seconds
    }

    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.delivered)
    }
}

/// The frames the generator sends, one per flow. Flow `j` carries a CID of backend `j % 3`
/// under codepoint `(j / 3) % 4`, from a source port that the floor maps to the same backend.
fn frames(generator: &Generator) -> Vec<Vec<u8>> {
    let servers: Vec<[&str; 4]> = BACKENDS[..BACKEND_COUNT]
        .iter()
        .map(|b| b.server_ids)
        .collect();
    flow_payloads(&servers, FLOWS)
        .into_iter()
        .enumerate()
        .map(|(j, (backend, payload))| {
            generator.frame(41_000 + 4 * j as u16 + backend as u16, payload)
        })
        .collect()
}

pub fn run(settings: &Settings, layout: Layout) -> Vec<Run> {
    let topology = match layout {
        Layout::OneForwardingCpu => Topology::new(BACKEND_COUNT),
        Layout::EveryCpu => Topology::with_queues(BACKEND_COUNT, cpus()),
    };
    let macs: Vec<String> = (0..BACKEND_COUNT)
        .map(|i| topology.backend_mac(i))
        .collect();
    let interfaces: Vec<String> = (1..=BACKEND_COUNT).map(|i| format!("r{i}")).collect();
    let config_file = ConfigFile::with_text(|dir| {
        (0..BACKEND_COUNT).fold(standard_config_text(dir, &[]), |text, i| {
            let mut backend = backend_text(&BACKENDS[i]).state("active");
            backend.reach = Reach::Host {
                interface: interfaces[i].clone(),
                next_hop_mac: macs[i].clone(),
            };
            text.backend(&backend)
        })
    });
    let config = config_file.load();
    let mut generator = Generator::new(&topology);
    let frames = frames(&generator);
    topology.router.exec("ethtool", &["-K", "r0", "gro", "on"]);
    if layout == Layout::OneForwardingCpu {
        topology
            .router
            .exec("sh", &["-c", "echo 1 > /sys/class/net/r0/threaded"]);
    }
    let mut sinks: Vec<Sink> = (0..BACKEND_COUNT)
        .map(|i| Sink::attach(&topology.backends[i].name, i as u32))
        .collect();

    let mut runs: Vec<Run> = Vec::new();
    // Program run times, from the warm-up round.
    let mut program_ns = Vec::new();
    for round in 0..=settings.rounds {
        // The kernel times every program run only in round 0 (the warm-up, whose rates are
        // not reported): timing costs each run two clock reads, which the rates should not.
        let stats = (round == 0).then(|| enable_stats(Stats::RunTime).expect("BPF_ENABLE_STATS"));
        for &forwarder in layout.forwarders() {
            let mut forwarding = Forwarding::start(forwarder, &topology, &config, &macs);
            if layout == Layout::OneForwardingCpu {
                // The user-space router gets the forwarding CPU to itself: the kernel's
                // receive path runs on the generator's.
                let napi_cpu = match forwarder {
                    Forwarder::UserSpace => GENERATOR_CPU,
                    _ => forwarding_cpu(),
                };
                pin_napi_threads("r0", napi_cpu);
            }
            let run = measure(
                layout,
                forwarder,
                &mut generator,
                &frames,
                &mut sinks,
                settings,
                &mut forwarding,
            );
            drop(forwarding);
            // Round 0 warms up (neighbour entries, caches): its rates are not reported.
            if round == 0 {
                program_ns.push((forwarder, run.forwarder_ns, run.sink_ns));
            } else {
                runs.push(run);
            }
        }
        drop(stats);
    }
    for run in &mut runs {
        if let Some(&(_, forwarder_ns, sink_ns)) =
            program_ns.iter().find(|(f, ..)| *f == run.forwarder)
        {
            (run.forwarder_ns, run.sink_ns) = (forwarder_ns, sink_ns);
        }
    }
    runs
}

/// A forwarder running in the router namespace; stops on drop.
enum Forwarding {
    Router(Box<Router>),
    Floor(Ebpf),
    UserSpace {
        stop: Arc<AtomicBool>,
        worker: Option<JoinHandle<()>>,
        router_netns: String,
    },
}

impl Forwarding {
    fn start(
        forwarder: Forwarder,
        topology: &Topology,
        config: &RouterConfig,
        macs: &[String],
    ) -> Self {
        let _inside = topology.router.enter();
        match forwarder {
            Forwarder::Router => {
                Self::Router(Box::new(attach_router(topology, config, Mode::Native)))
            }
            Forwarder::RouterCommonCache => Self::Router(Box::new(attach_router_with(
                topology,
                config,
                Mode::Native,
                &LoadOptions {
                    cid_cache: CidCacheMode::Common,
                    ..options_for(config)
                },
            ))),
            Forwarder::Floor => {
                let mut ebpf = load_bench_programs();
                let mut ports: DevMap<_> = take_map(&mut ebpf, map_names::FLOOR_PORTS);
                let mut addresses: Array<_, [u8; 12]> = take_map(&mut ebpf, map_names::FLOOR_MACS);
                for (slot, mac) in macs.iter().enumerate() {
                    let port = netif::lookup(&format!("r{}", slot + 1))
                        .unwrap_or_else(|err| panic!("{err}"));
                    let mut entry = [0u8; 12];
                    entry[..6].copy_from_slice(&parse_mac(mac).expect("a backend's MAC"));
                    entry[6..].copy_from_slice(&port.mac);
                    ports
                        .set(slot as u32, port.ifindex, None, 0)
                        .expect("FLOOR_PORTS");
                    addresses.set(slot as u32, entry, 0).expect("FLOOR_MACS");
                }
                load_and_attach(&mut ebpf, program_names::FLOOR_REDIRECT, "r0");
                Self::Floor(ebpf)
            }
            Forwarder::UserSpace => {
                topology
                    .router
                    .ip(&["addr", "add", &format!("{VIP4}/32"), "dev", "lo"]);
                let routes = Arc::new(UserSpaceRoutes::new(config, topology));
                let stop = Arc::new(AtomicBool::new(false));
                let (ready, is_ready) = mpsc::channel();
                let worker = {
                    let netns = topology.router.name.clone();
                    let stop = stop.clone();
                    thread::spawn(move || {
                        pin_to_cpu(0, forwarding_cpu());
                        user_space_router(&netns, &routes, &stop, ready)
                    })
                };
                is_ready
                    .recv_timeout(Duration::from_secs(5))
                    .expect("user-space router ready");
                Self::UserSpace {
                    stop,
                    worker: Some(worker),
                    router_netns: topology.router.name.clone(),
                }
            }
        }
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        if let Self::UserSpace {
            stop,
            worker,
            router_netns,
        } = self
        {
            stop.store(true, Ordering::Relaxed);
            if let Some(worker) = worker.take() {
                let _ = worker.join();
            }
            let _inside = netns::enter(router_netns);
            let _ = std::process::Command::new("ip")
                .args(["addr", "del", &format!("{VIP4}/32"), "dev", "lo"])
                .status();
        }
    }
}

fn measure(
    layout: Layout,
    forwarder: Forwarder,
    generator: &mut Generator,
    frames: &[Vec<u8>],
    sinks: &mut [Sink],
    settings: &Settings,
    forwarding: &mut Forwarding,
) -> Run {
    let forwarder_stats = |forwarding: &mut Forwarding| match forwarding {
        Forwarding::Router(router) => Some(xdp_run_stats(router.program())),
        Forwarding::Floor(ebpf) => Some(xdp_run_stats(xdp_program(
            ebpf,
            program_names::FLOOR_REDIRECT,
        ))),
        Forwarding::UserSpace { .. } => None,
    };
    let sink_stats = |sinks: &mut [Sink]| {
        sinks
            .iter_mut()
            .map(|sink| xdp_run_stats(xdp_program(&mut sink.ebpf, program_names::SINK)))
            .fold((0, 0), |sum, (time, runs)| (sum.0 + time, sum.1 + runs))
    };
    let (forwarder_before, sinks_before) = (forwarder_stats(forwarding), sink_stats(sinks));
    let router_overflows_before = match forwarding {
        Forwarding::UserSpace { router_netns, .. } => udp_rcvbuf_errors_in(router_netns),
        Forwarding::Router(_) | Forwarding::Floor(_) => 0,
    };
    let before: Vec<SinkCounts> = sinks.iter().map(Sink::counts).collect();
    let cpu_before = cpu_times();
    let (sent, seconds) = generator.send(
        frames,
        settings.seconds,
        settings.max_packets,
        &layout.generator_cpus(),
    );
    let cpu_after = cpu_times();
    // What is in flight arrives.
    thread::sleep(Duration::from_millis(300));
    let after: Vec<SinkCounts> = sinks.iter().map(Sink::counts).collect();
    let forwarder_ns = forwarder_before
        .zip(forwarder_stats(forwarding))
        .and_then(|(before, after)| ns_per_run(before, after));
    let sink_ns = ns_per_run(sinks_before, sink_stats(sinks));
    let router_overflows = match forwarding {
        Forwarding::UserSpace { router_netns, .. } => {
            udp_rcvbuf_errors_in(router_netns) - router_overflows_before
        }
        Forwarding::Router(_) | Forwarding::Floor(_) => 0,
    };
    let delta = |counter: fn(&SinkCounts) -> u64| -> u64 {
        after
            .iter()
            .zip(&before)
            .map(|(a, b)| counter(a) - counter(b))
            .sum()
    };
    let delivered_by_cpu = (0..cpus())
        .map(|cpu| {
            after
                .iter()
                .zip(&before)
                .map(|(a, b)| a.delivered_by_cpu[cpu] - b.delivered_by_cpu[cpu])
                .sum()
        })
        .collect();
    Run {
        layout,
        forwarder,
        sent,
        delivered: delta(|c| c.delivered),
        delivered_by_cpu,
        misrouted: delta(|c| c.misrouted),
        router_overflows,
        seconds,
        forwarding_cpu_busy: busy(&cpu_before, &cpu_after, forwarding_cpu()),
        generator_cpu_busy: busy(&cpu_before, &cpu_after, GENERATOR_CPU),
        forwarder_ns,
        sink_ns,
    }
}

/// The bench's sink program at a backend's interface.
struct Sink {
    counts: PerCpuArray<MapData, u64>,
    ebpf: Ebpf,
}

#[derive(Clone)]
struct SinkCounts {
    delivered: u64,
    misrouted: u64,
    /// `delivered` by the CPU that ran the sink (the CPU that forwarded the packet).
    delivered_by_cpu: Vec<u64>,
}

impl Sink {
    /// Attaches a sink for backend `index` to `b0` in the namespace `netns`.
    fn attach(netns: &str, index: u32) -> Self {
        let _inside = netns::enter(netns);
        let mut ebpf = load_bench_programs();
        let mut backend: Array<_, u32> = take_map(&mut ebpf, map_names::SINK_BACKEND);
        backend.set(0, index, 0).expect("SINK_BACKEND");
        let counts = take_map(&mut ebpf, map_names::SINK_COUNTS);
        load_and_attach(&mut ebpf, program_names::SINK, "b0");
        Self { counts, ebpf }
    }

    fn counts(&self) -> SinkCounts {
        let by_cpu = |counter: SinkCounter| -> Vec<u64> {
            self.counts
                .get(&(counter as u32), 0)
                .map(|values| values.iter().copied().collect())
                .expect("SINK_COUNTS")
        };
        let delivered_by_cpu = by_cpu(SinkCounter::Delivered);
        SinkCounts {
            delivered: delivered_by_cpu.iter().sum(),
            misrouted: by_cpu(SinkCounter::Misrouted).iter().sum(),
            delivered_by_cpu,
        }
    }
}

/// The router's tables as a user-space router holds them.
struct UserSpaceRoutes {
    config: RouterConfig,
    server_ids: HashMap<ServerIdKey, u32>,
    fallback: Vec<u32>,
    /// Backend index -> where to send (the backend's own address, UDP 443).
    destinations: HashMap<u32, libc::sockaddr_in>,
}

impl UserSpaceRoutes {
    /// The tables the router builds for `config` in `topology` (loaded, not attached).
    fn new(config: &RouterConfig, topology: &Topology) -> Self {
        let router = {
            let _inside = topology.router.enter();
            load_router(config, &options_for(config))
        };
        let tables: &RoutingTables = router.active_tables().expect("tables installed");
        let destinations = tables
            .backend_names
            .iter()
            .map(|(index, name)| {
                let position = BACKENDS
                    .iter()
                    .position(|b| b.name == name)
                    .expect("a bench backend");
                let ip: Ipv4Addr = backend4(position).parse().expect("an address");
                (*index, sockaddr_in(SocketAddrV4::new(ip, QUIC_PORT)))
            })
            .collect();
        Self {
            config: config.clone(),
            server_ids: tables.server_ids.iter().map(|(k, v)| (*k, *v)).collect(),
            fallback: tables.fallback.clone(),
            destinations,
        }
    }
}

/// One worker of the user-space router: receive a batch, route each datagram by its DCID
/// (or by the 4-tuple hash), send the batch on.
fn user_space_router(
    netns: &str,
    routes: &UserSpaceRoutes,
    stop: &AtomicBool,
    ready: mpsc::Sender<()>,
) {
    let _inside = netns::enter(netns);
    let vip = SocketAddr::new(IpAddr::V4(VIP4.parse().expect("VIP")), QUIC_PORT);
    let socket = receiving_socket(vip, false);
    // Sends leave from the router's own address: a backend drops datagrams from the VIP,
    // which is one of its own addresses (a proxy without IP_TRANSPARENT cannot keep the
    // client's address either).
    let sender = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("sending socket");
    let mut decoder = Decoder::new();
    for cid_config in &routes.config.cid_configs {
        let config = Config::new(
            cid_config.params,
            cid_config.key.as_ref().map(|key| key.aes128()),
        )
        .expect("a validated config");
        decoder.insert(config);
    }
    let vip_flow = flow_addr(vip);
    ready.send(()).expect("report ready");
    let mut incoming = MessageBatch::new();
    let mut outgoing = MessageBatch::new();
    while !stop.load(Ordering::Relaxed) {
        let Ok(received) = incoming.receive(socket.as_raw_fd()) else {
            continue;
        };
        let mut forwarding = 0;
        for i in 0..received {
            let datagram = incoming.datagram(i);
            let by_cid = dcid(datagram)
                .and_then(|cid| decoder.server_id(cid).ok())
                .and_then(|(config_rotation, server_id)| {
                    let key = ServerIdKey::new(config_rotation, server_id.as_slice());
                    routes.server_ids.get(&key).copied()
                });
            let backend = by_cid.or_else(|| {
                let source = incoming.source(i);
                let hash = flow_hash(
                    &flow_addr(source),
                    &vip_flow,
                    source.port().to_be(),
                    QUIC_PORT.to_be(),
                );
                routes
                    .fallback
                    .get((hash % FALLBACK_TABLE_SIZE) as usize)
                    .copied()
            });
            if let Some(destination) = backend.and_then(|b| routes.destinations.get(&b)) {
                outgoing.load(forwarding, datagram, destination);
                forwarding += 1;
            }
        }
        // A failed send drops the batch, as a router under overload would.
        let _ = outgoing.send(sender.as_raw_fd(), forwarding);
    }
}

/// The destination CID of a QUIC packet: after the first octet of a short header (the
/// decoder takes the length from the config), or as a long header states it.
fn dcid(datagram: &[u8]) -> Option<&[u8]> {
    let first = *datagram.first()?;
    if first & 0x80 == 0 {
        return datagram.get(1..);
    }
    let len = usize::from(*datagram.get(5)?);
    datagram.get(6..6 + len)
}

fn flow_addr(addr: SocketAddr) -> FlowAddr {
    router_common::flow_hash::flow_addr(addr.ip()).1
}
