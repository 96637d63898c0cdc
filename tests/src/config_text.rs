//! Router config files as the tests write them: one builder for every test, the demo and the
//! bench, so that the file format is spelled out in one place.

use std::{fmt::Write as _, path::Path};

/// How a `[[backend]]` is reached.
#[derive(Debug, Clone)]
pub enum Reach {
    Host {
        interface: String,
        next_hop_mac: String,
    },
    /// Behind a tunnel, the next hop from the kernel's routes.
    Routed,
    LocalWorker,
}

/// One `[[backend]]`.
#[derive(Debug, Clone)]
pub struct BackendText {
    pub name: String,
    /// (codepoint, server ID in hex).
    pub server_ids: Vec<(u8, String)>,
    pub reach: Reach,
    pub state: &'static str,
    pub weight: Option<u32>,
    /// `delivery` and `tunnel_address`, for a host behind a tunnel.
    pub tunnel: Option<(&'static str, String)>,
}

impl BackendText {
    /// An active host behind `interface`, next hop `next_hop_mac`.
    pub fn host(name: &str, interface: &str, next_hop_mac: &str) -> Self {
        Self {
            name: name.to_owned(),
            server_ids: Vec::new(),
            reach: Reach::Host {
                interface: interface.to_owned(),
                next_hop_mac: next_hop_mac.to_owned(),
            },
            state: "active",
            weight: None,
            tunnel: None,
        }
    }

    /// An active host behind a `method` (gue, ipip) tunnel to `address`, the next hop
    /// from the kernel's routes.
    pub fn routed(name: &str, method: &'static str, address: &str) -> Self {
        Self {
            reach: Reach::Routed,
            ..Self::host(name, "", "").tunnel(method, address)
        }
    }

    /// Behind a `method` (gue, ipip) tunnel to `address`.
    pub fn tunnel(mut self, method: &'static str, address: &str) -> Self {
        self.tunnel = Some((method, address.to_owned()));
        self
    }

    /// A local worker (on the router's host).
    pub fn local_worker(name: &str) -> Self {
        Self {
            reach: Reach::LocalWorker,
            ..Self::host(name, "", "")
        }
    }

    /// With `server_id` (hex) under `codepoint`.
    pub fn server_id(mut self, codepoint: u8, server_id: &str) -> Self {
        self.server_ids.push((codepoint, server_id.to_owned()));
        self
    }

    pub fn state(mut self, state: &'static str) -> Self {
        self.state = state;
        self
    }
}

/// A config file's text, built table by table.
#[derive(Debug, Clone, Default)]
pub struct ConfigText {
    text: String,
}

impl ConfigText {
    pub fn new() -> Self {
        Self::default()
    }

    /// A `[limits]` table with these `(key, value)` pairs.
    pub fn limits(mut self, limits: &[(&str, u32)]) -> Self {
        self.text += "[limits]\n";
        for (key, value) in limits {
            let _ = writeln!(self.text, "{key} = {value}");
        }
        self.text += "\n";
        self
    }

    /// A `[health]` table with these `(key, value)` pairs (none: the defaults).
    pub fn health(mut self, settings: &[(&str, u64)]) -> Self {
        self.text += "[health]\n";
        for (key, value) in settings {
            let _ = writeln!(self.text, "{key} = {value}");
        }
        self.text += "\n";
        self
    }

    /// An `[encapsulation]` table: the outer source prefixes and GUE's port.
    pub fn encapsulation(mut self, source4: &str, source6: &str, gue_port: u16) -> Self {
        let _ = writeln!(
            self.text,
            "[encapsulation]\nsource4 = \"{source4}\"\nsource6 = \"{source6}\"\ngue_port = {gue_port}\n"
        );
        self
    }

    /// A `[[listener]]`; `initial_routing` when given.
    pub fn listener(mut self, address: &str, port: u16, initial_routing: Option<&str>) -> Self {
        let _ = writeln!(
            self.text,
            "[[listener]]\naddress = \"{address}\"\nport = {port}"
        );
        if let Some(routing) = initial_routing {
            let _ = writeln!(self.text, "initial_routing = \"{routing}\"");
        }
        self.text += "\n";
        self
    }

    /// A `[[quic_lb]]`, with a key file when given (a path as written in the file: relative
    /// paths are the config directory's).
    pub fn quic_lb(
        mut self,
        config_rotation: u8,
        server_id_len: u8,
        nonce_len: u8,
        server_use_len: u8,
        key_file: Option<&Path>,
    ) -> Self {
        let _ = writeln!(
            self.text,
            "[[quic_lb]]\nconfig_rotation = {config_rotation}\nserver_id_len = {server_id_len}\nnonce_len = {nonce_len}"
        );
        if server_use_len > 0 {
            let _ = writeln!(self.text, "server_use_len = {server_use_len}");
        }
        if let Some(file) = key_file {
            let _ = writeln!(self.text, "key_file = \"{}\"", file.display());
        }
        self.text += "\n";
        self
    }

    /// A `[[backend]]`.
    pub fn backend(mut self, backend: &BackendText) -> Self {
        let ids: Vec<String> = {
            let mut by_codepoint: std::collections::BTreeMap<u8, Vec<String>> = Default::default();
            for (codepoint, id) in &backend.server_ids {
                by_codepoint
                    .entry(*codepoint)
                    .or_default()
                    .push(format!("\"{id}\""));
            }
            by_codepoint
                .iter()
                .map(|(codepoint, ids)| format!("{codepoint} = [{}]", ids.join(", ")))
                .collect()
        };
        let _ = writeln!(
            self.text,
            "[[backend]]\nname = \"{}\"\nserver_ids = {{ {} }}",
            backend.name,
            ids.join(", ")
        );
        match &backend.reach {
            Reach::Host {
                interface,
                next_hop_mac,
            } => {
                let _ = writeln!(
                    self.text,
                    "interface = \"{interface}\"\nnext_hop_mac = \"{next_hop_mac}\""
                );
            }
            Reach::Routed => {}
            Reach::LocalWorker => self.text += "local_worker = true\n",
        }
        if let Some((method, address)) = &backend.tunnel {
            let _ = writeln!(
                self.text,
                "delivery = \"{method}\"\ntunnel_address = \"{address}\""
            );
        }
        if let Some(weight) = backend.weight {
            let _ = writeln!(self.text, "weight = {weight}");
        }
        let _ = writeln!(self.text, "state = \"{}\"\n", backend.state);
        self
    }

    pub fn build(self) -> String {
        self.text
    }
}
