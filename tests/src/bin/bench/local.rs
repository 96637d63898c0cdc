//! Local delivery: four workers on the router's own host share the VIP's port 443 through
//! SO_REUSEPORT. The generator (as for forwarding) sends short headers whose CIDs name the
//! four workers under all four QUIC-LB configs; the router's XDP program passes them to the
//! stack; the socket group gives each datagram to a worker's socket, by the router's
//! `select_worker` program or, without it, by the kernel's 4-tuple hash. Each worker counts
//! what it receives and how much of it was meant for another worker. The router interface's
//! NAPI, the stack and the workers share the last CPU; the generator has CPU 0. The cost per
//! run of the XDP program and of `select_worker` under this traffic comes from the kernel's
//! BPF run-time statistics (BPF_ENABLE_STATS), taken while the traffic flows.

use std::{
    net::{IpAddr, SocketAddr},
    os::fd::AsRawFd as _,
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::Duration,
};

use aya::{
    maps::{MapData, ReusePortSockArray},
    sys::{Stats, enable_stats},
};
use integration_tests::{
    ConfigFile, LOCAL_WORKERS, take_map,
    topology::{Topology, VIP4},
};
use router_common::maps::{BENCH_MARKER_OFFSET, worker_socket_index};
use router_user::{
    ebpf, netif,
    tables::{BackendIndices, RoutingTables},
};

use crate::{
    forwarding::Settings,
    traffic::{
        Generator, MessageBatch, QUIC_PORT, attach_router, flow_payloads, forwarding_cpu,
        pin_napi_threads, pin_to_cpu, receiving_socket, udp_rcvbuf_errors_in,
    },
};

const FLOWS: usize = 16;

/// How the socket group picks a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// The router's `select_worker` program, by the DCID.
    ByCid,
    /// The kernel's 4-tuple hash (no program): what SO_REUSEPORT does by itself.
    KernelHash,
}

impl Selection {
    pub const ALL: [Self; 2] = [Self::ByCid, Self::KernelHash];

    pub fn name(self) -> &'static str {
        match self {
            Self::ByCid => "router selects the worker by CID",
            Self::KernelHash => "kernel's SO_REUSEPORT hash only",
        }
    }

    pub fn id(self) -> &'static str {
        match self {
            Self::ByCid => "by_cid",
            Self::KernelHash => "kernel_hash",
        }
    }
}

/// One measurement.
#[derive(Debug, Clone)]
pub struct Run {
    pub selection: Selection,
    pub sent: u64,
    pub delivered: u64,
    /// Delivered to a worker other than the one the CID names.
    pub misdelivered: u64,
    /// Dropped because a worker's socket buffer was full.
    pub socket_overflows: u64,
    pub seconds: f64,
    /// Average run time of the XDP program, and of `select_worker` (when it ran), in ns.
    pub xdp_ns: f64,
    pub select_ns: Option<f64>,
}

impl Run {
    pub fn delivered_pps(&self) -> f64 {
        self.delivered as f64 / self.seconds
    }
}

pub fn run(settings: &Settings) -> Vec<Run> {
    let topology = Topology::new(0);
    let router = &topology.router;
    router.ip(&["addr", "add", &format!("{VIP4}/32"), "dev", "lo"]);
    router.exec("ethtool", &["-K", "r0", "gro", "on"]);
    router.exec("sh", &["-c", "echo 1 > /sys/class/net/r0/threaded"]);

    let config_file = ConfigFile::with_backends(&[]);
    for (name, server_ids) in LOCAL_WORKERS {
        config_file.add_local_worker(name, server_ids);
    }
    let config = config_file.load();
    // Local workers need no interface: the tables build anywhere.
    let tables = RoutingTables::build(&config, &mut BackendIndices::default(), netif::lookup)
        .unwrap_or_else(|err| panic!("{err}"));
    let mut ebpf = attach_router(&topology, &tables);
    let mut worker_sockets: ReusePortSockArray<MapData> = take_map(&mut ebpf, "WORKER_SOCKETS");
    let backend_index = |name: &str| -> u32 {
        *tables
            .backend_names
            .iter()
            .find(|(_, n)| *n == name)
            .expect("a worker's index")
            .0
    };

    let mut generator = Generator::new(&topology);
    let servers: Vec<[&str; 4]> = LOCAL_WORKERS.iter().map(|w| w.1).collect();
    let frames: Vec<Vec<u8>> = flow_payloads(&servers, FLOWS)
        .into_iter()
        .enumerate()
        .map(|(j, (_, payload))| generator.frame(43_000 + j as u16, payload))
        .collect();
    // Counts run time while it is open.
    let _stats = enable_stats(Stats::RunTime).expect("BPF_ENABLE_STATS");

    let mut runs = Vec::new();
    for round in 0..=settings.rounds {
        for selection in Selection::ALL {
            let vip = SocketAddr::new(IpAddr::V4(VIP4.parse().expect("VIP")), QUIC_PORT);
            let sockets: Vec<socket2::Socket> = {
                let _inside = router.enter();
                (0..LOCAL_WORKERS.len())
                    .map(|_| receiving_socket(vip, true))
                    .collect()
            };
            if selection == Selection::ByCid {
                for ((name, _), socket) in LOCAL_WORKERS.iter().zip(&sockets) {
                    worker_sockets
                        .set(worker_socket_index(backend_index(name), false), socket, 0)
                        .expect("WORKER_SOCKETS");
                }
                ebpf::worker_program(&mut ebpf)
                    .expect("select_worker")
                    .attach(&sockets[0])
                    .unwrap_or_else(|err| panic!("attach select_worker: {err}"));
            }
            pin_napi_threads("r0", forwarding_cpu());
            let run = measure(
                selection,
                &mut ebpf,
                &topology,
                &mut generator,
                &frames,
                &sockets,
                settings,
            );
            // Round 0 warms up and is not reported.
            if round > 0 {
                runs.push(run);
            }
        }
    }
    runs
}

/// (total run time in ns, runs) of the router's XDP program and of `select_worker`.
fn program_stats(ebpf: &mut aya::Ebpf) -> [(u64, u64); 2] {
    let xdp = ebpf::xdp_program(ebpf)
        .expect("the router's program")
        .info()
        .expect("XDP program info");
    let select = ebpf::worker_program(ebpf)
        .expect("select_worker")
        .info()
        .expect("select_worker info");
    [xdp, select].map(|info| (info.run_time().as_nanos() as u64, info.run_count()))
}

fn measure(
    selection: Selection,
    ebpf: &mut aya::Ebpf,
    topology: &Topology,
    generator: &mut Generator,
    frames: &[Vec<u8>],
    sockets: &[socket2::Socket],
    settings: &Settings,
) -> Run {
    let stop = AtomicBool::new(false);
    let overflows_before = udp_rcvbuf_errors_in(&topology.router.name);
    let stats_before = program_stats(ebpf);
    let ((sent, seconds), counts) = thread::scope(|scope| {
        let workers: Vec<_> = sockets
            .iter()
            .enumerate()
            .map(|(me, socket)| {
                let stop = &stop;
                scope.spawn(move || {
                    pin_to_cpu(0, forwarding_cpu());
                    let mut batch = MessageBatch::new();
                    let (mut delivered, mut misdelivered) = (0u64, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        let Ok(received) = batch.receive(socket.as_raw_fd()) else {
                            continue;
                        };
                        for i in 0..received {
                            delivered += 1;
                            let marker = batch.datagram(i).get(BENCH_MARKER_OFFSET).copied();
                            if marker != Some(me as u8) {
                                misdelivered += 1;
                            }
                        }
                    }
                    (delivered, misdelivered)
                })
            })
            .collect();
        let sent = generator.send(frames, settings.seconds, settings.max_packets);
        // What is in flight arrives.
        thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        let counts: Vec<(u64, u64)> = workers
            .into_iter()
            .map(|worker| worker.join().expect("worker thread"))
            .collect();
        (sent, counts)
    });
    let stats_after = program_stats(ebpf);
    let average = |which: usize| {
        let (time, runs) = (
            stats_after[which].0 - stats_before[which].0,
            stats_after[which].1 - stats_before[which].1,
        );
        (runs > 0).then(|| time as f64 / runs as f64)
    };
    Run {
        selection,
        sent,
        delivered: counts.iter().map(|c| c.0).sum(),
        misdelivered: counts.iter().map(|c| c.1).sum(),
        socket_overflows: udp_rcvbuf_errors_in(&topology.router.name) - overflows_before,
        seconds,
        xdp_ns: average(0).unwrap_or(0.0),
        select_ns: average(1),
    }
}
