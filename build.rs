//! Link arguments for the shared library: its SONAME. The set of exported
//! symbols is the crate's `#[no_mangle]` functions (rustc exports nothing
//! else from a cdylib); `make check` compares it with `abi/exports.tsv`.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libdistcache.so.1");
}
