//! `quic-router` processes run inside a namespace of the topology (network namespace only:
//! they share the test's mounts, hence its private bpffs).

use std::{
    fs::File,
    os::{fd::AsRawFd as _, unix::process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

/// A command that runs `binary ARGS` in network namespace `netns`.
pub fn in_netns(binary: &Path, netns: &str, args: &[&str]) -> Command {
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

/// Runs `quic-router ARGS` in `netns` to completion: (status, stdout, stderr).
pub fn quic_router_text(binary: &Path, netns: &str, args: &[&str]) -> (i32, String, String) {
    let output = quic_router(binary, netns, args);
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
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

/// What a finished command gave.
pub struct CliOutput {
    pub status: i32,
    pub stdout: String,
    pub stderr: String,
}

/// How long a command run by [`run_cli`] may take: commands that fail at once, or hang.
const CLI_DEADLINE: Duration = Duration::from_secs(20);

/// Runs `binary ARGS` in this namespace with no input, killing it (and failing) if it has
/// not finished within 20 s.
pub fn run_cli(binary: &Path, args: &[&str]) -> CliOutput {
    let mut command = Command::new(binary);
    command.args(args);
    run_within(command, CLI_DEADLINE)
}

/// Runs `command` with no input, killing it (and failing) if it has not finished within
/// `deadline`. Its output is read as it comes, so no amount of it can stall it.
pub fn run_within(mut command: Command, deadline: Duration) -> CliOutput {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("run {command:?}: {err}"));
    let pid = child.id() as i32;
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    let out = match finished.recv_timeout(deadline) {
        Ok(out) => out.expect("the command's output"),
        Err(_) => {
            // SAFETY: signalling our own child, not yet reaped (its waiter has not returned).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("{command:?} did not finish within {deadline:?}");
        }
    };
    CliOutput {
        status: out.status.code().expect("an exit status, not a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `binary ARGS` is refused as bad input: exit status 2, nothing on stdout, one line on stderr
/// that mentions `needle` and says each cause once, no panic.
pub fn assert_bad_input(binary: &Path, args: &[&str], needle: &str) {
    let out = run_cli(binary, args);
    assert_eq!(out.status, 2, "{args:?}: {}", out.stderr);
    assert!(out.stdout.is_empty(), "{args:?}: stdout {:?}", out.stdout);
    assert_eq!(out.stderr.lines().count(), 1, "{args:?}: {:?}", out.stderr);
    assert!(
        out.stderr.contains(needle),
        "{args:?}: {:?} lacks {needle:?}",
        out.stderr
    );
    assert!(!out.stderr.contains("panicked"), "{args:?}: {}", out.stderr);
    assert!(
        out.stderr.matches("(os error").count() <= 1,
        "{args:?}: a cause said twice: {}",
        out.stderr
    );
}

/// GET /metrics from `addr` inside `netns` (10 s at most): the whole response, or why not.
pub fn scrape(netns: &str, addr: &str) -> Result<String, String> {
    use std::io::{Read as _, Write as _};
    let (netns, addr) = (netns.to_owned(), addr.to_owned());
    std::thread::spawn(move || {
        let _inside = crate::netns::enter(&netns);
        let mut stream = std::net::TcpStream::connect(&addr).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .map_err(|e| e.to_string())?;
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .map_err(|e| e.to_string())?;
        Ok(response)
    })
    .join()
    .expect("scrape thread")
}
