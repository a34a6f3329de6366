//! The event-driven engine in-process, over a store that makes ADDs wait
//! for its "disk" the way a durable store under `-sync always` does: a
//! reply that waits holds up neither the worker's other connections nor
//! the order of replies on its own connection.

mod dc_server;

use dc_server::DcServer;
use distcache::internals::proto::{decode_all, encode_message, AddRequest, Command, Message, Role};
use distcache::Address;
use distcache::{AddBegun, AddError, MemoryStore, Millis, ProgressFn, Receipt, Store};
use distcache::{Server, ServerError, StopHandle};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const IO_LIMIT: Duration = Duration::from_secs(5);

/// A memory store whose ADDs and REMOVEs are answered only once `release`
/// is called.
struct HeldStore {
    memory: MemoryStore,
    released: AtomicBool,
    next: AtomicU64,
    progress: Mutex<Vec<ProgressFn>>,
}

impl HeldStore {
    fn new() -> HeldStore {
        HeldStore {
            memory: MemoryStore::new(100),
            released: AtomicBool::new(false),
            next: AtomicU64::new(1),
            progress: Mutex::new(Vec::new()),
        }
    }

    fn release(&self) {
        self.released.store(true, Ordering::SeqCst);
        for f in self.progress.lock().unwrap().iter() {
            f();
        }
    }
}

impl std::fmt::Debug for HeldStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeldStore")
    }
}

impl Store for HeldStore {
    fn add(&self, now: Millis, timeout: u32, id: &[u8], data: &[u8]) -> Result<(), AddError> {
        self.memory.add(now, timeout, id, data)
    }
    fn add_begin(&self, now: Millis, timeout: u32, id: &[u8], data: &[u8]) -> AddBegun {
        if let Err(e) = self.memory.add(now, timeout, id, data) {
            return AddBegun::Done(Err(e));
        }
        AddBegun::Waiting(Receipt {
            seq: self.next.fetch_add(1, Ordering::SeqCst),
            deadline: Instant::now() + Duration::from_secs(60),
        })
    }
    fn remove_begin(&self, now: Millis, id: &[u8]) -> (bool, Option<Receipt>) {
        if !self.memory.remove(now, id) {
            return (false, None);
        }
        let receipt = Receipt {
            seq: self.next.fetch_add(1, Ordering::SeqCst),
            deadline: Instant::now() + Duration::from_secs(60),
        };
        (true, Some(receipt))
    }
    fn synced(&self, _receipt: &Receipt) -> Option<bool> {
        self.released.load(Ordering::SeqCst).then_some(true)
    }
    fn on_progress(&self, f: ProgressFn) {
        self.progress.lock().unwrap().push(f);
    }
    fn get_into(&self, now: Millis, id: &[u8], out: &mut Vec<u8>) -> bool {
        self.memory.get_into(now, id, out)
    }
    fn remove(&self, now: Millis, id: &[u8]) -> bool {
        self.memory.remove(now, id)
    }
    fn have(&self, now: Millis, id: &[u8]) -> bool {
        self.memory.have(now, id)
    }
    fn len(&self, now: Millis) -> usize {
        self.memory.len(now)
    }
}

/// A server in this process on a UNIX socket in a directory of its own.
struct Serving {
    path: PathBuf,
    stop: StopHandle,
    running: thread::JoinHandle<Result<(), ServerError>>,
    _dir: tempfile::TempDir,
}

impl Serving {
    /// Serves `store` with `threads` workers (`None`: the default).
    fn start(store: Arc<dyn Store>, threads: Option<usize>) -> Serving {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let server = Server::bind_with_store(&[Address::Unix(path.clone())], store).unwrap();
        if let Some(n) = threads {
            server.set_threads(n);
        }
        let stop = server.stop_handle();
        let running = thread::spawn(move || server.run());
        Serving {
            path,
            stop,
            running,
            _dir: dir,
        }
    }

    fn connect(&self) -> UnixStream {
        UnixStream::connect(&self.path).unwrap()
    }

    /// Stops the server; it ends without an error.
    fn stop(self) {
        self.stop.stop();
        self.running.join().unwrap().unwrap();
    }
}

fn frame(uid: u32, command: Command, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_message(&mut out, false, uid, command, payload).unwrap();
    out
}

fn add(uid: u32, id: &[u8], data: &[u8]) -> Vec<u8> {
    let mut p = Vec::new();
    AddRequest {
        timeout_msecs: 60_000,
        id,
        data,
    }
    .encode(&mut p)
    .unwrap();
    frame(uid, Command::Add, &p)
}

/// Reads until `count` whole replies came, within the bound.
fn replies(s: &mut UnixStream, count: usize) -> Vec<Message> {
    s.set_read_timeout(Some(IO_LIMIT)).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let (msgs, _) = decode_all(Role::Client, &got).expect("valid replies");
        if msgs.len() >= count {
            return msgs;
        }
        let n = s.read(&mut buf).expect("a reply within the bound");
        assert!(n > 0, "closed after {} replies", msgs.len());
        got.extend_from_slice(&buf[..n]);
    }
}

/// Whether nothing arrives on `s` for a while.
fn quiet(s: &mut UnixStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[test]
fn a_reply_waiting_for_the_disk_holds_up_no_one() {
    let store = Arc::new(HeldStore::new());
    // One worker: the waiting connection and the other one share it.
    let server = Serving::start(store.clone(), Some(1));

    let mut a = server.connect();
    let mut b = server.connect();
    // A: an ADD, then a HAVE pipelined behind it.
    let mut pipelined = add(1, b"held", b"data");
    pipelined.extend(frame(2, Command::Have, b"held"));
    a.write_all(&pipelined).unwrap();
    assert!(quiet(&mut a), "the ADD was answered before the disk had it");
    // B is served meanwhile, by the same worker.
    b.write_all(&frame(9, Command::Get, b"held")).unwrap();
    let got = replies(&mut b, 1);
    assert_eq!((got[0].uid, got[0].payload.as_slice()), (9, &b"data"[..]));
    assert!(quiet(&mut a), "the HAVE overtook the waiting ADD");

    store.release();
    let got = replies(&mut a, 2);
    assert_eq!((got[0].uid, got[0].command), (1, Command::Add));
    assert_eq!(got[0].payload, [0x00], "stored");
    assert_eq!((got[1].uid, got[1].command), (2, Command::Have));
    assert_eq!(got[1].payload, [0x00], "present");

    server.stop();
}

/// A client that sends its requests and then closes its sending side
/// still gets the replies that waited for the store.
#[test]
fn replies_waiting_for_the_store_reach_a_half_closed_client() {
    let store = Arc::new(HeldStore::new());
    let server = Serving::start(store.clone(), Some(1));

    // One ADD, the connection's last request, waiting for the disk when
    // the end of the stream is read; and three pipelined, the later ones
    // held behind the first.
    let mut one = server.connect();
    one.write_all(&add(1, b"alone", b"data")).unwrap();
    one.shutdown(std::net::Shutdown::Write).unwrap();
    let mut a = server.connect();
    let mut pipelined = add(1, b"first", b"data");
    pipelined.extend(add(2, b"second", b"data"));
    pipelined.extend(frame(3, Command::Have, b"first"));
    a.write_all(&pipelined).unwrap();
    a.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(
        quiet(&mut one),
        "the ADD was answered before the disk had it"
    );
    store.release();
    let got = replies(&mut one, 1);
    assert_eq!((got[0].uid, got[0].payload.as_slice()), (1, &[0x00][..]));
    let got = replies(&mut a, 3);
    let answered: Vec<(u32, Vec<u8>)> = got.iter().map(|m| (m.uid, m.payload.clone())).collect();
    assert_eq!(
        answered,
        [(1, vec![0x00]), (2, vec![0x00]), (3, vec![0x00])]
    );
    // Then the server ends both connections.
    for s in [&mut one, &mut a] {
        s.set_read_timeout(Some(IO_LIMIT)).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).expect("closed within the bound");
        assert!(rest.is_empty(), "nothing more than the replies");
    }

    server.stop();
}

/// The same through a real dc_server under `-sync always`, stopped while
/// the client sends its last ADD and closes its side, so that the server
/// reads the request and the end of the stream in one go.
#[test]
fn an_add_waiting_for_the_disk_is_answered_after_the_end_of_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let server = DcServer::builder()
        .store(&dir.path().join("store"))
        .args(&["-sync", "always"])
        .start();
    let mut s = UnixStream::connect(server.socket()).unwrap();
    // Accepted and registered before the pause.
    s.write_all(&frame(1, Command::Have, b"sid")).unwrap();
    assert_eq!(replies(&mut s, 1)[0].payload, [0x01], "not there yet");
    server.pause();
    s.write_all(&add(2, b"sid", b"data")).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    server.resume();
    let got = replies(&mut s, 1);
    assert_eq!((got[0].uid, got[0].payload.as_slice()), (2, &[0x00][..]));
}

#[test]
fn a_remove_waits_for_the_disk_and_a_miss_does_not() {
    let store = Arc::new(HeldStore::new());
    store.memory.add(0, 60_000, b"gone", b"data").unwrap();
    let server = Serving::start(store.clone(), None);
    let mut s = server.connect();
    // Nothing to remove: answered at once.
    s.write_all(&frame(1, Command::Remove, b"never")).unwrap();
    let got = replies(&mut s, 1);
    assert_eq!((got[0].uid, got[0].payload.as_slice()), (1, &[0x01][..]));
    // A removal is answered once it is on disk, though memory has it.
    s.write_all(&frame(2, Command::Remove, b"gone")).unwrap();
    assert!(
        quiet(&mut s),
        "the REMOVE was answered before the disk had it"
    );
    let mut other = server.connect();
    other.write_all(&frame(3, Command::Have, b"gone")).unwrap();
    assert_eq!(replies(&mut other, 1)[0].payload, [0x01], "already gone");
    store.release();
    let got = replies(&mut s, 1);
    assert_eq!((got[0].uid, got[0].payload.as_slice()), (2, &[0x00][..]));
    server.stop();
}

#[test]
fn pipelined_requests_are_answered_in_order_in_one_go() {
    let server = Serving::start(Arc::new(MemoryStore::new(1000)), None);
    let mut s = server.connect();
    let mut batch = Vec::new();
    for i in 0..200u32 {
        let id = format!("id-{i}").into_bytes();
        batch.extend(add(4 * i, &id, &vec![i as u8; 1000]));
        batch.extend(frame(4 * i + 1, Command::Get, &id));
        batch.extend(frame(4 * i + 2, Command::Remove, &id));
        batch.extend(frame(4 * i + 3, Command::Have, &id));
    }
    // More than the socket holds: the server must read while it writes.
    let writer = {
        let mut s = s.try_clone().unwrap();
        thread::spawn(move || s.write_all(&batch))
    };
    let got = replies(&mut s, 800);
    writer.join().unwrap().unwrap();
    for (n, m) in got.iter().enumerate() {
        let i = (n / 4) as u8;
        let want: Vec<u8> = match n % 4 {
            0 => vec![0],
            1 => vec![i; 1000],
            2 => vec![0],
            _ => vec![1],
        };
        assert_eq!(m.uid, n as u32, "reply {n} out of order");
        assert_eq!(m.payload, want, "reply {n}");
    }
    server.stop();
}
