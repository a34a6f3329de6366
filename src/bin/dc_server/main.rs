//! dc_server: the distcache session cache server.

mod options;
mod redis_args;
mod report;
mod store;
mod tls;

use distcache::internals::cli::{options_or_exit, Args};
use distcache::internals::daemon::{log, Daemon, Level};
use distcache::internals::nal::Listener;
use distcache::internals::server::default_max_conns;
use distcache::internals::tls::ReloadSignal;
use distcache::{Address, Server};
use options::{parse, usage, Config, DEFAULT_ADMIN_PERMS};
use report::{describe_listeners, final_counts, tls_counts, warn_if_too_few_descriptors};
use std::process::ExitCode;
use std::sync::Arc;
use store::{open_store, serving_store, STORE_CLOSE_LIMIT};
use tls::serve_tls;

fn main() -> ExitCode {
    let config = match options_or_exit("dc_server", usage(), parse(Args::from_env())) {
        Ok(config) => *config,
        Err(code) => return code,
    };
    match serve(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log(Level::Error, &e);
            ExitCode::from(1)
        }
    }
}

/// Runs the server until a stop signal; `Err` is the message to log.
fn serve(config: Config) -> Result<(), String> {
    let in_foreground = !config.daemon.daemon;
    let user = config.daemon.user.clone();
    // SIGHUP reloads the TLS files; it is blocked before any thread starts.
    let reload = match &config.tls {
        Some(_) => Some(ReloadSignal::block().map_err(|e| format!("can't block SIGHUP: {e}"))?),
        None => None,
    };
    // With -daemon the parent waits in here until the child is ready.
    let mut daemon =
        Daemon::start(c"dc_server", config.daemon.clone()).map_err(|e| e.to_string())?;
    // The store's lock comes before anything else: a second server on the
    // same directory stops here.
    let durable = match &config.store {
        Some(dir) => Some(open_store(dir, &config, user.as_deref())?),
        None => None,
    };
    // One descriptor per client connection: allow as many as the system
    // lets this process have. Failing to raise it only lowers the ceiling.
    let nofile = distcache::internals::nal::raise_fd_limit()
        .unwrap_or_else(|_| distcache::internals::nal::fd_limit());
    let max_conns = match config.max_conns {
        Some(max) => {
            warn_if_too_few_descriptors(nofile, max);
            max
        }
        None => default_max_conns(nofile),
    };
    let store = serving_store(&config, durable.as_ref())?;
    let server =
        Server::bind_with_store(&config.server.listen, store).map_err(|e| e.to_string())?;
    let tls = match &config.tls {
        Some((options, listeners)) => Some(serve_tls(&server, options, listeners)?),
        None => None,
    };
    server.set_min_expiry(config.min_expiry);
    server.set_max_conns(max_conns);
    server.set_threads(config.threads);
    server.set_idle_timeout(config.idle);
    server.on_notice(|n| {
        let level = if n.is_problem() {
            Level::Warning
        } else {
            Level::Notice
        };
        log(level, &n.to_string());
    });
    // Bound before -user takes the privileges away, as the listeners.
    let bind = |what: &str, addr: &Address| {
        Listener::bind(addr)
            .map(Arc::new)
            .map_err(|e| format!("can't listen on {what} '{addr}': {e}"))
    };
    let admin = match &config.inspect.admin {
        Some(path) => Some(bind("the admin socket", &Address::Unix(path.clone()))?),
        None => None,
    };
    let metrics = match &config.inspect.metrics {
        Some(addr) => Some(bind("the metrics address", addr)?),
        None => None,
    };
    if let Some(path) = admin.as_ref().and_then(|l| l.socket_path()) {
        let mode = config.inspect.admin_perms.unwrap_or(DEFAULT_ADMIN_PERMS);
        daemon
            .secure_socket(path, mode, "adminperms")
            .map_err(|e| e.to_string())?;
    }
    daemon
        .secure(&server.socket_paths())
        .map_err(|e| e.to_string())?;
    if in_foreground || config.progress.is_some() {
        let every = config.progress.unwrap_or(0);
        server
            .spawn_progress(every, |line| log(Level::Info, line))
            .map_err(|e| e.to_string())?;
    }
    if let Some(l) = &admin {
        server
            .spawn_admin(l.clone(), |line| log(Level::Warning, line))
            .map_err(|e| e.to_string())?;
    }
    if let Some(l) = &metrics {
        server.spawn_metrics(l.clone()).map_err(|e| e.to_string())?;
    }
    if let (Some(tls), Some(reload)) = (&tls, reload) {
        let tls = tls.clone();
        reload
            .spawn_waiter(move || match tls.reload() {
                Ok(()) => log(Level::Notice, "SIGHUP: TLS certificates and keys reloaded"),
                Err(e) => log(
                    Level::Error,
                    &format!("SIGHUP: TLS files not reloaded, the old ones stay in use: {e}"),
                ),
            })
            .map_err(|e| e.to_string())?;
    }
    let stop = server.stop_handle();
    daemon
        .ready(move || stop.stop())
        .map_err(|e| e.to_string())?;
    log(
        Level::Notice,
        &format!(
            "serving on {} ({} threads, at most {} connections)",
            describe_listeners(&server, config.tls.as_ref().map_or(&[], |t| &t.1)),
            server.threads(),
            server.max_conns()
        ),
    );
    if let Some(path) = admin.as_ref().and_then(|l| l.socket_path()) {
        log(
            Level::Notice,
            &format!("admin socket at {}", Address::Unix(path.into())),
        );
    }
    if let Some(addr) = metrics.as_ref().and_then(|l| l.tcp_addr()) {
        log(Level::Notice, &format!("metrics at http://{addr}/metrics"));
    }
    server.run().map_err(|e| e.to_string())?;
    let mut failed = server.remove_socket_files();
    // The admin thread ends within a moment of the stop; its socket file
    // goes now, as the listeners' do.
    if let Some(l) = &admin {
        if let Err(e) = l.remove_socket_file() {
            failed.push((
                l.socket_path().unwrap_or(std::path::Path::new("")).into(),
                e,
            ));
        }
    }
    for (path, e) in failed {
        log(
            Level::Warning,
            &format!("can't remove socket file '{}': {e}", path.display()),
        );
    }
    if let Some(store) = &durable {
        if !store.close(STORE_CLOSE_LIMIT) {
            log(
                Level::Warning,
                "store: the last changes were not written within 30 s; they may be lost",
            );
        }
    }
    daemon.finish();
    log(Level::Notice, "stopped");
    log(Level::Info, &final_counts(&server));
    if let Some(tls) = &tls {
        log(Level::Info, &tls_counts(tls));
    }
    Ok(())
}
