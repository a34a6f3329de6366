//! The connections to Redis and the commands each operation becomes.
//!
//! A single server is reached through a [`ConnectionManager`], a cluster
//! through the client's cluster connection (slot map, `MOVED`/`ASK`,
//! reconnection); both multiplex every request of the gateway over one
//! connection per node, pipelined. A REMOVE that waits for a replica
//! (`WAIT`, which holds up the connection it is sent on) goes over links
//! of its own, so that the other requests never queue behind it: a few
//! of them, each REMOVE on the one with the fewest in flight, so that
//! one slow `WAIT` does not hold up the REMOVEs begun meanwhile.

use super::job::{hit, Job};
use super::options::{RedisOptions, Seed};
use super::tls::{install_provider, StoreTls};
use super::RedisError;
use crate::cache::Answer;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{
    AsyncConnectionConfig, Client, ClientTlsConfig, Cmd, ConnectionAddr, ConnectionInfo,
    FromRedisValue, IntoConnectionInfo, Pipeline, RedisConnectionInfo, RedisResult,
    TlsCertificates, Value,
};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A link to Redis that many requests share.
#[derive(Clone)]
pub(super) enum Link {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Link {
    pub(super) async fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> RedisResult<T> {
        match self {
            Link::Single(c) => cmd.query_async(c).await,
            Link::Cluster(c) => cmd.query_async(c).await,
        }
    }

    pub(super) async fn pipe<T: FromRedisValue>(&mut self, p: &Pipeline) -> RedisResult<T> {
        match self {
            Link::Single(c) => p.query_async(c).await,
            Link::Cluster(c) => p.query_async(c).await,
        }
    }

    /// `cmd` sent to the node at `node` (a cluster's master), or to the
    /// one server.
    pub(super) async fn query_at<T: FromRedisValue>(
        &mut self,
        cmd: &Cmd,
        node: Option<&(String, u16)>,
    ) -> RedisResult<T> {
        match (self, node) {
            (Link::Cluster(c), Some((host, port))) => {
                use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.clone(),
                    port: *port,
                });
                let value = c.route_command(cmd.clone(), route).await?;
                T::from_redis_value(value).map_err(Into::into)
            }
            (link, _) => link.query(cmd).await,
        }
    }
}

/// How many links REMOVEs and TAKEs that wait for a replica share.
const REMOVAL_LINKS: usize = 8;

/// The links of REMOVEs and TAKEs that wait for a replica. Redis reads
/// nothing more from a connection while a `WAIT` sent on it waits, so a
/// removal goes to the link with the fewest removals in flight, and a
/// link counts as busy until Redis has answered (or the link has given
/// up), even when the removal's caller stopped waiting first.
#[derive(Clone)]
pub(super) struct Removals(Arc<RemovalLinks>);

struct RemovalLinks {
    links: Vec<Link>,
    in_flight: Vec<AtomicUsize>,
    /// Where the search for the least busy link begins, turn by turn.
    next: AtomicUsize,
}

/// A removal in flight on link `.1`, counted until dropped.
struct Busy(Arc<RemovalLinks>, usize);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight[self.1].fetch_sub(1, Ordering::Relaxed);
    }
}

impl Removals {
    fn new(links: Vec<Link>) -> Removals {
        let in_flight = links.iter().map(|_| AtomicUsize::new(0)).collect();
        Removals(Arc::new(RemovalLinks {
            links,
            in_flight,
            next: AtomicUsize::new(0),
        }))
    }

    /// Sends `p` (a write followed by its `WAIT`) on the least busy link.
    async fn pipe<T: FromRedisValue + Send + 'static>(&self, p: Pipeline) -> RedisResult<T> {
        let all = &self.0;
        let n = all.links.len();
        let start = all.next.fetch_add(1, Ordering::Relaxed);
        let Some(i) = (0..n)
            .map(|k| (start + k) % n)
            .min_by_key(|&i| all.in_flight[i].load(Ordering::Relaxed))
        else {
            return Err(std::io::Error::other("no link for removals").into());
        };
        all.in_flight[i].fetch_add(1, Ordering::Relaxed);
        let busy = Busy(all.clone(), i);
        let mut link = all.links[i].clone();
        // Its own task: dropped by a caller that stopped waiting, it would
        // leave the link counted free while Redis still waits on it.
        let sent = tokio::spawn(async move {
            let _busy = busy;
            link.pipe::<T>(&p).await
        });
        sent.await.map_err(std::io::Error::other)?
    }
}

/// What Redis turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One server (with or without replicas).
    Single,
    /// A Redis Cluster.
    Cluster,
}

/// The gateway's links to Redis.
#[derive(Clone)]
pub(super) struct Backend {
    pub(super) kind: Kind,
    /// The seed that answered, which a single server is.
    pub(super) seed: Seed,
    /// Every request but a REMOVE that waits for a replica.
    pub(super) main: Link,
    /// REMOVEs and TAKEs that wait for a replica.
    removes: Removals,
    remove_sync: bool,
    timeout: Duration,
}

fn info_for(seed: &Seed, options: &RedisOptions) -> RedisResult<ConnectionInfo> {
    let mut redis = RedisConnectionInfo::default();
    if let Some(user) = &options.user {
        redis = redis.set_username(user);
    }
    if let Some(password) = &options.password {
        redis = redis.set_password(password);
    }
    let addr = match options.tls {
        None => ConnectionAddr::Tcp(seed.host.clone(), seed.port),
        Some(_) => ConnectionAddr::TcpTls {
            host: seed.host.clone(),
            port: seed.port,
            insecure: false,
            tls_params: None,
        },
    };
    Ok(addr.into_connection_info()?.set_redis_settings(redis))
}

/// What the Redis client is given for TLS: the CA that the nodes'
/// certificates must chain to (their host name or IP address is checked
/// too), and the certificate the gateway presents.
fn certificates(tls: &StoreTls) -> TlsCertificates {
    TlsCertificates {
        client_tls: tls.identity.as_ref().map(|id| ClientTlsConfig {
            client_cert: id.cert.clone(),
            client_key: id.key.clone(),
        }),
        root_cert: tls.ca.clone(),
    }
}

/// A client for the one node `seed`, over TLS with `rediss://`.
fn client_for(seed: &Seed, options: &RedisOptions) -> RedisResult<Client> {
    let info = info_for(seed, options)?;
    match &options.tls {
        None => Client::open(info),
        Some(tls) => Client::build_with_tls(info, certificates(tls)),
    }
}

/// `e`, with what it most likely means when TLS is on one side only or a
/// certificate is refused.
fn explained(e: &redis::RedisError, tls: bool) -> String {
    let text = e.to_string();
    let hint = if tls {
        if text.contains("InvalidContentType") || text.contains("corrupt message") {
            " (the node does not speak TLS on that port: use redis:// for a plaintext port, \
             or the node's tls-port)"
        } else if text.contains("CertificateRequired") || text.contains("certificate required") {
            " (the node asks for a client certificate: give -store-tls-cert and -store-tls-key)"
        } else if text.contains("not valid for name") {
            " (the node's certificate does not name the host or IP address it was reached by; \
             a cluster's nodes are reached by the IP addresses they announce)"
        } else if text.contains("UnknownIssuer") {
            " (the node's certificate is not one that -store-tls-ca vouches for)"
        } else {
            ""
        }
    } else if e.is_connection_dropped() && !e.is_connection_refusal() {
        // A TLS port drops a link whose first bytes are no handshake.
        " (if the node's port speaks TLS, use rediss:// with -store-tls-ca)"
    } else {
        ""
    };
    format!("{text}{hint}")
}

/// Whether the `INFO cluster` text says cluster mode.
fn says_cluster(info: &str) -> bool {
    info.lines().any(|l| l.trim() == "cluster_enabled:1")
}

/// The number of replicas an `INFO replication` text says are connected.
fn connected_replicas(info: &str) -> Option<u32> {
    info.lines()
        .find_map(|l| l.trim().strip_prefix("connected_slaves:"))
        .and_then(|n| n.parse().ok())
}

/// Asks `seed` what it is; within the timeout.
async fn probe(seed: &Seed, options: &RedisOptions) -> Result<(Kind, Option<u32>), String> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(options.timeout))
        .set_response_timeout(Some(options.timeout));
    let asked = async {
        let client = client_for(seed, options)?;
        let mut c = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let cluster: String = redis::cmd("INFO")
            .arg("cluster")
            .query_async(&mut c)
            .await?;
        let replication: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut c)
            .await?;
        let kind = if says_cluster(&cluster) {
            Kind::Cluster
        } else {
            Kind::Single
        };
        RedisResult::Ok((kind, connected_replicas(&replication)))
    };
    let silent = || {
        let hint = match options.tls {
            // A plaintext port takes the TLS handshake for a command that
            // has not ended yet, and says nothing.
            Some(_) => {
                " (a plaintext port does not answer the TLS handshake: rediss:// needs \
                        the node's tls-port)"
            }
            None => "",
        };
        format!("no answer within {} ms{hint}", options.timeout.as_millis())
    };
    match tokio::time::timeout(options.timeout, asked).await {
        Ok(Ok(found)) => Ok(found),
        Ok(Err(e)) if e.is_timeout() => Err(silent()),
        Ok(Err(e)) => Err(explained(&e, options.tls.is_some())),
        Err(_) => Err(silent()),
    }
}

/// Whether `why`, a probe's failure, is TLS refusing the link (a
/// certificate, or TLS on one side only): a setting to fix, not an outage.
fn refused_by_tls(why: &str) -> bool {
    [
        "invalid peer certificate",
        "received fatal alert",
        "corrupt message",
        "InvalidContentType",
    ]
    .iter()
    .any(|s| why.contains(s))
}

/// The nodes in a `CLUSTER NODES` text, but those marked failed or without
/// an address.
fn announced_nodes(text: &str) -> Vec<Seed> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_id, addr, flags) = (fields.next()?, fields.next()?, fields.next()?);
            let gone = ["fail", "noaddr", "handshake"];
            if flags.split(',').any(|f| gone.contains(&f)) {
                return None;
            }
            // ip:port@bus-port[,hostname]
            let (host, port) = addr.split(['@', ',']).next()?.rsplit_once(':')?;
            let port = port.parse::<u16>().ok().filter(|&p| p > 0)?;
            (!host.is_empty()).then(|| Seed {
                host: host.to_string(),
                port,
            })
        })
        .collect()
}

/// With TLS, connects to every node the cluster announces, so that a
/// certificate that is refused either way (say, one that does not name the
/// IP address the node announces) stops the gateway now, naming the node,
/// rather than failing every request for that node's slots. A node that
/// does not answer is left to the cluster's failover.
async fn check_nodes(main: &mut Link, options: &RedisOptions) -> Result<(), RedisError> {
    let text: String = bounded(
        options.timeout,
        main.query(redis::cmd("CLUSTER").arg("NODES")),
    )
    .await
    .map_err(|e| RedisError::Connect(format!("the cluster's nodes (CLUSTER NODES): {e}")))?;
    let mut probes = tokio::task::JoinSet::new();
    for node in announced_nodes(&text) {
        let options = options.clone();
        probes.spawn(async move {
            let found = probe(&node, &options).await;
            (node, found)
        });
    }
    while let Some(done) = probes.join_next().await {
        if let Ok((node, Err(why))) = done {
            if refused_by_tls(&why) {
                return Err(RedisError::Connect(format!(
                    "{node} (a node of the cluster): {why}"
                )));
            }
        }
    }
    Ok(())
}

/// `fut` within `timeout`; its error, or the timeout, as text.
pub(super) async fn bounded<T>(
    timeout: Duration,
    fut: impl std::future::Future<Output = RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
    }
}

impl Backend {
    /// Finds out from the seeds what Redis is and connects to it; the
    /// second value is a note worth logging.
    pub(super) async fn connect(
        options: &RedisOptions,
    ) -> Result<(Backend, Option<String>), RedisError> {
        if options.tls.is_some() {
            install_provider();
        }
        let cleartext: Vec<String> = options
            .cleartext_seeds()
            .iter()
            .map(|s| s.to_string())
            .collect();
        if !cleartext.is_empty() {
            options.log.warn(&format!(
                "store: sessions (with their master secrets) cross the network in the clear \
                 to {}: use rediss:// with -store-tls-ca, -store-tls-cert and -store-tls-key",
                cleartext.join(",")
            ));
        }
        let mut failures = Vec::new();
        let mut found = None;
        for seed in &options.seeds {
            match probe(seed, options).await {
                Ok(what) => {
                    found = Some((seed, what));
                    break;
                }
                Err(e) => failures.push(format!("{seed}: {e}")),
            }
        }
        let Some((seed, (kind, replicas))) = found else {
            return Err(RedisError::Unreachable(failures.join("; ")));
        };
        // Without remove-sync no command waits for a replica, so no
        // removal needs a link of its own.
        let removal_links = if options.remove_sync {
            REMOVAL_LINKS
        } else {
            0
        };
        let within = |what: &str, e: String| RedisError::Connect(format!("{seed} ({what}): {e}"));
        let (main, removes) = match kind {
            Kind::Single => {
                let client =
                    client_for(seed, options).map_err(|e| within("address", e.to_string()))?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(options.timeout))
                    .set_response_timeout(Some(options.timeout))
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                let main = bounded(
                    options.timeout,
                    ConnectionManager::new_with_config(client.clone(), config.clone()),
                )
                .await
                .map_err(|e| within("connecting", e))?;
                let mut removes = Vec::with_capacity(removal_links);
                for _ in 0..removal_links {
                    let removal = bounded(
                        options.timeout,
                        ConnectionManager::new_with_config(client.clone(), config.clone()),
                    )
                    .await
                    .map_err(|e| within("connecting", e))?;
                    removes.push(Link::Single(removal));
                }
                (Link::Single(main), removes)
            }
            Kind::Cluster => {
                let mut nodes = Vec::new();
                for s in &options.seeds {
                    nodes.push(info_for(s, options).map_err(|e| within("address", e.to_string()))?);
                }
                let mut builder = ClusterClient::builder(nodes)
                    .connection_timeout(options.timeout)
                    .response_timeout(options.timeout)
                    .retries(6)
                    .min_retry_wait(10)
                    .max_retry_wait(200);
                if let Some(user) = &options.user {
                    builder = builder.username(user);
                }
                if let Some(password) = &options.password {
                    builder = builder.password(password);
                }
                if let Some(tls) = &options.tls {
                    builder = builder.certs(certificates(tls));
                }
                let client = builder
                    .build()
                    .map_err(|e| within("cluster", e.to_string()))?;
                let main = bounded(options.timeout, client.get_async_connection())
                    .await
                    .map_err(|e| within("cluster", e))?;
                let mut main = Link::Cluster(main);
                // Before the removal links, which would each meet a
                // refused node's certificate again.
                if options.tls.is_some() {
                    check_nodes(&mut main, options).await?;
                }
                let mut removes = Vec::with_capacity(removal_links);
                for _ in 0..removal_links {
                    let removal = bounded(options.timeout, client.get_async_connection())
                        .await
                        .map_err(|e| within("cluster", e))?;
                    removes.push(Link::Cluster(removal));
                }
                (main, removes)
            }
        };
        let note = match (kind, replicas, options.remove_sync) {
            (Kind::Single, Some(0), true) => Some(format!(
                "{seed} has no replica: every REMOVE will report failure \
                 (-store-remove-sync off answers it once the server has it)"
            )),
            _ => None,
        };
        Ok((
            Backend {
                kind,
                seed: seed.clone(),
                main,
                removes: Removals::new(removes),
                remove_sync: options.remove_sync,
                timeout: options.timeout,
            },
            note,
        ))
    }

    /// Carries `job` out; the answer and a hit's data, or why Redis could
    /// not answer. The caller bounds the time.
    pub(super) async fn run(&mut self, job: Job) -> RedisResult<(Answer, Vec<u8>)> {
        // WAIT's own bound: what is left of ours, less a margin for the
        // reply to come back (never 0, which would wait for ever).
        let wait_ms = (self.timeout.as_millis() as u64 * 3 / 4).max(1);
        if let Some(cmd) = job.command(self.remove_sync) {
            let value: Value = self.main.query(&cmd).await?;
            return job.answer(value);
        }
        Ok(match job {
            Job::Remove(key) => {
                let mut p = redis::pipe();
                p.cmd("DEL").arg(&key).cmd("WAIT").arg(1).arg(wait_ms);
                let (n, acked): (i64, i64) = self.removes.pipe(p).await?;
                match (n, acked) {
                    (0, _) => (Answer::Miss, Vec::new()),
                    (_, 0) => (Answer::Failed, Vec::new()),
                    _ => (Answer::Ok, Vec::new()),
                }
            }
            Job::Take(key) => {
                let mut p = redis::pipe();
                p.cmd("GETDEL").arg(&key).cmd("WAIT").arg(1).arg(wait_ms);
                let (data, acked): (Option<Vec<u8>>, i64) = self.removes.pipe(p).await?;
                match (data, acked) {
                    (None, _) => (Answer::Miss, Vec::new()),
                    (Some(_), 0) => (Answer::Failed, Vec::new()),
                    (data, _) => hit(data),
                }
            }
            Job::Count => {
                let n: i64 = self.main.query(&redis::cmd("DBSIZE")).await?;
                (Answer::Ok, n.to_le_bytes().to_vec())
            }
            // Every other job is one command, sent above.
            _ => (Answer::Failed, Vec::new()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_lines() {
        assert!(says_cluster("# Cluster\r\ncluster_enabled:1\r\n"));
        assert!(!says_cluster("# Cluster\r\ncluster_enabled:0\r\n"));
        assert_eq!(
            connected_replicas("role:master\r\nconnected_slaves:2\r\n"),
            Some(2)
        );
        assert_eq!(connected_replicas("role:master\r\n"), None);
    }

    #[test]
    fn nodes_of_a_cluster() {
        let text = "a1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460\n\
                    b2 10.0.0.2:7001@17001,node-b master - 0 0 2 connected 5461-10922\n\
                    c3 :0@0 master,noaddr - 0 0 3 disconnected\n\
                    d4 10.0.0.4:7003@17003 slave,fail a1 0 0 1 disconnected\n\
                    e5 ::1:7004@17004 slave b2 0 0 2 connected\n";
        let nodes: Vec<String> = announced_nodes(text)
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(nodes, ["127.0.0.1:7000", "10.0.0.2:7001", "::1:7004"]);
        assert!(refused_by_tls("invalid peer certificate: UnknownIssuer"));
        assert!(!refused_by_tls("Connection refused (os error 111)"));
    }
}
