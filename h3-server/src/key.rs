//! QUIC-LB key files, read as quic-router reads them: 32 hex digits (surrounding whitespace
//! allowed) or 16 raw octets, in a regular file that only its owner can access. The key never
//! appears in an error.

use std::{
    fs::OpenOptions,
    io::Read as _,
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use router_common::quic_lb::Key;
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read key file {path}: {source}", path = .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} is not a regular file", path = .0.display())]
    NotAFile(PathBuf),
    #[error(
        "key file {path} is accessible to its group or other users (mode {mode:04o}); run `chmod go-rwx {path}`",
        path = .path.display()
    )]
    NotPrivate { path: PathBuf, mode: u32 },
    #[error("key file {path} holds neither 32 hex digits nor 16 raw octets", path = .0.display())]
    Format(PathBuf),
}

/// Longer than any key file with some whitespace around 32 hex digits.
const MAX_LEN: u64 = 256;

/// Reads the QUIC-LB key in `path`.
pub fn load_key_file(path: &Path) -> Result<Key, KeyFileError> {
    let read_error = |source| KeyFileError::Read {
        path: path.to_owned(),
        source,
    };
    // Non-blocking: opening a FIFO put in the key file's place must not hang the server.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(read_error)?;
    // The permissions of the file opened, not of whatever the path names by now.
    let metadata = file.metadata().map_err(read_error)?;
    if !metadata.is_file() {
        return Err(KeyFileError::NotAFile(path.to_owned()));
    }
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::NotPrivate {
            path: path.to_owned(),
            mode,
        });
    }
    let mut contents = Zeroizing::new(Vec::new());
    file.take(MAX_LEN + 1)
        .read_to_end(&mut contents)
        .map_err(read_error)?;
    let format = || KeyFileError::Format(path.to_owned());
    if contents.len() as u64 > MAX_LEN {
        return Err(format());
    }
    if contents.len() == 16 {
        return Key::from_slice(&contents).map_err(|_| format());
    }
    let text = std::str::from_utf8(&contents).map_err(|_| format())?;
    let octets = Zeroizing::new(hex::decode(text.trim()).map_err(|_| format())?);
    Key::from_slice(&octets).map_err(|_| format())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn key_file(dir: &Path, contents: &[u8], mode: u32) -> PathBuf {
        let path = dir.join("lb.key");
        fs::write(&path, contents).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn hex_and_raw_keys_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = key_file(dir.path(), b"  000102030405060708090a0b0c0d0e0f\n", 0o600);
        let expected: Vec<u8> = (0..16).collect();
        assert_eq!(load_key_file(&path).unwrap().as_bytes()[..], expected[..]);
        let path = key_file(dir.path(), &expected, 0o400);
        assert_eq!(load_key_file(&path).unwrap().as_bytes()[..], expected[..]);
    }

    #[test]
    fn bad_key_files_are_refused_without_showing_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let secret = "00112233445566778899aabbccddeeff";
        for mode in [0o640, 0o604, 0o660] {
            let path = key_file(dir.path(), secret.as_bytes(), mode);
            let message = load_key_file(&path).unwrap_err().to_string();
            assert!(message.contains("chmod go-rwx"), "{message}");
            assert!(!message.contains(secret));
        }
        for contents in [
            &b"00112233"[..],
            b"zz112233445566778899aabbccddeeff",
            &[b'0'; 300],
        ] {
            let path = key_file(dir.path(), contents, 0o600);
            let message = load_key_file(&path).unwrap_err().to_string();
            assert!(message.contains("neither 32 hex digits"), "{message}");
        }
        let message = load_key_file(dir.path()).unwrap_err().to_string();
        assert!(message.contains("not a regular file"), "{message}");
        let message = load_key_file(&dir.path().join("absent"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("cannot read key file"), "{message}");
    }
}
