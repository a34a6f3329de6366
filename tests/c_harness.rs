//! The C harness: builds the C programs in `tests/c_harness/` (and the C
//! examples) exactly as a user would, against the staged install of our
//! headers and libraries, and runs them against a real `dc_server`.
//!
//! The staged install comes from `make stage` (which `make test` runs): the
//! directory named by `DISTCACHE_STAGE`, by default `target/stage`. Every
//! child process is waited for with a time limit and killed by its PID when
//! it overruns; its stdout and stderr are shown on failure.

mod c_support;
mod dc_server;
mod require;

use c_support::{
    compile, compile_harness, compile_with, dynamic_entries, entries_of, finish_all_ok, memcheck,
    memcheck_totals, run_ok, stage, staged_dc_server, Link, Proc, Silent,
};
use dc_server::free_tcp_port;
use std::os::unix::net::UnixListener;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Tests that measure time or load the machine take this lock, so that the
/// timing checks (a few tens of milliseconds of tolerance) do not run next
/// to the 16-thread load.
static EXCLUSIVE: Mutex<()> = Mutex::new(());

fn exclusive() -> MutexGuard<'static, ()> {
    EXCLUSIVE.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------
// The tests

const FLAGS: &[(&str, &str)] = &[
    ("0", "flags 0: a connection per operation"),
    ("0x1", "PERSISTENT"),
    ("0x9", "PERSISTENT|LATE"),
    ("0x5", "PERSISTENT|RETRY"),
    ("0x3", "PERSISTENT|PIDCHECK"),
    ("0xf", "all four flags"),
    ("0x2", "PIDCHECK without PERSISTENT"),
    ("0x4", "RETRY without PERSISTENT"),
    ("0x8", "LATE without PERSISTENT"),
];

/// basic.c with every flag combination, all at once against one server,
/// and with flags 0 and PERSISTENT over TCP.
#[test]
fn basic_api_with_each_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = compile_harness("basic", dir.path());
    let server = staged_dc_server()
        .unix_at(&dir.path().join("s.sock"))
        .sessions(4096)
        .start();
    let tcp = staged_dc_server().tcp().sessions(4096).start();
    let mut running = Vec::new();
    for (flags, name) in FLAGS {
        let mut cmd = Command::new(&prog);
        cmd.arg(server.address()).arg(flags);
        running.push(Proc::spawn(&format!("basic UNIX {name}"), &mut cmd, false));
    }
    for flags in ["0", "0x1"] {
        let mut cmd = Command::new(&prog);
        cmd.arg(tcp.address()).arg(flags);
        running.push(Proc::spawn(&format!("basic TCP {flags}"), &mut cmd, false));
    }
    finish_all_ok(running, Duration::from_secs(60));
}

/// args.c: NULL, zero-length and oversize arguments fail without crashing.
#[test]
fn bad_arguments_fail_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = compile_harness("args", dir.path());
    let server = staged_dc_server()
        .unix_at(&dir.path().join("s.sock"))
        .sessions(512)
        .start();
    run_ok(&prog, &[&server.address()], Duration::from_secs(60));
}

/// fork.c: PIDCHECK gives a forked child its own connection; without it the
/// child reuses the inherited socket.
#[test]
fn pidcheck_across_fork() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = compile_harness("fork", dir.path());
    let server = staged_dc_server()
        .unix_at(&dir.path().join("s.sock"))
        .sessions(4096)
        .start();
    run_ok(&prog, &[&server.address()], Duration::from_secs(60));
}

/// restart.c: RETRY reconnects transparently after a server restart;
/// without RETRY one operation fails and the next reconnects. Over a UNIX
/// socket (a write to the dead connection fails at once) and over TCP (the
/// write succeeds and the failure shows on the read).
fn restart(tcp: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = compile_harness("restart", dir.path());
    let path = dir.path().join("s.sock");
    let port = free_tcp_port();
    let start = || {
        if tcp {
            staged_dc_server().tcp_on(port).sessions(512).start()
        } else {
            staged_dc_server().unix_at(&path).sessions(512).start()
        }
    };
    let mut server = start();
    let mut cmd = Command::new(&prog);
    cmd.arg(server.address());
    let mut p = Proc::spawn(&format!("restart {}", server.address()), &mut cmd, true);
    p.wait_line("READY restart", Duration::from_secs(30));
    server.kill();
    // A killed UNIX server leaves its socket file behind; the new one must
    // take the path over.
    let server2 = start();
    p.send_line("go");
    p.finish_ok(Duration::from_secs(60));
    drop(server2);
}

#[test]
fn retry_across_server_restart_unix() {
    restart(false);
}

#[test]
fn retry_across_server_restart_tcp() {
    restart(true);
}

/// late.c: PERSISTENT|LATE with a server that starts after DC_CTX_new.
#[test]
fn late_connect_to_server_started_later() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = compile_harness("late", dir.path());
    let path = dir.path().join("s.sock");
    let mut cmd = Command::new(&prog);
    cmd.arg(format!("UNIX:{}", path.display()));
    let mut p = Proc::spawn("late", &mut cmd, true);
    p.wait_line("READY start", Duration::from_secs(30));
    let server = staged_dc_server().unix_at(&path).sessions(512).start();
    p.send_line("go");
    p.finish_ok(Duration::from_secs(60));
    drop(server);
}

/// down.c: with no server, every call fails in under 100 ms: a missing
/// socket path, a stale socket file and a closed TCP port.
#[test]
fn server_down_fails_fast() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = compile_harness("down", dir.path());
    let stale = dir.path().join("stale.sock");
    drop(UnixListener::bind(&stale).expect("bind stale socket"));
    assert!(stale.exists(), "the stale socket file should remain");
    let missing = format!("UNIX:{}", dir.path().join("missing.sock").display());
    let stale = format!("UNIX:{}", stale.display());
    let closed = format!("IP:127.0.0.1:{}", free_tcp_port());
    let _guard = exclusive();
    run_ok(&prog, &[&missing, &stale, &closed], Duration::from_secs(60));
}

/// hang.c: a listener that accepts and never answers; every network call
/// fails at the timeout (DC_CTX_set_timeout, DISTCACHE_TIMEOUT_MS, the
/// 1000 ms default), with the breaker off where a run makes several.
#[test]
fn silent_server_times_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = compile_harness("hang", dir.path());
    let path = dir.path().join("silent.sock");
    let _silent = Silent::new(&path);
    let address = format!("UNIX:{}", path.display());
    let _guard = exclusive();
    // The runs are independent and mostly wait: run them side by side.
    let runs: [(&[&str], Option<&str>); 4] = [
        (&["set", "0", "0x1", "0x9"], None),
        (&["set", "0x5", "0xd", "0xf"], None),
        (&["env"], Some("700")),
        (&["default"], None),
    ];
    let mut running = Vec::new();
    for (args, env) in runs {
        let mut cmd = Command::new(&prog);
        cmd.arg(&address).args(args);
        match env {
            Some(v) => cmd.env("DISTCACHE_TIMEOUT_MS", v),
            None => cmd.env_remove("DISTCACHE_TIMEOUT_MS"),
        };
        match args[0] {
            "default" => cmd.env_remove("DISTCACHE_DOWN_MS"),
            _ => cmd.env("DISTCACHE_DOWN_MS", "0"),
        };
        let what = format!("hang {}", args.join(" "));
        running.push(Proc::spawn(&what, &mut cmd, false));
    }
    finish_all_ok(running, Duration::from_secs(60));
}

/// threads.c: 16 threads x 10000 checked operations on one shared ctx.
/// Measured on 2 vCPUs: about 6 s with flags 0 (a connection per
/// operation) and 2 s with PERSISTENT, so both keep the full count.
fn threads(flags: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let prog = compile_harness("threads", dir.path());
    let server = staged_dc_server()
        .unix_at(&dir.path().join("s.sock"))
        .sessions(4096)
        .start();
    let _guard = exclusive();
    run_ok(
        &prog,
        &[&server.address(), flags, "16", "10000"],
        Duration::from_secs(300),
    );
}

#[test]
fn threads_share_one_ctx_flags_0() {
    threads("0");
}

#[test]
fn threads_share_one_ctx_persistent() {
    threads("0x1");
}

/// The SONAMEs and filter entries of the staged libraries; programs linked
/// with -ldistcache alone and with all three names build, carry the
/// expected NEEDED entries and run, with one copy of the code.
#[test]
fn shared_library_names_and_link_lines() {
    let stage = stage();
    let lib = stage.join("lib");
    for (name, filter) in [
        ("libdistcache", None),
        ("libnal", Some("libdistcache.so.1")),
        ("libdistcacheserver", Some("libdistcache.so.1")),
    ] {
        for file in [
            format!("{name}.so.1.0.1"),
            format!("{name}.so.1"),
            format!("{name}.so"),
        ] {
            let path = lib.join(&file);
            assert!(path.exists(), "{} is missing", path.display());
            let entries = dynamic_entries(&path);
            assert_eq!(
                entries_of(&entries, "SONAME"),
                vec![format!("{name}.so.1")],
                "SONAME of {file}: {entries:?}"
            );
            let filters = entries_of(&entries, "FILTER");
            match filter {
                Some(f) => assert_eq!(filters, vec![f.to_string()], "FILTER of {file}"),
                None => assert!(filters.is_empty(), "{file} is a filter: {filters:?}"),
            }
        }
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let server = staged_dc_server()
        .unix_at(&dir.path().join("s.sock"))
        .sessions(512)
        .start();
    let one = compile(
        "tests/c_harness/link.c",
        dir.path(),
        "link-one",
        Link::Distcache,
    );
    let needed = entries_of(&dynamic_entries(&one), "NEEDED");
    assert!(
        needed.iter().any(|n| n == "libdistcache.so.1"),
        "-ldistcache: NEEDED {needed:?}"
    );
    assert!(
        !needed
            .iter()
            .any(|n| n.starts_with("libnal") || n.starts_with("libdistcacheserver")),
        "-ldistcache: NEEDED {needed:?}"
    );
    run_ok(
        &one,
        &[&server.address(), "--one-copy"],
        Duration::from_secs(30),
    );

    let all = compile(
        "tests/c_harness/link.c",
        dir.path(),
        "link-all",
        Link::AllThree,
    );
    let needed = entries_of(&dynamic_entries(&all), "NEEDED");
    for want in [
        "libdistcacheserver.so.1",
        "libdistcache.so.1",
        "libnal.so.1",
    ] {
        assert!(
            needed.iter().any(|n| n == want),
            "-ldistcacheserver -ldistcache -lnal: no NEEDED {want} in {needed:?}"
        );
    }
    run_ok(
        &all,
        &[&server.address(), "--one-copy"],
        Duration::from_secs(30),
    );
}

/// basic.c linked statically against libdistcache.a, with the explicit
/// system libraries and (when pkg-config is installed) with the ones
/// `pkg-config --static --libs libdistcache` lists.
#[test]
fn static_library_link() {
    let stage = stage();
    let dir = tempfile::tempdir().expect("tempdir");
    let server = staged_dc_server()
        .unix_at(&dir.path().join("s.sock"))
        .sessions(4096)
        .start();
    let mut progs = vec![compile(
        "tests/c_harness/basic.c",
        dir.path(),
        "basic-static",
        Link::Static(&["-lssl", "-lcrypto", "-lpthread", "-ldl", "-lm"]),
    )];

    let pc_dir = stage.join("lib/pkgconfig");
    assert!(
        pc_dir.join("libdistcache.pc").exists(),
        "{} is missing",
        pc_dir.join("libdistcache.pc").display()
    );
    {
        let mut cmd = Command::new(require::tool("pkg-config", "pkg-config"));
        cmd.args(["--static", "--libs", "libdistcache"])
            .env("PKG_CONFIG_PATH", &pc_dir);
        let done = Proc::spawn("pkg-config --static --libs", &mut cmd, false)
            .finish(Duration::from_secs(30));
        done.assert_ok();
        // The prefix inside the .pc may point elsewhere: keep only the
        // system libraries and link the archive by its staged path.
        let system: Vec<String> = done
            .stdout
            .split_whitespace()
            .filter(|t| !t.starts_with("-L") && *t != "-ldistcache")
            .map(str::to_string)
            .collect();
        println!("pkg-config --static system libraries: {system:?}");
        progs.push(compile_with(
            "tests/c_harness/basic.c",
            dir.path(),
            "basic-static-pc",
            Link::Static(&[]),
            &system,
        ));
    }

    for prog in progs {
        let needed = entries_of(&dynamic_entries(&prog), "NEEDED");
        assert!(
            !needed
                .iter()
                .any(|n| n.starts_with("libdistcache") || n.starts_with("libnal")),
            "{} links a shared distcache library: {needed:?}",
            prog.display()
        );
        run_ok(&prog, &[&server.address(), "0"], Duration::from_secs(60));
        run_ok(&prog, &[&server.address(), "0x1"], Duration::from_secs(60));
    }
}

/// The C examples build with -Wall -Wextra -Werror and run.
#[test]
fn c_examples_build_and_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = staged_dc_server()
        .unix_at(&dir.path().join("s.sock"))
        .sessions(512)
        .start();
    let client = compile("examples/c/client.c", dir.path(), "client", Link::Distcache);
    let done = run_ok(&client, &[&server.address()], Duration::from_secs(30));
    for want in [
        "add:    stored",
        "get:    ",
        "has:    1",
        "remove: removed",
        "has:    0",
    ] {
        assert!(
            done.stdout.contains(want),
            "client output lacks {want:?}:\n{}",
            done.stdout
        );
    }
    let load = compile("examples/c/load.c", dir.path(), "load", Link::Distcache);
    let done = run_ok(
        &load,
        &[&server.address(), "3000"],
        Duration::from_secs(120),
    );
    assert!(
        done.stdout.contains("persistent") && done.stdout.contains("per-op"),
        "load output:\n{}",
        done.stdout
    );
    assert!(
        !done.stdout.contains("FAILED"),
        "load output:\n{}",
        done.stdout
    );
}

/// The C programs under valgrind's memcheck: no invalid access, no use of
/// uninitialised memory and no definite or indirect leak, with one and
/// several threads, across fork, and (faults.c) while the server is down
/// and after it is back. Fails, naming the package, without valgrind.
#[test]
fn valgrind_memcheck() {
    require::tool("valgrind", "valgrind");
    let dir = tempfile::tempdir().expect("tempdir");
    let logs = tempfile::tempdir().expect("tempdir");
    let server = staged_dc_server()
        .unix_at(&dir.path().join("s.sock"))
        .sessions(4096)
        .start();
    let runs: [(&str, &[&str]); 5] = [
        ("basic", &["0"]),
        ("basic", &["0xf"]),
        ("args", &[]),
        ("fork", &[]),
        ("threads", &["0x1", "4", "500"]),
    ];
    let mut running = Vec::new();
    let mut names = Vec::new();
    for (i, (name, args)) in runs.iter().enumerate() {
        let exe = format!("{name}-{i}");
        let prog = compile(
            &format!("tests/c_harness/{name}.c"),
            dir.path(),
            &exe,
            Link::Distcache,
        );
        let mut cmd = memcheck(&prog, logs.path());
        cmd.arg(server.address()).args(*args);
        let what = format!("valgrind {name} {}", args.join(" "));
        running.push(Proc::spawn(&what, &mut cmd, false));
        names.push((what, exe));
    }

    // faults.c down: every call fails while the server is down, then works
    // again against a new one.
    let path = dir.path().join("restarted.sock");
    let mut restarted = staged_dc_server().unix_at(&path).sessions(512).start();
    let prog = compile_harness("faults", dir.path());
    let mut cmd = memcheck(&prog, logs.path());
    cmd.arg(restarted.address()).arg("down");
    let mut down = Proc::spawn("valgrind faults down", &mut cmd, true);
    down.wait_line("READY down", Duration::from_secs(60));
    restarted.kill();
    down.send_line("go");
    down.wait_line("READY up", Duration::from_secs(60));
    let _restarted = staged_dc_server().unix_at(&path).sessions(512).start();
    down.send_line("go");
    running.push(down);
    names.push(("valgrind faults down".into(), "faults".into()));

    finish_all_ok(running, Duration::from_secs(180));
    for (what, exe) in names {
        let totals = memcheck_totals(logs.path(), &format!("{exe}."));
        println!("{what}: {totals}");
        totals.assert_clean(&what);
    }
}
