//! What a program holds: a bound [`Proxy`], and the [`StopHandle`] that
//! stops it from another thread.

use super::{Engine, READ_CHUNK};
use crate::nal::Listener;
use crate::proxy::backend::Backend;
use crate::proxy::{Notice, ProxyConfig, ProxyError};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub(super) type NoticeFn = Box<dyn FnMut(&Notice) + Send>;

/// A bound proxy, ready to [`Proxy::run`].
pub struct Proxy {
    config: ProxyConfig,
    listener: Listener,
    stop: Arc<Stop>,
    notice: Option<NoticeFn>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("config", &self.config)
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

/// Stops a running proxy from another thread (a signal handling thread,
/// say).
#[derive(Debug, Clone)]
pub struct StopHandle(Arc<Stop>);

impl StopHandle {
    /// Asks the proxy to stop: it stops accepting, removes its UNIX socket
    /// file, waits at most a second for the replies to the requests it
    /// holds, and [`Proxy::run`] returns.
    pub fn stop(&self) {
        self.0.asked.store(true, Ordering::Release);
        // Wakes the event loop; a full pipe already holds a wake-up.
        let _ = (&self.0.wake_tx).write(&[1]);
    }
}

/// The stop request and the line that wakes the event loop for it.
#[derive(Debug)]
pub(super) struct Stop {
    asked: AtomicBool,
    wake_tx: UnixStream,
    pub(super) wake_rx: UnixStream,
}

impl Stop {
    fn new() -> io::Result<Stop> {
        let (wake_tx, wake_rx) = UnixStream::pair()?;
        wake_tx.set_nonblocking(true)?;
        wake_rx.set_nonblocking(true)?;
        Ok(Stop {
            asked: AtomicBool::new(false),
            wake_tx,
            wake_rx,
        })
    }

    pub(super) fn asked(&self) -> bool {
        self.asked.load(Ordering::Acquire)
    }

    pub(super) fn drain(&self) {
        let mut buf = [0u8; 64];
        while matches!((&self.wake_rx).read(&mut buf), Ok(n) if n > 0) {}
    }
}

impl Proxy {
    /// Checks the configuration and binds the listening address. Does not
    /// contact the server yet: [`Proxy::run`] does, and a server that is
    /// down is not an error (its clients get failures until it is up).
    pub fn bind(config: ProxyConfig) -> Result<Proxy, ProxyError> {
        if !config.server.can_connect() {
            return Err(ProxyError::ServerAddress(config.server.clone()));
        }
        if config.max_clients == 0 || config.max_in_flight == 0 {
            return Err(ProxyError::Config(
                "the client and in-flight limits must be at least 1",
            ));
        }
        if config.retry.is_zero() || config.server_timeout.is_zero() {
            return Err(ProxyError::Config(
                "the retry period and server timeout must be positive",
            ));
        }
        let listen_err = |e| ProxyError::Listen(config.listen.clone(), e);
        let listener = Listener::bind(&config.listen).map_err(listen_err)?;
        listener
            .set_nonblocking(true)
            .map_err(|e| listen_err(e.into()))?;
        let stop = Stop::new().map_err(ProxyError::Poll)?;
        Ok(Proxy {
            config,
            listener,
            stop: Arc::new(stop),
            notice: None,
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    /// The socket file of a UNIX listening address (absolute), for setting
    /// its owner and mode.
    pub fn socket_path(&self) -> Option<&Path> {
        self.listener.socket_path()
    }

    /// A handle that stops [`Proxy::run`].
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle(self.stop.clone())
    }

    /// Reports events worth an operator's attention (the server going up
    /// and down, refused clients) to `f`, called on the proxy's thread.
    pub fn on_notice(&mut self, f: impl FnMut(&Notice) + Send + 'static) {
        self.notice = Some(Box::new(f));
    }

    /// Serves until stopped. On return the listener is closed and its UNIX
    /// socket file removed (if it is still the one this proxy made).
    ///
    /// A request held when the stop comes is still answered if the reply
    /// comes within a second.
    pub fn run(self) -> Result<(), ProxyError> {
        let Proxy {
            config,
            listener,
            stop,
            notice,
        } = self;
        let now = Instant::now();
        let backend = Backend::new(&config, now);
        let mut engine = Engine {
            listener: Some(listener),
            backend,
            clients: Vec::new(),
            free: Vec::new(),
            count: 0,
            queue: VecDeque::new(),
            next_id: 1,
            scratch: vec![0; READ_CHUNK],
            replies: Vec::new(),
            notice,
            server_reported_down: false,
            reported_stalls: 0,
            refused: 0,
            last_report: None,
            accept_paused_until: None,
            stop,
            stopping_since: None,
            config,
        };
        let result = engine.run();
        engine.close_listener();
        result
    }
}
