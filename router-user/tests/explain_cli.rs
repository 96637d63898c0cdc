//! `quic-router explain` end to end: the kernel program's verdicts through the binary.
//! Needs root (it loads the XDP program) and fails, not skips, without it.

use std::{fs, path::Path};

use integration_tests::{
    addresses::{QUIC_PORT, VIP4, sender, vip},
    config_text::{BackendText, ConfigText},
    packet::{Datagram, QUIC_V1, initial, long_header, short_header, v1},
    process::{assert_bad_input, run_cli},
    write_key,
};
use serde_json::Value;

/// The draft's worked example (§5.4.2.4): four-pass, server ID 31441a.
const KEY: &str = "fdf726a9893ec05c0632d3956680baf0";
const ROUTABLE_CID: &str = "0767947d29be054a";

/// The config: codepoint 0 as in the worked example, backend alpha with its server ID, and
/// `weight` when given.
fn write_config(dir: &Path, weight: Option<u32>) -> String {
    let key = write_key(dir, "lb.key", KEY);
    let mut alpha = BackendText::host("alpha", "lo", "02:00:00:00:0a:01").server_id(0, "31441a");
    alpha.weight = weight;
    let config = dir.join("router.toml");
    let text = ConfigText::new()
        .listener(VIP4, QUIC_PORT, None)
        .quic_lb(0, 3, 4, 0, Some(&key))
        .backend(&alpha)
        .build();
    fs::write(&config, text).unwrap();
    config.to_str().unwrap().to_owned()
}

/// Ethernet / IPv4 from the hand-made packets' source, port 40000, to the VIP's `port` /
/// UDP / `payload`.
fn frame(port: u16, payload: &[u8]) -> Vec<u8> {
    Datagram::new(sender(false), vip(false), 40000, port, payload.to_vec()).frame()
}

const BINARY: &str = env!("CARGO_BIN_EXE_quic-router");

fn quic_router(args: &[&str]) -> (i32, String, String) {
    let out = run_cli(Path::new(BINARY), args);
    (out.status, out.stdout, out.stderr)
}

/// `explain` of every packet in `capture` under `config`, with `extra` arguments.
fn explain_capture(config: &str, capture: &Path, extra: &[&str]) -> (i32, String, String) {
    let capture = capture.to_str().unwrap();
    quic_router(&[&["explain", "--config", config, "--pcap", capture], extra].concat())
}

#[test]
fn explains_a_packet_in_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), None);
    let packet = hex::encode(frame(
        QUIC_PORT,
        &short_header(&hex::decode(ROUTABLE_CID).unwrap()),
    ));
    let (status, stdout, stderr) =
        quic_router(&["explain", "--config", &config, "--packet", &packet]);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(
        stdout,
        "action=redirect backend=alpha server_id=31441a reason=routed_by_server_id delivery=l2\n"
    );

    let (status, stdout, stderr) = quic_router(&[
        "explain", "--config", &config, "--packet", &packet, "--json",
    ]);
    assert_eq!(status, 0, "{stderr}");
    let verdict: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        verdict,
        serde_json::json!({"action": "redirect", "backend": "alpha", "server_id": "31441a", "reason": "routed_by_server_id", "delivery": "l2", "outer": null})
    );
}

/// Writes `packets` into a pcap file of link type `link` at `path`.
fn write_capture(path: &Path, link: pcap_file::DataLink, packets: &[Vec<u8>]) {
    let header = pcap_file::pcap::PcapHeader {
        datalink: link,
        ..pcap_file::pcap::PcapHeader::default()
    };
    let mut writer =
        pcap_file::pcap::PcapWriter::with_header(fs::File::create(path).unwrap(), header).unwrap();
    for packet in packets {
        let record = pcap_file::pcap::PcapPacket::new(
            std::time::Duration::ZERO,
            packet.len() as u32,
            packet,
        );
        writer.write_packet(&record).unwrap();
    }
}

#[test]
fn a_packet_that_cannot_be_explained_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), None);
    let good = frame(
        QUIC_PORT,
        &short_header(&hex::decode(ROUTABLE_CID).unwrap()),
    );
    let short = dir.path().join("short.pcap");
    write_capture(
        &short,
        pcap_file::DataLink::ETHERNET,
        &[good.clone(), vec![2; 10]],
    );
    // Raw IP: the frame without its Ethernet header, then something that is not IP.
    let raw = dir.path().join("raw.pcap");
    write_capture(
        &raw,
        pcap_file::DataLink::RAW,
        &[good[14..].to_vec(), vec![0x10; 40]],
    );
    for (capture, needle) in [
        (
            &short,
            "packet 2: a packet of 10 octets is shorter than an Ethernet header",
        ),
        (&raw, "packet 2: not an IP packet, in a capture of raw IP"),
    ] {
        let (status, stdout, stderr) = explain_capture(&config, capture, &[]);
        assert_eq!(status, 2, "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
        // The packet before it was explained.
        assert_eq!(
            stdout,
            "action=redirect backend=alpha server_id=31441a reason=routed_by_server_id delivery=l2\n"
        );
    }
}

#[test]
fn explains_the_method_and_outer_addresses_of_a_tunnel() {
    let dir = tempfile::tempdir().unwrap();
    let key = write_key(dir.path(), "lb.key", KEY);
    let alpha = BackendText::host("alpha", "lo", "02:00:00:00:0a:01")
        .server_id(0, "31441a")
        .tunnel("gue", "198.18.5.2");
    let config = dir.path().join("router.toml");
    let text = ConfigText::new()
        .encapsulation("198.18.100.0/28", "2001:db8:100::/64", 6080)
        .listener(VIP4, QUIC_PORT, None)
        .quic_lb(0, 3, 4, 0, Some(&key))
        .backend(&alpha)
        .build();
    fs::write(&config, text).unwrap();
    let config = config.to_str().unwrap();
    let packet = hex::encode(frame(
        QUIC_PORT,
        &short_header(&hex::decode(ROUTABLE_CID).unwrap()),
    ));
    // The outer source's host bits are the flow's hash's.
    let addr = |ip| router_common::flow_hash::flow_addr(ip).1;
    let hash = router_common::flow_hash::flow_hash(
        &addr(sender(false)),
        &addr(vip(false)),
        40000u16.to_be(),
        QUIC_PORT.to_be(),
    );
    let source = format!("198.18.100.{}", hash & 0x0f);
    let (status, stdout, stderr) =
        quic_router(&["explain", "--config", config, "--packet", &packet]);
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "action=redirect backend=alpha server_id=31441a reason=routed_by_server_id delivery=gue outer={source}->198.18.5.2\n"
        )
    );
    let (status, stdout, stderr) =
        quic_router(&["explain", "--config", config, "--packet", &packet, "--json"]);
    assert_eq!(status, 0, "{stderr}");
    let verdict: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        verdict["outer"],
        serde_json::json!({"source": source, "destination": "198.18.5.2"})
    );
}

#[test]
fn explains_every_packet_of_a_capture() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), None);
    let capture = dir.path().join("capture.pcap");
    let packets = [
        frame(
            QUIC_PORT,
            &short_header(&hex::decode(ROUTABLE_CID).unwrap()),
        ),
        frame(
            QUIC_PORT,
            &initial(
                v1::INITIAL,
                QUIC_V1,
                &[0xe1, 2, 3, 4, 5, 6, 7, 8],
                &[],
                &[],
                1200,
            ),
        ),
        frame(53, &short_header(&hex::decode(ROUTABLE_CID).unwrap())),
        frame(QUIC_PORT, &[]),
        frame(
            QUIC_PORT,
            &short_header(&hex::decode("e7c4605e4504cc4f").unwrap()),
        ),
        // A resumption: a token minted by alpha, a random DCID, then its 0-RTT.
        frame(
            QUIC_PORT,
            &initial(
                v1::INITIAL,
                QUIC_V1,
                &[0xe2, 2, 3, 4, 5, 6, 7, 8],
                &[],
                &[hex::decode(ROUTABLE_CID).unwrap(), vec![0x5a; 24]].concat(),
                1200,
            ),
        ),
        frame(
            QUIC_PORT,
            &long_header(
                v1::ZERO_RTT,
                QUIC_V1,
                &[0xe2, 2, 3, 4, 5, 6, 7, 8],
                &[],
                200,
            ),
        ),
    ];
    write_capture(&capture, pcap_file::DataLink::ETHERNET, &packets);

    let (status, stdout, stderr) = explain_capture(&config, &capture, &["--json"]);
    assert_eq!(status, 0, "{stderr}");
    let verdicts: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let expected = [
        serde_json::json!({"action": "redirect", "backend": "alpha", "server_id": "31441a", "reason": "routed_by_server_id", "delivery": "l2", "outer": null}),
        serde_json::json!({"action": "redirect", "backend": "alpha", "server_id": null, "reason": "initial_hashed", "delivery": "l2", "outer": null}),
        serde_json::json!({"action": "pass", "backend": null, "server_id": null, "reason": "not_listener", "delivery": null, "outer": null}),
        serde_json::json!({"action": "drop", "backend": null, "server_id": null, "reason": "malformed_quic", "delivery": null, "outer": null}),
        serde_json::json!({"action": "redirect", "backend": "alpha", "server_id": null, "reason": "unroutable_codepoint", "delivery": "l2", "outer": null}),
        serde_json::json!({"action": "redirect", "backend": "alpha", "server_id": "31441a", "reason": "routed_by_token", "delivery": "l2", "outer": null}),
        serde_json::json!({"action": "redirect", "backend": "alpha", "server_id": null, "reason": "routed_by_token_flow", "delivery": "l2", "outer": null}),
    ];
    assert_eq!(verdicts, expected);
}

#[test]
fn bad_input_gives_one_line_and_status_2() {
    let (good_dir, bad_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let good = write_config(good_dir.path(), None);
    let packet = hex::encode(frame(
        QUIC_PORT,
        &short_header(&hex::decode(ROUTABLE_CID).unwrap()),
    ));
    let bad = write_config(bad_dir.path(), Some(0));
    let cases: [(Vec<&str>, &str); 5] = [
        (
            vec!["explain", "--config", &bad, "--packet", &packet],
            "router.toml:16: backend alpha: weight 0",
        ),
        (
            vec!["explain", "--config", &good, "--packet", "00112233"],
            "shorter than an Ethernet header",
        ),
        (
            vec!["explain", "--config", &good, "--packet", "0g"],
            "--packet is not valid hex",
        ),
        (vec!["explain", "--config", &good], "required"),
        (
            vec!["explain", "--config", &good, "--pcap", "/nonexistent.pcap"],
            "cannot open /nonexistent.pcap: No such file or directory (os error 2)",
        ),
    ];
    for (args, needle) in cases {
        assert_bad_input(Path::new(BINARY), &args, needle);
    }
}
