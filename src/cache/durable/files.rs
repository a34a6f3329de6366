//! The files of a store directory: the lock file, the log, and the new
//! log a compaction writes before it takes the log's place.

use super::record::{Record, FILE_HEADER};
use super::DurableError;
use crate::sys::file::try_lock_exclusive;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Names of the files in a store directory.
pub const LOCK_FILE: &str = "lock";
/// The log: every session stored, and tombstones of removed ones.
pub const LOG_FILE: &str = "sessions.log";
/// A compaction's output until it replaces the log.
pub const NEW_LOG_FILE: &str = "sessions.log.new";

/// The paths of a store directory's files.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The directory.
    pub dir: PathBuf,
    /// [`LOG_FILE`] in it.
    pub log: PathBuf,
    /// [`NEW_LOG_FILE`] in it.
    pub new_log: PathBuf,
}

impl Paths {
    /// The paths in `dir`.
    pub fn new(dir: &Path) -> Paths {
        Paths {
            dir: dir.into(),
            log: dir.join(LOG_FILE),
            new_log: dir.join(NEW_LOG_FILE),
        }
    }
}

/// An exclusive lock on a store directory, held while this lives: a
/// `flock(2)` on its lock file, which also holds the holder's process id
/// (for the message another process gets).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Creates `dir` if it is missing (mode 700) and locks it; fails at once
    /// if another process holds the lock.
    pub fn acquire(dir: &Path) -> Result<DirLock, DurableError> {
        match fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(e) => return Err(DurableError::Directory(dir.into(), e)),
        }
        let path = dir.join(LOCK_FILE);
        let lock_err = |e| DurableError::Lock(path.clone(), e);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(lock_err)?;
        if !try_lock_exclusive(&file).map_err(lock_err)? {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(DurableError::InUse {
                dir: dir.into(),
                pid: holder.trim().parse().ok(),
            });
        }
        let pid = format!("{}\n", std::process::id());
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(pid.as_bytes()))
            .map_err(lock_err)?;
        Ok(DirLock { _file: file })
    }
}

/// Makes the directory's entries (a file created or renamed in it)
/// durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes a complete log holding `records` at `paths.new_log`, makes it
/// durable, and puts it in the place of the log. Returns the new log,
/// open for appending, and its length.
pub fn write_fresh_log<'a>(
    paths: &Paths,
    records: impl Iterator<Item = Record<'a>>,
) -> Result<(File, u64), DurableError> {
    let write_err = |e| DurableError::Write(paths.new_log.clone(), e);
    let mut file = create_new_log(&paths.new_log).map_err(write_err)?;
    let mut buf = Vec::with_capacity(1 << 20);
    let mut len = FILE_HEADER.len() as u64;
    for r in records {
        r.encode(&mut buf);
        if buf.len() >= 1 << 20 {
            file.write_all(&buf).map_err(write_err)?;
            len += buf.len() as u64;
            buf.clear();
        }
    }
    file.write_all(&buf).map_err(write_err)?;
    len += buf.len() as u64;
    file.sync_data().map_err(write_err)?;
    install_new_log(paths)?;
    Ok((file, len))
}

/// Creates (replacing any left by a crash) the file a new log is written
/// to, with its header, open for appending.
pub fn create_new_log(path: &Path) -> io::Result<File> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(&FILE_HEADER)?;
    Ok(file)
}

/// Renames the new log (already durable) over the log, durably.
pub fn install_new_log(paths: &Paths) -> Result<(), DurableError> {
    fs::rename(&paths.new_log, &paths.log)
        .and_then(|()| sync_dir(&paths.dir))
        .map_err(|e| DurableError::Write(paths.log.clone(), e))
}
