//! The C harness's `DC_CTX` programs (tests/c_harness/basic.c and
//! threads.c), built against the staged install as a user builds them,
//! run through a dc_server gateway to a real `redis-server`.
//!
//! Needs `make stage` (which `make test` runs) and `redis-server`
//! (`apt-get install -y redis-server redis-tools`).

// Only part of the C harness's helpers is used here.
#[allow(dead_code)]
mod c_support;
mod common;
mod dc_server;
mod redis_support;
mod require;

use c_support::{compile_harness, finish_all_ok, run_ok, Proc};
use redis_support::{gateway, RedisProc};
use std::process::Command;
use std::time::Duration;

const FLAGS: &[&str] = &["0", "0x1", "0x9", "0x5", "0x3", "0xf", "0x2", "0x4", "0x8"];

/// A gateway whose answers come well within the library's own timeout
/// (1000 ms), on a server without a replica.
fn gateway_on(r: &RedisProc) -> dc_server::DcServer {
    gateway(
        &format!("redis://{}", r.node()),
        &["-store-timeout", "800", "-store-remove-sync", "off"],
    )
}

/// basic.c with every flag combination, all at once, through one gateway.
#[test]
fn basic_api_with_each_flag_through_a_gateway() {
    let r = RedisProc::start(&[]);
    let gw = gateway_on(&r);
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = compile_harness("basic", dir.path());
    let running: Vec<Proc> = FLAGS
        .iter()
        .map(|flags| {
            let mut cmd = Command::new(&prog);
            cmd.arg(gw.address()).arg(flags);
            Proc::spawn(
                &format!("basic through a gateway, flags {flags}"),
                &mut cmd,
                false,
            )
        })
        .collect();
    finish_all_ok(running, Duration::from_secs(120));
}

/// threads.c: 8 threads sharing one ctx, every result checked against a
/// model, through a gateway.
#[test]
fn threads_share_one_ctx_through_a_gateway() {
    let r = RedisProc::start(&[]);
    let gw = gateway_on(&r);
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = compile_harness("threads", dir.path());
    run_ok(
        &prog,
        &[&gw.address(), "0x1", "8", "2000"],
        Duration::from_secs(300),
    );
}
