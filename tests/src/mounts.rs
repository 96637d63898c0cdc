//! A private mount namespace for a test: its own bpffs at /sys/fs/bpf and tmpfs at
//! /run/quic-router, so that tests pin in parallel without meeting and leave nothing behind.

use std::{ffi::CString, fs::File, os::fd::AsRawFd as _};

/// The calling thread in a new mount namespace (with private propagation) until drop; the
/// processes it spawns inherit it. Pinned objects go away with it.
pub struct PrivateMounts {
    original: File,
}

fn mount(source: &str, target: &str, fstype: &str, flags: libc::c_ulong, data: &str) {
    let (source, target, fstype, data) = (
        CString::new(source).unwrap(),
        CString::new(target).unwrap(),
        CString::new(fstype).unwrap(),
        CString::new(data).unwrap(),
    );
    // SAFETY: NUL-terminated strings.
    let status = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            data.as_ptr().cast(),
        )
    };
    assert_eq!(
        status,
        0,
        "mount {target:?}: {}",
        std::io::Error::last_os_error()
    );
}

impl PrivateMounts {
    pub fn enter() -> Self {
        let original =
            File::open("/proc/thread-self/ns/mnt").expect("this thread's mount namespace");
        // SAFETY: unshare takes no pointers; CLONE_FS gives this thread its own filesystem
        // context, which a mount namespace of its own needs.
        if unsafe { libc::unshare(libc::CLONE_NEWNS | libc::CLONE_FS) } != 0 {
            panic!(
                "unshare(CLONE_NEWNS) failed (tests need root): {}",
                std::io::Error::last_os_error()
            );
        }
        mount("none", "/", "", libc::MS_REC | libc::MS_PRIVATE, "");
        mount("bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700");
        std::fs::create_dir_all("/run/quic-router").expect("mkdir /run/quic-router");
        mount("tmpfs", "/run/quic-router", "tmpfs", 0, "mode=0700");
        Self { original }
    }
}

impl Drop for PrivateMounts {
    fn drop(&mut self) {
        // SAFETY: `original` is a mount namespace descriptor.
        unsafe { libc::setns(self.original.as_raw_fd(), libc::CLONE_NEWNS) };
    }
}
