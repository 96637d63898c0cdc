//! Network interfaces by name: index and MAC address, from sysfs.

use std::fs;

use crate::config::parse_mac;

/// An interface the router redirects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interface {
    pub ifindex: u32,
    pub mac: [u8; 6],
}

#[derive(Debug, thiserror::Error)]
pub enum NetifError {
    #[error("interface {0} does not exist")]
    Missing(String),
    #[error("interface {name}: cannot read {what} from sysfs")]
    Unreadable { name: String, what: &'static str },
}

/// Looks `name` up in this network namespace.
pub fn lookup(name: &str) -> Result<Interface, NetifError> {
    let dir = format!("/sys/class/net/{name}");
    if name.contains('/') || !std::path::Path::new(&dir).exists() {
        return Err(NetifError::Missing(name.to_owned()));
    }
    let read = |what: &'static str| {
        fs::read_to_string(format!("{dir}/{what}"))
            .map(|text| text.trim().to_owned())
            .map_err(|_| NetifError::Unreadable {
                name: name.to_owned(),
                what,
            })
    };
    let ifindex = read("ifindex")?
        .parse()
        .map_err(|_| NetifError::Unreadable {
            name: name.to_owned(),
            what: "ifindex",
        })?;
    let mac = parse_mac(&read("address")?).ok_or_else(|| NetifError::Unreadable {
        name: name.to_owned(),
        what: "address",
    })?;
    Ok(Interface { ifindex, mac })
}
