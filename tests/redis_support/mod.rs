//! Real `redis-server` processes for the Redis store's tests: single
//! servers and a 3-master/3-replica cluster on loopback ports the tests
//! choose, each in a temporary directory, stopped by PID, in plain text or
//! TLS only ([`NodeTls`]); and dc_server gateways in front of them.
#![allow(dead_code)]

use crate::common::{kill_pid, run_tool};
use crate::dc_server::DcServer;
use distcache::{Client, Flags};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

/// What installs the Redis tools these tests need.
pub const INSTALL: &str = "apt-get install -y redis-server redis-tools";

/// Fails the test, naming the package, unless `tool` runs.
pub fn require(tool: &str) {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "{tool} is missing: install it with `{INSTALL}`");
}

static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// A loopback port free now, with its cluster bus port (+10000) free too.
pub fn free_port() -> u16 {
    // Start from a spot that depends on the process, so that test binaries
    // run at once rarely try the same ports.
    let _ = NEXT_PORT.compare_exchange(
        0,
        20_000 + (std::process::id() % 2000) as u16 * 10,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    loop {
        let port = NEXT_PORT.fetch_add(1, Ordering::Relaxed);
        assert!(port < 55_000, "no free port pair found");
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
}

/// A node that speaks TLS only: its port is `--tls-port` (`--port 0`).
#[derive(Clone, Debug)]
pub struct NodeTls {
    /// The node's certificate and key (`--tls-cert-file`, `--tls-key-file`).
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA the node trusts for its clients' certificates
    /// (`--tls-ca-cert-file`); clients must present one (Redis's default).
    pub clients_ca: PathBuf,
    /// What redis-cli trusts for the node's certificate, and presents.
    pub cli_ca: PathBuf,
    pub cli_cert: PathBuf,
    pub cli_key: PathBuf,
}

impl NodeTls {
    fn server_args(&self, port: u16) -> Vec<String> {
        let p = |p: &PathBuf| p.display().to_string();
        vec![
            "--port".into(),
            "0".into(),
            "--tls-port".into(),
            port.to_string(),
            "--tls-cert-file".into(),
            p(&self.cert),
            "--tls-key-file".into(),
            p(&self.key),
            "--tls-ca-cert-file".into(),
            p(&self.clients_ca),
        ]
    }

    fn cli_args(&self) -> Vec<String> {
        let p = |p: &PathBuf| p.display().to_string();
        vec![
            "--tls".into(),
            "--cacert".into(),
            p(&self.cli_ca),
            "--cert".into(),
            p(&self.cli_cert),
            "--key".into(),
            p(&self.cli_key),
        ]
    }
}

/// One redis-server process.
pub struct RedisProc {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    args: Vec<String>,
    /// TLS only, when set.
    pub tls: Option<NodeTls>,
}

impl RedisProc {
    /// A server on a free loopback port, with `extra` options. A port
    /// taken meanwhile (by another program on the machine) is given up for
    /// the next free one, a few times.
    pub fn start(extra: &[&str]) -> RedisProc {
        Self::start_with(None, extra)
    }

    /// A server that speaks TLS only, as `tls` says, on a free loopback
    /// port, with `extra` options.
    pub fn start_tls(tls: &NodeTls, extra: &[&str]) -> RedisProc {
        Self::start_with(Some(tls), extra)
    }

    fn start_with(tls: Option<&NodeTls>, extra: &[&str]) -> RedisProc {
        let mut taken = Vec::new();
        for _ in 0..5 {
            let port = free_port();
            match Self::try_start(port, extra, tls.cloned()) {
                Ok(r) => return r,
                Err(log) if log.contains("Address already in use") => taken.push(port),
                Err(log) => panic!("{log}"),
            }
        }
        panic!("redis-server found ports {taken:?} taken when it started");
    }

    /// A server on `port`, with `extra` options.
    pub fn start_on(port: u16, extra: &[&str]) -> RedisProc {
        Self::try_start(port, extra, None).unwrap_or_else(|log| panic!("{log}"))
    }

    /// A server on `port`, or what it said when it did not start.
    fn try_start(port: u16, extra: &[&str], tls: Option<NodeTls>) -> Result<RedisProc, String> {
        require("redis-server");
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args: Vec<String> = match &tls {
            Some(tls) => tls.server_args(port),
            None => vec!["--port".into(), port.to_string()],
        };
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = spawn_redis(&dir, &args);
        let mut r = RedisProc {
            child,
            port,
            dir,
            args,
            tls,
        };
        r.wait_ready()?;
        Ok(r)
    }

    /// `127.0.0.1:PORT`.
    pub fn node(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL, by PID).
    pub fn kill(&mut self) {
        kill_pid(&mut self.child);
    }

    /// Starts it again on the same port and directory.
    pub fn restart(&mut self) {
        kill_pid(&mut self.child);
        self.child = spawn_redis(&self.dir, &self.args);
        if let Err(log) = self.wait_ready() {
            panic!("{log}");
        }
    }

    /// Waits (at most 10 s) until the server answers; what it said if it
    /// exited or did not answer.
    fn wait_ready(&mut self) -> Result<(), String> {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log =
                    std::fs::read_to_string(self.dir.path().join("redis.log")).unwrap_or_default();
                return Err(format!(
                    "redis-server on {} exited: {status}\n{log}",
                    self.port
                ));
            }
            let ready = match &self.tls {
                None => answers(self.port),
                Some(tls) => answers_tls(self.port, tls),
            };
            if ready {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(if self.tls.is_some() {
                50
            } else {
                10
            }));
        }
        kill_pid(&mut self.child);
        Err(format!(
            "redis-server on {} did not answer within 10 s",
            self.port
        ))
    }

    /// Runs `redis-cli -p PORT args...` (bounded, over TLS for a TLS
    /// node) and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        cli_with(self.port, self.tls.as_ref(), args)
    }
}

impl Drop for RedisProc {
    fn drop(&mut self) {
        kill_pid(&mut self.child);
    }
}

/// Starts redis-server with `args` (which say its port), on loopback.
fn spawn_redis(dir: &tempfile::TempDir, args: &[String]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("redis.log"))
        .expect("redis log file");
    Command::new("redis-server")
        .args(["--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .args(["--repl-diskless-sync-delay", "0"])
        .arg("--dir")
        .arg(dir.path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("can't run redis-server ({e}): install it with `{INSTALL}`"))
}

/// Whether something on `port` answers a PING as Redis does (+PONG, or an
/// error such as NOAUTH).
fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(n) if n > 0 && (buf[0] == b'+' || buf[0] == b'-'))
}

/// Whether the TLS node on `port` answers redis-cli's PING (bounded).
pub fn answers_tls(port: u16, tls: &NodeTls) -> bool {
    require("redis-cli");
    let run = run_tool(
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(tls.cli_args())
            .arg("PING"),
        Duration::from_secs(5),
    );
    run.code == Some(0) && run.stdout.contains("PONG")
}

/// Runs `redis-cli -p PORT args...` (bounded) and returns its output.
pub fn cli(port: u16, args: &[&str]) -> String {
    cli_with(port, None, args)
}

/// [`cli`], over TLS as `tls` says when given.
pub fn cli_with(port: u16, tls: Option<&NodeTls>, args: &[&str]) -> String {
    require("redis-cli");
    let run = run_tool(
        Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(tls.map(NodeTls::cli_args).unwrap_or_default())
            .args(args),
        Duration::from_secs(30),
    );
    assert_eq!(run.code, Some(0), "redis-cli {args:?}: {}", run.stderr);
    run.stdout
}

/// The options of a cluster node.
pub const CLUSTER_NODE: &[&str] = &[
    "--cluster-enabled",
    "yes",
    "--cluster-config-file",
    "nodes.conf",
    "--cluster-node-timeout",
    "2000",
];

/// What a cluster node of a TLS cluster adds: the bus and replication are
/// TLS too.
pub const TLS_CLUSTER_NODE: &[&str] = &["--tls-cluster", "yes", "--tls-replication", "yes"];

/// Three masters and three replicas, made with `redis-cli --cluster create`.
pub struct Cluster {
    pub nodes: Vec<RedisProc>,
}

/// A cluster node, TLS only when `tls` is given.
fn cluster_node(tls: Option<&NodeTls>) -> RedisProc {
    match tls {
        None => RedisProc::start(CLUSTER_NODE),
        Some(tls) => RedisProc::start_tls(tls, &[CLUSTER_NODE, TLS_CLUSTER_NODE].concat()),
    }
}

impl Cluster {
    /// Starts six nodes and joins them; returns once every slot is served
    /// and every master has its replica in sync.
    pub fn start() -> Cluster {
        Self::start_with(None)
    }

    /// [`Cluster::start`] with nodes that speak TLS only, on the client
    /// port, the cluster bus and replication.
    pub fn start_tls(tls: &NodeTls) -> Cluster {
        Self::start_with(Some(tls))
    }

    fn start_with(tls: Option<&NodeTls>) -> Cluster {
        require("redis-cli");
        let nodes: Vec<RedisProc> = (0..6).map(|_| cluster_node(tls)).collect();
        let mut args = vec!["--cluster".to_string(), "create".to_string()];
        args.extend(nodes.iter().map(|n| n.node()));
        args.extend(["--cluster-replicas", "1", "--cluster-yes"].map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        nodes[0].cli(&args);
        let cluster = Cluster { nodes };
        cluster.wait_healthy(Duration::from_secs(60), &[]);
        cluster
    }

    /// `redis://HOST:PORT,...` of every node (`rediss://` for TLS nodes).
    pub fn seeds(&self) -> String {
        let nodes: Vec<String> = self.nodes.iter().map(|n| n.node()).collect();
        let scheme = match self.nodes[0].tls {
            Some(_) => "rediss",
            None => "redis",
        };
        format!("{scheme}://{}", nodes.join(","))
    }

    /// Adds an empty master (`redis-cli --cluster add-node`); its node id.
    pub fn add_master(&mut self) -> String {
        let node = cluster_node(self.nodes[0].tls.as_ref());
        self.nodes[0].cli(&["--cluster", "add-node", &node.node(), &self.nodes[0].node()]);
        let id = node.cli(&["cluster", "myid"]).trim().to_string();
        let port = node.port;
        self.nodes.push(node);
        self.wait_healthy(Duration::from_secs(60), &[port]);
        id
    }

    /// Waits until every node serves (`cluster_state:ok`) and knows every
    /// other, and each node but `unreplicated` masters is a master with its
    /// replica in sync, or a replica in sync.
    fn wait_healthy(&self, limit: Duration, unreplicated: &[u16]) {
        let start = Instant::now();
        let known = format!("cluster_known_nodes:{}", self.nodes.len());
        loop {
            let ok = self.nodes.iter().all(|n| {
                let info = n.cli(&["cluster", "info"]);
                let repl = n.cli(&["info", "replication"]);
                info.contains("cluster_state:ok")
                    && info.contains(&known)
                    && (unreplicated.contains(&n.port)
                        || repl.contains("role:slave") && repl.contains("master_link_status:up")
                        || repl.contains("role:master") && repl.contains("connected_slaves:1"))
            });
            if ok {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "the cluster was not healthy within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The dc_server binary, for runs that are expected to fail.
pub fn dc_server() -> Command {
    Command::new(crate::dc_server::dc_server_bin())
}

/// A gateway: dc_server with `-store SPEC` and `extra` options, on a
/// UNIX socket of its own.
pub fn gateway(spec: &str, extra: &[&str]) -> DcServer {
    let mut args = vec!["-store", spec];
    args.extend_from_slice(extra);
    DcServer::start(&args)
}

/// The figure `name` of `dc_admin stats` on the admin socket `admin`.
pub fn admin_figure(admin: &str, name: &str) -> Option<u64> {
    let stats = crate::common::run_tool(
        Command::new(env!("CARGO_BIN_EXE_dc_admin")).args(["-connect", admin, "stats"]),
        Duration::from_secs(20),
    );
    assert_eq!(stats.code, Some(0), "dc_admin stats: {}", stats.stderr);
    stats.stdout.lines().find_map(|l| {
        let (key, value) = l.split_once(char::is_whitespace)?;
        (key == name).then(|| value.trim().parse().ok())?
    })
}

/// A file holding `text`, in `dir`.
pub fn file_with(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write file");
    path
}

// ---------------------------------------------------------------------------
// Gateways on one server, and their clients

/// The bound the gateways answer within where the bound is what a test
/// looks at.
pub const STORE_TIMEOUT_MS: u64 = 500;

/// The bound elsewhere: one that a loaded test machine (dozens of
/// gateways starting at once) keeps for sure.
pub const PATIENT_MS: u64 = 5000;

/// A client that waits longer than the gateway, so that the gateway's
/// own answer is what it sees.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

pub fn client(gw: &DcServer) -> Client {
    let c = Client::new(&gw.address(), Flags::PERSISTENT).expect("client");
    c.set_timeout(CLIENT_TIMEOUT);
    c
}

pub fn spec(r: &RedisProc) -> String {
    format!("redis://{}", r.node())
}

/// A gateway that answers a REMOVE once the master has it (a single
/// server has no replica to wait for).
pub fn plain_gateway(r: &RedisProc, prefix: &str) -> DcServer {
    bounded_gateway(r, prefix, PATIENT_MS)
}

/// [`plain_gateway`] with a bound of `ms`.
pub fn bounded_gateway(r: &RedisProc, prefix: &str, ms: u64) -> DcServer {
    gateway(
        &spec(r),
        &[
            "-store-prefix",
            prefix,
            "-store-timeout",
            &ms.to_string(),
            "-store-remove-sync",
            "off",
        ],
    )
}

/// Runs a gateway that must fail to start; its standard error, and how
/// long it took.
pub fn failed_start(store: &str, extra: &[&str]) -> (String, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("gw.sock");
    let began = Instant::now();
    let run = run_tool(
        dc_server()
            .arg("-listen")
            .arg(format!("UNIX:{}", socket.display()))
            .args(["-store", store, "-store-timeout", "500"])
            .args(extra),
        Duration::from_secs(20),
    );
    let took = began.elapsed();
    assert_eq!(run.code, Some(1), "exit code; stderr: {}", run.stderr);
    (run.stderr, took)
}
