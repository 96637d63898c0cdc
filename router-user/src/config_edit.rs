//! Edits of the config file for `quic-router backend add|remove|drain|undrain`: the file
//! stays the one source of the router's config, and keeps its comments and layout.

use std::{collections::BTreeMap, fs, os::unix::fs::PermissionsExt as _, path::Path};

use serde::{Deserialize, Serialize};
use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, value};

use crate::{
    config::{self, BackendState, ConfigError, RouterConfig},
    files,
};

/// A backend as `backend add` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendSpec {
    pub name: String,
    /// A host's interface and next hop (none for a local worker).
    pub interface: Option<String>,
    pub next_hop_mac: Option<String>,
    /// `l2`, `gue` or `ipip`, and the tunnel's address (as in the file).
    #[serde(default)]
    pub delivery: Option<String>,
    #[serde(default)]
    pub tunnel_address: Option<String>,
    /// A worker on the router's own host.
    #[serde(default)]
    pub local_worker: bool,
    /// Server IDs in hex, per config rotation codepoint (a string, as in the file).
    pub server_ids: BTreeMap<String, Vec<String>>,
    pub weight: Option<u32>,
    pub state: BackendState,
}

/// A change to the backends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "edit", rename_all = "snake_case")]
pub enum Edit {
    AddBackend { backend: BackendSpec },
    RemoveBackend { name: String },
    SetBackendState { name: String, state: BackendState },
}

#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("{0}; nothing was changed")]
    Unreadable(ConfigError),
    #[error("{path} is not TOML: {message}")]
    Parse { path: String, message: String },
    #[error("backend {0} is already in the config")]
    Exists(String),
    #[error("no backend {0} in the config")]
    Missing(String),
    #[error("the edited config is invalid, nothing was changed: {0}")]
    Invalid(#[from] ConfigError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// An edit of the config file, validated, not yet written ([`prepare`]).
#[derive(Debug)]
pub struct PreparedEdit {
    /// The file's text before.
    pub original: String,
    /// The file's text after.
    pub edited: String,
    /// The config the edited text gives.
    pub config: RouterConfig,
}

/// Applies `edit` to the text of the config file at `path` and validates the result in
/// full; writes nothing.
pub fn prepare(path: &Path, edit: &Edit) -> Result<PreparedEdit, EditError> {
    let original = config::read_text(path).map_err(EditError::Unreadable)?;
    let edited = edit_text(&original, edit).map_err(|err| match err {
        EditError::Parse { message, .. } => EditError::Parse {
            path: path.display().to_string(),
            message,
        },
        other => other,
    })?;
    let config = config::parse(&edited, path)?;
    Ok(PreparedEdit {
        original,
        edited,
        config,
    })
}

/// Replaces the config file at `path` with `text` atomically, keeping its mode; the file is
/// as it was if that fails.
pub fn write(path: &Path, text: &str) -> Result<(), EditError> {
    let error = |source| EditError::Write {
        path: path.display().to_string(),
        source,
    };
    let mode = fs::metadata(path).map_err(error)?.permissions().mode() & 0o7777;
    files::write_atomically(path, ".new", text.as_bytes(), mode).map_err(error)
}

/// `text` with `edit` applied (not validated).
pub fn edit_text(text: &str, edit: &Edit) -> Result<String, EditError> {
    let mut document: DocumentMut =
        text.parse()
            .map_err(|err: toml_edit::TomlError| EditError::Parse {
                path: String::new(),
                message: err.message().to_owned(),
            })?;
    let backends = document
        .entry("backend")
        .or_insert(Item::ArrayOfTables(ArrayOfTables::new()))
        .as_array_of_tables_mut()
        .ok_or_else(|| EditError::Parse {
            path: String::new(),
            message: "`backend` is not an array of tables".to_owned(),
        })?;
    let position = |backends: &ArrayOfTables, name: &str| {
        backends
            .iter()
            .position(|table| table.get("name").and_then(Item::as_str) == Some(name))
    };
    match edit {
        Edit::AddBackend { backend } => {
            if position(backends, &backend.name).is_some() {
                return Err(EditError::Exists(backend.name.clone()));
            }
            let mut table = Table::new();
            table.insert("name", value(&backend.name));
            let mut server_ids = InlineTable::new();
            for (codepoint, ids) in &backend.server_ids {
                server_ids.insert(codepoint, ids.iter().collect::<Array>().into());
            }
            table.insert("server_ids", value(server_ids));
            if let Some(interface) = &backend.interface {
                table.insert("interface", value(interface));
            }
            if let Some(next_hop_mac) = &backend.next_hop_mac {
                table.insert("next_hop_mac", value(next_hop_mac));
            }
            if let Some(delivery) = &backend.delivery {
                table.insert("delivery", value(delivery));
            }
            if let Some(tunnel_address) = &backend.tunnel_address {
                table.insert("tunnel_address", value(tunnel_address));
            }
            if backend.local_worker {
                table.insert("local_worker", value(true));
            }
            if let Some(weight) = backend.weight {
                table.insert("weight", value(i64::from(weight)));
            }
            table.insert("state", value(backend.state.name()));
            backends.push(table);
        }
        Edit::RemoveBackend { name } => {
            let index = position(backends, name).ok_or_else(|| EditError::Missing(name.clone()))?;
            backends.remove(index);
        }
        Edit::SetBackendState { name, state } => {
            let index = position(backends, name).ok_or_else(|| EditError::Missing(name.clone()))?;
            let table = backends
                .get_mut(index)
                .ok_or_else(|| EditError::Missing(name.clone()))?;
            table.insert("state", value(state.name()));
        }
    }
    Ok(document.to_string())
}
