//! Edits of the config file for `quic-router backend add|remove|drain|undrain`: the file
//! stays the one source of the router's config, and keeps its comments and layout.

use std::{
    collections::BTreeMap,
    fs,
    io::Write as _,
    os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _},
    path::Path,
};

use serde::{Deserialize, Serialize};
use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, value};

use crate::config::{self, BackendState, ConfigError, RouterConfig};

/// A backend as `backend add` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendSpec {
    pub name: String,
    /// A host's interface and next hop (none for a local worker).
    pub interface: Option<String>,
    pub next_hop_mac: Option<String>,
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
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
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

/// Applies `edit` to the config file at `path`: validates the result in full, then replaces
/// the file atomically (same permissions). Returns the new config.
pub fn edit_file(path: &Path, edit: &Edit) -> Result<RouterConfig, EditError> {
    let shown = path.display().to_string();
    let text = config::read_text(path)?;
    let edited = edit_text(&text, edit).map_err(|err| match err {
        EditError::Parse { message, .. } => EditError::Parse {
            path: shown.clone(),
            message,
        },
        other => other,
    })?;
    let config = config::parse(&edited, path)?;
    write_atomically(path, &edited).map_err(|source| EditError::Write {
        path: shown,
        source,
    })?;
    Ok(config)
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

/// Writes `text` next to `path` and renames it over `path`, keeping `path`'s mode.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let mode = fs::metadata(path)?.permissions().mode() & 0o7777;
    let temporary = path.with_extension("toml.new");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    fs::set_permissions(&temporary, fs::Permissions::from_mode(mode))?;
    fs::rename(&temporary, path)
}
