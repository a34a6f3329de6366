//! Scenario 8: dc_server next to memcached and redis-server. Each server
//! runs pinned to CPU 0 with 10,000 values of 1 KiB under 32-byte keys,
//! on a UNIX socket; one load generator (`peer-load`, in
//! [`crate::peerload`]) speaks each one's protocol, in the same shapes for
//! all three, the runs of the three alternating. Then the bench holds
//! 10,000 idle connections to each and reads the server's memory and
//! threads from /proc.

use crate::idle::{self, Idle};
use crate::matrix::Config;
use crate::peerproto::{self, Proto};
use crate::procs::{self, me, Cpu, KeyValues, Proc};
use crate::report::{Figure, Report};
use std::fmt::Write as _;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

const DC_SERVER: &str = env!("CARGO_BIN_EXE_dc_server");
const SERVER_CPU: Cpu = Cpu::Pinned(0);
/// Values stored in each server, all of them hit at random.
const KEYS: u64 = 10_000;
/// Idle connections of the memory figure.
const IDLE: usize = 10_000;
/// The connection limit each server is started with.
const MAX_CONNS: &str = "20000";
/// memcached's worker threads, given explicitly: its default.
const MEMCACHED_THREADS: &str = "4";
const INSTALL: &str = "apt-get install -y memcached redis-server";

/// A load shape: how many connections, and where the client runs.
struct Shape {
    label: &'static str,
    conns: usize,
    cpu: Cpu,
}

const SHAPES: [Shape; 5] = [
    Shape {
        label: "1, client on CPU 0 (the server's)",
        conns: 1,
        cpu: Cpu::Pinned(0),
    },
    Shape {
        label: "1, client on CPU 1",
        conns: 1,
        cpu: Cpu::Pinned(1),
    },
    Shape {
        label: "16, one event loop on CPU 1",
        conns: 16,
        cpu: Cpu::Pinned(1),
    },
    Shape {
        label: "64, one event loop on CPU 1",
        conns: 64,
        cpu: Cpu::Pinned(1),
    },
    Shape {
        label: "256, one event loop on CPU 1",
        conns: 256,
        cpu: Cpu::Pinned(1),
    },
];

/// A running server with its values stored.
struct Server {
    name: &'static str,
    version: String,
    proto: Proto,
    proc: Proc,
    sock: PathBuf,
}

/// The figures of one server in one shape, run after run.
#[derive(Default)]
struct Samples {
    ops: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    p999: Vec<f64>,
}

impl Samples {
    fn push(&mut self, kv: &KeyValues) -> Result<(), String> {
        self.ops
            .push(kv.num::<f64>("ops")? / kv.num::<f64>("secs")?);
        self.p50.push(kv.num("p50_us")?);
        self.p99.push(kv.num("p99_us")?);
        self.p999.push(kv.num("p999_us")?);
        Ok(())
    }

    fn ops(&self) -> Figure {
        Figure::new(self.ops.clone())
    }

    fn p99(&self) -> f64 {
        Figure::new(self.p99.clone()).median()
    }

    fn show(&self) -> String {
        let m = |v: &Vec<f64>| Figure::new(v.clone()).median();
        format!(
            "{}; {:.0} / {:.0} / {:.0}",
            self.ops().show(),
            m(&self.p50),
            self.p99(),
            m(&self.p999)
        )
    }
}

/// `name` on the PATH, if it is there and executable.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

pub fn run(cfg: &Config, report: &mut Report) -> Result<(), String> {
    let memcached = find_program("memcached");
    let redis = find_program("redis-server");
    let (Some(memcached), Some(redis)) = (&memcached, &redis) else {
        let missing: Vec<&str> = [("memcached", &memcached), ("redis-server", &redis)]
            .iter()
            .filter(|(_, p)| p.is_none())
            .map(|(n, _)| *n)
            .collect();
        let missing = missing.join(" and ");
        eprintln!("scenario 8 skipped: {missing} not installed; this installs them:");
        eprintln!("{INSTALL}");
        report.section(format!(
            "Scenario 8 (dc_server next to memcached and redis-server) skipped: \
             {missing} not installed (`{INSTALL}`)."
        ));
        return Ok(());
    };
    // The idle connections are the bench's own descriptors; the servers,
    // its children, inherit the raised limit.
    let fd_limit = distcache::internals::nal::raise_fd_limit()
        .map_err(|e| format!("raising RLIMIT_NOFILE: {e}"))?;
    let servers = [
        start_ours(cfg)?,
        start_memcached(cfg, memcached)?,
        start_redis(cfg, redis)?,
    ];
    for s in &servers {
        peerproto::expect_miss(s.proto, &s.sock.to_string_lossy(), KEYS)
            .map_err(|e| format!("{}: a GET of a value never stored: {e}", s.name))?;
    }
    let mut samples: Vec<Vec<Samples>> = SHAPES
        .iter()
        .map(|_| servers.iter().map(|_| Samples::default()).collect())
        .collect();
    let limit = Duration::from_secs_f64(cfg.secs + 60.0);
    for r in 0..cfg.runs {
        for (shape, per_server) in SHAPES.iter().zip(samples.iter_mut()) {
            for (s, into) in servers.iter().zip(per_server.iter_mut()) {
                let args = vec![
                    "peer-load".to_string(),
                    format!("proto={}", s.proto.name()),
                    format!("unix={}", s.sock.display()),
                    format!("conns={}", shape.conns),
                    format!("secs={}", cfg.secs),
                    format!("keys={KEYS}"),
                    format!("seed={}", r + 1),
                ];
                let kv = procs::run(shape.cpu, &me(), &args, limit)
                    .map_err(|e| format!("scenario 8, {}, {}: {e}", s.name, shape.label))?;
                into.push(&kv)?;
                eprintln!(
                    "scenario 8: run {}/{}, {} connections, {}: {:.1}k ops/s, p99 {} µs",
                    r + 1,
                    cfg.runs,
                    shape.conns,
                    s.name,
                    into.ops.last().copied().unwrap_or(0.0) / 1000.0,
                    kv.str("p99_us")?
                );
            }
        }
    }
    let costs = if fd_limit >= IDLE as u64 + 256 {
        let mut costs = Vec::new();
        for s in &servers {
            eprintln!("scenario 8: {IDLE} idle connections to {}", s.name);
            costs.push(idle::cost(s.name, s.proc.pid(), &s.sock, IDLE)?);
        }
        Some(costs)
    } else {
        eprintln!(
            "scenario 8: the open-file limit ({fd_limit}) is too low for {IDLE} idle connections; \
             their cost is not measured"
        );
        None
    };
    report.section(section(cfg, &servers, &samples, costs.as_deref()));
    Ok(())
}

/// The last lines a server wrote, for an error about it.
fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" / ")
}

fn spawn(
    cfg: &Config,
    name: &'static str,
    program: &Path,
    args: &[String],
    sock: &Path,
) -> Result<Proc, String> {
    let log = cfg.dir.path().join(format!("{name}.log"));
    let mut proc = Proc::spawn_logged(name, SERVER_CPU, program, args, &log)?;
    proc.wait_unix(sock)
        .map_err(|e| format!("{e}; it wrote: {}", log_tail(&log)))?;
    Ok(proc)
}

fn start_ours(cfg: &Config) -> Result<Server, String> {
    let sock = cfg.dir.path().join("peers-ours.sock");
    // -sessions makes room for the values; the default holds 512.
    let args = [
        "-listen".to_string(),
        format!("UNIX:{}", sock.display()),
        "-sessions".into(),
        KEYS.to_string(),
        "-maxconns".into(),
        MAX_CONNS.into(),
    ];
    let proc = spawn(cfg, "dc_server", Path::new(DC_SERVER), &args, &sock)?;
    let added = crate::load::preload(&sock.to_string_lossy(), KEYS)?;
    if added != KEYS {
        return Err(format!("dc_server: preloaded {added} of {KEYS} sessions"));
    }
    Ok(Server {
        name: "dc_server",
        version: format!("{} (this build)", env!("CARGO_PKG_VERSION")),
        proto: Proto::Distcache,
        proc,
        sock,
    })
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn start_memcached(cfg: &Config, program: &Path) -> Result<Server, String> {
    let sock = cfg.dir.path().join("peers-memcached.sock");
    let mut args: Vec<String> = vec![
        "-c".into(),
        MAX_CONNS.into(),
        "-s".into(),
        sock.display().to_string(),
        "-m".into(),
        "1024".into(),
        "-t".into(),
        MEMCACHED_THREADS.into(),
    ];
    // memcached refuses to run as root unless told which user to be.
    if running_as_root() {
        args.extend(["-u".into(), "root".into()]);
    }
    start_peer(cfg, "memcached", Proto::Memcache, program, &args, sock)
}

fn start_redis(cfg: &Config, program: &Path) -> Result<Server, String> {
    let sock = cfg.dir.path().join("peers-redis.sock");
    let args: Vec<String> = vec![
        "--port".into(),
        "0".into(),
        "--unixsocket".into(),
        sock.display().to_string(),
        "--save".into(),
        String::new(),
        "--appendonly".into(),
        "no".into(),
        "--maxclients".into(),
        MAX_CONNS.into(),
    ];
    start_peer(cfg, "redis-server", Proto::Resp, program, &args, sock)
}

fn start_peer(
    cfg: &Config,
    name: &'static str,
    proto: Proto,
    program: &Path,
    args: &[String],
    sock: PathBuf,
) -> Result<Server, String> {
    let proc = spawn(cfg, name, program, args, &sock)?;
    let path = sock.to_string_lossy().into_owned();
    let version = peerproto::version(proto, &path).map_err(|e| format!("{name}: {e}"))?;
    peerproto::preload_text(proto, &path, KEYS).map_err(|e| format!("{name}: {e}"))?;
    Ok(Server {
        name,
        version,
        proto,
        proc,
        sock,
    })
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

/// The report's part for scenario 8.
fn section(
    cfg: &Config,
    servers: &[Server; 3],
    samples: &[Vec<Samples>],
    costs: Option<&[Idle]>,
) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## Scenario 8: dc_server next to memcached and redis-server\n\n\
         GET hits of {KEYS} values of {} bytes under {}-byte keys, at random, on UNIX sockets; \
         each server pinned to CPU 0, one request in flight on each connection, every reply \
         checked. One load generator speaks each server's protocol (distcache's wire, memcached's \
         text `get`, RESP `GET`); one connection is a blocking client, more are the connections \
         of one event loop. memcached {} runs with `-t {MEMCACHED_THREADS}` (its default: \
         {MEMCACHED_THREADS} worker threads), redis-server {} with `--port 0 --save '' \
         --appendonly no`, dc_server {} with `-maxconns {MAX_CONNS} -sessions {KEYS}`. Median of \
         {} runs of {} s, the runs of the three alternating: operations per second (the spread \
         of the runs), then p50 / p99 / p999 latency in µs.\n",
        crate::wire::DATA_LEN,
        crate::wire::ID_LEN,
        servers[1].version,
        servers[2].version,
        servers[0].version,
        cfg.runs,
        cfg.secs,
    );
    let _ = writeln!(
        md,
        "| connections | dc_server (ours) | memcached | redis-server |\n|---|---|---|---|"
    );
    for (shape, per_server) in SHAPES.iter().zip(samples) {
        let cells: Vec<String> = per_server.iter().map(Samples::show).collect();
        let _ = writeln!(md, "| {} | {} |", shape.label, cells.join(" | "));
    }
    let _ = writeln!(
        md,
        "\nOurs / the better peer (target: at least 1.2 × its operations per second, with a p99 \
         no higher than its p99):\n"
    );
    for (shape, per_server) in SHAPES.iter().zip(samples) {
        if shape.conns < 16 {
            continue;
        }
        let ours = &per_server[0];
        let (best, peer) = (1..per_server.len())
            .map(|k| (k, &per_server[k]))
            .max_by(|a, b| a.1.ops().median().total_cmp(&b.1.ops().median()))
            .unwrap_or((1, &per_server[1]));
        let ratio = ours.ops().median() / peer.ops().median();
        let _ = writeln!(
            md,
            "- {} connections: {ratio:.2} × {}'s operations per second; p99 {:.0} µs against \
             {:.0} µs: {}",
            shape.conns,
            servers[best].name,
            ours.p99(),
            peer.p99(),
            verdict(ratio >= 1.2 && ours.p99() <= peer.p99())
        );
    }
    match costs {
        Some(costs) => {
            let _ = writeln!(
                md,
                "\n{IDLE} idle connections held open by the bench: the growth of the server's \
                 resident memory (VmRSS) divided by {IDLE}, and its threads before and while it \
                 holds them:\n\n\
                 | | dc_server (ours) | memcached | redis-server |\n|---|---|---|---|"
            );
            let mem: Vec<String> = costs
                .iter()
                .map(|i| format!("{:.0} bytes", i.bytes_per_conn))
                .collect();
            let threads: Vec<String> = costs
                .iter()
                .map(|i| format!("{} → {}", i.threads_before, i.threads))
                .collect();
            let _ = writeln!(md, "| memory per connection | {} |", mem.join(" | "));
            let _ = writeln!(md, "| threads | {} |", threads.join(" | "));
            let ours = &costs[0];
            let _ = writeln!(
                md,
                "\nTarget for ours, at most 2 kB a connection and threads not growing with \
                 connections: {}",
                verdict(ours.bytes_per_conn <= 2000.0 && ours.threads <= ours.threads_before)
            );
        }
        None => {
            let _ = writeln!(
                md,
                "\nThe cost of {IDLE} idle connections was not measured: the open-file limit is \
                 too low."
            );
        }
    }
    md
}
