//! Command-line definitions and dispatch.

mod cid;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "quic-router",
    version,
    about = "QUIC connection-ID router (XDP)"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mint and decode QUIC-LB connection IDs.
    #[command(subcommand)]
    Cid(cid::CidCommand),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Cid(command) => cid::run(command),
    }
}

/// Clap's error text (which goes on with usage and a hint) as one line: the message part,
/// joined.
pub fn one_line(text: &str) -> String {
    let message: Vec<&str> = text
        .lines()
        .map(str::trim)
        .take_while(|line| !line.is_empty() && !line.starts_with("Usage:"))
        .collect();
    format!("{} (see --help)", message.join(" "))
}
