//! Local delivery: four workers on the router's own host share the VIP's port 443 through
//! SO_REUSEPORT. The generator (as for forwarding) sends short headers whose CIDs name the
//! four workers under all four QUIC-LB configs; the router's XDP program passes them to the
//! stack; the socket group gives each datagram to a worker's socket, by the router's
//! `select_worker` program or, without it, by the kernel's 4-tuple hash. Each worker counts
//! what it receives and how much of it was meant for another worker. The router interface's
//! NAPI, the stack and the workers share the last CPU; the generator has CPU 0. The cost per
//! run of the XDP program and of `select_worker` under this traffic comes from the kernel's
//! BPF run-time statistics (BPF_ENABLE_STATS), taken in the warm-up round.

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::Duration,
};

use aya::sys::{Stats, enable_stats};
use bench_ebpf::BENCH_MARKER_OFFSET;
use integration_tests::{
    ConfigFile,
    addresses::{VIP4, vip_socket},
    attach_router,
    fixtures::LOCAL_WORKERS,
    standard_config_text,
    topology::Topology,
    worker_text,
};
use router_user::router::{Mode, Router};

use crate::{
    forwarding::Settings,
    harness::{
        GENERATOR_CPU, Generator, MessageBatch, flow_payloads, forwarding_cpu, ns_per_run,
        pin_napi_threads, pin_to_cpu, receiving_socket, run_stats, udp_rcvbuf_errors_in,
        xdp_run_stats,
    },
};

pub(crate) const FLOWS: usize = 16;

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
    /// Average run time of the XDP program, and of `select_worker` (when it ran), in ns
    /// (BPF statistics, from the warm-up round).
    pub xdp_ns: Option<f64>,
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

    let config_file = ConfigFile::with_text(|dir| {
        LOCAL_WORKERS
            .iter()
            .fold(standard_config_text(dir, &[]), |text, worker| {
                text.backend(&worker_text(worker))
            })
    });
    let config = config_file.load();
    let mut quic_router = attach_router(&topology, &config, Mode::Native);

    let mut generator = Generator::new(&topology);
    let servers: Vec<[&str; 4]> = LOCAL_WORKERS.iter().map(|w| w.server_ids).collect();
    let frames: Vec<Vec<u8>> = flow_payloads(&servers, FLOWS)
        .into_iter()
        .enumerate()
        .map(|(j, (_, payload))| generator.frame(43_000 + j as u16, payload))
        .collect();
    let mut runs: Vec<Run> = Vec::new();
    let mut program_ns = Vec::new();
    for round in 0..=settings.rounds {
        // Program run times are taken in round 0 only, as for forwarding.
        let stats = (round == 0).then(|| enable_stats(Stats::RunTime).expect("BPF_ENABLE_STATS"));
        for selection in Selection::ALL {
            let sockets: Vec<socket2::Socket> = {
                let _inside = router.enter();
                (0..LOCAL_WORKERS.len())
                    .map(|_| receiving_socket(vip_socket(false), true))
                    .collect()
            };
            if selection == Selection::ByCid {
                for (worker, socket) in LOCAL_WORKERS.iter().zip(&sockets) {
                    quic_router
                        .register_worker(worker.name, socket.as_fd())
                        .unwrap_or_else(|err| panic!("register {}: {err}", worker.name));
                }
            }
            pin_napi_threads("r0", forwarding_cpu());
            let run = measure(
                selection,
                &quic_router,
                &topology,
                &mut generator,
                &frames,
                &sockets,
                settings,
            );
            // Round 0 warms up: its rates are not reported.
            if round == 0 {
                program_ns.push((selection, run.xdp_ns, run.select_ns));
            } else {
                runs.push(run);
            }
        }
        drop(stats);
    }
    for run in &mut runs {
        if let Some(&(_, xdp_ns, select_ns)) = program_ns.iter().find(|(s, ..)| *s == run.selection)
        {
            (run.xdp_ns, run.select_ns) = (xdp_ns, select_ns);
        }
    }
    runs
}

/// (total run time in ns, runs) of the router's XDP program and of `select_worker`.
fn program_stats(router: &Router) -> [(u64, u64); 2] {
    let select = router.worker_program().info().expect("select_worker info");
    [xdp_run_stats(router.program()), run_stats(&select)]
}

fn measure(
    selection: Selection,
    router: &Router,
    topology: &Topology,
    generator: &mut Generator,
    frames: &[Vec<u8>],
    sockets: &[socket2::Socket],
    settings: &Settings,
) -> Run {
    let stop = AtomicBool::new(false);
    let overflows_before = udp_rcvbuf_errors_in(&topology.router.name);
    let stats_before = program_stats(router);
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
        let sent = generator.send(
            frames,
            settings.seconds,
            settings.max_packets,
            &[GENERATOR_CPU],
        );
        // What is in flight arrives.
        thread::sleep(Duration::from_millis(300));
        stop.store(true, Ordering::Relaxed);
        let counts: Vec<(u64, u64)> = workers
            .into_iter()
            .map(|worker| worker.join().expect("worker thread"))
            .collect();
        (sent, counts)
    });
    let stats_after = program_stats(router);
    Run {
        selection,
        sent,
        delivered: counts.iter().map(|c| c.0).sum(),
        misdelivered: counts.iter().map(|c| c.1).sum(),
        socket_overflows: udp_rcvbuf_errors_in(&topology.router.name) - overflows_before,
        seconds,
        xdp_ns: ns_per_run(stats_before[0], stats_after[0]),
        select_ns: ns_per_run(stats_before[1], stats_after[1]),
    }
}
