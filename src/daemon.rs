//! What every daemon tool (`dc_server`, `dc_client`) shares: the options
//! `-daemon`, `-pidfile`, `-user`, `-sockowner`, `-sockgroup`, `-sockperms`
//! and `-killable`, and what they do.
//!
//! A tool runs in this order, and [`Daemon`] walks it:
//!
//! 1. [`Daemon::start`], before any thread exists: SIGPIPE ignored; with
//!    `-daemon`, a fork whose parent waits until the child is ready and
//!    exits 0, or exits with the child's status if it fails; the stop
//!    signals blocked, to be taken by one thread with `sigwait`.
//! 2. The tool binds its listeners (errors still reach the terminal).
//! 3. [`Daemon::secure`]: owner, group and mode of the UNIX socket files,
//!    the pid file, then `-user` (groups, group id, user id, in that order).
//! 4. [`Daemon::ready`]: the signal thread starts; with `-daemon` the
//!    process leaves its terminal (working directory `/`, standard streams
//!    on `/dev/null`, logging to syslog) and the waiting parent exits 0.
//! 5. On SIGTERM or SIGINT (and SIGUSR1 or SIGUSR2 with `-killable`) the
//!    tool's stop callback runs; the tool winds down, removes its socket
//!    files and calls [`Daemon::finish`], which removes the pid file.
//!
//! [`log`] writes a line to standard error in the foreground and to syslog
//! once the process has detached.
#![deny(unsafe_code)]

use crate::cli::{Args, CliError};
use crate::nal::parse_mode;
use crate::sys::process::{self, Forked, IdentityStep, Priority, SignalSet, UserEntry};
use std::ffi::CStr;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use thiserror::Error;

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

/// Why a daemon could not start or set itself up.
#[derive(Debug, Error)]
pub enum DaemonError {
    /// A user name that is neither an account nor a numeric id.
    #[error("no such user '{0}'")]
    NoSuchUser(String),
    /// A group name that is neither a group nor a numeric id.
    #[error("no such group '{0}'")]
    NoSuchGroup(String),
    /// The password or group database could not be read.
    #[error("can't look up '{0}': {1}")]
    Lookup(String, #[source] io::Error),
    /// Changing identity to the `-user` failed.
    #[error("can't become user '{user}': {step}: {source}")]
    BecomeUser {
        /// The user asked for.
        user: String,
        /// Which step failed.
        step: &'static str,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// chown or chmod of a socket file failed.
    #[error("can't set the {what} of socket file '{path}': {source}")]
    SocketFile {
        /// "owner" or "permissions".
        what: &'static str,
        /// The socket file.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The pid file could not be written.
    #[error("can't write pid file '{0}': {1}")]
    PidFile(PathBuf, #[source] io::Error),
    /// Detaching from the terminal failed.
    #[error("can't detach: {0}")]
    Detach(#[source] io::Error),
    /// What went wrong carrying out one option (named without its dash).
    #[error("-{option}: {source}")]
    Option {
        /// The option.
        option: &'static str,
        /// What went wrong.
        source: Box<DaemonError>,
    },
    /// Signal handling could not be set up.
    #[error("can't set up signal handling: {0}")]
    Signals(#[source] io::Error),
}

/// How important a logged line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Something failed.
    Error,
    /// Something is wrong but the service goes on.
    Warning,
    /// A normal but significant event (starting, stopping).
    Notice,
    /// Progress lines.
    Info,
}

static PROGRAM: OnceLock<&'static CStr> = OnceLock::new();
static TO_SYSLOG: AtomicBool = AtomicBool::new(false);

fn program() -> &'static str {
    PROGRAM
        .get()
        .and_then(|p| p.to_str().ok())
        .unwrap_or("distcache")
}

/// Logs one line. In the foreground it goes to standard error, prefixed
/// with the program's name except for `Info` lines (progress lines, printed
/// as the original printed them); once detached, to syslog (facility
/// daemon, with the pid).
pub fn log(level: Level, line: &str) {
    if TO_SYSLOG.load(Ordering::Relaxed) {
        let priority = match level {
            Level::Error => Priority::Err,
            Level::Warning => Priority::Warning,
            Level::Notice => Priority::Notice,
            Level::Info => Priority::Info,
        };
        process::syslog(priority, line);
    } else {
        let mut err = io::stderr().lock();
        let _ = match level {
            Level::Info => writeln!(err, "{line}"),
            _ => writeln!(err, "{}: {line}", program()),
        };
    }
}

/// Whether [`log`] writes to syslog (the process has detached).
pub fn logs_to_syslog() -> bool {
    TO_SYSLOG.load(Ordering::Relaxed)
}

/// A signal that asks a daemon to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGTERM.
    Term,
    /// SIGINT.
    Int,
    /// SIGUSR1 (with `-killable`).
    Usr1,
    /// SIGUSR2 (with `-killable`).
    Usr2,
}

impl StopSignal {
    fn from_raw(signal: libc::c_int) -> Option<StopSignal> {
        match signal {
            libc::SIGTERM => Some(StopSignal::Term),
            libc::SIGINT => Some(StopSignal::Int),
            libc::SIGUSR1 => Some(StopSignal::Usr1),
            libc::SIGUSR2 => Some(StopSignal::Usr2),
            _ => None,
        }
    }

    /// The signal's name, e.g. `SIGTERM`.
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Term => "SIGTERM",
            StopSignal::Int => "SIGINT",
            StopSignal::Usr1 => "SIGUSR1",
            StopSignal::Usr2 => "SIGUSR2",
        }
    }
}

/// The stop signals, blocked in every thread and taken by one.
#[derive(Debug)]
pub struct StopSignals(SignalSet);

impl StopSignals {
    /// Blocks SIGTERM and SIGINT, and SIGUSR1 and SIGUSR2 when `killable`
    /// (else ignores those two), in the calling thread and every thread it
    /// starts afterwards. Call it before starting any thread.
    pub fn block(killable: bool) -> Result<StopSignals, DaemonError> {
        let mut signals = vec![libc::SIGTERM, libc::SIGINT];
        if killable {
            signals.extend([libc::SIGUSR1, libc::SIGUSR2]);
        } else {
            for s in [libc::SIGUSR1, libc::SIGUSR2] {
                process::ignore_signal(s).map_err(DaemonError::Signals)?;
            }
        }
        SignalSet::block(&signals)
            .map(StopSignals)
            .map_err(DaemonError::Signals)
    }

    /// Waits for the next stop signal.
    pub fn wait(&self) -> io::Result<StopSignal> {
        loop {
            if let Some(s) = StopSignal::from_raw(self.0.wait()?) {
                return Ok(s);
            }
        }
    }

    /// Starts a thread that waits for the first stop signal and then runs
    /// `on_stop` with it.
    pub fn spawn_waiter(
        self,
        on_stop: impl FnOnce(StopSignal) + Send + 'static,
    ) -> io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("signals".into())
            .stack_size(64 * 1024)
            .spawn(move || match self.wait() {
                Ok(signal) => on_stop(signal),
                Err(e) => log(Level::Error, &format!("waiting for signals failed: {e}")),
            })
    }
}

/// Ignores SIGPIPE, so that writing to a closed connection is an error
/// return and not death.
pub fn ignore_sigpipe() -> Result<(), DaemonError> {
    process::ignore_signal(libc::SIGPIPE).map_err(DaemonError::Signals)
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The login name.
    pub name: String,
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
}

/// Looks up a user by name, or by numeric id when no account has that name.
pub fn lookup_user(user: &str) -> Result<User, DaemonError> {
    let lookup =
        |r: io::Result<Option<UserEntry>>| r.map_err(|e| DaemonError::Lookup(user.into(), e));
    let mut found = lookup(process::user_by_name(user))?;
    if found.is_none() {
        if let Ok(uid) = user.parse::<u32>() {
            found = lookup(process::user_by_uid(uid))?;
        }
    }
    let u = found.ok_or_else(|| DaemonError::NoSuchUser(user.into()))?;
    Ok(User {
        name: u.name,
        uid: u.uid,
        gid: u.gid,
    })
}

/// Looks up a group id by name, or takes a numeric id as it is.
pub fn lookup_group(group: &str) -> Result<u32, DaemonError> {
    match process::group_by_name(group) {
        Ok(Some(gid)) => Ok(gid),
        Ok(None) => group
            .parse::<u32>()
            .map_err(|_| DaemonError::NoSuchGroup(group.into())),
        Err(e) => Err(DaemonError::Lookup(group.into(), e)),
    }
}

/// Gives the socket file at `path` the owner `owner` (and, unless `group`
/// is given, that user's primary group) and the group `group`, as the
/// original's `-sockowner` and `-sockgroup` did.
pub fn set_socket_owner(
    path: &Path,
    owner: Option<&str>,
    group: Option<&str>,
) -> Result<(), DaemonError> {
    let user = owner.map(lookup_user).transpose()?;
    let gid = match group {
        Some(g) => Some(lookup_group(g)?),
        None => user.as_ref().map(|u| u.gid),
    };
    let uid = user.as_ref().map(|u| u.uid);
    std::os::unix::fs::chown(path, uid, gid).map_err(|source| DaemonError::SocketFile {
        what: "owner",
        path: path.into(),
        source,
    })
}

/// Sets the permission bits of the socket file at `path`.
pub fn set_socket_mode(path: &Path, mode: u32) -> Result<(), DaemonError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|source| {
        DaemonError::SocketFile {
            what: "permissions",
            path: path.into(),
            source,
        }
    })
}

/// Becomes `user` for good: supplementary groups, group id, then user id.
/// Nothing to do when the process already is that user and group (and not
/// root).
pub fn drop_privileges(user: &str) -> Result<(), DaemonError> {
    let entry = lookup_user(user)?;
    let (ruid, euid, egid) = process::current_ids();
    if euid != 0 && ruid == entry.uid && euid == entry.uid && egid == entry.gid {
        return Ok(());
    }
    process::become_user(&entry.name, entry.uid, entry.gid).map_err(|(step, source)| {
        DaemonError::BecomeUser {
            user: user.into(),
            step: match step {
                IdentityStep::Groups => "setting its supplementary groups",
                IdentityStep::Gid => "setting its group id",
                IdentityStep::Uid => "setting its user id",
                IdentityStep::Regain => "checking that root is gone",
            },
            source,
        }
    })
}

/// A pid file this process wrote; [`PidFile::remove`] (or dropping it)
/// deletes it if it still holds this process's id.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
    pid: u32,
    removed: bool,
}

impl PidFile {
    /// Writes this process's id and a newline to `path` (made absolute
    /// first, so that a later change of directory does not matter).
    pub fn write(path: &Path) -> Result<PidFile, DaemonError> {
        let err = |e| DaemonError::PidFile(path.into(), e);
        let path = std::path::absolute(path).map_err(err)?;
        let pid = std::process::id();
        fs::write(&path, format!("{pid}\n")).map_err(err)?;
        Ok(PidFile {
            path,
            pid,
            removed: false,
        })
    }

    /// The file's absolute path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Deletes the file unless it is gone or now names another process
    /// (another instance took it over), or this is a forked copy.
    pub fn remove(&mut self) -> io::Result<()> {
        if self.removed || std::process::id() != self.pid {
            return Ok(());
        }
        self.removed = true;
        match fs::read_to_string(&self.path) {
            Ok(s) if s.trim() == self.pid.to_string() => fs::remove_file(&self.path),
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = self.remove();
    }
}

/// A daemon's set-up, from the first line of `main` to its clean exit.
#[derive(Debug)]
pub struct Daemon {
    options: DaemonOptions,
    signals: Option<StopSignals>,
    /// With `-daemon`: the line to the waiting parent.
    parent: Option<UnixStream>,
    pidfile: Option<PidFile>,
}

impl Daemon {
    /// Call first in `main`, while the process has one thread. Names the
    /// program for [`log`], ignores SIGPIPE, forks if `-daemon` is set
    /// (the parent never returns from this: it exits 0 once the child calls
    /// [`Daemon::ready`], or with the child's status if the child exits
    /// first), and blocks the stop signals.
    pub fn start(program: &'static CStr, options: DaemonOptions) -> Result<Daemon, DaemonError> {
        let _ = PROGRAM.set(program);
        ignore_sigpipe()?;
        let parent = if options.daemon {
            Some(detach_and_wait()?)
        } else {
            None
        };
        let signals = StopSignals::block(options.killable)?;
        Ok(Daemon {
            options,
            signals: Some(signals),
            parent,
            pidfile: None,
        })
    }

    /// The options this daemon runs with.
    pub fn options(&self) -> &DaemonOptions {
        &self.options
    }

    /// Call once the listeners exist: sets the owner, group and mode of the
    /// UNIX socket files at `socket_paths`, writes the pid file, then
    /// changes to `-user`. Any failure is an error: the caller exits
    /// non-zero (dropping `self` removes the pid file again).
    pub fn secure(&mut self, socket_paths: &[&Path]) -> Result<(), DaemonError> {
        let o = &self.options;
        if o.sets_socket_files() && socket_paths.is_empty() {
            log(
                Level::Warning,
                "-sockowner, -sockgroup and -sockperms apply to UNIX sockets only; none is listened on",
            );
        }
        let within = |option: &'static str| {
            move |e: DaemonError| DaemonError::Option {
                option,
                source: Box::new(e),
            }
        };
        for path in socket_paths {
            if o.sockowner.is_some() || o.sockgroup.is_some() {
                set_socket_owner(path, o.sockowner.as_deref(), o.sockgroup.as_deref()).map_err(
                    |e| {
                        let blame_group =
                            matches!(e, DaemonError::NoSuchGroup(_)) || o.sockowner.is_none();
                        within(if blame_group {
                            "sockgroup"
                        } else {
                            "sockowner"
                        })(e)
                    },
                )?;
            }
            if let Some(mode) = o.sockperms {
                set_socket_mode(path, mode).map_err(within("sockperms"))?;
            }
        }
        if let Some(path) = &o.pidfile {
            self.pidfile = Some(PidFile::write(path).map_err(within("pidfile"))?);
        }
        if let Some(user) = &o.user {
            drop_privileges(user).map_err(within("user"))?;
        }
        Ok(())
    }

    /// Call before [`Daemon::secure`] for a UNIX socket file that gets a
    /// mode of its own (`option` names the option that set it, for
    /// errors): gives it the owner and group of `-sockowner` and
    /// `-sockgroup`, as the listeners' socket files, and sets its mode.
    pub fn secure_socket(
        &self,
        path: &Path,
        mode: u32,
        option: &'static str,
    ) -> Result<(), DaemonError> {
        let o = &self.options;
        if o.sockowner.is_some() || o.sockgroup.is_some() {
            set_socket_owner(path, o.sockowner.as_deref(), o.sockgroup.as_deref()).map_err(
                |e| {
                    let blame_group =
                        matches!(e, DaemonError::NoSuchGroup(_)) || o.sockowner.is_none();
                    DaemonError::Option {
                        option: if blame_group {
                            "sockgroup"
                        } else {
                            "sockowner"
                        },
                        source: Box::new(e),
                    }
                },
            )?;
        }
        set_socket_mode(path, mode).map_err(|e| DaemonError::Option {
            option,
            source: Box::new(e),
        })
    }

    /// Call when the service is ready: starts the thread that runs `on_stop`
    /// at the first stop signal; with `-daemon`, moves to `/`, points the
    /// standard streams at `/dev/null`, sends [`log`] to syslog and lets the
    /// waiting parent exit 0.
    pub fn ready(
        &mut self,
        on_stop: impl FnOnce(StopSignal) + Send + 'static,
    ) -> Result<(), DaemonError> {
        if let Some(signals) = self.signals.take() {
            signals
                .spawn_waiter(on_stop)
                .map_err(DaemonError::Signals)?;
        }
        if let Some(mut parent) = self.parent.take() {
            std::env::set_current_dir("/").map_err(DaemonError::Detach)?;
            if let Some(name) = PROGRAM.get() {
                process::open_syslog(name);
            }
            process::stdio_to_null().map_err(DaemonError::Detach)?;
            TO_SYSLOG.store(true, Ordering::Relaxed);
            parent.write_all(b"R").map_err(DaemonError::Detach)?;
        }
        Ok(())
    }

    /// Call after a clean stop: removes the pid file (a failure is logged).
    pub fn finish(mut self) {
        if let Some(mut p) = self.pidfile.take() {
            if let Err(e) = p.remove() {
                log(
                    Level::Warning,
                    &format!("can't remove pid file '{}': {e}", p.path().display()),
                );
            }
        }
    }
}

/// Forks. The parent waits for the child's "ready" byte and exits 0, or
/// exits with the child's status when the child ends without sending it;
/// the child starts a new session and returns its end of the line.
fn detach_and_wait() -> Result<UnixStream, DaemonError> {
    let (mut parent_end, child_end) = UnixStream::pair().map_err(DaemonError::Detach)?;
    match process::fork().map_err(DaemonError::Detach)? {
        Forked::Parent(pid) => {
            drop(child_end);
            let mut byte = [0u8; 1];
            let ready = loop {
                match parent_end.read(&mut byte) {
                    Ok(n) => break n == 1,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break false,
                }
            };
            if ready {
                std::process::exit(0);
            }
            let code = match process::wait_child(pid) {
                Ok(0) | Err(_) => 1,
                Ok(c) => c,
            };
            std::process::exit(code);
        }
        Forked::Child => {
            drop(parent_end);
            process::setsid().map_err(DaemonError::Detach)?;
            Ok(child_end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

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

    #[test]
    fn users_and_groups_by_name_or_number() {
        assert_eq!(lookup_user("root").unwrap().uid, 0);
        assert_eq!(lookup_user("0").unwrap().name, "root");
        assert!(matches!(
            lookup_user("no-such-user-xyzzy"),
            Err(DaemonError::NoSuchUser(_))
        ));
        assert_eq!(lookup_group("root").unwrap(), 0);
        assert_eq!(lookup_group("4242").unwrap(), 4242);
        assert!(matches!(
            lookup_group("no-such-group-xyzzy"),
            Err(DaemonError::NoSuchGroup(_))
        ));
    }

    #[test]
    fn socket_mode_and_owner_are_applied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let _l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        set_socket_mode(&path, 0o600).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o600);
        // Giving a file to its own owner and group is always allowed.
        let meta = fs::metadata(&path).unwrap();
        set_socket_owner(
            &path,
            Some(&meta.uid().to_string()),
            Some(&meta.gid().to_string()),
        )
        .unwrap();
        let after = fs::metadata(&path).unwrap();
        assert_eq!((after.uid(), after.gid()), (meta.uid(), meta.gid()));
        let err = set_socket_owner(&path, Some("no-such-user-xyzzy"), None).unwrap_err();
        assert!(matches!(err, DaemonError::NoSuchUser(_)), "{err}");
        let err = set_socket_mode(&dir.path().join("absent"), 0o600).unwrap_err();
        assert!(err.to_string().contains("absent"), "{err}");
    }

    #[test]
    fn pid_file_is_written_and_removed_only_if_ours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.pid");
        let mut p = PidFile::write(&path).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        p.remove().unwrap();
        assert!(!path.exists());

        let mut q = PidFile::write(&path).unwrap();
        fs::write(&path, "1\n").unwrap(); // another instance took it over
        q.remove().unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "1\n");

        let err = PidFile::write(&dir.path().join("no/such/dir.pid")).unwrap_err();
        assert!(err.to_string().contains("no/such/dir.pid"), "{err}");
    }

    #[test]
    fn an_unknown_user_is_refused() {
        let err = drop_privileges("no-such-user-xyzzy").unwrap_err();
        assert_eq!(err.to_string(), "no such user 'no-such-user-xyzzy'");
    }
}
