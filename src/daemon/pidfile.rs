//! The pid file.

use super::DaemonError;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

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
    /// first, so that a later change of directory does not matter). The
    /// file appears whole: it is written beside `path` and renamed, so
    /// that a reader never finds it empty.
    pub fn write(path: &Path) -> Result<PidFile, DaemonError> {
        let err = |e| DaemonError::PidFile(path.into(), e);
        let path = std::path::absolute(path).map_err(err)?;
        let pid = std::process::id();
        let mut beside = path.clone().into_os_string();
        beside.push(format!(".{pid}.tmp"));
        let beside = PathBuf::from(beside);
        let written =
            fs::write(&beside, format!("{pid}\n")).and_then(|()| fs::rename(&beside, &path));
        if let Err(e) = written {
            let _ = fs::remove_file(&beside);
            return Err(err(e));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_file_is_written_and_removed_only_if_ours() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.pid");
        let mut p = PidFile::write(&path).unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 1, "nothing left beside it: {names:?}");
        p.remove().unwrap();
        assert!(!path.exists());

        let mut q = PidFile::write(&path).unwrap();
        fs::write(&path, "1\n").unwrap(); // another instance took it over
        q.remove().unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "1\n");

        let err = PidFile::write(&dir.path().join("no/such/dir.pid")).unwrap_err();
        assert!(err.to_string().contains("no/such/dir.pid"), "{err}");
    }
}
