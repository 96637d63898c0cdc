//! quic-router's user-space library: everything the `quic-router` binary does, as types and
//! functions, with one `thiserror` error type per module.
//!
//! - [`router::Router`] owns a loaded router: programs, maps, backend indices and the
//!   installed tables; [`router::PinnedRouter`] reads what a running one left pinned.
//! - [`config`] reads and validates the router config file; [`config_edit`] changes it.
//! - [`controller`] is `quic-router run`: it keeps a router in line with its config file and
//!   answers [`control`] requests.
//! - [`local::register_worker`] gives a local worker's socket to the router.
//! - [`cid`], [`key`] and [`pcap`] serve the operator's commands.
//!
//! ```no_run
//! use router_user::{config, router::{LoadOptions, Router}};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // What the router would do with a packet, without attaching it anywhere.
//! let config = config::load("router.toml".as_ref())?;
//! let mut router = Router::load(&LoadOptions {
//!     limits: config.limits,
//!     trace_verdicts: true,
//!     ..LoadOptions::default()
//! })?;
//! router.install(&config)?;
//! let frame = std::fs::read("frame.bin")?;
//! println!("{}", router.explain(&frame)?);
//! # Ok(())
//! # }
//! ```

pub mod announce;
mod attach;
pub mod cid;
pub mod config;
pub mod config_edit;
pub mod control;
pub mod controller;
mod dataplane;
pub mod decap;
mod ebpf;
mod explain;
pub mod fallback;
pub mod files;
pub mod health;
pub mod key;
pub mod local;
mod mapped;
mod metrics;
pub mod netif;
pub mod pcap;
pub mod pin;
pub mod router;
pub mod runstate;
mod serve;
pub mod tables;
