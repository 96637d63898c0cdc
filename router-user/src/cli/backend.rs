//! `quic-router backend add|remove|drain|undrain|list`: changes go through the controller,
//! which writes them into the config file and applies it.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use router_user::{
    config::BackendState,
    config_edit::{BackendSpec, Edit},
    control::Request,
    router::PinnedRouter,
    runstate::RunState,
};
use serde_json::json;

use super::{
    BadInput,
    run::{IfaceArgs, paths, send},
};

#[derive(Debug, Subcommand)]
pub enum BackendCommand {
    /// Add a backend to the config file and apply it.
    Add(AddArgs),
    /// Remove a backend: the traffic that names it falls back to the others.
    Remove(NameArgs),
    /// Stop sending it new connections; the traffic that names it stays.
    Drain(NameArgs),
    /// Send it new connections again.
    Undrain(NameArgs),
    /// The backends, with their counters.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    #[command(flatten)]
    iface: IfaceArgs,
    /// The backend's name.
    #[arg(long)]
    name: String,
    /// The interface a host is reached through (for a tunnel without it: the kernel's
    /// routes).
    #[arg(long, value_name = "IF", required_unless_present_any = ["local_worker", "tunnel_address"])]
    interface: Option<String>,
    /// The host's MAC (or the next hop's).
    #[arg(long, value_name = "MAC", required_unless_present_any = ["local_worker", "tunnel_address"])]
    next_hop_mac: Option<String>,
    /// How packets reach the host: l2 (the default), gue or ipip.
    #[arg(long, value_name = "METHOD")]
    delivery: Option<String>,
    /// The host's tunnel address, for gue or ipip.
    #[arg(long, value_name = "ADDRESS", requires = "delivery")]
    tunnel_address: Option<String>,
    /// A worker on this host (its socket registers with the router), not a host.
    #[arg(long, conflicts_with_all = ["interface", "next_hop_mac", "delivery", "tunnel_address"])]
    local_worker: bool,
    /// A server ID, as CODEPOINT:HEX; repeat for more.
    #[arg(long = "server-id", value_name = "CODEPOINT:HEX")]
    server_ids: Vec<String>,
    /// Share of new connections (1..=1000, default 1).
    #[arg(long)]
    weight: Option<u32>,
    /// Add it draining.
    #[arg(long)]
    draining: bool,
}

#[derive(Debug, Args)]
pub struct NameArgs {
    #[command(flatten)]
    iface: IfaceArgs,
    /// The backend's name.
    name: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    iface: IfaceArgs,
    /// One JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(command: BackendCommand) -> anyhow::Result<()> {
    let (iface, edit) = match command {
        BackendCommand::List(args) => return list(args),
        BackendCommand::Add(args) => {
            let mut server_ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for id in &args.server_ids {
                let (codepoint, hex) = id
                    .split_once(':')
                    .and_then(|(c, h)| Some((c.parse::<u8>().ok()?, h)))
                    .ok_or_else(|| {
                        BadInput(anyhow::anyhow!("--server-id {id:?} is not CODEPOINT:HEX"))
                    })?;
                server_ids
                    .entry(codepoint.to_string())
                    .or_default()
                    .push(hex.to_owned());
            }
            let backend = BackendSpec {
                name: args.name,
                interface: args.interface,
                next_hop_mac: args.next_hop_mac,
                delivery: args.delivery,
                tunnel_address: args.tunnel_address,
                local_worker: args.local_worker,
                server_ids,
                weight: args.weight,
                state: if args.draining {
                    BackendState::Draining
                } else {
                    BackendState::Active
                },
            };
            (args.iface.iface, Edit::AddBackend { backend })
        }
        BackendCommand::Remove(args) => (args.iface.iface, Edit::RemoveBackend { name: args.name }),
        BackendCommand::Drain(args) => (
            args.iface.iface,
            Edit::SetBackendState {
                name: args.name,
                state: BackendState::Draining,
            },
        ),
        BackendCommand::Undrain(args) => (
            args.iface.iface,
            Edit::SetBackendState {
                name: args.name,
                state: BackendState::Active,
            },
        ),
    };
    send(&iface, &Request::Edit { edit }).map(drop)
}

fn list(args: ListArgs) -> anyhow::Result<()> {
    let paths = paths(&args.iface.iface)?;
    let state = RunState::load(&paths.state()).map_err(|err| {
        BadInput(anyhow::anyhow!(
            "no router state for {}: {err}",
            args.iface.iface
        ))
    })?;
    let counters = PinnedRouter::new(&paths)
        .counters()
        .map_err(super::no_router)?;
    if args.json {
        let backends: Vec<_> = state
            .backends
            .iter()
            .map(|b| {
                let d = counters.backend(b.index);
                json!({
                    "name": b.name, "state": b.state, "weight": b.weight, "interface": b.interface,
                    "next_hop_mac": b.next_hop_mac, "local_worker": b.local_worker,
                    "server_ids": b.server_ids,
                    "packets": d.packets, "bytes": d.bytes,
                })
            })
            .collect();
        println!("{}", json!({ "backends": backends }));
        return Ok(());
    }
    println!(
        "{:<16} {:<9} {:>6} {:<12} {:<17} {:>12} {:>14}  server IDs",
        "name", "state", "weight", "interface", "next hop", "packets", "bytes"
    );
    for b in &state.backends {
        let d = counters.backend(b.index);
        println!(
            "{:<16} {:<9} {:>6} {:<12} {:<17} {:>12} {:>14}  {}",
            b.name,
            b.state.name(),
            b.weight,
            b.interface.as_deref().unwrap_or("(local)"),
            b.next_hop_mac.as_deref().unwrap_or("(worker)"),
            d.packets,
            d.bytes,
            b.server_ids.join(" ")
        );
    }
    Ok(())
}
