//! `quic-router run` and the commands that act on a running router: `detach`, `reload`,
//! `status`.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use router_user::{
    announce,
    config::BackendState,
    control::{self, Request},
    controller::{Controller, ControllerError, RunOptions},
    health::{self, Health},
    pin::{PinError, RouterPaths},
    router::{Mode, PinnedRouter},
    runstate::RunState,
};
use serde_json::json;

use super::BadInput;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ModeArg {
    /// Native where the driver supports it, generic otherwise.
    Auto,
    /// Native (driver) mode.
    Native,
    /// Generic (skb) mode.
    Skb,
}

impl From<ModeArg> for Mode {
    fn from(mode: ModeArg) -> Self {
        match mode {
            ModeArg::Auto => Mode::Auto,
            ModeArg::Native => Mode::Native,
            ModeArg::Skb => Mode::Skb,
        }
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The router config file.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The interface QUIC arrives on.
    #[arg(long, value_name = "IF")]
    iface: String,
    #[arg(long, value_enum, default_value = "auto")]
    mode: ModeArg,
    /// Serve Prometheus metrics here (off unless given).
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,
    /// Log a line per packet from the kernel (slow: for debugging only).
    #[arg(long)]
    debug: bool,
}

#[derive(Debug, Args)]
pub struct IfaceArgs {
    /// The interface the program is attached to.
    #[arg(long, value_name = "IF")]
    pub iface: String,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub iface: IfaceArgs,
    /// One JSON object.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    // The kernel's aya-log lines (debug mode) come as debug records of router_ebpf.
    let default_filter = if args.debug {
        "info,router_ebpf=debug"
    } else {
        "info"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: not in journald or a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let options = RunOptions {
        config: args.config,
        iface: args.iface,
        mode: args.mode.into(),
        metrics_addr: args.metrics_addr,
        debug: args.debug,
    };
    let controller = Controller::start(options).map_err(|err| match err {
        err @ (ControllerError::Config(_)
        | ControllerError::ModeMismatch { .. }
        | ControllerError::Interface { .. }
        | ControllerError::Pin(PinError::Locked { .. } | PinError::Interface(_))) => {
            anyhow::Error::new(BadInput::from(err))
        }
        ControllerError::Router(err) if err.is_bad_config() => {
            anyhow::Error::new(BadInput::from(err))
        }
        other => other.into(),
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(controller.serve())?;
    Ok(())
}

pub fn paths(iface: &str) -> anyhow::Result<RouterPaths> {
    RouterPaths::new(iface).map_err(|err| BadInput::from(err).into())
}

/// Sends `request` to the controller and prints its answer; an error when it refuses.
pub fn send(iface: &str, request: &Request) -> anyhow::Result<u32> {
    let paths = paths(iface)?;
    let response =
        control::request(iface, &paths.control_socket(), request).map_err(super::no_router)?;
    if !response.ok {
        return Err(BadInput(anyhow::anyhow!(response.message)).into());
    }
    println!("{} (epoch {})", response.message, response.epoch);
    Ok(response.epoch)
}

pub fn reload(args: IfaceArgs) -> anyhow::Result<()> {
    send(&args.iface, &Request::Reload).map(drop)
}

/// `withdraw`: through the controller; without one, the routes the run state records are
/// removed here and the withdrawal recorded for the next controller to keep.
pub fn withdraw(args: IfaceArgs) -> anyhow::Result<()> {
    let paths = paths(&args.iface)?;
    match control::request(&args.iface, &paths.control_socket(), &Request::Withdraw) {
        Err(control::ControlError::NotRunning { .. }) => {}
        _ => return send(&args.iface, &Request::Withdraw).map(drop),
    }
    // Held while the run state changes: no controller starts meanwhile.
    let _lock = paths.lock(Duration::ZERO).map_err(BadInput::from)?;
    let mut state = RunState::load(&paths.state())
        .map_err(|_| BadInput(anyhow::anyhow!("no router is attached to {}", args.iface)))?;
    let Some(record) = state.announce.as_mut() else {
        return Err(BadInput(anyhow::anyhow!(
            "the config has no [announce]: nothing is announced"
        ))
        .into());
    };
    let table = record.table;
    for vip in std::mem::take(&mut record.routes) {
        if let Err(err) = announce::withdraw(table, vip) {
            record.routes.push(vip);
            eprintln!("{err}");
        }
    }
    record.withdrawn = true;
    let left = !record.routes.is_empty();
    state
        .store(&paths.state())
        .context("cannot record the withdrawal")?;
    if left {
        anyhow::bail!("some routes could not be withdrawn (above); the withdrawal is recorded");
    }
    println!(
        "VIPs withdrawn from table {table} (no controller runs: the next one keeps them withdrawn)"
    );
    Ok(())
}

/// How long `detach` waits for a controller to stop.
const DETACH_WAIT: Duration = Duration::from_secs(10);

pub fn detach(args: IfaceArgs) -> anyhow::Result<()> {
    let paths = paths(&args.iface)?;
    // Stop a running controller first, and hold its lock while the pins go, so that nothing
    // writes the maps being removed and no controller starts meanwhile.
    let _ = control::request(&args.iface, &paths.control_socket(), &Request::Shutdown);
    let lock = paths
        .run_dir
        .exists()
        .then(|| paths.lock(DETACH_WAIT))
        .transpose()?;
    withdraw_before_detach(&paths);
    let had_link = PinnedRouter::new(&paths).detach()?;
    let _ = std::fs::remove_dir_all(&paths.run_dir);
    drop(lock);
    if !had_link {
        return Err(BadInput(anyhow::anyhow!("no router is attached to {}", args.iface)).into());
    }
    println!("detached the router from {}", args.iface);
    Ok(())
}

/// Withdraws the VIPs the run state says are announced, and waits the drain it records for
/// BGP to move the traffic away while the data path still routes it.
fn withdraw_before_detach(paths: &RouterPaths) {
    let Some(record) = RunState::load(&paths.state())
        .ok()
        .and_then(|state| state.announce)
    else {
        return;
    };
    if record.routes.is_empty() {
        return;
    }
    for &vip in &record.routes {
        match announce::withdraw(record.table, vip) {
            Ok(()) => println!("withdrew {vip} (table {})", record.table),
            Err(err) => eprintln!("{err}"),
        }
    }
    let drain = Duration::from_millis(record.drain_ms);
    println!(
        "draining for {} ms before the data path goes",
        drain.as_millis()
    );
    std::thread::sleep(drain);
}

/// How long `status` waits for a change in flight to land.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(2);

/// The run state and the kernel's epoch, read until they agree (a controller records a change
/// in the run state just before it flips the maps to it), or for [`SNAPSHOT_WAIT`].
fn snapshot(paths: &RouterPaths, pinned: &PinnedRouter) -> anyhow::Result<(RunState, u32)> {
    let deadline = std::time::Instant::now() + SNAPSHOT_WAIT;
    loop {
        let kernel_epoch = pinned.epoch()?;
        let state = RunState::load(&paths.state()).map_err(|err| {
            anyhow::anyhow!(
                "a router is attached to {} (epoch {kernel_epoch}), but its run state is unreadable: {err}",
                paths.iface
            )
        })?;
        if state.epoch == kernel_epoch || std::time::Instant::now() >= deadline {
            return Ok((state, kernel_epoch));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn status(args: StatusArgs) -> anyhow::Result<()> {
    let iface = &args.iface.iface;
    let paths = paths(iface)?;
    let pinned = PinnedRouter::new(&paths);
    let program_id = pinned
        .program_id()?
        .ok_or_else(|| BadInput(anyhow::anyhow!("no router is attached to {iface}")))?;
    let (state, kernel_epoch) = snapshot(&paths, &pinned)?;
    let running = std::os::unix::net::UnixStream::connect(paths.control_socket()).is_ok();
    let pid = state.pid.filter(|_| running);
    if args.json {
        let status = json!({
            "interface": iface,
            "mode": state.mode,
            "program_id": program_id,
            "epoch": state.epoch,
            "kernel_epoch": kernel_epoch,
            "controller_pid": pid,
            "config": state.config,
            "routing_digest": state.routing_digest,
            "limits": state.limits,
            "codepoints": state.codepoints,
            "backends": state.backends,
            "health": state.health,
            "announce": state.announce,
        });
        println!("{status}");
        return Ok(());
    }
    println!("interface   {iface}");
    println!("mode        {}", state.mode.name());
    println!("program     id {program_id}");
    if kernel_epoch == state.epoch {
        println!("epoch       {} (config changes applied)", state.epoch);
    } else {
        println!(
            "epoch       {} in the run state, {kernel_epoch} in the kernel: a change in flight, or one the controller could not complete",
            state.epoch
        );
    }
    match pid {
        Some(pid) => println!("controller  running, pid {pid}"),
        None => println!("controller  not running (the data path runs on)"),
    }
    println!("config      {}", state.config);
    println!(
        "digest      {} (what decides each packet's backend; keys excluded)",
        state.routing_digest
    );
    let limits = &state.limits;
    println!(
        "limits      {} backends, {} server IDs, {} listeners, {} cached CIDs",
        limits.backends, limits.server_ids, limits.listeners, limits.cid_cache_entries
    );
    for c in &state.codepoints {
        println!(
            "codepoint   {}: {}, server ID {} octets, nonce {} octets",
            c.config_rotation,
            c.mode.name(),
            c.server_id_len,
            c.nonce_len
        );
    }
    let backends = &state.backends;
    let draining = backends
        .iter()
        .filter(|b| b.state == BackendState::Draining)
        .count();
    let local = backends.iter().filter(|b| b.local_worker).count();
    println!(
        "backends    {} ({} active, {draining} draining; {local} local workers)",
        backends.len(),
        backends.len() - draining
    );
    if let Some(record) = &state.announce {
        let vips: Vec<String> = record.routes.iter().map(ToString::to_string).collect();
        let said = match (&record.broken, record.withdrawn) {
            (_, true) => "withdrawn by the operator (quic-router announce to undo)".to_owned(),
            (Some(why), false) => format!("withdrawn: {why}"),
            (None, false) => format!("announced: {}", vips.join(", ")),
        };
        println!("bgp         table {}, {said}", record.table);
    }
    if !state.health.is_empty() {
        // "N up", "N down (names)", "N unchecked (names)".
        let count = |health: Health| {
            let names: Vec<&str> = state
                .health
                .iter()
                .filter(|(_, record)| record.health == health)
                .map(|(name, _)| name.as_str())
                .collect();
            match names.as_slice() {
                names if names.is_empty() || health == Health::Up => {
                    format!("{} {}", names.len(), health.name())
                }
                names => format!("{} {} ({})", names.len(), health.name(), names.join(", ")),
            }
        };
        println!(
            "health      {}, {}, {}",
            count(Health::Up),
            count(Health::Down),
            count(Health::Unchecked),
        );
        let active = backends
            .iter()
            .filter(|b| b.state == BackendState::Active)
            .map(|b| b.name.as_str());
        if health::fails_open(active, &state.down()) {
            println!(
                "            every active backend is down: all take new connections (failing open)"
            );
        }
        // Why each backend that is not up is so.
        for (name, record) in &state.health {
            if record.health != Health::Up {
                println!(
                    "            {name} {}: {}",
                    record.health.name(),
                    record.detail
                );
            }
        }
    }
    Ok(())
}
