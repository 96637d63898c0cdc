//! SIGKILL at random points of reloads and edits, under traffic, 50 times: after each restart
//! the maps, `status` and the config file agree, and no packet is lost. Needs root.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::Duration,
};

use aya::maps::{Array, HashMap, Map, MapData};
use integration_tests::{
    addresses::{QUIC_PORT, VIP4},
    config_text::{BackendText, ConfigText},
    deployment::Deployment,
    fixtures::mint,
    netns,
    packet::short_header,
    traffic::{self, Receiver, Sender},
};
use rand::{Rng as _, SeedableRng as _, rngs::StdRng};
use router_common::maps::{
    BackendEntry, Control, FALLBACK_TABLE_SIZE, NO_BACKEND, ServerIdKey, backend_slot,
    fallback_slot, specs,
};
use router_user::config::{self, BackendState, Reach};

const BINARY: &str = env!("CARGO_BIN_EXE_quic-router");
const PIN_DIR: &str = "/sys/fs/bpf/quic-router/r0";
const ROUNDS: usize = 50;
/// Rounds of traffic (two packets each) after each restart: traffic crosses every one of them,
/// more than 1,000 packets in all.
const TRAFFIC_ROUNDS_PER_RESTART: u32 = 11;

fn open<T: TryFrom<Map, Error = aya::maps::MapError>>(name: &str) -> T {
    MapData::from_pin(Path::new(PIN_DIR).join(name))
        .and_then(Map::from_map_data)
        .and_then(T::try_from)
        .unwrap_or_else(|err| panic!("{name}: {err}"))
}

/// The maps' active generation routes what the config file says: each server ID to its
/// backend's index, each backend to its interface and next hop, and the fallback table over
/// the active backends only; and `status` shows the same backends and epoch.
fn assert_agree(setup: &Deployment, round: usize) {
    let file = config::load(&setup.config_path()).unwrap();
    let status = setup.status();
    let epoch = status["epoch"].as_u64().unwrap() as u32;
    let control: Array<MapData, Control> = open(specs::CONTROL.name);
    assert_eq!(
        control.get(&0, 0).unwrap().epoch,
        epoch,
        "round {round}: epoch"
    );
    let generation = Control { epoch }.generation();

    let indices: BTreeMap<String, u32> = status["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["name"].as_str().unwrap().to_owned(),
                b["index"].as_u64().unwrap() as u32,
            )
        })
        .collect();
    let names: BTreeSet<&String> = indices.keys().collect();
    let in_file: BTreeSet<&String> = file.backends.iter().map(|b| &b.name).collect();
    assert_eq!(
        names, in_file,
        "round {round}: status and file list other backends"
    );

    let server_ids: HashMap<MapData, ServerIdKey, u32> = open(specs::SERVER_IDS.name);
    let backends: Array<MapData, BackendEntry> = open(specs::BACKENDS.name);
    let mut expected_ids = 0;
    for backend in &file.backends {
        let index = indices[&backend.name];
        for (codepoint, id) in &backend.server_ids {
            let key = ServerIdKey {
                generation: generation as u8,
                ..ServerIdKey::new(*codepoint, id)
            };
            assert_eq!(
                server_ids.get(&key, 0).ok(),
                Some(index),
                "round {round}: server ID {} of {}",
                hex::encode(id),
                backend.name
            );
            expected_ids += 1;
        }
        let Reach::Host {
            interface,
            next_hop_mac,
            ..
        } = &backend.reach
        else {
            unreachable!("hosts only")
        };
        let entry = backends.get(&backend_slot(generation, index), 0).unwrap();
        let ifindex = {
            let _inside = netns::enter(&setup.topology.router.name);
            router_user::netif::lookup(interface).unwrap().ifindex
        };
        assert_eq!(
            (entry.ifindex, entry.dst_mac),
            (ifindex, *next_hop_mac),
            "round {round}: {}",
            backend.name
        );
    }
    let in_generation = server_ids
        .keys()
        .filter_map(Result::ok)
        .filter(|key| u32::from(key.generation) == generation)
        .count();
    assert_eq!(
        in_generation, expected_ids,
        "round {round}: stale server IDs"
    );

    let fallback: Array<MapData, u32> = open(specs::FALLBACK.name);
    let hashed: BTreeSet<u32> = (0..FALLBACK_TABLE_SIZE)
        .map(|slot| fallback.get(&fallback_slot(generation, slot), 0).unwrap())
        .filter(|&index| index != NO_BACKEND)
        .collect();
    let active: BTreeSet<u32> = file
        .backends
        .iter()
        .filter(|b| b.state == BackendState::Active)
        .map(|b| indices[&b.name])
        .collect();
    assert_eq!(
        hashed, active,
        "round {round}: the fallback table's backends"
    );
}

/// `quic-router ARGS` in the router's namespace, started, not waited for.
fn spawn_cli(setup: &Deployment, args: &[&str]) -> Child {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", &setup.topology.router.name, BINARY])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command.spawn().unwrap()
}

#[test]
fn sigkill_during_reloads_and_edits_leaves_maps_status_and_file_in_agreement() {
    let setup = Deployment::new(Path::new(BINARY), 2);
    let config = |gamma: bool, alpha_state: &'static str, beta_weight: u32| {
        let mut beta = setup.backend(1, "beta").server_id(0, "0a02");
        beta.weight = Some(beta_weight);
        let mut text = ConfigText::new()
            .listener(VIP4, QUIC_PORT, None)
            .quic_lb(0, 2, 6, 0, None)
            .backend(
                &setup
                    .backend(0, "alpha")
                    .server_id(0, "0a01")
                    .state(alpha_state),
            )
            .backend(&beta);
        if gamma {
            text = text.backend(
                &BackendText::host("gamma", "r1", "02:00:00:00:0c:01").server_id(0, "0a03"),
            );
        }
        text.build()
    };
    setup.write_config(&config(false, "active", 1));
    let mut controller = setup.start(&[]);
    let receivers: Vec<Receiver> = (0..2)
        .map(|i| Receiver::start(&setup.topology.backends[i].name, VIP4.parse().unwrap()))
        .collect();
    let sender = Sender::start(
        &setup.topology.client.name,
        VIP4.parse().unwrap(),
        vec![
            short_header(&mint(0, "0a01", 1)),
            short_header(&mint(0, "0a02", 2)),
        ],
        Duration::from_millis(2),
    );

    let mut rng = StdRng::seed_from_u64(0x5167_4b11);
    for round in 0..ROUNDS {
        // A change by file and reload, or by an edit; then SIGKILL at a random moment of it.
        let change: Child = match rng.random_range(0..4) {
            0 => {
                setup.write_config(&config(
                    rng.random(),
                    if rng.random() { "active" } else { "draining" },
                    rng.random_range(1..=3),
                ));
                spawn_cli(&setup, &["reload", "--iface", "r0"])
            }
            1 => spawn_cli(&setup, &["backend", "drain", "--iface", "r0", "alpha"]),
            2 => spawn_cli(&setup, &["backend", "undrain", "--iface", "r0", "alpha"]),
            _ if std::fs::read_to_string(setup.config_path())
                .unwrap()
                .contains("gamma") =>
            {
                spawn_cli(&setup, &["backend", "remove", "--iface", "r0", "gamma"])
            }
            _ => spawn_cli(
                &setup,
                &Deployment::add_host_args("gamma", "r1", "02:00:00:00:0c:01", "0:0a03"),
            ),
        };
        thread::sleep(Duration::from_micros(rng.random_range(0..40_000)));
        controller.kill();
        let mut change = change;
        let _ = change.wait();
        // A new controller applies the file as it is.
        controller = setup.start(&[]);
        assert_agree(&setup, round);
        sender.wait_for_rounds(TRAFFIC_ROUNDS_PER_RESTART);
    }

    let sent = sender.finish();
    let got = traffic::deliveries(receivers, &sent, Duration::from_secs(10));
    assert!(sent.len() > 1000, "only {} packets sent", sent.len());
    for tag in &sent {
        assert_eq!(
            got.get(tag),
            Some(&vec![tag.flow as usize]),
            "packet {tag:?}"
        );
    }
    assert!(controller.running());
}
