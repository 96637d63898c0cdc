//! Named network namespaces joined by veth pairs: a client, the router and backends. Every
//! namespace is deleted when its guard drops, also when a test panics; addresses are from
//! 198.18.0.0/15 and 2001:db8::/32 and nothing routes outside.

use std::{
    fs::File,
    os::fd::AsRawFd as _,
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A named network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// A new namespace named after the test process and `role`, with loopback up.
    pub fn create(role: &str) -> Self {
        let name = format!(
            "qrt{}-{}-{role}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name]);
        let netns = Self { name };
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    /// `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run("ip", &full);
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, program: &str, args: &[&str]) {
        let mut full = vec!["netns", "exec", self.name.as_str(), program];
        full.extend_from_slice(args);
        run("ip", &full);
    }

    /// Moves the calling thread into the namespace until the guard drops.
    pub fn enter(&self) -> Entered {
        enter(&self.name)
    }

    /// The MAC address of `interface` in this namespace.
    pub fn mac(&self, interface: &str) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.name, "-br", "link", "show", interface])
            .output()
            .expect("ip link show");
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace()
            .nth(2)
            .unwrap_or_else(|| panic!("no MAC for {interface} in {text:?}"))
            .to_owned()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Moves the calling thread into the namespace `name` until the guard drops (for threads
/// that do not own the namespace's guard).
pub fn enter(name: &str) -> Entered {
    let original = File::open("/proc/thread-self/ns/net").expect("this thread's namespace");
    let target = File::open(format!("/run/netns/{name}"))
        .unwrap_or_else(|err| panic!("namespace {name}: {err}"));
    // SAFETY: both are namespace file descriptors; setns affects this thread only.
    if unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        panic!("setns into {name}: {}", std::io::Error::last_os_error());
    }
    Entered { original }
}

/// A thread inside a namespace; back where it was on drop.
pub struct Entered {
    original: File,
}

impl Drop for Entered {
    fn drop(&mut self) {
        // SAFETY: `original` is a namespace file descriptor.
        unsafe { libc::setns(self.original.as_raw_fd(), libc::CLONE_NEWNET) };
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|err| {
            panic!("cannot run {program}: {err} (tests need iproute2 and ethtool)")
        });
    assert!(
        out.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Joins `a`'s interface `a_if` and `b`'s `b_if` with a veth pair, both up.
pub fn link(a: &Netns, a_if: &str, b: &Netns, b_if: &str) {
    run(
        "ip",
        &[
            "link", "add", a_if, "netns", &a.name, "type", "veth", "peer", "name", b_if, "netns",
            &b.name,
        ],
    );
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}

/// The VIP that backends hold on loopback and clients send to.
pub const VIP4: &str = "198.18.0.10";
pub const VIP6: &str = "2001:db8::10";

/// The client's addresses on `c0`.
pub const CLIENT4: &str = "198.18.1.2";
pub const CLIENT6: &str = "2001:db8:1::2";

/// Client -- router -- N backends (direct server return: backends own the VIP and answer
/// the client through the router's ordinary forwarding).
///
/// Addresses: client 198.18.1.2 / 2001:db8:1::2 on `c0`, router 198.18.1.1 / 2001:db8:1::1 on
/// `r0`; backend `i` is 198.18.(10+i).2 / 2001:db8:(10+i)::2 on `b0` facing the router's
/// `r(1+i)`.
pub struct Topology {
    pub client: Netns,
    pub router: Netns,
    pub backends: Vec<Netns>,
}

impl Topology {
    pub fn new(backends: usize) -> Self {
        let client = Netns::create("client");
        let router = Netns::create("router");
        link(&client, "c0", &router, "r0");
        client.ip(&["addr", "add", &format!("{CLIENT4}/24"), "dev", "c0"]);
        client.ip(&[
            "-6",
            "addr",
            "add",
            &format!("{CLIENT6}/64"),
            "dev",
            "c0",
            "nodad",
        ]);
        router.ip(&["addr", "add", "198.18.1.1/24", "dev", "r0"]);
        router.ip(&[
            "-6",
            "addr",
            "add",
            "2001:db8:1::1/64",
            "dev",
            "r0",
            "nodad",
        ]);
        client.ip(&["route", "add", "198.18.0.0/24", "via", "198.18.1.1"]);
        client.ip(&[
            "-6",
            "route",
            "add",
            "2001:db8::/64",
            "via",
            "2001:db8:1::1",
        ]);
        // Packets sent by a local socket lose CHECKSUM_PARTIAL on a native redirect: let
        // the client's veth compute checksums itself (platform notes).
        client.exec("ethtool", &["-K", "c0", "tx", "off"]);
        router.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
        router.exec("sysctl", &["-qw", "net.ipv6.conf.all.forwarding=1"]);

        let backends = (0..backends)
            .map(|i| {
                let backend = Netns::create(&format!("backend{i}"));
                let router_if = format!("r{}", i + 1);
                link(&backend, "b0", &router, &router_if);
                let net = 10 + i;
                backend.ip(&["addr", "add", &format!("198.18.{net}.2/24"), "dev", "b0"]);
                backend.ip(&[
                    "-6",
                    "addr",
                    "add",
                    &format!("2001:db8:{net}::2/64"),
                    "dev",
                    "b0",
                    "nodad",
                ]);
                backend.ip(&["addr", "add", &format!("{VIP4}/32"), "dev", "lo"]);
                backend.ip(&["-6", "addr", "add", &format!("{VIP6}/128"), "dev", "lo"]);
                backend.ip(&["route", "add", "default", "via", &format!("198.18.{net}.1")]);
                backend.ip(&[
                    "-6",
                    "route",
                    "add",
                    "default",
                    "via",
                    &format!("2001:db8:{net}::1"),
                ]);
                router.ip(&[
                    "addr",
                    "add",
                    &format!("198.18.{net}.1/24"),
                    "dev",
                    &router_if,
                ]);
                router.ip(&[
                    "-6",
                    "addr",
                    "add",
                    &format!("2001:db8:{net}::1/64"),
                    "dev",
                    &router_if,
                    "nodad",
                ]);
                // Native redirects into a veth are delivered only with GRO (or an XDP
                // program) on the receiving end.
                backend.exec("ethtool", &["-K", "b0", "gro", "on"]);
                backend.exec("sysctl", &["-qw", "net.ipv4.conf.all.rp_filter=0"]);
                backend.exec("sysctl", &["-qw", "net.ipv4.conf.b0.rp_filter=0"]);
                backend
            })
            .collect();
        Self {
            client,
            router,
            backends,
        }
    }

    /// The MAC of backend `i`'s interface: the next hop that the router writes.
    pub fn backend_mac(&self, i: usize) -> String {
        self.backends[i].mac("b0")
    }
}
