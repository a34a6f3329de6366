//! The layers of ARCHITECTURE.md, checked on the source: every `crate::`
//! path in a module under `src/` names a module its own module may depend
//! on. Reading the text is enough: a dependency is a path that names the
//! module (`use crate::nal::Stream;`, `crate::{nal, proto}`, or
//! `crate::Client` through the re-exports of `src/lib.rs`). Comments do not
//! count.
//!
//! A rule still broken by code that is being reworked elsewhere would be
//! listed in `EXCEPTIONS`, file by file, so that any new violation fails.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The modules each top-level module may import (itself always).
const RULES: &[(&str, &[&str])] = &[
    // The bottom: raw system calls.
    ("sys", &[]),
    // The wire formats (the cache protocol, the admin line protocol).
    ("proto", &[]),
    // Transport.
    ("nal", &["sys"]),
    // TLS on the transport's streams and sockets.
    ("tls", &["nal", "sys"]),
    // Storage: never the transport.
    ("cache", &["proto", "sys"]),
    // What composes them.
    ("plug", &["proto", "nal"]),
    ("client", &["proto", "nal", "sys", "tls"]),
    ("server", &["proto", "nal", "cache", "plug", "sys", "tls"]),
    ("proxy", &["proto", "nal", "sys", "client", "tls"]),
    // The C boundary and the fuzz targets: any library layer, no tool.
    (
        "ffi",
        &[
            "sys", "proto", "nal", "cache", "plug", "client", "server", "proxy",
        ],
    ),
    (
        "fuzzing",
        &["sys", "proto", "nal", "cache", "plug", "client", "server"],
    ),
    // What the tools share: option parsing, and the daemon options.
    ("cli", &["proto", "nal"]),
    ("daemon", &["sys", "proto", "nal", "cli"]),
    // The one door to the insides for the programs of the package (tools,
    // tests, benchmarks, fuzz targets); a tool's own plumbing lives under
    // src/bin/ with the tool, a separate crate that the compiler keeps to
    // the public API and this module.
    (
        "internals",
        &[
            "proto", "nal", "cache", "client", "server", "proxy", "cli", "daemon", "fuzzing", "tls",
        ],
    ),
];

/// (file under src/, module it imports, why it is allowed for now).
const EXCEPTIONS: &[(&str, &str, &str)] = &[];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a readable directory").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The source without comments (line comments and block comments); string
/// literals are kept, which is harmless here.
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['/']) {
        let (before, after) = rest.split_at(i);
        out.push_str(before);
        if after.starts_with("//") {
            rest = after.find('\n').map_or("", |n| &after[n..]);
        } else if after.starts_with("/*") {
            rest = after.find("*/").map_or("", |n| &after[n + 2..]);
        } else {
            out.push('/');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    out
}

/// The first path segments after `crate::` in `code`: `crate::nal::X` gives
/// `nal`, `crate::{nal::X, proto}` gives `nal` and `proto`.
fn crate_paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        // `distcache::crate::` cannot occur; `$crate::` is a macro's own.
        let preceded = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if preceded.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut at_start = true;
            let mut word = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    break;
                }
                if depth == 1 && at_start && (c.is_alphanumeric() || c == '_') {
                    word.push(c);
                    continue;
                }
                if !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                if depth == 1 && c == ',' {
                    at_start = true;
                } else if !c.is_whitespace() {
                    at_start = false;
                }
            }
            if !word.is_empty() {
                out.push(word);
            }
        } else {
            let word: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !word.is_empty() {
                out.push(word);
            }
        }
    }
    out
}

/// The root re-exports of lib.rs: name -> module (`pub use client::{Client, ...}`).
fn root_exports() -> BTreeMap<String, String> {
    let lib = fs::read_to_string(src().join("lib.rs")).expect("src/lib.rs");
    let mut out = BTreeMap::new();
    for line in lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub use "))
    {
        let Some((module, names)) = line.split_once("::") else {
            continue;
        };
        for name in names
            .trim_end_matches(';')
            .trim_matches(|c| c == '{' || c == '}')
            .split(',')
        {
            let name = name.trim().rsplit(" as ").next().unwrap_or("").trim();
            if !name.is_empty() {
                out.insert(name.to_string(), module.trim().to_string());
            }
        }
    }
    out
}

/// The top-level module a file under src/ belongs to; None for lib.rs and
/// the binaries (separate crates, which use the library's public API).
fn module_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" | "bin" => None,
        f => Some(f.trim_end_matches(".rs").to_string()),
    }
}

#[test]
fn every_module_imports_only_what_its_layer_may() {
    let rules: BTreeMap<&str, BTreeSet<&str>> = RULES
        .iter()
        .map(|(m, allowed)| (*m, allowed.iter().copied().collect()))
        .collect();
    let exports = root_exports();
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    files.sort();
    let mut problems = Vec::new();
    let mut checked = 0;
    for path in &files {
        let rel = path.strip_prefix(src()).expect("under src/");
        let Some(module) = module_of(rel) else {
            continue;
        };
        let Some(allowed) = rules.get(module.as_str()) else {
            problems.push(format!(
                "src/{}: module `{module}` has no rule in tests/layers.rs (and ARCHITECTURE.md)",
                rel.display()
            ));
            continue;
        };
        let code = strip_comments(&fs::read_to_string(path).expect("readable source"));
        let rel_str = rel.to_string_lossy().into_owned();
        for name in crate_paths(&code) {
            let target = exports.get(&name).cloned().unwrap_or(name);
            checked += 1;
            if target == module || allowed.contains(target.as_str()) {
                continue;
            }
            if EXCEPTIONS
                .iter()
                .any(|(f, m, _)| *f == rel_str && *m == target)
            {
                continue;
            }
            problems.push(format!(
                "src/{rel_str}: `{module}` imports `crate::{target}`"
            ));
        }
    }
    problems.sort();
    problems.dedup();
    assert!(
        checked > 100,
        "only {checked} crate:: paths found: is the parser broken?"
    );
    assert!(
        problems.is_empty(),
        "imports across the layers of ARCHITECTURE.md:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_exception_is_still_needed() {
    for (file, target, why) in EXCEPTIONS {
        let text = fs::read_to_string(src().join(file)).unwrap_or_default();
        let names = crate_paths(&strip_comments(&text));
        assert!(
            names.iter().any(|n| n == target),
            "src/{file} no longer imports crate::{target} ({why}): remove the exception"
        );
    }
}

#[test]
fn the_path_reader_finds_what_it_must() {
    let code = strip_comments(
        "use crate::nal::{Stream, Listener};\n\
         use crate::{proto::admin, cache};\n\
         // use crate::server;\n\
         /* crate::daemon */ let x = crate::Client::new(); $crate::ignored; notcrate::x;",
    );
    assert_eq!(crate_paths(&code), ["nal", "proto", "cache", "Client"]);
    assert_eq!(
        root_exports().get("Client").map(String::as_str),
        Some("client")
    );
}
