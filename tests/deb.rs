//! The Debian packages `make deb` writes to `target/deb/` (`make test`
//! builds them before `cargo test`; `DISTCACHE_DEB` names another
//! directory): what each of the three holds, their `Depends`, and the
//! packages at work. They are extracted into a scratch root with
//! `dpkg-deb -x`; the C example is built against the headers and libraries
//! found there and run, with the loader pointed at that root, against the
//! `dc_server` found there. Every process is waited for with a bound and
//! stopped by its PID.

mod common;
mod dc_server;
mod require;

use common::{run_tool, ToolRun};
use dc_server::DcServer;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);
const VERSION: &str = env!("CARGO_PKG_VERSION");

fn deb_dir() -> PathBuf {
    std::env::var_os("DISTCACHE_DEB")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/deb"))
}

/// The path of package `name`'s .deb; fails the test when `make deb` has
/// not made it.
fn deb(name: &str) -> PathBuf {
    let dir = deb_dir();
    let prefix = format!("{name}_{VERSION}-");
    let found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}: run `make deb` first", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| {
            let n = p.file_name().unwrap_or_default().to_string_lossy();
            n.starts_with(&prefix) && n.ends_with(".deb")
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one {prefix}*.deb in {}, found {found:?}: run `make deb`",
        dir.display()
    );
    found.into_iter().next().expect("one package")
}

fn dpkg_deb(args: &[&str], deb: &Path) -> String {
    let run = run_tool(
        Command::new(require::tool("dpkg-deb", "dpkg"))
            .args(args)
            .arg(deb),
        LIMIT,
    );
    assert_eq!(
        run.code,
        Some(0),
        "dpkg-deb {args:?} {}: {run:?}",
        deb.display()
    );
    run.stdout
}

/// The paths a package installs (files and links, not directories).
fn contents(deb: &Path) -> Vec<String> {
    dpkg_deb(&["-c"], deb)
        .lines()
        .filter(|l| !l.ends_with('/'))
        .filter_map(|l| l.split_whitespace().nth(5))
        .map(|p| p.trim_start_matches('.').to_string())
        .collect()
}

fn field(deb: &Path, name: &str) -> String {
    dpkg_deb(&["-f"], deb)
        .lines()
        .fold(String::new(), |acc, l| {
            match l.strip_prefix(&format!("{name}: ")) {
                Some(v) => v.to_string(),
                None => acc,
            }
        })
}

#[test]
fn each_package_holds_its_share() {
    let lib = contents(&deb("libdistcache1"));
    let dev = contents(&deb("libdistcache-dev"));
    let tools = contents(&deb("distcache"));
    for l in ["libdistcache", "libnal", "libdistcacheserver"] {
        for f in [
            format!("/usr/lib/{l}.so.1"),
            format!("/usr/lib/{l}.so.{VERSION}"),
        ] {
            assert!(lib.contains(&f), "libdistcache1 lacks {f}: {lib:?}");
        }
        let link = format!("/usr/lib/{l}.so");
        assert!(dev.contains(&link), "libdistcache-dev lacks {link}");
    }
    for f in [
        "/usr/include/distcache/dc_client.h",
        "/usr/include/distcache/dc_plug.h",
        "/usr/include/distcache/dc_server.h",
        "/usr/include/libnal/nal.h",
        "/usr/lib/libdistcache.a",
        "/usr/lib/pkgconfig/libdistcache.pc",
        "/usr/share/man/man3/DC_CTX_new.3.gz",
        "/usr/share/man/man3/DC_CTX_get_session.3.gz",
    ] {
        assert!(dev.contains(&f.to_string()), "libdistcache-dev lacks {f}");
    }
    for f in [
        "/usr/bin/dc_server",
        "/usr/bin/dc_client",
        "/usr/bin/dc_admin",
        "/usr/bin/dc_test",
        "/usr/bin/dc_snoop",
        "/usr/share/man/man8/dc_server.8.gz",
        "/usr/share/man/man1/dc_test.1.gz",
        "/usr/share/man/man7/distcache.7.gz",
        "/lib/systemd/system/dc_server.service",
        "/lib/systemd/system/dc_client.service",
        "/etc/default/dc_server",
    ] {
        assert!(tools.contains(&f.to_string()), "distcache lacks {f}");
    }
    // Nothing is shipped twice, and each kind of file is in one package.
    for (name, files) in [("libdistcache1", &lib), ("libdistcache-dev", &dev)] {
        assert!(
            !files.iter().any(|f| f.starts_with("/usr/bin/")),
            "{name} ships a tool"
        );
    }
    assert!(!tools.iter().any(|f| f.starts_with("/usr/lib/lib")));
    assert!(!lib.iter().any(|f| f.contains("/man/") || f.ends_with(".h")));
    for f in &lib {
        assert!(
            !dev.contains(f) && !tools.contains(f),
            "{f} is in two packages"
        );
    }
}

#[test]
fn depends_come_from_the_shared_library_needs() {
    let lib = deb("libdistcache1");
    let tools = deb("distcache");
    for deb in [&lib, &tools] {
        let depends = field(deb, "Depends");
        // The libraries and tools are linked against libc; dpkg-shlibdeps
        // names its package with a minimum version.
        assert!(
            depends.contains("libc6 (>= "),
            "{}: Depends: {depends:?}",
            deb.display()
        );
    }
    let dev = field(&deb("libdistcache-dev"), "Depends");
    assert!(
        dev.starts_with("libdistcache1 (= "),
        "libdistcache-dev Depends: {dev:?}"
    );
    let unit = {
        let dir = tempfile::tempdir().expect("tempdir");
        extract(&tools, dir.path());
        std::fs::read_to_string(dir.path().join("lib/systemd/system/dc_server.service"))
            .expect("the packaged unit")
    };
    assert!(unit.contains("ExecStart=/usr/bin/dc_server "), "{unit}");
    assert!(unit.contains("DynamicUser=yes"), "{unit}");
    assert!(unit.contains("NoNewPrivileges=yes"), "{unit}");
}

fn extract(deb: &Path, root: &Path) {
    let run = run_tool(
        Command::new(require::tool("dpkg-deb", "dpkg"))
            .arg("-x")
            .arg(deb)
            .arg(root),
        LIMIT,
    );
    assert_eq!(run.code, Some(0), "dpkg-deb -x {}: {run:?}", deb.display());
}

fn ok(run: ToolRun, what: &str) -> ToolRun {
    assert_eq!(run.code, Some(0), "{what}: {run:?}");
    run
}

/// The three packages extracted into a scratch root: the C example built
/// against its headers and libraries, and run against its dc_server.
#[test]
fn the_extracted_packages_build_and_serve_the_c_example() {
    let root = tempfile::tempdir().expect("tempdir");
    let root = root.path();
    for name in ["libdistcache1", "libdistcache-dev", "distcache"] {
        extract(&deb(name), root);
    }
    let usr = root.join("usr");
    let libdir = usr.join("lib");
    let work = tempfile::tempdir().expect("tempdir");
    let client = work.path().join("client");
    ok(
        run_tool(
            Command::new(require::tool("cc", "gcc"))
                .args(["-Wall", "-Wextra", "-Werror", "-I"])
                .arg(usr.join("include"))
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/c/client.c"))
                .arg("-o")
                .arg(&client)
                .arg("-L")
                .arg(&libdir)
                .arg("-ldistcache"),
            LIMIT,
        ),
        "cc examples/c/client.c against the packaged headers and libraries",
    );

    // The packaged library is the one the example loads.
    let ldd = ok(
        run_tool(
            Command::new(require::tool("ldd", "libc-bin"))
                .arg(&client)
                .env("LD_LIBRARY_PATH", &libdir),
            LIMIT,
        ),
        "ldd",
    );
    let line = ldd
        .stdout
        .lines()
        .find(|l| l.contains("libdistcache.so.1"))
        .unwrap_or_else(|| panic!("the example does not load libdistcache.so.1: {ldd:?}"));
    assert!(
        line.contains(&libdir.join("libdistcache.so.1").display().to_string()),
        "{line}"
    );

    let sock = work.path().join("dc.sock");
    let mut server = DcServer::builder()
        .bin(usr.join("bin/dc_server"))
        .unix_at(&sock)
        .start();
    let run = run_tool(
        Command::new(&client)
            .arg(format!("UNIX:{}", sock.display()))
            .env("LD_LIBRARY_PATH", &libdir),
        LIMIT,
    );
    server.kill();
    let run = ok(run, "the example against the packaged dc_server");
    for want in [
        "add:    stored",
        "has:    1",
        "remove: removed",
        "has:    0",
    ] {
        assert!(run.stdout.contains(want), "lacks {want:?}: {run:?}");
    }
}
