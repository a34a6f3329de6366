//! DC_CTX_take_session() from C: tests/c_harness/take.c, built against the
//! staged install as a user builds it, run against a real dc_server and
//! through a real dc_client proxy. It checks that a take gives a session
//! once, works with a short buffer and `DC_CTX_reget_session()`, and that
//! of many processes taking one id at once exactly one gets it.

#[allow(dead_code)] // shared with the C harness; a part is used here
mod c_support;
mod common;
mod dc_server;

use c_support::{compile_harness, stage, staged_dc_server, Proc};
use std::process::{Command, Stdio};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn take_from_c_against_dc_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = compile_harness("take", dir.path());
    let server = staged_dc_server()
        .unix_at(&dir.path().join("s.sock"))
        .sessions(4096)
        .start();
    let mut cmd = Command::new(&prog);
    cmd.args([&server.address(), "100", "8"]);
    Proc::spawn("take (dc_server)", &mut cmd, false).finish_ok(LIMIT);
}

#[test]
fn take_from_c_through_dc_client() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = compile_harness("take", dir.path());
    let server = staged_dc_server()
        .unix_at(&dir.path().join("s.sock"))
        .sessions(4096)
        .start();
    let socket = dir.path().join("p.sock");
    let mut proxy = common::spawn_listening(
        Command::new(stage().join("bin/dc_client"))
            .arg("-listen")
            .arg(format!("UNIX:{}", socket.display()))
            .arg("-server")
            .arg(server.address())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        &socket,
    );
    let mut cmd = Command::new(&prog);
    cmd.args([&format!("UNIX:{}", socket.display()), "50", "8"]);
    let run = Proc::spawn("take (through dc_client)", &mut cmd, false).finish(LIMIT);
    proxy.kill();
    run.assert_ok();
    run.report();
}
