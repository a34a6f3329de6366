//! The proxy: one thread accepts; each accepted connection gets a thread
//! per direction, so a slow or stalled pair holds up nobody else.

use super::{describe, Options};
use distcache::internals::nal::{AcceptFailure, Listener, ACCEPT_BACKOFF};
use distcache::internals::proto::{Decoder, Role};
use distcache::{Address, NalError};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

/// How long connecting to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes read at a time.
const CHUNK: usize = 16 * 1024;

/// Why dc_snoop could not start.
#[derive(Debug, Error)]
pub enum SnoopError {
    /// The listening address could not be used.
    #[error("cannot listen on {address}: {source}")]
    Listen {
        /// The address.
        address: String,
        /// Why.
        #[source]
        source: NalError,
    },
}

/// A connected socket of either kind.
#[derive(Debug)]
enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Sock {
    fn connect(addr: &Address) -> io::Result<Sock> {
        match addr {
            Address::Tcp { addr, .. } => {
                let s = TcpStream::connect_timeout(addr, CONNECT_TIMEOUT)?;
                s.set_nodelay(true)?;
                Ok(Sock::Tcp(s))
            }
            Address::Unix(path) => UnixStream::connect(path).map(Sock::Unix),
        }
    }

    fn try_clone(&self) -> io::Result<Sock> {
        match self {
            Sock::Tcp(s) => s.try_clone().map(Sock::Tcp),
            Sock::Unix(s) => s.try_clone().map(Sock::Unix),
        }
    }

    fn shutdown(&self) {
        // Already shut down or reset: nothing left to do either way.
        let _ = match self {
            Sock::Tcp(s) => s.shutdown(Shutdown::Both),
            Sock::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.read(buf),
            Sock::Unix(s) => s.read(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.write_all(buf),
            Sock::Unix(s) => s.write_all(buf),
        }
    }
}

fn accept(listener: &Listener) -> io::Result<Sock> {
    let (socket, tcp) = listener.accept_socket()?;
    if tcp {
        // Best effort: small messages go out at once.
        let _ = socket.set_nodelay(true);
        Ok(Sock::Tcp(socket.into()))
    } else {
        Ok(Sock::Unix(socket.into()))
    }
}

/// The output: one entry (a line, and with -hex its dump) at a time.
#[derive(Debug)]
struct Log {
    hex: bool,
    /// Set once stdout fails (closed pipe): the proxy keeps forwarding.
    broken: AtomicBool,
}

fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let s = now.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        now.subsec_micros()
    )
}

impl Log {
    fn write(&self, conn: u64, text: &str, dump: Option<&[u8]>) {
        if self.broken.load(Ordering::Relaxed) {
            return;
        }
        let mut entry = format!("{} #{conn} {text}\n", timestamp());
        if let Some(bytes) = dump.filter(|_| self.hex) {
            entry.push_str(&describe::hex_dump(bytes));
        }
        let mut out = io::stdout().lock();
        if out
            .write_all(entry.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            self.broken.store(true, Ordering::Relaxed);
        }
    }
}

/// Which way bytes flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    ClientToServer,
    ServerToClient,
}

impl Dir {
    fn arrow(self) -> &'static str {
        match self {
            Dir::ClientToServer => "C>",
            Dir::ServerToClient => "S>",
        }
    }
    fn source(self) -> &'static str {
        match self {
            Dir::ClientToServer => "client",
            Dir::ServerToClient => "server",
        }
    }
    fn sink(self) -> &'static str {
        match self {
            Dir::ClientToServer => "server",
            Dir::ServerToClient => "client",
        }
    }
}

/// Decodes one direction's bytes into log entries.
struct Snooper {
    conn: u64,
    dir: Dir,
    decoder: Decoder,
    /// Bytes of the message being decoded (kept only for hex dumps).
    held: Vec<u8>,
    held_len: usize,
    corrupt: bool,
}

impl Snooper {
    fn new(conn: u64, dir: Dir) -> Snooper {
        let role = match dir {
            Dir::ClientToServer => Role::Server,
            Dir::ServerToClient => Role::Client,
        };
        Snooper {
            conn,
            dir,
            decoder: Decoder::new(role),
            held: Vec::new(),
            held_len: 0,
            corrupt: false,
        }
    }

    fn feed(&mut self, mut bytes: &[u8], log: &Log) {
        while !bytes.is_empty() && !self.corrupt {
            match self.decoder.decode(bytes) {
                Ok((used, msg)) => {
                    if log.hex {
                        self.held.extend_from_slice(&bytes[..used]);
                    }
                    self.held_len += used;
                    bytes = &bytes[used..];
                    if let Some(m) = msg {
                        let text = match self.dir {
                            Dir::ClientToServer => describe::request(&m),
                            Dir::ServerToClient => describe::reply(&m),
                        };
                        log.write(
                            self.conn,
                            &format!("{} {text}", self.dir.arrow()),
                            Some(&self.held),
                        );
                        self.held.clear();
                        self.held_len = 0;
                    } else if used == 0 {
                        break;
                    }
                }
                Err(e) => {
                    self.corrupt = true;
                    if log.hex {
                        self.held.extend_from_slice(bytes);
                    }
                    log.write(
                        self.conn,
                        &format!(
                            "{} corrupt: {e}; forwarding the rest of this direction undecoded",
                            self.dir.arrow()
                        ),
                        Some(&self.held),
                    );
                    self.held = Vec::new();
                }
            }
        }
    }

    /// Reports a message cut short by the end of the stream.
    fn finish(&self, log: &Log) {
        if !self.corrupt && self.decoder.is_mid_message() {
            log.write(
                self.conn,
                &format!(
                    "{} ended inside a message ({} bytes of it forwarded)",
                    self.dir.arrow(),
                    self.held_len
                ),
                Some(&self.held),
            );
        }
    }
}

/// What one connection pair shares.
struct Pair {
    conn: u64,
    log: Arc<Log>,
    closed: AtomicBool,
}

impl Pair {
    /// Logs why the pair closes, once (the second direction's end follows
    /// from the first's).
    fn closing(&self, why: &str) {
        if !self.closed.swap(true, Ordering::Relaxed) {
            self.log.write(self.conn, why, None);
        }
    }
}

/// Copies `from` to `to`, logging each message, until either side fails or
/// ends; then shuts both down so that the other direction ends too.
fn pump(pair: &Pair, dir: Dir, mut from: Sock, mut to: Sock) {
    let mut snooper = Snooper::new(pair.conn, dir);
    let mut buf = vec![0u8; CHUNK];
    let why = loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break format!("closed by the {}", dir.source()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break format!("closed: reading from the {}: {e}", dir.source()),
        };
        // Logged before forwarding, so that a request's line always comes
        // before its reply's.
        snooper.feed(&buf[..n], &pair.log);
        if let Err(e) = to.write_all(&buf[..n]) {
            break format!("closed: writing to the {}: {e}", dir.sink());
        }
    };
    snooper.finish(&pair.log);
    pair.closing(&why);
    from.shutdown();
    to.shutdown();
}

/// Serves one accepted connection until either side closes.
fn serve(conn: u64, client: Sock, server: &Address, log: Arc<Log>) {
    let server = match Sock::connect(server) {
        Ok(s) => s,
        Err(e) => {
            log.write(conn, &format!("cannot connect to the server: {e}"), None);
            return;
        }
    };
    let clones = client
        .try_clone()
        .and_then(|c| Ok((c, server.try_clone()?)));
    let (client2, server2) = match clones {
        Ok(c) => c,
        Err(e) => {
            log.write(conn, &format!("cannot set up the connection: {e}"), None);
            return;
        }
    };
    log.write(conn, "open", None);
    let pair = Arc::new(Pair {
        conn,
        log,
        closed: AtomicBool::new(false),
    });
    let back = Arc::clone(&pair);
    let other = std::thread::Builder::new()
        .name(format!("snoop-{conn}-s"))
        .spawn(move || pump(&back, Dir::ServerToClient, server2, client2));
    match other {
        Ok(handle) => {
            pump(&pair, Dir::ClientToServer, client, server);
            // A panic there has nothing left to clean up.
            let _ = handle.join();
        }
        Err(e) => {
            pair.closing(&format!("closed: cannot start a thread: {e}"));
            client.shutdown();
            server.shutdown();
        }
    }
}

/// Listens as `options` says and forwards every connection until the
/// process is stopped. Returns only when it cannot start.
pub fn run(options: &Options) -> Result<(), SnoopError> {
    let listener = Listener::bind(&options.listen).map_err(|source| SnoopError::Listen {
        address: options.listen.to_string(),
        source,
    })?;
    eprintln!(
        "dc_snoop: listening on {}, forwarding to {}",
        options.listen, options.server
    );
    let log = Arc::new(Log {
        hex: options.hex,
        broken: AtomicBool::new(false),
    });
    let next = AtomicU64::new(1);
    loop {
        let client = match accept(&listener) {
            Ok(c) => c,
            Err(e) => {
                if AcceptFailure::of(&e) == AcceptFailure::Other {
                    eprintln!("dc_snoop: accept: {e}");
                    std::thread::sleep(ACCEPT_BACKOFF);
                }
                continue;
            }
        };
        let conn = next.fetch_add(1, Ordering::Relaxed);
        let (server, log) = (options.server.clone(), Arc::clone(&log));
        let spawned = std::thread::Builder::new()
            .name(format!("snoop-{conn}"))
            .spawn(move || serve(conn, client, &server, log));
        if let Err(e) = spawned {
            eprintln!("dc_snoop: connection #{conn} dropped: cannot start a thread: {e}");
        }
    }
}
