//! `quic-router cid` end to end: the draft's vectors in both directions through the binary,
//! and one clear line with exit status 2 for every kind of bad input.

use std::{fs, os::unix::fs::PermissionsExt as _, path::Path};

use integration_tests::process::{self, CliOutput, run_cli};
use serde_json::Value;

const VECTORS: &str = include_str!("../../router-common/tests/data/quic_lb_vectors.json");

fn quic_router(args: &[&str]) -> CliOutput {
    run_cli(Path::new(env!("CARGO_BIN_EXE_quic-router")), args)
}

fn assert_bad_input(args: &[&str], needle: &str) {
    process::assert_bad_input(Path::new(env!("CARGO_BIN_EXE_quic-router")), args, needle);
}

fn vectors() -> Vec<Value> {
    let file: Value = serde_json::from_str(VECTORS).unwrap();
    file["vectors"].as_array().unwrap().clone()
}

fn key_args(vector: &Value) -> Vec<String> {
    match vector["key"].as_str() {
        Some(key) => vec!["--key".into(), key.into()],
        None => vec![],
    }
}

fn mode_name(vector: &Value) -> &'static str {
    match vector["mode"].as_str().unwrap() {
        "plaintext" => "plaintext",
        "single_pass" => "single-pass",
        "four_pass" => "four-pass",
        other => panic!("unknown mode {other}"),
    }
}

#[test]
fn decode_prints_every_vector() {
    for v in vectors() {
        let (sid_len, nonce_len) = (v["server_id_len"].to_string(), v["nonce_len"].to_string());
        let mut args = vec![
            "cid",
            "decode",
            "--server-id-len",
            &sid_len,
            "--nonce-len",
            &nonce_len,
        ];
        let keys = key_args(&v);
        args.extend(keys.iter().map(String::as_str));
        args.push(v["cid"].as_str().unwrap());

        let out = quic_router(&args);
        assert_eq!(out.status, 0, "{}: {}", v["id"], out.stderr);
        let expected = format!(
            "config_rotation={} server_id={} nonce={} mode={}\n",
            v["config_rotation"],
            v["server_id"].as_str().unwrap(),
            v["nonce"].as_str().unwrap(),
            mode_name(&v)
        );
        assert_eq!(out.stdout, expected, "{}", v["id"]);

        args.insert(2, "--json");
        let out = quic_router(&args);
        assert_eq!(out.status, 0, "{}: {}", v["id"], out.stderr);
        let json: Value = serde_json::from_str(&out.stdout).expect("one JSON object");
        let object = json.as_object().unwrap();
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["config_rotation", "mode", "nonce", "server_id"]);
        assert_eq!(json["config_rotation"], v["config_rotation"], "{}", v["id"]);
        assert_eq!(json["server_id"], v["server_id"], "{}", v["id"]);
        assert_eq!(json["nonce"], v["nonce"], "{}", v["id"]);
        assert_eq!(json["mode"], mode_name(&v), "{}", v["id"]);
    }
}

#[test]
fn encode_prints_every_vector() {
    for v in vectors() {
        let cr = v["config_rotation"].to_string();
        let mut args = vec![
            "cid",
            "encode",
            "--config-rotation",
            &cr,
            "--server-id",
            v["server_id"].as_str().unwrap(),
            "--nonce",
            v["nonce"].as_str().unwrap(),
        ];
        let keys = key_args(&v);
        args.extend(keys.iter().map(String::as_str));
        let out = quic_router(&args);
        assert_eq!(out.status, 0, "{}: {}", v["id"], out.stderr);
        assert_eq!(
            out.stdout.trim_end(),
            v["cid"].as_str().unwrap(),
            "{}",
            v["id"]
        );
        if let Some(key) = v["key"].as_str() {
            assert!(!out.stdout.contains(key) && !out.stderr.contains(key));
        }
    }
}

#[test]
fn random_nonces_decode_back() {
    let key = "8f95f09245765f80256934e50c66207f";
    for (sid, nonce_len) in [("ab", "4"), ("0102030405", "11"), ("0a0b0c", "13")] {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..4 {
            let out = quic_router(&[
                "cid",
                "encode",
                "--config-rotation",
                "3",
                "--server-id",
                sid,
                "--nonce-len",
                nonce_len,
                "--key",
                key,
                "--json",
            ]);
            assert_eq!(out.status, 0, "{}", out.stderr);
            let minted: Value = serde_json::from_str(&out.stdout).unwrap();
            assert!(!out.stdout.contains(key));
            let cid = minted["cid"].as_str().unwrap().to_owned();
            let sid_len = (sid.len() / 2).to_string();
            let out = quic_router(&[
                "cid",
                "decode",
                "--server-id-len",
                &sid_len,
                "--nonce-len",
                nonce_len,
                "--key",
                key,
                "--json",
                &cid,
            ]);
            assert_eq!(out.status, 0, "{}", out.stderr);
            let decoded: Value = serde_json::from_str(&out.stdout).unwrap();
            assert_eq!(decoded["server_id"], sid);
            assert_eq!(decoded["nonce"], minted["nonce"]);
            assert_eq!(decoded["config_rotation"], 3);
            seen.insert(cid);
        }
        assert_eq!(seen.len(), 4, "random nonces repeated");
    }
}

#[test]
fn no_length_self_description_randomises_the_low_bits() {
    let mut low_bits = std::collections::HashSet::new();
    for _ in 0..24 {
        let out = quic_router(&[
            "cid",
            "encode",
            "--config-rotation",
            "2",
            "--server-id",
            "aa",
            "--nonce",
            "01020304",
            "--no-length-self-description",
        ]);
        assert_eq!(out.status, 0, "{}", out.stderr);
        let first = u8::from_str_radix(&out.stdout[..2], 16).unwrap();
        assert_eq!(first >> 5, 2);
        assert_eq!(&out.stdout.trim_end()[2..], "aa01020304");
        low_bits.insert(first & 0x1f);
    }
    assert!(low_bits.len() > 4, "low bits look constant: {low_bits:?}");
}

fn write_key_file(dir: &Path, name: &str, contents: &[u8], mode: u32) -> String {
    let path = dir.join(name);
    fs::write(&path, contents).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn key_files_work_and_must_be_private_to_their_owner() {
    let dir = tempfile::tempdir().unwrap();
    let key_hex = "fdf726a9893ec05c0632d3956680baf0";
    let hex_file = write_key_file(
        dir.path(),
        "hex.key",
        format!("{key_hex}\n").as_bytes(),
        0o600,
    );
    let raw_file = write_key_file(dir.path(), "raw.key", &hex_decode(key_hex), 0o400);
    for file in [&hex_file, &raw_file] {
        let out = quic_router(&decode_with_key_file(file, "0767947d29be054a"));
        assert_eq!(out.status, 0, "{}", out.stderr);
        assert_eq!(
            out.stdout,
            "config_rotation=0 server_id=31441a nonce=9c69c275 mode=four-pass\n"
        );
    }

    let open_file = write_key_file(dir.path(), "open.key", key_hex.as_bytes(), 0o644);
    assert_bad_input(
        &decode_with_key_file(&open_file, "0767947d29be054a"),
        "accessible to its group and other users",
    );
    let group_file = write_key_file(dir.path(), "group.key", key_hex.as_bytes(), 0o640);
    assert_bad_input(
        &decode_with_key_file(&group_file, "0767947d29be054a"),
        "accessible to its group (mode 0640)",
    );
    let bad_file = write_key_file(dir.path(), "bad.key", b"not a key at all\n", 0o600);
    assert_bad_input(
        &[
            "cid",
            "encode",
            "--config-rotation",
            "0",
            "--server-id",
            "01",
            "--nonce-len",
            "4",
            "--key-file",
            &bad_file,
        ],
        "neither 32 hex digits nor 16 raw octets",
    );
    let missing = dir.path().join("missing.key");
    assert_bad_input(
        &decode_with_key_file(missing.to_str().unwrap(), "07c4605e4504cc4f"),
        "key file: cannot open",
    );
}

/// `cid decode` with the worked example's lengths, followed by `rest`.
fn decode_args<'a>(rest: &[&'a str]) -> Vec<&'a str> {
    let decode = ["cid", "decode", "--server-id-len", "3", "--nonce-len", "4"];
    [&decode[..], rest].concat()
}

/// `cid decode` of `cid` with the worked example's lengths and the key in `key_file`.
fn decode_with_key_file<'a>(key_file: &'a str, cid: &'a str) -> Vec<&'a str> {
    decode_args(&["--key-file", key_file, cid])
}

fn hex_decode(digits: &str) -> Vec<u8> {
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn bad_input_gives_one_line_and_status_2() {
    // Codepoint 0b111 and CIDs too short for the lengths.
    assert_bad_input(&decode_args(&["e7c4605e4504cc4f"]), "unroutable");
    assert_bad_input(&decode_args(&["07c4605e4504cc"]), "too short");
    // Hex, lengths, keys.
    assert_bad_input(&decode_args(&["07c4605e4504cc4"]), "not valid hex");
    assert_bad_input(&decode_args(&["07c4605e4504cc4fzz"]), "not valid hex");
    assert_bad_input(&decode_args(&[""]), "1..=20 octets");
    assert_bad_input(
        &decode_args(&["07c4605e4504cc4f07c4605e4504cc4f07c4605e4504"]),
        "1..=20 octets",
    );
    assert_bad_input(
        &decode_args(&["--key", "0011", "07c4605e4504cc4f"]),
        "16 octets, got 2",
    );
    assert_bad_input(
        &decode_args(&[
            "--key",
            "fdf726a9893ec05c0632d3956680baf",
            "07c4605e4504cc4f",
        ]),
        "not 32 hex digits",
    );
    assert_bad_input(
        &[
            "cid",
            "decode",
            "--server-id-len",
            "0",
            "--nonce-len",
            "4",
            "07c4605e4504cc4f",
        ],
        "server ID length 0",
    );
    assert_bad_input(
        &[
            "cid",
            "decode",
            "--server-id-len",
            "3",
            "--nonce-len",
            "19",
            "07c4605e4504cc4f",
        ],
        "nonce length 19",
    );
    assert_bad_input(
        &[
            "cid",
            "decode",
            "--server-id-len",
            "12",
            "--nonce-len",
            "8",
            "07c4605e4504cc4f",
        ],
        "exceeds 19 octets",
    );
    assert_bad_input(
        &[
            "cid",
            "decode",
            "--server-id-len",
            "-1",
            "--nonce-len",
            "4",
            "07",
        ],
        "'-1'",
    );
    assert_bad_input(
        &["cid", "decode", "--server-id-len", "3", "07c4605e4504cc4f"],
        "--nonce-len",
    );
    assert_bad_input(&["cid", "frobnicate"], "frobnicate");

    let encode = ["cid", "encode", "--server-id", "0102"];
    let with = |extra: &[&'static str]| [&encode[..], extra].concat();
    assert_bad_input(
        &with(&["--config-rotation", "7", "--nonce-len", "4"]),
        "reserved",
    );
    assert_bad_input(
        &with(&["--config-rotation", "9", "--nonce-len", "4"]),
        "out of range 0..=6",
    );
    assert_bad_input(&with(&["--config-rotation", "0"]), "--nonce");
    assert_bad_input(
        &with(&[
            "--config-rotation",
            "0",
            "--nonce",
            "01",
            "--nonce-len",
            "4",
        ]),
        "cannot be used with",
    );
    assert_bad_input(
        &with(&["--config-rotation", "0", "--nonce", "010203"]),
        "nonce length 3",
    );
    assert_bad_input(
        &with(&[
            "--config-rotation",
            "0",
            "--nonce-len",
            "4",
            "--server-use-len",
            "15",
        ]),
        "exceeds 20",
    );
    assert_bad_input(
        &with(&["--config-rotation", "0", "--nonce-len", "4", "--key", "abc"]),
        "not 32 hex digits",
    );
    assert_bad_input(
        &with(&[
            "--config-rotation",
            "0",
            "--nonce-len",
            "4",
            "--key",
            "00",
            "--key-file",
            "/nonexistent",
        ]),
        "cannot be used with",
    );
    assert_bad_input(
        &[
            "cid",
            "encode",
            "--config-rotation",
            "0",
            "--server-id",
            "",
            "--nonce-len",
            "4",
        ],
        "server ID length 0",
    );
    assert_bad_input(
        &[
            "cid",
            "encode",
            "--config-rotation",
            "0",
            "--server-id",
            "0g",
            "--nonce-len",
            "4",
        ],
        "--server-id is not valid hex",
    );
}

#[test]
fn key_is_never_echoed_in_errors() {
    // A key of the wrong length and one with a bad digit: the message must not repeat them.
    for key in [
        "fdf726a9893ec05c0632d3956680baf0aa",
        "fdf726a9893ec05c0632d3956680bafz",
    ] {
        let out = quic_router(&decode_args(&["--key", key, "0767947d29be054a"]));
        assert_eq!(out.status, 2);
        assert!(!out.stderr.contains("fdf726a9"), "{}", out.stderr);
    }
}
