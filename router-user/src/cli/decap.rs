//! `quic-router decap attach|detach|status`: the decapsulator for backends behind a router
//! that delivers by GUE or IP-in-IP.

use std::net::IpAddr;

use clap::{Args, Subcommand};
use router_user::{
    decap::{self, DecapError, DecapSettings, DecapStatus, Decapsulator, Prefix},
    router::Attachment,
};

use super::{
    BadInput,
    run::{IfaceArgs, ModeArg, StatusArgs},
};

#[derive(Debug, Subcommand)]
pub enum DecapCommand {
    /// Attach the decapsulator to an interface, or replace its settings there (atomically).
    Attach(AttachArgs),
    /// Remove the decapsulator from an interface.
    Detach(IfaceArgs),
    /// The decapsulator's settings and counters.
    Status(StatusArgs),
}

#[derive(Debug, Args)]
pub struct AttachArgs {
    #[command(flatten)]
    iface: IfaceArgs,
    /// A tunnel address of this host: encapsulated packets must be addressed to it
    /// (repeatable).
    #[arg(long = "address", value_name = "ADDR", required = true)]
    addresses: Vec<IpAddr>,
    /// A router prefix (or address) encapsulated packets may come from (repeatable).
    #[arg(long = "from", value_name = "PREFIX", required = true)]
    sources: Vec<String>,
    /// GUE's UDP port (IP-in-IP only without it).
    #[arg(long, value_name = "PORT")]
    gue_port: Option<u16>,
    #[arg(long, value_enum, default_value = "auto")]
    mode: ModeArg,
}

pub fn run(command: DecapCommand) -> anyhow::Result<()> {
    match command {
        DecapCommand::Attach(args) => attach(args),
        DecapCommand::Detach(args) => {
            if decap::detach(&args.iface).map_err(operator_or_machine)? {
                println!("detached the decapsulator from {}", args.iface);
                Ok(())
            } else {
                Err(BadInput(DecapError::NotAttached(args.iface).into()).into())
            }
        }
        DecapCommand::Status(args) => {
            let status = decap::status(&args.iface.iface).map_err(operator_or_machine)?;
            if args.json {
                println!("{}", serde_json::to_string(&status)?);
            } else {
                print!("{}", describe(&status));
            }
            Ok(())
        }
    }
}

fn attach(args: AttachArgs) -> anyhow::Result<()> {
    let sources = args
        .sources
        .iter()
        .map(|text| text.parse::<Prefix>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| BadInput(err.into()))?;
    let settings = DecapSettings {
        addresses: args.addresses,
        sources,
        gue_port: args.gue_port,
    };
    settings.validate().map_err(|err| BadInput(err.into()))?;
    let mut decapsulator = Decapsulator::load(&settings)?;
    let attachment = decapsulator
        .attach(&args.iface.iface, args.mode.into())
        .map_err(operator_or_machine)?;
    let verb = match attachment {
        Attachment::New => "attached",
        Attachment::Replaced | Attachment::Adopted => "replaced",
    };
    println!("{verb} the decapsulator on {}", args.iface.iface);
    Ok(())
}

/// The operator's to settle (a bad interface name, nothing attached) as bad input; the rest
/// as it is.
fn operator_or_machine(err: DecapError) -> anyhow::Error {
    match err {
        err @ (DecapError::NotAttached(_)
        | DecapError::Interface(router_user::netif::NetifError::Missing(_))
        | DecapError::Pin(router_user::pin::PinError::Interface(_))) => BadInput(err.into()).into(),
        err => err.into(),
    }
}

fn describe(status: &DecapStatus) -> String {
    let list = |items: Vec<String>| items.join(", ");
    let settings = &status.settings;
    let mut text = format!(
        "decapsulator on {} (program {})\ntunnel addresses: {}\nrouter prefixes: {}\nGUE port: {}\n",
        status.iface,
        status.program_id,
        list(settings.addresses.iter().map(ToString::to_string).collect()),
        list(settings.sources.iter().map(ToString::to_string).collect()),
        settings
            .gue_port
            .map_or_else(|| "off (IP-in-IP only)".to_owned(), |port| port.to_string()),
    );
    for (name, count) in &status.counters {
        text.push_str(&format!("{name:<18} {count}\n"));
    }
    text
}
