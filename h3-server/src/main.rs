//! `h3-server`: the command line of the `h3_server` library. Bad input gives one line on
//! stderr and exit status 2; a failure while serving, one line and status 1.

use std::{io::IsTerminal as _, net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::{ArgGroup, Parser, ValueEnum};
use h3_server::{Identity, Limits, Options, Server, Tickets};
use quic_lb_quinn::{CidIssuer, IssuerConfig};
use router_common::quic_lb::ConfigParams;
use tokio::signal::unix::{SignalKind, signal};
use tracing::info;

/// Exit status for bad input, as clap uses.
const EXIT_BAD_INPUT: u8 = 2;
/// How long a stopping server waits for its clients to hear that it closed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// An HTTP/3 server whose connection IDs and tokens carry its QUIC-LB server ID. Answers
/// every GET with `<name>\n`. Log level: RUST_LOG (default info).
#[derive(Debug, Parser)]
#[command(name = "h3-server", version)]
#[command(group(ArgGroup::new("identity").required(true).args(["cert", "self_signed"])))]
struct Cli {
    /// The server's name: the body of every answer and its `server-name` header.
    #[arg(long)]
    name: String,
    /// Where to listen, e.g. 198.18.0.10:443 or [2001:db8::10]:443 (repeatable).
    #[arg(long = "listen", value_name = "ADDR:PORT", required = true)]
    listen: Vec<SocketAddr>,
    /// QUIC-LB config rotation codepoint (0..=6), as in the router's config.
    #[arg(long, value_name = "N")]
    codepoint: u8,
    /// QUIC-LB server ID length in octets.
    #[arg(long, value_name = "OCTETS")]
    server_id_len: u8,
    /// QUIC-LB nonce length in octets.
    #[arg(long, value_name = "OCTETS")]
    nonce_len: u8,
    /// This server's ID under that codepoint, hex.
    #[arg(long, value_name = "HEX")]
    server_id: String,
    /// The codepoint's key: 32 hex digits or 16 octets, mode 0600. None: plaintext.
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
    /// Certificate chain, PEM.
    #[arg(long, value_name = "PEM", requires = "key")]
    cert: Option<PathBuf>,
    /// The certificate's private key, PEM.
    #[arg(long, value_name = "PEM", requires = "cert")]
    key: Option<PathBuf>,
    /// A new self-signed certificate for NAME (demos; clients must trust it explicitly).
    #[arg(long, value_name = "NAME", conflicts_with = "cert")]
    self_signed: Option<String>,
    /// How session tickets are kept: sessions in memory, or a random key of this process's.
    #[arg(long, value_enum, default_value_t = TicketsArg::Stateful)]
    tickets: TicketsArg,
    /// Tokens without the routable QUIC-LB block (NEW_TOKEN frames are still sent).
    #[arg(long)]
    no_token_prefix: bool,
    /// Demand address validation: a Retry for every connection attempt without a token.
    #[arg(long)]
    retry: bool,
    /// Connections served at once; more are refused.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_connections,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Requests one connection may have open at once.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_requests_per_connection,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    max_requests_per_connection: u32,
    /// Seconds of silence after which a connection is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = Limits::default().idle_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    idle_timeout: u64,
    /// Seconds a request may take to be answered.
    #[arg(long, value_name = "SECONDS", default_value_t = Limits::default().request_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    request_timeout: u64,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TicketsArg {
    Stateful,
    OwnKey,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => {
            // --help and --version
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            let message = err.to_string();
            let line = message.lines().next().unwrap_or_default();
            eprintln!("h3-server: {}", line.trim_start_matches("error: "));
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours only for a person: not in journald, files or a test's pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let options = match options(&cli) {
        Ok(options) => options,
        Err(err) => {
            eprintln!("h3-server: {err:#}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    match serve(options, &cli.listen) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("h3-server: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The server's options from the command line: every check on input is here.
fn options(cli: &Cli) -> anyhow::Result<Options> {
    let server_id = hex::decode(&cli.server_id)
        .ok()
        .filter(|id| !id.is_empty())
        .with_context(|| format!("server ID {:?} is not hex octets", cli.server_id))?;
    anyhow::ensure!(
        server_id.len() == usize::from(cli.server_id_len),
        "server ID {} is {} octets, --server-id-len says {}",
        cli.server_id,
        server_id.len(),
        cli.server_id_len
    );
    let key = cli
        .key_file
        .as_deref()
        .map(h3_server::load_key_file)
        .transpose()?;
    let issuer = CidIssuer::new(IssuerConfig {
        params: ConfigParams::new(cli.codepoint, cli.server_id_len, cli.nonce_len),
        key,
        server_id,
    })
    .context("QUIC-LB config")?;
    let identity = match (&cli.cert, &cli.key, &cli.self_signed) {
        (Some(cert), Some(key), None) => Identity::from_pem_files(cert, key)?,
        (None, None, Some(name)) => Identity::self_signed(name)?,
        // clap's argument groups allow nothing else.
        _ => anyhow::bail!("give --cert and --key, or --self-signed"),
    };
    let options = Options {
        name: cli.name.clone(),
        issuer,
        identity,
        tickets: match cli.tickets {
            TicketsArg::Stateful => Tickets::Stateful,
            TicketsArg::OwnKey => Tickets::OwnKey,
        },
        token_prefix: !cli.no_token_prefix,
        retry: cli.retry,
        limits: Limits {
            max_connections: cli.max_connections,
            max_requests_per_connection: cli.max_requests_per_connection,
            idle_timeout: Duration::from_secs(cli.idle_timeout),
            request_timeout: Duration::from_secs(cli.request_timeout),
        },
    };
    options.check()?;
    Ok(options)
}

/// Serves until SIGINT or SIGTERM.
fn serve(options: Options, listen: &[SocketAddr]) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Handlers first: a signal that comes once the server says it is serving must find them.
        let handler = |kind: SignalKind| {
            signal(kind).with_context(|| format!("cannot handle signal {}", kind.as_raw_value()))
        };
        let (mut interrupt, mut terminate) = (
            handler(SignalKind::interrupt())?,
            handler(SignalKind::terminate())?,
        );
        let name = options.name.clone();
        let server = Server::bind(options, listen)?;
        for addr in server.local_addrs() {
            info!("{name} serving HTTP/3 on {addr}");
        }
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        let counters = server.counters();
        info!(
            "stopping: {} connections, {} resumed, {} with 0-RTT, {} requests answered",
            counters.connections, counters.resumed, counters.zero_rtt_accepted, counters.requests
        );
        server.shutdown(SHUTDOWN_GRACE).await;
        Ok(())
    })
}
