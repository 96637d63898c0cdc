//! `quic-router stats`: the counters, read from the pinned maps (the controller need not
//! run), with rates in watch mode.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use clap::Args;
use router_common::counters::{LocalOutcome, Outcome};
use router_user::{
    router::{Counters, PinnedRouter},
    runstate::RunState,
};
use serde_json::json;

use super::run::{IfaceArgs, paths};

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    iface: IfaceArgs,
    /// Print again every SECS seconds (default 1), with rates, until interrupted.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "1")]
    watch: Option<f64>,
    /// Stop after this many samples in watch mode.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// One JSON object per sample.
    #[arg(long)]
    json: bool,
}

/// The range of `--watch`, in seconds (NaN is outside it).
const MIN_WATCH: f64 = 0.1;
const MAX_WATCH: f64 = 86_400.0;

pub fn run(args: StatsArgs) -> anyhow::Result<()> {
    let paths = paths(&args.iface.iface)?;
    let state = RunState::load(&paths.state()).ok();
    let names: BTreeMap<u32, String> = state
        .as_ref()
        .map(|s| {
            s.backends
                .iter()
                .map(|b| (b.index, b.name.clone()))
                .collect()
        })
        .unwrap_or_default();
    // Each checked backend's health; none without health checks.
    let health = |name: &str| {
        state
            .as_ref()
            .and_then(|s| s.health.get(name))
            .map(|record| record.health.name())
    };
    let interval = match args.watch {
        Some(secs) if (MIN_WATCH..=MAX_WATCH).contains(&secs) => {
            Some(Duration::from_secs_f64(secs))
        }
        Some(_) => {
            return Err(super::BadInput(anyhow::anyhow!(
                "--watch takes {MIN_WATCH} to {MAX_WATCH} seconds"
            ))
            .into());
        }
        None => None,
    };
    let mut previous: Option<(Instant, Counters)> = None;
    let mut samples = 0u64;
    loop {
        let counters = PinnedRouter::new(&paths)
            .counters()
            .map_err(super::no_router)?;
        let now = Instant::now();
        let elapsed = previous
            .as_ref()
            .map(|(at, _)| now.duration_since(*at).as_secs_f64());
        let rate = |new: u64, old: Option<u64>| match (old, elapsed) {
            (Some(old), Some(secs)) if secs > 0.0 => Some((new.saturating_sub(old)) as f64 / secs),
            _ => None,
        };
        let old = previous.as_ref().map(|(_, c)| c);
        // (name, value now, value before) of every outcome, the XDP program's and then the
        // local workers' socket selection.
        let outcome_rows: Vec<(&str, u64, Option<u64>)> = Outcome::ALL
            .iter()
            .map(|&o| (o.name(), counters.outcome(o), old.map(|c| c.outcome(o))))
            .chain(
                LocalOutcome::ALL
                    .iter()
                    .map(|&o| (o.name(), counters.local(o), old.map(|c| c.local(o)))),
            )
            .collect();
        if args.json {
            let outcomes: serde_json::Map<String, serde_json::Value> = outcome_rows
                .iter()
                .map(|&(name, value, before)| {
                    (
                        name.to_owned(),
                        json!({ "packets": value, "per_second": rate(value, before) }),
                    )
                })
                .collect();
            let backends: serde_json::Map<String, serde_json::Value> = names
                .iter()
                .map(|(index, name)| {
                    let d = counters.backend(*index);
                    let old_packets = old.map(|c| c.backend(*index).packets);
                    (name.clone(), json!({ "packets": d.packets, "bytes": d.bytes, "per_second": rate(d.packets, old_packets), "health": health(name) }))
                })
                .collect();
            println!("{}", json!({ "outcomes": outcomes, "backends": backends }));
        } else {
            let show = |value: Option<f64>| value.map_or(String::new(), |v| format!("{v:.1}"));
            println!("{:<26} {:>14} {:>12}", "outcome", "packets", "per second");
            for &(name, value, before) in &outcome_rows {
                println!(
                    "{:<26} {:>14} {:>12}",
                    name,
                    value,
                    show(rate(value, before))
                );
            }
            println!(
                "{:<24} {:>14} {:>14} {:>12}  health",
                "backend", "packets", "bytes", "per second"
            );
            for (index, name) in &names {
                let d = counters.backend(*index);
                let old_packets = old.map(|c| c.backend(*index).packets);
                println!(
                    "{:<24} {:>14} {:>14} {:>12}  {}",
                    name,
                    d.packets,
                    d.bytes,
                    show(rate(d.packets, old_packets)),
                    health(name).unwrap_or("-")
                );
            }
        }
        samples += 1;
        let Some(interval) = interval else {
            return Ok(());
        };
        if args.count.is_some_and(|count| samples >= count) {
            return Ok(());
        }
        previous = Some((now, counters));
        std::thread::sleep(interval);
        if !args.json {
            println!();
        }
    }
}
