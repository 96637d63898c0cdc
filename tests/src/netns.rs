//! Named network namespaces that the tests create, each deleted when its guard drops (also
//! when a test panics); a thread enters one for as long as a guard lives. Nothing in them
//! routes outside.

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

    /// Adds a veth pair `name`/`name`p with `mac` on `name`, both up: an interface for the
    /// router's devmap that leads nowhere.
    pub fn veth(&self, name: &str, mac: [u8; 6]) {
        let peer = format!("{name}p");
        let mac = mac.map(|b| format!("{b:02x}")).join(":");
        self.ip(&[
            "link", "add", name, "address", &mac, "type", "veth", "peer", "name", &peer,
        ]);
        self.ip(&["link", "set", name, "up"]);
        self.ip(&["link", "set", &peer, "up"]);
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

/// Joins `a`'s interface `a_if` and `b`'s `b_if` with a veth pair of `queues` receive and
/// transmit queues each, both up.
pub fn link(a: &Netns, a_if: &str, b: &Netns, b_if: &str, queues: usize) {
    let q = queues.to_string();
    run(
        "ip",
        &[
            "link",
            "add",
            a_if,
            "netns",
            &a.name,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            b_if,
            "netns",
            &b.name,
            "numtxqueues",
            &q,
            "numrxqueues",
            &q,
        ],
    );
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}
