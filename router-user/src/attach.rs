//! Attaching the XDP program to an interface through a pinned bpf_link, so that the data
//! path outlives the controller; adopting the link a previous controller pinned; replacing
//! the program in it atomically when this build's differs.

use std::path::Path;

use aya::{
    pin::PinError,
    programs::{
        ProgramError, Xdp, XdpMode,
        links::{FdLink, LinkError, PinnedLink},
        loaded_programs,
        xdp::XdpLink,
    },
};

/// What attaching did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attachment {
    /// No router was attached: attached and pinned a new link.
    New,
    /// The attached program is this build's: kept it.
    Adopted,
    /// The attached program differed: swapped this build's into the same link.
    Replaced,
}

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("cannot attach to {iface} ({mode} mode): {source}")]
    Attach {
        iface: String,
        mode: &'static str,
        source: ProgramError,
    },
    #[error("the kernel attached {iface} through netlink, not a bpf_link, which cannot be pinned")]
    NotALink { iface: String },
    #[error("pinned link {path}: {source}")]
    Link { path: String, source: LinkError },
    #[error("cannot pin the link at {path}: {source}")]
    Pin { path: String, source: PinError },
    #[error("cannot unpin the link at {path}: {source}")]
    Unpin {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot swap the program in the pinned link: {0}")]
    Replace(ProgramError),
    #[error("cannot read program information: {0}")]
    Info(ProgramError),
    #[error("cannot look at {path}: {source} (a router's pins are root's)")]
    Inspect {
        path: String,
        source: std::io::Error,
    },
}

fn link_error(path: &Path) -> impl FnOnce(LinkError) -> AttachError + '_ {
    move |source| AttachError::Link {
        path: path.display().to_string(),
        source,
    }
}

/// The program ID in the link pinned at `path`, if there is one.
pub fn attached_program(path: &Path) -> Result<Option<u32>, AttachError> {
    // Not `exists()`: it says no when the truth is "permission denied".
    let exists = path.try_exists().map_err(|source| AttachError::Inspect {
        path: path.display().to_string(),
        source,
    })?;
    if !exists {
        return Ok(None);
    }
    let link: FdLink = PinnedLink::from_pin(path).map_err(link_error(path))?.into();
    Ok(Some(link.info().map_err(link_error(path))?.program_id()))
}

/// Attaches `program` to `iface` (in `mode`, named `mode_name`) through the link pinned at
/// `link_path`: a new link if there is none; otherwise the attached program stays when it is
/// this build's (same tag) and `replace` is false, and is swapped for this one atomically if
/// not. Returns what it did and the ID of the program now attached.
pub fn attach(
    program: &mut Xdp,
    iface: &str,
    mode_name: &'static str,
    mode: XdpMode,
    link_path: &Path,
    replace: bool,
) -> Result<(Attachment, u32), AttachError> {
    let ours = program.info().map_err(AttachError::Info)?;
    if let Some(attached_id) = attached_program(link_path)? {
        let attached_tag = loaded_programs()
            .filter_map(Result::ok)
            .find(|info| info.id() == attached_id)
            .map(|info| info.tag());
        if attached_tag == Some(ours.tag()) && !replace {
            return Ok((Attachment::Adopted, attached_id));
        }
        let link: FdLink = PinnedLink::from_pin(link_path)
            .map_err(link_error(link_path))?
            .into();
        let link = XdpLink::try_from(link).map_err(link_error(link_path))?;
        let id = program.attach_to_link(link).map_err(AttachError::Replace)?;
        // The pin keeps the link; this process's handle on it is not needed.
        drop(program.take_link(id).map_err(AttachError::Replace)?);
        return Ok((Attachment::Replaced, ours.id()));
    }

    let attach_error = |source| AttachError::Attach {
        iface: iface.to_owned(),
        mode: mode_name,
        source,
    };
    let id = program.attach(iface, mode).map_err(attach_error)?;
    let link = program.take_link(id).map_err(attach_error)?;
    let link: FdLink = link.try_into().map_err(|_| AttachError::NotALink {
        iface: iface.to_owned(),
    })?;
    link.pin(link_path).map_err(|source| AttachError::Pin {
        path: link_path.display().to_string(),
        source,
    })?;
    Ok((Attachment::New, ours.id()))
}

/// Unpins the link at `link_path`, if there is one (the kernel detaches the program once no
/// process holds the link). Whether there was one.
pub fn unpin_link(link_path: &Path) -> Result<bool, AttachError> {
    if !link_path.exists() {
        return Ok(false);
    }
    let link = PinnedLink::from_pin(link_path).map_err(link_error(link_path))?;
    drop(link.unpin().map_err(|source| AttachError::Unpin {
        path: link_path.display().to_string(),
        source,
    })?);
    Ok(true)
}
