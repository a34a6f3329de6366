//! What dc_server logs of itself: where it serves, a `-maxconns` the
//! open-file limit cannot hold, and the last lines on a clean stop.

use distcache::internals::daemon::{log, Level};
use distcache::internals::server::RESERVED_FDS;
use distcache::Address;
use distcache::{Server, ServerTls, TlsAddress};

/// The addresses listened on, TCP ports as bound (port 0 gets one).
pub(crate) fn describe_listeners(server: &Server, tls: &[usize]) -> String {
    let names: Vec<String> = server
        .listeners()
        .enumerate()
        .map(|(i, l)| match (l.socket_path(), l.tcp_addr()) {
            (Some(path), _) => Address::Unix(path.into()).to_string(),
            (None, Some(addr)) if tls.contains(&i) => {
                let host = addr.ip().to_string();
                let a = TlsAddress {
                    address: Address::Tcp {
                        addr,
                        connectable: true,
                    },
                    host: Some(host),
                };
                a.to_string()
            }
            (None, Some(addr)) => Address::Tcp {
                addr,
                connectable: true,
            }
            .to_string(),
            (None, None) => "?".into(),
        })
        .collect();
    names.join(", ")
}

/// Says so when the open-file limit cannot hold `max_conns` connections:
/// those beyond it are then refused for lack of descriptors.
pub(crate) fn warn_if_too_few_descriptors(limit: u64, max_conns: usize) {
    let wanted = (max_conns as u64).saturating_add(RESERVED_FDS);
    if limit < wanted {
        log(
            Level::Warning,
            &format!(
                "the open-file limit ({limit}) is below -maxconns ({max_conns}) + {RESERVED_FDS}: \
                 connections will be refused for lack of descriptors before -maxconns is reached"
            ),
        );
    }
}

/// The line logged last on a clean stop: what the server did in its life
/// and what its store dropped on its own.
pub(crate) fn final_counts(server: &Server) -> String {
    let sessions = server.store().len(server.clock().now());
    let drops = server.store().drop_counts();
    format!(
        "Info, stopped: operations {}, connections {}, sessions {sessions}, evicted {}, expired {}",
        server.stats().operations(),
        server.stats().connections(),
        drops.evicted,
        drops.expired
    )
}

/// The line logged after the last on a clean stop with TLS listeners.
pub(crate) fn tls_counts(tls: &ServerTls) -> String {
    let c = tls.counts();
    format!(
        "Info, TLS handshakes: full {}, resumed {}, failed {}",
        c.full, c.resumed, c.failed
    )
}
