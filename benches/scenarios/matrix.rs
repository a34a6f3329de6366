//! The conductor: every scenario, each figure the median of several runs,
//! each next to its floor measured in the same run (runs of the two
//! alternate, so that drift of a shared machine hits both alike).

use crate::procs::{self, free_port, me, Cpu, KeyValues, Proc};
use crate::report::{Figure, Report, Row, Target};
use crate::wire;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `make bench` was asked for.
pub struct Config {
    pub runs: usize,
    pub secs: f64,
    pub only: Option<Vec<u8>>,
    pub big: u64,
    pub original: Option<PathBuf>,
    pub dir: tempfile::TempDir,
}

impl Config {
    fn from_env() -> Result<Config, String> {
        let env_num = |name: &str, default: f64| -> Result<f64, String> {
            match std::env::var(name) {
                Ok(v) => v
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|x| *x > 0.0)
                    .ok_or_else(|| format!("{name}={v} is not a positive number")),
                Err(_) => Ok(default),
            }
        };
        let only = match std::env::var("BENCH_ONLY") {
            Ok(v) if !v.trim().is_empty() => Some(
                v.split(',')
                    .map(|s| s.trim().parse::<u8>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| format!("BENCH_ONLY={v}: expected numbers like 1,4"))?,
            ),
            _ => None,
        };
        let original = std::env::var_os("DISTCACHE_ORIGINAL")
            .map(|p| Path::new(&p).join("bin/dc_server"))
            .filter(|p| p.exists());
        Ok(Config {
            runs: env_num("BENCH_RUNS", 5.0)? as usize,
            secs: env_num("BENCH_SECS", 1.0)?,
            only,
            big: env_num("BENCH_BIG", 1_000_000.0)? as u64,
            original,
            dir: tempfile::tempdir().map_err(|e| e.to_string())?,
        })
    }

    fn wants(&self, scenario: u8) -> bool {
        self.only.as_ref().is_none_or(|o| o.contains(&scenario))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn limit(&self) -> Duration {
        Duration::from_secs_f64(self.secs + 60.0)
    }
}

const DC_SERVER: &str = env!("CARGO_BIN_EXE_dc_server");
const DC_CLIENT: &str = env!("CARGO_BIN_EXE_dc_client");
/// The server always runs on CPU 0; the client on CPU 0 too, or on CPU 1.
const SERVER_CPU: Cpu = Cpu::Pinned(0);
const PINNINGS: [(&str, Cpu); 2] = [
    ("same CPU", Cpu::Pinned(0)),
    ("different CPUs", Cpu::Pinned(1)),
];
/// Sessions of the small cache and of the mixed load.
const SMALL: u64 = 512;
const MIXED_KEYS: u64 = 100_000;
const CLIENT_COUNTS: [usize; 3] = [4, 64, 256];
/// How the clients of scenario 4 are run: each a thread calling the
/// library (as threads of a web server would), or each a connection of one
/// event loop (as clients on other machines would load the server).
const LOAD_DRIVERS: [(&str, &str); 2] = [
    ("mixed", "threads of the library"),
    ("mixed-events", "connections of one event loop"),
];

fn s(v: impl ToString) -> String {
    v.to_string()
}

/// A cache server (ours or the original) with `sessions` of capacity,
/// pinned as asked, listening on a UNIX socket (and TCP `port` if given),
/// holding sessions 0..`preload` of the preloaded family.
struct Cache {
    proc: Proc,
    unix: PathBuf,
}

impl Cache {
    fn start(
        cfg: &Config,
        name: &str,
        program: &Path,
        cpu: Cpu,
        sessions: u64,
        port: Option<u16>,
        preload: u64,
    ) -> Result<Cache, String> {
        Cache::start_with(cfg, name, program, cpu, sessions, port, preload, &[])
    }

    #[allow(clippy::too_many_arguments)]
    fn start_with(
        cfg: &Config,
        name: &str,
        program: &Path,
        cpu: Cpu,
        sessions: u64,
        port: Option<u16>,
        preload: u64,
        extra: &[String],
    ) -> Result<Cache, String> {
        let unix = cfg.path(&format!("{name}.sock"));
        let mut args = vec![s("-listen"), format!("UNIX:{}", unix.display())];
        args.extend_from_slice(extra);
        if let Some(p) = port {
            args.extend([s("-listen"), format!("IP:127.0.0.1:{p}")]);
        }
        args.extend([s("-sessions"), s(sessions)]);
        let mut proc = Proc::spawn(name, cpu, program, &args)?;
        proc.wait_unix(&unix)?;
        if let Some(p) = port {
            proc.wait_tcp(p)?;
        }
        if preload > 0 {
            let added = crate::load::preload(&unix.to_string_lossy(), preload)?;
            if added != preload {
                return Err(format!("{name}: preloaded {added} of {preload} sessions"));
            }
        }
        Ok(Cache { proc, unix })
    }

    fn addr(&self) -> String {
        format!("UNIX:{}", self.unix.display())
    }
}

/// A floor server answering `req`-byte requests with `reply` bytes.
struct Floor {
    _proc: Proc,
    endpoint: String,
}

impl Floor {
    fn start(
        cfg: &Config,
        name: &str,
        tcp: bool,
        sizes: (usize, usize),
        mode: &str,
    ) -> Result<Floor, String> {
        let mut args = vec![
            format!("req={}", sizes.0),
            format!("reply={}", sizes.1),
            format!("mode={mode}"),
        ];
        let unix = cfg.path(&format!("{name}.sock"));
        if tcp {
            args.push(s("port=0"));
        } else {
            args.push(format!("unix={}", unix.display()));
        }
        let mut full = vec![s("floor-server")];
        full.extend(args);
        let mut proc = Proc::spawn(name, SERVER_CPU, &me(), &full)?;
        let line = KeyValues::parse_line(&proc.first_line()?)?;
        let endpoint = if tcp {
            let port: u16 = line.num("port")?;
            proc.wait_tcp(port)?;
            format!("port={port}")
        } else {
            proc.wait_unix(&unix)?;
            format!("unix={}", unix.display())
        };
        Ok(Floor {
            _proc: proc,
            endpoint,
        })
    }

    fn measure(
        &self,
        cfg: &Config,
        cpu: Cpu,
        sizes: (usize, usize),
        connect: bool,
    ) -> Result<f64, String> {
        let args = vec![
            s("floor-client"),
            self.endpoint.clone(),
            format!("req={}", sizes.0),
            format!("reply={}", sizes.1),
            format!("secs={}", cfg.secs),
            format!("connect={}", u8::from(connect)),
        ];
        rate(&procs::run(cpu, &me(), &args, cfg.limit())?)
    }
}

fn rate(kv: &KeyValues) -> Result<f64, String> {
    Ok(kv.num::<f64>("ops")? / kv.num::<f64>("secs")?)
}

/// One run of our client library against `addr`.
fn ours(
    cfg: &Config,
    cpu: Cpu,
    addr: &str,
    op: &str,
    persistent: bool,
    extra: &[String],
) -> Result<f64, String> {
    let mut args = vec![
        s("client"),
        format!("addr={addr}"),
        format!("op={op}"),
        format!("secs={}", cfg.secs),
        format!("persistent={}", u8::from(persistent)),
    ];
    args.extend_from_slice(extra);
    rate(&procs::run(cpu, &me(), &args, cfg.limit())?)
}

/// The runs of GET hits on random preloaded sessions of `addr` (`keys=K`),
/// each run with a seed of its own.
fn gets<'a>(
    cfg: &'a Config,
    cpu: Cpu,
    addr: &'a str,
    keys: &'a str,
    persistent: bool,
) -> impl FnMut(usize) -> Result<f64, String> + 'a {
    move |r| {
        ours(
            cfg,
            cpu,
            addr,
            "get",
            persistent,
            &[keys.to_string(), format!("seed={}", r + 1)],
        )
    }
}

/// GET hits on `addr` (through a persistent connection, or a connection
/// each when `per_op`), alternating with the floor's runs, once per
/// pinning; `row` makes the table line from the pinning's label and the
/// figures (ours, floor).
fn get_rows(
    cfg: &Config,
    report: &mut Report,
    floor: &Floor,
    per_op: bool,
    addr: &str,
    keys: &str,
    row: impl Fn(&str, Figure, Figure) -> Row,
) -> Result<(), String> {
    let get = wire::get_sizes();
    for (label, cpu) in PINNINGS {
        let (f, us) = alternate(
            cfg,
            |_| floor.measure(cfg, cpu, get, per_op),
            gets(cfg, cpu, addr, keys, !per_op),
        )?;
        report.push(row(label, us, f));
    }
    Ok(())
}

/// Alternates `a` and `b` for the configured number of runs; the figures
/// of each, in run order.
fn alternate(
    cfg: &Config,
    mut a: impl FnMut(usize) -> Result<f64, String>,
    mut b: impl FnMut(usize) -> Result<f64, String>,
) -> Result<(Figure, Figure), String> {
    let (mut fa, mut fb) = (Vec::new(), Vec::new());
    for r in 0..cfg.runs {
        fa.push(a(r)?);
        fb.push(b(r)?);
    }
    Ok((Figure::new(fa), Figure::new(fb)))
}

pub fn run() -> Result<(), String> {
    let cfg = Config::from_env()?;
    let mut report = Report::new(&cfg);
    eprintln!(
        "scenarios: {} runs of {} s per figure; large cache {} sessions{}",
        cfg.runs,
        cfg.secs,
        cfg.big,
        if cfg.original.is_some() {
            "; with the original dc_server"
        } else {
            ""
        }
    );
    if cfg.wants(1) || cfg.wants(6) {
        round_trips(&cfg, &mut report)?;
    }
    if cfg.wants(2) || cfg.wants(5) {
        per_operation(&cfg, &mut report)?;
    }
    if cfg.wants(3) {
        tcp(&cfg, &mut report)?;
    }
    if cfg.wants(4) {
        concurrency(&cfg, &mut report)?;
    }
    if cfg.wants(7) {
        durable(&cfg, &mut report)?;
    }
    if cfg.wants(8) {
        crate::peers::run(&cfg, &mut report)?;
    }
    if cfg.wants(9) {
        crate::silent::run(&cfg, &mut report)?;
    }
    if cfg.wants(10) {
        crate::tls::run(&cfg, &mut report)?;
    }
    if cfg.wants(11) {
        crate::gateway::run(&cfg, &mut report)?;
    }
    report.finish()
}

/// Scenarios 1 and 6: persistent round trips on a UNIX socket, GET hits
/// then ADDs, with a small and a large cache; the large cache's memory.
fn round_trips(cfg: &Config, report: &mut Report) -> Result<(), String> {
    let get = wire::get_sizes();
    let add = wire::add_sizes();
    let floor_get = Floor::start(cfg, "floor-get", false, get, "persistent")?;
    let floor_add = Floor::start(cfg, "floor-add", false, add, "persistent")?;
    let ours_bin = PathBuf::from(DC_SERVER);
    let mut tag = 10u8;
    for sessions in [SMALL, cfg.big] {
        if !cfg.wants(1) && sessions == SMALL {
            continue;
        }
        eprintln!("scenario 1: preloading {sessions} sessions");
        let cache = Cache::start(
            cfg,
            &format!("ours-{sessions}"),
            &ours_bin,
            SERVER_CPU,
            sessions,
            None,
            sessions,
        )?;
        if sessions == cfg.big && cfg.wants(6) {
            let rss = cache.proc.rss_bytes()?;
            report.memory(sessions, rss);
        }
        if !cfg.wants(1) {
            continue;
        }
        let keys = format!("keys={sessions}");
        get_rows(
            cfg,
            report,
            &floor_get,
            false,
            &cache.addr(),
            &keys,
            |l, us, f| {
                Row::new(
                    1,
                    format!("GET hit, {sessions} sessions, {l}"),
                    us,
                    Some(f),
                    Some(Target::AtLeast(0.8)),
                )
            },
        )?;
        for (label, cpu) in PINNINGS {
            let (floor, us) = alternate(
                cfg,
                |_| floor_add.measure(cfg, cpu, add, false),
                |_| {
                    tag += 1;
                    ours(
                        cfg,
                        cpu,
                        &cache.addr(),
                        "add",
                        true,
                        &[format!("tag={tag}")],
                    )
                },
            )?;
            report.push(Row::new(
                1,
                format!("ADD, {sessions} sessions (full), {label}"),
                us,
                Some(floor),
                Some(Target::AtLeast(0.8)),
            ));
        }
    }
    if let (Some(orig), true) = (&cfg.original, cfg.wants(1)) {
        // The original holds at most 60000 sessions.
        for sessions in [SMALL, 60_000] {
            eprintln!("scenario 1: the original, {sessions} sessions");
            let cache = Cache::start(
                cfg,
                &format!("orig-{sessions}"),
                orig,
                SERVER_CPU,
                sessions,
                None,
                sessions,
            )?;
            let keys = format!("keys={sessions}");
            get_rows(
                cfg,
                report,
                &floor_get,
                false,
                &cache.addr(),
                &keys,
                |l, us, f| {
                    Row::original(1, format!("GET hit, {sessions} sessions, {l}"), us, Some(f))
                },
            )?;
        }
    }
    Ok(())
}

/// Scenarios 2 and 5: a connection per operation (connect, one GET,
/// close), directly and through dc_client.
fn per_operation(cfg: &Config, report: &mut Report) -> Result<(), String> {
    let get = wire::get_sizes();
    let floor = Floor::start(cfg, "floor-connect", false, get, "iterative")?;
    let cache = Cache::start(
        cfg,
        "ours-conn",
        Path::new(DC_SERVER),
        SERVER_CPU,
        SMALL,
        None,
        SMALL,
    )?;
    let keys = format!("keys={SMALL}");
    if cfg.wants(2) {
        get_rows(
            cfg,
            report,
            &floor,
            true,
            &cache.addr(),
            &keys,
            |l, us, f| {
                Row::new(
                    2,
                    format!("connect + GET + close, {l}"),
                    us,
                    Some(f),
                    Some(Target::AtLeast(0.75)),
                )
            },
        )?;
        if let Some(orig) = &cfg.original {
            let theirs = Cache::start(cfg, "orig-conn", orig, SERVER_CPU, SMALL, None, SMALL)?;
            get_rows(
                cfg,
                report,
                &floor,
                true,
                &theirs.addr(),
                &keys,
                |l, us, f| Row::original(2, format!("connect + GET + close, {l}"), us, Some(f)),
            )?;
        }
    }
    if cfg.wants(5) {
        // Three processes on two CPUs: nothing pinned.
        let proxy_sock = cfg.path("proxy.sock");
        let args = vec![
            s("-listen"),
            format!("UNIX:{}", proxy_sock.display()),
            s("-server"),
            cache.addr(),
        ];
        let mut proxy = Proc::spawn("dc_client", Cpu::Any, Path::new(DC_CLIENT), &args)?;
        proxy.wait_unix(&proxy_sock)?;
        let proxy_addr = format!("UNIX:{}", proxy_sock.display());
        let (direct, via) = alternate(
            cfg,
            gets(cfg, Cpu::Any, &cache.addr(), &keys, false),
            gets(cfg, Cpu::Any, &proxy_addr, &keys, false),
        )?;
        let mut row = Row::new(
            5,
            "connect + GET + close through dc_client, unpinned".into(),
            via,
            None,
            None,
        );
        row.note = format!("direct to dc_server in the same run: {}", direct.show());
        report.push(row);
    }
    Ok(())
}

/// Scenario 3: persistent GET hits over TCP loopback.
fn tcp(cfg: &Config, report: &mut Report) -> Result<(), String> {
    let get = wire::get_sizes();
    let floor = Floor::start(cfg, "floor-tcp", true, get, "persistent")?;
    let port = free_port()?;
    let _cache = Cache::start(
        cfg,
        "ours-tcp",
        Path::new(DC_SERVER),
        SERVER_CPU,
        SMALL,
        Some(port),
        SMALL,
    )?;
    let addr = format!("IP:127.0.0.1:{port}");
    let keys = format!("keys={SMALL}");
    get_rows(cfg, report, &floor, false, &addr, &keys, |l, us, f| {
        Row::new(
            3,
            format!("TCP GET hit, {SMALL} sessions, {l}"),
            us,
            Some(f),
            Some(Target::AtLeast(0.8)),
        )
    })?;
    Ok(())
}

/// Scenario 4: many clients at once, a mixed load, nothing pinned.
fn concurrency(cfg: &Config, report: &mut Report) -> Result<(), String> {
    let mut servers = vec![("ours", PathBuf::from(DC_SERVER), MIXED_KEYS)];
    if let Some(orig) = &cfg.original {
        // The original holds at most 60000 sessions.
        servers.push(("original", orig.clone(), 60_000));
    }
    for (who, program, keys) in servers {
        eprintln!("scenario 4: {who}, preloading {keys} sessions");
        let cache = Cache::start(
            cfg,
            &format!("{who}-mixed"),
            &program,
            Cpu::Any,
            keys,
            None,
            keys,
        )?;
        for clients in CLIENT_COUNTS {
            for (driver, how) in LOAD_DRIVERS {
                let mut figures: Vec<KeyValues> = Vec::new();
                for _ in 0..cfg.runs {
                    let args = vec![
                        s(driver),
                        format!("addr={}", cache.addr()),
                        format!("threads={}", if driver == "mixed" { clients } else { 1 }),
                        format!("conns={clients}"),
                        format!("secs={}", cfg.secs),
                        format!("keys={keys}"),
                    ];
                    figures.push(procs::run(Cpu::Any, &me(), &args, cfg.limit())?);
                }
                let pick = |k: &str| -> Result<Figure, String> {
                    figures
                        .iter()
                        .map(|f| f.num::<f64>(k))
                        .collect::<Result<Vec<_>, _>>()
                        .map(Figure::new)
                };
                let ops = Figure::new(figures.iter().map(rate).collect::<Result<Vec<_>, _>>()?);
                let (p50, p99, p999) = (pick("p50_us")?, pick("p99_us")?, pick("p999_us")?);
                let case =
                    format!("{clients} clients ({how}), 80/15/5 GET/ADD/REMOVE on {keys} sessions");
                let mut row = if who == "ours" {
                    let target = (clients == 64).then_some(Target::Concurrency);
                    Row::new(4, case, ops, None, target)
                } else {
                    Row::original(4, case, ops, None)
                };
                row.latency = Some((p50.median(), p99.median(), p999.median()));
                report.push(row);
            }
        }
        drop(cache);
    }
    Ok(())
}

/// Scenario 7: what keeping the sessions on disk (`-store`) costs: ADDs
/// from one client and the mixed load from 4, in memory and with each
/// `-sync`, alternating in every run; nothing pinned (the store's writer is
/// a thread of its own).
fn durable(cfg: &Config, report: &mut Report) -> Result<(), String> {
    let modes: [(&str, Option<&str>); 3] = [
        ("in memory", None),
        ("-store, -sync interval:1000", Some("interval:1000")),
        ("-store, -sync always", Some("always")),
    ];
    let mut caches = Vec::new();
    for (i, (_, sync)) in modes.iter().enumerate() {
        let extra = match sync {
            Some(sync) => {
                let dir = cfg.path(&format!("store-{i}"));
                vec![s("-store"), dir.display().to_string(), s("-sync"), s(sync)]
            }
            None => Vec::new(),
        };
        caches.push(Cache::start_with(
            cfg,
            &format!("ours-store-{i}"),
            Path::new(DC_SERVER),
            Cpu::Any,
            MIXED_KEYS,
            None,
            MIXED_KEYS,
            &extra,
        )?);
    }
    let mut adds = vec![Vec::new(); modes.len()];
    let mut mixed = vec![Vec::new(); modes.len()];
    let mut tag = 100u8;
    for _ in 0..cfg.runs {
        for (i, cache) in caches.iter().enumerate() {
            tag = tag.wrapping_add(1).max(100);
            adds[i].push(ours(
                cfg,
                Cpu::Any,
                &cache.addr(),
                "add",
                true,
                &[format!("tag={tag}")],
            )?);
            let args = vec![
                s("mixed"),
                format!("addr={}", cache.addr()),
                s("threads=4"),
                format!("secs={}", cfg.secs),
                format!("keys={MIXED_KEYS}"),
            ];
            mixed[i].push(rate(&procs::run(Cpu::Any, &me(), &args, cfg.limit())?)?);
        }
    }
    let base_add = Figure::new(adds[0].clone());
    let base_mixed = Figure::new(mixed[0].clone());
    for (i, (label, _)) in modes.iter().enumerate() {
        let add = Figure::new(adds[i].clone());
        let mix = Figure::new(mixed[i].clone());
        let mut row = Row::new(
            7,
            format!("ADD, one client, {label}"),
            add.clone(),
            None,
            None,
        );
        row.note = format!("{:.2} × in memory", add.median() / base_add.median());
        report.push(row);
        let mut row = Row::new(
            7,
            format!("4 clients, 80/15/5 mix, {label}"),
            mix.clone(),
            None,
            None,
        );
        row.note = format!("{:.2} × in memory", mix.median() / base_mixed.median());
        report.push(row);
    }
    Ok(())
}
