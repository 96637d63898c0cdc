//! A fleet for the end-to-end tests and the demo: the router (`quic-router run`) in front of
//! quinn servers that mint QUIC-LB CIDs, three hosts or four local workers, and the
//! client-side steps of the scenarios.

use std::{
    collections::BTreeMap,
    net::{IpAddr, SocketAddr},
    os::fd::AsFd as _,
    path::Path,
    time::{Duration, Instant},
};

use quic_lb_quinn::{CidIssuer, IssuerConfig};
use router_common::quic_lb::{ConfigParams, Key};
use tokio::task::JoinSet;

use crate::{
    addresses::{
        CLIENT4_MOVED, ENCAP_SOURCE4, ENCAP_SOURCE6, GUE_PORT, QUIC_PORT, VIP4, VIP6, client,
        tunnel_address, vip_socket,
    },
    config_text::{BackendText, ConfigText},
    deployment::Deployment,
    process::Controller,
    quic::{
        Backend, Certificate, ClientTls, SERVER_NAME, Tickets, client_endpoint, connect_0rtt,
        open_0rtt, request, reuseport_socket_in, socket_in,
    },
    topology::Topology,
};

pub const KEY0: &str = "8f95f09245765f80256934e50c66207f";
pub const KEY1: &str = "fdf726a9893ec05c0632d3956680baf0";
pub const NAMES: [&str; 3] = ["alpha", "beta", "gamma"];
/// Server IDs under codepoint 0 (2 octets) and codepoint 1 (3 octets).
pub const SERVER_IDS_0: [&str; 3] = ["a0a0", "b0b0", "c0c0"];
pub const SERVER_IDS_1: [&str; 3] = ["a1a1a1", "b1b1b1", "c1c1c1"];
/// The local workers, and their server IDs under codepoint 0.
pub const WORKER_NAMES: [&str; 4] = ["worker0", "worker1", "worker2", "worker3"];
pub const WORKER_SERVER_IDS_0: [&str; 4] = ["d0d0", "d1d1", "d2d2", "d3d3"];

/// Where a fleet's servers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Servers {
    /// Three hosts behind the router, in namespaces of their own.
    Hosts,
    /// Four workers in the router's namespace sharing the VIPs' QUIC port through
    /// `SO_REUSEPORT`. `registered`: each registers its sockets with the router, which then
    /// picks the socket by CID; otherwise the kernel picks by its 4-tuple hash.
    LocalWorkers { registered: bool },
    /// Three hosts in subnets of their own behind a gateway (`Topology::routed`), reached
    /// in `delivery` (gue, ipip) to their IPv6 or IPv4 (`outer_v6`) tunnel address by the
    /// kernel's routes, with `quic-router decap` attached; the router's link to the gateway
    /// has `path_mtu`.
    Routed {
        delivery: &'static str,
        outer_v6: bool,
        path_mtu: u32,
    },
    /// One host behind the gateway as in `Routed` (GUE over IPv4), holding all four local
    /// workers: `quic-router decap` on its interface and a `quic-router` of its own (on a
    /// spare interface, `WORKER_IFACE`) whose `SO_REUSEPORT` selection gives each datagram
    /// to its worker; the router in front lists the host with the workers' server IDs.
    RoutedWorkers,
}

/// The interface of the routed host's own quic-router (`Servers::RoutedWorkers`): one that
/// leads nowhere; what its workers need is the socket selection, not an XDP program.
pub const WORKER_IFACE: &str = "qr0";

/// Codepoint 0: four-pass (2 + 6 octets); codepoint 1: four-pass (3 + 5), same CID length.
pub fn params(codepoint: u8) -> ConfigParams {
    let (server_id_len, nonce_len) = if codepoint == 0 { (2, 6) } else { (3, 5) };
    ConfigParams::new(codepoint, server_id_len, nonce_len)
}

pub fn key(hex_key: &str) -> Key {
    Key::from_slice(&hex::decode(hex_key).expect("a hex key")).expect("a 16-octet key")
}

pub fn server_id(hex_id: &str) -> Vec<u8> {
    hex::decode(hex_id).expect("a hex server ID")
}

/// What the client-side steps need of a fleet: its runtime, the clients' namespace and the
/// servers' certificate.
pub trait Clients {
    fn runtime(&self) -> &tokio::runtime::Runtime;
    fn clients_netns(&self) -> String;
    fn certificate(&self) -> &Certificate;
}

impl Clients for Fleet {
    fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }
    fn clients_netns(&self) -> String {
        self.client_netns()
    }
    fn certificate(&self) -> &Certificate {
        &self.certificate
    }
}

/// Waits until `health()` (a router's view, `whose`) is `expected`, for 30 s at most.
pub fn wait_for_health(
    expected: &BTreeMap<String, String>,
    whose: &str,
    mut health: impl FnMut() -> BTreeMap<String, String>,
) {
    let start = Instant::now();
    loop {
        let now = health();
        if &now == expected {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{whose} sees {now:?}, not {expected:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Each checked backend's health in a router's `status --json`.
pub fn health_in(status: &serde_json::Value) -> BTreeMap<String, String> {
    status["health"]
        .as_object()
        .map(|records| {
            records
                .iter()
                .map(|(name, record)| {
                    (
                        name.clone(),
                        record["health"].as_str().unwrap_or("?").into(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Servers behind the router, serving QUIC on both VIPs.
pub struct Fleet {
    pub deployment: Deployment,
    pub runtime: tokio::runtime::Runtime,
    pub backends: Vec<Backend>,
    pub certificate: Certificate,
    pub servers: Servers,
    /// The router's controller (and, `Servers::RoutedWorkers`, the host's).
    pub controllers: Vec<Controller>,
}

impl Fleet {
    /// Three hosts behind the router that `binary` (quic-router) runs; servers keep
    /// `tickets`; with `cid_lifetime`, their CIDs retire after it.
    pub fn new(binary: &Path, tickets: Tickets, cid_lifetime: Option<Duration>) -> Self {
        Self::with_servers(binary, Servers::Hosts, tickets, cid_lifetime)
    }

    pub fn with_servers(
        binary: &Path,
        servers: Servers,
        tickets: Tickets,
        cid_lifetime: Option<Duration>,
    ) -> Self {
        let (deployment, controllers) = start_router(binary, servers);
        let router = deployment.topology.router.name.clone();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let certificate = Certificate::new();
        let (names, server_ids): (&[&str], &[&str]) = match servers {
            Servers::Hosts | Servers::Routed { .. } => (&NAMES, &SERVER_IDS_0),
            Servers::LocalWorkers { .. } | Servers::RoutedWorkers => {
                (&WORKER_NAMES, &WORKER_SERVER_IDS_0)
            }
        };
        let vips = vips();
        let backends = runtime.block_on(async {
            (0..names.len())
                .map(|i| {
                    let mut issuer = issuer(server_ids[i]);
                    if let Some(lifetime) = cid_lifetime {
                        issuer = issuer.with_lifetime(lifetime);
                    }
                    let sockets = vips
                        .iter()
                        .map(|&vip| match servers {
                            Servers::Hosts | Servers::Routed { .. } => socket_in(
                                &deployment.topology.backends[i].name,
                                (vip, QUIC_PORT).into(),
                            ),
                            Servers::LocalWorkers { registered } => {
                                let socket = reuseport_socket_in(&router, (vip, QUIC_PORT).into());
                                if registered {
                                    register(names[i], "r0", &socket);
                                }
                                socket
                            }
                            Servers::RoutedWorkers => {
                                let socket = reuseport_socket_in(
                                    &deployment.topology.backends[0].name,
                                    (vip, QUIC_PORT).into(),
                                );
                                register(names[i], WORKER_IFACE, &socket);
                                socket
                            }
                        })
                        .collect();
                    Backend::on_sockets(names[i], sockets, issuer, tickets, &certificate)
                })
                .collect()
        });
        Self {
            deployment,
            runtime,
            backends,
            certificate,
            servers,
            controllers,
        }
    }

    pub fn client_netns(&self) -> String {
        self.deployment.topology.client.name.clone()
    }

    /// Writes a config and makes the controller apply it.
    pub fn reconfigure(&self, initial_routing: &str, codepoints: &[u8], server_codepoints: &[u8]) {
        reconfigure(
            &self.deployment,
            self.servers,
            initial_routing,
            codepoints,
            server_codepoints,
        );
    }

    pub fn counter(&self, outcome: &str) -> u64 {
        counter(&self.deployment, outcome)
    }

    /// Rewrites the config with `[health]` (`health`: the table's text) and applies it.
    pub fn check_health(&self, health: &str) {
        let text = config_text(&self.deployment, self.servers, "cid", &[0], &[0]);
        self.deployment
            .write_config(&format!("{text}\n[health]\n{health}\n"));
        self.deployment.cli_ok(&["reload", "--iface", "r0"]);
    }

    /// Each checked backend's health, as `status --json` gives it.
    pub fn health(&self) -> BTreeMap<String, String> {
        health_in(&self.deployment.status())
    }

    /// Waits until the backends' health is `expected` (name, health), for 20 s at most;
    /// how long that took.
    pub fn wait_for_health(&self, expected: &[(&str, &str)]) -> Duration {
        let start = Instant::now();
        let expected = expected
            .iter()
            .map(|&(name, health)| (name.into(), health.into()))
            .collect();
        wait_for_health(&expected, "the router", || self.health());
        start.elapsed()
    }

    /// Counter `name` of backend `i`'s decapsulator (`Servers::Routed`).
    pub fn decap_counter(&self, i: usize, name: &str) -> u64 {
        let (status, stdout, stderr) = self.deployment.cli_in(
            &self.deployment.topology.backends[i].name,
            &["decap", "status", "--iface", &format!("t{i}"), "--json"],
        );
        assert_eq!(status, 0, "decap status on backend {i}: {stderr}");
        let status: serde_json::Value = serde_json::from_str(&stdout).expect("status JSON");
        status["counters"]
            .as_array()
            .and_then(|pairs| pairs.iter().find(|pair| pair[0] == name))
            .and_then(|pair| pair[1].as_u64())
            .unwrap_or_else(|| panic!("no counter {name} in {status}"))
    }
}

/// The router in front of `servers`, running with the fleet's config (QUIC-LB codepoint 0,
/// Initials routed by what they carry).
fn start_router(binary: &Path, servers: Servers) -> (Deployment, Vec<Controller>) {
    let deployment = match servers {
        Servers::Hosts => Deployment::new(binary, NAMES.len()),
        Servers::LocalWorkers { .. } => Deployment::new(binary, 0),
        Servers::Routed { path_mtu, .. } => {
            let deployment = Deployment::on(binary, || Topology::routed(NAMES.len(), path_mtu));
            for i in 0..NAMES.len() {
                attach_decapsulator(&deployment, i);
            }
            deployment
        }
        Servers::RoutedWorkers => {
            let deployment = Deployment::on(binary, || Topology::routed(1, 1500));
            attach_decapsulator(&deployment, 0);
            deployment
        }
    };
    deployment.write_key("cr0.key", KEY0);
    deployment.write_key("cr1.key", KEY1);
    let fleet_config = config_text(&deployment, servers, "cid", &[0], &[0]);
    deployment.write_config(&fleet_config);
    if let Servers::LocalWorkers { .. } = servers {
        // The router's host serves the VIPs itself.
        let topology = &deployment.topology;
        topology
            .router
            .ip(&["addr", "add", &format!("{VIP4}/32"), "dev", "lo"]);
        topology
            .router
            .ip(&["-6", "addr", "add", &format!("{VIP6}/128"), "dev", "lo"]);
    }
    let mut controllers = vec![deployment.start(&[])];
    if servers == Servers::RoutedWorkers {
        controllers.push(start_workers_router(&deployment));
    }
    (deployment, controllers)
}

/// The routed host's own quic-router for its local workers (`Servers::RoutedWorkers`), on
/// a spare interface in generic mode, with the local workers' config.
fn start_workers_router(deployment: &Deployment) -> Controller {
    let host = &deployment.topology.backends[0];
    // (This kernel has no dummy interfaces: a veth pair that leads nowhere.)
    host.veth(WORKER_IFACE, [0x02, 0, 0, 0, 0x0f, 0x01]);
    let config = deployment.dir.path().join("workers.toml");
    let text = config_text(
        deployment,
        Servers::LocalWorkers { registered: true },
        "cid",
        &[0],
        &[0],
    );
    std::fs::write(&config, text).expect("write the workers' config");
    deployment.start_in(
        &host.name,
        WORKER_IFACE,
        &[
            "--config",
            config.to_str().expect("UTF-8 path"),
            "--mode",
            "skb",
        ],
    )
}

/// Registers `socket` as local worker `name`'s with the router on `iface`.
fn register(name: &str, iface: &str, socket: &std::net::UdpSocket) {
    router_user::local::register_worker(iface, name, socket.as_fd())
        .unwrap_or_else(|err| panic!("{err}"));
}

/// `quic-router decap attach` on backend `i` of the routed topology: its tunnel addresses,
/// packets from the router's outer source prefixes.
fn attach_decapsulator(deployment: &Deployment, i: usize) {
    let (v4, v6, interface) = (
        tunnel_address(i, false),
        tunnel_address(i, true),
        format!("t{i}"),
    );
    let port = GUE_PORT.to_string();
    let (status, _, stderr) = deployment.cli_in(
        &deployment.topology.backends[i].name,
        &[
            "decap",
            "attach",
            "--iface",
            &interface,
            "--mode",
            "native",
            "--address",
            &v4,
            "--address",
            &v6,
            "--from",
            ENCAP_SOURCE4,
            "--from",
            ENCAP_SOURCE6,
            "--gue-port",
            &port,
        ],
    );
    assert_eq!(status, 0, "decap attach on backend {i}: {stderr}");
}

/// Both VIPs, IPv4 first.
pub fn vips() -> [IpAddr; 2] {
    [VIP4.parse().unwrap(), VIP6.parse().unwrap()]
}

/// The QUIC-LB issuer of the server with `hex_id` under codepoint 0.
pub fn issuer(hex_id: &str) -> CidIssuer {
    CidIssuer::new(IssuerConfig {
        params: params(0),
        key: Some(key(KEY0)),
        server_id: server_id(hex_id),
    })
    .unwrap()
}

fn reconfigure(
    deployment: &Deployment,
    servers: Servers,
    initial_routing: &str,
    codepoints: &[u8],
    server_codepoints: &[u8],
) {
    deployment.write_config(&config_text(
        deployment,
        servers,
        initial_routing,
        codepoints,
        server_codepoints,
    ));
    deployment.cli_ok(&["reload", "--iface", "r0"]);
}

fn counter(deployment: &Deployment, outcome: &str) -> u64 {
    deployment.stats()["outcomes"][outcome]["packets"]
        .as_u64()
        .unwrap()
}

/// HTTP/3 servers (the h3-server example) on the three hosts behind the router, serving both
/// VIPs, each with its own session tickets and, unless told otherwise, routable tokens: for
/// clients we did not write.
pub struct H3Fleet {
    pub deployment: Deployment,
    pub runtime: tokio::runtime::Runtime,
    pub servers: Vec<h3_server::Server>,
    /// The servers' certificate (for [`SERVER_NAME`]), PEM, for clients to trust.
    pub ca: std::path::PathBuf,
    servers_kind: Servers,
    _controllers: Vec<Controller>,
}

impl H3Fleet {
    pub fn new(binary: &Path, tickets: Tickets, token_prefix: bool) -> Self {
        Self::with_servers(binary, Servers::Hosts, tickets, token_prefix)
    }

    /// HTTP/3 servers on the three hosts of `servers` (`Hosts` or `Routed`).
    pub fn with_servers(
        binary: &Path,
        servers_kind: Servers,
        tickets: Tickets,
        token_prefix: bool,
    ) -> Self {
        assert!(
            matches!(servers_kind, Servers::Hosts | Servers::Routed { .. }),
            "HTTP/3 servers run on hosts"
        );
        let (deployment, controllers) = start_router(binary, servers_kind);
        let certificate = Certificate::new();
        let ca = deployment.dir.path().join("ca.pem");
        std::fs::write(&ca, &certificate.pem).expect("write the certificate");
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let servers = (0..NAMES.len())
            .map(|i| {
                let sockets = vips()
                    .iter()
                    .map(|&vip| {
                        socket_in(
                            &deployment.topology.backends[i].name,
                            (vip, QUIC_PORT).into(),
                        )
                    })
                    .collect();
                let options = h3_server::Options {
                    name: NAMES[i].to_owned(),
                    issuer: issuer(SERVER_IDS_0[i]),
                    identity: certificate.identity(),
                    tickets,
                    token_prefix,
                    retry: false,
                    limits: h3_server::Limits::default(),
                };
                let _inside = runtime.enter();
                h3_server::Server::on_sockets(options, sockets)
                    .unwrap_or_else(|err| panic!("{err}"))
            })
            .collect();
        Self {
            deployment,
            runtime,
            servers,
            ca,
            servers_kind,
            _controllers: controllers,
        }
    }

    pub fn reconfigure(&self, initial_routing: &str) {
        reconfigure(
            &self.deployment,
            self.servers_kind,
            initial_routing,
            &[0],
            &[0],
        );
    }

    pub fn counter(&self, outcome: &str) -> u64 {
        counter(&self.deployment, outcome)
    }

    /// `rounds` rounds of the aioquic client from the client's namespace: a first connection
    /// from port `port_base + i`, then a resumption from `port_base + 1000 + i` with the first
    /// one's NEW_TOKEN token and session ticket.
    pub fn aioquic_rounds(&self, rounds: u16, port_base: u16) -> Vec<crate::aioquic::Round> {
        crate::aioquic::ResumeClient {
            server: vip_socket(false),
            server_name: SERVER_NAME,
            ca: &self.ca,
            first_port: port_base,
            second_port: port_base + 1000,
            rounds: u32::from(rounds),
            send_token: true,
        }
        .run_in(&self.deployment.topology.client.name)
    }
}

/// The router's config: listeners (both VIPs), the QUIC-LB `codepoints`, and backends with
/// server IDs under `server_codepoints` (local workers: under codepoint 0).
pub fn config_text(
    deployment: &Deployment,
    servers: Servers,
    initial_routing: &str,
    codepoints: &[u8],
    server_codepoints: &[u8],
) -> String {
    let head = match servers {
        Servers::Routed { .. } | Servers::RoutedWorkers => {
            ConfigText::new().encapsulation(ENCAP_SOURCE4, ENCAP_SOURCE6, GUE_PORT)
        }
        Servers::Hosts | Servers::LocalWorkers { .. } => ConfigText::new(),
    };
    let text = [VIP4, VIP6].iter().fold(head, |text, vip| {
        text.listener(vip, QUIC_PORT, Some(initial_routing))
    });
    let text = codepoints.iter().fold(text, |text, &codepoint| {
        let p = params(codepoint);
        let key_file = format!("cr{codepoint}.key");
        text.quic_lb(
            codepoint,
            p.server_id_len,
            p.nonce_len,
            0,
            Some(key_file.as_ref()),
        )
    });
    let backends: Vec<BackendText> = match servers {
        Servers::RoutedWorkers => vec![WORKER_SERVER_IDS_0.iter().fold(
            BackendText::routed("host0", "gue", &tunnel_address(0, false)),
            |host, id| host.server_id(0, id),
        )],
        Servers::LocalWorkers { .. } => WORKER_NAMES
            .iter()
            .zip(WORKER_SERVER_IDS_0)
            .map(|(name, id)| BackendText::local_worker(name).server_id(0, id))
            .collect(),
        Servers::Hosts | Servers::Routed { .. } => NAMES
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let host = match servers {
                    Servers::Routed {
                        delivery, outer_v6, ..
                    } => BackendText::routed(name, delivery, &tunnel_address(i, outer_v6)),
                    _ => deployment.backend(i, name),
                };
                server_codepoints.iter().fold(host, |backend, &c| {
                    let ids = if c == 0 { SERVER_IDS_0 } else { SERVER_IDS_1 };
                    backend.server_id(c, ids[i])
                })
            })
            .collect(),
    };
    backends
        .iter()
        .fold(text, |text, backend| text.backend(backend))
        .build()
}

/// One connection from `local`: handshake, one request, close. The backend's name.
pub async fn one_exchange(
    netns: String,
    local: SocketAddr,
    server: SocketAddr,
    tls: ClientTls,
) -> Result<String, String> {
    let endpoint = client_endpoint(&netns, local);
    let connection = endpoint
        .connect_with(tls.config(None), server, SERVER_NAME)
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let answer = request(&connection).await?;
    connection.close(0u32.into(), b"done");
    let _ = tokio::time::timeout(Duration::from_secs(2), endpoint.wait_idle()).await;
    Ok(answer.backend)
}

/// What a round of resumptions gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// The second connection reached the server of the first.
    pub same_server: usize,
    /// The servers resumed the TLS session (their session store or ticket key found it).
    pub resumed: u64,
    /// The server accepted the request sent as 0-RTT data.
    pub zero_rtt: usize,
}

impl Round {
    /// What aioquic's resume client saw, as a round.
    pub fn of_aioquic(rounds: &[crate::aioquic::Round]) -> Self {
        Self {
            same_server: rounds.iter().filter(|r| r.first == r.second).count(),
            resumed: rounds.iter().filter(|r| r.resumed).count() as u64,
            zero_rtt: rounds.iter().filter(|r| r.early_data_accepted).count(),
        }
    }
}

/// What a resuming client sends that the first server chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// A CID the first server minted, as its Initial's DCID (a client programmed for it).
    ByCid,
    /// Nothing it was told to: quinn's default client, which sends the first connection's
    /// NEW_TOKEN token in its Initial, with a random DCID.
    ByToken,
}

/// Resumes `clients` sessions: a first connection, then a new one from another port whose
/// Initial carries what `how` says, with the request as 0-RTT data.
pub fn resume(fleet: &Fleet, how: Resume, clients: u16, port_base: u16) -> Round {
    let netns = fleet.client_netns();
    let resumed_before: u64 = fleet.backends.iter().map(Backend::resumed).sum();
    let results = fleet.runtime.block_on(async {
        let mut results = Vec::new();
        for batch in (0..clients).collect::<Vec<_>>().chunks(20) {
            let mut set = JoinSet::new();
            for &i in batch {
                let (netns, tls) = (netns.clone(), ClientTls::new(&fleet.certificate));
                set.spawn(async move {
                    let first = client_endpoint(&netns, client(false, port_base + i));
                    let config = match how {
                        Resume::ByCid => tls.config(None),
                        Resume::ByToken => tls.default_client(),
                    };
                    let (connection, answer) = open_0rtt(&first, config, vip_socket(false)).await?;
                    if how == Resume::ByToken {
                        // The server sends NEW_TOKEN once the handshake is confirmed.
                        tls.tokens().wait_for_token().await?;
                    }
                    connection.close(0u32.into(), b"done");
                    let _ = tokio::time::timeout(Duration::from_secs(2), first.wait_idle()).await;
                    let second = client_endpoint(&netns, client(false, port_base + 1000 + i));
                    let config = match how {
                        Resume::ByCid => tls.config(Some(answer.answer.next_cid.clone())),
                        Resume::ByToken => tls.default_client(),
                    };
                    let resumed = connect_0rtt(&second, config, vip_socket(false)).await?;
                    let _ = tokio::time::timeout(Duration::from_secs(2), second.wait_idle()).await;
                    Ok::<_, String>((answer.answer.backend, resumed))
                });
            }
            while let Some(result) = set.join_next().await {
                results.push(
                    result
                        .unwrap()
                        .unwrap_or_else(|e| panic!("a client failed: {e}")),
                );
            }
        }
        results
    });
    let resumed_after: u64 = fleet.backends.iter().map(Backend::resumed).sum();
    Round {
        same_server: results
            .iter()
            .filter(|(first, second)| *first == second.answer.backend)
            .count(),
        resumed: resumed_after - resumed_before,
        zero_rtt: results
            .iter()
            .filter(|(_, second)| second.zero_rtt_accepted)
            .count(),
    }
}

/// `count` connections from consecutive client ports from `port_base`, 25 at a time: the
/// backend that answered each, or why it failed.
pub fn connections(
    fleet: &impl Clients,
    v6: bool,
    count: u16,
    port_base: u16,
) -> Vec<Result<String, String>> {
    let tls = ClientTls::new(fleet.certificate());
    fleet.runtime().block_on(async {
        let mut results = Vec::new();
        for batch in (0..count).collect::<Vec<_>>().chunks(25) {
            let mut set = JoinSet::new();
            for &i in batch {
                set.spawn(one_exchange(
                    fleet.clients_netns(),
                    client(v6, port_base + i),
                    vip_socket(v6),
                    tls.clone(),
                ));
            }
            while let Some(result) = set.join_next().await {
                results.push(result.unwrap_or_else(|e| Err(e.to_string())));
            }
        }
        results
    })
}

/// Scenario (b): one connection that moves to a new port, then to a new address
/// (`CLIENT4_MOVED`, added to the client); the backend that answered before and after each move.
pub fn migrate(fleet: &Fleet) -> Result<Vec<String>, String> {
    let netns = fleet.client_netns();
    fleet.deployment.topology.client.ip(&[
        "addr",
        "add",
        &format!("{CLIENT4_MOVED}/24"),
        "dev",
        "c0",
    ]);
    let tls = ClientTls::new(&fleet.certificate);
    fleet.runtime.block_on(async {
        let endpoint = client_endpoint(&netns, client(false, 45_000));
        let connection = endpoint
            .connect_with(tls.config(None), vip_socket(false), SERVER_NAME)
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        let mut backends = vec![request(&connection).await?.backend];
        for local in [
            client(false, 45_001),
            SocketAddr::new(CLIENT4_MOVED.parse().expect("address"), 45_002),
        ] {
            endpoint
                .rebind(crate::quic::socket_in(&netns, local))
                .map_err(|e| e.to_string())?;
            // The first request after a move also validates the new path.
            let answer = request(&connection)
                .await
                .map_err(|e| format!("after moving to {local}: {e}"))?;
            backends.push(answer.backend);
        }
        connection.close(0u32.into(), b"done");
        Ok(backends)
    })
}

/// `count` connections from ports from `port_base`, 50 at a time, that each move to another
/// port (`port_base + 1000 + i`) after their first request: for each, the server that
/// answered before the move, or why the request after it failed or went to another server
/// (3 s without an answer: the packets went to a server without the connection).
pub fn migrate_each(fleet: &Fleet, count: u16, port_base: u16) -> Vec<Result<String, String>> {
    let netns = fleet.client_netns();
    let tls = ClientTls::new(&fleet.certificate);
    fleet.runtime.block_on(async {
        let mut results = Vec::new();
        for batch in (0..count).collect::<Vec<_>>().chunks(50) {
            let mut set = JoinSet::new();
            for &i in batch {
                let (netns, tls) = (netns.clone(), tls.clone());
                set.spawn(async move {
                    let endpoint = client_endpoint(&netns, client(false, port_base + i));
                    let connection = endpoint
                        .connect_with(tls.config(None), vip_socket(false), SERVER_NAME)
                        .map_err(|e| e.to_string())?
                        .await
                        .map_err(|e| format!("handshake: {e}"))?;
                    let before = request(&connection).await?.backend;
                    endpoint
                        .rebind(socket_in(&netns, client(false, port_base + 1000 + i)))
                        .map_err(|e| e.to_string())?;
                    let after = tokio::time::timeout(Duration::from_secs(3), request(&connection))
                        .await
                        .map_err(|_| format!("no answer after the move (was on {before})"))??
                        .backend;
                    connection.close(0u32.into(), b"done");
                    if after != before {
                        return Err(format!("moved from {before} to {after}"));
                    }
                    Ok(before)
                });
            }
            while let Some(result) = set.join_next().await {
                results.push(result.unwrap_or_else(|e| Err(e.to_string())));
            }
        }
        results
    })
}

/// A connection kept open.
pub struct OpenConnection {
    pub endpoint: quinn::Endpoint,
    pub connection: quinn::Connection,
    /// The backend that answered its first request.
    pub backend: String,
}

/// `count` connections from ports from `port_base`, each with one request done, left open.
pub fn open_connections(
    fleet: &impl Clients,
    count: u16,
    port_base: u16,
) -> Result<Vec<OpenConnection>, String> {
    let netns = fleet.clients_netns();
    let tls = ClientTls::new(fleet.certificate());
    fleet.runtime().block_on(async {
        let mut open = Vec::new();
        for i in 0..count {
            let endpoint = client_endpoint(&netns, client(false, port_base + i));
            let connection = endpoint
                .connect_with(tls.config(None), vip_socket(false), SERVER_NAME)
                .map_err(|e| e.to_string())?
                .await
                .map_err(|e| e.to_string())?;
            let backend = request(&connection).await?.backend;
            open.push(OpenConnection {
                endpoint,
                connection,
                backend,
            });
        }
        Ok(open)
    })
}

/// One more request on each open connection; an error names the first that failed or
/// changed backends.
pub fn exchange_on(fleet: &impl Clients, open: &[OpenConnection]) -> Result<(), String> {
    fleet.runtime().block_on(async {
        for connection in open {
            let answer = request(&connection.connection)
                .await
                .map_err(|e| format!("a connection on {} broke: {e}", connection.backend))?;
            if answer.backend != connection.backend {
                return Err(format!(
                    "a connection moved from {} to {}",
                    connection.backend, answer.backend
                ));
            }
        }
        Ok(())
    })
}

/// One more request on every open connection at once, each within `within`: for each, its
/// server's name, or why it failed.
pub fn exchange_each(
    fleet: &impl Clients,
    open: &[OpenConnection],
    within: Duration,
) -> Vec<Result<String, String>> {
    fleet.runtime().block_on(async {
        let mut set = JoinSet::new();
        for (i, open) in open.iter().enumerate() {
            let connection = open.connection.clone();
            set.spawn(async move {
                let answer = tokio::time::timeout(within, request(&connection))
                    .await
                    .map_err(|_| format!("no answer within {within:?}"))
                    .and_then(|answer| answer);
                (i, answer.map(|answer| answer.backend))
            });
        }
        let mut results: Vec<Result<String, String>> = vec![Err(String::new()); open.len()];
        while let Some(joined) = set.join_next().await {
            let (i, result) = joined.expect("a request task");
            results[i] = result;
        }
        results
    })
}

/// How many of the open connections answer their next request from their own server
/// within `within`.
pub fn answering(fleet: &impl Clients, open: &[OpenConnection], within: Duration) -> usize {
    exchange_each(fleet, open, within)
        .iter()
        .zip(open)
        .filter(|(result, connection)| result.as_ref() == Ok(&connection.backend))
        .count()
}

/// What draining a backend did.
pub struct Drain {
    pub drained: String,
    /// Open connections on the drained backend when it was drained.
    pub open_on_drained: usize,
    /// The backends of the connections made after.
    pub new_backends: Vec<String>,
    /// The open connections' next exchange.
    pub open_after: Result<(), String>,
}

/// Scenario (d): drains the backend of `open[0]`, makes `new` connections, then one more
/// exchange on every open connection.
pub fn drain(fleet: &Fleet, open: &[OpenConnection], new: u16, port_base: u16) -> Drain {
    let drained = open[0].backend.clone();
    fleet
        .deployment
        .cli_ok(&["backend", "drain", "--iface", "r0", &drained]);
    let new_backends = connections(fleet, false, new, port_base)
        .into_iter()
        .map(|result| result.unwrap_or_else(|e| format!("failed: {e}")))
        .collect();
    Drain {
        open_on_drained: open.iter().filter(|o| o.backend == drained).count(),
        open_after: exchange_on(fleet, open),
        drained,
        new_backends,
    }
}
