//! `quic-router explain`: the kernel program's verdict on captured or hand-made packets.

use std::path::PathBuf;

use clap::Args;
use router_user::{
    config, pcap,
    router::{LoadOptions, Router, RouterError},
};

use super::{BadInput, parse_hex};

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("input").required(true).args(["packet", "pcap"]))]
pub struct ExplainArgs {
    /// The router config file.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// One Ethernet frame in hex.
    #[arg(long, value_name = "HEX")]
    packet: Option<String>,
    /// A capture file (pcap or pcapng; Ethernet, raw IP or Linux cooked).
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// One JSON object per packet, one per line.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ExplainArgs) -> anyhow::Result<()> {
    let config = config::load(&args.config).map_err(BadInput::from)?;
    // The capture's header is checked before the program is loaded.
    let capture = match (&args.packet, &args.pcap) {
        (Some(_), _) => None,
        (None, Some(path)) => Some(pcap::open(path).map_err(BadInput::from)?),
        (None, None) => return Err(BadInput(anyhow::anyhow!("give --packet or --pcap")).into()),
    };
    let mut router = Router::load(&LoadOptions {
        limits: config.limits,
        trace_verdicts: true,
        ..LoadOptions::default()
    })?;
    router.install(&config)?;
    let mut explain = |packet: Option<usize>, frame: &[u8]| -> anyhow::Result<()> {
        let explanation = match router.explain(frame) {
            Err(err @ RouterError::TooShort(_)) => {
                return Err(BadInput(match packet {
                    Some(number) => anyhow::anyhow!("packet {number}: {err}"),
                    None => err.into(),
                })
                .into());
            }
            other => other?,
        };
        if args.json {
            println!("{}", serde_json::to_string(&explanation)?);
        } else {
            println!("{explanation}");
        }
        Ok(())
    };
    match (&args.packet, capture) {
        (Some(digits), _) => explain(None, &parse_hex("--packet", digits).map_err(BadInput)?),
        (None, Some(capture)) => {
            for (index, frame) in capture.enumerate() {
                explain(Some(index + 1), &frame.map_err(BadInput::from)?)?;
            }
            Ok(())
        }
        (None, None) => Ok(()),
    }
}
