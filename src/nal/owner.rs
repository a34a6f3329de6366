//! Who owns a UNIX socket file: users and groups named by name or by
//! numeric id. The one rule for libnal's `NAL_LISTENER_set_fs_owner()` and
//! for the daemon tools' `-sockowner`, `-sockgroup` and `-user`:
//!
//! - a user is looked up by name, then, when no account has that name and
//!   it is a number, by user id (an id with no account is refused, since
//!   its primary group would be unknown);
//! - a group is looked up by name, then a number is taken as it is;
//! - a user alone also gives the file the user's primary group; a group
//!   given beside it wins.

use super::NalError;
use crate::sys::process::{self, UserEntry};
use std::io;
use std::path::Path;

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
pub fn lookup_user(user: &str) -> Result<User, NalError> {
    let lookup = |r: io::Result<Option<UserEntry>>| r.map_err(|e| NalError::Lookup(user.into(), e));
    let mut found = lookup(process::user_by_name(user))?;
    if found.is_none() {
        if let Ok(uid) = user.parse::<u32>() {
            found = lookup(process::user_by_uid(uid))?;
        }
    }
    let u = found.ok_or_else(|| NalError::NoSuchUser(user.into()))?;
    Ok(User {
        name: u.name,
        uid: u.uid,
        gid: u.gid,
    })
}

/// Looks up a group id by name, or takes a numeric id as it is.
pub fn lookup_group(group: &str) -> Result<u32, NalError> {
    match process::group_by_name(group) {
        Ok(Some(gid)) => Ok(gid),
        Ok(None) => group
            .parse::<u32>()
            .map_err(|_| NalError::NoSuchGroup(group.into())),
        Err(e) => Err(NalError::Lookup(group.into(), e)),
    }
}

/// The user and group ids `owner` and `group` name (either may be absent),
/// by the rules above.
pub fn owner_ids(
    owner: Option<&str>,
    group: Option<&str>,
) -> Result<(Option<u32>, Option<u32>), NalError> {
    let user = owner.map(lookup_user).transpose()?;
    let gid = match group {
        Some(g) => Some(lookup_group(g)?),
        None => user.as_ref().map(|u| u.gid),
    };
    Ok((user.map(|u| u.uid), gid))
}

/// Gives the file at `path` the owner and group `owner` and `group` name.
/// A failed lookup is the lookup's error; a failed `chown(2)` is
/// [`NalError::Io`].
pub fn set_owner(path: &Path, owner: Option<&str>, group: Option<&str>) -> Result<(), NalError> {
    let (uid, gid) = owner_ids(owner, group)?;
    std::os::unix::fs::chown(path, uid, gid)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn users_and_groups_by_name_or_number() {
        assert_eq!(lookup_user("root").unwrap().uid, 0);
        assert_eq!(lookup_user("0").unwrap().name, "root");
        let err = lookup_user("no-such-user-xyzzy").unwrap_err();
        assert_eq!(err.to_string(), "no such user 'no-such-user-xyzzy'");
        assert_eq!(lookup_group("root").unwrap(), 0);
        assert_eq!(lookup_group("4242").unwrap(), 4242);
        let err = lookup_group("no-such-group-xyzzy").unwrap_err();
        assert_eq!(err.to_string(), "no such group 'no-such-group-xyzzy'");
    }

    #[test]
    fn a_user_alone_brings_its_group_and_a_group_wins() {
        let root = lookup_user("root").unwrap();
        assert_eq!(
            owner_ids(Some("0"), None).unwrap(),
            (Some(0), Some(root.gid))
        );
        assert_eq!(
            owner_ids(Some("root"), Some("4242")).unwrap(),
            (Some(0), Some(4242))
        );
        assert_eq!(owner_ids(None, Some("4242")).unwrap(), (None, Some(4242)));
        assert_eq!(owner_ids(None, None).unwrap(), (None, None));
    }

    #[test]
    fn set_owner_by_number_and_refuses_the_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"").unwrap();
        // Giving a file to its own owner and group is always allowed.
        let meta = std::fs::metadata(&path).unwrap();
        let (uid, gid) = (meta.uid().to_string(), meta.gid().to_string());
        set_owner(&path, Some(&uid), Some(&gid)).unwrap();
        let after = std::fs::metadata(&path).unwrap();
        assert_eq!((after.uid(), after.gid()), (meta.uid(), meta.gid()));
        assert!(matches!(
            set_owner(&path, Some("no-such-user-xyzzy"), None),
            Err(NalError::NoSuchUser(_))
        ));
        assert!(matches!(
            set_owner(&dir.path().join("absent"), None, Some(&gid)),
            Err(NalError::Io(_))
        ));
    }
}
