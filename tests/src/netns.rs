//! Network namespaces that the tests create, and always remove.

use std::{fs::File, os::fd::AsRawFd as _, process::Command};

/// Moves the calling thread into a new, empty network namespace with loopback up, and back
/// on drop (also when the test panics). The namespace has no name and no route outside:
/// it goes away when the last thread or process in it does.
pub struct IsolatedNetns {
    original: File,
}

impl IsolatedNetns {
    pub fn enter() -> Self {
        let original = File::open("/proc/thread-self/ns/net")
            .unwrap_or_else(|err| panic!("cannot open this thread's network namespace: {err}"));
        // SAFETY: unshare takes no pointers; it affects the calling thread only.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            panic!(
                "unshare(CLONE_NEWNET) failed (these tests need root): {}",
                std::io::Error::last_os_error()
            );
        }
        let netns = Self { original };
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    /// Runs `ip ARGS` in this namespace (a child process inherits the thread's namespace).
    pub fn ip(&self, args: &[&str]) {
        let status = Command::new("ip")
            .args(args)
            .status()
            .unwrap_or_else(|err| panic!("cannot run ip: {err}"));
        assert!(status.success(), "ip {} failed", args.join(" "));
    }

    /// Adds a veth pair `name`/`name`-p with `mac` on `name`, both up.
    pub fn veth(&self, name: &str, mac: [u8; 6]) {
        let peer = format!("{name}p");
        let mac = mac.map(|b| format!("{b:02x}")).join(":");
        self.ip(&[
            "link", "add", name, "address", &mac, "type", "veth", "peer", "name", &peer,
        ]);
        self.ip(&["link", "set", name, "up"]);
        self.ip(&["link", "set", &peer, "up"]);
    }
}

impl Drop for IsolatedNetns {
    fn drop(&mut self) {
        // SAFETY: `original` is an open namespace file descriptor.
        unsafe { libc::setns(self.original.as_raw_fd(), libc::CLONE_NEWNET) };
    }
}
