//! `quic-router cid encode|decode`.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use router_common::quic_lb::{ConfigParams, Key};
use router_user::{
    cid::{self, EncodeRequest},
    key,
};

use super::parse_hex;

#[derive(Debug, Subcommand)]
pub enum CidCommand {
    /// Decode a connection ID: config rotation, server ID, nonce and mode.
    Decode(DecodeArgs),
    /// Mint a connection ID for a server ID.
    Encode(EncodeArgs),
}

/// The key, given inline (visible to other local users in the process list) or in a file.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct KeyArgs {
    /// AES-128 key as 32 hex digits. Prefer --key-file: arguments are visible in `ps`.
    #[arg(long, value_name = "HEX")]
    key: Option<String>,
    /// File holding the key (32 hex digits or 16 raw octets), accessible to its owner only.
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
}

impl KeyArgs {
    fn load(&self) -> anyhow::Result<Option<Key>> {
        Ok(match (&self.key, &self.key_file) {
            (Some(hex_digits), _) => Some(key::parse_key_hex(hex_digits).context("--key")?),
            (None, Some(path)) => Some(key::load_key_file(path)?),
            (None, None) => None,
        })
    }
}

#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// Server ID length in octets (1..=15).
    #[arg(long, value_name = "N")]
    server_id_len: u8,
    /// Nonce length in octets (4..=18).
    #[arg(long, value_name = "N")]
    nonce_len: u8,
    #[command(flatten)]
    key: KeyArgs,
    /// One JSON object instead of key=value text.
    #[arg(long)]
    json: bool,
    /// The connection ID in hex.
    #[arg(value_name = "CID_HEX")]
    cid: String,
}

#[derive(Debug, Args)]
pub struct EncodeArgs {
    /// Config rotation codepoint (0..=6).
    #[arg(long, value_name = "C")]
    config_rotation: u8,
    /// Server ID in hex (1..=15 octets).
    #[arg(long, value_name = "HEX")]
    server_id: String,
    /// Nonce in hex (4..=18 octets); random when absent.
    #[arg(long, value_name = "HEX", required_unless_present = "nonce_len")]
    nonce: Option<String>,
    /// Length of the random nonce in octets (4..=18), when --nonce is absent.
    #[arg(long, value_name = "N", conflicts_with = "nonce")]
    nonce_len: Option<u8>,
    #[command(flatten)]
    key: KeyArgs,
    /// Random low five bits in the first octet instead of the CID length.
    #[arg(long)]
    no_length_self_description: bool,
    /// Random octets appended for the server's own use.
    #[arg(long, value_name = "N", default_value_t = 0)]
    server_use_len: u8,
    /// One JSON object instead of the bare connection ID.
    #[arg(long)]
    json: bool,
}

pub fn run(command: CidCommand) -> anyhow::Result<()> {
    match command {
        CidCommand::Decode(args) => decode(args),
        CidCommand::Encode(args) => encode(args),
    }
}

fn decode(args: DecodeArgs) -> anyhow::Result<()> {
    let key = args.key.load()?;
    let cid = parse_hex("the connection ID", &args.cid)?;
    let fields = cid::decode(&cid, args.server_id_len, args.nonce_len, key.as_ref())?;
    if args.json {
        println!("{}", serde_json::to_string(&fields)?);
    } else {
        println!("{fields}");
    }
    Ok(())
}

fn encode(args: EncodeArgs) -> anyhow::Result<()> {
    let key = args.key.load()?;
    let server_id = parse_hex("--server-id", &args.server_id)?;
    let nonce = args
        .nonce
        .as_deref()
        .map(|digits| parse_hex("--nonce", digits))
        .transpose()?;
    let nonce_len = match (&nonce, args.nonce_len) {
        (Some(nonce), _) => nonce.len(),
        (None, Some(len)) => len as usize,
        (None, None) => bail!("give --nonce HEX or --nonce-len N"),
    };
    let params = ConfigParams {
        config_rotation: args.config_rotation,
        server_id_len: u8::try_from(server_id.len()).unwrap_or(u8::MAX),
        nonce_len: u8::try_from(nonce_len).unwrap_or(u8::MAX),
        length_self_description: !args.no_length_self_description,
        server_use_len: args.server_use_len,
    };
    let request = EncodeRequest {
        params,
        server_id: &server_id,
        nonce: nonce.as_deref(),
        key: key.as_ref(),
    };
    let (cid, fields) = cid::encode(&request, &mut rand::rng())?;
    if args.json {
        #[derive(serde::Serialize)]
        struct Encoded<'a> {
            cid: String,
            #[serde(flatten)]
            fields: &'a cid::CidFields,
        }
        let encoded = Encoded {
            cid: cid.to_string(),
            fields: &fields,
        };
        println!("{}", serde_json::to_string(&encoded)?);
    } else {
        println!("{cid}");
    }
    Ok(())
}
