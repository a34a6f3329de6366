//! A fault-injecting proxy in front of a real `dc_server`: it passes whole
//! request messages to the server and its replies back, except that, while
//! a [`Fault`] is set, it answers nothing, half a frame, a reply with
//! another uid or operation, part of a reply and then a close, or the reply
//! only after a delay. Frames are parsed by hand (no library code), so the
//! proxy does not share the client's decoder.
#![allow(dead_code)] // each test binary uses a part

use crate::dc_server::{Endpoint, Net};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the proxy does to the next requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward the request, pass the reply back unchanged.
    Pass,
    /// Accept the request and never answer (nor forward it).
    Silent,
    /// Forward; send the first 7 bytes of the reply's header, then stall.
    HalfFrame,
    /// Forward; send the reply with its request uid changed.
    WrongUid,
    /// Forward; send the reply with its operation changed.
    WrongOp,
    /// Forward; send the first half of the reply's bytes, then close.
    CloseMidReply,
    /// Forward; send the reply only after this delay.
    Late(Duration),
}

/// How often blocked proxy threads look at the stop flag.
const TICK: Duration = Duration::from_millis(20);

/// The proxy: a listener and a thread per connection. Dropping it stops
/// every thread (each within a tick or two) and closes every socket.
pub struct FaultProxy {
    front: Endpoint,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

struct Shared {
    fault: Mutex<Fault>,
    /// Requests a fault other than `Pass` was applied to.
    injected: AtomicUsize,
    stop: AtomicBool,
}

impl Shared {
    fn fault(&self) -> Fault {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

impl FaultProxy {
    /// A proxy listening on a fresh endpoint of kind `net`, forwarding to
    /// `backend`, passing everything until told otherwise.
    pub fn start(net: Net, backend: &Endpoint) -> FaultProxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let front = Endpoint::new(net, dir.path(), "proxy.sock");
        let listener = match &front {
            Endpoint::Unix(p) => Listener::Unix(UnixListener::bind(p).expect("bind proxy")),
            Endpoint::Tcp(addr) => Listener::Tcp(TcpListener::bind(addr).expect("bind proxy")),
        };
        listener.set_nonblocking();
        let shared = Arc::new(Shared {
            fault: Mutex::new(Fault::Pass),
            injected: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
        });
        let sh = shared.clone();
        let backend = backend.clone();
        let acceptor = std::thread::spawn(move || {
            while !sh.stopping() {
                match listener.accept() {
                    Some(conn) => {
                        let sh = sh.clone();
                        let backend = backend.clone();
                        std::thread::spawn(move || {
                            let _ = relay(conn, &backend, &sh);
                        });
                    }
                    None => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        FaultProxy {
            front,
            shared,
            acceptor: Some(acceptor),
            _dir: dir,
        }
    }

    /// The address clients connect to.
    pub fn address(&self) -> String {
        self.front.address()
    }

    /// Sets what happens to the requests read from now on.
    pub fn set(&self, fault: Fault) {
        *self.shared.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
    }

    /// How many requests a fault was applied to so far.
    pub fn injected(&self) -> usize {
        self.shared.injected.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

impl Listener {
    fn set_nonblocking(&self) {
        match self {
            Listener::Unix(l) => l.set_nonblocking(true),
            Listener::Tcp(l) => l.set_nonblocking(true),
        }
        .expect("nonblocking listener");
    }

    fn accept(&self) -> Option<Sock> {
        let sock = match self {
            Listener::Unix(l) => l.accept().ok().map(|(s, _)| Sock::Unix(s)),
            Listener::Tcp(l) => l.accept().ok().map(|(s, _)| Sock::Tcp(s)),
        }?;
        sock.setup().ok()?;
        Some(sock)
    }
}

enum Sock {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Sock {
    fn connect(to: &Endpoint) -> io::Result<Sock> {
        let s = match to {
            Endpoint::Unix(p) => Sock::Unix(UnixStream::connect(p)?),
            Endpoint::Tcp(addr) => Sock::Tcp(TcpStream::connect(addr)?),
        };
        s.setup()?;
        Ok(s)
    }

    /// Blocking, reads waking every tick.
    fn setup(&self) -> io::Result<()> {
        match self {
            Sock::Unix(s) => {
                s.set_nonblocking(false)?;
                s.set_read_timeout(Some(TICK))
            }
            Sock::Tcp(s) => {
                s.set_nonblocking(false)?;
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(TICK))
            }
        }
    }

    fn shutdown(&self) {
        let _ = match self {
            Sock::Unix(s) => s.shutdown(Shutdown::Both),
            Sock::Tcp(s) => s.shutdown(Shutdown::Both),
        };
    }
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Unix(s) => s.read(buf),
            Sock::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Unix(s) => s.write(buf),
            Sock::Tcp(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Fills `buf`; Ok(false) when the peer closed or the proxy is stopping.
fn read_full(sock: &mut Sock, buf: &mut [u8], sh: &Shared) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        if sh.stopping() {
            return Ok(false);
        }
        match sock.read(&mut buf[got..]) {
            Ok(0) => return Ok(false),
            Ok(n) => got += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// One message as its frames' bytes (header and payload each); None when
/// the peer closed or the proxy is stopping.
fn read_message(sock: &mut Sock, sh: &Shared) -> io::Result<Option<Vec<Vec<u8>>>> {
    let mut frames = Vec::new();
    loop {
        let mut frame = vec![0u8; 14];
        if !read_full(sock, &mut frame, sh)? {
            return Ok(None);
        }
        let len = usize::from(u16::from_be_bytes([frame[12], frame[13]]));
        let complete = frame[11] == 1;
        frame.resize(14 + len, 0);
        if !read_full(sock, &mut frame[14..], sh)? {
            return Ok(None);
        }
        frames.push(frame);
        if complete {
            return Ok(Some(frames));
        }
        if frames.len() > 16 {
            return Err(io::Error::other("more than 16 frames"));
        }
    }
}

/// Reads and drops everything until the peer closes or the proxy stops.
fn swallow(sock: &mut Sock, sh: &Shared) {
    let mut sink = [0u8; 4096];
    while !sh.stopping() {
        match sock.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}

/// Serves one client connection through its own server connection.
fn relay(mut client: Sock, backend: &Endpoint, sh: &Shared) -> io::Result<()> {
    let mut server = Sock::connect(backend)?;
    while let Some(mut request) = read_message(&mut client, sh)? {
        let fault = sh.fault();
        if fault != Fault::Pass {
            sh.injected.fetch_add(1, Ordering::SeqCst);
        }
        if fault == Fault::Silent {
            swallow(&mut client, sh);
            return Ok(());
        }
        for f in &mut request {
            server.write_all(f)?;
        }
        let Some(mut reply) = read_message(&mut server, sh)? else {
            return Ok(());
        };
        match fault {
            Fault::Pass | Fault::Silent => {}
            Fault::HalfFrame => {
                client.write_all(&reply[0][..7])?;
                swallow(&mut client, sh);
                return Ok(());
            }
            Fault::WrongUid => {
                for f in &mut reply {
                    let uid = u32::from_be_bytes([f[5], f[6], f[7], f[8]]).wrapping_add(1);
                    f[5..9].copy_from_slice(&uid.to_be_bytes());
                }
            }
            Fault::WrongOp => {
                for f in &mut reply {
                    f[10] = (f[10] + 1) % 4;
                }
            }
            Fault::CloseMidReply => {
                let bytes = reply.concat();
                client.write_all(&bytes[..bytes.len() / 2])?;
                client.shutdown();
                return Ok(());
            }
            Fault::Late(delay) => {
                let until = Instant::now() + delay;
                while Instant::now() < until && !sh.stopping() {
                    std::thread::sleep(TICK);
                }
            }
        }
        for f in &reply {
            client.write_all(f)?;
        }
    }
    Ok(())
}
