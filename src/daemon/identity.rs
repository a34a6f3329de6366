//! Who the daemon is and who owns its socket files: the owner, group and
//! mode of UNIX socket files, and `-user`. Users and groups are resolved by
//! [`crate::nal::owner`], the rules libnal's `NAL_LISTENER_set_fs_owner()`
//! follows too.

use super::{DaemonError, DaemonOptions};
use crate::nal::owner::{lookup_user, owner_ids};
use crate::nal::NalError;
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

/// Gives the socket file at `path` the owner and group of `-sockowner` and
/// `-sockgroup`, if either is set; an error names the option to blame (the
/// group's when its group is unknown or no owner was given).
pub(super) fn own_socket(path: &Path, o: &DaemonOptions) -> Result<(), DaemonError> {
    if o.sockowner.is_none() && o.sockgroup.is_none() {
        return Ok(());
    }
    set_socket_owner(path, o.sockowner.as_deref(), o.sockgroup.as_deref()).map_err(|e| {
        let blame_group =
            matches!(e, DaemonError::Owner(NalError::NoSuchGroup(_))) || o.sockowner.is_none();
        DaemonError::Option {
            option: if blame_group {
                "sockgroup"
            } else {
                "sockowner"
            },
            source: Box::new(e),
        }
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

    #[test]
    fn a_failed_owner_blames_the_option_at_fault() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        std::fs::write(&path, b"").unwrap();
        let blame = |owner: Option<&str>, group: Option<&str>| {
            let o = DaemonOptions {
                sockowner: owner.map(String::from),
                sockgroup: group.map(String::from),
                ..DaemonOptions::default()
            };
            own_socket(&path, &o).unwrap_err().to_string()
        };
        assert_eq!(
            blame(Some("no-such-user-xyzzy"), Some("0")),
            "-sockowner: no such user 'no-such-user-xyzzy'"
        );
        assert_eq!(
            blame(Some("0"), Some("no-such-group-xyzzy")),
            "-sockgroup: no such group 'no-such-group-xyzzy'"
        );
        assert_eq!(
            blame(None, Some("no-such-group-xyzzy")),
            "-sockgroup: no such group 'no-such-group-xyzzy'"
        );
        let nothing = DaemonOptions::default();
        own_socket(&dir.path().join("absent"), &nothing).unwrap();
    }
}
