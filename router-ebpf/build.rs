//! Link options for the BPF object (bpf-linker generates its code).
fn main() {
    // bpf-linker passes `--bpf-expand-memcpy-in-order` to LLVM unless told not to; LLVM then
    // calls the out-of-line `memset` and `memmove` (byte-at-a-time loops) for every struct
    // it zeroes or copies. Without it, they become inline stores: measured, this took the
    // parse-and-redirect floor from 106 to 50 ns above XDP_PASS (docs/benchmarks.md).
    println!("cargo::rustc-link-arg=--disable-expand-memcpy-in-order");
}
