//! Scenario 10: TLS against plain TCP on the same dc_server, in one run.
//!
//! dc_server (CPU 0) listens on `TLS:127.0.0.1:P` and `IP:127.0.0.1:Q`,
//! with certificates made by the `openssl` command; the client runs on
//! CPU 1. Three TLS figures, each beside its plain TCP figure measured
//! alternately: GET hits on one persistent connection; connect + GET +
//! close resuming the last TLS session; and the same with a full handshake
//! on every connection (the client forgets its session before each GET).

use crate::matrix::Config;
use crate::procs::{self, free_port, me, Cpu, Proc};
use crate::report::{Figure, Report, Row, Target};
use std::path::Path;
use std::process::Command;

const SESSIONS: u64 = 512;

fn openssl(dir: &Path, args: &[&str]) -> Result<(), String> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("openssl: {e} (apt-get install -y openssl)"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate.
fn certificates(dir: &Path) -> Result<(), String> {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| e.to_string())?;
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n")
        .map_err(|e| e.to_string())?;
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=bench-ca",
    ]);
    openssl(dir, &ca)?;
    for name in ["server", "client"] {
        let (key, csr, pem, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        let subj = format!("/CN={name}");
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(dir, &req)?;
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        )?;
    }
    Ok(())
}

fn rate(kv: &procs::KeyValues) -> Result<f64, String> {
    let ops: f64 = kv.num("ops")?;
    let secs: f64 = kv.num("secs")?;
    Ok(ops / secs)
}

pub fn run(cfg: &Config, report: &mut Report) -> Result<(), String> {
    let dir = cfg.dir.path().join("tls");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    if let Err(e) = certificates(&dir) {
        eprintln!("scenario 10 skipped: {e}");
        return Ok(());
    }
    let p = |name: &str| dir.join(name).display().to_string();
    let (tls_port, tcp_port) = (free_port()?, free_port()?);
    let unix = dir.join("tls-bench.sock");
    let args: Vec<String> = [
        "-listen".to_string(),
        format!("UNIX:{}", unix.display()),
        "-listen".into(),
        format!("TLS:127.0.0.1:{tls_port}"),
        "-listen".into(),
        format!("IP:127.0.0.1:{tcp_port}"),
        "-tls-cert".into(),
        p("server.pem"),
        "-tls-key".into(),
        p("server.key"),
        "-tls-ca".into(),
        p("ca.pem"),
        "-sessions".into(),
        SESSIONS.to_string(),
        "-threads".into(),
        "1".into(),
    ]
    .into();
    let server_bin = Path::new(env!("CARGO_BIN_EXE_dc_server"));
    let mut server = Proc::spawn("dc_server (scenario 10)", Cpu::Pinned(0), server_bin, &args)?;
    server.wait_unix(&unix)?;
    server.wait_tcp(tcp_port)?;
    server.wait_tcp(tls_port)?;
    let added = crate::load::preload(&unix.to_string_lossy(), SESSIONS)?;
    if added != SESSIONS {
        return Err(format!("scenario 10: preloaded {added} of {SESSIONS}"));
    }
    // The client processes read their credentials from the environment.
    std::env::set_var("DISTCACHE_TLS_CA", p("ca.pem"));
    std::env::set_var("DISTCACHE_TLS_CERT", p("client.pem"));
    std::env::set_var("DISTCACHE_TLS_KEY", p("client.key"));
    let tls = format!("TLS:127.0.0.1:{tls_port}");
    let tcp = format!("IP:127.0.0.1:{tcp_port}");
    let limit = std::time::Duration::from_secs_f64(cfg.secs + 60.0);
    let client = |addr: &str, persistent: bool, resume: bool, r: usize| -> Result<f64, String> {
        let args = vec![
            "client".to_string(),
            format!("addr={addr}"),
            "op=get".into(),
            format!("secs={}", cfg.secs),
            format!("persistent={}", u8::from(persistent)),
            format!("keys={SESSIONS}"),
            format!("seed={}", r + 1),
            format!("resume={}", u8::from(resume)),
        ];
        rate(&procs::run(Cpu::Pinned(1), &me(), &args, limit)?)
    };
    let mut figures: [Vec<f64>; 5] = Default::default();
    eprintln!("scenario 10: TLS and plain TCP, persistent and per operation");
    for r in 0..cfg.runs {
        figures[0].push(client(&tls, true, true, r)?);
        figures[1].push(client(&tcp, true, true, r)?);
        figures[2].push(client(&tls, false, true, r)?);
        figures[3].push(client(&tcp, false, true, r)?);
        figures[4].push(client(&tls, false, false, r)?);
    }
    for name in [
        "DISTCACHE_TLS_CA",
        "DISTCACHE_TLS_CERT",
        "DISTCACHE_TLS_KEY",
    ] {
        std::env::remove_var(name);
    }
    let [tls_p, tcp_p, resumed, tcp_op, full] = figures.map(Figure::new);
    let ratio = resumed.median() / full.median();
    report.push(Row::new(
        10,
        "persistent GET, TLS 1.3 (floor: plain TCP, same server)".into(),
        tls_p,
        Some(tcp_p),
        Some(Target::AtLeast(0.8)),
    ));
    report.push(Row::new(
        10,
        "connect + GET + close, TLS resumed (floor: plain TCP)".into(),
        resumed,
        Some(tcp_op.clone()),
        None,
    ));
    report.push(Row::new(
        10,
        "connect + GET + close, TLS full handshake (floor: plain TCP)".into(),
        full,
        Some(tcp_op),
        None,
    ));
    report.section(format!(
        "Scenario 10: connect + GET + close with TLS session resumption runs at \
         {ratio:.2} x the rate with a full handshake on every connection \
         (ECDSA P-256 certificates, TLS 1.3, one server thread on CPU 0, the client on CPU 1).\n"
    ));
    Ok(())
}
