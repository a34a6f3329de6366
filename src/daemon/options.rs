//! The options every daemon tool shares, and their usage lines.

use crate::cli::{Args, CliError};
use crate::nal::parse_mode;
use std::path::PathBuf;

/// Usage lines for the shared options, in the layout of the tools' usage.
pub const USAGE: &str = "  -daemon            detach and run in the background; the command returns
                     once the service is ready, non-zero if it cannot start
  -pidfile <path>    write the process id to <path> (removed on a clean stop)
  -user <user>       run as <user>, with its groups, once the sockets exist
  -sockowner <user>  owner of UNIX socket files (group: the user's own)
  -sockgroup <group> group of UNIX socket files
  -sockperms <oct>   permissions of UNIX socket files, in octal (e.g. 660)
  -killable          also stop cleanly on SIGUSR1 and SIGUSR2 (SIGTERM and
                     SIGINT always stop it cleanly)
";

/// The options every daemon tool accepts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaemonOptions {
    /// `-daemon`: detach from the terminal.
    pub daemon: bool,
    /// `-pidfile PATH`: where to write the process id.
    pub pidfile: Option<PathBuf>,
    /// `-user USER`: who to run as once the sockets exist.
    pub user: Option<String>,
    /// `-sockowner USER`: owner of the UNIX socket files.
    pub sockowner: Option<String>,
    /// `-sockgroup GROUP`: group of the UNIX socket files.
    pub sockgroup: Option<String>,
    /// `-sockperms OCTAL`: permission bits of the UNIX socket files.
    pub sockperms: Option<u32>,
    /// `-killable`: SIGUSR1 and SIGUSR2 stop cleanly (else ignored).
    pub killable: bool,
}

impl DaemonOptions {
    /// Consumes option `name` (dashes already removed) and its value from
    /// `args` if it is one of the shared options; `Ok(false)` if it is not.
    pub fn take(&mut self, name: &str, args: &mut Args) -> Result<bool, CliError> {
        match name {
            "daemon" => self.daemon = true,
            "killable" => self.killable = true,
            "pidfile" => self.pidfile = Some(args.parsed("pidfile", non_empty)?.into()),
            "user" => self.user = Some(args.parsed("user", non_empty)?),
            "sockowner" => self.sockowner = Some(args.parsed("sockowner", non_empty)?),
            "sockgroup" => self.sockgroup = Some(args.parsed("sockgroup", non_empty)?),
            "sockperms" => self.sockperms = Some(args.parsed("sockperms", parse_mode)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Whether any of the socket-file options is set.
    pub fn sets_socket_files(&self) -> bool {
        self.sockowner.is_some() || self.sockgroup.is_some() || self.sockperms.is_some()
    }
}

fn non_empty(s: &str) -> Result<String, &'static str> {
    if s.is_empty() {
        Err("must not be empty")
    } else {
        Ok(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take_all(argv: &[&str]) -> Result<(DaemonOptions, Vec<String>), CliError> {
        let mut args = Args::new(argv);
        let mut o = DaemonOptions::default();
        let mut rest = Vec::new();
        while let Some(name) = args.next_option()? {
            if !o.take(&name, &mut args)? {
                rest.push(name);
            }
        }
        Ok((o, rest))
    }

    #[test]
    fn takes_every_shared_option() {
        let (o, rest) = take_all(&[
            "-daemon",
            "--pidfile",
            "/run/x.pid",
            "-user",
            "nobody",
            "-sockowner",
            "daemon",
            "-sockgroup",
            "adm",
            "-sockperms",
            "0660",
            "--killable",
            "-listen",
        ])
        .unwrap();
        assert_eq!(
            o,
            DaemonOptions {
                daemon: true,
                pidfile: Some("/run/x.pid".into()),
                user: Some("nobody".into()),
                sockowner: Some("daemon".into()),
                sockgroup: Some("adm".into()),
                sockperms: Some(0o660),
                killable: true,
            }
        );
        assert_eq!(rest, ["listen"], "other options are left to the tool");
    }

    #[test]
    fn missing_and_bad_values() {
        assert_eq!(
            take_all(&["-pidfile"]).unwrap_err(),
            CliError::MissingValue("pidfile")
        );
        assert_eq!(
            take_all(&["-user"]).unwrap_err(),
            CliError::MissingValue("user")
        );
        for bad in ["", "8", "66a", "-1", "17777", "0x1ff"] {
            assert!(
                matches!(
                    take_all(&["-sockperms", bad]),
                    Err(CliError::BadValue {
                        option: "sockperms",
                        ..
                    })
                ),
                "{bad:?} accepted"
            );
        }
        assert!(matches!(
            take_all(&["-sockowner", ""]),
            Err(CliError::BadValue {
                option: "sockowner",
                ..
            })
        ));
    }

    #[test]
    fn modes_are_octal() {
        assert_eq!(parse_mode("600"), Ok(0o600));
        assert_eq!(parse_mode("0440"), Ok(0o440));
        assert_eq!(parse_mode("7777"), Ok(0o7777));
        assert_eq!(parse_mode("0"), Ok(0));
        assert!(parse_mode("9").is_err());
    }

    #[test]
    fn usage_names_every_option() {
        assert!(USAGE.lines().all(|l| l.starts_with("  ")), "{USAGE}");
        for o in [
            "-daemon",
            "-pidfile",
            "-user",
            "-sockowner",
            "-sockgroup",
            "-sockperms",
            "-killable",
        ] {
            assert!(USAGE.contains(o), "{o} missing from USAGE");
        }
    }
}
