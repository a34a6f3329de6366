//! Scenario 11: dc_server as a gateway to a Redis Cluster of 3 masters
//! (started here on loopback ports, in the run's temporary directory,
//! stopped by PID), next to the in-memory dc_server and to the same load
//! sent to the cluster directly; 1 and 64 clients of one load generator
//! ([`crate::gwload`]), the targets taking turns in an order that turns by
//! one each run.

use crate::gwload::{self, SlotMap};
use crate::matrix::Config;
use crate::peerproto::text_key;
use crate::procs::{self, free_port, me, Cpu, KeyValues, Proc};
use crate::report::{Figure, Report};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DC_SERVER: &str = env!("CARGO_BIN_EXE_dc_server");
/// The dc_servers (in memory and gateway) share CPU 0; the load generator
/// has CPU 1; the Redis nodes run wherever the scheduler puts them.
const SERVER_CPU: Cpu = Cpu::Pinned(0);
const CLIENT_CPU: Cpu = Cpu::Pinned(1);
const MASTERS: usize = 3;
/// Values stored, all of them hit at random.
const KEYS: u64 = 10_000;
/// Percent of the requests that store a new value.
const WRITES: u64 = 10;
/// The in-memory dc_server's capacity: room for the preloaded values and
/// the stores of a few seconds (were it full, the soonest-expiring go
/// first: stored values, never a preloaded one).
const MEMORY_SESSIONS: u64 = 100_000;
const CONNS: [usize; 2] = [1, 64];
const INSTALL: &str = "apt-get install -y redis-server";
/// How long the cluster may take to form.
const FORM_LIMIT: Duration = Duration::from_secs(30);

/// The three targets of each run, in the order of the table; a fourth,
/// another build's gateway, when `BENCH_GATEWAY_BASE` names its dc_server.
const TARGETS: [&str; 4] = [
    "dc_server in memory",
    "gateway",
    "Redis Cluster directly",
    "gateway, BENCH_GATEWAY_BASE build",
];

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Runs `program args` to its end within `limit`; its stdout.
fn run_bounded(program: &Path, args: &[String], limit: Duration) -> Result<String, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("can't start {}: {e}", program.display()))?;
    let began = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if began.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{} {args:?} ran over {limit:?}", program.display()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "{} {args:?}: {} {}",
            program.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(text)
}

/// A cluster of [`MASTERS`] masters without replicas.
struct Cluster {
    nodes: Vec<(Proc, u16)>,
    version: String,
}

impl Cluster {
    fn start(cfg: &Config, server: &Path, cli: &Path) -> Result<Cluster, String> {
        let mut nodes = Vec::new();
        for n in 0..MASTERS {
            let dir = cfg.dir.path().join(format!("redis-{n}"));
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            // The cluster bus listens on the port + 10000: both must be free.
            let port = (0..20)
                .filter_map(|_| free_port().ok())
                .find(|p| {
                    *p < 55535 && std::net::TcpListener::bind(("127.0.0.1", p + 10000)).is_ok()
                })
                .ok_or("no free pair of loopback ports for a cluster node")?;
            let args: Vec<String> = [
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--dir",
                &dir.display().to_string(),
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "5000",
                "--save",
                "",
                "--appendonly",
                "no",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let log = dir.join("redis.log");
            let mut proc =
                Proc::spawn_logged(&format!("redis node {n}"), Cpu::Any, server, &args, &log)?;
            proc.wait_tcp(port)?;
            nodes.push((proc, port));
        }
        let mut args: Vec<String> = vec!["--cluster".into(), "create".into()];
        args.extend(nodes.iter().map(|(_, p)| format!("127.0.0.1:{p}")));
        args.push("--cluster-yes".into());
        run_bounded(cli, &args, FORM_LIMIT)?;
        let cluster = Cluster {
            nodes,
            version: String::new(),
        };
        let began = Instant::now();
        while !cluster.healthy(cli)? {
            if began.elapsed() > FORM_LIMIT {
                return Err(format!("the cluster was not healthy within {FORM_LIMIT:?}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let info = cluster.cli(cli, 0, &["INFO", "server"])?;
        let version = info
            .lines()
            .find_map(|l| l.trim().strip_prefix("redis_version:"))
            .unwrap_or("(unknown version)")
            .to_string();
        Ok(Cluster { version, ..cluster })
    }

    fn cli(&self, cli: &Path, node: usize, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["-p".to_string(), self.nodes[node].1.to_string()];
        all.extend(args.iter().map(|s| s.to_string()));
        run_bounded(cli, &all, Duration::from_secs(10))
    }

    /// Every node serves every slot and knows every other.
    fn healthy(&self, cli: &Path) -> Result<bool, String> {
        for n in 0..self.nodes.len() {
            let info = self.cli(cli, n, &["CLUSTER", "INFO"])?;
            let known = format!("cluster_known_nodes:{MASTERS}");
            if !info.contains("cluster_state:ok") || !info.contains(&known) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn seeds(&self) -> String {
        let all: Vec<String> = self
            .nodes
            .iter()
            .map(|(_, p)| format!("127.0.0.1:{p}"))
            .collect();
        all.join(",")
    }

    fn seed(&self) -> String {
        format!("127.0.0.1:{}", self.nodes[0].1)
    }

    /// Stores the values of the direct runs under the keys the load
    /// generator asks for, through the redis crate's cluster client.
    fn preload(&self) -> Result<(), String> {
        let client = redis::cluster::ClusterClient::new(vec![format!("redis://{}/", self.seed())])
            .map_err(|e| e.to_string())?;
        let mut c = client.get_connection().map_err(|e| e.to_string())?;
        for i in 0..KEYS {
            let () = redis::cmd("SET")
                .arg(&text_key(i)[..])
                .arg(crate::wire::data(i))
                .query(&mut c)
                .map_err(|e| format!("preloading the cluster: {e}"))?;
        }
        Ok(())
    }

    /// Checks the load generator's slot hash against the cluster's own.
    fn check_slots(&self, cli: &Path) -> Result<(), String> {
        for i in [0, 1, 7, KEYS - 1] {
            let key = String::from_utf8_lossy(&text_key(i)).into_owned();
            let theirs = self.cli(cli, 0, &["CLUSTER", "KEYSLOT", &key])?;
            let ours = gwload::slot(&text_key(i));
            if theirs.trim() != ours.to_string() {
                return Err(format!(
                    "the slot of '{key}' is {} for the cluster, {ours} for the load generator",
                    theirs.trim()
                ));
            }
        }
        Ok(())
    }

    fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(|(p, _)| p.pid()).collect()
    }
}

/// CPU time (user + system) a process has used so far, in seconds.
fn cpu_secs(pid: u32) -> Result<f64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    // The fields after the command name, which ends with the last ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("a /proc stat without its command")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |k: usize| -> Result<f64, String> {
        fields
            .get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| "a /proc stat without its times".to_string())
    };
    // utime and stime are fields 14 and 15 of the whole line; clock
    // ticks are 100 a second on Linux.
    Ok((ticks(11)? + ticks(12)?) / 100.0)
}

fn cpu_of(pids: &[u32]) -> Result<f64, String> {
    pids.iter().map(|p| cpu_secs(*p)).sum()
}

/// A dc_server on a UNIX socket with the values stored through it.
fn start_dc(
    cfg: &Config,
    name: &str,
    program: &Path,
    extra: &[String],
    preload: bool,
) -> Result<(Proc, PathBuf), String> {
    let sock = cfg.dir.path().join(format!("{name}.sock"));
    let mut args = vec!["-listen".to_string(), format!("UNIX:{}", sock.display())];
    args.extend_from_slice(extra);
    let log = cfg.dir.path().join(format!("{name}.log"));
    let mut proc = Proc::spawn_logged(name, SERVER_CPU, program, &args, &log)?;
    proc.wait_unix(&sock).map_err(|e| {
        format!(
            "{e}; it wrote: {}",
            std::fs::read_to_string(&log).unwrap_or_default().trim()
        )
    })?;
    if preload {
        let added = crate::load::preload(&sock.to_string_lossy(), KEYS)?;
        if added != KEYS {
            return Err(format!("{name}: preloaded {added} of {KEYS} sessions"));
        }
    }
    Ok((proc, sock))
}

/// The figures of one target at one number of clients, run after run.
#[derive(Default)]
struct Samples {
    ops: Vec<f64>,
    p50: Vec<f64>,
    p99: Vec<f64>,
    /// CPU µs per request of the server side (for the gateway, its own;
    /// for the cluster, the nodes').
    cpu_us: Vec<f64>,
    /// CPU µs per request the nodes used in gateway runs.
    redis_us: Vec<f64>,
}

fn med(v: &[f64]) -> f64 {
    Figure::new(v.to_vec()).median()
}

impl Samples {
    fn push(&mut self, kv: &KeyValues) -> Result<u64, String> {
        let ops: u64 = kv.num("ops")?;
        self.ops.push(ops as f64 / kv.num::<f64>("secs")?);
        self.p50.push(kv.num("p50_us")?);
        self.p99.push(kv.num("p99_us")?);
        Ok(ops)
    }

    fn ops(&self) -> f64 {
        med(&self.ops)
    }
}

pub fn run(cfg: &Config, report: &mut Report) -> Result<(), String> {
    let (Some(server), Some(cli)) = (find_program("redis-server"), find_program("redis-cli"))
    else {
        eprintln!("scenario 11 skipped: redis-server is not installed; this installs it:");
        eprintln!("{INSTALL}");
        report.section(format!(
            "Scenario 11 (dc_server as a gateway to a Redis Cluster) skipped: redis-server not \
             installed (`{INSTALL}`)."
        ));
        return Ok(());
    };
    eprintln!("scenario 11: starting a cluster of {MASTERS} masters");
    let cluster = Cluster::start(cfg, &server, &cli)?;
    cluster.check_slots(&cli)?;
    cluster.preload()?;
    let map = SlotMap::fetch(&cluster.seed())?;
    if map.nodes.len() != MASTERS {
        return Err(format!("CLUSTER SLOTS names {} masters", map.nodes.len()));
    }
    let ours = Path::new(DC_SERVER);
    let (memory, memory_sock) = start_dc(
        cfg,
        "dc-memory",
        ours,
        &["-sessions".into(), MEMORY_SESSIONS.to_string()],
        true,
    )?;
    let store = ["-store".to_string(), format!("redis://{}", cluster.seeds())];
    let (gateway, gateway_sock) = start_dc(cfg, "dc-gateway", ours, &store, true)?;
    // The other gateway finds the values stored through the first.
    let base = match std::env::var_os("BENCH_GATEWAY_BASE") {
        Some(p) => Some(start_dc(
            cfg,
            "dc-gateway-base",
            Path::new(&p),
            &store,
            false,
        )?),
        None => None,
    };
    let targets = if base.is_some() { 4 } else { 3 };
    let redis_pids = cluster.pids();
    let mut samples: Vec<[Samples; 4]> = CONNS.iter().map(|_| Default::default()).collect();
    let limit = Duration::from_secs_f64(cfg.secs + 60.0);
    for r in 0..cfg.runs {
        for (conns, per_target) in CONNS.iter().zip(samples.iter_mut()) {
            // The order turns by one each run, so that no target always
            // runs in the same place (a place in the order shows in the
            // figures on a shared machine).
            for k in 0..targets {
                let t = (k + r) % targets;
                let into = &mut per_target[t];
                let mut args = vec![
                    "gw-load".to_string(),
                    format!("conns={conns}"),
                    format!("secs={}", cfg.secs),
                    format!("keys={KEYS}"),
                    format!("writes={WRITES}"),
                    format!("run={}", r + 1),
                ];
                match t {
                    0 => args.extend([
                        "target=distcache".into(),
                        format!("unix={}", memory_sock.display()),
                    ]),
                    1 => args.extend([
                        "target=distcache".into(),
                        format!("unix={}", gateway_sock.display()),
                    ]),
                    2 => args.extend(["target=cluster".into(), format!("seed={}", cluster.seed())]),
                    _ => {
                        let sock = base.as_ref().map(|(_, s)| s).ok_or("no base gateway")?;
                        args.extend([
                            "target=distcache".into(),
                            format!("unix={}", sock.display()),
                        ])
                    }
                }
                let server_pids: Vec<u32> = match (t, &base) {
                    (0, _) => vec![memory.pid()],
                    (1, _) => vec![gateway.pid()],
                    (3, Some((p, _))) => vec![p.pid()],
                    _ => redis_pids.clone(),
                };
                let (cpu0, redis0) = (cpu_of(&server_pids)?, cpu_of(&redis_pids)?);
                let kv = procs::run(CLIENT_CPU, &me(), &args, limit)
                    .map_err(|e| format!("scenario 11, {}, {conns}: {e}", TARGETS[t]))?;
                let (cpu1, redis1) = (cpu_of(&server_pids)?, cpu_of(&redis_pids)?);
                // The CPU of the whole run (warm-up included) over the
                // requests measured: an estimate, good for comparing.
                let ops = into.push(&kv)?.max(1) as f64;
                let per = ops * (1.0 + 0.2 / cfg.secs);
                into.cpu_us.push((cpu1 - cpu0) * 1e6 / per);
                into.redis_us.push((redis1 - redis0) * 1e6 / per);
                eprintln!(
                    "scenario 11: run {}/{}, {conns} clients, {}: {:.1}k ops/s, p50 {} µs",
                    r + 1,
                    cfg.runs,
                    TARGETS[t],
                    into.ops.last().copied().unwrap_or(0.0) / 1000.0,
                    kv.str("p50_us")?
                );
            }
        }
    }
    report.section(section(cfg, &cluster.version, &samples, targets));
    drop((memory, gateway, base, cluster));
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn section(cfg: &Config, version: &str, samples: &[[Samples; 4]], targets: usize) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "## Scenario 11: dc_server as a gateway to a Redis Cluster\n\n\
         GET hits of {KEYS} values of {} bytes under {}-byte ids, at random, and {WRITES}% of \
         the requests stores of new values of that size that live {} ms (distcache ADD; \
         `SET key value PX ttl` to the cluster); one load generator \
         (one event loop, one request in flight per client, every reply checked) on CPU 1. \
         Targets: dc_server in memory (`-sessions {MEMORY_SESSIONS}`) and dc_server as a gateway \
         (`-store redis://` the three masters), both on CPU 0 and reached on a UNIX socket; and \
         the Redis Cluster itself (redis-server {version}, {MASTERS} masters, no replicas, \
         loopback TCP, CPUs left to the scheduler), each client holding a connection to every \
         master and sending each GET to its slot's master. Median of {} runs of {} s, the targets \
         taking turns in an order that turns by one each run: operations per second, p50 / p99 latency in µs, and CPU µs per request of \
         the server side (the gateway's own, then the Redis nodes' in brackets).{}\n",
        crate::wire::DATA_LEN,
        crate::wire::ID_LEN,
        gwload::WRITE_TTL_MS,
        cfg.runs,
        cfg.secs,
        if targets > 3 {
            " The last column is the gateway of the dc_server that `BENCH_GATEWAY_BASE` names, \
             on the same cluster, for a comparison of two builds in one run."
        } else {
            ""
        },
    );
    let _ = writeln!(
        md,
        "| clients | {} |\n|---{}|",
        TARGETS[..targets].join(" | "),
        "|---".repeat(targets)
    );
    for (conns, per) in CONNS.iter().zip(samples) {
        let cell = |s: &Samples, t: usize| {
            let cpu = match t {
                1 | 3 => format!("{:.1} ({:.1})", med(&s.cpu_us), med(&s.redis_us)),
                _ => format!("{:.1}", med(&s.cpu_us)),
            };
            format!(
                "{} ops/s; {:.0} / {:.0} µs; {cpu} µs CPU",
                Figure::new(s.ops.clone()).show(),
                med(&s.p50),
                med(&s.p99)
            )
        };
        let cells: Vec<String> = per
            .iter()
            .enumerate()
            .take(targets)
            .map(|(t, s)| cell(s, t))
            .collect();
        let _ = writeln!(md, "| {conns} | {} |", cells.join(" | "));
    }
    let _ = writeln!(md);
    for (conns, per) in CONNS.iter().zip(samples) {
        let (memory, gateway, direct) = (&per[0], &per[1], &per[2]);
        if targets > 3 {
            let _ = writeln!(
                md,
                "- {conns} clients: the gateway of the other build gives {:.2} × the cluster's \
                 direct operations per second, p50 {:.0} µs",
                per[3].ops() / direct.ops(),
                med(&per[3].p50)
            );
        }
        let ratio = gateway.ops() / direct.ops();
        let _ = write!(
            md,
            "- {conns} clients: the gateway gives {ratio:.2} × the cluster's direct operations \
             per second and {:.2} × the in-memory dc_server's",
            gateway.ops() / memory.ops()
        );
        if *conns >= 64 {
            let _ = writeln!(md, "; target at least 0.6 ×: {}", verdict(ratio >= 0.6));
        } else {
            // One extra round trip: the one to a dc_server that answers
            // from memory, added to the direct one.
            let (g, d, m) = (med(&gateway.p50), med(&direct.p50), med(&memory.p50));
            let _ = writeln!(
                md,
                "; p50 {g:.0} µs against {d:.0} µs directly, {:.0} µs more, where one more \
                 round trip (the in-memory dc_server's p50) is {m:.0} µs; target at most one \
                 extra round trip: {}",
                g - d,
                verdict(g <= d + m)
            );
        }
    }
    md
}
