//! Support for the C harness (`tests/c_harness.rs`): the staged install,
//! compiling C programs against it, child processes with bounded waits,
//! `dc_server` from it and silent listeners, and `readelf`.

use crate::dc_server::{DcServer, DcServerBuilder};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// The staged install and building C programs

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The staged install; panics when `make stage` has not been run.
pub fn stage() -> PathBuf {
    let stage = std::env::var_os("DISTCACHE_STAGE")
        .map(PathBuf::from)
        .unwrap_or_else(|| manifest_dir().join("target/stage"));
    let stage = if stage.is_relative() {
        manifest_dir().join(stage)
    } else {
        stage
    };
    if !stage.join("lib/libdistcache.so").exists() {
        panic!(
            "{} has no lib/libdistcache.so: run `make stage` (make test does) first",
            stage.display()
        );
    }
    stage
}

/// How a C program is linked.
#[derive(Clone, Copy, Debug)]
pub enum Link {
    /// `-ldistcache -lpthread`: what a DC_CTX user writes.
    Distcache,
    /// `-ldistcacheserver -ldistcache -lnal`, every name kept in NEEDED.
    AllThree,
    /// `libdistcache.a` and the given system libraries.
    Static(&'static [&'static str]),
}

/// Compiles `src` (relative to the crate root) into `dir/name` with
/// `-Wall -Wextra -Werror` against the staged headers; panics with the
/// compiler's output on failure.
pub fn compile(src: &str, dir: &Path, name: &str, link: Link) -> PathBuf {
    compile_with(src, dir, name, link, &[])
}

/// Compiles the harness program `tests/c_harness/<name>.c` into
/// `dir/<name>`, linked as a DC_CTX user ([`Link::Distcache`]).
pub fn compile_harness(name: &str, dir: &Path) -> PathBuf {
    compile(
        &format!("tests/c_harness/{name}.c"),
        dir,
        name,
        Link::Distcache,
    )
}

pub fn compile_with(src: &str, dir: &Path, name: &str, link: Link, extra: &[String]) -> PathBuf {
    let stage = stage();
    let lib = stage.join("lib");
    let out = dir.join(name);
    let mut cmd = Command::new("cc");
    cmd.args(["-Wall", "-Wextra", "-Werror"])
        .arg(format!("-I{}", stage.join("include").display()))
        .arg(manifest_dir().join(src))
        .arg("-o")
        .arg(&out);
    match link {
        Link::Distcache => {
            cmd.arg(format!("-L{}", lib.display()))
                .args(["-ldistcache", "-lpthread"])
                .arg(format!("-Wl,-rpath,{}", lib.display()));
        }
        Link::AllThree => {
            cmd.arg(format!("-L{}", lib.display()))
                .args([
                    "-Wl,--no-as-needed",
                    "-ldistcacheserver",
                    "-ldistcache",
                    "-lnal",
                    "-lpthread",
                ])
                .arg(format!("-Wl,-rpath,{}", lib.display()));
        }
        Link::Static(libs) => {
            cmd.arg(lib.join("libdistcache.a")).args(libs);
        }
    }
    cmd.args(extra);
    let run = Proc::spawn(&format!("cc {src}"), &mut cmd, false).finish(Duration::from_secs(120));
    run.assert_ok();
    out
}

// ---------------------------------------------------------------------------
// Child processes with bounded waits

/// A running child whose stdout and stderr are collected by reader threads.
pub struct Proc {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    started: Instant,
}

/// What a finished child left.
pub struct Finished {
    pub what: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Finished {
    pub fn assert_ok(&self) {
        if !self.status.success() {
            panic!(
                "{} failed: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.what, self.status, self.stdout, self.stderr
            );
        }
    }

    pub fn report(&self) {
        println!(
            "{}: ok in {:.2} s\n{}",
            self.what,
            self.elapsed.as_secs_f64(),
            self.stdout.trim_end()
        );
    }
}

impl Proc {
    /// Spawns `cmd` with piped stdout and stderr (and stdin if asked).
    pub fn spawn(what: &str, cmd: &mut Command, with_stdin: bool) -> Proc {
        cmd.stdin(if with_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: cannot spawn {cmd:?}: {e}"));
        let stdin = child.stdin.take();
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = mpsc::channel();
        let mut readers = Vec::new();
        let out = child.stdout.take().expect("piped stdout");
        let sink = Arc::clone(&stdout);
        readers.push(std::thread::spawn(move || {
            let mut r = BufReader::new(out);
            let mut line = String::new();
            while matches!(r.read_line(&mut line), Ok(n) if n > 0) {
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&line);
                let _ = tx.send(line.trim_end().to_string());
                line.clear();
            }
        }));
        let mut err = child.stderr.take().expect("piped stderr");
        let sink = Arc::clone(&stderr);
        readers.push(std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf);
            sink.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push_str(&String::from_utf8_lossy(&buf));
        }));
        Proc {
            what: what.to_string(),
            child,
            stdin,
            lines,
            stdout,
            stderr,
            readers,
            started: Instant::now(),
        }
    }

    fn output_so_far(&self) -> String {
        format!(
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout.lock().unwrap_or_else(|e| e.into_inner()),
            self.stderr.lock().unwrap_or_else(|e| e.into_inner())
        )
    }

    /// Waits (at most `limit`) for a stdout line equal to `want`.
    pub fn wait_line(&mut self, want: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == want => return,
                Ok(_) => {}
                Err(_) => {
                    self.kill();
                    // Let the readers collect what is left.
                    std::thread::sleep(Duration::from_millis(50));
                    panic!(
                        "{}: no line {want:?} within {limit:?}\n{}",
                        self.what,
                        self.output_so_far()
                    );
                }
            }
        }
    }

    /// Waits (at most `limit`) for a stdout line starting with `prefix`
    /// and returns it.
    #[allow(dead_code)] // not every test binary uses it
    pub fn wait_line_prefix(&mut self, prefix: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(_) => {
                    self.kill();
                    std::thread::sleep(Duration::from_millis(50));
                    panic!(
                        "{}: no line starting with {prefix:?} within {limit:?}\n{}",
                        self.what,
                        self.output_so_far()
                    );
                }
            }
        }
    }

    /// The child's process id.
    #[allow(dead_code)] // not every test binary uses it
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Whether the child is still running.
    #[allow(dead_code)] // not every test binary uses it
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Writes a line to the child's stdin.
    pub fn send_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("spawned with stdin");
        if let Err(e) = stdin.write_all(format!("{line}\n").as_bytes()) {
            panic!(
                "{}: write to stdin: {e}\n{}",
                self.what,
                self.output_so_far()
            );
        }
        let _ = stdin.flush();
    }

    pub fn kill(&mut self) {
        // Child::kill sends SIGKILL to this child's PID only.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits at most `limit` for the child to exit; kills it on overrun.
    pub fn finish(self, limit: Duration) -> Finished {
        finish_all(vec![self], limit)
            .pop()
            .expect("one process, one result")
    }

    /// [`Proc::finish`], then asserts success and prints what it wrote.
    pub fn finish_ok(self, limit: Duration) -> Finished {
        let done = self.finish(limit);
        done.assert_ok();
        done.report();
        done
    }

    /// The outcome of a child that has exited.
    fn collect(mut self, status: ExitStatus, elapsed: Duration) -> Finished {
        // The pipes close when the child exits, unless it left a
        // grandchild holding them: do not wait for the readers then.
        let reader_deadline = Instant::now() + Duration::from_secs(5);
        for r in std::mem::take(&mut self.readers) {
            while !r.is_finished() && Instant::now() < reader_deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
            if r.is_finished() {
                let _ = r.join();
            }
        }
        let stdout = self
            .stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let stderr = self
            .stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Finished {
            what: self.what.clone(),
            status,
            stdout,
            stderr,
            elapsed,
        }
    }
}

/// Waits for every child, each at most `limit` from its start, watching
/// them all at once so that each one's run time is measured. A child that
/// overruns is killed and the test fails (the others are killed when
/// dropped).
pub fn finish_all(mut procs: Vec<Proc>, limit: Duration) -> Vec<Finished> {
    let mut ended: Vec<Option<(ExitStatus, Duration)>> = vec![None; procs.len()];
    loop {
        let mut running = false;
        for (p, end) in procs.iter_mut().zip(ended.iter_mut()) {
            if end.is_some() {
                continue;
            }
            p.stdin = None;
            match p.child.try_wait() {
                Ok(Some(status)) => *end = Some((status, p.started.elapsed())),
                Ok(None) if p.started.elapsed() < limit => running = true,
                Ok(None) => {
                    p.kill();
                    std::thread::sleep(Duration::from_millis(50));
                    panic!(
                        "{}: still running after {limit:?}, killed\n{}",
                        p.what,
                        p.output_so_far()
                    );
                }
                Err(e) => panic!("{}: wait: {e}", p.what),
            }
        }
        if !running {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    procs
        .into_iter()
        .zip(ended)
        .map(|(p, end)| {
            let (status, elapsed) = end.expect("every child has exited");
            p.collect(status, elapsed)
        })
        .collect()
}

/// [`finish_all`], then asserts that every child succeeded and prints what
/// each wrote.
pub fn finish_all_ok(procs: Vec<Proc>, limit: Duration) -> Vec<Finished> {
    let done = finish_all(procs, limit);
    for d in &done {
        d.assert_ok();
        d.report();
    }
    done
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// Runs `prog args...` to completion (at most `limit`), asserts success
/// and prints what it wrote.
pub fn run_ok(prog: &Path, args: &[&str], limit: Duration) -> Finished {
    let what = format!(
        "{} {}",
        prog.file_name().unwrap_or_default().to_string_lossy(),
        args.join(" ")
    );
    let mut cmd = Command::new(prog);
    cmd.args(args);
    Proc::spawn(&what, &mut cmd, false).finish_ok(limit)
}

// ---------------------------------------------------------------------------
// dc_server and other peers

/// The staged `dc_server`, to run with [`DcServer`]'s builder.
pub fn staged_dc_server() -> DcServerBuilder {
    DcServer::builder().bin(stage().join("bin/dc_server"))
}

/// A UNIX listener that accepts connections and never reads or answers.
pub struct Silent {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Silent {
    pub fn new(path: &Path) -> Silent {
        let listener = UnixListener::bind(path).expect("bind the silent listener");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((conn, _)) => held.push(conn),
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Silent {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Silent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------
// readelf

/// `readelf -d` of a file as (tag, value) pairs, e.g. ("SONAME",
/// "libdistcache.so.1"), ("NEEDED", "libc.so.6"), ("FILTER", ...).
pub fn dynamic_entries(file: &Path) -> Vec<(String, String)> {
    let done = Proc::spawn(
        &format!("readelf -d {}", file.display()),
        Command::new("readelf").arg("-d").arg(file),
        false,
    )
    .finish(Duration::from_secs(30));
    done.assert_ok();
    done.stdout
        .lines()
        .filter_map(|line| {
            let tag = line.split_once('(')?.1.split_once(')')?.0.trim();
            let value = line.split_once('[')?.1.rsplit_once(']')?.0;
            Some((tag.to_string(), value.to_string()))
        })
        .collect()
}

pub fn entries_of(entries: &[(String, String)], tag: &str) -> Vec<String> {
    entries
        .iter()
        .filter(|(t, _)| t == tag)
        .map(|(_, v)| v.clone())
        .collect()
}

/// A valgrind memcheck command for `prog` (arguments still to add): exit
/// status 99 on any error, a definite or an indirect leak included. Each
/// process (a forked child too) writes its report to
/// `<logs>/<program>.<pid>.vg`; [`memcheck_totals`] adds them up.
pub fn memcheck(prog: &Path, logs: &Path) -> Command {
    let name = prog.file_name().unwrap_or_default().to_string_lossy();
    let mut cmd = Command::new("valgrind");
    cmd.args([
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite,indirect",
    ])
    .arg(format!("--log-file={}/{name}.%p.vg", logs.display()))
    .arg(prog);
    cmd
}

/// What the valgrind reports of a run add up to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Memcheck {
    /// Reports read (one per process).
    pub processes: u64,
    /// Errors counted in the ERROR SUMMARY lines (leaks of the kinds that
    /// count as errors included).
    pub errors: u64,
    /// Bytes definitely, indirectly and possibly lost, and still reachable.
    pub definitely_lost: u64,
    pub indirectly_lost: u64,
    pub possibly_lost: u64,
    pub still_reachable: u64,
}

impl std::fmt::Display for Memcheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} processes, {} errors; lost: {} B definitely, {} B indirectly, {} B possibly; \
             {} B still reachable",
            self.processes,
            self.errors,
            self.definitely_lost,
            self.indirectly_lost,
            self.possibly_lost,
            self.still_reachable
        )
    }
}

impl Memcheck {
    /// Panics unless there was at least one report and no error, definite
    /// or indirect leak.
    pub fn assert_clean(&self, what: &str) {
        assert!(self.processes > 0, "{what}: no valgrind report");
        assert!(
            self.errors == 0 && self.definitely_lost == 0 && self.indirectly_lost == 0,
            "{what}: {self}"
        );
    }
}

/// Adds up the reports in `logs` whose names start with `prefix`; panics
/// when a report lacks its ERROR SUMMARY (the process did not end).
pub fn memcheck_totals(logs: &Path, prefix: &str) -> Memcheck {
    let mut total = Memcheck::default();
    let entries = std::fs::read_dir(logs).expect("valgrind log directory");
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(prefix) || !name.ends_with(".vg") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).expect("valgrind report");
        let number = |line: &str, after: &str| -> u64 {
            line.split(after)
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(|n| n.replace(',', ""))
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{name}: cannot read {line:?}"))
        };
        let mut summary = false;
        for line in text.lines() {
            if line.contains("ERROR SUMMARY:") {
                total.errors += number(line, "ERROR SUMMARY:");
                summary = true;
            } else if line.contains("definitely lost:") {
                total.definitely_lost += number(line, "definitely lost:");
            } else if line.contains("indirectly lost:") {
                total.indirectly_lost += number(line, "indirectly lost:");
            } else if line.contains("possibly lost:") {
                total.possibly_lost += number(line, "possibly lost:");
            } else if line.contains("still reachable:") {
                total.still_reachable += number(line, "still reachable:");
            }
        }
        assert!(summary, "{name} has no ERROR SUMMARY:\n{text}");
        total.processes += 1;
    }
    total
}
