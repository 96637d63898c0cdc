//! A router deployment for end-to-end tests: the topology, a private mount namespace for
//! the router's pins, a config directory, and `quic-router` run as the operator would.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
};

use serde_json::Value;

use crate::{
    config_text::BackendText,
    mounts::PrivateMounts,
    process::{Controller, quic_router_text},
    topology::Topology,
};

static NEXT_LOG: AtomicU32 = AtomicU32::new(0);

pub struct Deployment {
    pub topology: Topology,
    pub dir: tempfile::TempDir,
    binary: PathBuf,
    // Dropped last: the pinned router lives in this mount namespace.
    _mounts: PrivateMounts,
}

impl Deployment {
    /// A topology with `backends` backends; `binary` is the `quic-router` to run.
    pub fn new(binary: &Path, backends: usize) -> Self {
        Self::on(binary, || Topology::new(backends))
    }

    /// A deployment on the topology `topology` makes, inside the deployment's private mounts
    /// (where the namespaces' mounts then live, and go).
    pub fn on(binary: &Path, topology: impl FnOnce() -> Topology) -> Self {
        let mounts = PrivateMounts::enter();
        Self {
            topology: topology(),
            dir: tempfile::tempdir().expect("temporary directory"),
            binary: binary.to_owned(),
            _mounts: mounts,
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("router.toml")
    }

    /// Writes the config atomically (as an editor or config management would).
    pub fn write_config(&self, text: &str) {
        let temporary = self.dir.path().join("router.toml.tmp");
        fs::write(&temporary, text).expect("write config");
        fs::rename(&temporary, self.config_path()).expect("install config");
    }

    /// Writes a key file (mode 0600) next to the config: its path.
    pub fn write_key(&self, name: &str, hex: &str) -> PathBuf {
        crate::write_key(self.dir.path(), name, hex)
    }

    /// An active `[[backend]]` `name` for backend `i` of the topology (reached through
    /// `r{i+1}`), without server IDs yet.
    pub fn backend(&self, i: usize, name: &str) -> BackendText {
        BackendText::host(name, &format!("r{}", i + 1), &self.topology.backend_mac(i))
    }

    /// `quic-router run --iface r0 --config ... --mode native EXTRA` in the router namespace.
    pub fn start(&self, extra: &[&str]) -> Controller {
        let config = self.config_path();
        let mut args = vec![
            "--config",
            config.to_str().expect("UTF-8 path"),
            "--mode",
            "native",
        ];
        args.extend_from_slice(extra);
        self.start_in(&self.topology.router.name, "r0", &args)
    }

    /// `quic-router run --iface IFACE ARGS` in namespace `netns`, logging next to the config.
    pub fn start_in(&self, netns: &str, iface: &str, args: &[&str]) -> Controller {
        let log = self.dir.path().join(format!(
            "controller-{}.log",
            NEXT_LOG.fetch_add(1, Ordering::Relaxed)
        ));
        Controller::start(&self.binary, netns, iface, args, log)
    }

    /// `quic-router run --iface IFACE --mode native --config ...` in the router's namespace, in
    /// the foreground: for starts that are refused. (status, stdout, stderr).
    pub fn run_until_exit(&self, iface: &str) -> (i32, String, String) {
        let config = self.config_path();
        self.cli(&[
            "run",
            "--iface",
            iface,
            "--mode",
            "native",
            "--config",
            config.to_str().expect("UTF-8 path"),
        ])
    }

    /// The arguments of `quic-router backend add` for a host `name` behind `interface`, next
    /// hop `next_hop_mac`, with one server ID (`CODEPOINT:HEX`).
    pub fn add_host_args<'a>(
        name: &'a str,
        interface: &'a str,
        next_hop_mac: &'a str,
        server_id: &'a str,
    ) -> [&'a str; 12] {
        [
            "backend",
            "add",
            "--iface",
            "r0",
            "--name",
            name,
            "--interface",
            interface,
            "--next-hop-mac",
            next_hop_mac,
            "--server-id",
            server_id,
        ]
    }

    /// `quic-router backend add` of a host, as [`add_host_args`](Self::add_host_args) gives
    /// it, in the router's namespace: (status, stdout, stderr).
    pub fn add_host(
        &self,
        name: &str,
        interface: &str,
        next_hop_mac: &str,
        server_id: &str,
    ) -> (i32, String, String) {
        self.cli(&Self::add_host_args(
            name,
            interface,
            next_hop_mac,
            server_id,
        ))
    }

    /// `quic-router ARGS` in the router's namespace: (status, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        self.cli_in(&self.topology.router.name, args)
    }

    /// `quic-router ARGS` in namespace `netns` (a backend's, say): (status, stdout, stderr).
    pub fn cli_in(&self, netns: &str, args: &[&str]) -> (i32, String, String) {
        quic_router_text(&self.binary, netns, args)
    }

    pub fn cli_ok(&self, args: &[&str]) -> String {
        let (status, stdout, stderr) = self.cli(args);
        assert_eq!(status, 0, "quic-router {args:?}: {stderr}");
        stdout
    }

    pub fn status(&self) -> Value {
        serde_json::from_str(&self.cli_ok(&["status", "--iface", "r0", "--json"]))
            .expect("status JSON")
    }

    pub fn stats(&self) -> Value {
        serde_json::from_str(&self.cli_ok(&["stats", "--iface", "r0", "--json"]))
            .expect("stats JSON")
    }
}
