//! Shared harness for quic-router's integration tests. Tests that need root or the kernel
//! fail with a clear message when they cannot run; none of them skips.

use aya::{Ebpf, programs::Xdp};

/// Loads the router's object file and its XDP program into the kernel (not attached).
/// Panics with the reason when the kernel refuses: these tests need root.
pub fn load_router() -> (Ebpf, &'static str) {
    let mut ebpf = Ebpf::load(router_user::ebpf::program_bytes()).unwrap_or_else(|err| {
        panic!("loading the XDP object failed (these tests need root and BPF support): {err:#}")
    });
    let name = router_user::ebpf::PROGRAM_NAME;
    let program: &mut Xdp = ebpf
        .program_mut(name)
        .unwrap_or_else(|| panic!("no program {name} in the object"))
        .try_into()
        .expect("an XDP program");
    program
        .load()
        .unwrap_or_else(|err| panic!("the kernel refused the XDP program: {err:#}"));
    (ebpf, name)
}
