//! The results: bench/results.json, a Markdown report (printed and written to
//! bench/results.md) and a chart (bench/chart.svg).

use std::{fmt::Write as _, path::Path};

use plotters::prelude::*;
use serde_json::{Value, json};

use integration_tests::fixtures::LOCAL_WORKERS;

use crate::{
    cid_cache,
    control::Figure,
    forwarding::{self, Forwarder, Run},
    harness,
    kernel::{ProgramSize, Row, Variant},
    local::{self, Selection},
    production,
};

/// Where the figures came from.
pub struct Machine {
    pub cpu: String,
    pub cpus: usize,
    pub kernel: String,
    pub date: String,
}

impl Machine {
    pub fn read() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|line| line.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map_or("unknown".to_owned(), |(_, name)| name.trim().to_owned());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned();
        let date = std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
            .unwrap_or_default();
        Self {
            cpu,
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            kernel,
            date,
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} vCPU {}, Linux {}, {}",
            self.cpus, self.cpu, self.kernel, self.date
        )
    }
}

/// The settings a report states.
pub struct Settings {
    pub quick: bool,
    pub repeat: u32,
    pub runs: usize,
    pub seconds: f64,
    pub rounds: usize,
}

pub struct Results<'a> {
    pub machine: Machine,
    pub settings: Settings,
    pub kernel: &'a [Row],
    pub programs: &'a [ProgramSize],
    pub functions: &'a [(String, u64)],
    pub production: &'a production::Results,
    pub production_settings: &'a production::Settings,
    pub cid_cache: &'a [cid_cache::Row],
    pub forwarding: &'a [Run],
    /// The same with every CPU generating and forwarding.
    pub forwarding_every_cpu: &'a [Run],
    pub local: &'a [local::Run],
    pub control: &'a [Figure],
}

/// The median (by `rate`) of the runs that `keep` picks.
fn median<R>(runs: &[R], keep: impl Fn(&R) -> bool, rate: fn(&R) -> f64) -> Option<&R> {
    let mut of: Vec<&R> = runs.iter().filter(|r| keep(r)).collect();
    of.sort_by(|a, b| rate(a).total_cmp(&rate(b)));
    of.get(of.len() / 2).copied()
}

/// A selection's median run (by delivered rate).
fn median_local(runs: &[local::Run], selection: Selection) -> Option<&local::Run> {
    median(
        runs,
        |r| r.selection == selection,
        local::Run::delivered_pps,
    )
}

/// A forwarder's median run (by delivered rate).
fn median_run(runs: &[Run], forwarder: Forwarder) -> Option<&Run> {
    median(runs, |r| r.forwarder == forwarder, Run::delivered_pps)
}

/// Why the runs of `forwarders` cannot decide a target: a forwarder whose fastest run
/// delivered more than 1.25 times its slowest (something other than the forwarder set the
/// rate), with each one's range; None if they agree.
fn runs_disagree(runs: &[Run], forwarders: &[Forwarder]) -> Option<String> {
    let ranges: Vec<(Forwarder, f64, f64)> = forwarders
        .iter()
        .map(|&forwarder| {
            let rates = runs
                .iter()
                .filter(|r| r.forwarder == forwarder)
                .map(Run::delivered_pps);
            let min = rates.clone().fold(f64::INFINITY, f64::min);
            (forwarder, min, rates.fold(0.0, f64::max))
        })
        .collect();
    ranges
        .iter()
        .any(|&(_, min, max)| max > 1.25 * min)
        .then(|| {
            let ranges: Vec<String> = ranges
                .iter()
                .map(|(forwarder, min, max)| {
                    format!("{} {:.2}-{:.2} Mpps", forwarder.id(), min / 1e6, max / 1e6)
                })
                .collect();
            format!("runs spread ({})", ranges.join(", "))
        })
}

/// A target: what it says, the ratio measured, the bound, whether the ratio must stay at or
/// below the bound (cost) or reach it (rate), and why the measurement cannot decide, if it
/// cannot.
#[derive(Default)]
struct Target {
    what: String,
    measured: f64,
    bound: f64,
    at_most: bool,
    undecided: Option<String>,
}

impl Target {
    fn met(&self) -> bool {
        if self.at_most {
            self.measured <= self.bound
        } else {
            self.measured >= self.bound
        }
    }
}

/// Where a packet's time goes: each stage as the difference of two paths through the router
/// (repeat mode), the second going one stage further than the first. (stage, from, to), by
/// path id; `floor_pass` is the XDP_PASS program.
const STAGES: [(&str, &str, &str); 8] = [
    (
        "parse Ethernet/IP/UDP, listener lookup by port, count",
        "floor_pass",
        "no_listener",
    ),
    (
        "match the listener's address, read the QUIC header",
        "no_listener",
        "empty",
    ),
    (
        "codepoint's config, server ID (plaintext) lookup, backend, counters",
        "empty",
        "local_worker",
    ),
    (
        "rewrite Ethernet addresses, redirect through the devmap",
        "local_worker",
        "plaintext",
    ),
    (
        "CID cache lookup instead (four-pass, cache hit)",
        "plaintext",
        "four_pass_3",
    ),
    (
        "fallback hash instead (codepoint without a config)",
        "plaintext",
        "unroutable",
    ),
    (
        "Initial: long header, Token Length, token flow lookup",
        "unroutable",
        "initial_hash",
    ),
    (
        "an Initial's token decoded (four-pass) and its flow written",
        "initial_hash",
        "initial_token",
    ),
];

/// The issue-13 baseline (AMD EPYC, 2 vCPU, Linux 6.18), cost above XDP_PASS in ns: the hot
/// paths to halve. (what, production row id, baseline in loop mode.)
const FAMILIES: [&str; 2] = ["IPv4", "IPv6"];

const HOT_PATH_BASELINES: [(&str, &str, f64); 2] = [
    (
        "plaintext short header, one connection",
        "plaintext_one",
        226.0,
    ),
    (
        "four-pass short header, cache hit",
        "four_pass_hit_one",
        233.0,
    ),
];

impl Results<'_> {
    /// The stage table of `family`: (stage, ns).
    fn stages(&self, family: &str) -> Vec<(&'static str, f64)> {
        let ns = |id| {
            let variant = if id == "floor_pass" {
                Variant::Floor
            } else {
                Variant::Router
            };
            self.kernel_row(family, id, variant).map(|r| r.ns)
        };
        STAGES
            .iter()
            .filter_map(|&(stage, from, to)| Some((stage, ns(to)? - ns(from)?)))
            .collect()
    }

    fn production_row(&self, family: &str, id: &str) -> Option<&production::Row> {
        self.production
            .rows
            .iter()
            .find(|r| r.family == family && r.id == id)
    }

    /// Each loop-mode scenario: its description and its cost above XDP_PASS in IPv4 and,
    /// if measured, IPv6.
    fn production_by_family(&self) -> impl Iterator<Item = (&str, f64, Option<f64>)> {
        self.production
            .rows
            .iter()
            .filter(|r| r.family == "IPv4")
            .map(|r| {
                let v6 = self.production_row("IPv6", r.id).map(|r6| r6.ns_above_pass);
                (r.scenario.as_str(), r.ns_above_pass, v6)
            })
    }

    fn kernel_row(&self, family: &str, id: &str, variant: Variant) -> Option<&Row> {
        self.kernel
            .iter()
            .find(|r| r.family == family && r.id == id && r.variant == variant)
    }

    fn targets(&self) -> Vec<Target> {
        let mut targets = Vec::new();
        for family in ["IPv4", "IPv6"] {
            let cost = [
                ("plaintext", Variant::Router, "plaintext short header", 1.3),
                (
                    "four_pass_3",
                    Variant::Decoding,
                    "four-pass, 3 passes, decoded",
                    4.0,
                ),
                (
                    "four_pass_4",
                    Variant::Decoding,
                    "four-pass, 4 passes, decoded",
                    4.0,
                ),
                (
                    "four_pass_4",
                    Variant::Router,
                    "four-pass, CID cache hit",
                    4.0,
                ),
            ];
            for (id, variant, what, bound) in cost {
                if let Some(row) = self.kernel_row(family, id, variant) {
                    targets.push(Target {
                        what: format!("{family} {what}: x parse+redirect floor"),
                        measured: row.ns / row.redirect_ns,
                        bound,
                        at_most: true,
                        ..Target::default()
                    });
                }
            }
        }
        for family in ["IPv4", "IPv6"] {
            let ns = |id| self.kernel_row(family, id, Variant::Floor).map(|r| r.ns);
            if let (Some(pass), Some(floor), Some(c_pass), Some(c_floor)) = (
                ns("floor_pass"),
                ns("floor_redirect"),
                ns("c_floor_pass"),
                ns("c_floor_redirect"),
            ) {
                targets.push(Target {
                    what: format!(
                        "{family} Rust floor / C floor, cost above XDP_PASS ({:.0} / {:.0} ns)",
                        floor - pass,
                        c_floor - c_pass
                    ),
                    measured: (floor - pass) / (c_floor - c_pass),
                    bound: 1.2,
                    at_most: true,
                    ..Target::default()
                });
            }
        }
        for family in ["IPv4", "IPv6"] {
            let above = |id| self.production_row(family, id).map(|r| r.ns_above_pass);
            for (what, id, baseline) in HOT_PATH_BASELINES {
                if let Some(ns) = above(id) {
                    targets.push(Target {
                        what: format!(
                            "{family} {what}, one packet a call: / issue-13 baseline ({ns:.0} / {baseline:.0} ns above XDP_PASS)"
                        ),
                        measured: ns / baseline,
                        bound: 0.5,
                        at_most: true,
                        ..Target::default()
                    });
                }
            }
            if let Some(ns) = above("plaintext_one") {
                targets.push(Target {
                    what: format!(
                        "{family} plaintext short header, one packet a call: stretch, half of Katran's hot path ({ns:.0} ns above XDP_PASS)"
                    ),
                    measured: ns,
                    bound: 75.0,
                    at_most: true,
                    ..Target::default()
                });
            }
            let ratios = [
                (
                    "Initial hashed by its 4-tuple / plaintext short header (1M each, one packet a call)",
                    "initial_hash",
                    "plaintext_many",
                ),
                (
                    "Initial hashed while token flows are made / plaintext short header (1M each, one packet a call)",
                    "initial_hash_flows",
                    "plaintext_many",
                ),
                (
                    "attack: random short-header DCIDs / one CID decoded (four-pass cache misses)",
                    "attack_short",
                    "four_pass_misses",
                ),
                (
                    "attack: Initials with random DCIDs / one CID decoded (four-pass cache misses)",
                    "attack_initial",
                    "four_pass_misses",
                ),
            ];
            for (what, id, reference) in ratios {
                if let (Some(ns), Some(reference_ns)) = (above(id), above(reference)) {
                    targets.push(Target {
                        what: format!("{family} {what} ({ns:.0} / {reference_ns:.0} ns)"),
                        measured: ns / reference_ns,
                        bound: 1.0,
                        at_most: true,
                        ..Target::default()
                    });
                }
            }
        }
        let rate = |f| median_run(self.forwarding, f).map(Run::delivered_pps);
        if let (Some(router), Some(floor), Some(user)) = (
            rate(Forwarder::Router),
            rate(Forwarder::Floor),
            rate(Forwarder::UserSpace),
        ) {
            targets.push(Target {
                what: "end to end: quic-router / floor program".to_owned(),
                measured: router / floor,
                bound: 0.9,
                at_most: false,
                undecided: runs_disagree(self.forwarding, &[Forwarder::Router, Forwarder::Floor]),
            });
            if let (Some(router), Some(floor)) = (
                median_run(self.forwarding_every_cpu, Forwarder::Router).map(Run::delivered_pps),
                median_run(self.forwarding_every_cpu, Forwarder::Floor).map(Run::delivered_pps),
            ) {
                targets.push(Target {
                    what: "end to end, every CPU forwarding: quic-router / floor program"
                        .to_owned(),
                    measured: router / floor,
                    bound: 0.9,
                    at_most: false,
                    ..Target::default()
                });
            }
            targets.push(Target {
                what: "end to end: quic-router / user-space router".to_owned(),
                measured: router / user,
                bound: 3.0,
                at_most: false,
                ..Target::default()
            });
        }
        targets
    }

    pub fn json(&self) -> Value {
        let kernel: Vec<Value> = self
            .kernel
            .iter()
            .map(|r| {
                json!({
                    "family": r.family,
                    "id": r.id,
                    "path": r.path,
                    "variant": r.variant.name(),
                    "ns_per_packet": round(r.ns, 2),
                    "vs_xdp_pass": round(r.ns / r.pass_ns, 3),
                    "vs_parse_redirect": round(r.ns / r.redirect_ns, 3),
                })
            })
            .collect();
        let run_json = |r: &Run| {
            json!({
                "layout": r.layout.id(),
                "forwarder": r.forwarder.id(),
                "sent": r.sent,
                "delivered": r.delivered,
                "delivered_by_cpu": r.delivered_by_cpu,
                "lost": r.lost(),
                "misrouted": r.misrouted,
                "router_socket_overflows": r.router_overflows,
                "forwarding_cpu_busy": round(r.forwarding_cpu_busy, 3),
                "forwarder_xdp_ns_per_packet": r.forwarder_ns.map(|ns| round(ns, 1)),
                "sink_xdp_ns_per_packet": r.sink_ns.map(|ns| round(ns, 1)),
                "generator_cpu_busy": round(r.generator_cpu_busy, 3),
                "seconds": round(r.seconds, 3),
                "delivered_pps": round(r.delivered_pps(), 0),
                "offered_pps": round(r.offered_pps(), 0),
            })
        };
        let medians: Vec<Value> = Forwarder::ALL
            .iter()
            .filter_map(|&f| median_run(self.forwarding, f))
            .map(run_json)
            .collect();
        let local_json = |r: &local::Run| {
            json!({
                "selection": r.selection.id(),
                "sent": r.sent,
                "delivered": r.delivered,
                "misdelivered": r.misdelivered,
                "socket_overflows": r.socket_overflows,
                "seconds": round(r.seconds, 3),
                "delivered_pps": round(r.delivered_pps(), 0),
                "xdp_ns_per_run": r.xdp_ns.map(|ns| round(ns, 1)),
                "select_worker_ns_per_run": r.select_ns.map(|ns| round(ns, 1)),
            })
        };
        let local_medians: Vec<Value> = Selection::ALL
            .iter()
            .filter_map(|&s| median_local(self.local, s))
            .map(local_json)
            .collect();
        json!({
            "machine": {
                "cpu": self.machine.cpu,
                "cpus": self.machine.cpus,
                "kernel": self.machine.kernel,
                "date": self.machine.date,
            },
            "settings": {
                "quick": self.settings.quick,
                "test_run_repeat": self.settings.repeat,
                "test_run_runs": self.settings.runs,
                "forwarding_seconds": self.settings.seconds,
                "forwarding_rounds": self.settings.rounds,
                "payload_octets": harness::PAYLOAD_LEN,
            },
            "kernel_cost": kernel,
            "stages": FAMILIES.iter().map(|family| json!({
                "family": family,
                "stages": self.stages(family).iter().map(|(stage, ns)| json!({
                    "stage": stage,
                    "ns": round(*ns, 1),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "program_sizes": self.programs.iter().map(|p| json!({
                "program": p.program,
                "xlated_instructions": p.xlated,
                "jited_octets": p.jited,
                "verified_instructions": p.verified,
            })).collect::<Vec<_>>(),
            "router_functions": self.functions.iter().map(|(name, instructions)| json!({
                "function": name,
                "instructions": instructions,
            })).collect::<Vec<_>>(),
            "production": {
                "calls_per_block": self.production_settings.calls,
                "rounds": self.production_settings.rounds,
                "xdp_pass_ns": round(self.production.pass_ns, 1),
                "scenarios": self.production.rows.iter().map(|r| json!({
                    "family": r.family,
                    "id": r.id,
                    "scenario": r.scenario,
                    "ns_above_xdp_pass": round(r.ns_above_pass, 1),
                })).collect::<Vec<_>>(),
            },
            "cid_cache": self.cid_cache.iter().map(|r| json!({
                "scenario": r.scenario,
                "common_ns": round(r.common_ns, 1),
                "per_cpu_ns": round(r.per_cpu_ns, 1),
            })).collect::<Vec<_>>(),
            "forwarding": {
                "median": medians,
                "runs": self.forwarding.iter().map(run_json).collect::<Vec<_>>(),
            },
            "forwarding_every_cpu": {
                "cpus": forwarding::cpus(),
                "median": Forwarder::EVERY_CPU
                    .iter()
                    .filter_map(|&f| median_run(self.forwarding_every_cpu, f))
                    .map(run_json)
                    .collect::<Vec<_>>(),
                "runs": self.forwarding_every_cpu.iter().map(run_json).collect::<Vec<_>>(),
            },
            "local_delivery": {
                "median": local_medians,
                "runs": self.local.iter().map(local_json).collect::<Vec<_>>(),
            },
            "control_plane": self.control.iter().map(|f| json!({
                "id": f.id,
                "what": f.what,
                "ms": round(f.ms, 3),
            })).collect::<Vec<_>>(),
            "targets": self.targets().iter().map(|t| json!({
                "target": t.what,
                "measured": round(t.measured, 3),
                "bound": t.bound,
                "at_most": t.at_most,
                "met": t.undecided.is_none().then(|| t.met()),
                "undecided": t.undecided,
            })).collect::<Vec<_>>(),
        })
    }

    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let mut line = |text: String| {
            md.push_str(&text);
            md.push('\n');
        };
        line(format!("Machine: {}.", self.machine.describe()));
        line(format!(
            "Kernel cost: BPF_PROG_TEST_RUN, repeat {}, median of {} runs.{}",
            self.settings.repeat,
            self.settings.runs,
            if self.settings.quick {
                " (--quick)"
            } else {
                ""
            }
        ));
        line(String::new());
        line("| family | path | program | ns/packet | x XDP_PASS | x parse+redirect |".into());
        line("|---|---|---|---:|---:|---:|".into());
        for r in self.kernel {
            line(format!(
                "| {} | {} | {} | {:.1} | {:.2} | {:.2} |",
                r.family,
                r.path,
                r.variant.name(),
                r.ns,
                r.ns / r.pass_ns,
                r.ns / r.redirect_ns
            ));
        }
        line(String::new());
        line("Where the time goes (repeat mode): each stage is the difference between two of the paths above, the second going one stage further (ns per packet):".into());
        line(String::new());
        line("| stage | IPv4 ns | IPv6 ns |".into());
        line("|---|---:|---:|".into());
        let (v4, v6) = (self.stages("IPv4"), self.stages("IPv6"));
        for ((stage, ns4), (_, ns6)) in v4.iter().zip(&v6) {
            line(format!("| {stage} | {ns4:.1} | {ns6:.1} |"));
        }
        line(String::new());
        line("Sizes as loaded (xlated: instructions after the verifier; jited: octets of machine code; verified: instructions the verifier went through, all paths):".into());
        line(String::new());
        line("| program | xlated insns | jited octets | verified insns |".into());
        line("|---|---:|---:|---:|".into());
        for p in self.programs {
            line(format!(
                "| {} | {} | {} | {} |",
                p.program, p.xlated, p.jited, p.verified
            ));
        }
        line(String::new());
        line(format!(
            "The router's functions in its object (instructions before the verifier; what is inlined counts in its caller): {}.",
            self.functions
                .iter()
                .map(|(name, n)| format!("`{name}` {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        line(String::new());
        line(format!(
            "As production sees it: one packet per BPF_PROG_TEST_RUN call (repeat 1, timed by the kernel), {} calls per block, {} rounds that interleave an XDP_PASS block (itself {:.1} ns) with each scenario's; cost above XDP_PASS in the same round, median of the rounds (the router as built):",
            self.production_settings.calls,
            self.production_settings.rounds,
            self.production.pass_ns
        ));
        line(String::new());
        line("| scenario | IPv4 ns/packet above XDP_PASS | IPv6 |".into());
        line("|---|---:|---:|".into());
        for (scenario, v4, v6) in self.production_by_family() {
            let v6 = v6.map_or("-".to_owned(), |ns| format!("{ns:.1}"));
            line(format!("| {scenario} | {v4:.1} | {v6} |"));
        }
        line(String::new());
        line("The CID cache per CPU (as built) or one for all CPUs (the same sets in a plain array), with both CPUs running the program at once on CIDs of their own (four-pass, 3 passes; ns/packet, mean of the CPUs, median of rounds that alternate the two):".into());
        line(String::new());
        line("| scenario | one for all CPUs | per CPU | per CPU / one |".into());
        line("|---|---:|---:|---:|".into());
        for r in self.cid_cache {
            line(format!(
                "| {} | {:.1} | {:.1} | {:.2} |",
                r.scenario,
                r.common_ns,
                r.per_cpu_ns,
                r.per_cpu_ns / r.common_ns
            ));
        }
        line(String::new());
        line(format!(
            "Forwarding end to end (IPv4, {}-octet UDP payloads, {} flows to {} backends, about {:.0} s per run, median of {} runs; the generator offers more than any forwarder takes):",
            harness::PAYLOAD_LEN,
            forwarding::FLOWS,
            forwarding::BACKEND_COUNT,
            self.settings.seconds,
            self.settings.rounds
        ));
        line(String::new());
        line("| forwarder | delivered pkt/s | offered pkt/s | delivered | lost | misrouted | forwarding CPU busy | XDP ns/packet (forwarder; sink) | x floor |".into());
        line("|---|---:|---:|---:|---:|---:|---:|---:|---:|".into());
        let floor = median_run(self.forwarding, Forwarder::Floor).map(Run::delivered_pps);
        for forwarder in Forwarder::ALL {
            if let Some(r) = median_run(self.forwarding, forwarder) {
                line(format!(
                    "| {} | {:.0} | {:.0} | {} | {} | {} | {:.0}% | {}; {} | {} |",
                    forwarder.name(),
                    r.delivered_pps(),
                    r.offered_pps(),
                    r.delivered,
                    r.lost(),
                    r.misrouted,
                    r.forwarding_cpu_busy * 100.0,
                    r.forwarder_ns
                        .map_or("-".to_owned(), |ns| format!("{ns:.0}")),
                    r.sink_ns.map_or("-".to_owned(), |ns| format!("{ns:.0}")),
                    floor.map_or("-".to_owned(), |f| format!("{:.2}", r.delivered_pps() / f)),
                ));
            }
        }
        line(String::new());
        line(format!(
            "Every CPU forwarding ({} CPUs; veths with a queue per CPU; each CPU runs a generator, the forwarder and the sinks on its own queues, so the forwarders share each CPU with the generator; same flows, median of {} runs):",
            forwarding::cpus(),
            self.settings.rounds
        ));
        line(String::new());
        line("| forwarder | delivered pkt/s | per CPU | share by CPU | offered pkt/s | lost | misrouted | XDP ns/packet (forwarder; sink) | x floor |".into());
        line("|---|---:|---:|---|---:|---:|---:|---:|---:|".into());
        let floor = median_run(self.forwarding_every_cpu, Forwarder::Floor).map(Run::delivered_pps);
        for forwarder in Forwarder::EVERY_CPU {
            if let Some(r) = median_run(self.forwarding_every_cpu, forwarder) {
                let shares: Vec<String> = r
                    .delivered_by_cpu
                    .iter()
                    .map(|&n| format!("{:.0}%", 100.0 * n as f64 / r.delivered.max(1) as f64))
                    .collect();
                line(format!(
                    "| {} | {:.0} | {:.0} | {} | {:.0} | {} | {} | {}; {} | {} |",
                    forwarder.name(),
                    r.delivered_pps(),
                    r.delivered_pps() / forwarding::cpus() as f64,
                    shares.join(" / "),
                    r.offered_pps(),
                    r.lost(),
                    r.misrouted,
                    r.forwarder_ns
                        .map_or("-".to_owned(), |ns| format!("{ns:.0}")),
                    r.sink_ns.map_or("-".to_owned(), |ns| format!("{ns:.0}")),
                    floor.map_or("-".to_owned(), |f| format!("{:.2}", r.delivered_pps() / f)),
                ));
            }
        }
        line(String::new());
        line(format!(
            "Local delivery ({} workers on the router's host sharing the VIP's port through SO_REUSEPORT; {} flows; stack and workers on one CPU; median of {} runs; per-run costs from the kernel's BPF statistics under this traffic, in the warm-up round):",
            LOCAL_WORKERS.len(),
            local::FLOWS,
            self.settings.rounds
        ));
        line(String::new());
        line("| socket selection | delivered pkt/s | to the right worker | XDP ns/packet | select_worker ns/datagram |".into());
        line("|---|---:|---:|---:|---:|".into());
        for selection in Selection::ALL {
            if let Some(r) = median_local(self.local, selection) {
                line(format!(
                    "| {} | {:.0} | {:.1}% | {} | {} |",
                    selection.name(),
                    r.delivered_pps(),
                    100.0 * (r.delivered - r.misdelivered) as f64 / r.delivered.max(1) as f64,
                    r.xdp_ns.map_or("-".to_owned(), |ns| format!("{ns:.1}")),
                    r.select_ns.map_or("-".to_owned(), |ns| format!("{ns:.1}")),
                ));
            }
        }
        line(String::new());
        line("| control plane | ms |".into());
        line("|---|---:|".into());
        for f in self.control {
            line(format!("| {} | {:.1} |", f.what, f.ms));
        }
        line(String::new());
        md.push_str(&self.targets_table());
        md
    }

    /// The targets and whether each is met.
    fn targets_table(&self) -> String {
        let mut md = String::from("| target | measured | bound | met |\n|---|---:|---:|---|\n");
        for t in self.targets() {
            let bound = if t.at_most { "<=" } else { ">=" };
            let _ = writeln!(
                md,
                "| {} | {:.2} | {bound} {} | {} |",
                t.what,
                t.measured,
                t.bound,
                match (&t.undecided, t.met()) {
                    (Some(why), _) => format!("undecided: {why}"),
                    (None, true) => "yes".to_owned(),
                    (None, false) => "no".to_owned(),
                }
            );
        }
        md
    }

    /// The README's summary: the machine, every path's cost above XDP_PASS in both modes,
    /// the forwarding rates and the targets.
    pub fn summary(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "Machine: {}.{}\n",
            self.machine.describe(),
            if self.settings.quick {
                " (--quick)"
            } else {
                ""
            }
        );
        md.push_str("Cost per packet above an XDP_PASS program, in ns (repeat mode: one packet run over and over, warm; IPv4 / IPv6):\n\n| path | quic-router | CID cache off |\n|---|---:|---:|\n");
        let above = |family, id, variant| {
            self.kernel_row(family, id, variant)
                .map(|r| r.ns - r.pass_ns)
        };
        let pair = |id, variant| match (above("IPv4", id, variant), above("IPv6", id, variant)) {
            (Some(v4), Some(v6)) => format!("{v4:.0} / {v6:.0}"),
            _ => "-".to_owned(),
        };
        for r in self.kernel.iter().filter(|r| r.family == "IPv4") {
            if r.variant == Variant::Decoding {
                continue;
            }
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                r.path,
                pair(r.id, r.variant),
                pair(r.id, Variant::Decoding)
            );
        }
        md.push_str("\nOne packet per call, as production sees it (ns above XDP_PASS, IPv4 / IPv6):\n\n| scenario | ns |\n|---|---:|\n");
        for (scenario, v4, v6) in self.production_by_family() {
            let v6 = v6.map_or("-".to_owned(), |ns| format!("{ns:.0}"));
            let _ = writeln!(md, "| {scenario} | {v4:.0} / {v6} |");
        }
        md.push_str("\nForwarding end to end (IPv4, packets per second delivered):\n\n| forwarder | one forwarding CPU | every CPU forwarding |\n|---|---:|---:|\n");
        for forwarder in [
            Forwarder::Floor,
            Forwarder::Router,
            Forwarder::RouterCommonCache,
            Forwarder::UserSpace,
        ] {
            let rate = |runs| {
                median_run(runs, forwarder).map_or("-".to_owned(), |r| {
                    format!("{:.2} M", r.delivered_pps() / 1e6)
                })
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                forwarder.name(),
                rate(self.forwarding),
                rate(self.forwarding_every_cpu)
            );
        }
        md.push('\n');
        md.push_str(&self.targets_table());
        md
    }

    /// Two panels: per-packet cost in the kernel (IPv4) and the forwarding rates.
    pub fn chart(&self, path: &Path) -> Result<(), String> {
        let root = SVGBackend::new(path, (1100, 900)).into_drawing_area();
        let error = |err: &dyn std::fmt::Display| format!("{}: {err}", path.display());
        root.fill(&WHITE).map_err(|e| error(&e))?;
        let (top, bottom) = root.split_vertically(620);

        let rows: Vec<&Row> = self.kernel.iter().filter(|r| r.family == "IPv4").collect();
        let labels: Vec<String> = rows
            .iter()
            .map(|r| match r.variant {
                Variant::Decoding => format!("{} (CID cache off)", r.path),
                _ => r.path.to_owned(),
            })
            .collect();
        let values: Vec<f64> = rows.iter().map(|r| r.ns).collect();
        let colors: Vec<RGBColor> = rows.iter().map(|r| variant_color(r.variant)).collect();
        horizontal_bars(
            &top,
            &format!(
                "Per-packet cost in the kernel, IPv4 (ns, BPF_PROG_TEST_RUN) - {}",
                self.machine.describe()
            ),
            &labels,
            &values,
            &colors,
            "ns",
        )
        .map_err(|e| error(&e))?;

        let runs: Vec<&Run> = Forwarder::ALL
            .iter()
            .filter_map(|&f| median_run(self.forwarding, f))
            .collect();
        let locals: Vec<&local::Run> = Selection::ALL
            .iter()
            .filter_map(|&s| median_local(self.local, s))
            .collect();
        let labels: Vec<String> = runs
            .iter()
            .map(|r| r.forwarder.name().to_owned())
            .chain(
                locals
                    .iter()
                    .map(|r| format!("local workers: {}", r.selection.name())),
            )
            .collect();
        let values: Vec<f64> = runs
            .iter()
            .map(|r| r.delivered_pps() / 1e6)
            .chain(locals.iter().map(|r| r.delivered_pps() / 1e6))
            .collect();
        let colors: Vec<RGBColor> = runs
            .iter()
            .map(|r| match r.forwarder {
                Forwarder::Floor => FLOOR_COLOR,
                Forwarder::Router | Forwarder::RouterCommonCache => ROUTER_COLOR,
                Forwarder::UserSpace => OTHER_COLOR,
            })
            .chain(locals.iter().map(|r| match r.selection {
                Selection::ByCid => ROUTER_COLOR,
                Selection::KernelHash => OTHER_COLOR,
            }))
            .collect();
        horizontal_bars(
            &bottom,
            "Delivered, one forwarding CPU (million packets/s)",
            &labels,
            &values,
            &colors,
            "Mpps",
        )
        .map_err(|e| error(&e))?;
        root.present().map_err(|e| error(&e))
    }
}

fn horizontal_bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    labels: &[String],
    values: &[f64],
    colors: &[RGBColor],
    unit: &str,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let max = values.iter().copied().fold(0.0, f64::max).max(1e-9) * 1.6;
    let n = labels.len() as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .build_cartesian_2d(0.0..max, -0.5..n - 0.5)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_desc(unit)
        .draw()?;
    chart.draw_series(
        values
            .iter()
            .zip(colors)
            .enumerate()
            .map(|(i, (&v, color))| {
                let y = n - 1.0 - i as f64;
                Rectangle::new([(0.0, y - 0.35), (v, y + 0.35)], color.filled())
            }),
    )?;
    chart.draw_series(
        labels
            .iter()
            .zip(values)
            .enumerate()
            .map(|(i, (label, v))| {
                let y = n - 1.0 - i as f64;
                Text::new(
                    format!("{label}: {v:.2}"),
                    (v + max * 0.01, y + 0.2),
                    ("sans-serif", 13),
                )
            }),
    )?;
    Ok(())
}

const FLOOR_COLOR: RGBColor = RGBColor(150, 150, 150);
const ROUTER_COLOR: RGBColor = RGBColor(60, 110, 200);
/// The router decoding every packet; the user-space router.
const OTHER_COLOR: RGBColor = RGBColor(230, 140, 40);

fn variant_color(variant: Variant) -> RGBColor {
    match variant {
        Variant::Floor => FLOOR_COLOR,
        Variant::Router => ROUTER_COLOR,
        Variant::Decoding => OTHER_COLOR,
    }
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

/// Writes results.json, results.md and chart.svg into `dir`.
pub fn write(dir: &Path, results: &Results<'_>) -> Result<String, String> {
    std::fs::create_dir_all(dir).map_err(|err| format!("{}: {err}", dir.display()))?;
    let json = serde_json::to_string_pretty(&results.json()).expect("JSON");
    let markdown = results.markdown();
    for (name, text) in [
        ("results.json", json + "\n"),
        ("results.md", markdown.clone()),
        ("summary.md", results.summary()),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|err| format!("{}: {err}", path.display()))?;
    }
    results.chart(&dir.join("chart.svg"))?;
    let mut summary = markdown;
    let _ = write!(
        summary,
        "\nWritten: {}/results.json, results.md, summary.md, chart.svg",
        dir.display()
    );
    Ok(summary)
}
