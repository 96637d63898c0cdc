//! `quic-router decap` on a backend's interface (a veth pair in a namespace of the test's):
//! IP-in-IP and GUE frames sent into it reach a UDP socket on the VIP (on loopback) as the
//! client's datagram; `status` shows the settings and counts; a second `attach` replaces the
//! settings; `detach` removes it; bad input is one line and exit status 2.

use std::{
    net::{IpAddr, UdpSocket},
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::Path,
    time::Duration,
};

use integration_tests::{
    addresses::{QUIC_PORT, VIP4, VIP6},
    fixtures::mint,
    mounts::PrivateMounts,
    netns::Netns,
    packet::{Datagram, short_header},
    process::{self, quic_router},
};
use serde_json::Value;

const BINARY: &str = env!("CARGO_BIN_EXE_quic-router");
const HOST4: &str = "198.18.5.2";
const HOST6: &str = "2001:db8:5::2";
const ROUTER4: &str = "198.18.100.1";
const ROUTER6: &str = "2001:db8:100::1";
const GUE_PORT: u16 = 6080;
/// The backend's interface and the peer frames are sent from.
const IFACE: &str = "d0";
const PEER: &str = "d0p";
const IFACE_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0d, 0x01];

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A namespace with the backend's interface, its tunnel addresses, the VIPs on loopback and
/// routes back to the clients, in a mount namespace of the test's (for the pins).
struct Backend {
    netns: Netns,
    _mounts: PrivateMounts,
}

impl Backend {
    fn new() -> Self {
        let mounts = PrivateMounts::enter();
        let netns = Netns::create("decap");
        netns.veth(IFACE, IFACE_MAC);
        netns.ip(&["addr", "add", &format!("{HOST4}/24"), "dev", IFACE]);
        netns.ip(&["addr", "add", &format!("{HOST6}/64"), "dev", IFACE, "nodad"]);
        netns.ip(&["addr", "add", &format!("{VIP4}/32"), "dev", "lo"]);
        netns.ip(&["addr", "add", &format!("{VIP6}/128"), "dev", "lo", "nodad"]);
        // The clients' replies leave by the tunnel interface's side (direct server return).
        netns.ip(&["route", "add", "198.18.1.0/24", "dev", IFACE]);
        netns.ip(&["-6", "route", "add", "2001:db8:1::/64", "dev", IFACE]);
        Self {
            netns,
            _mounts: mounts,
        }
    }

    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = quic_router(Path::new(BINARY), &self.netns.name, args);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn cli_ok(&self, args: &[&str]) -> String {
        let (status, stdout, stderr) = self.cli(args);
        assert_eq!(status, 0, "quic-router {args:?}: {stderr}");
        stdout
    }

    fn status(&self) -> Value {
        serde_json::from_str(&self.cli_ok(&["decap", "status", "--iface", IFACE, "--json"]))
            .expect("status JSON")
    }

    fn counter(&self, name: &str) -> u64 {
        let status = self.status();
        status["counters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|pair| pair[0] == name)
            .and_then(|pair| pair[1].as_u64())
            .unwrap_or_else(|| panic!("no counter {name} in {status}"))
    }

    /// Sends `frame` into the backend's interface from its peer (a raw packet socket).
    fn inject(&self, frame: &[u8]) {
        let _inside = self.netns.enter();
        // SAFETY: plain socket calls on a descriptor this function owns.
        unsafe {
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(
                fd >= 0,
                "AF_PACKET socket: {}",
                std::io::Error::last_os_error()
            );
            let fd = OwnedFd::from_raw_fd(fd);
            let name = std::ffi::CString::new(PEER).unwrap();
            let mut address: libc::sockaddr_ll = std::mem::zeroed();
            address.sll_family = libc::AF_PACKET as u16;
            address.sll_ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
            address.sll_halen = 6;
            address.sll_addr[..6].copy_from_slice(&IFACE_MAC);
            let sent = libc::sendto(
                fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                std::ptr::from_ref(&address).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(
                sent,
                frame.len() as isize,
                "{}",
                std::io::Error::last_os_error()
            );
        }
    }

    /// A UDP socket on the VIP of the family, in the namespace.
    fn vip_socket(&self, v6: bool) -> UdpSocket {
        let _inside = self.netns.enter();
        let vip = if v6 { ip(VIP6) } else { ip(VIP4) };
        let socket = UdpSocket::bind((vip, QUIC_PORT)).expect("bind the VIP");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        socket
    }
}

/// The next datagram on `socket` and who sent it (within the socket's timeout).
fn receive(socket: &UdpSocket) -> (Vec<u8>, IpAddr) {
    let mut buf = [0u8; 2048];
    let (len, from) = socket
        .recv_from(&mut buf)
        .unwrap_or_else(|err| panic!("nothing reached the VIP: {err}"));
    (buf[..len].to_vec(), from.ip())
}

/// A client's QUIC datagram to the VIP.
fn client_datagram(v6: bool, seed: u64) -> Datagram {
    let (client, vip) = if v6 {
        (ip("2001:db8:1::2"), ip(VIP6))
    } else {
        (ip("198.18.1.2"), ip(VIP4))
    };
    let mut datagram = Datagram::new(
        client,
        vip,
        40_000,
        QUIC_PORT,
        short_header(&mint(0, "0a01", seed)),
    );
    // The stack that gets the inner packet checks its checksums.
    datagram.checksums = true;
    datagram
}

/// `inner` in IP-in-IP (`gue` false) or GUE (version 0) from the router to the host, in a
/// frame for the backend's interface.
fn encapsulated(inner: &Datagram, gue: bool) -> Vec<u8> {
    let v6 = inner.dst.is_ipv6();
    let (router, host) = if v6 {
        (ip(ROUTER6), ip(HOST6))
    } else {
        (ip(ROUTER4), ip(HOST4))
    };
    let protocol = if v6 { 41 } else { 4 };
    let mut frame = if gue {
        let mut payload = vec![0, protocol, 0, 0];
        payload.extend_from_slice(&inner.ip_packet());
        Datagram::new(router, host, 50_123, GUE_PORT, payload).frame()
    } else {
        let mut outer = Datagram::new(router, host, 0, 0, Vec::new());
        outer.protocol = protocol;
        outer.frame_around(&inner.ip_packet())
    };
    frame[..6].copy_from_slice(&IFACE_MAC);
    frame
}

#[test]
fn encapsulated_datagrams_reach_the_vip_and_are_counted() {
    let backend = Backend::new();
    backend.cli_ok(&[
        "decap",
        "attach",
        "--iface",
        IFACE,
        "--address",
        HOST4,
        "--address",
        HOST6,
        "--from",
        "198.18.100.0/28",
        "--from",
        "2001:db8:100::/64",
        "--gue-port",
        "6080",
    ]);
    let status = backend.status();
    assert_eq!(status["settings"]["gue_port"], 6080, "{status}");
    assert_eq!(
        status["settings"]["addresses"],
        serde_json::json!([HOST4, HOST6]),
        "{status}"
    );
    for v6 in [false, true] {
        let socket = backend.vip_socket(v6);
        for (seed, gue) in [(1, false), (2, true)] {
            let inner = client_datagram(v6, seed);
            backend.inject(&encapsulated(&inner, gue));
            let (payload, from) = receive(&socket);
            assert_eq!(payload, inner.payload, "v6 {v6}, GUE {gue}");
            assert_eq!(from, inner.src, "the client's address, not the router's");
        }
    }
    assert_eq!(backend.counter("decapsulated_ipip"), 2);
    assert_eq!(backend.counter("decapsulated_gue"), 2);

    // From outside the router prefixes: dropped and counted, the socket gets nothing.
    let socket = backend.vip_socket(false);
    let inner = client_datagram(false, 3);
    let mut frame = encapsulated(&inner, false);
    frame[14 + 12..14 + 16].copy_from_slice(&[198, 18, 200, 1]);
    backend.inject(&frame);
    // A datagram sent after it, through the tunnel, arrives first: the foreign one did not.
    let after = client_datagram(false, 4);
    backend.inject(&encapsulated(&after, false));
    assert_eq!(receive(&socket).0, after.payload);
    assert_eq!(backend.counter("foreign_source"), 1);
}

#[test]
fn attach_again_replaces_the_settings_and_detach_removes_it() {
    let backend = Backend::new();
    let attach = |from: &str, gue: Option<&str>| {
        let mut args = vec![
            "decap",
            "attach",
            "--iface",
            IFACE,
            "--address",
            HOST4,
            "--from",
            from,
        ];
        if let Some(port) = gue {
            args.extend_from_slice(&["--gue-port", port]);
        }
        backend.cli_ok(&args)
    };
    assert!(attach("198.18.100.0/28", Some("6080")).contains("attached"));
    let first = backend.status();
    assert!(attach("198.18.101.0/24", None).contains("replaced"));
    let second = backend.status();
    assert_ne!(first["program_id"], second["program_id"]);
    assert_eq!(second["settings"]["gue_port"], Value::Null, "{second}");
    assert_eq!(
        second["settings"]["sources"],
        serde_json::json!([{"addr": "198.18.101.0", "len": 24}]),
        "{second}"
    );
    // The replaced settings are the ones in force: the old prefix is foreign now.
    let socket = backend.vip_socket(false);
    let inner = client_datagram(false, 5);
    backend.inject(&encapsulated(&inner, false));
    let mut moved = encapsulated(&client_datagram(false, 6), false);
    moved[14 + 12..14 + 16].copy_from_slice(&[198, 18, 101, 1]);
    backend.inject(&moved);
    assert_eq!(receive(&socket).0, client_datagram(false, 6).payload);
    assert_eq!(backend.counter("foreign_source"), 1);

    assert!(
        backend
            .cli_ok(&["decap", "detach", "--iface", IFACE])
            .contains("detached")
    );
    let (status, stdout, stderr) = backend.cli(&["decap", "status", "--iface", IFACE]);
    assert_eq!((status, stdout.as_str()), (2, ""), "{stderr}");
    assert!(
        stderr.contains("no decapsulator is attached to d0"),
        "{stderr}"
    );
    let (status, _, stderr) = backend.cli(&["decap", "detach", "--iface", IFACE]);
    assert_eq!(status, 2, "{stderr}");
}

#[test]
fn bad_decap_arguments_are_one_line_and_status_2() {
    let binary = Path::new(BINARY);
    let base = ["decap", "attach", "--iface", "d0", "--address", HOST4];
    for (extra, needle) in [
        (
            vec!["--from", "198.18.100.1/24"],
            "has bits set past its length",
        ),
        (
            vec!["--from", "198.18.100.0/33"],
            "is not an IP address or prefix",
        ),
        (vec!["--from", "router"], "is not an IP address or prefix"),
        (
            vec!["--from", "198.18.100.0/28", "--gue-port", "0"],
            "GUE port 0",
        ),
        (
            vec!["--from", "198.18.100.0/28", "--gue-port", "65536"],
            "65536",
        ),
        (vec![], "--from"),
    ] {
        let args: Vec<&str> = base.iter().copied().chain(extra).collect();
        process::assert_bad_input(binary, &args, needle);
    }
    process::assert_bad_input(
        binary,
        &[
            "decap",
            "attach",
            "--iface",
            "d0",
            "--address",
            "224.0.0.1",
            "--from",
            ROUTER4,
        ],
        "cannot be a tunnel address",
    );
    process::assert_bad_input(
        binary,
        &[
            "decap",
            "attach",
            "--iface",
            "../x",
            "--address",
            HOST4,
            "--from",
            ROUTER6,
        ],
        "is not an interface name",
    );
    process::assert_bad_input(
        binary,
        &[
            "decap",
            "attach",
            "--iface",
            "nowhere0",
            "--address",
            HOST4,
            "--from",
            ROUTER4,
        ],
        "interface nowhere0 does not exist",
    );
    process::assert_bad_input(
        binary,
        &["decap", "status", "--iface", "nowhere0"],
        "no decapsulator is attached to nowhere0",
    );
}
