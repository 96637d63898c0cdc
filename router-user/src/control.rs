//! The controller's control socket (`/run/quic-router/<iface>/control.sock`, mode 0600): one
//! JSON request per connection, one JSON response.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use serde::{Deserialize, Serialize};

use crate::config_edit::Edit;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Request {
    /// Edit the config file, then apply it.
    Edit { edit: Edit },
    /// Read the config file again and apply it.
    Reload,
    /// Stop the controller (the data path stays).
    Shutdown,
    /// Announce the VIPs again (`[announce]`) after a `Withdraw`.
    Announce,
    /// Withdraw the VIPs' routes until `Announce`: a drain for maintenance.
    Withdraw,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    pub message: String,
    /// The epoch after the request: changes applied so far.
    pub epoch: u32,
}

impl Response {
    /// A request refused before it reached the controller's work.
    pub fn refused(message: impl Into<String>) -> Self {
        Self {
            ok: false,
            message: message.into(),
            epoch: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no controller is running for {iface} ({path}: {source})")]
    NotRunning {
        iface: String,
        path: String,
        source: std::io::Error,
    },
    #[error("talking to the controller: {0}")]
    Io(#[from] std::io::Error),
    #[error(
        "the controller gave no answer (it may have stopped): whether the request was carried out is unknown; `quic-router status --iface {iface}` shows the epoch and the backends the router runs"
    )]
    NoAnswer { iface: String },
    #[error("the controller's answer is not understood: {0}")]
    Answer(#[from] serde_json::Error),
}

/// The longest answer line a controller gives.
const MAX_ANSWER_LEN: u64 = 64 << 10;

/// Sends `request` to the controller listening at `socket` and waits for its answer.
pub fn request(iface: &str, socket: &Path, request: &Request) -> Result<Response, ControlError> {
    let mut stream = UnixStream::connect(socket).map_err(|source| ControlError::NotRunning {
        iface: iface.to_owned(),
        path: socket.display().to_string(),
        source,
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut answer = String::new();
    let no_answer = || ControlError::NoAnswer {
        iface: iface.to_owned(),
    };
    match BufReader::new(stream.take(MAX_ANSWER_LEN)).read_line(&mut answer) {
        Ok(_) if answer.ends_with('\n') => Ok(serde_json::from_str(&answer)?),
        // Cut off, or closed before a whole line.
        Ok(_) => Err(no_answer()),
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => Err(no_answer()),
        Err(err) => Err(err.into()),
    }
}
