//! aioquic, the tests' second, independent QUIC stack: the HTTP/3 client
//! `tests/python/h3_resume_client.py`, run by the interpreter of the virtual environment that
//! `cargo xtask provision` makes, inside a namespace of the test's.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::Value;

use crate::process::{in_netns, run_within};

/// aioquic's virtual environment, relative to the workspace root, where xtask's provisioning
/// puts it (`AIOQUIC_VENV` in xtask/src/provision.rs: change both together).
const VENV: &str = "target/venv/aioquic";
/// The client's own waits are bounded (seconds per step); this is the last resort against a
/// client that hangs anyway: it is killed.
const TIME_PER_ROUND: Duration = Duration::from_secs(30);

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives in the workspace")
}

/// The virtual environment's interpreter; panics, saying how to make it, when it is missing.
pub fn python() -> PathBuf {
    let python = workspace_root().join(VENV).join("bin/python3");
    assert!(
        python.exists(),
        "{} is missing: `cargo xtask provision` installs aioquic there",
        python.display()
    );
    python
}

/// The bare aioquic server script (`tests/python/quic_server.py`).
pub fn quic_server_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/quic_server.py")
}

/// The HTTP/3 resumption client script.
pub fn resume_client_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/h3_resume_client.py")
}

/// What one round of the resume client saw (see the script).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Round {
    /// The body of the first connection's answer, without its newline: the server's name.
    pub first: String,
    /// The same from the second connection.
    pub second: String,
    /// The second connection's Initial carried the first connection's NEW_TOKEN token.
    pub token_sent: bool,
    /// That token.
    pub token: Option<Vec<u8>>,
    /// The second connection resumed the first one's TLS session.
    pub resumed: bool,
    /// The session ticket allowed 0-RTT data, so the second GET went as 0-RTT data.
    pub early_data_offered: bool,
    /// The server accepted the 0-RTT data.
    pub early_data_accepted: bool,
}

/// A run of the resume client.
#[derive(Debug, Clone)]
pub struct ResumeClient<'a> {
    pub server: SocketAddr,
    /// TLS server name, which the server's certificate must carry.
    pub server_name: &'a str,
    /// The certificate to trust, PEM.
    pub ca: &'a Path,
    /// Round `i`'s first connection comes from local port `first_port + i`, its second from
    /// `second_port + i`.
    pub first_port: u16,
    pub second_port: u16,
    pub rounds: u32,
    /// Send the NEW_TOKEN token back (else the second connection carries no token).
    pub send_token: bool,
}

impl ResumeClient<'_> {
    /// Runs the client in network namespace `netns`: one [`Round`] per round. Panics with the
    /// client's error when it fails.
    pub fn run_in(&self, netns: &str) -> Vec<Round> {
        let out = run_within(self.command(netns), TIME_PER_ROUND * self.rounds);
        assert_eq!(
            out.status, 0,
            "the aioquic client failed:\n{}{}",
            out.stderr, out.stdout
        );
        let rounds: Vec<Round> = out.stdout.lines().map(parse_round).collect();
        assert_eq!(
            rounds.len(),
            self.rounds as usize,
            "rounds reported:\n{}",
            out.stdout
        );
        rounds
    }

    fn command(&self, netns: &str) -> Command {
        let (server, first_port, second_port, rounds) = (
            self.server.to_string(),
            self.first_port.to_string(),
            self.second_port.to_string(),
            self.rounds.to_string(),
        );
        let script = resume_client_script();
        let mut args = vec![
            script.to_str().expect("a UTF-8 path"),
            "--connect",
            &server,
            "--server-name",
            self.server_name,
            "--ca",
            self.ca.to_str().expect("a UTF-8 path"),
            "--first-port",
            &first_port,
            "--second-port",
            &second_port,
            "--rounds",
            &rounds,
        ];
        if !self.send_token {
            args.push("--no-token");
        }
        in_netns(&python(), netns, &args)
    }
}

fn parse_round(line: &str) -> Round {
    let value: Value =
        serde_json::from_str(line).unwrap_or_else(|err| panic!("{line:?} is not JSON: {err}"));
    let text = |key: &str| {
        value[key]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} in {line}"))
            .to_owned()
    };
    let flag = |key: &str| {
        value[key]
            .as_bool()
            .unwrap_or_else(|| panic!("no {key} in {line}"))
    };
    Round {
        first: text("first"),
        second: text("second"),
        token_sent: flag("token_sent"),
        token: value["token"]
            .as_str()
            .map(|token| hex::decode(token).unwrap_or_else(|err| panic!("token in {line}: {err}"))),
        resumed: flag("resumed"),
        early_data_offered: flag("early_data_offered"),
        early_data_accepted: flag("early_data_accepted"),
    }
}
