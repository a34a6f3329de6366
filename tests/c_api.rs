//! The libnal, DC_PLUG and DC_SERVER C APIs, proven by C programs
//! (tests/c_harness/nal_*.c, dc_*.c, api_bad_input.c, preload.c) built with
//! `-std=c99 -Wall -Wextra -Werror` against the staged install
//! (`DISTCACHE_STAGE`, by default target/stage) and run as real processes:
//! an echo server over every selector, a transport and a selector of its
//! own through nal_devel.h, buffer/codec/address edge cases, a
//! cache server embedded with DC_SERVER (with a C cache and with the default
//! one) driven by DC_CTX clients, by a pipelining DC_PLUG client and by the
//! golden wire vectors, bad input on every function, and LD_PRELOAD over a
//! stand-in libdistcache.
//!
//! The same programs were written to pass against the original distcache:
//! the `original_*` tests (ignored by default) build and run them against
//! an install of it named by `DISTCACHE_ORIGINAL` (its prefix, with
//! include/, lib/ and bin/), with the original's dc_server and dc_test, and
//! leave out what the original cannot do (see tests/c_harness/FACTS.md):
//!
//!     DISTCACHE_ORIGINAL=/opt/distcache cargo test --test c_api -- --ignored
//!
//! Every child is waited for with a time limit and killed by its PID.

mod common;
mod dc_server;

#[allow(dead_code)]
mod c_support;
mod replay;
mod require;

use c_support::{
    compile_with, finish_all_ok, manifest_dir, memcheck, memcheck_totals, run_ok, stage, Link, Proc,
};
use common::{all_vectors, Vector};
use dc_server::{free_tcp_port, DcServer};
use replay::{
    assert_all_passed, check_special_vectors, replay_all, replayable, Endpoint, Target, CRASHERS,
    TAKE_SERVED, TRICKLE_BUGS,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The C standard the programs are written in.
const C_FLAGS: [&str; 2] = ["-std=c99", "-D_POSIX_C_SOURCE=200809L"];

/// Tests whose programs check elapsed times (the selector timeout) take
/// this lock so that the heavier tests do not run beside them.
static TIMING: Mutex<()> = Mutex::new(());

fn timing() -> MutexGuard<'static, ()> {
    TIMING.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------
// Which library: ours (staged) or the original's

enum Lib {
    Ours,
    Original(PathBuf),
}

impl Lib {
    /// The original's install, from DISTCACHE_ORIGINAL.
    fn original() -> Lib {
        let prefix = std::env::var_os("DISTCACHE_ORIGINAL").map(PathBuf::from);
        match prefix {
            Some(p) if p.join("lib/libnal.so.1").exists() => Lib::Original(p),
            _ => panic!(
                "set DISTCACHE_ORIGINAL to the prefix of an install of the original \
                 distcache (with lib/libnal.so.1, include/ and bin/dc_server)"
            ),
        }
    }

    fn is_ours(&self) -> bool {
        matches!(self, Lib::Ours)
    }

    fn name(&self) -> &'static str {
        match self {
            Lib::Ours => "ours",
            Lib::Original(_) => "original",
        }
    }

    /// Builds tests/c_harness/<name>.c into dir/<name>, linked with
    /// libdistcacheserver, libdistcache and libnal.
    fn build(&self, name: &str, dir: &Path) -> PathBuf {
        let src = format!("tests/c_harness/{name}.c");
        let flags: Vec<String> = C_FLAGS.iter().map(|s| s.to_string()).collect();
        match self {
            Lib::Ours => compile_with(&src, dir, name, Link::AllThree, &flags),
            Lib::Original(prefix) => {
                let out = dir.join(name);
                let lib = prefix.join("lib");
                let mut cmd = Command::new("cc");
                cmd.args(["-Wall", "-Wextra", "-Werror"])
                    .args(C_FLAGS)
                    .arg(format!("-I{}", prefix.join("include").display()))
                    .arg(manifest_dir().join(&src))
                    .arg("-o")
                    .arg(&out)
                    .arg(format!("-L{}", lib.display()))
                    .args([
                        "-Wl,--no-as-needed",
                        "-ldistcacheserver",
                        "-ldistcache",
                        "-lnal",
                        "-lpthread",
                    ])
                    .arg(format!("-Wl,-rpath,{}", lib.display()));
                Proc::spawn(&format!("cc {src} (original)"), &mut cmd, false)
                    .finish(Duration::from_secs(120))
                    .assert_ok();
                out
            }
        }
    }

    fn bin(&self, tool: &str) -> PathBuf {
        match self {
            Lib::Ours => stage().join("bin").join(tool),
            Lib::Original(prefix) => prefix.join("bin").join(tool),
        }
    }

    fn lib_dir(&self) -> PathBuf {
        match self {
            Lib::Ours => stage().join("lib"),
            Lib::Original(prefix) => prefix.join("lib"),
        }
    }
}

// ---------------------------------------------------------------------------
// Servers

/// A dc_server (ours or the original's) listening on `address`.
fn dc_server(lib: &Lib, address: &str) -> DcServer {
    DcServer::builder()
        .bin(lib.bin("dc_server"))
        .listen(address)
        .sessions(4096)
        .start()
}

/// The embedded server (dc_embed.c), driven through its stdin.
struct Embed {
    proc: Proc,
    started: Instant,
}

impl Embed {
    /// Starts `prog address args...`, with `--ext` for our library.
    fn start(lib: &Lib, prog: &Path, address: &str, args: &[&str]) -> Embed {
        Embed::start_in(Command::new(prog), lib, address, args)
    }

    /// [`Embed::start`] with `cmd` as the command so far (the program, or
    /// a tool that runs it).
    fn start_in(mut cmd: Command, lib: &Lib, address: &str, args: &[&str]) -> Embed {
        let started = Instant::now();
        cmd.arg(address).args(args);
        if lib.is_ours() {
            cmd.arg("--ext");
        }
        let mut proc = Proc::spawn(
            &format!("dc_embed {address} {}", args.join(" ")),
            &mut cmd,
            true,
        );
        let ready = proc.wait_line_prefix("READY ", Duration::from_secs(30));
        let cache = if args.contains(&"--default-cache") {
            "default"
        } else {
            "c"
        };
        assert_eq!(ready, format!("READY {address} cache={cache}"));
        Embed { proc, started }
    }

    /// The counters of a "stats" command.
    fn stats(&mut self) -> HashMap<String, u64> {
        self.proc.send_line("stats");
        let line = self
            .proc
            .wait_line_prefix("STATS ", Duration::from_secs(10));
        parse_stats(&line)
    }

    /// "stats" until no client is connected (the server notices a closed
    /// connection on its next pass), at most 5 s.
    fn stats_when_idle(&mut self) -> HashMap<String, u64> {
        let start = Instant::now();
        loop {
            let s = self.stats();
            if s["empty"] == 1 {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "clients still connected after 5 s: {s:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn reset(&mut self) {
        self.proc.send_line("reset");
        self.proc.wait_line("RESET", Duration::from_secs(10));
    }

    /// Stops it with a stdin line; it must free everything and exit 0.
    fn stop(mut self) {
        self.proc.send_line("stop");
        self.proc.wait_line("BYE", Duration::from_secs(10));
        self.exit_ok();
    }

    /// Waits at most 10 s more for the exit, which must be a success.
    fn exit_ok(self) {
        let limit = self.started.elapsed() + Duration::from_secs(10);
        self.proc.finish_ok(limit);
    }

    /// Stops it with SIGTERM (sent to its PID); same expectations.
    fn terminate(mut self) {
        let pid = self.proc.id().to_string();
        let done = Proc::spawn(
            "kill -TERM",
            Command::new("kill").args(["-TERM", &pid]),
            false,
        )
        .finish(Duration::from_secs(10));
        done.assert_ok();
        self.proc.wait_line("BYE", Duration::from_secs(10));
        self.exit_ok();
    }
}

fn parse_stats(line: &str) -> HashMap<String, u64> {
    line.split_whitespace()
        .skip(1)
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// A dc_embed on a UNIX socket in a directory of its own, for the vector
/// replay.
struct EmbedTarget {
    embed: Embed,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Target for EmbedTarget {
    fn endpoint(&self) -> Endpoint {
        Endpoint::Unix(self.socket.clone())
    }

    fn is_running(&mut self) -> bool {
        self.embed.proc.is_running()
    }
}

fn unix_address(dir: &Path, name: &str) -> String {
    format!("UNIX:{}", dir.join(name).display())
}

fn tcp_address() -> String {
    format!("IP:127.0.0.1:{}", free_tcp_port())
}

/// A free port on [::1]; the test fails when this host has no IPv6
/// loopback.
fn ipv6_address() -> String {
    format!("IPv6:[::1]:{}", require::ipv6_loopback_port())
}

fn run(prog: &Path, what: &str, args: &[&str]) -> Proc {
    let mut cmd = Command::new(prog);
    cmd.args(args);
    Proc::spawn(&format!("{what} {}", args.join(" ")), &mut cmd, false)
}

/// The "OPS <n> STORED <k>" line of dc_plug_client.
fn plug_counts(stdout: &str) -> (u64, u64) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("OPS "))
        .unwrap_or_else(|| panic!("no OPS line in:\n{stdout}"));
    let w: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(w.len(), 4, "OPS line: {line}");
    (
        w[1].parse().expect("OPS count"),
        w[3].parse().expect("STORED count"),
    )
}

// ---------------------------------------------------------------------------
// The checks, for either library

fn nal_buffer(lib: &Lib) {
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = lib.build("nal_buffer", dir.path());
    let tcp = tcp_address();
    let mut args = vec![tcp.as_str()];
    if lib.is_ours() {
        args.push("--ext");
    }
    run_ok(&prog, &args, Duration::from_secs(60));
}

fn nal_echo(lib: &Lib) {
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = lib.build("nal_echo", dir.path());
    let unix = unix_address(dir.path(), "echo.sock");
    let tcp = tcp_address();
    let refused = tcp_address();
    let mut args = vec!["--refused", &refused, &unix, &tcp];
    if lib.is_ours() {
        args.push("--ext");
    }
    let _guard = timing();
    run_ok(&prog, &args, Duration::from_secs(120));
}

fn dc_plug_client_against_dc_server(lib: &Lib) {
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = lib.build("dc_plug_client", dir.path());
    let unix = dc_server(lib, &unix_address(dir.path(), "s.sock"));
    let tcp = dc_server(lib, &tcp_address());
    let mut running = Vec::new();
    for kind in ["fdselect", "fdpoll", "new"] {
        for server in [&unix, &tcp] {
            let address = server.address();
            let mut args = vec!["--selector", kind];
            if lib.is_ours() {
                args.push("--ext");
            }
            args.push(&address);
            running.push(run(&prog, "dc_plug_client", &args));
        }
    }
    finish_all_ok(running, Duration::from_secs(60));
}

/// dc_embed with the C cache and with the default cache, driven by DC_CTX
/// clients (ours: basic.c with several flag sets; the original: its
/// dc_test) and by dc_plug_client, all at once; then the counters.
fn dc_embed_serves_clients(lib: &Lib) {
    let dir = tempfile::tempdir().expect("tempdir");
    let embed = lib.build("dc_embed", dir.path());
    let plug = lib.build("dc_plug_client", dir.path());
    let basic = if lib.is_ours() {
        Some(c_support::compile_harness("basic", dir.path()))
    } else {
        None
    };
    let setups: [(String, &[&str]); 3] = [
        (
            unix_address(dir.path(), "c.sock"),
            &["--selector", "fdpoll"],
        ),
        (
            tcp_address(),
            &["--default-cache", "--selector", "fdselect"],
        ),
        (unix_address(dir.path(), "d.sock"), &["--default-cache"]),
    ];
    for (address, args) in setups.iter() {
        let mut server = Embed::start(lib, &embed, address, args);
        let mut running = Vec::new();
        let mut plug_args = vec![];
        if lib.is_ours() {
            plug_args.push("--ext");
        }
        plug_args.push(address.as_str());
        running.push(run(&plug, "dc_plug_client", &plug_args));
        match &basic {
            Some(basic) => {
                for flags in ["0", "0x1", "0x9", "0xf"] {
                    running.push(run(basic, "basic", &[address, flags]));
                }
            }
            None => {
                let dc_test = lib.bin("dc_test");
                for persistent in [false, true] {
                    let mut cmd = Command::new(&dc_test);
                    cmd.args(["-connect", address, "-sessions", "30", "-ops", "3000"]);
                    if persistent {
                        cmd.arg("-persistent");
                    }
                    running.push(Proc::spawn("dc_test", &mut cmd, false));
                }
            }
        }
        finish_all_ok(running, Duration::from_secs(120));
        let s = server.stats_when_idle();
        println!("{address} {args:?}: {s:?}");
        assert!(s["ops"] > 0 && s["accepted"] > 0, "counters: {s:?}");
        if args.contains(&"--default-cache") {
            assert_eq!(s["add"] + s["get"] + s["have"], 0, "C cache used: {s:?}");
        } else {
            for k in ["add", "get", "getlen", "remove", "have"] {
                assert!(s[k] > 0, "the C cache's {k} handler never ran: {s:?}");
            }
        }
        server.stop();
    }
}

/// The counters exactly, on a fresh embedded server: dc_plug_client's
/// requests are its operations, its sessions are what is stored;
/// reset_operations; SIGTERM stops it cleanly.
fn dc_embed_counters(lib: &Lib) {
    let dir = tempfile::tempdir().expect("tempdir");
    let embed = lib.build("dc_embed", dir.path());
    let plug = lib.build("dc_plug_client", dir.path());
    for args in [&[][..], &["--default-cache"][..]] {
        let address = unix_address(dir.path(), &format!("{}.sock", args.len()));
        let mut server = Embed::start(lib, &embed, &address, args);
        let s = server.stats();
        assert_eq!(
            (s["items"], s["ops"], s["empty"]),
            (0, 0, 1),
            "fresh server: {s:?}"
        );
        let done = run_ok(&plug, &[&address], Duration::from_secs(60));
        let (ops, stored) = plug_counts(&done.stdout);
        let s = server.stats_when_idle();
        assert_eq!(
            (s["ops"], s["items"]),
            (ops, stored),
            "after dc_plug_client ({ops} requests, {stored} left stored): {s:?}"
        );
        server.reset();
        let s = server.stats();
        assert_eq!(
            (s["ops"], s["items"]),
            (0, stored),
            "after reset_operations: {s:?}"
        );
        server.terminate();
    }
}

fn start_embed_target(lib: &Lib, prog: &Path, args: &[&str]) -> Box<dyn Target> {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("e.sock");
    let embed = Embed::start(lib, prog, &format!("UNIX:{}", socket.display()), args);
    Box::new(EmbedTarget {
        embed,
        socket,
        _dir: dir,
    })
}

/// The golden vectors against dc_embed: the same bytes as dc_server gives
/// (the recorded ones), and the same closed connections for bad input.
fn vectors_against_dc_embed(lib: &Lib) {
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = lib.build("dc_embed", dir.path());
    let mut vectors: Vec<Vector> = all_vectors().into_iter().filter(replayable).collect();
    check_special_vectors(&vectors);
    if !lib.is_ours() {
        // The original aborts on these, or misreads split frames.
        // It closes the connection on TAKE, an operation it does not know.
        vectors.retain(|v| {
            !CRASHERS.contains(&&*v.name)
                && !TRICKLE_BUGS.contains(&&*v.name)
                && !TAKE_SERVED.contains(&&*v.name)
        });
    }
    for args in [&[][..], &["--default-cache"][..]] {
        let outcomes = replay_all(&vectors, &|| start_embed_target(lib, &prog, args));
        assert_all_passed(&format!("dc_embed {args:?} ({})", lib.name()), &outcomes);
    }
}

/// preload.c linked against a stand-in libdistcache.so.1 whose functions
/// fail: it fails on its own and works with the real library preloaded.
fn preload(lib: &Lib) {
    let dir = tempfile::tempdir().expect("tempdir");
    let standin = dir.path().join("standin");
    std::fs::create_dir(&standin).expect("mkdir");
    let include = match lib {
        Lib::Ours => stage().join("include"),
        Lib::Original(p) => p.join("include"),
    };
    let so = standin.join("libdistcache.so.1");
    let mut cmd = Command::new("cc");
    cmd.args(["-Wall", "-Wextra", "-Werror", "-shared", "-fPIC"])
        .args(C_FLAGS)
        .arg(format!("-I{}", include.display()))
        .arg(manifest_dir().join("tests/c_harness/standin_distcache.c"))
        .arg("-Wl,-soname,libdistcache.so.1")
        .arg("-o")
        .arg(&so);
    Proc::spawn("cc stand-in", &mut cmd, false)
        .finish(Duration::from_secs(60))
        .assert_ok();
    std::os::unix::fs::symlink("libdistcache.so.1", standin.join("libdistcache.so"))
        .expect("symlink");
    let prog = dir.path().join("preload");
    let mut cmd = Command::new("cc");
    cmd.args(["-Wall", "-Wextra", "-Werror"])
        .args(C_FLAGS)
        .arg(format!("-I{}", include.display()))
        .arg(manifest_dir().join("tests/c_harness/preload.c"))
        .arg("-o")
        .arg(&prog)
        .arg(format!("-L{}", standin.display()))
        .arg("-ldistcache")
        .arg(format!("-Wl,-rpath,{}", standin.display()));
    Proc::spawn("cc preload.c", &mut cmd, false)
        .finish(Duration::from_secs(60))
        .assert_ok();

    let server = dc_server(lib, &unix_address(dir.path(), "s.sock"));
    // On its own, the stand-in answers: DC_CTX_new returns NULL.
    let alone =
        run(&prog, "preload (stand-in)", &[&server.address()]).finish(Duration::from_secs(30));
    assert_eq!(
        alone.status.code(),
        Some(3),
        "without LD_PRELOAD: {}\n{}",
        alone.stdout,
        alone.stderr
    );
    assert!(
        alone
            .stdout
            .contains(&format!("DC_CTX_new from {}", so.display())),
        "without LD_PRELOAD: {}",
        alone.stdout
    );
    // Preloaded, the real library answers.
    let real = lib.lib_dir().join("libdistcache.so.1");
    let mut cmd = Command::new(&prog);
    cmd.arg(server.address())
        .env("LD_PRELOAD", &real)
        .env("LD_LIBRARY_PATH", lib.lib_dir());
    let done =
        Proc::spawn("preload (LD_PRELOAD)", &mut cmd, false).finish_ok(Duration::from_secs(30));
    assert!(
        done.stdout
            .contains(&format!("DC_CTX_new from {}", real.display())),
        "DC_CTX_new did not come from the preloaded library: {}",
        done.stdout
    );
}

// ---------------------------------------------------------------------------
// Against our library

#[test]
fn nal_buffer_codecs_addresses_pairs_and_nagle() {
    nal_buffer(&Lib::Ours);
}

#[test]
fn nal_echo_over_every_selector_unix_and_tcp() {
    nal_echo(&Lib::Ours);
}

/// Extension: the echo over IPv6 loopback.
#[test]
fn nal_echo_over_ipv6() {
    let v6 = ipv6_address();
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = Lib::Ours.build("nal_echo", dir.path());
    let _guard = timing();
    run_ok(&prog, &[&v6], Duration::from_secs(120));
}

/// libnal/nal_devel.h: nal_devel.c adds an address type ("PIPE:", over
/// socketpair(2)) and a selector type ("tiny", over poll(2)) written in C,
/// and moves 64 KiB each way through NAL_LISTENER and NAL_CONNECTION with
/// them under every selector, built-in connections under "tiny" too. It
/// uses the descriptor control commands the original kept private, so it
/// has no run against the original.
#[test]
fn nal_devel_transport_and_selector_written_in_c() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = Lib::Ours.build("nal_devel", dir.path());
    let done = run_ok(&prog, &[], Duration::from_secs(120));
    assert!(
        done.stdout.contains("OK nal_devel"),
        "nal_devel did not finish: {}",
        done.stdout
    );
}

/// Extension: NAL_LISTENER_set_fs_owner takes numeric ids by the rules of
/// `dc_server -sockowner` and `-sockgroup` (the same resolver): the
/// caller's own uid and gid as numbers, an id no account has refused, and
/// as root another account's uid and a bare group number applied.
#[test]
fn nal_listener_fs_owner_takes_numeric_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = Lib::Ours.build("nal_fs_owner", dir.path());
    let path = dir.path().join("owned.sock");
    let done = run_ok(
        &prog,
        &[path.to_str().expect("utf-8 path")],
        Duration::from_secs(60),
    );
    assert!(
        done.stdout.contains("OK nal_fs_owner"),
        "nal_fs_owner did not finish: {}",
        done.stdout
    );
}

/// Extension: bad input to every function fails cleanly.
#[test]
fn bad_input_to_every_function_fails_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = Lib::Ours.build("api_bad_input", dir.path());
    let path = dir.path().join("bad.sock");
    run_ok(
        &prog,
        &[path.to_str().expect("utf-8 path")],
        Duration::from_secs(60),
    );
}

#[test]
fn dc_plug_client_pipelines_against_dc_server() {
    dc_plug_client_against_dc_server(&Lib::Ours);
}

#[test]
fn dc_embed_serves_dc_ctx_and_plug_clients() {
    dc_embed_serves_clients(&Lib::Ours);
}

#[test]
fn dc_embed_counters_reset_and_sigterm() {
    dc_embed_counters(&Lib::Ours);
}

/// Extension: the embedded server listening on IPv6, with DC_CTX and
/// DC_PLUG clients.
#[test]
fn dc_embed_over_ipv6() {
    let v6 = ipv6_address();
    let dir = tempfile::tempdir().expect("tempdir");
    let embed = Lib::Ours.build("dc_embed", dir.path());
    let plug = Lib::Ours.build("dc_plug_client", dir.path());
    let basic = c_support::compile_harness("basic", dir.path());
    let server = Embed::start(&Lib::Ours, &embed, &v6, &[]);
    finish_all_ok(
        vec![
            run(&plug, "dc_plug_client", &[&v6]),
            run(&basic, "basic", &[&v6, "0x1"]),
        ],
        Duration::from_secs(60),
    );
    server.stop();
}

#[test]
fn vectors_against_dc_embed_match_dc_server() {
    vectors_against_dc_embed(&Lib::Ours);
}

#[test]
fn ld_preload_over_a_stand_in_library() {
    preload(&Lib::Ours);
}

/// The libnal and DC_PLUG programs, and the embedded server serving a
/// DC_PLUG client, under valgrind's memcheck: no invalid access and no
/// definite or indirect leak. Fails, naming the package, without valgrind.
#[test]
fn nal_and_plug_programs_under_valgrind() {
    require::tool("valgrind", "valgrind");
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let tcp = tcp_address();
    let unix = unix_address(dir.path(), "vg.sock");
    let runs: [(&str, Vec<&str>); 4] = [
        ("nal_buffer", vec![&tcp, "--ext"]),
        ("nal_echo", vec![&unix]),
        ("dc_plug_client", vec!["--ext"]),
        ("api_bad_input", vec!["PATH"]),
    ];
    let bad_sock = dir.path().join("bad.sock");
    let mut running = Vec::new();
    for (name, args) in runs.iter() {
        let prog = Lib::Ours.build(name, dir.path());
        let mut cmd = memcheck(&prog, logs.path());
        for a in args {
            if *a == "PATH" {
                cmd.arg(&bad_sock);
            } else {
                cmd.arg(a);
            }
        }
        running.push(Proc::spawn(&format!("valgrind {name}"), &mut cmd, false));
    }
    // The embedded server, serving a DC_PLUG client, then stopped.
    let embed = Lib::Ours.build("dc_embed", dir.path());
    let plug = Lib::Ours.build("dc_plug_client", dir.path());
    let cmd = memcheck(&embed, logs.path());
    let _guard = timing();
    let server = Embed::start_in(cmd, &Lib::Ours, &unix_address(dir.path(), "e.sock"), &[]);
    running.push(run(
        &plug,
        "dc_plug_client",
        &[&unix_address(dir.path(), "e.sock")],
    ));
    finish_all_ok(running, Duration::from_secs(300));
    server.stop();
    for (name, _) in runs.iter().chain(&[("dc_embed", vec![])]) {
        let totals = memcheck_totals(logs.path(), &format!("{name}."));
        println!("valgrind {name}: {totals}");
        totals.assert_clean(name);
    }
}

// ---------------------------------------------------------------------------
// Against the original (DISTCACHE_ORIGINAL): proof that the expectations
// above are the original's

#[test]
#[ignore = "needs the original distcache installed at DISTCACHE_ORIGINAL"]
fn original_nal_buffer() {
    nal_buffer(&Lib::original());
}

#[test]
#[ignore = "needs the original distcache installed at DISTCACHE_ORIGINAL"]
fn original_nal_echo() {
    nal_echo(&Lib::original());
}

#[test]
#[ignore = "needs the original distcache installed at DISTCACHE_ORIGINAL"]
fn original_dc_plug_client() {
    dc_plug_client_against_dc_server(&Lib::original());
}

#[test]
#[ignore = "needs the original distcache installed at DISTCACHE_ORIGINAL"]
fn original_dc_embed_serves_clients() {
    dc_embed_serves_clients(&Lib::original());
}

#[test]
#[ignore = "needs the original distcache installed at DISTCACHE_ORIGINAL"]
fn original_dc_embed_counters() {
    dc_embed_counters(&Lib::original());
}

#[test]
#[ignore = "needs the original distcache installed at DISTCACHE_ORIGINAL"]
fn original_vectors_against_dc_embed() {
    vectors_against_dc_embed(&Lib::original());
}

#[test]
#[ignore = "needs the original distcache installed at DISTCACHE_ORIGINAL"]
fn original_ld_preload() {
    preload(&Lib::original());
}
