//! QUIC-LB keys from the command line or from key files. Key material never appears in an
//! error message, and key files must be accessible to their owner only.

use std::{os::unix::fs::PermissionsExt as _, path::Path};

use router_common::quic_lb::{Key, KeyError};

use crate::files::{self, FileError};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("key file: {0}")]
    File(#[from] FileError),
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("key file {path} is accessible to {who} (mode {mode:04o}); run `chmod go-rwx {path}`")]
    NotPrivate {
        path: String,
        who: &'static str,
        mode: u32,
    },
    #[error("key file {path} holds neither 32 hex digits nor 16 raw octets")]
    FileFormat { path: String },
    #[error("the key is not 32 hex digits")]
    HexFormat,
    #[error(transparent)]
    Length(#[from] KeyError),
}

/// The largest key file: 32 hex digits with room for surrounding whitespace.
const MAX_KEY_FILE_LEN: u64 = 256;

/// Parses a key given as 32 hex digits. The error never echoes the input.
pub fn parse_key_hex(hex_digits: &str) -> Result<Key, KeyFileError> {
    let bytes =
        Zeroizing::new(hex::decode(hex_digits.trim()).map_err(|_| KeyFileError::HexFormat)?);
    Ok(Key::from_slice(&bytes)?)
}

/// Reads a key file: 32 hex digits (surrounding whitespace allowed) or 16 raw octets, in a
/// regular file. Refuses a file that its group or other users can read, write or execute.
pub fn load_key_file(path: &Path) -> Result<Key, KeyFileError> {
    let shown = path.display().to_string();
    let read_error = |source| KeyFileError::Read {
        path: shown.clone(),
        source,
    };
    let file = files::open_regular(path)?;
    // Check the permissions of the file we opened, not of whatever the path names later.
    let mode = file.metadata().map_err(read_error)?.permissions().mode() & 0o7777;
    let who = match (mode & 0o070 != 0, mode & 0o007 != 0) {
        (false, false) => None,
        (true, false) => Some("its group"),
        (false, true) => Some("other users"),
        (true, true) => Some("its group and other users"),
    };
    if let Some(who) = who {
        return Err(KeyFileError::NotPrivate {
            path: shown,
            who,
            mode,
        });
    }
    let contents = Zeroizing::new(files::read_bounded(file, path, MAX_KEY_FILE_LEN)?);
    if contents.len() == 16 {
        return Ok(Key::from_slice(&contents)?);
    }
    let text = std::str::from_utf8(&contents).map_err(|_| KeyFileError::FileFormat {
        path: shown.clone(),
    })?;
    let bytes = Zeroizing::new(
        hex::decode(text.trim()).map_err(|_| KeyFileError::FileFormat {
            path: shown.clone(),
        })?,
    );
    Key::from_slice(&bytes).map_err(|_| KeyFileError::FileFormat { path: shown })
}
