//! What the TLS tests share: certificates made with the `openssl` command in
//! a temporary directory, and a real `dc_server` with TLS listeners, stopped
//! by its PID.
#![allow(dead_code)]

use crate::common::{kill_pid, run_tool};
use crate::dc_server::dc_server_bin;
use crate::require;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Every certificate the tests need, made at once.
pub struct Pki {
    pub dir: tempfile::TempDir,
}

/// A certificate and its key.
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let tool = require::tool("openssl", "openssl");
    let run = run_tool(
        Command::new(tool).args(args).current_dir(dir),
        Duration::from_secs(60),
    );
    assert_eq!(run.code, Some(0), "openssl {args:?}: {}", run.stderr);
}

const SERVER_EXT: &str = "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n\
                          extendedKeyUsage=serverAuth\n";
const CLIENT_EXT: &str = "extendedKeyUsage=clientAuth\n";
/// A Redis node's certificate: it serves, and it is a client of the other
/// nodes (cluster bus, replication), under the names and addresses a
/// cluster announces.
pub const NODE_EXT: &str = "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n\
                            extendedKeyUsage=serverAuth,clientAuth\n";
const ELSEWHERE_EXT: &str = "subjectAltName=DNS:cache.invalid\nextendedKeyUsage=serverAuth\n";
const CA_CONF: &str = "[ca]\ndefault_ca = dc\n[dc]\ndatabase = index.txt\n\
                       new_certs_dir = .\nserial = serial\ndefault_md = sha256\n\
                       policy = any\n[any]\ncommonName = supplied\n";

impl Pki {
    /// A CA; a server certificate for localhost, 127.0.0.1 and ::1; a
    /// client certificate; a client certificate from another CA; an
    /// expired client certificate from the CA; a server certificate for
    /// another name.
    pub fn new() -> Pki {
        let pki = Pki {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        let d = pki.dir.path();
        for (name, text) in [
            ("server.ext", SERVER_EXT),
            ("client.ext", CLIENT_EXT),
            ("elsewhere.ext", ELSEWHERE_EXT),
            ("ca.cnf", CA_CONF),
            ("index.txt", ""),
            ("serial", "01\n"),
        ] {
            std::fs::write(d.join(name), text).expect("write openssl input");
        }
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        for (ca, cn) in [("ca", "test-ca"), ("other-ca", "other-ca")] {
            let (key, pem) = (format!("{ca}.key"), format!("{ca}.pem"));
            let subj = format!("/CN={cn}");
            let mut args = vec!["req", "-x509"];
            args.extend(ec);
            args.extend(["-keyout", &key, "-out", &pem, "-days", "30", "-subj", &subj]);
            openssl(d, &args);
        }
        for (name, ca, ext) in [
            ("server", "ca", "server.ext"),
            ("server2", "ca", "server.ext"),
            ("elsewhere", "ca", "elsewhere.ext"),
            ("client", "ca", "client.ext"),
            ("rogue", "other-ca", "client.ext"),
        ] {
            pki.request(name);
            pki.sign(name, ca, ext);
        }
        pki.request("expired");
        openssl(
            d,
            &[
                "ca",
                "-batch",
                "-config",
                "ca.cnf",
                "-in",
                "expired.csr",
                "-out",
                "expired.pem",
                "-cert",
                "ca.pem",
                "-keyfile",
                "ca.key",
                "-startdate",
                "20200101000000Z",
                "-enddate",
                "20200102000000Z",
                "-notext",
            ],
        );
        pki
    }

    fn request(&self, name: &str) {
        let (key, csr, subj) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("/CN={name}"),
        );
        let mut args = vec!["req"];
        args.extend([
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ]);
        args.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        openssl(self.dir.path(), &args);
    }

    /// Issues `name.pem` and `name.key`, signed by the CA `ca` (`"ca"` or
    /// `"other-ca"`), with the X.509 extensions `ext` (openssl's extfile
    /// syntax); returns them.
    pub fn issue(&self, name: &str, ca: &str, ext: &str) -> Pair {
        let d = self.dir.path();
        let ext_file = format!("{name}.ext");
        std::fs::write(d.join(&ext_file), ext).expect("write openssl input");
        self.request(name);
        self.sign(name, ca, &ext_file);
        self.pair(name)
    }

    /// Signs `name.csr` with the CA `ca` into `name.pem`, for 30 days, with
    /// the extensions in the file `ext_file`.
    fn sign(&self, name: &str, ca: &str, ext_file: &str) {
        let (csr, pem) = (format!("{name}.csr"), format!("{name}.pem"));
        let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
        openssl(
            self.dir.path(),
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &ca_pem,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "30",
                "-extfile",
                ext_file,
            ],
        );
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn ca(&self) -> PathBuf {
        self.path("ca.pem")
    }

    pub fn pair(&self, name: &str) -> Pair {
        Pair {
            cert: self.path(&format!("{name}.pem")),
            key: self.path(&format!("{name}.key")),
        }
    }
}

/// A dc_server with a TLS listener on 127.0.0.1 and one on ::1, and a
/// plaintext one on 127.0.0.1, each on a port of its own; its standard
/// error goes to a file.
pub struct TlsServer {
    pub child: Child,
    pub log: PathBuf,
    pub tls_port: u16,
    pub tls6_port: u16,
    pub plain_port: u16,
    _dir: tempfile::TempDir,
}

impl TlsServer {
    /// Starts one with `pki`'s server certificate and CA, and `extra`
    /// arguments; waits (at most 10 s) until it serves.
    pub fn start(pki: &Pki, extra: &[&str]) -> TlsServer {
        let server = pki.pair("server");
        let mut args: Vec<String> = vec![
            "-tls-cert".into(),
            server.cert.display().to_string(),
            "-tls-key".into(),
            server.key.display().to_string(),
        ];
        if !extra.contains(&"-tls-no-client-cert") {
            args.extend(["-tls-ca".into(), pki.ca().display().to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        TlsServer::start_with(&args)
    }

    /// Starts one with exactly `args` besides the listeners.
    pub fn start_with(args: &[String]) -> TlsServer {
        require::ipv6_loopback_port();
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("stderr");
        let child = Command::new(dc_server_bin())
            .args(["-listen", "TLS:127.0.0.1:0", "-listen", "TLS:[::1]:0"])
            .args(["-listen", "IP:127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn dc_server");
        let mut s = TlsServer {
            child,
            log,
            tls_port: 0,
            tls6_port: 0,
            plain_port: 0,
            _dir: dir,
        };
        let line = s.wait_log("serving on ", Duration::from_secs(10));
        let port_after = |prefix: &str| -> u16 {
            let at = line
                .find(prefix)
                .unwrap_or_else(|| panic!("{prefix} in {line}"));
            let rest = &line[at + prefix.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().expect("port")
        };
        s.tls_port = port_after("TLS:127.0.0.1:");
        s.tls6_port = port_after("TLS:[::1]:");
        s.plain_port = port_after("IP:127.0.0.1:");
        s
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (bounded) for a log line containing `want`; returns it.
    pub fn wait_log(&mut self, want: &str, limit: Duration) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self.log_text().lines().find(|l| l.contains(want)) {
                return line.to_string();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("dc_server exited ({status}):\n{}", self.log_text());
            }
            assert!(
                start.elapsed() < limit,
                "no log line with {want:?} within {limit:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends `signal` to the server's PID.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal dc_server");
    }

    /// Stops the server with SIGTERM (bounded: 10 s) and returns its log.
    pub fn stop(mut self) -> String {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "dc_server: {status}\n{}", self.log_text());
                return self.log_text();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("dc_server did not stop within 10 s:\n{}", self.log_text());
    }

    /// The handshake counts of the last line of a stopped server's log:
    /// (full, resumed, failed).
    pub fn handshakes(log: &str) -> (u64, u64, u64) {
        let line = log
            .lines()
            .find(|l| l.contains("TLS handshakes:"))
            .unwrap_or_else(|| panic!("no handshake counts in:\n{log}"));
        let n = |key: &str| -> u64 {
            let at = line.find(key).expect(key) + key.len();
            let digits: String = line[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().expect("count")
        };
        (n("full "), n("resumed "), n("failed "))
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        kill_pid(&mut self.child);
    }
}
