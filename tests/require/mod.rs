//! What a test needs from the machine, checked at its start: a tool on the
//! PATH, root, an IPv6 loopback. A test whose need is not met fails and
//! says how to meet it; none passes without having checked anything.
//! (`make deps` installs every tool named here.)

#![allow(dead_code)]

use std::path::PathBuf;

/// Where `tool` is on the PATH, as `command -v` finds it.
pub fn find(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| is_executable(p))
}

fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Fails the test, naming the Debian package to install, unless `tool` is
/// on the PATH.
pub fn tool(tool: &str, package: &str) -> PathBuf {
    find(tool).unwrap_or_else(|| {
        panic!(
            "{tool} is not installed, and this test needs it: run \
             `apt-get install -y {package}` as root (or `make deps`)"
        )
    })
}

/// Whether the test runs as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Fails the test unless it runs as root. The tests that call this are
/// ignored by a plain `cargo test` and run by `make test-root` (and by
/// `make test` when it runs as root).
pub fn root(what: &str) {
    assert!(
        is_root(),
        "{what} needs root: run `sudo make test-root` (make test runs it when run as root)"
    );
}

/// A free TCP port on the IPv6 loopback; fails the test when this host has
/// none.
pub fn ipv6_loopback_port() -> u16 {
    let l = std::net::TcpListener::bind("[::1]:0").unwrap_or_else(|e| {
        panic!(
            "this host has no IPv6 loopback ([::1]: {e}), which this test needs: \
             enable it as root with `sysctl -w net.ipv6.conf.lo.disable_ipv6=0`"
        )
    });
    l.local_addr().expect("bound address").port()
}
