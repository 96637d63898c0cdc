//! The controller with real attachment and real UDP traffic in network namespaces: backend
//! changes while traffic flows, SIGKILL without losing a packet, adoption on restart, config
//! reloads (valid and not), metrics, stats, status, detach. Needs root.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    os::unix::fs::PermissionsExt as _,
    path::Path,
    thread,
    time::{Duration, Instant},
};

use integration_tests::{
    addresses::{QUIC_PORT, VIP4},
    config_text::{BackendText, ConfigText},
    deployment::Deployment,
    fixtures::mint,
    packet::{QUIC_V1, initial, short_header, v1},
    process::scrape,
    traffic::{self, Receiver, Sender, Tag},
};
use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_quic-router");
const KEY: &str = "0123456789abcdef0f1e2d3c4b5a6978";

/// The deployment with the helpers these tests share.
struct Setup(Deployment);

impl std::ops::Deref for Setup {
    type Target = Deployment;
    fn deref(&self) -> &Deployment {
        &self.0
    }
}

impl Setup {
    fn new(backends: usize) -> Self {
        let deployment = Deployment::new(Path::new(BINARY), backends);
        deployment.write_key("cr1.key", KEY);
        Self(deployment)
    }

    /// Listener, codepoint 0 (plaintext, 2-octet server IDs), with `codepoint1` also
    /// codepoint 1 (four-pass, 3-octet server IDs), and the given backends.
    fn config_text(&self, codepoint1: bool, backends: &[BackendText]) -> String {
        let mut text = ConfigText::new()
            .listener(VIP4, QUIC_PORT, None)
            .quic_lb(0, 2, 6, 0, None);
        if codepoint1 {
            text = text.quic_lb(1, 3, 5, 0, Some("cr1.key".as_ref()));
        }
        backends
            .iter()
            .fold(text, |text, backend| text.backend(backend))
            .build()
    }

    fn receivers(&self) -> Vec<Receiver> {
        (0..self.topology.backends.len())
            .map(|i| Receiver::start(&self.topology.backends[i].name, VIP4.parse().unwrap()))
            .collect()
    }

    fn sender(&self, flows: Vec<Vec<u8>>) -> Sender {
        Sender::start(
            &self.topology.client.name,
            VIP4.parse().unwrap(),
            flows,
            Duration::from_millis(2),
        )
    }
}

/// A 1-RTT packet whose DCID names `server_id` under codepoint 0.
fn short(server_id: &str, seed: u64) -> Vec<u8> {
    short_header(&mint(0, server_id, seed))
}

/// An Initial with a client-chosen DCID (codepoint 0b111: never routable).
fn client_initial(seed: u8) -> Vec<u8> {
    initial(
        v1::INITIAL,
        QUIC_V1,
        &[0xe0 | (seed & 0x1f), seed, 2, 3, 4, 5, 6, 7],
        &[seed; 8],
        &[],
        1200,
    )
}

/// Which backend got each of `sent`: every one that arrives within 10 s.
fn deliveries(receivers: Vec<Receiver>, sent: &[Tag]) -> BTreeMap<Tag, Vec<usize>> {
    traffic::deliveries(receivers, sent, Duration::from_secs(10))
}

/// Rounds of traffic a test lets pass in each phase (about 0.1 s unloaded): enough for every
/// phase's packets to show its routing.
const PHASE_ROUNDS: u32 = 50;

#[test]
fn sigkill_loses_no_packet_and_a_restart_adopts_the_router() {
    let setup = Setup::new(2);
    let backends = [
        setup.backend(0, "alpha").server_id(0, "0a01"),
        setup.backend(1, "beta").server_id(0, "0a02"),
    ];
    setup.write_config(&setup.config_text(false, &backends));
    let controller = setup.start(&[]);
    let before = setup.status();
    let program = before["program_id"].as_u64().unwrap();
    assert_eq!(before["mode"], "native");
    assert_eq!(before["controller_pid"], controller.pid());
    // The pinned state and the control socket are root-only.
    for (path, mode) in [
        ("/sys/fs/bpf/quic-router/r0", 0o700),
        ("/run/quic-router/r0", 0o700),
        ("/run/quic-router/r0/control.sock", 0o600),
    ] {
        let actual = fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(actual, mode, "{path} has mode {actual:o}");
    }

    let receivers = setup.receivers();
    let sender = setup.sender(vec![short("0a01", 1), short("0a02", 2)]);
    sender.wait_for_rounds(PHASE_ROUNDS);
    controller.kill();
    sender.wait_for_rounds(2 * PHASE_ROUNDS);
    let orphaned = setup.status();
    assert_eq!(
        orphaned["controller_pid"],
        Value::Null,
        "status after SIGKILL: {orphaned}"
    );
    assert_eq!(orphaned["program_id"].as_u64(), Some(program));

    let restarted = setup.start(&[]);
    let after = setup.status();
    assert_eq!(
        after["program_id"].as_u64(),
        Some(program),
        "the restart kept the attached program"
    );
    assert_eq!(
        after["epoch"].as_u64(),
        Some(before["epoch"].as_u64().unwrap() + 1)
    );
    sender.wait_for_rounds(PHASE_ROUNDS);

    // A controller whose program differs (here: its log level) swaps it into the pinned
    // link atomically, keeping the maps.
    restarted.kill();
    let replaced = setup.start(&["--debug"]);
    let swapped = setup.status();
    assert_ne!(
        swapped["program_id"].as_u64(),
        Some(program),
        "the program was not replaced"
    );
    assert!(
        replaced.log_text().contains("attachment=Replaced"),
        "{}",
        replaced.log_text()
    );
    sender.wait_for_rounds(PHASE_ROUNDS);
    replaced.kill();
    let restarted = setup.start(&[]);
    sender.wait_for_rounds(PHASE_ROUNDS);
    let sent = sender.finish();
    let got = deliveries(receivers, &sent);

    assert!(sent.len() > 400, "only {} packets sent", sent.len());
    for tag in &sent {
        let expected = tag.flow as usize; // flow 0 names alpha (backend 0), flow 1 beta
        assert_eq!(
            got.get(tag),
            Some(&vec![expected]),
            "packet {tag:?}: delivered to {:?}",
            got.get(tag)
        );
    }

    // SIGTERM stops the controller; the data path keeps routing.
    assert!(restarted.terminate().success());
    let receivers = setup.receivers();
    let sender = setup.sender(vec![short("0a02", 3)]);
    sender.wait_for_rounds(PHASE_ROUNDS);
    let sent = sender.finish();
    let got = deliveries(receivers, &sent);
    assert!(
        sent.iter().all(|tag| got.get(tag) == Some(&vec![1])),
        "routing stopped with the controller"
    );

    // Detach removes it.
    setup.cli_ok(&["detach", "--iface", "r0"]);
    let (status, _, stderr) = setup.cli(&["status", "--iface", "r0"]);
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("no router is attached to r0"), "{stderr}");
    assert!(!Path::new("/sys/fs/bpf/quic-router/r0").exists());
}

#[test]
fn backends_are_added_drained_and_removed_while_traffic_flows() {
    let setup = Setup::new(3);
    let backends = [
        setup.backend(0, "alpha").server_id(0, "0a01"),
        setup.backend(1, "beta").server_id(0, "0a02"),
    ];
    setup.write_config(&setup.config_text(false, &backends));
    let _controller = setup.start(&[]);
    let receivers = setup.receivers();
    // Flows 0..3: short headers naming alpha, beta, gamma; flows 3..43: new connections.
    let mut flows = vec![short("0a01", 1), short("0a02", 2), short("0a03", 3)];
    flows.extend((0..40).map(client_initial));
    let sender = setup.sender(flows);
    sender.wait_for_rounds(PHASE_ROUNDS);

    // Each change takes effect after the rounds complete before its command and before the
    // rounds started after it returns: the one in progress when it returns may straddle it.
    let gamma_mac = setup.topology.backend_mac(2);
    let before_add = sender.rounds();
    setup.cli_ok(&Deployment::add_host_args(
        "gamma", "r3", &gamma_mac, "0:0a03",
    ));
    let added = sender.rounds() + 1;
    let before_drain = sender.wait_for_rounds(PHASE_ROUNDS);
    setup.cli_ok(&["backend", "drain", "--iface", "r0", "alpha"]);
    let drained = sender.rounds() + 1;
    let before_remove = sender.wait_for_rounds(PHASE_ROUNDS);
    setup.cli_ok(&["backend", "remove", "--iface", "r0", "alpha"]);
    let removed = sender.rounds() + 1;
    sender.wait_for_rounds(PHASE_ROUNDS);
    let sent = sender.finish();
    let got = deliveries(receivers, &sent);

    let mut initial_backends_after_add = BTreeSet::new();
    for tag in &sent {
        let Some(backends) = got.get(tag) else {
            panic!("packet {tag:?} was lost");
        };
        assert_eq!(backends.len(), 1, "packet {tag:?} delivered twice");
        let backend = backends[0];
        match (tag.flow, tag.seq) {
            // The traffic that names a backend reaches it while it is configured, drained or not.
            (0, seq) if seq < before_remove => assert_eq!(backend, 0, "{tag:?}"),
            (0, seq) if seq >= removed => assert_ne!(backend, 0, "{tag:?}: alpha is removed"),
            (1, _) => assert_eq!(backend, 1, "{tag:?}"),
            (2, seq) if seq >= added => assert_eq!(backend, 2, "{tag:?}: gamma names itself"),
            (2, seq) if seq < before_add => {
                assert_ne!(backend, 2, "{tag:?}: gamma is not there yet")
            }
            (flow, seq) if flow >= 3 => {
                if seq < before_add {
                    assert_ne!(backend, 2, "{tag:?}: gamma is not there yet");
                }
                if seq >= drained {
                    assert_ne!(backend, 0, "{tag:?}: alpha is draining");
                }
                if seq >= added && seq < before_drain {
                    initial_backends_after_add.insert(backend);
                }
            }
            _ => {}
        }
    }
    assert!(
        initial_backends_after_add.contains(&2),
        "gamma took no new connection"
    );

    // The file records what the commands did.
    let text = fs::read_to_string(setup.config_path()).unwrap();
    assert!(
        text.contains("name = \"gamma\"") && !text.contains("name = \"alpha\""),
        "{text}"
    );
    let list: Value =
        serde_json::from_str(&setup.cli_ok(&["backend", "list", "--iface", "r0", "--json"]))
            .unwrap();
    let names: Vec<&str> = list["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["beta", "gamma"]);

    // A bad change is refused and changes nothing.
    let (status, _, stderr) = setup.cli(&["backend", "drain", "--iface", "r0", "nosuch"]);
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("no backend nosuch"), "{stderr}");
    let (status, _, stderr) = setup.add_host("delta", "r3", &gamma_mac, "0:0a02");
    assert_eq!(status, 2, "{stderr}");
    assert!(
        stderr.contains("belongs to both beta and delta"),
        "{stderr}"
    );
    // A local worker has no interface: both at once is refused before anything is sent.
    let (status, _, stderr) = setup.cli(&[
        "backend",
        "add",
        "--iface",
        "r0",
        "--name",
        "delta",
        "--local-worker",
        "--interface",
        "r3",
        "--server-id",
        "0:0a04",
    ]);
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
    assert_eq!(fs::read_to_string(setup.config_path()).unwrap(), text);
    // A tunnel with no [encapsulation] to take its source from: refused, nothing written.
    let (status, _, stderr) = setup.cli(&[
        "backend",
        "add",
        "--iface",
        "r0",
        "--name",
        "delta",
        "--delivery",
        "ipip",
        "--tunnel-address",
        "198.18.9.4",
        "--server-id",
        "0:0a04",
    ]);
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("needs [encapsulation] source4"), "{stderr}");
    assert_eq!(fs::read_to_string(setup.config_path()).unwrap(), text);

    // A local worker joins like a host, written to the file as one.
    setup.cli_ok(&[
        "backend",
        "add",
        "--iface",
        "r0",
        "--name",
        "delta",
        "--local-worker",
        "--server-id",
        "0:0a04",
    ]);
    let list: Value =
        serde_json::from_str(&setup.cli_ok(&["backend", "list", "--iface", "r0", "--json"]))
            .unwrap();
    let delta = list["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "delta")
        .expect("delta listed");
    assert_eq!(delta["local_worker"], true);
    assert!(delta["interface"].is_null());
    assert!(
        fs::read_to_string(setup.config_path())
            .unwrap()
            .contains("local_worker = true")
    );
}

#[test]
fn reloads_apply_new_codepoints_and_refuse_invalid_configs() {
    let setup = Setup::new(2);
    let plain = [
        setup.backend(0, "alpha").server_id(0, "0a01"),
        setup.backend(1, "beta").server_id(0, "0a02"),
    ];
    setup.write_config(&setup.config_text(false, &plain));
    let mut controller = setup.start(&["--metrics-addr", "127.0.0.1:19464", "--debug"]);
    let epoch = setup.status()["epoch"].as_u64().unwrap();
    let first_digest = setup.status()["routing_digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let applied_digest = || {
        router_user::config::load(&setup.config_path())
            .unwrap()
            .routing_digest()
    };
    assert_eq!(first_digest, applied_digest());

    // Codepoint 1 is added by editing the file: the controller notices without a signal.
    let with_codepoint1 = [
        setup
            .backend(0, "alpha")
            .server_id(0, "0a01")
            .server_id(1, "a1a1a1"),
        setup
            .backend(1, "beta")
            .server_id(0, "0a02")
            .server_id(1, "b1b1b1"),
    ];
    setup.write_config(&setup.config_text(true, &with_codepoint1));
    let deadline = Instant::now() + Duration::from_secs(10);
    let applied = loop {
        let status = setup.status();
        // Recorded in the run state, and committed to the kernel.
        if status["codepoints"].as_array().unwrap().len() == 2
            && status["epoch"] == status["kernel_epoch"]
        {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the file change was not applied:\n{}",
            controller.log_text()
        );
        thread::sleep(Duration::from_millis(100));
    };
    assert!(applied["epoch"].as_u64().unwrap() > epoch, "{applied}");
    // The new codepoint changed what decides a packet's backend: a new digest, the file's.
    let digest = applied["routing_digest"].as_str().unwrap().to_owned();
    assert_ne!(digest, first_digest);
    assert_eq!(digest, applied_digest());
    let four_pass_cid = {
        use router_common::quic_lb::{Config, ConfigParams, Encoder, Key};
        let params = ConfigParams::new(1, 3, 5);
        let cipher = Key::from_slice(&hex::decode(KEY).unwrap())
            .unwrap()
            .aes128();
        let encoder = Encoder::new(Config::new(params, Some(cipher)).unwrap());
        let mut rng = rand::rng();
        encoder
            .encode(&[0xb1; 3], &[9, 8, 7, 6, 5], &mut rng)
            .unwrap()
            .as_slice()
            .to_vec()
    };
    let receivers = setup.receivers();
    let sender = setup.sender(vec![short_header(&four_pass_cid), short("0a01", 4)]);
    sender.wait_for_rounds(PHASE_ROUNDS);

    // An invalid config is refused; the running one stays.
    let epoch = setup.status()["epoch"].as_u64().unwrap();
    let broken = setup
        .config_text(true, &with_codepoint1)
        .replace(&setup.topology.backend_mac(1), "02:00:00");
    setup.write_config(&broken);
    let (status, _, stderr) = setup.cli(&["reload", "--iface", "r0"]);
    assert_eq!(status, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("not a MAC address"), "{stderr}");
    sender.wait_for_rounds(PHASE_ROUNDS);
    let sent = sender.finish();
    let got = deliveries(receivers, &sent);
    assert_eq!(
        setup.status()["epoch"].as_u64(),
        Some(epoch),
        "the invalid config changed the router"
    );
    assert!(
        controller.running(),
        "the controller died on an invalid config"
    );
    for tag in &sent {
        let expected = if tag.flow == 0 { 1 } else { 0 };
        assert_eq!(got.get(tag), Some(&vec![expected]), "{tag:?}");
    }

    // Stats (with rates in watch mode), metrics and the debug log see the traffic.
    let samples = setup.cli_ok(&[
        "stats", "--iface", "r0", "--json", "--watch", "0.2", "--count", "2",
    ]);
    let samples: Vec<Value> = samples
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(samples.len(), 2);
    assert!(samples[0]["outcomes"]["routed_by_server_id"]["per_second"].is_null());
    assert!(
        samples[1]["outcomes"]["routed_by_server_id"]["per_second"].is_number(),
        "{}",
        samples[1]
    );
    let stats: Value =
        serde_json::from_str(&setup.cli_ok(&["stats", "--iface", "r0", "--json"])).unwrap();
    let routed = stats["outcomes"]["routed_by_server_id"]["packets"]
        .as_u64()
        .unwrap();
    assert!(routed >= sent.len() as u64, "{stats}");
    assert!(
        stats["backends"]["beta"]["packets"].as_u64().unwrap() > 0,
        "{stats}"
    );
    let metrics = scrape(&setup.topology.router.name, "127.0.0.1:19464").unwrap();
    assert!(
        metrics.contains("quic_router_packets_total{outcome=\"routed_by_server_id\"}"),
        "{metrics}"
    );
    // The refused file changed nothing: status, the metrics and the log show the applied
    // digest.
    assert_eq!(setup.status()["routing_digest"], digest.as_str());
    assert!(
        metrics.contains(&format!(
            "quic_router_routing_digest{{digest=\"{digest}\"}} 1"
        )),
        "{metrics}"
    );
    assert!(
        controller
            .log_text()
            .contains(&format!("routing_digest={digest}")),
        "the digest was not logged"
    );
    assert!(
        metrics.contains("quic_router_backend_packets_total{backend=\"beta\"}"),
        "{metrics}"
    );
    let log = controller.log_text();
    assert!(
        log.contains("outcome=0 backend="),
        "no kernel log line in debug mode:\n{log}"
    );
    assert!(
        log.contains("config not applied"),
        "the refusal was not logged:\n{log}"
    );
    assert!(!log.contains(KEY), "the key leaked into the log");
}

#[test]
fn run_refuses_bad_input_and_touches_nothing() {
    let setup = Setup::new(1);
    setup.write_config(&format!(
        "[[listener]]\naddress = \"{VIP4}\"\nport = {QUIC_PORT}\n\n[[backend]]\nname = \"x\"\ninterface = \"r1\"\nnext_hop_mac = \"nope\"\n"
    ));
    let (status, _, stderr) = setup.cli(&[
        "run",
        "--iface",
        "r0",
        "--config",
        setup.config_path().to_str().unwrap(),
    ]);
    assert_eq!(status, 2, "{stderr}");
    assert!(
        stderr.contains("router.toml:8: backend x: next_hop_mac"),
        "{stderr}"
    );
    let (status, _, stderr) = setup.cli(&["status", "--iface", "r0"]);
    assert_eq!(status, 2, "{stderr}");
    let (status, _, stderr) = setup.cli(&["backend", "drain", "--iface", "r0", "x"]);
    assert_eq!(status, 2, "{stderr}");
    assert!(
        stderr.contains("no controller is running for r0"),
        "{stderr}"
    );
}

#[test]
fn the_maps_are_made_to_the_configs_limits_and_a_running_router_is_never_resized() {
    let setup = Setup::new(1);
    let config = |backends: u32| {
        ConfigText::new()
            .limits(&[("backends", backends), ("cid_cache_entries", 4096)])
            .listener(VIP4, QUIC_PORT, None)
            .quic_lb(0, 2, 6, 0, None)
            .backend(&setup.backend(0, "alpha").server_id(0, "0a01"))
            .build()
    };
    // What the kernel made: entries of the pinned maps.
    let entries = |map: &str| {
        aya::maps::MapInfo::from_pin(format!("/sys/fs/bpf/quic-router/r0/{map}"))
            .unwrap_or_else(|err| panic!("{map}: {err}"))
            .max_entries()
    };
    setup.write_config(&config(8));
    let controller = setup.start(&[]);
    let status = setup.status();
    assert_eq!(status["limits"]["backends"], 8, "{status}");
    assert_eq!(status["limits"]["cid_cache_entries"], 4096, "{status}");
    // Two generations of twice the backends (a removed one keeps its index for a while).
    assert_eq!(entries("BACKENDS"), 8 * 2 * 2);
    // The CID cache's entries come in sets of two, a region of them per CPU.
    let cpus = router_user::router::cpu_slots().unwrap();
    assert_eq!(entries("CID_CACHE"), 4096 / 2 * cpus);
    let epoch = status["epoch"].as_u64().unwrap();

    // Other limits in a reload: refused, with the reason; the running maps stay.
    setup.write_config(&config(16));
    let (code, _, stderr) = setup.cli(&["reload", "--iface", "r0"]);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("backends 8 in the maps, 16 in the config") && stderr.contains("detach"),
        "{stderr}"
    );
    assert_eq!(setup.status()["epoch"].as_u64(), Some(epoch));
    assert_eq!(entries("BACKENDS"), 32);

    // A controller that starts with them refuses before it touches anything.
    controller.kill();
    let (code, _, stderr) = setup.run_until_exit("r0");
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("map BACKENDS has 32 entries where [limits] call for 64"),
        "{stderr}"
    );
    assert_eq!(setup.status()["epoch"].as_u64(), Some(epoch));

    // The old limits adopt the running router; after a detach the new ones make new maps.
    setup.write_config(&config(8));
    let controller = setup.start(&[]);
    assert_eq!(setup.status()["epoch"].as_u64(), Some(epoch + 1));
    drop(controller);
    setup.cli_ok(&["detach", "--iface", "r0"]);
    setup.write_config(&config(16));
    let _controller = setup.start(&[]);
    assert_eq!(setup.status()["limits"]["backends"], 16);
    assert_eq!(entries("BACKENDS"), 16 * 2 * 2);
}
