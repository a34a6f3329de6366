//! Process-level system calls the daemon tools need and neither the standard
//! library nor socket2 offers: user and group lookup, changing identity,
//! signal masks, `fork`, `setsid`, `waitpid`, standard descriptors, syslog
//! and the open-file limit.

use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{self, Gid, Group, Pid, Uid, User};
use std::ffi::{CStr, CString};
use std::fs::OpenOptions;
use std::io;

/// A user account, as the password database gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserEntry {
    /// The login name.
    pub name: String,
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
}

impl From<User> for UserEntry {
    fn from(u: User) -> UserEntry {
        UserEntry {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        }
    }
}

/// Looks a user up by name; `Ok(None)` when there is no such user.
pub(crate) fn user_by_name(name: &str) -> io::Result<Option<UserEntry>> {
    Ok(User::from_name(name)?.map(UserEntry::from))
}

/// Looks a user up by id; `Ok(None)` when no account has it.
pub(crate) fn user_by_uid(uid: u32) -> io::Result<Option<UserEntry>> {
    Ok(User::from_uid(Uid::from_raw(uid))?.map(UserEntry::from))
}

/// Looks a group up by name and gives its id; `Ok(None)` when there is none.
pub(crate) fn group_by_name(name: &str) -> io::Result<Option<u32>> {
    Ok(Group::from_name(name)?.map(|g| g.gid.as_raw()))
}

/// The real and effective user ids and the effective group id.
pub(crate) fn current_ids() -> (u32, u32, u32) {
    (
        unistd::getuid().as_raw(),
        unistd::geteuid().as_raw(),
        unistd::getegid().as_raw(),
    )
}

/// Which step of changing identity failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdentityStep {
    /// Setting the supplementary groups.
    Groups,
    /// Setting the group id.
    Gid,
    /// Setting the user id.
    Uid,
    /// The old identity could be taken back after the change.
    Regain,
}

/// Becomes user `name` (`uid`, primary group `gid`) for good: its
/// supplementary groups (`initgroups`), its group, then its user id, in that
/// order; then checks that root cannot be regained. Changes every thread of
/// the process.
pub(crate) fn become_user(name: &str, uid: u32, gid: u32) -> Result<(), (IdentityStep, io::Error)> {
    let name = CString::new(name).map_err(|_| {
        (
            IdentityStep::Groups,
            io::Error::new(io::ErrorKind::InvalidInput, "user name contains NUL"),
        )
    })?;
    let gid = Gid::from_raw(gid);
    unistd::initgroups(&name, gid).map_err(|e| (IdentityStep::Groups, e.into()))?;
    unistd::setgid(gid).map_err(|e| (IdentityStep::Gid, e.into()))?;
    unistd::setuid(Uid::from_raw(uid)).map_err(|e| (IdentityStep::Uid, e.into()))?;
    // Succeeding here means the change was not permanent.
    if uid != 0 && unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err((
            IdentityStep::Regain,
            io::Error::new(io::ErrorKind::PermissionDenied, "root could be regained"),
        ));
    }
    Ok(())
}

/// Sets `signal`'s disposition to "ignore".
pub(crate) fn ignore_signal(signal: libc::c_int) -> io::Result<()> {
    // SAFETY: an all-zero sigaction is a valid value of this C struct; the
    // handler field is then set to SIG_IGN and the mask emptied. (nix's
    // sigaction is an unsafe function too, for handlers in general.)
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = libc::SIG_IGN;
    // SAFETY: `act.sa_mask` is a valid sigset_t to initialise.
    unsafe { libc::sigemptyset(&mut act.sa_mask) };
    // SAFETY: `act` is a fully initialised sigaction; no old action is asked.
    if unsafe { libc::sigaction(signal, &act, std::ptr::null_mut()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A set of signals blocked in the calling thread (and in every thread it
/// starts afterwards), to be received with [`SignalSet::wait`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct SignalSet(SigSet);

impl SignalSet {
    /// Blocks `signals` in the calling thread.
    pub(crate) fn block(signals: &[libc::c_int]) -> io::Result<SignalSet> {
        let mut set = SigSet::empty();
        for &s in signals {
            set.add(Signal::try_from(s)?);
        }
        set.thread_block()?;
        Ok(SignalSet(set))
    }

    /// Waits until one of the signals is pending and takes it.
    pub(crate) fn wait(&self) -> io::Result<libc::c_int> {
        loop {
            match self.0.wait() {
                Ok(signal) => return Ok(signal as libc::c_int),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Threads of this process, from `/proc/self/stat` (`None` if unreadable).
fn thread_count() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; fields after it do not.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(17)?.parse().ok()
}

/// Which side of a [`fork`] the caller is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Forked {
    /// The original process; the child has this pid.
    Parent(libc::pid_t),
    /// The new process.
    Child,
}

/// Forks the process. Refused unless the process has a single thread, so
/// that the child cannot inherit a lock some other thread held.
pub(crate) fn fork() -> io::Result<Forked> {
    match thread_count() {
        Some(1) => {}
        Some(_) => {
            return Err(io::Error::other(
                "cannot fork: the process already runs several threads",
            ))
        }
        None => {
            return Err(io::Error::other(
                "cannot fork: /proc/self/stat is unreadable, so the threads cannot be counted",
            ))
        }
    }
    // SAFETY: the process has one thread (checked above), so the child's
    // memory, locks included, is in a consistent state.
    match unsafe { unistd::fork() }? {
        unistd::ForkResult::Child => Ok(Forked::Child),
        unistd::ForkResult::Parent { child } => Ok(Forked::Parent(child.as_raw())),
    }
}

/// Starts a new session, leaving the controlling terminal behind.
pub(crate) fn setsid() -> io::Result<()> {
    unistd::setsid()?;
    Ok(())
}

/// Waits for child `pid` to end and gives its exit code (128 + the signal
/// number when a signal killed it).
pub(crate) fn wait_child(pid: libc::pid_t) -> io::Result<i32> {
    loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => return Ok(128 + signal as i32),
            Ok(_) => return Ok(1),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Points standard input, output and error at `/dev/null`.
pub(crate) fn stdio_to_null() -> io::Result<()> {
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    unistd::dup2_stdin(&null)?;
    unistd::dup2_stdout(&null)?;
    unistd::dup2_stderr(&null)?;
    Ok(())
}

/// Syslog priorities used by the tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Priority {
    Err,
    Warning,
    Notice,
    Info,
}

/// Opens the connection to syslog under `ident`, facility "daemon", with
/// the pid in every line.
pub(crate) fn open_syslog(ident: &'static CStr) {
    use nix::syslog::{openlog, Facility, LogFlags};
    // Nothing to report to when syslog itself cannot be reached.
    let _ = openlog(Some(ident), LogFlags::LOG_PID, Facility::LOG_DAEMON);
}

/// Sends one line to syslog (NUL bytes in it become spaces).
pub(crate) fn syslog(priority: Priority, line: &str) {
    use nix::syslog::Severity;
    let level = match priority {
        Priority::Err => Severity::LOG_ERR,
        Priority::Warning => Severity::LOG_WARNING,
        Priority::Notice => Severity::LOG_NOTICE,
        Priority::Info => Severity::LOG_INFO,
    };
    // Nothing to report to when syslog itself fails.
    let _ = nix::syslog::syslog(level, line.replace('\0', " ").as_str());
}

/// This process's soft limit on open files.
pub fn fd_limit() -> u64 {
    getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft)
}

/// Raises this process's soft limit on open files to its hard limit, so that
/// a server can hold as many connections as the system allows it. The hard
/// limit is the operator's (systemd's `LimitNOFILE=`, say) and is kept.
/// Returns the limit in force afterwards.
pub fn raise_fd_limit() -> io::Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return Ok(hard);
    }
    Ok(soft)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_user_and_group_exist() {
        let root = user_by_name("root").unwrap().expect("root in passwd");
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(user_by_uid(0).unwrap(), Some(root));
        assert_eq!(group_by_name("root").unwrap(), Some(0));
    }

    #[test]
    fn unknown_names_are_none() {
        assert_eq!(user_by_name("no-such-user-xyzzy").unwrap(), None);
        assert_eq!(user_by_name("nul\0byte").unwrap(), None);
        assert_eq!(group_by_name("no-such-group-xyzzy").unwrap(), None);
    }

    #[test]
    fn thread_count_is_read() {
        // The test harness runs this on a thread of its own besides main.
        assert!(thread_count().is_some_and(|n| n >= 1));
    }
}
