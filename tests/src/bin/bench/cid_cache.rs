//! The CID cache per CPU (as built) or one for all CPUs? Both CPUs run the router's program at
//! once (BPF_PROG_TEST_RUN from a thread pinned to each), each on encrypted CIDs of its own,
//! under the router as built and loaded with one cache for all CPUs
//! (`CidCacheMode::Common`: the CPUs share its cache lines; as a product it could pair a CID
//! with the backend another CPU was writing): cache hits on one connection, hits spread over
//! many connections, and misses (new CIDs: the AES passes, then an insert that evicts).

use std::{sync::Barrier, thread, time::Duration};

use integration_tests::{
    ConfigFile, TestRouter,
    addresses::{QUIC_PORT, sender, vip},
    fixtures::{BACKENDS, mint},
    options_for,
    packet::{Datagram, short_header},
    run_repeated,
};
use router_user::{
    config::RouterConfig,
    router::{CidCacheMode, LoadOptions, Router},
};

use crate::harness::pin_to_cpu;

pub struct Settings {
    /// Rounds, each measuring both variants in turn; the median is reported.
    pub rounds: usize,
    /// Repetitions for the one-connection figure.
    pub repeat: u32,
    /// Connections per CPU cycled through the cache (all hits after the first round).
    pub connections: usize,
    /// New CIDs per CPU, more than the cache holds: every one misses.
    pub new_cids: usize,
}

/// The CPUs that run packets at once.
const CPUS: usize = 2;

/// One scenario under both cache variants, in ns per packet (mean of the CPUs).
pub struct Row {
    pub scenario: &'static str,
    pub common_ns: f64,
    pub per_cpu_ns: f64,
}

/// A short header to the VIP whose four-pass CID (three passes) names alpha, from `seed`.
fn packet(seed: u64) -> Vec<u8> {
    let cid = mint(2, BACKENDS[0].server_ids[2], seed);
    Datagram::new(
        sender(false),
        vip(false),
        40_001,
        QUIC_PORT,
        short_header(&cid),
    )
    .frame()
}

/// Runs `work` on each CPU at once (from a thread pinned to it) and returns the mean of what
/// each returns.
fn on_every_cpu(work: impl Fn(usize) -> f64 + Sync) -> f64 {
    let start = Barrier::new(CPUS);
    let total: f64 = thread::scope(|scope| {
        let threads: Vec<_> = (0..CPUS)
            .map(|cpu| {
                let (start, work) = (&start, &work);
                scope.spawn(move || {
                    pin_to_cpu(0, cpu);
                    start.wait();
                    work(cpu)
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|thread| thread.join().expect("a measuring thread"))
            .sum()
    });
    total / CPUS as f64
}

/// ns per packet over one pass through `packets`, one BPF_PROG_TEST_RUN call each (the
/// kernel times each call's run; the calls' own cost is not in it).
fn pass(router: &Router, packets: &[Vec<u8>]) -> f64 {
    let total: Duration = packets
        .iter()
        .map(|packet| run_repeated(router.program(), packet, 1).2)
        .sum();
    total.as_nanos() as f64 / packets.len() as f64
}

/// The load options for `config` with the cache in `mode`.
fn options(config: &RouterConfig, mode: CidCacheMode) -> LoadOptions<'static> {
    LoadOptions {
        cid_cache: mode,
        ..options_for(config)
    }
}

/// The standard config with a CID cache of `entries`.
fn config_with_cache(entries: usize) -> RouterConfig {
    let mut config = ConfigFile::standard().load();
    config.limits.cid_cache_entries = entries as u32;
    config
}

/// The three scenarios under one cache mode.
fn measure(mode: CidCacheMode, settings: &Settings) -> [f64; 3] {
    // Room for every connection of every CPU (per CPU, each CPU holds its share; a set that
    // three CIDs fall into would lose one), so that the hits are hits.
    let config = config_with_cache((4 * CPUS * settings.connections).next_power_of_two());
    let router = TestRouter::with_options(&config, options(&config, mode));
    // Seeds apart per CPU: each CPU has connections of its own.
    let seeds = |cpu: usize, count: usize| {
        let base = (cpu as u64 + 1) << 32;
        (0..count as u64).map(move |i| base + i)
    };
    let one = on_every_cpu(|cpu| {
        let packet = packet(seeds(cpu, 1).next().expect("a seed"));
        run_repeated(router.program(), &packet, 1);
        run_repeated(router.program(), &packet, settings.repeat)
            .2
            .as_nanos() as f64
    });
    let many = on_every_cpu(|cpu| {
        let packets: Vec<Vec<u8>> = seeds(cpu, settings.connections).map(packet).collect();
        pass(&router, &packets);
        pass(&router, &packets)
    });
    drop(router);
    // A cache an eighth of the CIDs cycled through it: each set sees eight or so CIDs and
    // keeps two, none until it comes round again.
    let config = config_with_cache((settings.new_cids / 8).next_power_of_two());
    let router = TestRouter::with_options(&config, options(&config, mode));
    let new = on_every_cpu(|cpu| {
        let packets: Vec<Vec<u8>> = seeds(cpu, settings.new_cids).map(packet).collect();
        // A cyclic pass over more than the cache holds misses on every packet.
        pass(&router, &packets);
        pass(&router, &packets)
    });
    [one, many, new]
}

/// Each scenario's median over `rounds` of `figures`.
fn medians(figures: &[[f64; 3]]) -> [f64; 3] {
    std::array::from_fn(|scenario| {
        let mut values: Vec<f64> = figures.iter().map(|f| f[scenario]).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    })
}

pub fn run(settings: &Settings) -> Vec<Row> {
    // Interleaved round by round, so that a drift of the machine hits both alike.
    let (mut common, mut per_cpu) = (Vec::new(), Vec::new());
    for _ in 0..settings.rounds {
        per_cpu.push(measure(CidCacheMode::PerCpu, settings));
        common.push(measure(CidCacheMode::Common, settings));
    }
    let (common, per_cpu) = (medians(&common), medians(&per_cpu));
    let scenarios = [
        "one connection per CPU (cache hit)",
        "connections cycled per CPU (cache hits)",
        "new CIDs per CPU, more than the cache holds (miss, decode, insert)",
    ];
    scenarios
        .iter()
        .zip(common.iter().zip(per_cpu))
        .map(|(&scenario, (&common_ns, per_cpu_ns))| Row {
            scenario,
            common_ns,
            per_cpu_ns,
        })
        .collect()
}
