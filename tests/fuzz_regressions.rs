//! Replays the saved fuzz inputs: every file of `fuzz/regressions/<target>/`
//! (the seeds, and every input that once made a target fail) through the
//! same function the cargo-fuzz target calls, on the stable toolchain.

use distcache::internals::fuzzing::TARGETS;
use std::path::Path;

fn regressions() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions")
}

/// Runs one target over every file of its folder, naming the file that
/// fails; returns how many files ran.
fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = regressions().join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    files.sort();
    for file in &files {
        let data = std::fs::read(file).expect("read input");
        let name = file.display().to_string();
        if std::panic::catch_unwind(|| run(&data)).is_err() {
            panic!("{name} fails");
        }
    }
    files.len()
}

#[test]
fn every_folder_is_a_target_and_every_target_has_inputs() {
    for entry in std::fs::read_dir(regressions()).expect("fuzz/regressions") {
        let name = entry.expect("entry").file_name();
        let name = name.to_string_lossy();
        assert!(
            TARGETS.iter().any(|(t, _)| *t == name),
            "fuzz/regressions/{name} names no target"
        );
    }
    for (target, _) in TARGETS {
        let fuzz_target = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/fuzz_targets")
            .join(format!("{target}.rs"));
        assert!(fuzz_target.is_file(), "no cargo-fuzz target for {target}");
    }
}

#[test]
fn decoder() {
    assert!(replay("decoder", distcache::internals::fuzzing::decoder) >= 40);
}

#[test]
fn reassembly() {
    assert!(replay("reassembly", distcache::internals::fuzzing::reassembly) >= 40);
}

#[test]
fn add_payload() {
    assert!(replay("add_payload", distcache::internals::fuzzing::add_payload) >= 20);
}

#[test]
fn address() {
    assert!(replay("address", distcache::internals::fuzzing::address) >= 20);
}

#[test]
fn plug() {
    assert!(replay("plug", distcache::internals::fuzzing::plug) >= 4);
}

#[test]
fn server() {
    assert!(replay("server", distcache::internals::fuzzing::server) >= 40);
}
