//! The health probe: its datagram, what counts as its answer, and a QUIC server that knows
//! nothing of it answering (quinn, in a namespace of the test's own).

use std::{
    net::{SocketAddr, UdpSocket},
    time::Duration,
};

use integration_tests::{
    addresses::{QUIC_PORT, VIP4},
    fleet::{KEY0, key, params, server_id},
    netns::Netns,
    quic::{Backend, Certificate, Tickets, socket_in},
};
use quic_lb_quinn::{CidIssuer, IssuerConfig};
use router_user::health::{PROBE_LEN, PROBE_VERSION, Probe};

/// The Version Negotiation packet that answers `datagram` (a probe's), as RFC 9000 §17.2.1
/// lays it out, listing `versions`.
fn version_negotiation(datagram: &[u8], versions: &[u32]) -> Vec<u8> {
    let dcid = &datagram[6..14];
    let scid = &datagram[15..23];
    let mut reply = vec![0x80, 0, 0, 0, 0, 8];
    reply.extend_from_slice(scid);
    reply.push(8);
    reply.extend_from_slice(dcid);
    for version in versions {
        reply.extend_from_slice(&version.to_be_bytes());
    }
    reply
}

#[test]
fn a_probe_is_a_padded_long_header_of_a_reserved_version() {
    let datagram = Probe::new().datagram();
    assert_eq!(datagram.len(), PROBE_LEN);
    assert_eq!(datagram[0] & 0xc0, 0xc0, "long header, fixed bit");
    assert_eq!(datagram[1..5], PROBE_VERSION.to_be_bytes());
    assert_eq!(
        PROBE_VERSION & 0x0f0f_0f0f,
        0x0a0a_0a0a,
        "reserved: 0x?a?a?a?a"
    );
    assert_eq!((datagram[5], datagram[14]), (8, 8), "connection ID lengths");
    assert_ne!(Probe::new().datagram()[6..23], datagram[6..23], "fresh IDs");
}

#[test]
fn only_its_own_version_negotiation_answers_a_probe() {
    let probe = Probe::new();
    let datagram = probe.datagram();
    let answer = version_negotiation(&datagram, &[1, 0x6b33_43cf]);
    assert!(probe.answered_by(&answer));
    let other = Probe::new();
    assert!(!other.answered_by(&answer), "another probe's answer");
    let mut not_swapped = answer.clone();
    not_swapped[6..14].copy_from_slice(&datagram[6..14]);
    not_swapped[15..23].copy_from_slice(&datagram[15..23]);
    assert!(!probe.answered_by(&not_swapped), "IDs not swapped");
    let mut versioned = answer.clone();
    versioned[4] = 1;
    assert!(!probe.answered_by(&versioned), "not version 0");
    let mut short = answer.clone();
    short[0] = 0x40;
    assert!(!probe.answered_by(&short), "a short header");
    assert!(
        !probe.answered_by(&answer[..answer.len() - 4 - 4]),
        "no version listed"
    );
    assert!(
        !probe.answered_by(&answer[..answer.len() - 1]),
        "a partial version"
    );
    assert!(!probe.answered_by(&answer[..10]), "truncated");
    assert!(!probe.answered_by(&[]), "empty");
    let own = version_negotiation(&datagram, &[PROBE_VERSION]);
    assert!(!probe.answered_by(&own), "lists the probe's own version");
}

/// Sends a probe to `server` from inside `netns` and checks the answer: from the server,
/// within 5 s, the probe's own.
fn assert_answers_a_probe(netns: &Netns, server: SocketAddr) {
    let prober: UdpSocket = socket_in(&netns.name, "127.0.0.1:0".parse().unwrap());
    prober
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let probe = Probe::new();
    prober.send_to(&probe.datagram(), server).unwrap();
    let mut reply = [0u8; 1500];
    let (len, from) = prober.recv_from(&mut reply).expect("an answer within 5 s");
    assert_eq!(from, server);
    assert!(probe.answered_by(&reply[..len]), "{:02x?}", &reply[..len]);
}

#[test]
fn a_quic_server_that_knows_nothing_of_probes_answers_them() {
    let netns = Netns::create("probe");
    netns.ip(&["addr", "add", &format!("{VIP4}/32"), "dev", "lo"]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let certificate = Certificate::new();
    let server = SocketAddr::new(VIP4.parse().unwrap(), QUIC_PORT);
    let _backend = runtime.block_on(async {
        let issuer = CidIssuer::new(IssuerConfig {
            params: params(0),
            key: Some(key(KEY0)),
            server_id: server_id("0a01"),
        })
        .unwrap();
        Backend::on_sockets(
            "alpha",
            vec![socket_in(&netns.name, server)],
            issuer,
            Tickets::Stateful,
            &certificate,
        )
    });
    assert_answers_a_probe(&netns, server);
}

/// A QUIC stack we did not write answers too: aioquic's server, which the probe's version
/// is unknown to as to every server.
#[test]
fn aioquic_answers_a_probe() {
    let netns = Netns::create("probe");
    netns.ip(&["addr", "add", &format!("{VIP4}/32"), "dev", "lo"]);
    let dir = tempfile::tempdir().unwrap();
    let certificate = Certificate::new();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &certificate.pem).unwrap();
    std::fs::write(&key, &certificate.key_pem).unwrap();
    let server = SocketAddr::new(VIP4.parse().unwrap(), QUIC_PORT);
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &netns.name])
        .arg(integration_tests::aioquic::python())
        .arg(integration_tests::aioquic::quic_server_script())
        .args([VIP4, &QUIC_PORT.to_string()])
        .args([&cert, &key])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the aioquic server");
    // Killed on every way out, panics included.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let child = Kill(child);
    // Its "ready", read on a thread of its own, so that a server that hangs fails the test.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
        let _ = tx.send(line);
    });
    let ready = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the aioquic server's ready line within 30 s");
    assert_eq!(ready.trim(), "ready", "the server did not start");
    assert_answers_a_probe(&netns, server);
    drop(child);
}
