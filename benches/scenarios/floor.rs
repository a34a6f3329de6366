//! The floors: what the machine allows for the same exchange without any
//! cache. A blocking ping-pong of raw bytes, the request and reply exactly
//! as long as the scenario's, over the same kind of socket, pinned the same
//! way; and a trivial server that accepts, answers one request and closes.

use crate::procs::KeyValues;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

/// Where a floor server listens or a floor client connects.
enum Endpoint {
    Unix(String),
    Tcp(u16),
}

fn endpoint(kv: &KeyValues) -> Result<Endpoint, String> {
    match kv.str("unix") {
        Ok(path) => Ok(Endpoint::Unix(path.to_string())),
        Err(_) => Ok(Endpoint::Tcp(kv.num("port")?)),
    }
}

trait Conn: Read + Write + Send + 'static {}
impl Conn for UnixStream {}
impl Conn for TcpStream {}

/// Answers `req`-byte requests with `reply`-byte replies until the peer
/// closes (persistent), or once (iterative).
fn serve(mut c: impl Conn, req: usize, reply: usize, once: bool) {
    let mut inbuf = vec![0u8; req];
    let outbuf = vec![0x42u8; reply];
    loop {
        if c.read_exact(&mut inbuf).is_err() || c.write_all(&outbuf).is_err() || once {
            return;
        }
    }
}

/// Accepts the next connection and returns the job of serving it.
type Accept = dyn FnMut() -> io::Result<Box<dyn FnOnce() + Send>>;

/// `floor-server unix=PATH|port=0 req=N reply=M mode=persistent|iterative`:
/// prints `port=P` (TCP) or `ready=1`, then serves until killed. A
/// persistent server gives each connection a thread; an iterative one
/// serves connections one after the other on its only thread, the least a
/// connection can cost.
pub fn server(kv: &KeyValues) -> Result<(), String> {
    let req: usize = kv.num("req")?;
    let reply: usize = kv.num("reply")?;
    let once = kv.str("mode")? == "iterative";
    let accept: Box<Accept> = match endpoint(kv)? {
        Endpoint::Unix(path) => {
            let _ = std::fs::remove_file(&path);
            let l = UnixListener::bind(&path).map_err(|e| format!("{path}: {e}"))?;
            println!("ready=1");
            Box::new(move || {
                let (c, _) = l.accept()?;
                Ok(Box::new(move || serve(c, req, reply, once)))
            })
        }
        Endpoint::Tcp(port) => {
            let l = TcpListener::bind(("127.0.0.1", port)).map_err(|e| e.to_string())?;
            let port = l.local_addr().map_err(|e| e.to_string())?.port();
            println!("port={port}");
            Box::new(move || {
                let (c, _) = l.accept()?;
                c.set_nodelay(true)?;
                Ok(Box::new(move || serve(c, req, reply, once)))
            })
        }
    };
    io::stdout().flush().map_err(|e| e.to_string())?;
    let mut accept = accept;
    loop {
        let Ok(job) = accept() else { continue };
        if once {
            job();
        } else {
            std::thread::spawn(job);
        }
    }
}

fn connect(ep: &Endpoint) -> io::Result<Box<dyn Conn>> {
    Ok(match ep {
        Endpoint::Unix(path) => Box::new(UnixStream::connect(path)?),
        Endpoint::Tcp(port) => {
            let c = TcpStream::connect(("127.0.0.1", *port))?;
            c.set_nodelay(true)?;
            Box::new(c)
        }
    })
}

/// `floor-client unix=PATH|port=P req=N reply=M secs=S connect=0|1`: runs
/// round trips for S seconds (after a short warm-up), on one connection or
/// a connection each, and prints `ops=N secs=S`.
pub fn client(kv: &KeyValues) -> Result<(), String> {
    let ep = endpoint(kv)?;
    let req: usize = kv.num("req")?;
    let reply: usize = kv.num("reply")?;
    let secs: f64 = kv.num("secs")?;
    let per_op = kv.num_or("connect", 0u8)? == 1;
    let out = vec![0x17u8; req];
    let mut inbuf = vec![0u8; reply];
    let mut conn = connect(&ep).map_err(|e| e.to_string())?;
    let mut round_trip = |conn: &mut Box<dyn Conn>| -> io::Result<()> {
        if per_op {
            *conn = connect(&ep)?;
        }
        conn.write_all(&out)?;
        conn.read_exact(&mut inbuf)
    };
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(200) {
        round_trip(&mut conn).map_err(|e| e.to_string())?;
    }
    let (ops, elapsed) =
        crate::load::timed(secs, || round_trip(&mut conn).map_err(|e| e.to_string()))?;
    println!("ops={ops} secs={elapsed:.4}");
    Ok(())
}
