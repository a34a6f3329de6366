//! `contrib/bench/chart.awk`, which `make bench` runs on its report: one
//! line per server and way of driving the clients, a point per number of
//! connections, in both the throughput and the latency panel, placed by
//! the figures; a report without such rows gives a chart that says so.

mod common;
mod require;

use common::run_tool;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const REPORT: &str = "\
# distcache benchmark

| # | case | server | ops/s | floor ops/s | ratio | p50 / p99 / p999 µs | target |
|---|---|---|---|---|---|---|---|
| 1 | GET hit, 512 sessions, same CPU | ours | 93.0k (90.0k–95.0k) | 105.5k (100.0k–106.0k) | 0.88 | | met |
| 4 | 4 clients (threads of the library), 80/15/5 GET/ADD/REMOVE on 100000 sessions | ours | 100.0k (99.0k–101.0k) | | | 20 / 100 / 200 | met |
| 4 | 64 clients (threads of the library), 80/15/5 GET/ADD/REMOVE on 100000 sessions | ours | 50.0k (49.0k–51.0k) | | | 400 / 1000 / 3000 | |
| 4 | 4 clients (connections of one event loop), 80/15/5 GET/ADD/REMOVE on 100000 sessions | ours | 25.0k (24.0k–26.0k) | | | 30 / 10000 / 20000 | |
| 4 | 4 clients (threads of the library), 80/15/5 GET/ADD/REMOVE on 100000 sessions | original | 5.0k (4.0k–6.0k) | | | 700 / 1000 / 2000 | |
";

fn chart(report: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("report.md");
    std::fs::write(&path, report).expect("report");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/bench/chart.awk");
    let run = run_tool(
        Command::new(require::tool("awk", "mawk"))
            .arg("-f")
            .arg(script)
            .arg(&path),
        Duration::from_secs(30),
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.starts_with("<svg ") && run.stdout.ends_with("</svg>\n"));
    run.stdout
}

/// The points of each polyline: (series, [(x, y)]).
fn lines(svg: &str) -> Vec<(String, Vec<(f64, f64)>)> {
    svg.lines()
        .filter(|l| l.starts_with("<polyline"))
        .map(|l| {
            let attr = |name: &str| {
                let start = l.find(&format!("{name}=\"")).expect(name) + name.len() + 2;
                l[start..start + l[start..].find('"').expect("quote")].to_string()
            };
            let points = attr("points")
                .split_whitespace()
                .map(|p| {
                    let (x, y) = p.split_once(',').expect("x,y");
                    (x.parse().expect("x"), y.parse().expect("y"))
                })
                .collect();
            (attr("data-series"), points)
        })
        .collect()
}

#[test]
fn one_line_per_series_in_each_panel_placed_by_the_figures() {
    let svg = chart(REPORT);
    let got = lines(&svg);
    let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
    let series = [
        "scenario 4, ours, threads of the library",
        "scenario 4, ours, connections of one event loop",
        "scenario 4, original, threads of the library",
    ];
    // Throughput panel, then latency panel.
    assert_eq!(names, [&series[..], &series[..]].concat(), "{svg}");
    let counts: Vec<usize> = got.iter().map(|(_, p)| p.len()).collect();
    assert_eq!(counts, [2, 1, 1, 2, 1, 1]);
    // Throughput: 100k at the top, half of it half-way down, 5k near the
    // axis; higher is more.
    let threads = &got[0].1;
    let (top, half) = (threads[0].1, threads[1].1);
    let axis = top + 2.0 * (half - top);
    assert!(half > top && (got[2].1[0].1 - (axis - (axis - top) * 0.05)).abs() < 0.5);
    // Latency (log scale): 100 µs and 1000 µs one decade apart, 10000 µs
    // a decade further up.
    let decade = got[3].1[0].1 - got[3].1[1].1;
    assert!(decade > 0.0);
    assert!(
        (got[4].1[0].1 - (got[3].1[1].1 - decade)).abs() < 0.5,
        "{svg}"
    );
    assert!(svg.contains(">4</text>") && svg.contains(">64</text>"));
}

#[test]
fn a_report_without_such_rows_says_so() {
    let svg = chart(&REPORT.lines().take(5).collect::<Vec<_>>().join("\n"));
    assert!(lines(&svg).is_empty());
    assert!(svg.contains("No row of the report"), "{svg}");
}
