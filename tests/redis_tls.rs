//! dc_server as a gateway to Redis over mutual TLS (`-store rediss://...`
//! with `-store-tls-ca`, `-store-tls-cert`, `-store-tls-key`): real
//! `redis-server` processes that speak TLS only (`--port 0 --tls-port`),
//! a single node and a cluster of three masters and three replicas whose
//! bus and replication are TLS too, with certificates the test makes. The
//! bad cases (no client certificate, a node certificate from another CA,
//! TLS to a plaintext port and plain text to a TLS port, unusable files)
//! each stop the gateway at start-up with an error that says why, within
//! the bound.
//!
//! Needs `redis-server`, `redis-cli` and `openssl` (`apt-get install -y
//! redis-server redis-tools openssl`); without them the tests fail, naming
//! the package.

mod common;
mod dc_server;
mod redis_support;
mod require;
mod tls_support;

use dc_server::DcServer;
use redis_support::{
    client, failed_start, file_with, gateway, Cluster, NodeTls, RedisProc, PATIENT_MS,
};
use std::path::Path;
use std::time::Duration;
use tls_support::{Pki, NODE_EXT};

/// The certificates: a CA, a node certificate from it, one from another
/// CA, and the gateway's client certificate (`client`, from the CA).
fn pki() -> Pki {
    let pki = Pki::new();
    pki.issue("node", "ca", NODE_EXT);
    pki.issue("foreign-node", "other-ca", NODE_EXT);
    pki
}

/// A node with `pki`'s certificate `name` that trusts `pki`'s CA for its
/// clients.
fn node_tls(pki: &Pki, name: &str, its_ca: &str) -> NodeTls {
    let node = pki.pair(name);
    let cli = pki.pair("client");
    NodeTls {
        cert: node.cert,
        key: node.key,
        clients_ca: pki.ca(),
        cli_ca: pki.path(&format!("{its_ca}.pem")),
        cli_cert: cli.cert,
        cli_key: cli.key,
    }
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// The `-store-tls-*` options with `pki`'s CA and the client certificate.
fn tls_options(pki: &Pki) -> Vec<String> {
    tls_options_with_key(pki, path(&pki.pair("client").key))
}

/// The same with the client's key taken from `key`.
fn tls_options_with_key(pki: &Pki, key: String) -> Vec<String> {
    vec![
        "-store-tls-ca".into(),
        path(&pki.ca()),
        "-store-tls-cert".into(),
        path(&pki.pair("client").cert),
        "-store-tls-key".into(),
        key,
    ]
}

fn tls_gateway(spec: &str, pki: &Pki, extra: &[&str]) -> DcServer {
    let mut args: Vec<String> = tls_options(pki);
    args.extend(["-store-timeout".into(), PATIENT_MS.to_string()]);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    gateway(spec, &args)
}

/// Every operation through a gateway, on ids that land on every slot
/// range; each session is checked in Redis itself through `node`.
fn every_operation(gw: &DcServer, check_in: &RedisProc, cluster: bool) {
    let c = client(gw);
    let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
    let ids: Vec<Vec<u8>> = (0..60u32)
        .map(|i| [&b"\x00tls-"[..], &i.to_be_bytes()].concat())
        .collect();
    for (i, id) in ids.iter().enumerate() {
        c.add(id, &data[..100 + i * 300], 60_000).expect("ADD");
    }
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            c.get(id).expect("GET"),
            Some(data[..100 + i * 300].to_vec())
        );
        assert!(c.have(id).expect("HAVE"));
    }
    // The session is in Redis under its key, as stored.
    let mut args = vec![];
    if cluster {
        args.push("-c");
    }
    args.extend(["STRLEN", "tls:probe"]);
    c.add(b"probe", &data[..1234], 60_000).expect("ADD probe");
    assert_eq!(check_in.cli(&args).trim(), "1234");
    // An id taken is answered already stored.
    assert!(
        c.add(&ids[0], b"again", 60_000).is_err(),
        "ADD of a taken id"
    );
    // TAKE returns the session and removes it; REMOVE removes.
    for (i, id) in ids.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(
                c.take(id).expect("TAKE"),
                Some(data[..100 + i * 300].to_vec())
            );
            assert_eq!(c.take(id).expect("second TAKE"), None);
        } else {
            assert!(c.remove(id).expect("REMOVE"), "REMOVE of a stored id");
            assert!(!c.remove(id).expect("second REMOVE"));
        }
        assert_eq!(c.get(id).expect("GET after"), None);
        assert!(!c.have(id).expect("HAVE after"));
    }
    assert!(c.remove(b"probe").expect("REMOVE probe"));
    let log = gw.stderr();
    assert!(
        !log.contains("in the clear"),
        "a TLS gateway warned of plain text:\n{log}"
    );
}

#[test]
fn a_gateway_on_one_tls_node() {
    let pki = pki();
    let node = RedisProc::start_tls(&node_tls(&pki, "node", "ca"), &[]);
    let spec = format!("rediss://{}", node.node());
    // A single node has no replica to wait for.
    let gw = tls_gateway(
        &spec,
        &pki,
        &["-store-prefix", "tls:", "-store-remove-sync", "off"],
    );
    every_operation(&gw, &node, false);
    // The node serves nothing in plain text, so all of that went over
    // TLS; the node counts the gateway's connections among its clients.
    let clients = node.cli(&["CLIENT", "LIST"]);
    assert!(clients.lines().count() >= 2, "{clients}");
}

#[test]
fn a_gateway_on_a_tls_cluster() {
    let pki = pki();
    let cluster = Cluster::start_tls(&node_tls(&pki, "node", "ca"));
    // One seed: the gateway finds the other nodes by the addresses they
    // announce, and checks their certificates against those.
    let spec = format!("rediss://{}", cluster.nodes[0].node());
    let gw = tls_gateway(&spec, &pki, &["-store-prefix", "tls:"]);
    assert!(
        gw.wait_for_log("Redis cluster at", Duration::from_secs(10)),
        "{}",
        gw.stderr()
    );
    every_operation(&gw, &cluster.nodes[0], true);
    // The sessions were spread over the masters: each holds some.
    let c = client(&gw);
    for i in 0..100u32 {
        c.add(&i.to_be_bytes(), b"spread", 60_000).expect("ADD");
    }
    let mut masters = 0;
    for n in &cluster.nodes {
        if n.cli(&["ROLE"]).starts_with("master") {
            masters += 1;
            let keys: u64 = n.cli(&["DBSIZE"]).trim().parse().expect("DBSIZE");
            assert!(keys > 0, "master on {} holds no session", n.port);
        }
    }
    assert_eq!(masters, 3);
}

/// Asserts that a gateway with `store` and `extra` refused to start within
/// the bound, saying each of `says`.
fn refused(store: &str, extra: &[String], says: &[&str]) {
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let (stderr, took) = failed_start(store, &extra);
    for s in says {
        assert!(
            stderr.contains(s),
            "{store} {extra:?}: want {s:?} in:\n{stderr}"
        );
    }
    // -store-timeout 500 per seed, and the start-up itself.
    assert!(
        took < Duration::from_secs(10),
        "{store}: refused after {took:?}"
    );
}

/// As [`refused`], for a refusal that comes out of a TLS handshake: the
/// probe must connect, shake hands and read the refusal within the
/// gateway's bound, so this gives it more than `failed_start`'s 500 ms (the
/// last -store-timeout given wins) for a loaded machine and a debug build.
fn refused_in_handshake(store: &str, extra: &[String], says: &[&str]) {
    let mut extra = extra.to_vec();
    extra.extend(["-store-timeout".to_string(), "3000".to_string()]);
    refused(store, &extra, says);
}

#[test]
fn bad_peers_and_bad_files_are_refused_clearly() {
    let pki = pki();
    let node = RedisProc::start_tls(&node_tls(&pki, "node", "ca"), &[]);
    let foreign = RedisProc::start_tls(&node_tls(&pki, "foreign-node", "other-ca"), &[]);
    let plain = RedisProc::start(&[]);
    let tls_spec = format!("rediss://{}", node.node());
    let ca_only = vec!["-store-tls-ca".to_string(), path(&pki.ca())];

    // The node demands a client certificate, and the gateway has none.
    refused_in_handshake(
        &tls_spec,
        &ca_only,
        &["CertificateRequired", "-store-tls-cert"],
    );
    // The node's certificate comes from another CA.
    refused_in_handshake(
        &format!("rediss://{}", foreign.node()),
        &tls_options(&pki),
        &["UnknownIssuer", "-store-tls-ca"],
    );
    // The node's certificate, from the CA, names another host.
    let elsewhere = RedisProc::start_tls(&node_tls(&pki, "elsewhere", "ca"), &[]);
    refused_in_handshake(
        &format!("rediss://{}", elsewhere.node()),
        &tls_options(&pki),
        &["not valid for name", "does not name"],
    );
    // TLS to a plaintext port.
    refused(
        &format!("rediss://{}", plain.node()),
        &tls_options(&pki),
        &["no answer within 500 ms", "plaintext port"],
    );
    // Plain text to a TLS port.
    refused_in_handshake(&format!("redis://{}", node.node()), &[], &["use rediss://"]);
    // The nodes still serve a gateway that does it right.
    let gw = tls_gateway(&tls_spec, &pki, &["-store-remove-sync", "off"]);
    let c = client(&gw);
    c.add(b"after", b"bad peers", 60_000).expect("ADD");
    assert_eq!(c.get(b"after").expect("GET"), Some(b"bad peers".to_vec()));

    // Files: missing, not a certificate, an encrypted key, a key that is
    // not the certificate's; each named.
    let dir = tempfile::tempdir().unwrap();
    let missing = path(&dir.path().join("missing-ca.pem"));
    refused(
        &tls_spec,
        &["-store-tls-ca".into(), missing.clone()],
        &[&missing, "-store-tls-ca", "can't read"],
    );
    let junk = path(&file_with(&dir, "junk.pem", "not a certificate\n"));
    refused(
        &tls_spec,
        &["-store-tls-ca".into(), junk.clone()],
        &[&junk, "no certificate"],
    );
    let cli = pki.pair("client");
    let encrypted = dir.path().join("encrypted.key");
    let run = common::run_tool(
        std::process::Command::new(require::tool("openssl", "openssl"))
            .args(["pkey", "-aes256", "-passout", "pass:secret", "-in"])
            .arg(&cli.key)
            .arg("-out")
            .arg(&encrypted),
        Duration::from_secs(30),
    );
    assert_eq!(run.code, Some(0), "openssl pkey: {}", run.stderr);
    let key_args = |key: String| tls_options_with_key(&pki, key);
    let enc = path(&encrypted);
    refused(
        &tls_spec,
        &key_args(enc.clone()),
        &[&enc, "unencrypted private key", "PKCS#8"],
    );
    let other_key = path(&pki.pair("node").key);
    refused(
        &tls_spec,
        &key_args(other_key.clone()),
        &[&other_key, "does not go with the certificate"],
    );
    refused(
        &tls_spec,
        &["-store-tls-cert".into(), path(&cli.cert)],
        &["-store-tls-cert needs -store-tls-key"],
    );
    // TLS options with plain text are refused, not ignored.
    refused(
        &format!("redis://{}", plain.node()),
        &ca_only,
        &["need the TLS scheme", "rediss://"],
    );
}

#[test]
fn plain_text_to_another_host_is_warned_of() {
    let plain = RedisProc::start(&[]);
    // The first seed answers, so the second (a documentation address) is
    // never reached; it is warned of all the same.
    let gw = gateway(
        &format!("redis://{},192.0.2.1:6379", plain.node()),
        &["-store-remove-sync", "off"],
    );
    let c = client(&gw);
    c.add(b"id", b"data", 60_000).expect("ADD");
    let log = gw.stderr();
    let warned: Vec<&str> = log.lines().filter(|l| l.contains("in the clear")).collect();
    assert_eq!(warned.len(), 1, "{log}");
    assert!(warned[0].contains("192.0.2.1:6379"), "{log}");
    assert!(!warned[0].contains(&plain.node()), "{log}");
    // On loopback only: no warning.
    let gw = gateway(
        &format!("redis://{}", plain.node()),
        &["-store-remove-sync", "off"],
    );
    client(&gw).add(b"id2", b"data", 60_000).expect("ADD");
    assert!(!gw.stderr().contains("in the clear"), "{}", gw.stderr());
}

#[test]
fn the_contrib_tls_configuration_serves_tls_only() {
    redis_support::require("redis-server");
    let pki = pki();
    let tls = node_tls(&pki, "node", "ca");
    let conf = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("contrib/redis/redis-cluster-node-tls.conf");
    let dir = tempfile::tempdir().unwrap();
    let port = redis_support::free_port();
    // The file as shipped, with this node's port, directory and
    // certificates in place of the examples.
    let mut child = std::process::Command::new("redis-server")
        .arg(&conf)
        .args(["--tls-port", &port.to_string(), "--dir"])
        .arg(dir.path())
        .arg("--tls-cert-file")
        .arg(&tls.cert)
        .arg("--tls-key-file")
        .arg(&tls.key)
        .arg("--tls-ca-cert-file")
        .arg(&tls.clients_ca)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map(common::Reaped)
        .unwrap_or_else(|e| panic!("redis-server: {e}: `{}`", redis_support::INSTALL));
    let start = std::time::Instant::now();
    let mut up = false;
    while !up && start.elapsed() < Duration::from_secs(10) {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("redis-server with {} exited: {status}", conf.display());
        }
        up = redis_support::answers_tls(port, &tls);
        std::thread::sleep(Duration::from_millis(50));
    }
    let info = if up {
        redis_support::cli_with(port, Some(&tls), &["CONFIG", "GET", "*"])
    } else {
        String::new()
    };
    drop(child);
    assert!(up, "no TLS PING answer from {} within 10 s", conf.display());
    let setting = |name: &str| -> String {
        let mut lines = info.lines();
        lines.find(|l| *l == name);
        lines.next().unwrap_or_default().to_string()
    };
    assert_eq!(setting("port"), "0", "a plaintext port is open");
    assert_eq!(setting("tls-cluster"), "yes");
    assert_eq!(setting("tls-replication"), "yes");
    assert_eq!(setting("tls-auth-clients"), "yes");
    assert_eq!(setting("maxmemory-policy"), "volatile-ttl");
}

#[test]
fn cluster_nodes_are_checked_by_the_addresses_they_announce() {
    let pki = pki();
    // Certificates that name localhost but not 127.0.0.1, the address
    // every node announces.
    pki.issue(
        "named-node",
        "ca",
        "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n",
    );
    let cluster = Cluster::start_tls(&node_tls(&pki, "named-node", "ca"));
    // The seed, reached as localhost, passes; the nodes it announces do
    // not, and the gateway says so rather than fail their slots' requests.
    let spec = format!("rediss://localhost:{}", cluster.nodes[0].port);
    refused_in_handshake(
        &spec,
        &tls_options(&pki),
        &[
            "a node of the cluster",
            "not valid for name \"127.0.0.1\"",
            "announce",
        ],
    );
}
