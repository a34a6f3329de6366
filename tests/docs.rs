//! The manual pages and the example systemd units.
//!
//! - Every page in `man/` renders without a single warning (groff, which
//!   man-db depends on; mandoc's stricter lint; man-db's lexgrog), has the
//!   sections its kind needs, and refers only to pages that exist.
//! - Each tool these checks run must be installed (`make deps` installs
//!   them): a missing one fails its test, naming the package.
//! - The names in each page's NAME section and the link pages listed in
//!   `man/links` agree, and every C function of the five installed headers
//!   (`tests/data/abi/contract.tsv`, plus the extensions in
//!   `abi/exports.tsv`) has a page or a link page whose SYNOPSIS declares it
//!   with the same types as our headers do.
//! - `make stage` (which `make test` runs; `DISTCACHE_STAGE`, by default
//!   `target/stage`) installed the pages, link pages that resolve, and the
//!   units; each staged tool's `-h` lists no option its page lacks.
//! - The units use only known keys and pass `systemd-analyze verify`.

mod require;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The headers whose functions must be documented.
const HEADERS: [&str; 5] = [
    "libnal/nal.h",
    "libnal/nal_devel.h",
    "distcache/dc_plug.h",
    "distcache/dc_server.h",
    "distcache/dc_client.h",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The manual pages in `man/`: (file name, source).
fn pages() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in fs::read_dir(root().join("man")).expect("man/ exists") {
        let path = entry.expect("readable man/").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if matches!(section_of(&name), Some("1" | "3" | "7" | "8")) {
            out.push((name, fs::read_to_string(&path).expect("page is UTF-8")));
        }
    }
    out.sort();
    assert!(
        out.len() >= 14,
        "expected the 14 pages, found {}",
        out.len()
    );
    out
}

fn section_of(file: &str) -> Option<&str> {
    file.rsplit_once('.').map(|(_, s)| s)
}

fn stem_of(file: &str) -> &str {
    file.rsplit_once('.').map_or(file, |(s, _)| s)
}

/// `man/links`: alias file name -> page file name.
fn links() -> BTreeMap<String, String> {
    let text = fs::read_to_string(root().join("man/links")).expect("man/links exists");
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut f = line.split('\t');
        let (Some(alias), Some(page), None) = (f.next(), f.next(), f.next()) else {
            panic!("man/links: expected 'alias<TAB>page', got {line:?}");
        };
        assert!(
            out.insert(alias.to_string(), page.to_string()).is_none(),
            "man/links lists {alias} twice"
        );
    }
    out
}

/// The lines of one `.SH` section (without its heading).
fn section<'a>(src: &'a str, name: &str) -> Vec<&'a str> {
    let heading = format!(".SH {name}");
    let quoted = format!(".SH \"{name}\"");
    src.lines()
        .skip_while(|l| *l != heading && *l != quoted)
        .skip(1)
        .take_while(|l| !l.starts_with(".SH "))
        .collect()
}

/// The names a page's NAME section documents.
fn names_of(src: &str) -> Vec<String> {
    let text = section(src, "NAME").join(" ");
    let (names, _) = text
        .split_once("\\-")
        .expect("NAME has 'names \\- description'");
    names
        .split(',')
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect()
}

fn run(cmd: &mut Command) -> Option<Output> {
    cmd.stdin(Stdio::null()).output().ok()
}

/// groff's complaints about a page, or None when it is clean.
fn groff_warnings(page: &Path, dir: &Path) -> Option<String> {
    let out = run(Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .arg(page)
        .current_dir(dir))
    .expect("groff runs");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (!out.status.success() || !err.trim().is_empty()).then_some(err)
}

fn require_groff() {
    require::tool("groff", "groff-base");
}

// ---------------------------------------------------------------------------
// The pages themselves

#[test]
fn every_page_renders_without_warnings() {
    require_groff();
    let dir = root().join("man");
    let mut bad = Vec::new();
    for (name, _) in pages() {
        if let Some(err) = groff_warnings(&dir.join(&name), &dir) {
            bad.push(format!("groff, {name}:\n{err}"));
        }
    }
    // mandoc's lint is stricter (style included).
    require::tool("mandoc", "mandoc");
    {
        for (name, _) in pages() {
            let out = run(Command::new("mandoc")
                .args(["-Tlint", "-Wall"])
                .arg(dir.join(&name)))
            .expect("mandoc runs");
            let text = String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr);
            if !out.status.success() || !text.trim().is_empty() {
                bad.push(format!("mandoc -Tlint, {name}:\n{text}"));
            }
        }
    }
    // lexgrog (man-db) reads NAME the way whatis and apropos will.
    require::tool("lexgrog", "man-db");
    {
        for (name, _) in pages() {
            let out = run(Command::new("lexgrog").arg(dir.join(&name))).expect("lexgrog runs");
            if !out.status.success() {
                bad.push(format!(
                    "lexgrog cannot parse the NAME of {name}: {}",
                    String::from_utf8_lossy(&out.stdout)
                ));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Rendered for an 80-column terminal (man's 78-character lines), no line
/// overflows and no word is hyphenated across lines (which would split
/// identifiers such as DC_CTX_get_session).
#[test]
fn every_page_fits_an_80_column_terminal() {
    require_groff();
    let dir = root().join("man");
    let mut bad = Vec::new();
    for (name, _) in pages() {
        let out = run(Command::new("groff")
            .args(["-man", "-Tutf8", "-rLL=78n", "-P-cbou"])
            .arg(dir.join(&name)))
        .expect("groff runs");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.lines().count() > 10,
            "{name} rendered to almost nothing"
        );
        for line in text.lines() {
            if line.chars().count() > 78 {
                bad.push(format!("{name}: too wide: {line}"));
            }
            if line.ends_with('\u{2010}') {
                bad.push(format!("{name}: hyphenated: {line}"));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// The checker is not blind: a page with an unknown macro and a bad escape
/// draws warnings.
#[test]
fn the_checker_reports_a_broken_page() {
    require_groff();
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("broken.1");
    fs::write(
        &page,
        ".TH BROKEN 1\n.SH NAME\nbroken \\- a test\n.SH DESCRIPTION\n.XX nothing\n\\q\n",
    )
    .unwrap();
    let err = groff_warnings(&page, dir.path()).expect("groff warns about a broken page");
    assert!(err.contains("XX") || err.contains("macro"), "{err}");
}

#[test]
fn every_page_has_the_sections_of_its_kind() {
    let mut bad = Vec::new();
    for (name, src) in pages() {
        let sect = section_of(&name).unwrap();
        let th = src.lines().find(|l| l.starts_with(".TH ")).unwrap_or("");
        let mut th_fields = th.split_whitespace().skip(1);
        if th_fields.next() != Some(&stem_of(&name).to_uppercase()[..])
            || th_fields.next() != Some(sect)
        {
            bad.push(format!(
                "{name}: .TH line {th:?} does not match the file name"
            ));
        }
        let mut needed = vec!["NAME", "DESCRIPTION", "SEE ALSO"];
        match sect {
            "3" => needed.extend(["SYNOPSIS", "RETURN VALUES", "EXAMPLES"]),
            "1" | "8" => needed.extend(["SYNOPSIS", "OPTIONS", "EXIT STATUS", "EXAMPLES"]),
            _ => {}
        }
        for s in needed {
            if section(&src, s).is_empty() {
                bad.push(format!("{name}: no {s} section"));
            }
        }
        for (i, line) in src.lines().enumerate() {
            if line.ends_with(' ') || line.ends_with('\t') {
                bad.push(format!("{name}:{}: trailing whitespace", i + 1));
            }
            if line.starts_with('\'') {
                bad.push(format!(
                    "{name}:{}: a line starting with ' is a request",
                    i + 1
                ));
            }
        }
        // SEE ALSO: a comma after every entry but the last.
        let see: Vec<&str> = section(&src, "SEE ALSO")
            .into_iter()
            .filter(|l| l.starts_with(".BR "))
            .collect();
        for (i, l) in see.iter().enumerate() {
            if (i + 1 < see.len()) != l.ends_with(',') {
                bad.push(format!("{name}: SEE ALSO entry {l:?} is badly punctuated"));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Every reference to one of our pages (`.BR DC_CTX_new (3)`) names a page
/// or a link page that exists.
#[test]
fn references_to_our_pages_resolve() {
    let mut known: BTreeSet<String> = pages().into_iter().map(|(n, _)| n).collect();
    known.extend(links().into_keys());
    let mut bad = Vec::new();
    for (name, src) in pages() {
        for line in src
            .lines()
            .filter(|l| l.starts_with(".BR ") || l.starts_with(".RB "))
        {
            let words: Vec<&str> = line.split_whitespace().collect();
            for pair in words.windows(2) {
                let (target, sect) = (pair[0].trim_start_matches('('), pair[1]);
                let Some(sect) = sect.strip_prefix('(').and_then(|s| s.get(..2)) else {
                    continue;
                };
                let Some(sect) = sect.strip_suffix(')') else {
                    continue;
                };
                let ours = ["DC_", "NAL_", "dc_", "distcache"]
                    .iter()
                    .any(|p| target.starts_with(p));
                if ours && !known.contains(&format!("{target}.{sect}")) {
                    bad.push(format!("{name}: {target}({sect}) is no page of ours"));
                }
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn names_and_link_pages_agree() {
    let links = links();
    let pages = pages();
    let files: BTreeSet<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
    let mut bad = Vec::new();
    let mut documented = BTreeSet::new();
    for (name, src) in &pages {
        let sect = section_of(name).unwrap();
        let names = names_of(src);
        if !names.iter().any(|n| n == stem_of(name)) {
            bad.push(format!("{name}: NAME does not list {}", stem_of(name)));
        }
        for n in names.iter().filter(|n| *n != stem_of(name)) {
            let alias = format!("{n}.{sect}");
            documented.insert(alias.clone());
            match links.get(&alias) {
                Some(target) if target == name => {}
                Some(target) => {
                    bad.push(format!("man/links sends {alias} to {target}, not {name}"))
                }
                None => bad.push(format!(
                    "{name} documents {n}, but man/links has no {alias}"
                )),
            }
        }
    }
    for (alias, target) in &links {
        if !files.contains(target.as_str()) {
            bad.push(format!(
                "man/links: {alias} -> {target}, which is not in man/"
            ));
        }
        if files.contains(alias.as_str()) {
            bad.push(format!("man/links: {alias} is a page of its own"));
        }
        if !documented.contains(alias) {
            bad.push(format!("man/links: {target} does not list {alias} in NAME"));
        }
        if section_of(alias) != section_of(target) {
            bad.push(format!(
                "man/links: {alias} and {target} are in different sections"
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Every C function of the installed headers, the original's and our
/// extensions, has a page or a link page in section 3.
#[test]
fn every_c_function_has_a_page() {
    let functions = documented_functions();
    assert!(
        functions.len() >= 96,
        "only {} functions listed",
        functions.len()
    );
    let mut known: BTreeSet<String> = pages().into_iter().map(|(n, _)| n).collect();
    known.extend(links().into_keys());
    let missing: Vec<&String> = functions
        .iter()
        .filter(|f| !known.contains(&format!("{f}.3")))
        .collect();
    assert!(missing.is_empty(), "no manual page for {missing:?}");
}

/// The functions that must be documented: the contract's for the four
/// headers, and every function we export.
fn documented_functions() -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let contract = fs::read_to_string(root().join("tests/data/abi/contract.tsv")).unwrap();
    for line in contract.lines().filter(|l| !l.starts_with('#')) {
        if let Some((sym, header)) = line.split_once('\t') {
            if HEADERS.contains(&header.trim()) {
                out.insert(sym.to_string());
            }
        }
    }
    let exports = fs::read_to_string(root().join("abi/exports.tsv")).unwrap();
    for line in exports.lines().filter(|l| !l.starts_with('#')) {
        if let Some(sym) = line.split('\t').next().filter(|s| !s.is_empty()) {
            out.insert(sym.to_string());
        }
    }
    out
}

// ---------------------------------------------------------------------------
// SYNOPSIS against the headers

/// A C declaration reduced to what matters: return type, name, and the
/// parameter types (names and by-value `const` dropped).
#[derive(Debug, PartialEq, Eq)]
struct Decl {
    ret: Vec<String>,
    name: String,
    params: Vec<Vec<String>>,
}

fn c_tokens(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if !c.is_whitespace() {
            out.push(c.to_string());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

fn is_ident(t: &str) -> bool {
    t.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
}

/// Parses `ret name(params)` (no trailing `;`); None for anything else.
fn parse_decl(text: &str) -> Option<Decl> {
    let toks = c_tokens(text);
    let open = toks.iter().position(|t| t == "(")?;
    if open == 0 || toks.last()? != ")" || !is_ident(&toks[open - 1]) {
        return None;
    }
    let name = toks[open - 1].clone();
    let ret = toks[..open - 1].to_vec();
    if ret.is_empty() || toks[open + 1..].iter().any(|t| t == "(") {
        return None; // not a plain function declaration
    }
    let mut params = Vec::new();
    for p in toks[open + 1..toks.len() - 1].split(|t| t == ",") {
        let mut p = p.to_vec();
        if p.len() > 1 && p.last().is_some_and(|t| is_ident(t)) {
            p.pop();
        }
        if !p.contains(&"*".to_string()) && p.first().is_some_and(|t| t == "const") {
            p.remove(0);
        }
        params.push(p);
    }
    Some(Decl { ret, name, params })
}

/// Roff source of a SYNOPSIS made into plain text.
fn roff_text(lines: &[&str]) -> String {
    let mut out = String::new();
    for line in lines {
        let Some(rest) = line
            .strip_prefix(".BI ")
            .or_else(|| line.strip_prefix(".B "))
            .or_else(|| line.strip_prefix(".BR "))
            .or_else(|| line.strip_prefix(".IR "))
        else {
            continue;
        };
        // Alternating-font macros join their arguments; quotes group them.
        let mut in_quote = false;
        for c in rest.chars() {
            match c {
                '"' => in_quote = !in_quote,
                ' ' if !in_quote => {}
                c => out.push(c),
            }
        }
        out.push('\n');
    }
    // #include and #define lines carry no ';' to end them: drop them.
    let out: String = out
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    out.replace("\\fI", "")
        .replace("\\fB", "")
        .replace("\\fR", "")
        .replace("\\fP", "")
        .replace("\\-", "-")
        .replace("\\ ", " ")
        .replace("\\&", "")
}

/// The function declarations in C text (comments and preprocessor lines
/// removed).
fn c_decls(text: &str) -> Vec<Decl> {
    let mut code = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("/*") {
        code.push_str(&rest[..start]);
        rest = rest[start..]
            .find("*/")
            .map_or("", |end| &rest[start + end + 2..]);
    }
    code.push_str(rest);
    let code = code.replace("\\\n", " ");
    let code: String = code
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    code.split([';', '{', '}'])
        .filter_map(|d| parse_decl(d.trim()))
        .collect()
}

/// Every page's SYNOPSIS declares each function of its NAME section, and
/// with the types of the prototype in our headers wherever the headers
/// declare it.
#[test]
fn synopses_match_the_headers() {
    let mut header_decls = BTreeMap::new();
    for h in HEADERS {
        let text = fs::read_to_string(root().join("include").join(h)).expect("header exists");
        for d in c_decls(&text) {
            header_decls.insert(d.name.clone(), d);
        }
    }
    assert!(
        header_decls.contains_key("DC_CTX_new"),
        "headers not parsed"
    );
    let mut bad = Vec::new();
    let mut compared = 0;
    for (name, src) in pages().into_iter().filter(|(n, _)| n.ends_with(".3")) {
        let synopsis = roff_text(&section(&src, "SYNOPSIS"));
        let decls: BTreeMap<String, Decl> = synopsis
            .split(';')
            .filter_map(|d| parse_decl(d.trim()))
            .map(|d| (d.name.clone(), d))
            .collect();
        for f in names_of(&src) {
            match (decls.get(&f), header_decls.get(&f)) {
                (None, _) => bad.push(format!("{name}: SYNOPSIS does not declare {f}")),
                (Some(ours), Some(theirs)) if ours != theirs => bad.push(format!(
                    "{name}: {f}: page says {ours:?}, header {theirs:?}"
                )),
                (Some(_), Some(_)) => compared += 1,
                (Some(_), None) => {}
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    // At least the DC_CTX functions are in the headers to compare with.
    assert!(compared >= 8, "compared only {compared} prototypes");
}

// ---------------------------------------------------------------------------
// The staged install

/// The staged install; panics when `make stage` has not been run.
fn stage() -> PathBuf {
    let stage = std::env::var_os("DISTCACHE_STAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/stage"));
    let stage = if stage.is_relative() {
        root().join(stage)
    } else {
        stage
    };
    assert!(
        stage.join("share/man/man7/distcache.7").exists(),
        "{} has no share/man/man7/distcache.7: run `make stage` (make test does) first",
        stage.display()
    );
    stage
}

#[test]
fn the_stage_has_every_page_and_link_page() {
    require_groff();
    let man = stage().join("share/man");
    let mut bad = Vec::new();
    for (name, src) in pages() {
        let installed = man
            .join(format!("man{}", section_of(&name).unwrap()))
            .join(&name);
        match fs::read_to_string(&installed) {
            Ok(text) if text == src => {}
            Ok(_) => bad.push(format!("{} differs from man/{name}", installed.display())),
            Err(e) => bad.push(format!("{}: {e}", installed.display())),
        }
    }
    for (alias, target) in links() {
        let sect = section_of(&alias).unwrap();
        let file = man.join(format!("man{sect}")).join(&alias);
        let want = format!(".so man{}/{target}\n", section_of(&target).unwrap());
        match fs::read_to_string(&file) {
            Ok(text) if text == want => {}
            Ok(text) => bad.push(format!("{}: {text:?}, expected {want:?}", file.display())),
            Err(e) => bad.push(format!("{}: {e}", file.display())),
        }
        // groff follows the .so from the top of the manual tree, as man does.
        if let Some(err) = groff_warnings(&file, &man) {
            bad.push(format!("{}: {err}", file.display()));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// man-db finds a function documented on another page through its link.
#[test]
fn man_finds_a_function_through_its_link_page() {
    require::tool("man", "man-db");
    let man = stage().join("share/man");
    for (name, page) in [
        ("DC_CTX_get_session", "man3/DC_CTX_new.3"),
        ("NAL_config_set_nagle", "man3/NAL_CONNECTION_new.3"),
        ("dc_server", "man8/dc_server.8"),
        ("dc_admin", "man8/dc_admin.8"),
    ] {
        let out =
            run(Command::new("man").arg("-M").arg(&man).args(["-w", name])).expect("man runs");
        let found = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && found.trim() == man.join(page).display().to_string(),
            "man -w {name}: {found} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The options a staged tool lists in its `-h` output, without dashes.
fn usage_options(bin: &Path) -> Vec<String> {
    let out = run(Command::new(bin).arg("-h")).expect("tool runs");
    assert!(out.status.success(), "{} -h failed", bin.display());
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    let mut opts = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if !line.starts_with('-') {
            continue;
        }
        for word in line.split([' ', ',', '|']).filter(|w| !w.is_empty()) {
            let Some(opt) = word.strip_prefix('-') else {
                break;
            };
            let opt = opt.trim_start_matches('-');
            // A word such as "-timeout)" in a wrapped description is prose.
            let is_name = opt
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '?');
            if !opt.is_empty() && is_name {
                opts.push(opt.to_string());
            }
        }
    }
    opts
}

/// Each staged tool's usage lists only options that its page documents.
#[test]
fn every_option_of_a_staged_tool_is_documented() {
    let bin = stage().join("bin");
    let mut checked = 0;
    let mut bad = Vec::new();
    for (name, src) in pages().into_iter().filter(|(n, _)| n.starts_with("dc_")) {
        let tool = bin.join(stem_of(&name));
        assert!(
            tool.exists(),
            "{} is not staged, though man/{name} documents it: run `make stage`",
            tool.display()
        );
        let opts = usage_options(&tool);
        assert!(
            opts.iter().any(|o| o == "h"),
            "{} -h lists no -h",
            tool.display()
        );
        let options = section(&src, "OPTIONS").join("\n");
        for opt in opts {
            if !options.contains(&format!("\\-{}", opt.replace('-', "\\-"))) {
                bad.push(format!("{name}: OPTIONS does not document -{opt}"));
            }
        }
        checked += 1;
    }
    assert!(checked >= 1, "no tool is staged");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

// ---------------------------------------------------------------------------
// The systemd units

fn units() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(root().join("contrib/systemd"))
        .expect("contrib/systemd exists")
        .map(|e| e.expect("readable").path())
        .filter(|p| p.extension().is_some_and(|e| e == "service"))
        .collect();
    out.sort();
    assert_eq!(
        out.len(),
        2,
        "expected dc_server.service and dc_client.service"
    );
    out
}

/// Keys a unit may use, per section (those of systemd.unit(5),
/// systemd.service(5), systemd.exec(5), systemd.resource-control(5) and
/// systemd.kill(5) that these units have reason to use).
const UNIT_KEYS: &[(&str, &[&str])] = &[
    (
        "Unit",
        &[
            "Description",
            "Documentation",
            "After",
            "Wants",
            "Requires",
            "Before",
        ],
    ),
    (
        "Service",
        &[
            "Type",
            "Environment",
            "EnvironmentFile",
            "ExecStart",
            "ExecReload",
            "Restart",
            "RestartSec",
            "LimitNOFILE",
            "DynamicUser",
            "User",
            "Group",
            "SupplementaryGroups",
            "RuntimeDirectory",
            "RuntimeDirectoryMode",
            "UMask",
            "NoNewPrivileges",
            "CapabilityBoundingSet",
            "AmbientCapabilities",
            "ProtectSystem",
            "ProtectHome",
            "PrivateTmp",
            "PrivateDevices",
            "ProtectHostname",
            "ProtectClock",
            "ProtectKernelTunables",
            "ProtectKernelModules",
            "ProtectKernelLogs",
            "ProtectControlGroups",
            "ProtectProc",
            "ProcSubset",
            "RestrictAddressFamilies",
            "RestrictNamespaces",
            "RestrictRealtime",
            "RestrictSUIDSGID",
            "LockPersonality",
            "MemoryDenyWriteExecute",
            "RemoveIPC",
            "SystemCallArchitectures",
            "SystemCallFilter",
            "SystemCallErrorNumber",
            "KillSignal",
            "TimeoutStopSec",
        ],
    ),
    ("Install", &["WantedBy"]),
];

/// (section, key, value) of a unit file; panics on lines that are neither.
fn parse_unit(text: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut current = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.to_string());
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not a key: {line:?}"));
        let section = current
            .clone()
            .unwrap_or_else(|| panic!("{line:?} before any section"));
        out.push((section, key.to_string(), value.to_string()));
    }
    out
}

/// The values of every `key=` line of a parsed unit.
fn values<'a>(entries: &'a [(String, String, String)], key: &str) -> Vec<&'a str> {
    entries
        .iter()
        .filter(|e| e.1 == key)
        .map(|e| e.2.as_str())
        .collect()
}

#[test]
fn units_use_known_keys_and_our_pages() {
    let mut bad = Vec::new();
    for unit in units() {
        let text = fs::read_to_string(&unit).unwrap();
        let entries = parse_unit(&text);
        let name = unit.file_name().unwrap().to_string_lossy().into_owned();
        let tool = name.trim_end_matches(".service");
        for (section, key, value) in &entries {
            match UNIT_KEYS.iter().find(|(s, _)| s == section) {
                None => bad.push(format!("{name}: unknown section [{section}]")),
                Some((_, keys)) if !keys.contains(&key.as_str()) => {
                    bad.push(format!("{name}: [{section}] {key}= is not a key we expect"))
                }
                _ => {}
            }
            if key == "Documentation" {
                for doc in value.split_whitespace() {
                    let page = doc
                        .strip_prefix("man:")
                        .and_then(|d| d.strip_suffix(')'))
                        .and_then(|d| d.split_once('('));
                    match page {
                        Some((p, s)) if root().join(format!("man/{p}.{s}")).exists() => {}
                        _ => bad.push(format!("{name}: Documentation {doc} is no page of ours")),
                    }
                }
            }
        }
        let get = |k: &str| values(&entries, k).into_iter();
        let exec: Vec<&str> = get("ExecStart").collect();
        if exec.len() != 1 || !exec[0].starts_with(&format!("/usr/local/bin/{tool} ")) {
            bad.push(format!(
                "{name}: ExecStart should run /usr/local/bin/{tool}: {exec:?}"
            ));
        }
        // Foreground, supervised, unprivileged, with its socket in /run.
        for (k, v) in [
            ("Type", "exec"),
            ("DynamicUser", "yes"),
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("RuntimeDirectory", tool),
        ] {
            if !get(k).any(|x| x == v) {
                bad.push(format!("{name}: expected {k}={v}"));
            }
        }
        if !exec.iter().all(|e| !e.contains("-daemon")) {
            bad.push(format!("{name}: -daemon under systemd"));
        }
        let env = format!("/etc/default/{tool}");
        if !get("EnvironmentFile").any(|v| v.trim_start_matches('-') == env) {
            bad.push(format!("{name}: expected EnvironmentFile=-{env}"));
        }
        if !root()
            .join(format!("contrib/systemd/{tool}.default"))
            .exists()
        {
            bad.push(format!(
                "{name}: no contrib/systemd/{tool}.default to copy to {env}"
            ));
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// systemd's own check of the staged units (which point at the staged
/// binaries), with the staged pages for their Documentation= lines.
#[test]
fn staged_units_pass_systemd_analyze_verify() {
    let stage = stage();
    let installed = stage.join("share/doc/distcache/examples/systemd");
    require::tool("systemd-analyze", "systemd");
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for unit in units() {
        let name = unit.file_name().unwrap().to_owned();
        let text = fs::read_to_string(installed.join(&name)).expect("unit is staged");
        let tool = name
            .to_string_lossy()
            .trim_end_matches(".service")
            .to_string();
        let bin = stage.join("bin").join(&tool);
        assert!(
            text.contains(&format!("ExecStart={} ", bin.display())),
            "the staged {} does not run {}",
            name.to_string_lossy(),
            bin.display()
        );
        assert!(
            bin.exists(),
            "{} is not staged: run `make stage`",
            bin.display()
        );
        let file = dir.path().join(&name);
        fs::write(&file, text).unwrap();
        files.push(file);
    }
    let out = run(Command::new("systemd-analyze")
        .arg("verify")
        .args(&files)
        .env("MANPATH", stage.join("share/man"))
        .env("SYSTEMD_LOG_COLOR", "0"))
    .expect("systemd-analyze runs");
    let err =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    let about_ours: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("dc_server") || l.contains("dc_client"))
        .collect();
    assert!(
        out.status.success() && about_ours.is_empty(),
        "systemd-analyze verify: {err}"
    );
}
