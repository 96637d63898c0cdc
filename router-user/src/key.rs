//! QUIC-LB keys from the command line or from key files. Key material never appears in an
//! error message, and key files must not be accessible to other users.

use std::{fs::File, io::Read as _, os::unix::fs::PermissionsExt as _, path::Path};

use router_common::quic_lb::{Key, KeyError};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "key file {path} is accessible to other users (mode {mode:04o}); run `chmod o-rwx {path}`"
    )]
    WorldAccessible { path: String, mode: u32 },
    #[error("key file {path} holds neither 32 hex digits nor 16 raw octets")]
    FileFormat { path: String },
    #[error("the key is not 32 hex digits")]
    HexFormat,
    #[error(transparent)]
    Length(#[from] KeyError),
}

/// Parses a key given as 32 hex digits. The error never echoes the input.
pub fn parse_key_hex(hex_digits: &str) -> Result<Key, KeyFileError> {
    let bytes =
        Zeroizing::new(hex::decode(hex_digits.trim()).map_err(|_| KeyFileError::HexFormat)?);
    Ok(Key::from_slice(&bytes)?)
}

/// Reads a key file: 32 hex digits (surrounding whitespace allowed) or 16 raw octets.
/// Refuses a file that other users can read, write or execute.
pub fn load_key_file(path: &Path) -> Result<Key, KeyFileError> {
    let shown = path.display().to_string();
    let read_error = |source| KeyFileError::Read {
        path: shown.clone(),
        source,
    };
    let mut file = File::open(path).map_err(read_error)?;
    // Check the permissions of the file we opened, not of whatever the path names later.
    let mode = file.metadata().map_err(read_error)?.permissions().mode() & 0o7777;
    if mode & 0o007 != 0 {
        return Err(KeyFileError::WorldAccessible { path: shown, mode });
    }
    let mut contents = Zeroizing::new(Vec::new());
    // A key file is tiny; reading a few more octets is enough to reject anything bigger.
    file.by_ref()
        .take(256)
        .read_to_end(&mut contents)
        .map_err(read_error)?;
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
