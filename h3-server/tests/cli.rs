//! The `h3-server` binary: bad input gives one line and exit status 2, never the key; a good
//! start serves until SIGTERM. Each run in a network namespace of its own (needs root).

mod isolated;

use std::{
    fs,
    io::{BufRead as _, BufReader},
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::Duration,
};

const KEY: &str = "00112233445566778899aabbccddeeff";

/// `h3-server ARGS`, in a network namespace of its own.
fn h3_server(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_h3-server"));
    command.args(args).env_remove("RUST_LOG");
    // SAFETY: `isolated::enter` makes system calls only.
    unsafe { command.pre_exec(isolated::enter) };
    command
}

/// A good command line but for what `change` does to it.
fn args_with(dir: &Path, change: impl FnOnce(&mut Vec<String>)) -> Vec<String> {
    let key_file = dir.join("lb.key");
    fs::write(&key_file, KEY).expect("write key");
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600)).expect("chmod");
    let mut args: Vec<String> = [
        "--name",
        "alpha",
        "--listen",
        "127.0.0.1:0",
        "--codepoint",
        "0",
        "--server-id-len",
        "2",
        "--nonce-len",
        "6",
        "--server-id",
        "0a01",
        "--self-signed",
        "h3.quic-router.test",
        "--key-file",
    ]
    .map(str::to_owned)
    .to_vec();
    args.push(key_file.display().to_string());
    change(&mut args);
    args
}

/// Makes a good command line bad.
type Change = Box<dyn FnOnce(&mut Vec<String>)>;

fn set(args: &mut [String], flag: &str, value: &str) {
    let at = args.iter().position(|a| a == flag).expect("flag") + 1;
    args[at] = value.to_owned();
}

#[test]
fn bad_input_is_one_line_and_status_2() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let cases: Vec<(Change, &str)> = vec![
        (Box::new(|a| a.push("--bogus".into())), "--bogus"),
        (
            Box::new(|a| set(a, "--listen", "localhost:443")),
            "--listen",
        ),
        (Box::new(|a| set(a, "--codepoint", "7")), "reserved"),
        (Box::new(|a| set(a, "--nonce-len", "19")), "nonce length"),
        (Box::new(|a| set(a, "--server-id", "0a0")), "not hex"),
        (
            Box::new(|a| set(a, "--server-id", "0a0102")),
            "--server-id-len says 2",
        ),
        (
            Box::new(|a| set(a, "--server-id-len", "1")),
            "server ID 0a01 is 2 octets",
        ),
        (Box::new(|a| set(a, "--name", "two words")), "server name"),
        (
            Box::new(|a| a.extend(["--tickets".into(), "shared".into()])),
            "shared",
        ),
        (
            Box::new(|a| a.extend(["--max-connections".into(), "0".into()])),
            "0",
        ),
        (
            Box::new(|a| {
                a.extend([
                    "--cert".into(),
                    "c.pem".into(),
                    "--key".into(),
                    "k.pem".into(),
                ])
            }),
            "cannot be used with",
        ),
        (
            Box::new(|a| {
                let at = a.iter().position(|x| x == "--self-signed").expect("flag");
                a.splice(
                    at..at + 2,
                    [
                        "--cert".into(),
                        "/nonexistent.pem".into(),
                        "--key".into(),
                        "/nonexistent.key".into(),
                    ],
                );
            }),
            "/nonexistent.pem",
        ),
        (
            Box::new(|a| set(a, "--key-file", "/nonexistent.key")),
            "cannot read key file",
        ),
    ];
    for (change, expected) in cases {
        let args = args_with(dir.path(), change);
        let out = h3_server(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .output()
            .expect("run h3-server");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn a_key_file_others_can_read_is_refused_without_showing_the_key() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let args = args_with(dir.path(), |_| {});
    fs::set_permissions(dir.path().join("lb.key"), fs::Permissions::from_mode(0o644))
        .expect("chmod");
    let out = h3_server(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .output()
        .expect("run h3-server");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("chmod go-rwx"), "{stderr}");
    assert!(!stderr.contains(KEY), "{stderr}");
}

#[test]
fn help_exits_0() {
    let out = h3_server(&["--help"]).output().expect("run h3-server");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--no-token-prefix"));
}

#[test]
fn it_serves_until_sigterm() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let args = args_with(dir.path(), |a| {
        a.extend(["--listen".into(), "[::1]:0".into()]);
    });
    let mut child = h3_server(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start h3-server");
    let stderr = child.stderr.take().expect("piped");
    let (sender, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let mut serving = Vec::new();
    while serving.len() < 2 {
        let line = match lines.recv_timeout(Duration::from_secs(10)) {
            Ok(line) => line,
            Err(err) => {
                let _ = child.kill();
                panic!("no `serving` lines ({err}); got {serving:?}");
            }
        };
        if line.contains("serving HTTP/3 on") {
            serving.push(line);
        }
    }
    assert!(
        serving[0].contains("127.0.0.1:") && serving[1].contains("[::1]:"),
        "{serving:?}"
    );
    // SAFETY: a signal to the child this test started and has not waited for yet.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = child.wait().expect("wait for h3-server");
    assert!(status.success(), "{status}");
    let rest: Vec<String> = lines.iter().collect();
    assert!(
        rest.iter().any(|line| line.contains("stopping")),
        "{rest:?}"
    );
    assert!(rest.iter().chain(&serving).all(|line| !line.contains(KEY)));
}
