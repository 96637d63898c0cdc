//! Command-line definitions and dispatch.

mod backend;
mod cid;
mod decap;
mod explain;
mod run;
mod stats;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use router_user::control::Request;

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
    /// Run packets through the kernel program (not attached) and print its verdicts.
    Explain(explain::ExplainArgs),
    /// Attach the router to an interface and keep it in line with its config file.
    Run(run::RunArgs),
    /// Stop the controller and remove the router from an interface.
    Detach(run::IfaceArgs),
    /// Make the controller read its config file again.
    Reload(run::IfaceArgs),
    /// Announce the VIPs again (`[announce]`) after `withdraw`.
    Announce(run::IfaceArgs),
    /// Withdraw the VIPs' routes (BGP moves the traffic to the other routers) until
    /// `announce`: a drain for maintenance. The data path keeps routing what still comes.
    /// Works without a controller too (the next one keeps the withdrawal).
    Withdraw(run::IfaceArgs),
    /// Manage backends through the running controller.
    #[command(subcommand)]
    Backend(backend::BackendCommand),
    /// Counters per outcome and per backend.
    Stats(stats::StatsArgs),
    /// What is attached and how.
    Status(run::StatusArgs),
    /// The decapsulator for backends behind a router that delivers by GUE or IP-in-IP.
    #[command(subcommand)]
    Decap(decap::DecapCommand),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Cid(command) => cid::run(command).map_err(|err| BadInput(err).into()),
        Command::Explain(args) => explain::run(args),
        Command::Run(args) => run::run(args),
        Command::Detach(args) => run::detach(args),
        Command::Reload(args) => run::reload(args),
        Command::Announce(args) => run::send(&args.iface, &Request::Announce).map(drop),
        Command::Withdraw(args) => run::withdraw(args),
        Command::Backend(command) => backend::run(command),
        Command::Stats(args) => stats::run(args),
        Command::Status(args) => run::status(args),
        Command::Decap(command) => decap::run(command),
    }
}

/// An error in what the operator gave (arguments, config, key or capture files): exit
/// status 2, where a failure of the machine (loading the program, say) gives 1.
#[derive(Debug, thiserror::Error)]
#[error("{}", error_line(.0))]
pub struct BadInput(pub anyhow::Error);

impl BadInput {
    fn from(err: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(err.into())
    }
}

/// `err` as bad input when it is the operator's to settle (no router, no controller),
/// otherwise as it is.
fn no_router(err: impl Into<anyhow::Error>) -> anyhow::Error {
    let err = err.into();
    let absent = matches!(
        err.downcast_ref::<router_user::router::RouterError>(),
        Some(router_user::router::RouterError::NotAttached(_))
    ) || matches!(
        err.downcast_ref::<router_user::control::ControlError>(),
        Some(router_user::control::ControlError::NotRunning { .. })
    );
    if absent { BadInput(err).into() } else { err }
}

/// The octets that the hex `digits` of `what` (an argument) spell.
fn parse_hex(what: &str, digits: &str) -> anyhow::Result<Vec<u8>> {
    hex::decode(digits.trim()).with_context(|| format!("{what} is not valid hex"))
}

/// Whether `err` is bad input.
pub fn is_bad_input(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| cause.is::<BadInput>())
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

/// `err` and its causes as one line, each cause said once: a cause whose text its outer error
/// already shows (errors that quote their source) is not repeated.
pub fn error_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::error_line;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot open {path}: {source}")]
    struct Open {
        path: String,
        source: std::io::Error,
    }

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::from_raw_os_error(2);
        let err = anyhow::Error::new(Open {
            path: "/x".into(),
            source: io,
        })
        .context("key file");
        assert_eq!(
            error_line(&err),
            "key file: cannot open /x: No such file or directory (os error 2)"
        );
    }
}
