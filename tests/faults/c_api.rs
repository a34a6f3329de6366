//! The C API: `tests/c_harness/faults.c` against the staged library.

use super::c_support;
use super::dc_server::{DcServer, Net};
use std::time::Duration;

/// Runs `faults <address> <case>` against a dc_server and plays the
/// driver's part of its handshakes: kill the server, start a new one.
fn c_faults(case: &str, net: Net) {
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = c_support::compile_harness("faults", dir.path());
    let mut server = DcServer::builder().net(net).start();
    let mut cmd = std::process::Command::new(&prog);
    cmd.arg(server.address()).arg(case);
    let what = format!("faults {} {case}", server.address());
    let mut p = c_support::Proc::spawn(&what, &mut cmd, true);
    let handshake = Duration::from_secs(60);
    match case {
        "down" => {
            p.wait_line("READY down", handshake);
            server.kill();
            p.send_line("go");
            p.wait_line("READY up", handshake);
            server.start_again();
            p.send_line("go");
        }
        "fork-restart" => {
            p.wait_line("READY restart", handshake);
            server.kill();
            server.start_again();
            p.send_line("go");
        }
        _ => {}
    }
    p.finish_ok(Duration::from_secs(120));
}

#[test]
fn down_then_back_unix() {
    c_faults("down", Net::Unix);
}
#[test]
fn down_then_back_tcp() {
    c_faults("down", Net::Tcp);
}
#[test]
fn fork_after_restart_with_and_without_pidcheck_unix() {
    c_faults("fork-restart", Net::Unix);
}
#[test]
fn fork_after_restart_with_and_without_pidcheck_tcp() {
    c_faults("fork-restart", Net::Tcp);
}
#[test]
fn fork_while_threads_use_the_ctx() {
    c_faults("fork-busy", Net::Unix);
}
