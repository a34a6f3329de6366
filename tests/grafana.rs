//! `contrib/grafana/distcache.json` asks only for metrics a live dc_server
//! serves: every `distcache_*` name in the dashboard's queries is on the
//! `/metrics` page of a dc_server started for the test (scraped over
//! loopback), and the dashboard uses every metric family the page has.

mod dc_server;

use dc_server::DcServer;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(10);

/// The `distcache_*` words in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("distcache_") {
        let word: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + word.len()..];
        names.insert(word);
    }
    names
}

fn scrape(address: &str) -> String {
    let mut s = TcpStream::connect(address).expect("connect to the metrics page");
    s.set_read_timeout(Some(LIMIT)).expect("timeout");
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("reply");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    reply
}

#[test]
fn the_dashboard_uses_the_metrics_dc_server_serves() {
    let dashboard = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/grafana/distcache.json"),
    )
    .expect("the dashboard");
    let wanted = metric_names(&dashboard);
    assert!(wanted.len() >= 10, "{wanted:?}");

    let mut server = DcServer::builder()
        .args(&["-metrics", "IP:127.0.0.1:0"])
        .start();
    let text = server.wait_stderr("/metrics");
    let address = text
        .split("metrics at http://")
        .nth(1)
        .and_then(|rest| Some(rest[..rest.find("/metrics")?].to_string()))
        .unwrap_or_else(|| panic!("dc_server did not log its metrics address: {text}"));
    let page = scrape(&address);
    server.kill();

    let served = metric_names(&page);
    let missing: Vec<&String> = wanted.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "the dashboard uses metrics the server does not serve: {missing:?}"
    );
    // Each family (the name of a # TYPE line) is shown somewhere.
    let families: BTreeSet<String> = page
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect();
    let unused: Vec<&String> = families
        .iter()
        .filter(|f| !wanted.iter().any(|w| w.starts_with(f.as_str())))
        .collect();
    assert!(unused.is_empty(), "the dashboard leaves out {unused:?}");
}
