use super::protocol::{hex, SessionEntry};
use super::{AdminError, AdminSource};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

/// What `dc_admin` is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `ls [--json]`
    List {
        /// One JSON object per line instead of columns.
        json: bool,
    },
    /// `get ID [-o FILE]`
    Get {
        /// The session id.
        id: Vec<u8>,
        /// Where to write the data (standard output if None).
        output: Option<PathBuf>,
    },
    /// `rm ID`
    Remove {
        /// The session id.
        id: Vec<u8>,
    },
    /// `stats [--json]`
    Stats {
        /// One JSON object instead of lines.
        json: bool,
    },
    /// `top [-n COUNT] [-interval MSECS]`: a line of rates per interval,
    /// from a fresh connection each time ([`super::top`]).
    Top {
        /// Time between two readings.
        interval: Duration,
        /// How many lines to print (None: until interrupted).
        count: Option<u64>,
    },
}

/// How a command ended, short of an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Done {
    /// It did what it was asked.
    Ok,
    /// No session has the id it was given (the message says which).
    NotFound(String),
}

/// Carries out `action` against `source`, writing its output to `out`.
pub fn run(
    action: &Action,
    source: &mut dyn AdminSource,
    out: &mut dyn Write,
) -> Result<Done, AdminError> {
    let output = |source| AdminError::Output {
        what: "the output".into(),
        source,
    };
    match action {
        Action::List { json } => {
            source.list(&mut |e| {
                let line = if *json { list_json(&e) } else { list_line(&e) };
                out.write_all(line.as_bytes())
            })?;
        }
        Action::Stats { json } => {
            let pairs = source.stats()?;
            let text = if *json {
                stats_json(&pairs)
            } else {
                stats_lines(&pairs)
            };
            out.write_all(text.as_bytes()).map_err(output)?;
        }
        Action::Get { id, output: file } => {
            let Some(data) = source.get(id)? else {
                return Ok(not_found(id));
            };
            match file {
                Some(path) => std::fs::write(path, &data).map_err(|source| AdminError::Output {
                    what: format!("'{}'", path.display()),
                    source,
                })?,
                None => out.write_all(&data).map_err(output)?,
            }
        }
        Action::Remove { id } => {
            if !source.remove(id)? {
                return Ok(not_found(id));
            }
        }
        Action::Top { .. } => {
            return Err(AdminError::Unsupported(
                "top reconnects for each reading: use admin::top_main".into(),
            ))
        }
    }
    out.flush().map_err(output)?;
    Ok(Done::Ok)
}

fn not_found(id: &[u8]) -> Done {
    Done::NotFound(format!("no session with id {} is stored", hex(id)))
}

/// Milliseconds as seconds with three decimals.
fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// `ls` line: id, size, expires in (s), age (s).
fn list_line(e: &SessionEntry) -> String {
    format!(
        "{} {} {} {}\n",
        hex(&e.id),
        e.size,
        seconds(e.expires_in_ms),
        seconds(e.age_ms)
    )
}

/// `ls --json` line.
fn list_json(e: &SessionEntry) -> String {
    format!(
        "{{\"id\":\"{}\",\"size\":{},\"expires_in_ms\":{},\"age_ms\":{}}}\n",
        hex(&e.id),
        e.size,
        e.expires_in_ms,
        e.age_ms
    )
}

/// `stats`: one `name value` line per counter, the values aligned.
fn stats_lines(pairs: &[(String, u64)]) -> String {
    let width = pairs.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(n, v)| format!("{n:<width$}  {v}\n"))
        .collect()
}

/// `stats --json`: one object. Names are ASCII letters, digits, dots and
/// underscores (the protocol allows no others), so need no escaping.
fn stats_json(pairs: &[(String, u64)]) -> String {
    let fields: Vec<String> = pairs.iter().map(|(n, v)| format!("\"{n}\":{v}")).collect();
    format!("{{{}}}\n", fields.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    /// A source holding a fixed set of sessions.
    struct Fixed(Vec<(Vec<u8>, Vec<u8>)>);

    impl AdminSource for Fixed {
        fn list(
            &mut self,
            each: &mut dyn FnMut(SessionEntry) -> io::Result<()>,
        ) -> Result<(), AdminError> {
            for (id, data) in &self.0 {
                let e = SessionEntry {
                    id: id.clone(),
                    size: data.len() as u64,
                    expires_in_ms: 1500,
                    age_ms: 20,
                };
                each(e).map_err(|source| AdminError::Output {
                    what: "x".into(),
                    source,
                })?;
            }
            Ok(())
        }
        fn get(&mut self, id: &[u8]) -> Result<Option<Vec<u8>>, AdminError> {
            Ok(self.0.iter().find(|(i, _)| i == id).map(|(_, d)| d.clone()))
        }
        fn remove(&mut self, id: &[u8]) -> Result<bool, AdminError> {
            let before = self.0.len();
            self.0.retain(|(i, _)| i != id);
            Ok(self.0.len() < before)
        }
        fn stats(&mut self) -> Result<Vec<(String, u64)>, AdminError> {
            Ok(vec![
                ("sessions".into(), self.0.len() as u64),
                ("a.b".into(), 7),
            ])
        }
    }

    fn run_to_string(action: Action, source: &mut Fixed) -> (Done, String) {
        let mut out = Vec::new();
        let done = run(&action, source, &mut out).unwrap();
        (done, String::from_utf8(out).unwrap())
    }

    #[test]
    fn each_command_writes_its_format() {
        let mut s = Fixed(vec![(vec![0xab, 1], b"data".to_vec())]);
        for (action, text) in [
            (Action::List { json: false }, "ab01 4 1.500 0.020\n"),
            (
                Action::List { json: true },
                "{\"id\":\"ab01\",\"size\":4,\"expires_in_ms\":1500,\"age_ms\":20}\n",
            ),
            (Action::Stats { json: false }, "sessions  1\na.b       7\n"),
            (Action::Stats { json: true }, "{\"sessions\":1,\"a.b\":7}\n"),
        ] {
            assert_eq!(run_to_string(action, &mut s), (Done::Ok, text.into()));
        }
        let get = |id: &[u8]| Action::Get {
            id: id.to_vec(),
            output: None,
        };
        assert_eq!(
            run_to_string(get(&[0xab, 1]), &mut s),
            (Done::Ok, "data".into())
        );
        assert!(
            matches!(run_to_string(get(&[1]), &mut s).0, Done::NotFound(m) if m.contains("01"))
        );
        let rm = Action::Remove { id: vec![0xab, 1] };
        assert_eq!(run_to_string(rm.clone(), &mut s).0, Done::Ok);
        assert!(matches!(run_to_string(rm, &mut s).0, Done::NotFound(_)));
    }
}
