//! The table `make bench` prints and writes to `target/bench/report.md`.

use crate::matrix::Config;
use std::fmt::Write as _;
use std::path::PathBuf;

/// The figures of several runs of one measurement.
#[derive(Debug, Clone)]
pub struct Figure(Vec<f64>);

impl Figure {
    pub fn new(values: Vec<f64>) -> Figure {
        Figure(values)
    }

    pub fn median(&self) -> f64 {
        let mut v = self.0.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    /// The median as operations per second, with the spread of the runs.
    pub fn show(&self) -> String {
        let lo = self.0.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = self.0.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{} ({}–{})", kops(self.median()), kops(lo), kops(hi))
    }
}

fn kops(x: f64) -> String {
    format!("{:.1}k", x / 1000.0)
}

/// What a row is held to.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// Ours at least this fraction of the floor.
    AtLeast(f64),
    /// At least 1.5 x scenario 1's different-CPU GET figure (512 sessions),
    /// and p99 under 1 ms.
    Concurrency,
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: u8,
    pub case: String,
    /// "ours" or "original".
    pub server: &'static str,
    pub figure: Figure,
    pub floor: Option<Figure>,
    pub target: Option<Target>,
    /// p50, p99, p999 in microseconds.
    pub latency: Option<(f64, f64, f64)>,
    pub note: String,
}

impl Row {
    pub fn new(
        scenario: u8,
        case: String,
        figure: Figure,
        floor: Option<Figure>,
        target: Option<Target>,
    ) -> Row {
        Row {
            scenario,
            case,
            server: "ours",
            figure,
            floor,
            target,
            latency: None,
            note: String::new(),
        }
    }

    /// A row of the original dc_server (driven by the same client).
    pub fn original(scenario: u8, case: String, figure: Figure, floor: Option<Figure>) -> Row {
        Row {
            server: "original",
            ..Row::new(scenario, case, figure, floor, None)
        }
    }

    fn ratio(&self) -> Option<f64> {
        self.floor
            .as_ref()
            .map(|f| self.figure.median() / f.median())
    }
}

pub struct Report {
    rows: Vec<Row>,
    memory: Option<(u64, u64)>,
    /// Markdown of the scenarios with tables of their own.
    sections: Vec<String>,
    header: String,
}

impl Report {
    pub fn new(cfg: &Config) -> Report {
        let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let model = std::fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let header = format!(
            "Machine: {cpus} CPUs ({model}), Linux {}. Each figure is the median of {} runs of {} s \
             (the spread of the runs in brackets), in operations per second; each floor was measured \
             in the same run, alternating with ours.",
            kernel.trim(),
            cfg.runs,
            cfg.secs
        );
        Report {
            rows: Vec::new(),
            memory: None,
            sections: Vec::new(),
            header,
        }
    }

    pub fn push(&mut self, row: Row) {
        let line = self.line(&row);
        eprintln!("{line}");
        self.rows.push(row);
    }

    /// Scenario 6: resident memory of a server holding `sessions`.
    pub fn memory(&mut self, sessions: u64, rss: u64) {
        eprintln!(
            "scenario 6: {sessions} sessions, resident {:.1} MiB",
            rss as f64 / MIB
        );
        self.memory = Some((sessions, rss));
    }

    /// A part of the report with a table of its own, after the main one.
    pub fn section(&mut self, markdown: String) {
        eprintln!("{markdown}");
        self.sections.push(markdown);
    }

    fn reference_cross_cpu(&self) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| {
                r.scenario == 1
                    && r.server == "ours"
                    && r.case.starts_with("GET hit, 512 ")
                    && r.case.ends_with("different CPUs")
            })
            .map(|r| r.figure.median())
    }

    fn verdict(&self, row: &Row) -> String {
        match row.target {
            None => String::new(),
            Some(Target::AtLeast(min)) => match row.ratio() {
                Some(r) => format!("≥ {min:.2}: {}", yes(r >= min)),
                None => String::new(),
            },
            Some(Target::Concurrency) => {
                let p99_ok = row.latency.map(|l| l.1 < 1000.0);
                let thr = self.reference_cross_cpu().map(|x| row.figure.median() / x);
                let thr_s = thr.map_or("no scenario 1 figure".into(), |t| {
                    format!("{t:.2} × scenario 1 different-CPU: {}", yes(t >= 1.5))
                });
                format!("{thr_s}; p99 < 1 ms: {}", p99_ok.map_or("?", yes))
            }
        }
    }

    fn line(&self, row: &Row) -> String {
        let floor = row.floor.as_ref().map_or(String::new(), Figure::show);
        let ratio = row.ratio().map_or(String::new(), |r| format!("{r:.2}"));
        let latency = row.latency.map_or(String::new(), |(a, b, c)| {
            format!("{a:.0} / {b:.0} / {c:.0}")
        });
        let mut note = self.verdict(row);
        if !row.note.is_empty() {
            if !note.is_empty() {
                note.push_str("; ");
            }
            note.push_str(&row.note);
        }
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.scenario,
            row.case,
            row.server,
            row.figure.show(),
            floor,
            ratio,
            latency,
            note
        )
    }

    pub fn finish(self) -> Result<(), String> {
        let mut md = String::new();
        let _ = writeln!(md, "# distcache benchmark\n\n{}\n", self.header);
        if !self.rows.is_empty() {
            let _ = writeln!(
                md,
                "| # | case | server | ops/s | floor ops/s | ratio | p50 / p99 / p999 µs | target |"
            );
            let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
            for row in &self.rows {
                let _ = writeln!(md, "{}", self.line(row));
            }
        }
        if let Some((sessions, rss)) = self.memory {
            let stored = sessions * (crate::wire::ID_LEN + crate::wire::DATA_LEN) as u64;
            let bound = 1.3 * stored as f64 + 64.0 * MIB;
            let _ = writeln!(
                md,
                "\nScenario 6, memory: {sessions} sessions of {} bytes with {}-byte ids ({:.1} MiB stored): \
                 dc_server resident {:.1} MiB = {:.2} × the bytes stored; bound 1.3 × stored + 64 MiB = {:.1} MiB: {}.",
                crate::wire::DATA_LEN,
                crate::wire::ID_LEN,
                stored as f64 / MIB,
                rss as f64 / MIB,
                rss as f64 / stored as f64,
                bound / MIB,
                yes(rss as f64 <= bound)
            );
        }
        for section in &self.sections {
            if !md.ends_with("\n\n") {
                md.push('\n');
            }
            let _ = writeln!(md, "{section}");
        }
        print!("{md}");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench");
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join("report.md");
        std::fs::write(&path, md).map_err(|e| format!("{}: {e}", path.display()))?;
        eprintln!("scenarios: report written to {}", path.display());
        Ok(())
    }
}

const MIB: f64 = 1024.0 * 1024.0;

fn yes(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}
