//! The staged libraries export exactly the contract: every function the
//! original declares in <libnal/nal.h>, <distcache/dc_plug.h>,
//! <distcache/dc_server.h> and <distcache/dc_client.h>, and nothing beyond
//! the original's exported names and our extensions.
//!
//! * tests/data/abi/contract.tsv: every function the original's libraries
//!   exported, with the installed header that declares it ("internal" when
//!   none does). tests/data/abi/lib*.symbols: which of the original's
//!   libraries exported each (copies of the reference data).
//! * abi/exports.tsv: the one list of our exports; the rows whose origin
//!   is `extension` are the only names allowed beyond the original's.
//!
//! libdistcache.so.1 must define every declared function; libnal.so.1 and
//! libdistcacheserver.so.1 are filters (DT_FILTER libdistcache.so.1) that
//! must name every declared function the original's library of that name
//! exported, so that programs linked with -lnal or -ldistcacheserver find
//! them and the dynamic linker takes them from libdistcache.so.1.

#[allow(dead_code)]
mod c_support;
mod dc_server;

use c_support::{dynamic_entries, entries_of, manifest_dir, stage, Proc};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The headers whose functions every program may call.
const PUBLIC_HEADERS: [&str; 4] = [
    "libnal/nal.h",
    "distcache/dc_plug.h",
    "distcache/dc_server.h",
    "distcache/dc_client.h",
];

/// The original's libnal also exported two data symbols (the address
/// vtables of nal_devel.h's address-type registry).
const ORIGINAL_DATA: [&str; 2] = ["builtin_fd_addr_vtable", "builtin_sock_addr_vtable"];

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// contract.tsv: symbol -> header.
fn contract() -> BTreeMap<String, String> {
    let text = read(&manifest_dir().join("tests/data/abi/contract.tsv"));
    let map: BTreeMap<String, String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (sym, header) = l
                .split_once('\t')
                .unwrap_or_else(|| panic!("contract.tsv line {l:?}"));
            (sym.to_string(), header.trim().to_string())
        })
        .collect();
    assert!(map.len() > 100, "contract.tsv has {} rows", map.len());
    map
}

/// The functions the original's `lib` exported.
fn original_symbols(lib: &str) -> BTreeSet<String> {
    read(&manifest_dir().join(format!("tests/data/abi/{lib}.symbols")))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The names abi/exports.tsv marks as extensions.
fn extensions() -> BTreeSet<String> {
    read(&manifest_dir().join("abi/exports.tsv"))
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols.len() >= 4 && cols[3].trim() == "extension").then(|| cols[0].to_string())
        })
        .collect()
}

/// The dynamic symbols a library defines: name -> nm type letter. Version
/// definitions (type A) are left out and version suffixes stripped.
fn defined(lib: &Path) -> BTreeMap<String, char> {
    let mut cmd = Command::new("nm");
    cmd.args(["-D", "--defined-only"]).arg(lib);
    let done = Proc::spawn(&format!("nm -D {}", lib.display()), &mut cmd, false)
        .finish(Duration::from_secs(30));
    done.assert_ok();
    done.stdout
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace().rev();
            let name = w.next()?;
            let kind = w.next()?.chars().next()?;
            let name = name.split('@').next()?.to_string();
            (kind != 'A').then_some((name, kind))
        })
        .collect()
}

fn staged(lib: &str) -> std::path::PathBuf {
    let path = stage().join("lib").join(format!("{lib}.so.1"));
    assert!(path.exists(), "{} is missing", path.display());
    path
}

#[test]
fn every_declared_function_is_exported_where_the_original_had_it() {
    let contract = contract();
    let declared: BTreeSet<&String> = contract
        .iter()
        .filter(|(_, h)| PUBLIC_HEADERS.contains(&h.as_str()))
        .map(|(s, _)| s)
        .collect();
    assert_eq!(
        declared.len(),
        65 + 11 + 12 + 7,
        "functions declared in the four headers"
    );

    let mut problems = Vec::new();
    let main = defined(&staged("libdistcache"));
    for f in &declared {
        match main.get(*f) {
            Some('T') => {}
            Some(k) => problems.push(format!("libdistcache.so.1: {f} has type {k}, not T")),
            None => problems.push(format!("libdistcache.so.1 does not export {f}")),
        }
    }
    for lib in ["libnal", "libdistcacheserver"] {
        let path = staged(lib);
        let filters = entries_of(&dynamic_entries(&path), "FILTER");
        if filters != ["libdistcache.so.1"] {
            problems.push(format!(
                "{lib}.so.1 is not a filter of libdistcache.so.1: {filters:?}"
            ));
        }
        let names = defined(&path);
        for f in original_symbols(lib)
            .iter()
            .filter(|f| declared.contains(f))
        {
            if !names.contains_key(f) {
                problems.push(format!("{lib}.so.1 does not name {f}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn nothing_is_exported_beyond_the_contract_and_the_extensions() {
    let contract = contract();
    let extensions = extensions();
    let mut problems = Vec::new();
    for lib in ["libdistcache", "libnal", "libdistcacheserver"] {
        for (name, kind) in defined(&staged(lib)) {
            let allowed = contract.contains_key(&name)
                || extensions.contains(&name)
                || (lib != "libdistcacheserver" && ORIGINAL_DATA.contains(&name.as_str()));
            if !allowed {
                problems.push(format!("{lib}.so.1 exports {name} (type {kind})"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "exports outside tests/data/abi/contract.tsv and the extensions of \
         abi/exports.tsv:\n{}",
        problems.join("\n")
    );
}

/// The copy of the contract agrees with the original's per-library lists.
#[test]
fn the_contract_copy_is_consistent() {
    let contract = contract();
    let mut all = BTreeSet::new();
    for lib in ["libnal", "libdistcache", "libdistcacheserver"] {
        all.extend(original_symbols(lib));
    }
    let names: BTreeSet<String> = contract.keys().cloned().collect();
    assert_eq!(
        names, all,
        "contract.tsv and lib*.symbols name different functions"
    );
}
