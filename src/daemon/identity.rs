//! Who the daemon is and who owns its socket files: the owner, group and
//! mode of UNIX socket files, and `-user`. Users and groups are resolved by
//! [`crate::nal::owner`], the rules libnal's `NAL_LISTENER_set_fs_owner()`
//! follows too.

use super::DaemonError;
use crate::nal::owner::{lookup_user, owner_ids};
use crate::sys::process::{self, IdentityStep};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Gives the socket file at `path` the owner `owner` (and, unless `group`
/// is given, that user's primary group) and the group `group`, as the
/// original's `-sockowner` and `-sockgroup` did.
pub fn set_socket_owner(
    path: &Path,
    owner: Option<&str>,
    group: Option<&str>,
) -> Result<(), DaemonError> {
    let (uid, gid) = owner_ids(owner, group)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nal::NalError;
    use std::os::unix::fs::MetadataExt;

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
        assert!(
            matches!(err, DaemonError::Owner(NalError::NoSuchUser(_))),
            "{err}"
        );
        let err = set_socket_mode(&dir.path().join("absent"), 0o600).unwrap_err();
        assert!(err.to_string().contains("absent"), "{err}");
    }

    #[test]
    fn an_unknown_user_is_refused() {
        let err = drop_privileges("no-such-user-xyzzy").unwrap_err();
        assert_eq!(err.to_string(), "no such user 'no-such-user-xyzzy'");
    }
}
