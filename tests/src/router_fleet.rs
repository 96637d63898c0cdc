//! A fleet of routers behind ECMP (issue 15; README "Running a fleet"): clients behind an
//! upstream router that runs BIRD with multipath (ECMP over the L4 hash), three quic-router
//! hosts each running BIRD and a controller that announces the VIPs through it, and three
//! quinn servers on one segment (a bridge) that every router reaches. The servers answer
//! through the upstream router directly (direct server return), so the way back does not
//! depend on which router is up.
//!
//! ```text
//!  client --- upstream ==(e0, e1, e2)== router0..2 --- switch (bridge) --- backends 0..2
//!                 `------------------------------------------'  (answers to clients)
//! ```

use std::{
    collections::HashMap,
    fs::File,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{
    addresses::{CLIENT_NET, QUIC_PORT, VIP4, VIP6, client},
    config_text::{BackendText, ConfigText},
    fleet::{Clients, KEY0, NAMES, SERVER_IDS_0, health_in, issuer, params, vips, wait_for_health},
    mounts::PrivateMounts,
    netns::{Netns, link},
    packet::{QUIC_V1, initial},
    process::{Controller, in_netns, quic_router_text},
    quic::{Backend, Certificate, Tickets, socket_in},
    topology::{add_subnet, hold_vips, route_through},
};

/// BIRD 2 as Debian installs it (the bird2 package).
const BIRD: &str = "/usr/sbin/bird";
/// Routers in the fleet.
pub const ROUTERS: usize = 3;
/// The kernel table the controllers keep the VIPs' routes in, which BIRD announces.
pub const ANNOUNCE_TABLE: u32 = 100;
/// The port of the loss meter's listener (`LossMeter`), next to QUIC's.
pub const METER_PORT: u16 = 4433;
const UPSTREAM_AS: u32 = 65000;
const ROUTER_AS: u32 = 65001;
/// The servers' segment: router `k` is .(1+k), backend `i` .(11+i), the upstream .254.
const SEGMENT_NET: usize = 70;

/// The routers' segment with the upstream router (a bridge of its own, so that a router
/// that dies leaves the upstream's link up, as behind a switch; the bridge floods the frames
/// for a dead router's MAC to the others, as a switch does): the upstream is .1, router `k`
/// .(2+k) (and the same in 2001:db8:60::/64).
const UPLINK_NET: usize = 60;

fn uplink_host(k: usize) -> u8 {
    2 + k as u8
}

/// Router `k`'s interface toward the upstream router, where its XDP program runs (each
/// router's own name: their pins and run directories share the test's mounts).
pub fn uplink(k: usize) -> String {
    format!("e{k}")
}

/// A BIRD daemon in a namespace, killed on drop.
pub struct Bird {
    child: Child,
    pub socket: PathBuf,
    pub log: PathBuf,
}

impl Bird {
    /// Starts `bird` in the foreground in `netns` with `config` (written to `dir/name.conf`).
    fn start(netns: &str, dir: &Path, name: &str, config: &str) -> Self {
        let path = dir.join(format!("{name}.conf"));
        std::fs::write(&path, config).expect("write BIRD's config");
        let socket = dir.join(format!("{name}.ctl"));
        let log = dir.join(format!("{name}.log"));
        let child = in_netns(
            Path::new(BIRD),
            netns,
            &[
                "-f",
                "-c",
                path.to_str().expect("UTF-8 path"),
                "-s",
                socket.to_str().expect("UTF-8 path"),
                "-P",
                dir.join(format!("{name}.pid"))
                    .to_str()
                    .expect("UTF-8 path"),
            ],
        )
        .stdout(Stdio::null())
        .stderr(File::create(&log).expect("BIRD's log"))
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start bird (the bird2 package): {err}"));
        Self { child, socket, log }
    }

    /// What `birdc ARGS` prints (for failure messages).
    pub fn show(&self, args: &[&str]) -> String {
        let output = std::process::Command::new("birdc")
            .arg("-s")
            .arg(&self.socket)
            .args(args)
            .output();
        output.map_or_else(
            |err| format!("birdc: {err}"),
            |output| String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    }

    /// SIGKILL, as a host that loses power.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The upstream router's BIRD: a session per router and family, routes into the kernel with
/// all equal paths merged (ECMP).
fn upstream_bird() -> String {
    let mut config = format!(
        "router id 198.18.{CLIENT_NET}.1;\n\
         log stderr all;\n\
         protocol device {{ scan time 1; }}\n\
         protocol kernel {{ ipv4 {{ import none; export all; }}; merge paths on; }}\n\
         protocol kernel {{ ipv6 {{ import none; export all; }}; merge paths on; }}\n"
    );
    for k in 0..ROUTERS {
        let host = uplink_host(k);
        for (family, neighbor) in [
            ("ipv4", format!("198.18.{UPLINK_NET}.{host}")),
            ("ipv6", format!("2001:db8:{UPLINK_NET}::{host}")),
        ] {
            config += &format!(
                "protocol bgp router{k}_{family} {{\n  local as {UPSTREAM_AS};\n  neighbor {neighbor} as {ROUTER_AS};\n  hold time 3; keepalive time 1; connect retry time 1;\n  {family} {{ import all; export none; }};\n}}\n"
            );
        }
    }
    config
}

/// A quic-router host's BIRD (README "Running a fleet"): what the controller keeps in the
/// announce table, announced to the upstream router, nothing taken from it.
pub fn router_bird(k: usize) -> String {
    let (net, host) = (UPLINK_NET, uplink_host(k));
    format!(
        "router id 198.18.{net}.{host};\n\
         log stderr all;\n\
         protocol device {{ }}\n\
         ipv4 table vips4;\n\
         ipv6 table vips6;\n\
         # The VIPs quic-router announces: its routes (protocol 113) in kernel table {ANNOUNCE_TABLE}.\n\
         protocol kernel quic_router4 {{ kernel table {ANNOUNCE_TABLE}; learn; ipv4 {{ table vips4; import all; export none; }}; }}\n\
         protocol kernel quic_router6 {{ kernel table {ANNOUNCE_TABLE}; learn; ipv6 {{ table vips6; import all; export none; }}; }}\n\
         protocol bgp upstream4 {{\n  local as {ROUTER_AS};\n  neighbor 198.18.{net}.1 as {UPSTREAM_AS};\n  hold time 3; keepalive time 1; connect retry time 1;\n  ipv4 {{ table vips4; import none; export all; next hop self; }};\n}}\n\
         protocol bgp upstream6 {{\n  local as {ROUTER_AS};\n  neighbor 2001:db8:{net}::1 as {UPSTREAM_AS};\n  hold time 3; keepalive time 1; connect retry time 1;\n  ipv6 {{ table vips6; import none; export all; next hop self; }};\n}}\n"
    )
}

/// How the fleet picks a connection's server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routing {
    /// QUIC-LB: the servers' connection IDs name them, and every router routes alike.
    QuicLb,
    /// What a balancer without QUIC-LB risks: the servers' connection IDs name nothing, so
    /// every packet goes by the 4-tuple hash, and each router's hash differs (its config
    /// names the servers its own way: another Maglev table, as another seed would give).
    HashPerRouter,
}

/// One router host: its namespace, BIRD and controller.
pub struct RouterHost {
    pub controller: Option<Controller>,
    pub bird: Option<Bird>,
    pub netns: Netns,
    /// Its link to the upstream is gone (powered off).
    pub off: bool,
}

/// The fleet: namespaces, daemons and servers; everything goes on drop (processes first).
pub struct RouterFleet {
    pub routing: Routing,
    pub routers: Vec<RouterHost>,
    upstream_bird: Bird,
    pub servers: Vec<Backend>,
    pub runtime: tokio::runtime::Runtime,
    pub certificate: Certificate,
    pub client: Netns,
    pub upstream: Netns,
    pub switch: Netns,
    pub backends: Vec<Netns>,
    pub dir: tempfile::TempDir,
    binary: PathBuf,
    // Dropped last: the routers' pins live in this mount namespace.
    _mounts: PrivateMounts,
}

impl Clients for RouterFleet {
    fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.runtime
    }
    fn clients_netns(&self) -> String {
        self.client.name.clone()
    }
    fn certificate(&self) -> &Certificate {
        &self.certificate
    }
}

fn sysctl(netns: &Netns, setting: &str) {
    netns.exec("sysctl", &["-qw", setting]);
}

impl RouterFleet {
    /// The fleet with `binary` (quic-router) on every router, each announcing the VIPs, and
    /// the upstream router's routes to them through all three.
    pub fn new(binary: &Path, routing: Routing) -> Self {
        let mounts = PrivateMounts::enter();
        let dir = tempfile::tempdir().expect("temporary directory");
        let client = Netns::create("client");
        let upstream = Netns::create("upstream");
        let switch = Netns::create("switch");
        // br0: the servers' segment; bu: the routers' uplinks.
        for bridge in ["br0", "bu"] {
            switch.ip(&["link", "add", bridge, "type", "bridge"]);
            switch.ip(&["link", "set", bridge, "up"]);
        }
        let into_switch = |netns: &Netns, interface: &str, port: &str, bridge: &str| {
            link(netns, interface, &switch, port, 1);
            switch.ip(&["link", "set", port, "master", bridge]);
        };

        link(&client, "c0", &upstream, "uc", 1);
        add_subnet(&client, "c0", CLIENT_NET, 2);
        add_subnet(&upstream, "uc", CLIENT_NET, 1);
        route_through(&client, CLIENT_NET, 1);
        // Packets sent by a local socket lose CHECKSUM_PARTIAL on a native redirect.
        client.exec("ethtool", &["-K", "c0", "tx", "off"]);
        for setting in [
            "net.ipv4.ip_forward=1",
            "net.ipv6.conf.all.forwarding=1",
            // ECMP over the 4-tuple: each flow keeps its router while the routes stay.
            "net.ipv4.fib_multipath_hash_policy=1",
            "net.ipv6.fib_multipath_hash_policy=1",
        ] {
            sysctl(&upstream, setting);
        }
        into_switch(&upstream, "ub", "s-ub", "br0");
        into_switch(&upstream, "uu", "s-uu", "bu");
        add_subnet(&upstream, "uu", UPLINK_NET, 1);
        add_subnet(&upstream, "ub", SEGMENT_NET, 254);

        let backends: Vec<Netns> = (0..NAMES.len())
            .map(|i| {
                let backend = Netns::create(&format!("backend{i}"));
                into_switch(&backend, "b0", &format!("s-b{i}"), "br0");
                add_subnet(&backend, "b0", SEGMENT_NET, 11 + i as u8);
                // Answers go to the clients through the upstream router, whichever router
                // brought the packet.
                route_through(&backend, SEGMENT_NET, 254);
                hold_vips(&backend, "b0");
                backend
            })
            .collect();

        let routers: Vec<Netns> = (0..ROUTERS)
            .map(|k| {
                let router = Netns::create(&format!("router{k}"));
                into_switch(&router, &uplink(k), &format!("s-u{k}"), "bu");
                add_subnet(&router, &uplink(k), UPLINK_NET, uplink_host(k));
                into_switch(&router, "b0", &format!("s-r{k}"), "br0");
                add_subnet(&router, "b0", SEGMENT_NET, 1 + k as u8);
                // Native redirects into a veth are delivered only with GRO on its peer.
                switch.exec("ethtool", &["-K", &format!("s-r{k}"), "gro", "on"]);
                router
            })
            .collect();

        let upstream_bird = Bird::start(&upstream.name, dir.path(), "upstream", &upstream_bird());
        crate::write_key(dir.path(), "cr0.key", KEY0);
        let mut fleet = Self {
            routing,
            routers: Vec::new(),
            upstream_bird,
            servers: Vec::new(),
            runtime: tokio::runtime::Runtime::new().expect("runtime"),
            certificate: Certificate::new(),
            client,
            upstream,
            switch,
            backends,
            dir,
            binary: binary.to_owned(),
            _mounts: mounts,
        };
        for (k, netns) in routers.into_iter().enumerate() {
            std::fs::write(fleet.config_path(k), fleet.config_text(k)).expect("write the config");
            let bird = Bird::start(
                &netns.name,
                fleet.dir.path(),
                &format!("router{k}"),
                &router_bird(k),
            );
            fleet.routers.push(RouterHost {
                controller: None,
                bird: Some(bird),
                netns,
                off: false,
            });
            fleet.start_controller(k, &fleet.binary.clone(), &[]);
        }
        let names = fleet
            .backends
            .iter()
            .map(|b| b.name.clone())
            .collect::<Vec<_>>();
        fleet.servers = fleet.runtime.block_on(async {
            names
                .iter()
                .enumerate()
                .map(|(i, netns)| {
                    let start = match routing {
                        Routing::QuicLb => Backend::start,
                        Routing::HashPerRouter => Backend::start_without_quic_lb,
                    };
                    start(
                        netns,
                        NAMES[i],
                        &vips(),
                        issuer(SERVER_IDS_0[i]),
                        Tickets::Stateful,
                        &fleet.certificate,
                    )
                })
                .collect()
        });
        fleet.wait_for_paths(ROUTERS);
        // Every router has seen every server answer: no fallback table changes under the
        // tests' connections.
        fleet.wait_for_health(&[("alpha", "up"), ("beta", "up"), ("gamma", "up")]);
        fleet
    }

    /// Router `k`'s config file.
    pub fn config_path(&self, k: usize) -> PathBuf {
        self.dir.path().join(format!("router{k}.toml"))
    }

    /// Router `k`'s config: both VIPs on QUIC's port and the loss meter's port, codepoint 0
    /// (four-pass), the three servers on the segment, health checks, and the VIPs announced
    /// through table [`ANNOUNCE_TABLE`]. The same for every router with QUIC-LB; with
    /// [`Routing::HashPerRouter`], the servers named each router's own way.
    fn config_text(&self, k: usize) -> String {
        let p = params(0);
        let mut text = ConfigText::new()
            .listener(VIP4, QUIC_PORT, None)
            .listener(VIP6, QUIC_PORT, None)
            .listener(VIP4, METER_PORT, None)
            .quic_lb(0, p.server_id_len, p.nonce_len, 0, Some("cr0.key".as_ref()));
        for (i, backend) in self.backends.iter().enumerate() {
            let name = self.backend_name(k, NAMES[i]);
            text = text.backend(
                &BackendText::host(&name, "b0", &backend.mac("b0")).server_id(0, SERVER_IDS_0[i]),
            );
        }
        format!(
            "{}\n[health]\ninterval_ms = 500\n\n[announce]\ntable = {ANNOUNCE_TABLE}\ndrain_ms = 1000\n",
            text.build()
        )
    }

    /// What router `k`'s config calls server `name`: its name, or with
    /// [`Routing::HashPerRouter`] a name of the router's own (a backend's slots in the
    /// fallback table follow from its name: other names, another table).
    pub fn backend_name(&self, k: usize, name: &str) -> String {
        match self.routing {
            Routing::QuicLb => name.to_owned(),
            Routing::HashPerRouter => format!("{name}.router{k}"),
        }
    }

    /// Starts router `k`'s controller with `binary` (native XDP on its uplink) and `extra`
    /// arguments.
    pub fn start_controller(&mut self, k: usize, binary: &Path, extra: &[&str]) {
        static STARTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let start = STARTS.fetch_add(1, Ordering::Relaxed);
        let log = self.dir.path().join(format!("controller{k}-{start}.log"));
        let config = self.config_path(k);
        let mut args = vec![
            "--config",
            config.to_str().expect("UTF-8 path"),
            "--mode",
            "native",
        ];
        args.extend_from_slice(extra);
        let controller =
            Controller::start(binary, &self.routers[k].netns.name, &uplink(k), &args, log);
        self.routers[k].controller = Some(controller);
    }

    /// `quic-router ARGS` on router `k`: (status, stdout, stderr).
    pub fn cli(&self, k: usize, args: &[&str]) -> (i32, String, String) {
        quic_router_text(&self.binary, &self.routers[k].netns.name, args)
    }

    pub fn cli_ok(&self, k: usize, args: &[&str]) -> String {
        let (status, stdout, stderr) = self.cli(k, args);
        assert_eq!(
            status,
            0,
            "quic-router {} on router{k}: {stderr}",
            args.join(" ")
        );
        stdout
    }

    /// Router `k`'s `status --json`.
    pub fn status(&self, k: usize) -> serde_json::Value {
        let status = self.cli_ok(k, &["status", "--iface", &uplink(k), "--json"]);
        serde_json::from_str(&status).expect("status JSON")
    }

    /// Waits until every router whose controller runs sees the servers' health as
    /// `expected` (server, health); how long that took.
    pub fn wait_for_health(&self, expected: &[(&str, &str)]) -> Duration {
        let start = Instant::now();
        let running = (0..ROUTERS).filter(|&k| self.routers[k].controller.is_some());
        for k in running {
            let expected = expected
                .iter()
                .map(|&(name, health)| (self.backend_name(k, name), health.into()))
                .collect();
            wait_for_health(&expected, &format!("router{k}"), || {
                health_in(&self.status(k))
            });
        }
        start.elapsed()
    }

    /// Router `k`'s counter of `outcome`.
    pub fn counter(&self, k: usize, outcome: &str) -> u64 {
        let stats = self.cli_ok(k, &["stats", "--iface", &uplink(k), "--json"]);
        let stats: serde_json::Value = serde_json::from_str(&stats).expect("stats JSON");
        stats["outcomes"][outcome]["packets"]
            .as_u64()
            .expect("a counter")
    }

    /// Packets router `k` sent on to a server.
    pub fn routed(&self, k: usize) -> u64 {
        [
            "routed_by_server_id",
            "routed_by_token",
            "routed_by_token_flow",
            "initial_hashed",
            "unknown_server_id",
            "unroutable_codepoint",
            "unroutable_length",
        ]
        .iter()
        .map(|outcome| self.counter(k, outcome))
        .sum()
    }

    /// The next hops of the upstream router's route to `vip` (its FIB, as packets see it).
    pub fn paths(&self, vip: &str) -> usize {
        let output = std::process::Command::new("ip")
            .args(["-n", &self.upstream.name])
            .arg(if vip.contains(':') { "-6" } else { "-4" })
            .args(["route", "show", vip])
            .output()
            .expect("ip route");
        let text = String::from_utf8_lossy(&output.stdout);
        let hops = text.matches("nexthop via").count();
        if hops > 0 {
            hops
        } else {
            usize::from(text.contains(" via "))
        }
    }

    /// Waits until the upstream router routes both VIPs through `count` routers; how long
    /// that took.
    pub fn wait_for_paths(&self, count: usize) -> Duration {
        let start = Instant::now();
        loop {
            if self.paths(VIP4) == count && self.paths(VIP6) == count {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the upstream routes the VIPs through {} and {} routers, not {count}; {}",
                self.paths(VIP4),
                self.paths(VIP6),
                self.upstream_bird.show(&["show", "protocols"])
                    + &self.upstream_bird.show(&["show", "route", "all"])
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Router `k` loses power: its daemons die and its links go; the upstream router's link
    /// (to the switch) stays up, so that it learns only from BGP's hold timer.
    pub fn power_off(&mut self, k: usize) {
        let router = &mut self.routers[k];
        // The links first: a host without power sends nothing more, not even the TCP
        // resets of its BGP sessions.
        router.netns.ip(&["link", "del", &uplink(k)]);
        router.netns.ip(&["link", "del", "b0"]);
        if let Some(mut bird) = router.bird.take() {
            bird.kill();
        }
        if let Some(controller) = router.controller.take() {
            controller.kill();
        }
        router.off = true;
    }
}

/// A paced stream of numbered datagrams from the client to the meter's listener, from many
/// ports (so that ECMP spreads them over the routers), recorded where the servers receive
/// them: what a router failure loses.
pub struct LossMeter {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    /// How many times each datagram arrived, by number.
    received: Arc<Mutex<HashMap<u64, u32>>>,
    interval: Duration,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for LossMeter {
    /// A meter a test dropped without `stop` (it panicked) stops too; its threads end.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What a loss meter saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loss {
    pub sent: u64,
    pub lost: u64,
    /// Datagrams that arrived more than once (counted once each extra time).
    pub duplicated: u64,
    /// The longest time all of one flow's datagrams were lost.
    pub longest_gap: Duration,
}

/// The loss meter's flows (client ports from 52,000), taken in turn.
const METER_FLOWS: u16 = 32;

impl LossMeter {
    /// Starts recording on every server and sending a datagram every `interval`.
    pub fn start(fleet: &RouterFleet, interval: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let received = Arc::new(Mutex::new(HashMap::new()));
        let mut threads = Vec::new();
        let meter = SocketAddr::new(VIP4.parse().expect("VIP"), METER_PORT);
        for backend in &fleet.backends {
            let socket = socket_in(&backend.name, meter);
            socket
                .set_read_timeout(Some(Duration::from_millis(20)))
                .expect("timeout");
            let (stop, received) = (stop.clone(), received.clone());
            threads.push(std::thread::spawn(move || {
                let mut buffer = [0u8; 2048];
                // Records until stopped, then what is still in flight.
                let mut idle_after_stop = 0;
                while idle_after_stop < 10 {
                    match socket.recv(&mut buffer) {
                        Ok(length) if length >= 14 => {
                            let number = u64::from_be_bytes(buffer[6..14].try_into().unwrap());
                            *received.lock().unwrap().entry(number).or_insert(0) += 1;
                        }
                        Ok(_) => {}
                        Err(_) if stop.load(Ordering::Relaxed) => idle_after_stop += 1,
                        Err(_) => {}
                    }
                }
            }));
        }
        let sockets: Vec<_> = (0..METER_FLOWS)
            .map(|i| socket_in(&fleet.client.name, client(false, 52_000 + i)))
            .collect();
        let (stop_sending, counted) = (stop.clone(), sent.clone());
        threads.push(std::thread::spawn(move || {
            let mut next = Instant::now();
            let mut n: u64 = 0;
            while !stop_sending.load(Ordering::Relaxed) {
                // An Initial that names no server (its DCID is its number): each flow's
                // server is its hash's.
                let datagram = initial(0xc0, QUIC_V1, &n.to_be_bytes(), &[1; 8], &[], 1100);
                let flow = &sockets[(n % u64::from(METER_FLOWS)) as usize];
                if flow.send_to(&datagram, meter).is_err() {
                    panic!("the loss meter cannot send");
                }
                n += 1;
                counted.store(n, Ordering::Relaxed);
                next += interval;
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        }));
        Self {
            stop,
            sent,
            received,
            interval,
            threads,
        }
    }

    /// Stops, waits for what is in flight, and tells what was lost.
    pub fn stop(mut self) -> Loss {
        self.stop.store(true, Ordering::Relaxed);
        for thread in std::mem::take(&mut self.threads) {
            thread.join().expect("meter thread");
        }
        let sent = self.sent.load(Ordering::Relaxed);
        let received = self.received.lock().unwrap();
        let lost = (0..sent).filter(|n| !received.contains_key(n)).count() as u64;
        let duplicated = received.values().map(|&times| u64::from(times - 1)).sum();
        // Each flow's longest run of lost datagrams, in time.
        let flows = u64::from(METER_FLOWS);
        let longest_run = (0..flows)
            .map(|flow| {
                let (mut run, mut longest) = (0u64, 0u64);
                for n in (flow..sent).step_by(flows as usize) {
                    run = if received.contains_key(&n) {
                        0
                    } else {
                        run + 1
                    };
                    longest = longest.max(run);
                }
                longest
            })
            .max()
            .unwrap_or(0);
        Loss {
            sent,
            lost,
            duplicated,
            longest_gap: self.interval * (longest_run * flows) as u32,
        }
    }
}
