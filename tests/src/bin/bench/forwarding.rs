//! Forwarding rate end to end through the namespace topology: a generator in the client
//! namespace sends QUIC short-header packets (sendmmsg on connected UDP sockets, as fast as
//! the kernel takes them, bounded in time and count) whose CIDs name three backends under all
//! four QUIC-LB configs; a sink at each backend's interface (an XDP program) counts what
//! arrives and whether the CID names that backend. The generator has CPU 0; the forwarder has
//! the last CPU (the router interface's NAPI runs threaded, pinned there), so that each
//! forwarder gets the same one CPU. In one run, interleaved round by round:
//!
//! - the floor: the parse-and-redirect XDP program, native mode, slot by source port;
//! - quic-router: the router's XDP program, native mode;
//! - user space: a UDP router on an ordinary socket in the router namespace (the VIP on its
//!   loopback, one thread, recvmmsg/sendmmsg batches), doing the same CID routing with
//!   router-common's decoder and the router's own tables.

use std::{
    collections::HashMap,
    io,
    mem::MaybeUninit,
    net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4},
    os::fd::{AsRawFd as _, RawFd},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use aya::{
    maps::{Array, DevMap, MapData, PerCpuArray},
    programs::{TestRun as _, TestRunAttrs, TestRunOptions, Xdp, XdpMode},
};
use integration_tests::{
    BACKENDS, ConfigFile, mint,
    packet::{Datagram, short_header},
    take_map,
    topology::{self, CLIENT4, Topology, VIP4},
    xdp_program,
};
use router_common::{
    flow_hash::{FlowAddr, flow_hash},
    maps::{BENCH_MARKER_OFFSET, FALLBACK_TABLE_SIZE, ServerIdKey, SinkCounter},
    quic_lb::{Config, Decoder},
};
use router_user::{
    config::RouterConfig,
    dataplane::Dataplane,
    ebpf, netif,
    tables::{BackendIndices, RoutingTables},
};
use socket2::{Domain, Socket, Type};

pub struct Settings {
    /// How long the generator sends, per measurement.
    pub seconds: f64,
    /// The most packets it sends, per measurement.
    pub max_packets: u64,
    /// Measurements per forwarder; the median is reported.
    pub rounds: usize,
}

/// UDP payload octets per packet: a short header, its CID, then padding, with the index of
/// the backend the CID names at [`BENCH_MARKER_OFFSET`].
pub const PAYLOAD_LEN: usize = 128;
const BATCH: usize = 32;
const FLOWS: usize = 12;
const BACKEND_COUNT: usize = 3;
const QUIC_PORT: u16 = 443;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarder {
    Floor,
    Router,
    UserSpace,
}

impl Forwarder {
    pub const ALL: [Self; 3] = [Self::Floor, Self::Router, Self::UserSpace];

    pub fn name(self) -> &'static str {
        match self {
            Self::Floor => "floor: parse + devmap redirect (XDP native)",
            Self::Router => "quic-router (XDP native)",
            Self::UserSpace => "user-space UDP router (recvmmsg/sendmmsg)",
        }
    }

    pub fn id(self) -> &'static str {
        match self {
            Self::Floor => "floor",
            Self::Router => "quic_router",
            Self::UserSpace => "user_space",
        }
    }
}

/// One measurement.
#[derive(Debug, Clone)]
pub struct Run {
    pub forwarder: Forwarder,
    pub sent: u64,
    pub delivered: u64,
    /// Delivered to a backend other than the one the CID names.
    pub misrouted: u64,
    /// Dropped because the user-space router's socket buffer was full.
    pub router_overflows: u64,
    pub seconds: f64,
    /// Share of the time the forwarding CPU was busy (1.0: the forwarder was the bound).
    pub forwarding_cpu_busy: f64,
    /// The same for the generator's CPU.
    pub generator_cpu_busy: f64,
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
fn frames(client_mac: [u8; 6], router_mac: [u8; 6]) -> Vec<Vec<u8>> {
    (0..FLOWS)
        .map(|j| {
            let backend = j % BACKEND_COUNT;
            let codepoint = (j / BACKEND_COUNT) % 4;
            let cid = mint(
                codepoint as u8,
                BACKENDS[backend].3[codepoint],
                j as u64 + 1,
            );
            let mut payload = short_header(&cid);
            payload.resize(PAYLOAD_LEN, 0);
            payload[BENCH_MARKER_OFFSET] = backend as u8;
            let port = 41_000 + 4 * j as u16 + backend as u16;
            let mut frame = Datagram::new(
                IpAddr::V4(CLIENT4.parse().expect("client address")),
                IpAddr::V4(VIP4.parse().expect("VIP")),
                port,
                QUIC_PORT,
                payload,
            )
            .frame();
            frame[..6].copy_from_slice(&router_mac);
            frame[6..12].copy_from_slice(&client_mac);
            set_ipv4_checksum(&mut frame[14..34]);
            frame
        })
        .collect()
}

/// Fills in an IPv4 header's checksum (the stack checks it on the user-space router's path;
/// the UDP checksum may stay zero).
fn set_ipv4_checksum(header: &mut [u8]) {
    header[10..12].fill(0);
    let sum: u32 = header
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], pair[1]])))
        .sum();
    let folded = (sum & 0xffff) + (sum >> 16);
    let folded = (folded & 0xffff) + (folded >> 16);
    header[10..12].copy_from_slice(&(!(folded as u16)).to_be_bytes());
}

pub fn run(settings: &Settings) -> Vec<Run> {
    let topology = Topology::new(BACKEND_COUNT);
    let macs: Vec<String> = (0..BACKEND_COUNT)
        .map(|i| topology.backend_mac(i))
        .collect();
    let interfaces: Vec<String> = (1..=BACKEND_COUNT).map(|i| format!("r{i}")).collect();
    let backends: Vec<(&str, &str, &str, [&str; 4], &str)> = (0..BACKEND_COUNT)
        .map(|i| {
            let (name, _, _, server_ids, _) = BACKENDS[i];
            (
                name,
                interfaces[i].as_str(),
                macs[i].as_str(),
                server_ids,
                "active",
            )
        })
        .collect();
    let config_file = ConfigFile::with_backends(&backends);
    let config = config_file.load();
    let tables = {
        let _inside = topology.router.enter();
        RoutingTables::build(&config, &mut BackendIndices::default(), netif::lookup)
            .unwrap_or_else(|err| panic!("{err}"))
    };
    let mut generator = Generator::new(&topology);
    topology.router.exec("ethtool", &["-K", "r0", "gro", "on"]);
    topology
        .router
        .exec("sh", &["-c", "echo 1 > /sys/class/net/r0/threaded"]);
    let sinks: Vec<Sink> = (0..BACKEND_COUNT)
        .map(|i| Sink::attach(&topology.backends[i].name, i as u32))
        .collect();

    let mut runs = Vec::new();
    for round in 0..=settings.rounds {
        for forwarder in Forwarder::ALL {
            let forwarding = Forwarding::start(forwarder, &topology, &config, &tables, &macs);
            // The user-space router gets the forwarding CPU to itself: the kernel's receive
            // path runs on the generator's.
            let napi_cpu = match forwarder {
                Forwarder::UserSpace => GENERATOR_CPU,
                Forwarder::Floor | Forwarder::Router => forwarding_cpu(),
            };
            pin_napi_threads("r0", napi_cpu);
            let run = measure(forwarder, &mut generator, &sinks, settings, &forwarding);
            drop(forwarding);
            // Round 0 warms up (neighbour entries, caches) and is not reported.
            if round > 0 {
                runs.push(run);
            }
        }
    }
    runs
}

/// A forwarder running in the router namespace; stops on drop.
enum Forwarding {
    Xdp {
        _ebpf: aya::Ebpf,
    },
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
        tables: &RoutingTables,
        macs: &[String],
    ) -> Self {
        let _inside = topology.router.enter();
        match forwarder {
            Forwarder::Router => {
                let mut ebpf =
                    ebpf::load(ebpf::LoadOptions::default()).unwrap_or_else(|err| panic!("{err}"));
                Dataplane::new(&mut ebpf)
                    .and_then(|mut dataplane| dataplane.apply(tables.clone()))
                    .unwrap_or_else(|err| panic!("{err}"));
                ebpf::xdp_program(&mut ebpf)
                    .expect("the router's program")
                    .attach("r0", XdpMode::Driver)
                    .unwrap_or_else(|err| panic!("attach quic-router: {err}"));
                Self::Xdp { _ebpf: ebpf }
            }
            Forwarder::Floor => {
                let mut ebpf =
                    ebpf::load(ebpf::LoadOptions::default()).unwrap_or_else(|err| panic!("{err}"));
                let mut ports: DevMap<_> = take_map(&mut ebpf, "FLOOR_PORTS");
                let mut addresses: Array<_, [u8; 12]> = take_map(&mut ebpf, "FLOOR_MACS");
                for (slot, mac) in macs.iter().enumerate() {
                    let port = netif::lookup(&format!("r{}", slot + 1))
                        .unwrap_or_else(|err| panic!("{err}"));
                    let mut entry = [0u8; 12];
                    entry[..6].copy_from_slice(&parse_mac(mac));
                    entry[6..].copy_from_slice(&port.mac);
                    ports
                        .set(slot as u32, port.ifindex, None, 0)
                        .expect("FLOOR_PORTS");
                    addresses.set(slot as u32, entry, 0).expect("FLOOR_MACS");
                }
                load_and_attach(&mut ebpf, "floor_redirect", "r0");
                Self::Xdp { _ebpf: ebpf }
            }
            Forwarder::UserSpace => {
                topology
                    .router
                    .ip(&["addr", "add", &format!("{VIP4}/32"), "dev", "lo"]);
                let routes = Arc::new(UserSpaceRoutes::new(config, tables));
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
            let _inside = topology::enter(router_netns);
            let _ = std::process::Command::new("ip")
                .args(["addr", "del", &format!("{VIP4}/32"), "dev", "lo"])
                .status();
        }
    }
}

fn parse_mac(text: &str) -> [u8; 6] {
    let octets: Vec<u8> = text
        .split(':')
        .map(|octet| u8::from_str_radix(octet, 16).expect("a MAC"))
        .collect();
    octets.try_into().expect("six octets")
}

fn measure(
    forwarder: Forwarder,
    generator: &mut Generator,
    sinks: &[Sink],
    settings: &Settings,
    forwarding: &Forwarding,
) -> Run {
    let router_overflows_before = match forwarding {
        Forwarding::UserSpace { router_netns, .. } => udp_rcvbuf_errors_in(router_netns),
        Forwarding::Xdp { .. } => 0,
    };
    let before: Vec<SinkCounts> = sinks.iter().map(Sink::counts).collect();
    let cpu_before = cpu_times();
    let (sent, seconds) = generator.send(settings);
    let cpu_after = cpu_times();
    // What is in flight arrives.
    thread::sleep(Duration::from_millis(300));
    let after: Vec<SinkCounts> = sinks.iter().map(Sink::counts).collect();
    let router_overflows = match forwarding {
        Forwarding::UserSpace { router_netns, .. } => {
            udp_rcvbuf_errors_in(router_netns) - router_overflows_before
        }
        Forwarding::Xdp { .. } => 0,
    };
    let delta = |counter: fn(&SinkCounts) -> u64| -> u64 {
        after
            .iter()
            .zip(&before)
            .map(|(a, b)| counter(a) - counter(b))
            .sum()
    };
    Run {
        forwarder,
        sent,
        delivered: delta(|c| c.delivered),
        misrouted: delta(|c| c.misrouted),
        router_overflows,
        seconds,
        forwarding_cpu_busy: busy(&cpu_before, &cpu_after, forwarding_cpu()),
        generator_cpu_busy: busy(&cpu_before, &cpu_after, GENERATOR_CPU),
    }
}

/// (busy, total) jiffies of each CPU, from /proc/stat.
fn cpu_times() -> Vec<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    stat.lines()
        .filter(|line| line.starts_with("cpu") && !line.starts_with("cpu "))
        .map(|line| {
            let fields: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|field| field.parse().ok())
                .collect();
            let total: u64 = fields.iter().take(8).sum();
            // idle and iowait
            let idle = fields.get(3).copied().unwrap_or(0) + fields.get(4).copied().unwrap_or(0);
            (total - idle, total)
        })
        .collect()
}

fn busy(before: &[(u64, u64)], after: &[(u64, u64)], cpu: usize) -> f64 {
    let (busy, total) = (
        after[cpu].0 - before[cpu].0,
        (after[cpu].1 - before[cpu].1).max(1),
    );
    busy as f64 / total as f64
}

/// The generator: the bench's `bench_generate` program run by BPF_PROG_TEST_RUN in
/// live-frames mode in the client namespace, so that frames leave `c0` as from a NIC, without
/// a socket or an skb on the way out: cheap enough that the forwarder, not the generator,
/// bounds the rate.
struct Generator {
    netns: String,
    frames: Vec<Vec<u8>>,
    ebpf: aya::Ebpf,
}

/// Frames per BPF_PROG_TEST_RUN call (one flow's; the kernel sends them in batches of 64).
/// Each call also sets up and tears down a page pool, which sleeps for a few tens of
/// milliseconds: large calls, and two threads, so that one sends while the other sleeps.
const FRAMES_PER_CALL: u32 = 1 << 20;
const GENERATOR_THREADS: usize = 2;

impl Generator {
    fn new(topology: &Topology) -> Self {
        let _inside = topology.client.enter();
        let mut ebpf =
            ebpf::load(ebpf::LoadOptions::default()).unwrap_or_else(|err| panic!("{err}"));
        let mut port: DevMap<_> = take_map(&mut ebpf, "GENERATOR_PORT");
        let c0 = netif::lookup("c0").unwrap_or_else(|err| panic!("{err}"));
        port.set(0, c0.ifindex, None, 0).expect("GENERATOR_PORT");
        xdp_program(&mut ebpf, "bench_generate")
            .load()
            .unwrap_or_else(|err| panic!("bench_generate: {err}"));
        let router_mac = parse_mac(&topology.router.mac("r0"));
        Self {
            netns: topology.client.name.clone(),
            frames: frames(c0.mac, router_mac),
            ebpf,
        }
    }

    /// Sends a call's worth of each flow in turn until the time or the count is reached, from
    /// two threads on the generator's CPU: (frames handed to the kernel, seconds).
    fn send(&mut self, settings: &Settings) -> (u64, f64) {
        let program: &Xdp = xdp_program(&mut self.ebpf, "bench_generate");
        let (netns, frames) = (&self.netns, &self.frames);
        let deadline = Duration::from_secs_f64(settings.seconds);
        let per_thread = settings.max_packets / GENERATOR_THREADS as u64;
        let started = Instant::now();
        let sent: u64 = thread::scope(|scope| {
            let threads: Vec<_> = (0..GENERATOR_THREADS)
                .map(|first| {
                    scope.spawn(move || {
                        pin_to_cpu(0, GENERATOR_CPU);
                        let _inside = topology::enter(netns);
                        let mut sent = 0u64;
                        for frame in frames.iter().cycle().skip(first) {
                            if started.elapsed() >= deadline || sent >= per_thread {
                                break;
                            }
                            program
                                .test_run(TestRunOptions {
                                    data_in: Some(frame),
                                    repeat: FRAMES_PER_CALL,
                                    attrs: TestRunAttrs::new().xdp_live_frames(0),
                                    ..TestRunOptions::default()
                                })
                                .unwrap_or_else(|err| {
                                    panic!("BPF_PROG_TEST_RUN (live frames): {err}")
                                });
                            sent += u64::from(FRAMES_PER_CALL);
                        }
                        sent
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|thread| thread.join().expect("generator thread"))
                .sum()
        });
        (sent, started.elapsed().as_secs_f64())
    }
}

/// Loads the bench program `name` and attaches it to `interface` in native mode.
fn load_and_attach(ebpf: &mut aya::Ebpf, name: &str, interface: &str) {
    let program = xdp_program(ebpf, name);
    program.load().unwrap_or_else(|err| panic!("{name}: {err}"));
    program
        .attach(interface, XdpMode::Driver)
        .unwrap_or_else(|err| panic!("attach {name} to {interface}: {err}"));
}

/// The bench's sink program at a backend's interface.
struct Sink {
    counts: PerCpuArray<MapData, u64>,
    _ebpf: aya::Ebpf,
}

#[derive(Clone, Copy)]
struct SinkCounts {
    delivered: u64,
    misrouted: u64,
}

impl Sink {
    /// Attaches a sink for backend `index` to `b0` in the namespace `netns`.
    fn attach(netns: &str, index: u32) -> Self {
        let _inside = topology::enter(netns);
        let mut ebpf =
            ebpf::load(ebpf::LoadOptions::default()).unwrap_or_else(|err| panic!("{err}"));
        let mut backend: Array<_, u32> = take_map(&mut ebpf, "SINK_BACKEND");
        backend.set(0, index, 0).expect("SINK_BACKEND");
        let counts = take_map(&mut ebpf, "SINK_COUNTS");
        load_and_attach(&mut ebpf, "bench_sink", "b0");
        Self {
            counts,
            _ebpf: ebpf,
        }
    }

    fn counts(&self) -> SinkCounts {
        let read = |counter: SinkCounter| -> u64 {
            self.counts
                .get(&(counter as u32), 0)
                .map(|values| values.iter().sum())
                .expect("SINK_COUNTS")
        };
        SinkCounts {
            delivered: read(SinkCounter::Delivered),
            misrouted: read(SinkCounter::Misrouted),
        }
    }
}

const GENERATOR_CPU: usize = 0;

/// The CPU the forwarder runs on: the last one.
fn forwarding_cpu() -> usize {
    thread::available_parallelism().map_or(1, usize::from) - 1
}

/// Restricts task `tid` (0: the calling thread) to `cpu`.
fn pin_to_cpu(tid: libc::pid_t, cpu: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_SET stays within it for cpu < CPU_SETSIZE.
    let status = unsafe {
        let mut set: libc::cpu_set_t = MaybeUninit::zeroed().assume_init();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    assert_eq!(
        status,
        0,
        "pin task {tid} to CPU {cpu}: {}",
        io::Error::last_os_error()
    );
}

/// Pins the threaded NAPI kthreads of interfaces named `interface` to `cpu`. Kernel threads
/// are not in any namespace: this takes every `napi/<interface>-*` (the bench runs alone).
fn pin_napi_threads(interface: &str, cpu: usize) {
    let prefix = format!("napi/{interface}-");
    let mut pinned = 0;
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<libc::pid_t>() else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim_end().starts_with(&prefix) {
            pin_to_cpu(pid, cpu);
            pinned += 1;
        }
    }
    assert!(pinned > 0, "no threaded NAPI for {interface}");
}

/// A UDP socket bound to `addr` with a large receive buffer and a 50 ms receive timeout.
fn receiving_socket(addr: SocketAddr) -> Socket {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, None).expect("UDP socket");
    socket.set_recv_buffer_size(16 << 20).expect("SO_RCVBUF");
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .expect("SO_RCVTIMEO");
    socket
        .bind(&addr.into())
        .unwrap_or_else(|err| panic!("bind {addr}: {err}"));
    socket
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
    fn new(config: &RouterConfig, tables: &RoutingTables) -> Self {
        let destinations = tables
            .backend_names
            .iter()
            .map(|(index, name)| {
                let position = BACKENDS
                    .iter()
                    .position(|b| b.0 == name)
                    .expect("a bench backend");
                let addr =
                    SocketAddrV4::new(Ipv4Addr::new(198, 18, 10 + position as u8, 2), QUIC_PORT);
                (*index, sockaddr_in(addr))
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
    let _inside = topology::enter(netns);
    let vip = SocketAddr::new(IpAddr::V4(VIP4.parse().expect("VIP")), QUIC_PORT);
    let socket = receiving_socket(vip);
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
                    let mut key = ServerIdKey {
                        config_rotation,
                        ..ServerIdKey::default()
                    };
                    key.server_id[..server_id.len()].copy_from_slice(server_id.as_slice());
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

fn sockaddr_in(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: addr.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn flow_addr(addr: SocketAddr) -> FlowAddr {
    let mut flow = [0u8; 16];
    match addr.ip() {
        IpAddr::V4(v4) => flow[..4].copy_from_slice(&v4.octets()),
        IpAddr::V6(v6) => flow = v6.octets(),
    }
    flow
}

/// A batch of datagrams for sendmmsg / recvmmsg, with the buffers and IPv4 addresses they
/// use (the bench's traffic is IPv4).
struct MessageBatch {
    buffers: Vec<[u8; 2048]>,
    lens: Vec<usize>,
    addresses: Vec<libc::sockaddr_in>,
    iovecs: Vec<libc::iovec>,
    headers: Vec<libc::mmsghdr>,
}

impl MessageBatch {
    fn new() -> Self {
        Self {
            buffers: vec![[0u8; 2048]; BATCH],
            lens: vec![0; BATCH],
            addresses: vec![sockaddr_in(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)); BATCH],
            iovecs: Vec::with_capacity(BATCH),
            headers: Vec::with_capacity(BATCH),
        }
    }

    /// Points the headers at the buffers and the addresses.
    fn prepare(&mut self, count: usize) {
        self.iovecs.clear();
        self.headers.clear();
        for i in 0..count {
            self.iovecs.push(libc::iovec {
                iov_base: self.buffers[i].as_mut_ptr().cast(),
                iov_len: self.lens[i],
            });
        }
        for i in 0..count {
            // SAFETY: msghdr is plain data; all zeros is a valid value.
            let mut header: libc::msghdr = unsafe { MaybeUninit::zeroed().assume_init() };
            header.msg_iov = &mut self.iovecs[i];
            header.msg_iovlen = 1;
            header.msg_name = (&mut self.addresses[i] as *mut libc::sockaddr_in).cast();
            header.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            self.headers.push(libc::mmsghdr {
                msg_hdr: header,
                msg_len: 0,
            });
        }
    }

    /// Sends the first `count` datagrams to their addresses: how many the kernel took.
    fn send(&mut self, fd: RawFd, count: usize) -> io::Result<usize> {
        if count == 0 {
            return Ok(0);
        }
        self.prepare(count);
        // SAFETY: the headers point into buffers this batch owns, alive for the call.
        let sent = unsafe { libc::sendmmsg(fd, self.headers.as_mut_ptr(), count as u32, 0) };
        usize::try_from(sent).map_err(|_| io::Error::last_os_error())
    }

    /// Receives up to a batch (waits for the first, up to the socket's timeout).
    fn receive(&mut self, fd: RawFd) -> io::Result<usize> {
        self.lens.fill(2048);
        self.prepare(BATCH);
        // SAFETY: as in `send`; the kernel writes at most the lengths given.
        let received = unsafe {
            libc::recvmmsg(
                fd,
                self.headers.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        let received = usize::try_from(received).map_err(|_| io::Error::last_os_error())?;
        for i in 0..received {
            self.lens[i] = self.headers[i].msg_len as usize;
        }
        Ok(received)
    }

    fn datagram(&self, i: usize) -> &[u8] {
        &self.buffers[i][..self.lens[i]]
    }

    fn source(&self, i: usize) -> SocketAddr {
        let addr = &self.addresses[i];
        SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)),
            u16::from_be(addr.sin_port),
        ))
    }

    /// Places `datagram` for `destination` at position `i` of an outgoing batch.
    fn load(&mut self, i: usize, datagram: &[u8], destination: &libc::sockaddr_in) {
        self.buffers[i][..datagram.len()].copy_from_slice(datagram);
        self.lens[i] = datagram.len();
        self.addresses[i] = *destination;
    }
}

/// UdpRcvbufErrors of the calling thread's network namespace.
fn udp_rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/thread-self/net/snmp").expect("/proc/net/snmp");
    let mut udp = snmp.lines().filter(|line| line.starts_with("Udp:"));
    let (names, values) = (udp.next().expect("Udp header"), udp.next().expect("Udp"));
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "RcvbufErrors")
        .and_then(|(_, value)| value.parse().ok())
        .expect("RcvbufErrors")
}

fn udp_rcvbuf_errors_in(netns: &str) -> u64 {
    let netns = netns.to_owned();
    thread::spawn(move || {
        let _inside = topology::enter(&netns);
        udp_rcvbuf_errors()
    })
    .join()
    .expect("snmp thread")
}
