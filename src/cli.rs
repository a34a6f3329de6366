//! Command-line parsing shared by the tools: the original's single-dash
//! long options (`-listen ADDR`), also accepted with two dashes.

use std::ffi::OsString;
use std::fmt::Display;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use thiserror::Error;

/// What a tool's command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Asked<T> {
    /// `-h`, `-help` or `--help`: print the usage text.
    Help,
    /// Run with these options.
    Run(T),
}

/// What a tool runs with, or the exit code it leaves with at once: 0 once
/// `usage` is printed for a help request, 1 once `tool: why` is printed for
/// a command line that cannot be used.
pub fn options_or_exit<T>(
    tool: &str,
    usage: impl Display,
    asked: Result<Asked<T>, CliError>,
) -> Result<T, ExitCode> {
    match asked {
        Ok(Asked::Run(options)) => Ok(options),
        Ok(Asked::Help) => {
            // A closed standard output (`| head`) is not an error here.
            let _ = write!(std::io::stdout(), "{usage}");
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{tool}: {e}");
            Err(ExitCode::from(1))
        }
    }
}

/// A command line that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CliError {
    /// An option this tool does not know.
    #[error("unknown option '{0}' (try -h)")]
    Unknown(String),
    /// An option given without its value.
    #[error("option '-{0}' needs a value (try -h)")]
    MissingValue(&'static str),
    /// A value the option does not accept.
    #[error("invalid value '{value}' for -{option}: {why}")]
    BadValue {
        /// The option, without dashes.
        option: &'static str,
        /// What was given.
        value: String,
        /// What is wrong with it.
        why: String,
    },
    /// An argument that is not an option.
    #[error("unexpected argument '{0}' (try -h)")]
    Stray(String),
    /// A required option is missing.
    #[error("{0} (try -h)")]
    Missing(&'static str),
}

/// Walks a command line option by option.
#[derive(Debug)]
pub struct Args {
    args: std::vec::IntoIter<String>,
    last: String,
}

impl Args {
    /// The process's arguments after the program name. Arguments that are
    /// not valid UTF-8 are kept lossily (and will not match any option).
    pub fn from_env() -> Args {
        Args::new(std::env::args_os().skip(1))
    }

    /// Arguments from any list (for tests).
    pub fn new<I: IntoIterator<Item = S>, S: Into<OsString>>(args: I) -> Args {
        let v: Vec<String> = args
            .into_iter()
            .map(|a| a.into().to_string_lossy().into_owned())
            .collect();
        Args {
            args: v.into_iter(),
            last: String::new(),
        }
    }

    /// The next option's name with its dashes removed (`-listen` and
    /// `--listen` both give `listen`), or `None` at the end.
    pub fn next_option(&mut self) -> Result<Option<String>, CliError> {
        let Some(arg) = self.args.next() else {
            return Ok(None);
        };
        self.last.clone_from(&arg);
        let name = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-'));
        match name {
            Some(n) if !n.is_empty() => Ok(Some(n.to_string())),
            _ => Err(CliError::Stray(arg)),
        }
    }

    /// The error for the option just read, as the user wrote it.
    pub fn unknown(&self) -> CliError {
        CliError::Unknown(self.last.clone())
    }

    /// The value following option `option`.
    pub fn value(&mut self, option: &'static str) -> Result<String, CliError> {
        self.args.next().ok_or(CliError::MissingValue(option))
    }

    /// The value following `option`, parsed with `parse`.
    pub fn parsed<T, E: std::fmt::Display>(
        &mut self,
        option: &'static str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, CliError> {
        let value = self.value(option)?;
        parse(&value).map_err(|e| CliError::BadValue {
            option,
            value,
            why: e.to_string(),
        })
    }
}

/// Whether an option name asks for the usage text.
pub fn is_help(name: &str) -> bool {
    matches!(name, "h" | "help" | "?")
}

/// Parses a whole number within `min..=max`.
pub fn number_in(min: u64, max: u64) -> impl Fn(&str) -> Result<u64, String> {
    move |s| match s.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        Ok(_) => Err(format!("must be between {min} and {max}")),
        Err(_) => Err("not a whole number".to_string()),
    }
}

/// Parses a size in bytes within `min..=max`: a whole number, optionally
/// followed by `k`, `M` or `G` (either case) for KiB, MiB or GiB (1024,
/// 1024^2, 1024^3 bytes).
pub fn bytes_in(min: u64, max: u64) -> impl Fn(&str) -> Result<u64, String> {
    move |s| {
        let (digits, unit) = match s.char_indices().last() {
            Some((i, c)) if c.is_ascii_alphabetic() => (&s[..i], c.to_ascii_lowercase()),
            _ => (s, 'b'),
        };
        let shift = match unit {
            'b' => 0,
            'k' => 10,
            'm' => 20,
            'g' => 30,
            _ => return Err("not a size (e.g. 1048576, 512k, 64M, 2G)".to_string()),
        };
        let n = digits
            .parse::<u64>()
            .ok()
            .filter(|_| digits.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| "not a size (e.g. 1048576, 512k, 64M, 2G)".to_string())?;
        match n.checked_mul(1 << shift) {
            Some(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(format!("must be between {min} and {max} bytes")),
        }
    }
}

/// Parses a path that must not be empty.
pub fn non_empty_path(s: &str) -> Result<PathBuf, &'static str> {
    if s.is_empty() {
        Err("must not be empty")
    } else {
        Ok(PathBuf::from(s))
    }
}

/// The PEM files of a TLS endpoint, as `-tls-cert`, `-tls-key` and
/// `-tls-ca` give them (dc_server's listeners, dc_client's server).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// `-tls-cert`: the certificate chain to present.
    pub cert: Option<PathBuf>,
    /// `-tls-key`: its private key.
    pub key: Option<PathBuf>,
    /// `-tls-ca`: the CA the peer's certificate must chain to.
    pub ca: Option<PathBuf>,
}

impl TlsFiles {
    /// Takes option `name` and its value if it is one of these; false if
    /// it is not.
    pub fn take(&mut self, name: &str, args: &mut Args) -> Result<bool, CliError> {
        let (option, slot) = match name {
            "tls-cert" => ("tls-cert", &mut self.cert),
            "tls-key" => ("tls-key", &mut self.key),
            "tls-ca" => ("tls-ca", &mut self.ca),
            _ => return Ok(false),
        };
        *slot = Some(args.parsed(option, non_empty_path)?);
        Ok(true)
    }

    /// Whether any of them was given.
    pub fn given(&self) -> bool {
        self.cert.is_some() || self.key.is_some() || self.ca.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::{bytes_in, Args, CliError, TlsFiles};

    #[test]
    fn sizes_take_binary_suffixes() {
        let p = bytes_in(0, 1 << 40);
        assert_eq!(p("0"), Ok(0));
        assert_eq!(p("1048576"), Ok(1 << 20));
        assert_eq!(p("512k"), Ok(512 << 10));
        assert_eq!(p("512K"), Ok(512 << 10));
        assert_eq!(p("64M"), Ok(64 << 20));
        assert_eq!(p("2g"), Ok(2 << 30));
        assert_eq!(p("1024G"), Ok(1 << 40));
        for bad in [
            "", "k", "1.5M", "-1", "+1", "1T", "12 k", "1kb", "0x10", "1025G",
        ] {
            assert!(p(bad).is_err(), "{bad:?} accepted");
        }
        assert!(p("99999999999999999999G").is_err());
    }

    #[test]
    fn tls_files_take_their_three_options() {
        let mut args = Args::new(["-tls-ca", "ca.pem", "-tls-key", "", "-listen"]);
        let mut files = TlsFiles::default();
        assert!(!files.given());
        let name = args.next_option().unwrap().unwrap();
        assert_eq!(files.take(&name, &mut args), Ok(true));
        assert_eq!(files.ca.as_deref(), Some("ca.pem".as_ref()));
        assert!(files.given());
        let name = args.next_option().unwrap().unwrap();
        assert!(matches!(
            files.take(&name, &mut args),
            Err(CliError::BadValue {
                option: "tls-key",
                ..
            })
        ));
        let name = args.next_option().unwrap().unwrap();
        assert_eq!(files.take(&name, &mut args), Ok(false));
        assert_eq!(files.cert, None);
    }
}
