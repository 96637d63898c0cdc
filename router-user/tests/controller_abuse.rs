//! The controller under abuse: descriptors exhausted by connections to its metrics port and
//! control socket, oversized and malformed requests. It must survive, recover, and keep
//! serving. Needs root.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    os::unix::net::UnixStream,
    path::Path,
    thread,
    time::{Duration, Instant},
};

use integration_tests::{
    addresses::{QUIC_PORT, VIP4},
    config_text::ConfigText,
    deployment::Deployment,
    netns,
    process::scrape,
};

const BINARY: &str = env!("CARGO_BIN_EXE_quic-router");
const METRICS: &str = "127.0.0.1:19465";
const CONTROL_SOCKET: &str = "/run/quic-router/r0/control.sock";

fn deployment() -> Deployment {
    let deployment = Deployment::new(Path::new(BINARY), 1);
    deployment.write_config(
        &ConfigText::new()
            .listener(VIP4, QUIC_PORT, None)
            .quic_lb(0, 2, 6, 0, None)
            .backend(&deployment.backend(0, "alpha").server_id(0, "0a01"))
            .build(),
    );
    deployment
}

/// The number of descriptors process `pid` has open.
fn open_descriptors(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the controller's descriptors")
        .count() as u64
}

/// Sets process `pid`'s soft and hard limit on open descriptors.
fn limit_descriptors(pid: u32, limit: u64) {
    let new = libc::rlimit {
        rlim_cur: limit,
        rlim_max: limit,
    };
    // SAFETY: prlimit reads `new` and writes nothing (old is null).
    let status =
        unsafe { libc::prlimit(pid as i32, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()) };
    assert_eq!(status, 0, "prlimit: {}", std::io::Error::last_os_error());
}

/// A change refused before anything was written: exit status 2, one line that says so and
/// names `cause`, and the config file (`text`) and the router (`epoch`) as they were.
fn assert_refused_unchanged(
    setup: &Deployment,
    (status, _, stderr): (i32, String, String),
    cause: &str,
    text: &str,
    epoch: Option<u64>,
) {
    assert_eq!(status, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("nothing was changed") && stderr.contains(cause),
        "{stderr}"
    );
    assert_eq!(std::fs::read_to_string(setup.config_path()).unwrap(), text);
    let status = setup.status();
    assert_eq!(status["epoch"].as_u64(), epoch, "the maps were changed");
    assert_eq!(
        status["kernel_epoch"].as_u64(),
        epoch,
        "the maps were changed"
    );
}

/// Waits until `ready` holds (every 100 ms), at most `within`.
fn eventually(within: Duration, what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ready() {
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn descriptor_exhaustion_does_not_stop_the_metrics_or_the_control_socket() {
    let setup = deployment();
    let mut controller = setup.start(&["--metrics-addr", METRICS]);
    let netns = setup.topology.router.name.clone();
    assert!(
        scrape(&netns, METRICS)
            .unwrap()
            .contains("quic_router_packets_total")
    );
    // Room for a few more descriptors than it holds now: far fewer than the connections.
    let pid = controller.pid();
    limit_descriptors(pid, open_descriptors(pid) + 8);

    // Half-sent requests to the metrics port (what any local user can do) and idle
    // connections to the control socket, held at once.
    let metrics_clients = {
        let netns = netns.clone();
        thread::spawn(move || {
            let _inside = netns::enter(&netns);
            (0..100)
                .filter_map(|_| {
                    let mut stream = TcpStream::connect(METRICS).ok()?;
                    stream.write_all(b"GET / HTTP/1.1\r\n").ok()?;
                    Some(stream)
                })
                .collect::<Vec<_>>()
        })
        .join()
        .unwrap()
    };
    let control_clients: Vec<UnixStream> = (0..50)
        .filter_map(|_| UnixStream::connect(CONTROL_SOCKET).ok())
        .collect();
    // (Fewer than the listen backlog: beyond it, the kernel drops connection attempts and
    // clients retry for minutes.)
    assert_eq!(metrics_clients.len(), 100);
    assert_eq!(control_clients.len(), 50);
    eventually(
        Duration::from_secs(20),
        "the accept loops hit the limit",
        || controller.log_text().contains("cannot accept; retrying"),
    );
    assert!(controller.running(), "{}", controller.log_text());

    // Gone again: both serve as before, and the controller never stopped.
    drop(metrics_clients);
    drop(control_clients);
    eventually(Duration::from_secs(60), "a reload is answered", || {
        setup.cli(&["reload", "--iface", "r0"]).0 == 0
    });
    eventually(Duration::from_secs(60), "a scrape is answered", || {
        scrape(&netns, METRICS).is_ok_and(|body| body.contains("quic_router_packets_total"))
    });
    assert!(controller.running(), "{}", controller.log_text());
    assert!(
        !controller.log_text().contains("stopped"),
        "{}",
        controller.log_text()
    );
}

#[test]
fn control_requests_are_bounded_in_size_time_and_encoding() {
    let setup = deployment();
    let mut controller = setup.start(&[]);
    let ask = |request: &[u8]| -> String {
        let mut stream = UnixStream::connect(CONTROL_SOCKET).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        // The controller may close the connection before it has taken all of a huge line.
        let _ = stream.write_all(request);
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer
    };
    let huge = vec![b'x'; 1 << 20];
    assert!(
        ask(&huge).contains("a request is at most 65536 octets"),
        "a megabyte without a newline"
    );
    assert!(ask(b"\xff\xfe{}\n").contains("a request is UTF-8 JSON"));
    assert!(ask(b"{\"command\":\"launch\"}\n").contains("not a request"));
    // A connection that sends nothing is answered, and closed, after the request timeout.
    let started = Instant::now();
    let answer = ask(b"");
    assert!(answer.contains("no request line within 10 s"), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(controller.running(), "{}", controller.log_text());
    assert_eq!(setup.cli(&["reload", "--iface", "r0"]).0, 0);
}

#[test]
fn one_controller_per_interface_whatever_happens_to_its_socket() {
    let setup = deployment();
    let controller = setup.start(&[]);
    let run = || setup.run_until_exit("r0");
    let refused = |(status, _, stderr): (i32, String, String)| {
        assert_eq!(status, 2, "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(&format!(
                "a controller already runs for r0 (pid {})",
                controller.pid()
            )),
            "{stderr}"
        );
    };
    refused(run());
    // Without its control socket the controller still holds the interface.
    std::fs::remove_file(CONTROL_SOCKET).unwrap();
    refused(run());
    let epoch = setup.status()["epoch"].as_u64();
    // Once it is gone (SIGKILL: the kernel releases the lock), a new one takes over.
    controller.kill();
    let _next = setup.start(&[]);
    assert_eq!(setup.status()["epoch"].as_u64(), epoch.map(|e| e + 1));
}

/// Remounts the test's `/run/quic-router` tmpfs at `size`.
fn resize_run(size: &str) {
    let status = std::process::Command::new("mount")
        .args(["-o", &format!("remount,size={size}"), "/run/quic-router"])
        .status()
        .unwrap();
    assert!(status.success(), "remount /run/quic-router");
}

/// Fills the test's `/run/quic-router` until a write fails; the filler's path.
fn fill_run() -> std::path::PathBuf {
    let filler = Path::new("/run/quic-router/filler");
    let mut file = std::fs::File::create(filler).unwrap();
    let block = [0u8; 4096];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
    filler.to_owned()
}

#[test]
fn an_edit_that_cannot_apply_changes_neither_the_file_nor_the_maps() {
    let setup = deployment();
    let _controller = setup.start(&[]);
    let text = std::fs::read_to_string(setup.config_path()).unwrap();
    let epoch = setup.status()["epoch"].as_u64();
    // An interface this host lacks: refused before anything is written.
    assert_refused_unchanged(
        &setup,
        setup.add_host("delta", "nope0", "02:00:00:00:0d:01", "0:0a04"),
        "nope0",
        &text,
        epoch,
    );
    // Later edits still apply, and a restart takes the file as it is.
    let (status, _, stderr) = setup.add_host("delta", "r1", "02:00:00:00:0d:01", "0:0a04");
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(setup.status()["epoch"].as_u64(), epoch.map(|e| e + 1));
    assert!(
        std::fs::read_to_string(setup.config_path())
            .unwrap()
            .contains("delta")
    );
}

#[test]
fn a_full_run_directory_refuses_changes_and_starts_with_nothing_changed() {
    let setup = deployment();
    let controller = setup.start(&[]);
    let text = std::fs::read_to_string(setup.config_path()).unwrap();
    let epoch = setup.status()["epoch"].as_u64();
    resize_run("1m");
    let filler = fill_run();
    assert_refused_unchanged(
        &setup,
        setup.cli(&["backend", "drain", "--iface", "r0", "alpha"]),
        "No space left on device",
        &text,
        epoch,
    );
    let leftovers: Vec<_> = std::fs::read_dir("/run/quic-router/r0")
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".new"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A controller that starts now refuses before it changes anything.
    controller.kill();
    let (status, _, stderr) = setup.run_until_exit("r0");
    assert_ne!(status, 0, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert_eq!(setup.status()["kernel_epoch"].as_u64(), epoch);

    // With room again, both work.
    std::fs::remove_file(filler).unwrap();
    let _controller = setup.start(&[]);
    setup.cli_ok(&["backend", "drain", "--iface", "r0", "alpha"]);
    assert_eq!(setup.status()["epoch"].as_u64(), epoch.map(|e| e + 2));
}

#[test]
fn a_failed_start_leaves_nothing_behind() {
    let setup = deployment();
    let (status, _, stderr) = setup.run_until_exit("typo0");
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("interface typo0"), "{stderr}");
    assert!(!Path::new("/sys/fs/bpf/quic-router/typo0").exists());
    assert!(!Path::new("/run/quic-router/typo0").exists());

    // A backend behind an interface this host lacks: refused after the maps were made, and
    // they go again.
    setup.write_config(
        &ConfigText::new()
            .listener(VIP4, QUIC_PORT, None)
            .quic_lb(0, 2, 6, 0, None)
            .backend(
                &integration_tests::config_text::BackendText::host(
                    "alpha",
                    "nope0",
                    "02:00:00:00:0a:01",
                )
                .server_id(0, "0a01"),
            )
            .build(),
    );
    let (status, _, stderr) = setup.run_until_exit("r0");
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("nope0"), "{stderr}");
    let pins = std::fs::read_dir("/sys/fs/bpf/quic-router/r0").map_or(0, |dir| dir.count());
    assert_eq!(pins, 0, "pins left behind");
    let (status, _, stderr) = setup.cli(&["status", "--iface", "r0"]);
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("no router is attached to r0"), "{stderr}");
}

#[test]
fn an_unprivileged_user_is_told_permission_is_denied_not_that_nothing_runs() {
    use std::os::unix::process::CommandExt as _;
    let setup = deployment();
    let _controller = setup.start(&[]);
    for command in [
        vec!["status", "--iface", "r0"],
        vec!["stats", "--iface", "r0"],
    ] {
        // `nobody`: the pins and the run state are root's (mode 0700).
        let out = std::process::Command::new(BINARY)
            .args(&command)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("Permission denied") && !stderr.contains("no router"),
            "{command:?}: {stderr}"
        );
    }
}

#[test]
fn a_config_write_on_a_full_disk_leaves_the_file_as_it_was_and_nothing_beside_it() {
    let _mounts = integration_tests::mounts::PrivateMounts::enter();
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "mount a small tmpfs");
    let path = dir.path().join("router.toml");
    std::fs::write(&path, "# the config as it was\n").unwrap();
    let mut filler = std::fs::File::create(dir.path().join("filler")).unwrap();
    while filler.write_all(&[0; 4096]).is_ok() {}
    let err = router_user::config_edit::write(&path, &"# an edit\n".repeat(2000)).unwrap_err();
    assert!(err.to_string().contains("No space left on device"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "# the config as it was\n"
    );
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["filler", "router.toml"]);
    drop(filler);
    let status = std::process::Command::new("umount")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "unmount the small tmpfs");
}

#[test]
fn a_controller_that_closes_without_an_answer_leaves_the_outcome_unknown_and_says_so() {
    let setup = deployment();
    // Not a controller: a socket that takes the request and closes.
    std::fs::create_dir_all("/run/quic-router/r0").unwrap();
    let listener = std::os::unix::net::UnixListener::bind(CONTROL_SOCKET).unwrap();
    let closer = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut line = [0u8; 64];
        let _ = stream.read(&mut line);
    });
    let (status, _, stderr) = setup.cli(&["backend", "drain", "--iface", "r0", "alpha"]);
    closer.join().unwrap();
    assert_eq!(status, 1, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("whether the request was carried out is unknown")
            && stderr.contains("quic-router status --iface r0"),
        "{stderr}"
    );
}

#[test]
fn bad_names_fifos_and_garbage_reach_the_running_controller_and_change_nothing() {
    let setup = deployment();
    let mut controller = setup.start(&["--metrics-addr", METRICS]);
    let netns = setup.topology.router.name.clone();
    let epoch = setup.status()["epoch"].as_u64();
    let text = std::fs::read_to_string(setup.config_path()).unwrap();

    // A backend name the metrics could not carry.
    let (status, _, stderr) = setup.add_host("q\"x", "r1", "02:00:00:00:0d:01", "0:0a04");
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("backend name"), "{stderr}");

    // Not HTTP, to the metrics port: answered or closed, and the next scrape is served.
    let garbage = {
        let netns = netns.clone();
        thread::spawn(move || {
            let _inside = netns::enter(&netns);
            let mut stream = TcpStream::connect(METRICS).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            stream
                .write_all(b"\x16\x03\x01 not http at all\r\n\r\n")
                .unwrap();
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
            String::from_utf8_lossy(&answer).into_owned()
        })
        .join()
        .unwrap()
    };
    assert!(
        garbage.is_empty() || garbage.starts_with("HTTP/1.1 400"),
        "{garbage:?}"
    );
    assert!(
        scrape(&netns, METRICS)
            .unwrap()
            .contains("quic_router_packets_total")
    );

    // A FIFO in the config file's place: the controller's file check and a reload refuse it
    // at once, and the router keeps what it runs.
    let path = setup.config_path();
    std::fs::remove_file(&path).unwrap();
    let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let (status, _, stderr) = setup.cli(&["reload", "--iface", "r0"]);
    assert_eq!(status, 2, "{stderr}");
    assert!(
        stderr.contains("is not a regular file (a FIFO)"),
        "{stderr}"
    );
    eventually(Duration::from_secs(10), "the file check notices", || {
        controller.log_text().contains("a FIFO")
    });
    assert_eq!(setup.status()["epoch"].as_u64(), epoch);
    assert!(controller.running(), "{}", controller.log_text());
    std::fs::remove_file(&path).unwrap();
    setup.write_config(&text);
    assert_eq!(setup.cli(&["reload", "--iface", "r0"]).0, 0);
}
