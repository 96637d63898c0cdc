//! `quic-router` processes run inside a namespace of the topology (network namespace only:
//! they share the test's mounts, hence its private bpffs).

use std::{
    fs::File,
    os::{fd::AsRawFd as _, unix::process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

fn in_netns(binary: &Path, netns: &str, args: &[&str]) -> Command {
    let target = File::open(format!("/run/netns/{netns}"))
        .unwrap_or_else(|err| panic!("namespace {netns}: {err}"));
    let mut command = Command::new(binary);
    command.args(args);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command
}

/// Runs `quic-router ARGS` in `netns` to completion.
pub fn quic_router(binary: &Path, netns: &str, args: &[&str]) -> Output {
    in_netns(binary, netns, args)
        .output()
        .unwrap_or_else(|err| panic!("run {}: {err}", binary.display()))
}

/// A running `quic-router run`, killed on drop if still running.
pub struct Controller {
    child: Child,
    pub log: PathBuf,
}

impl Controller {
    /// Starts `quic-router run ARGS` in `netns` and waits until its control socket answers.
    pub fn start(binary: &Path, netns: &str, iface: &str, args: &[&str], log: PathBuf) -> Self {
        let mut full = vec!["run", "--iface", iface];
        full.extend_from_slice(args);
        let child = in_netns(binary, netns, &full)
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("controller log"))
            .spawn()
            .unwrap_or_else(|err| panic!("start the controller: {err}"));
        let mut controller = Self { child, log };
        let socket = PathBuf::from(format!("/run/quic-router/{iface}/control.sock"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if let Ok(Some(status)) = controller.child.try_wait() {
                panic!(
                    "the controller exited ({status}):\n{}",
                    controller.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the controller did not start:\n{}",
                controller.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        controller
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no chance to clean anything up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().expect("wait for the controller")
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
