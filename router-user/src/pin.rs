//! Where a router's state lives between controller runs: its XDP link and maps pinned under
//! `/sys/fs/bpf/quic-router/<iface>/`, its run state and control socket under
//! `/run/quic-router/<iface>/`. Both directories are root-only.

use std::{
    ffi::CString,
    fs,
    io::Write as _,
    os::{
        fd::AsRawFd as _,
        unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    },
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// The bpffs mount point.
pub const BPFFS: &str = "/sys/fs/bpf";
/// `statfs` magic of bpffs.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("cannot mount bpffs at {BPFFS}: {0}")]
    Mount(std::io::Error),
    #[error("cannot create {path}: {source}")]
    Create {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{0:?} is not an interface name (1 to 15 characters, not . or .., no /, :, spaces or control characters)"
    )]
    Interface(String),
    #[error("a controller already runs for {iface}{}", holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default())]
    Locked { iface: String, holder: Option<u32> },
}

/// A held controller lock ([`RouterPaths::lock`]).
#[derive(Debug)]
pub struct ControllerLock {
    _file: fs::File,
}

/// The paths of one interface's router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterPaths {
    pub iface: String,
    /// Pinned link and maps.
    pub pin_dir: PathBuf,
    /// Run state and control socket.
    pub run_dir: PathBuf,
}

impl RouterPaths {
    pub fn new(iface: &str) -> Result<Self, PinError> {
        if !crate::netif::valid_name(iface) {
            return Err(PinError::Interface(iface.to_owned()));
        }
        Ok(Self {
            iface: iface.to_owned(),
            pin_dir: Path::new(BPFFS).join("quic-router").join(iface),
            run_dir: Path::new("/run/quic-router").join(iface),
        })
    }

    /// The pinned XDP link.
    pub fn link(&self) -> PathBuf {
        self.pin_dir.join("link")
    }

    /// The pinned `SO_REUSEPORT` program that local workers' socket groups run.
    pub fn worker_program(&self) -> PathBuf {
        self.pin_dir.join("select_worker")
    }

    /// The run state (`state.json`).
    pub fn state(&self) -> PathBuf {
        self.run_dir.join("state.json")
    }

    /// The controller's control socket.
    pub fn control_socket(&self) -> PathBuf {
        self.run_dir.join("control.sock")
    }

    /// The lock a controller holds for as long as it runs.
    pub fn lock_file(&self) -> PathBuf {
        self.run_dir.join("controller.lock")
    }

    /// Takes the interface's controller lock (`flock`, exclusive): without waiting, or waiting
    /// up to `wait`. Held until the returned guard drops, or the process ends.
    pub fn lock(&self, wait: Duration) -> Result<ControllerLock, PinError> {
        let path = self.lock_file();
        let error = |source| PinError::Create {
            path: path.display().to_string(),
            source,
        };
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(error)?;
        let deadline = Instant::now() + wait;
        loop {
            // SAFETY: flock on a descriptor this function owns.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                // For the refusal of the next one: who holds it.
                let _ = file.set_len(0);
                let _ = (&file).write_all(std::process::id().to_string().as_bytes());
                return Ok(ControllerLock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(error(err));
            }
            if Instant::now() >= deadline {
                // A pid: a few octets of our own writing.
                let holder = crate::files::read_regular(&path, 32).unwrap_or_default();
                return Err(PinError::Locked {
                    iface: self.iface.clone(),
                    holder: String::from_utf8_lossy(&holder).trim().parse().ok(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Mounts bpffs if needed and creates both directories, root-only.
    pub fn prepare(&self) -> Result<(), PinError> {
        mount_bpffs()?;
        for dir in [&self.pin_dir, &self.run_dir] {
            private_dir(dir)?;
        }
        Ok(())
    }
}

/// Mounts bpffs if needed and creates `dir` in it (and its parents), root-only.
pub(crate) fn private_pin_dir(dir: &Path) -> Result<(), PinError> {
    mount_bpffs()?;
    private_dir(dir)
}

fn is_bpffs(path: &str) -> bool {
    let Ok(c_path) = CString::new(path) else {
        return false;
    };
    // SAFETY: statfs fills the struct it is given.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    unsafe { libc::statfs(c_path.as_ptr(), &mut stat) == 0 && stat.f_type as i64 == BPF_FS_MAGIC }
}

/// Mounts bpffs at /sys/fs/bpf unless it is there.
fn mount_bpffs() -> Result<(), PinError> {
    if is_bpffs(BPFFS) {
        return Ok(());
    }
    let (source, target, fstype, data) = (c"bpf", c"/sys/fs/bpf", c"bpf", c"mode=0700");
    // SAFETY: all arguments are NUL-terminated strings.
    let status = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            data.as_ptr().cast(),
        )
    };
    if status != 0 {
        return Err(PinError::Mount(std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Creates `dir` and its missing parents with mode 0700 (and makes `dir` 0700 if it exists).
fn private_dir(dir: &Path) -> Result<(), PinError> {
    let error = |source| PinError::Create {
        path: dir.display().to_string(),
        source,
    };
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(error)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(error)
}
