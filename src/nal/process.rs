//! Process-level system calls the daemon tools need and neither the standard
//! library nor socket2 offers: user and group lookup, changing identity,
//! signal masks, `fork`, `setsid`, `waitpid`, standard descriptors and
//! syslog. Each wrapper is safe to call; the rest of the crate stays free of
//! `unsafe`.

use std::ffi::{CStr, CString};
use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsRawFd;

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

/// Which key a password-database lookup uses.
enum UserKey<'a> {
    Name(&'a CStr),
    Uid(libc::uid_t),
}

/// Room for the strings of one database entry; grown on ERANGE up to this.
const MAX_ENTRY_BUFFER: usize = 1 << 20;

/// Looks a user up by name; `Ok(None)` when there is no such user.
pub(crate) fn user_by_name(name: &str) -> io::Result<Option<UserEntry>> {
    let Ok(c) = CString::new(name) else {
        return Ok(None);
    };
    lookup_user(UserKey::Name(&c))
}

/// Looks a user up by id; `Ok(None)` when no account has it.
pub(crate) fn user_by_uid(uid: u32) -> io::Result<Option<UserEntry>> {
    lookup_user(UserKey::Uid(uid))
}

/// Runs a `get*_r` database lookup with a scratch buffer, growing the
/// buffer while the call reports `ERANGE` (up to [`MAX_ENTRY_BUFFER`]).
/// `call` returns the call's result code and, on success, what it found.
fn with_entry_buffer<T>(
    mut call: impl FnMut(&mut [u8]) -> (libc::c_int, Option<T>),
) -> io::Result<Option<T>> {
    let mut buf = vec![0u8; 1024];
    loop {
        let (rc, found) = call(&mut buf);
        if rc == libc::ERANGE && buf.len() < MAX_ENTRY_BUFFER {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        return Ok(found);
    }
}

fn lookup_user(key: UserKey<'_>) -> io::Result<Option<UserEntry>> {
    with_entry_buffer(|buf| {
        // SAFETY: an all-zero passwd (null pointers, zero ids) is a valid
        // value of this plain C struct; it is only an output buffer.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = match &key {
            // SAFETY: `name` is NUL-terminated; `pwd`, `buf` (with its true
            // length) and `result` are valid for writes during the call.
            UserKey::Name(name) => unsafe {
                libc::getpwnam_r(
                    name.as_ptr(),
                    &mut pwd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    &mut result,
                )
            },
            // SAFETY: as above, without the name.
            UserKey::Uid(uid) => unsafe {
                libc::getpwuid_r(
                    *uid,
                    &mut pwd,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    &mut result,
                )
            },
        };
        if rc != 0 || result.is_null() {
            return (rc, None);
        }
        let name = if pwd.pw_name.is_null() {
            String::new()
        } else {
            // SAFETY: on success pw_name points to a NUL-terminated string
            // inside `buf`, which is alive here.
            unsafe { CStr::from_ptr(pwd.pw_name) }
                .to_string_lossy()
                .into_owned()
        };
        let entry = UserEntry {
            name,
            uid: pwd.pw_uid,
            gid: pwd.pw_gid,
        };
        (0, Some(entry))
    })
}

/// Looks a group up by name and gives its id; `Ok(None)` when there is none.
pub(crate) fn group_by_name(name: &str) -> io::Result<Option<u32>> {
    let Ok(c) = CString::new(name) else {
        return Ok(None);
    };
    with_entry_buffer(|buf| {
        // SAFETY: an all-zero group is a valid value of this plain C struct;
        // it is only an output buffer.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: `c` is NUL-terminated; `grp`, `buf` (with its true length)
        // and `result` are valid for writes during the call.
        let rc = unsafe {
            libc::getgrnam_r(
                c.as_ptr(),
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        (rc, (rc == 0 && !result.is_null()).then_some(grp.gr_gid))
    })
}

/// The real and effective user ids and the effective group id.
pub(crate) fn current_ids() -> (u32, u32, u32) {
    // SAFETY: these calls take no arguments and cannot fail.
    unsafe { (libc::getuid(), libc::geteuid(), libc::getegid()) }
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

/// Becomes user `name` (`uid`, primary group `gid`) for good: its supplementary groups (`initgroups`), its
/// group, then its user id, in that order; then checks that root cannot be
/// regained. Changes every thread of the process.
pub(crate) fn become_user(name: &str, uid: u32, gid: u32) -> Result<(), (IdentityStep, io::Error)> {
    let name = CString::new(name).map_err(|_| {
        (
            IdentityStep::Groups,
            io::Error::new(io::ErrorKind::InvalidInput, "user name contains NUL"),
        )
    })?;
    // SAFETY: `name` is a NUL-terminated string alive during the call.
    if unsafe { libc::initgroups(name.as_ptr(), gid) } != 0 {
        return Err((IdentityStep::Groups, io::Error::last_os_error()));
    }
    // SAFETY: plain system call with an integer argument.
    if unsafe { libc::setgid(gid) } != 0 {
        return Err((IdentityStep::Gid, io::Error::last_os_error()));
    }
    // SAFETY: plain system call with an integer argument.
    if unsafe { libc::setuid(uid) } != 0 {
        return Err((IdentityStep::Uid, io::Error::last_os_error()));
    }
    // SAFETY: plain system calls with integer arguments. Succeeding here
    // means the change was not permanent.
    if uid != 0 && unsafe { libc::setuid(0) } == 0 {
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
    // handler field is then set to SIG_IGN and the mask emptied.
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
#[derive(Clone, Copy)]
pub(crate) struct SignalSet(libc::sigset_t);

impl std::fmt::Debug for SignalSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SignalSet")
    }
}

impl SignalSet {
    /// Blocks `signals` in the calling thread.
    pub(crate) fn block(signals: &[libc::c_int]) -> io::Result<SignalSet> {
        // SAFETY: an all-zero sigset_t is valid storage; sigemptyset then
        // initialises it.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is valid, writable storage for a sigset_t.
        unsafe { libc::sigemptyset(&mut set) };
        for &s in signals {
            // SAFETY: `set` was initialised by sigemptyset.
            if unsafe { libc::sigaddset(&mut set, s) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // SAFETY: `set` is an initialised sigset_t; no old mask is asked.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(SignalSet(set))
    }

    /// Waits until one of the signals is pending and takes it.
    pub(crate) fn wait(&self) -> io::Result<libc::c_int> {
        let mut signal: libc::c_int = 0;
        loop {
            // SAFETY: `self.0` is an initialised sigset_t and `signal` is
            // writable; both outlive the call.
            let rc = unsafe { libc::sigwait(&self.0, &mut signal) };
            match rc {
                0 => return Ok(signal),
                libc::EINTR => continue,
                e => return Err(io::Error::from_raw_os_error(e)),
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
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// Starts a new session, leaving the controlling terminal behind.
pub(crate) fn setsid() -> io::Result<()> {
    // SAFETY: plain system call without arguments.
    if unsafe { libc::setsid() } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Waits for child `pid` to end and gives its exit code (128 + the signal
/// number when a signal killed it).
pub(crate) fn wait_child(pid: libc::pid_t) -> io::Result<i32> {
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `status` is writable for the call's duration.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    if libc::WIFEXITED(status) {
        Ok(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Ok(128 + libc::WTERMSIG(status))
    } else {
        Ok(1)
    }
}

/// Points standard input, output and error at `/dev/null`.
pub(crate) fn stdio_to_null() -> io::Result<()> {
    let null = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for fd in 0..=2 {
        // SAFETY: `null` is an open descriptor for the duration of the call;
        // dup2 atomically replaces descriptor `fd`, which no Rust object
        // owns exclusively (they are the process's standard streams).
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } == -1 {
            return Err(io::Error::last_os_error());
        }
    }
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
    // SAFETY: `ident` is a NUL-terminated string that lives for the rest of
    // the program, as openlog requires (it keeps the pointer).
    unsafe { libc::openlog(ident.as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) };
}

/// Sends one line to syslog (NUL bytes in it become spaces).
pub(crate) fn syslog(priority: Priority, line: &str) {
    let level = match priority {
        Priority::Err => libc::LOG_ERR,
        Priority::Warning => libc::LOG_WARNING,
        Priority::Notice => libc::LOG_NOTICE,
        Priority::Info => libc::LOG_INFO,
    };
    let msg = CString::new(line.replace('\0', " ")).unwrap_or_default();
    // SAFETY: the format is the literal "%s" and its one argument is a
    // NUL-terminated string alive during the call.
    unsafe { libc::syslog(level, c"%s".as_ptr(), msg.as_ptr()) };
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
