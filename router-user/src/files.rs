//! Reading the files operators name (configs, key files, captures): regular files only, opened
//! without blocking (a FIFO at the path would hold `open` until a writer came) and read up to
//! a bound (a path to `/dev/zero` must not take the machine's memory).

use std::{
    fs::{File, OpenOptions},
    io::{self, Read as _},
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::Path,
};

/// The largest config file: 100,000 server IDs take about 3 MiB.
pub const MAX_CONFIG_LEN: u64 = 64 << 20;
/// The largest run state: a record of the config (its server IDs among it).
pub const MAX_STATE_LEN: u64 = 4 * MAX_CONFIG_LEN;
/// The largest capture file `explain` reads.
pub const MAX_CAPTURE_LEN: u64 = 256 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot open {path}: {source}")]
    Open { path: String, source: io::Error },
    #[error("{path} is not a regular file ({kind})")]
    NotRegular { path: String, kind: &'static str },
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("{path} is larger than {limit} octets")]
    TooLarge { path: String, limit: u64 },
}

/// What a file that is not a regular one is.
fn kind(file_type: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else {
        "not a file"
    }
}

/// Opens `path` for reading if it is a regular file (following symbolic links), without
/// blocking on a FIFO or a device.
pub fn open_regular(path: &Path) -> Result<File, FileError> {
    let shown = || path.display().to_string();
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|source| FileError::Open {
            path: shown(),
            source,
        })?;
    // The type of what was opened, not of what the path names a moment later.
    let file_type = file
        .metadata()
        .map_err(|source| FileError::Read {
            path: shown(),
            source,
        })?
        .file_type();
    if !file_type.is_file() {
        return Err(FileError::NotRegular {
            path: shown(),
            kind: kind(file_type),
        });
    }
    Ok(file)
}

/// The contents of the regular file at `path`, if it holds at most `limit` octets.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    let file = open_regular(path)?;
    read_bounded(file, path, limit)
}

/// The rest of `file` (at `path`), if it holds at most `limit` octets.
pub fn read_bounded(file: File, path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    let mut contents = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut contents)
        .map_err(|source| FileError::Read {
            path: path.display().to_string(),
            source,
        })?;
    if contents.len() as u64 > limit {
        return Err(FileError::TooLarge {
            path: path.display().to_string(),
            limit,
        });
    }
    Ok(contents)
}

/// Replaces the file at `path` with `contents` atomically: written to `path` with `suffix`
/// appended, synced, given `mode`, renamed over `path`. On an error (a full disk, say) the
/// temporary file is removed and `path` is as it was.
pub fn write_atomically(path: &Path, suffix: &str, contents: &[u8], mode: u32) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(suffix);
    let temporary = std::path::PathBuf::from(temporary);
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&temporary)?;
        io::Write::write_all(&mut file, contents)?;
        file.sync_all()?;
        std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&temporary, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    use std::{ffi::CString, os::unix::ffi::OsStrExt as _};

    use super::*;

    #[test]
    fn a_fifo_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("router.toml");
        let c_path = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let err = read_regular(&fifo, 16).unwrap_err();
        assert!(
            err.to_string().ends_with("is not a regular file (a FIFO)"),
            "{err}"
        );
    }

    #[test]
    fn directories_and_devices_are_refused() {
        let err = read_regular(Path::new("/tmp"), 16).unwrap_err();
        assert!(err.to_string().contains("(a directory)"), "{err}");
        let err = read_regular(Path::new("/dev/zero"), 16).unwrap_err();
        assert!(err.to_string().contains("(a character device)"), "{err}");
    }

    #[test]
    fn reads_stop_at_the_bound() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [7u8; 17]).unwrap();
        assert_eq!(read_regular(&path, 17).unwrap().len(), 17);
        let err = read_regular(&path, 16).unwrap_err();
        assert!(
            err.to_string().ends_with("is larger than 16 octets"),
            "{err}"
        );
    }
}
