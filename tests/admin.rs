//! Seeing inside a running dc_server: `dc_admin` (ls, get, rm, stats)
//! against the admin socket of a real server process, the admin protocol
//! spoken by hand, the socket's permissions and its refusal of other users
//! (run as root: a `dc_admin` child dropped to `nobody`), and the `/metrics`
//! page scraped over TCP loopback, every line checked against the
//! Prometheus text format and its counters against the operations made.

mod common;
mod dc_server;
mod require;

use common::{raw_frame, run_tool, to_hex, ToolRun};
use dc_server::{dc_server_bin, DcServer};
use distcache::{Client, Flags};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(10);

fn dc_admin_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dc_admin"))
}

/// A dc_server with an admin socket and a metrics page on a free loopback
/// port.
struct Srv {
    server: DcServer,
    admin: PathBuf,
    metrics_port: u16,
}

impl Srv {
    fn start(extra: &[&str]) -> Srv {
        let dir = tempfile::tempdir().expect("tempdir");
        let admin = dir.path().join("admin.sock");
        let server = DcServer::builder()
            .dir(dir)
            .arg("-admin")
            .arg(format!("UNIX:{}", admin.display()))
            .args(&["-metrics", "IP:127.0.0.1:0"])
            .args(extra)
            .start();
        let text = server.wait_stderr("metrics at http://127.0.0.1:");
        let metrics_port = text
            .split("metrics at http://127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no metrics port in {text}"));
        Srv {
            server,
            admin,
            metrics_port,
        }
    }

    fn stderr(&self) -> String {
        self.server.stderr()
    }

    fn address(&self) -> String {
        self.server.address()
    }

    fn admin_address(&self) -> String {
        format!("UNIX:{}", self.admin.display())
    }

    fn client(&self) -> Client {
        let c = Client::new(&self.address(), Flags::PERSISTENT).expect("client");
        c.set_timeout(Duration::from_secs(5));
        c
    }

    /// Runs `dc_admin -connect <admin socket> args...`.
    fn admin(&self, args: &[&str]) -> ToolRun {
        dc_admin(&[&["-connect", &self.admin_address()], args].concat())
    }
}

fn dc_admin(args: &[&str]) -> ToolRun {
    run_tool(
        Command::new(dc_admin_bin()).args(args),
        Duration::from_secs(30),
    )
}

fn ok(run: &ToolRun) -> &str {
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.is_empty(), "{run:?}");
    &run.stdout
}

/// `stats` output as a map.
fn stats(srv: &Srv) -> BTreeMap<String, u64> {
    let run = srv.admin(&["stats"]);
    ok(&run)
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            let (Some(k), Some(v), None) = (w.next(), w.next(), w.next()) else {
                panic!("bad stats line {l:?}");
            };
            (k.to_string(), v.parse().expect("a whole number"))
        })
        .collect()
}

// ---------------------------------------------------------------------------
// A small JSON reader: flat objects of strings and whole numbers, which is
// all dc_admin prints.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Json {
    Str(String),
    Num(u64),
}

fn parse_flat_json(s: &str) -> Option<BTreeMap<String, Json>> {
    let body = s.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut out = BTreeMap::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (key, after) = json_string(rest)?;
        rest = after.strip_prefix(':')?;
        let value;
        if rest.starts_with('"') {
            let (v, after) = json_string(rest)?;
            value = Json::Str(v);
            rest = after;
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = Json::Num(rest[..end].parse().ok()?);
            rest = &rest[end..];
        }
        if out.insert(key, value).is_some() {
            return None;
        }
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
            if rest.is_empty() {
                return None;
            }
        } else if !rest.is_empty() {
            return None;
        }
    }
    Some(out)
}

/// A JSON string without escapes (dc_admin's names and hex ids need none).
fn json_string(s: &str) -> Option<(String, &str)> {
    let s = s.strip_prefix('"')?;
    let end = s.find('"')?;
    let text = &s[..end];
    (!text.contains('\\')).then(|| (text.to_string(), &s[end + 1..]))
}

// ---------------------------------------------------------------------------
// dc_admin against a live server

#[test]
fn ls_get_rm_and_stats_on_a_live_server() {
    let srv = Srv::start(&[]);
    let c = srv.client();
    let binary: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let sessions: [(Vec<u8>, Vec<u8>, u32); 3] = [
        (vec![0x00, 0x01, 0xfe], b"hello, admin".to_vec(), 300_000),
        (b"session-two".to_vec(), binary.clone(), 600_000),
        (vec![0xff; 64], b"short-lived".to_vec(), 60_000),
    ];
    for (id, data, timeout) in &sessions {
        c.add(id, data, *timeout).unwrap();
    }

    // ls: soonest expiry first, sizes, times within their bounds.
    let run = srv.admin(&["ls"]);
    let lines: Vec<&str> = ok(&run).lines().collect();
    assert_eq!(lines.len(), 3, "{run:?}");
    for (line, i) in lines.iter().zip([2, 0, 1]) {
        let (id, data, timeout) = &sessions[i];
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 4, "{line}");
        assert_eq!(f[0], to_hex(id));
        assert_eq!(f[1], data.len().to_string());
        let secs = |s: &str| -> f64 {
            let (whole, frac) = s.split_once('.').expect("seconds with decimals");
            assert_eq!(frac.len(), 3, "{s}");
            s.parse().unwrap_or_else(|_| panic!("{whole}.{frac}"))
        };
        let (expires, age) = (secs(f[2]), secs(f[3]));
        let timeout = f64::from(*timeout) / 1000.0;
        assert!(expires <= timeout && expires > timeout - 60.0, "{line}");
        assert!((0.0..60.0).contains(&age), "{line}");
    }

    // ls --json: one object per line, the same sessions.
    let run = srv.admin(&["ls", "--json"]);
    let objects: Vec<BTreeMap<String, Json>> = ok(&run)
        .lines()
        .map(|l| parse_flat_json(l).unwrap_or_else(|| panic!("not a JSON object: {l}")))
        .collect();
    assert_eq!(objects.len(), 3);
    for (o, i) in objects.iter().zip([2, 0, 1]) {
        let (id, data, timeout) = &sessions[i];
        assert_eq!(o.len(), 4, "{o:?}");
        assert_eq!(o["id"], Json::Str(to_hex(id)));
        assert_eq!(o["size"], Json::Num(data.len() as u64));
        let Json::Num(expires) = o["expires_in_ms"] else {
            panic!("{o:?}")
        };
        assert!(expires <= u64::from(*timeout) && expires > u64::from(*timeout) - 60_000);
        assert!(matches!(o["age_ms"], Json::Num(a) if a < 60_000), "{o:?}");
    }

    // get: to standard output, and binary data to a file.
    let run = srv.admin(&["get", &to_hex(&sessions[0].0)]);
    assert_eq!(ok(&run), "hello, admin");
    let out = srv.server.dir().join("data.bin");
    let run = srv.admin(&["get", "73657373696f6e2d74776f", "-o", out.to_str().unwrap()]);
    assert_eq!(ok(&run), "");
    assert_eq!(std::fs::read(&out).unwrap(), binary);
    let run = srv.admin(&["get", "0bad"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("no session with id 0bad"), "{run:?}");
    let absent = srv.server.dir().join("absent.bin");
    let run = srv.admin(&["get", "0bad", "-o", absent.to_str().unwrap()]);
    assert_eq!(run.code, Some(1));
    assert!(!absent.exists(), "a miss created the output file");

    // rm: gone for clients too; a second rm finds nothing.
    let ff = to_hex(&sessions[2].0);
    assert_eq!(ok(&srv.admin(&["rm", &ff])), "");
    assert!(!c.have(&sessions[2].0).unwrap());
    let run = srv.admin(&["rm", &ff]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("no session with id"), "{run:?}");

    // A few more client operations, then the counters.
    assert!(c.add(&sessions[0].0, b"again", 1000).is_err(), "exists");
    assert!(c.get(b"session-two").unwrap().is_some());
    assert!(c.get(b"no-such").unwrap().is_none());
    let s = stats(&srv);
    let expect = [
        ("sessions", 2),
        ("bytes", (12 + binary.len()) as u64),
        ("ops.add.ok", 3),
        ("ops.add.exists", 1),
        ("ops.add.refused", 0),
        ("ops.add.malformed", 0),
        ("ops.get.ok", 1),
        ("ops.get.miss", 1),
        ("get.hits", 1),
        ("get.misses", 1),
        // dc_admin's own get and rm are not client operations.
        ("ops.remove.ok", 0),
        ("ops.remove.miss", 0),
        ("ops.have.ok", 0),
        ("ops.have.miss", 1),
        ("latency.add.count", 4),
        ("latency.get.count", 2),
        ("evictions", 0),
        ("expirations", 0),
        ("connections.open", 1),
        ("connections.protocol_errors", 0),
    ];
    for (k, v) in expect {
        assert_eq!(s.get(k), Some(&v), "{k} in {s:?}");
    }
    assert!(s["connections.accepted"] >= 1);
    assert!(s["uptime.ms"] > 0);

    // stats --json: the same names, one object.
    let run = srv.admin(&["stats", "--json"]);
    let o = parse_flat_json(ok(&run)).expect("one JSON object");
    assert_eq!(o.len(), s.len());
    assert_eq!(o["ops.add.ok"], Json::Num(3));
    assert_eq!(o["sessions"], Json::Num(2));
}

#[test]
fn a_listing_of_many_pages_names_every_session_once() {
    let srv = Srv::start(&["-sessions", "5000"]);
    let c = srv.client();
    let n = 2500u32;
    for i in 0..n {
        c.add(&i.to_be_bytes(), b"some data", 300_000 + i).unwrap();
    }
    let run = srv.admin(&["ls"]);
    let ids: Vec<&str> = ok(&run)
        .lines()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(ids.len(), n as usize);
    let unique: BTreeSet<&&str> = ids.iter().collect();
    assert_eq!(unique.len(), n as usize);
    // Soonest expiry first: the order they were added in.
    let expected: Vec<String> = (0..n).map(|i| to_hex(&i.to_be_bytes())).collect();
    assert_eq!(ids, expected);
}

#[test]
fn dc_admin_command_line_and_exit_codes() {
    let run = dc_admin(&["-h"]);
    assert_eq!(run.code, Some(0));
    for word in [
        "-connect", "ls", "get", "rm", "stats", "--json", "-o", "-store",
    ] {
        assert!(run.stdout.contains(word), "-h lacks {word}: {}", run.stdout);
    }
    for (args, why) in [
        (&[][..], "no command"),
        (&["-connect", "UNIX:/x", "frob"], "unknown command"),
        (&["-connect", "UNIX:/x", "get", "xyz"], "bad session id"),
        (&["-connect", "IP:127.0.0.1:1", "ls"], "UNIX socket"),
        (&["ls"], "no -connect"),
        (&["-connect", "UNIX:/x", "rm", "01", "--json"], "--json"),
    ] {
        let run = dc_admin(args);
        assert_eq!(run.code, Some(2), "{args:?}: {run:?}");
        assert!(run.stderr.contains(why), "{args:?}: {run:?}");
        assert!(run.stderr.contains("try -h"), "{args:?}: {run:?}");
        assert!(run.stdout.is_empty());
    }
    let nothing = tempfile::tempdir().unwrap();
    let run = dc_admin(&["-store", &nothing.path().display().to_string(), "ls"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("holds no session store"), "{run:?}");
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("UNIX:{}", dir.path().join("none.sock").display());
    let run = dc_admin(&["-connect", &missing, "stats"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("no admin socket"), "{run:?}");
}

// ---------------------------------------------------------------------------
// The protocol by hand

struct AdminConn {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl AdminConn {
    fn open(path: &Path) -> AdminConn {
        let s = UnixStream::connect(path).expect("connect to the admin socket");
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s.set_write_timeout(Some(LIMIT)).unwrap();
        let mut c = AdminConn {
            writer: s.try_clone().unwrap(),
            reader: BufReader::new(s),
        };
        assert_eq!(c.line(), "OK distcache-admin 1");
        c
    }

    fn line(&mut self) -> String {
        let mut l = String::new();
        self.reader.read_line(&mut l).expect("a reply line");
        l.strip_suffix('\n')
            .unwrap_or_else(|| panic!("no line feed: {l:?}"))
            .to_string()
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    fn ask(&mut self, line: &str) -> String {
        self.send(format!("{line}\n").as_bytes());
        self.line()
    }

    fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0))
    }
}

#[test]
fn the_admin_protocol_by_hand() {
    let srv = Srv::start(&[]);
    srv.client().add(b"\x01\x02", b"payload!", 60_000).unwrap();
    let mut a = AdminConn::open(&srv.admin);
    assert_eq!(a.ask("LS"), "OK");
    let line = a.line();
    assert!(line.starts_with("0102 8 "), "{line}");
    assert_eq!(a.line(), ".");
    assert_eq!(a.ask("get 0102"), "OK 8");
    let mut data = [0u8; 8];
    a.reader.read_exact(&mut data).unwrap();
    assert_eq!(&data, b"payload!");
    assert!(a.ask("GET 0a").starts_with("ERR notfound "));
    assert!(a.ask("FLUSH").starts_with("ERR badrequest unknown command"));
    assert!(a
        .ask("GET 012")
        .starts_with("ERR badrequest bad session id"));
    assert!(a.ask("LS now").starts_with("ERR badrequest"));
    a.send(b"\xff\xfe\n");
    assert!(a.line().starts_with("ERR badrequest"));
    assert_eq!(a.ask("STATS\r"), "OK", "a CR before the LF is allowed");
    let mut names = Vec::new();
    loop {
        let l = a.line();
        if l == "." {
            break;
        }
        names.push(l.split(' ').next().unwrap().to_string());
    }
    assert!(names.contains(&"sessions".to_string()), "{names:?}");
    assert_eq!(a.ask("RM 0102"), "OK");
    assert!(a.ask("RM 0102").starts_with("ERR notfound"));
    assert_eq!(a.ask("QUIT"), "OK bye");
    assert!(a.is_closed());

    // A line longer than 1024 bytes is refused and the connection closed;
    // the next connection is served.
    let mut a = AdminConn::open(&srv.admin);
    a.send(&[b'x'; 2000]);
    assert!(a.line().starts_with("ERR toolong "));
    assert!(a.is_closed());
    let mut a = AdminConn::open(&srv.admin);
    assert_eq!(a.ask("LS"), "OK");
    assert_eq!(a.line(), ".");
}

// ---------------------------------------------------------------------------
// Who may use the admin socket

/// Runs dc_admin as `nobody` (uid and gid 65534 unless the account says
/// otherwise); fails the test when that is not possible here.
fn dc_admin_as_nobody(args: &[&str]) -> ToolRun {
    let nobody = distcache::internals::daemon::lookup_user("nobody")
        .unwrap_or_else(|e| panic!("this test needs a `nobody` account: {e}"));
    let mut cmd = Command::new(dc_admin_bin());
    cmd.args(args).uid(nobody.uid).gid(nobody.gid);
    let probe = run_tool(
        Command::new(dc_admin_bin())
            .arg("-h")
            .uid(nobody.uid)
            .gid(nobody.gid),
        LIMIT,
    );
    assert_eq!(
        probe.code,
        Some(0),
        "nobody cannot run {} (every directory above it must be searchable \
         by others): {probe:?}",
        dc_admin_bin().display()
    );
    run_tool(&mut cmd, Duration::from_secs(30))
}

#[test]
fn the_admin_socket_is_0600_and_ours() {
    let srv = Srv::start(&[]);
    let meta = std::fs::metadata(&srv.admin).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
}

#[test]
#[ignore = "needs root, to run dc_admin as another user: make test-root"]
fn root_admin_socket_refuses_other_users() {
    require::root("running dc_admin as nobody");
    let srv = Srv::start(&[]);
    // Let nobody reach the socket file: only its mode keeps nobody out.
    std::fs::set_permissions(srv.server.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = dc_admin_as_nobody(&["-connect", &srv.admin_address(), "ls"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("permission denied"), "{run:?}");
    assert!(run.stdout.is_empty());

    // With the file open to all (-adminperms 666), the server itself
    // refuses anyone but root and its own user.
    let open = Srv::start(&["-adminperms", "666"]);
    std::fs::set_permissions(open.server.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let meta = std::fs::metadata(&open.admin).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o666);
    open.client()
        .add(b"secret", b"session data", 60_000)
        .unwrap();
    let run = dc_admin_as_nobody(&["-connect", &open.admin_address(), "ls"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("permission denied"), "{run:?}");
    assert!(run.stderr.contains("uid 65534"), "{run:?}");
    assert!(run.stdout.is_empty(), "nobody saw {:?}", run.stdout);
    let start = Instant::now();
    while !open.stderr().contains("admin socket: refused process") {
        assert!(start.elapsed() < LIMIT, "no log line: {}", open.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    // Root still may.
    assert_eq!(open.admin(&["ls"]).stdout.lines().count(), 1);
}

#[test]
#[ignore = "needs root, for dc_server -user nobody: make test-root"]
fn root_servers_own_user_may_use_the_admin_socket() {
    require::root("dc_server -user nobody");
    let srv = Srv::start(&["-user", "nobody", "-adminperms", "666"]);
    std::fs::set_permissions(srv.server.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
    srv.client().add(b"id", b"as nobody", 60_000).unwrap();
    let run = dc_admin_as_nobody(&["-connect", &srv.admin_address(), "ls"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.starts_with("6964 9 "), "{run:?}");
    // And root, whom no check keeps out.
    assert_eq!(srv.admin(&["ls"]).code, Some(0));
}

#[test]
fn inspection_options_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("UNIX:{}", dir.path().join("s.sock").display());
    let admin = format!("UNIX:{}", dir.path().join("a.sock").display());
    for (args, why) in [
        (vec!["-admin", "IP:127.0.0.1:9"], "UNIX socket"),
        (vec!["-metrics", &admin], "TCP"),
        (vec!["-admin", &admin, "-adminperms", "999"], "octal"),
        (vec!["-adminperms", "600"], "-adminperms needs -admin"),
        (vec!["-metrics", "nonsense"], "-metrics"),
    ] {
        let run = run_tool(
            Command::new(dc_server_bin())
                .args(["-listen", &listen])
                .args(&args),
            LIMIT,
        );
        assert_eq!(run.code, Some(1), "{args:?}: {run:?}");
        assert!(run.stderr.contains(why), "{args:?}: {run:?}");
    }
}

#[test]
fn a_clean_stop_removes_the_admin_socket() {
    let mut srv = Srv::start(&[]);
    assert!(srv.admin.exists());
    let status = srv.server.stop();
    assert_eq!(status.code(), Some(0), "{}", srv.stderr());
    assert!(!srv.admin.exists() && !srv.server.socket().exists());
}

// ---------------------------------------------------------------------------
// The metrics page

/// One HTTP exchange: the status code, the headers (names in lower case)
/// and the body.
fn http(port: u16, request: &[u8]) -> (u16, BTreeMap<String, String>, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to /metrics");
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.set_write_timeout(Some(LIMIT)).unwrap();
    s.write_all(request).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all)
        .expect("the whole response, then close");
    let text = String::from_utf8(all).expect("UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let mut parts = status_line.splitn(3, ' ');
    assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
    let code = parts.next().unwrap().parse().unwrap();
    let headers: BTreeMap<String, String> = lines
        .map(|l| {
            let (k, v) = l.split_once(": ").expect("a header");
            (k.to_ascii_lowercase(), v.to_string())
        })
        .collect();
    assert_eq!(headers.get("connection").map(String::as_str), Some("close"));
    assert_eq!(
        headers.get("content-length"),
        Some(&body.len().to_string()),
        "{head}"
    );
    (code, headers, body.to_string())
}

fn scrape(port: u16) -> String {
    let (code, headers, body) = http(
        port,
        b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: text/plain\r\n\r\n",
    );
    assert_eq!(code, 200);
    assert_eq!(
        headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    body
}

/// A sample: metric name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

fn is_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Parses `{a="x",b="y"}`; None if it is not valid exposition syntax.
fn parse_labels(s: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"")?;
        if !is_label_name(name) {
            return None;
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    _ => return None,
                },
                '\n' => return None,
                c => value.push(c),
            }
        };
        if out.insert(name.to_string(), value).is_some() {
            return None;
        }
        rest = &after[end + 1..];
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.is_empty() {
            return None;
        }
    }
    Some(out)
}

/// Checks every line of a page against the text format 0.0.4 and returns
/// the samples; panics naming the first bad line.
fn parse_exposition(text: &str) -> Vec<Sample> {
    assert!(text.ends_with('\n'), "the page must end with a line feed");
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = BTreeSet::new();
    let mut samples = Vec::new();
    let mut finished: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        assert!(!line.is_empty(), "an empty line");
        if let Some(comment) = line.strip_prefix('#') {
            let words: Vec<&str> = comment.trim_start().splitn(3, ' ').collect();
            match words.as_slice() {
                ["HELP", name, help] => {
                    assert!(is_metric_name(name), "{line}");
                    assert!(!help.is_empty(), "{line}");
                    assert!(helped.insert(name.to_string()), "second HELP: {line}");
                }
                ["TYPE", name, kind] => {
                    assert!(is_metric_name(name), "{line}");
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(kind),
                        "{line}"
                    );
                    assert!(
                        types.insert(name.to_string(), kind.to_string()).is_none(),
                        "second TYPE: {line}"
                    );
                    assert!(
                        !samples
                            .iter()
                            .any(|(n, _, _): &Sample| family(n, &types) == *name),
                        "TYPE after its samples: {line}"
                    );
                }
                _ => {} // any other comment is allowed
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a value");
        let value = parse_value(value).unwrap_or_else(|| panic!("bad value: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                (
                    name,
                    parse_labels(inner).unwrap_or_else(|| panic!("bad labels: {line}")),
                )
            }
            None => (series, BTreeMap::new()),
        };
        assert!(is_metric_name(name), "bad name: {line}");
        let fam = family(name, &types);
        assert!(types.contains_key(&fam), "no TYPE for {name}: {line}");
        // A family's samples come together.
        if current.as_deref() != Some(fam.as_str()) {
            assert!(finished.insert(fam.clone()), "{fam} is split: {line}");
            current = Some(fam.clone());
        }
        match types[&fam].as_str() {
            "counter" => {
                assert!(name.ends_with("_total"), "a counter without _total: {line}");
                assert!(value >= 0.0 && value.fract() == 0.0, "{line}");
            }
            "histogram" if name.ends_with("_bucket") => {
                assert!(labels.contains_key("le"), "{line}");
            }
            _ => {}
        }
        samples.push((name.to_string(), labels, value));
    }
    samples
}

/// The family a sample belongs to (a histogram's `_bucket`, `_sum` and
/// `_count` belong to the histogram).
fn family(name: &str, types: &BTreeMap<String, String>) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.get(base).is_some_and(|t| t == "histogram") {
                return base.to_string();
            }
        }
    }
    name.to_string()
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let found: Vec<f64> = samples
        .iter()
        .filter(|(n, l, _)| n == name && *l == want)
        .map(|(_, _, v)| *v)
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0]
}

/// Sends raw bytes on a new connection, closes its sending side, and
/// returns what the server sent until it closed the connection too (by then
/// the server no longer counts it as open).
fn send_and_wait_close(path: &Path, bytes: &[u8]) -> Vec<u8> {
    let mut s = common::connect_unix(path, LIMIT);
    s.write_all(bytes).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    reply
}

#[test]
fn the_metrics_page_is_valid_and_counts_what_was_done() {
    let srv = Srv::start(&[]);
    let c = srv.client();
    for i in 0..4u8 {
        c.add(&[b'k', i], b"value-1234", 120_000).unwrap();
    }
    assert!(c.add(b"k\x00", b"value-1234", 120_000).is_err());
    for id in [&b"k\x01"[..], b"k\x02"] {
        assert!(c.get(id).unwrap().is_some());
    }
    for id in [&b"x"[..], b"y", b"z"] {
        assert!(c.get(id).unwrap().is_none());
    }
    assert!(c.remove(b"k\x03").unwrap());
    assert!(!c.remove(b"k\x03").unwrap());
    assert!(c.have(b"k\x00").unwrap() && c.have(b"k\x01").unwrap());
    assert!(!c.have(b"nope").unwrap());
    // Raw requests: an ADD over seven days (refused), an ADD too short to
    // hold its header (malformed, connection closed), and garbage.
    let mut over = Vec::new();
    over.extend_from_slice(&604_800_001u32.to_be_bytes());
    over.extend_from_slice(&2u32.to_be_bytes());
    over.extend_from_slice(b"idd");
    let reply = send_and_wait_close(srv.server.socket(), &raw_frame(false, 0, 1, &over));
    assert_eq!(reply.len(), 15);
    assert_eq!(reply[14], 0x66, "refused: timeout range");
    send_and_wait_close(srv.server.socket(), &raw_frame(false, 0, 2, &[0, 0, 1]));
    send_and_wait_close(srv.server.socket(), b"GET / HTTP/1.0\r\n\r\n");

    let samples = parse_exposition(&scrape(srv.metrics_port));
    let ops = |op: &str, result: &str| {
        value(
            &samples,
            "distcache_operations_total",
            &[("op", op), ("result", result)],
        )
    };
    assert_eq!(ops("add", "ok"), 4.0);
    assert_eq!(ops("add", "exists"), 1.0);
    assert_eq!(ops("add", "refused"), 1.0);
    assert_eq!(ops("add", "malformed"), 1.0);
    assert_eq!(ops("get", "ok"), 2.0);
    assert_eq!(ops("get", "miss"), 3.0);
    assert_eq!(ops("remove", "ok"), 1.0);
    assert_eq!(ops("remove", "miss"), 1.0);
    assert_eq!(ops("have", "ok"), 2.0);
    assert_eq!(ops("have", "miss"), 1.0);
    assert_eq!(value(&samples, "distcache_get_hits_total", &[]), 2.0);
    assert_eq!(value(&samples, "distcache_get_misses_total", &[]), 3.0);
    assert_eq!(value(&samples, "distcache_protocol_errors_total", &[]), 2.0);
    assert_eq!(value(&samples, "distcache_sessions", &[]), 3.0);
    assert_eq!(value(&samples, "distcache_session_bytes", &[]), 30.0);
    assert_eq!(value(&samples, "distcache_evictions_total", &[]), 0.0);
    assert_eq!(value(&samples, "distcache_expirations_total", &[]), 0.0);
    assert_eq!(value(&samples, "distcache_connections_open", &[]), 1.0);
    assert!(value(&samples, "distcache_connections_accepted_total", &[]) >= 4.0);
    assert!(value(&samples, "distcache_uptime_seconds", &[]) > 0.0);
    assert!(value(&samples, "distcache_start_time_seconds", &[]) > 1.6e9);
    // Each histogram: buckets that only grow, ending at +Inf = _count =
    // the operation's requests; a sum that is a duration.
    let name = "distcache_request_duration_seconds";
    for (op, count) in [("add", 7.0), ("get", 5.0), ("remove", 2.0), ("have", 3.0)] {
        let mut buckets: Vec<(f64, f64)> = samples
            .iter()
            .filter(|(n, l, _)| n == &format!("{name}_bucket") && l["op"] == op)
            .map(|(_, l, v)| (parse_value(&l["le"]).expect("le is a number"), *v))
            .collect();
        assert!(buckets.len() >= 10, "{op}: {buckets:?}");
        assert!(buckets.windows(2).all(|w| w[0].0 < w[1].0), "le order");
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "cumulative");
        let (le, last) = buckets.pop().unwrap();
        assert_eq!(le, f64::INFINITY);
        assert_eq!(last, count, "{op}");
        assert_eq!(
            value(&samples, &format!("{name}_count"), &[("op", op)]),
            count
        );
        let sum = value(&samples, &format!("{name}_sum"), &[("op", op)]);
        assert!(sum > 0.0 && sum < count * 10.0, "{op}: {sum}");
    }
}

#[test]
fn the_metrics_server_answers_only_metrics_and_bounds_requests() {
    let srv = Srv::start(&[]);
    let port = srv.metrics_port;
    let (code, _, body) = http(port, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(code, 404, "{body}");
    let (code, headers, _) = http(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(code, 405);
    assert_eq!(headers["allow"], "GET, HEAD");
    let (code, _, _) = http(port, b"nonsense\r\n\r\n");
    assert_eq!(code, 400);
    // A query string is ignored; HTTP/1.0 is fine.
    let (code, _, body) = http(port, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n");
    assert_eq!(code, 200);
    parse_exposition(&body);
    // HEAD: the head of the page, no body.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.write_all(b"HEAD /metrics HTTP/1.1\r\n\r\n").unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
    assert!(all.ends_with("\r\n\r\n"), "HEAD sent a body: {all}");
    // A request head past 8 KiB is refused, and the page still served.
    let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'a', 9000));
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    let _ = s.write_all(&big);
    let mut all = Vec::new();
    let _ = s.read_to_end(&mut all);
    let all = String::from_utf8_lossy(&all);
    assert!(all.starts_with("HTTP/1.1 400 "), "{all}");
    parse_exposition(&scrape(port));
}

/// The checker is not blind: broken pages are refused.
#[test]
fn the_exposition_checker_rejects_bad_pages() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n";
    parse_exposition(good);
    for bad in [
        "a_total 1\n",                                                 // no TYPE
        "# TYPE a_total counter\na_total one\n",                       // value
        "# TYPE a counter\na 1\n",                                     // no _total
        "# TYPE a_total counter\na_total{x=\"1\" 1\n",                 // labels
        "# TYPE a_total counter\na_total{1x=\"1\"} 1\n",               // label name
        "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n",             // split
        "# TYPE h histogram\nh_bucket 1\n",                            // no le
        "# TYPE a_total counter\n# TYPE a_total counter\na_total 1\n", // two TYPEs
    ] {
        let r = std::panic::catch_unwind(|| parse_exposition(bad));
        assert!(r.is_err(), "accepted: {bad:?}");
    }
}

#[test]
fn dc_admin_reads_and_edits_the_store_of_a_stopped_server() {
    let store = tempfile::tempdir().unwrap();
    let dir = store.path().display().to_string();
    let mut srv = Srv::start(&["-store", &dir, "-sync", "always"]);
    let c = srv.client();
    let sessions: Vec<(Vec<u8>, Vec<u8>)> = (0..3u8)
        .map(|i| (vec![0xa0 + i, 1, 2], vec![i; 100 + usize::from(i)]))
        .collect();
    for (id, data) in &sessions {
        c.add(id, data, 600_000).expect("add");
    }
    // One server per store: not while it runs.
    let run = dc_admin(&["-store", &dir, "ls"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("in use by another process"), "{run:?}");
    // Every ADD was synced before it was answered: SIGKILL loses none.
    srv.server.kill();
    let listing = ok(&dc_admin(&["-store", &dir, "ls"])).to_string();
    let ids: BTreeSet<String> = listing
        .lines()
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect();
    let want: BTreeSet<String> = sessions.iter().map(|(id, _)| to_hex(id)).collect();
    assert_eq!(ids, want, "{listing}");
    for line in listing.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (_, data) = sessions
            .iter()
            .find(|(id, _)| to_hex(id) == f[0])
            .expect("a listed id");
        assert_eq!(f[1], data.len().to_string(), "{line}");
    }
    let out = dc_admin(&["-store", &dir, "get", &to_hex(&sessions[1].0)]);
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(out.stdout.as_bytes(), &sessions[1].1[..]);
    ok(&dc_admin(&["-store", &dir, "rm", &to_hex(&sessions[0].0)]));
    let gone = dc_admin(&["-store", &dir, "get", &to_hex(&sessions[0].0)]);
    assert_eq!(gone.code, Some(1), "{gone:?}");
    let counters = ok(&dc_admin(&["-store", &dir, "stats"])).to_string();
    assert!(
        counters
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["sessions", "2"]),
        "{counters}"
    );
    // A server started on the directory again agrees.
    let srv = Srv::start(&["-store", &dir]);
    let c = srv.client();
    assert_eq!(c.get(&sessions[0].0).expect("get"), None);
    assert_eq!(
        c.get(&sessions[2].0).expect("get"),
        Some(sessions[2].1.clone())
    );
}
