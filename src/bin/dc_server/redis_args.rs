//! The options of a Redis store (`-store-auth`, `-store-prefix`,
//! `-store-timeout`, `-store-remove-sync`, and `-store-tls-ca`,
//! `-store-tls-cert`, `-store-tls-key` for `rediss://`), put on the
//! options that `-store redis://...` made, or refused without them.

use distcache::internals::cache::redis;
use distcache::internals::cli::{number_in, Args, CliError};
use distcache::RedisOptions;
use std::path::PathBuf;
use std::time::Duration;

const MIN_STORE_TIMEOUT_MS: u64 = 10;
const MAX_STORE_TIMEOUT_MS: u64 = 600_000;

/// The `-store-*` options of a Redis store.
#[derive(Default)]
pub(crate) struct RedisArgs {
    password: Option<String>,
    prefix: Option<String>,
    timeout_ms: Option<u64>,
    remove_sync: Option<bool>,
    tls_ca: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
}

impl RedisArgs {
    /// Takes option `name` if it is one of these.
    pub(crate) fn take(&mut self, name: &str, args: &mut Args) -> Result<bool, CliError> {
        match name {
            "store-auth" => self.password = Some(args.parsed("store-auth", read_password)?),
            "store-prefix" => self.prefix = Some(args.parsed("store-prefix", non_empty)?),
            "store-timeout" => {
                let range = number_in(MIN_STORE_TIMEOUT_MS, MAX_STORE_TIMEOUT_MS);
                self.timeout_ms = Some(args.parsed("store-timeout", range)?);
            }
            "store-remove-sync" => {
                self.remove_sync = Some(args.parsed("store-remove-sync", on_off)?)
            }
            "store-tls-ca" => self.tls_ca = Some(args.parsed("store-tls-ca", file_path)?),
            "store-tls-cert" => self.tls_cert = Some(args.parsed("store-tls-cert", file_path)?),
            "store-tls-key" => self.tls_key = Some(args.parsed("store-tls-key", file_path)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Puts these on the Redis store's `options`; an error when some were
    /// given and there is no Redis store.
    pub(crate) fn apply(self, options: Option<&mut RedisOptions>) -> Result<(), CliError> {
        let tls_given = self.tls_ca.is_some() || self.tls_cert.is_some() || self.tls_key.is_some();
        let Some(options) = options else {
            if tls_given {
                return Err(CliError::Missing(
                    "-store-tls-ca, -store-tls-cert and -store-tls-key need -store rediss://...",
                ));
            }
            let given = self.password.is_some()
                || self.prefix.is_some()
                || self.timeout_ms.is_some()
                || self.remove_sync.is_some();
            return match given {
                false => Ok(()),
                true => Err(CliError::Missing(
                    "-store-auth, -store-prefix, -store-timeout and -store-remove-sync \
                     need -store redis://...",
                )),
            };
        };
        match &mut options.tls {
            None if tls_given => {
                return Err(CliError::Missing(
                    "-store-tls-ca, -store-tls-cert and -store-tls-key need the TLS scheme: \
                     -store rediss://... (redis:// is plain text)",
                ))
            }
            None => {}
            Some(tls) => {
                if let Some(path) = &self.tls_ca {
                    tls.ca =
                        Some(redis::read_ca(path).map_err(|e| bad_file("store-tls-ca", path, e))?);
                }
                match (&self.tls_cert, &self.tls_key) {
                    (Some(cert), Some(key)) => {
                        tls.identity = Some(redis::read_identity(cert, key).map_err(|e| {
                            CliError::BadValue {
                                option: "store-tls-cert and -store-tls-key",
                                value: format!("{}', '{}", cert.display(), key.display()),
                                why: e.to_string(),
                            }
                        })?);
                    }
                    (Some(_), None) => {
                        return Err(CliError::Missing(
                            "-store-tls-cert needs -store-tls-key, the certificate's key",
                        ))
                    }
                    (None, Some(_)) => {
                        return Err(CliError::Missing(
                            "-store-tls-key needs -store-tls-cert, the key's certificate",
                        ))
                    }
                    (None, None) => {}
                }
            }
        }
        options.password = self.password;
        if let Some(prefix) = self.prefix {
            options.prefix = prefix.into_bytes();
        }
        if let Some(ms) = self.timeout_ms {
            options.timeout = Duration::from_millis(ms);
        }
        if let Some(on) = self.remove_sync {
            options.remove_sync = on;
        }
        Ok(())
    }
}

fn read_password(path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("can't read it: {e}"))?;
    redis::password_from(&text).map_err(|e| e.to_string())
}

fn file_path(s: &str) -> Result<PathBuf, &'static str> {
    if s.is_empty() {
        Err("must be a file name")
    } else {
        Ok(PathBuf::from(s))
    }
}

/// A file given to `option` that could not be used (the error names it).
fn bad_file(option: &'static str, path: &std::path::Path, e: redis::RedisError) -> CliError {
    CliError::BadValue {
        option,
        value: path.display().to_string(),
        why: e.to_string(),
    }
}

fn non_empty(s: &str) -> Result<String, &'static str> {
    if s.is_empty() {
        Err("must not be empty")
    } else {
        Ok(s.to_string())
    }
}

fn on_off(s: &str) -> Result<bool, &'static str> {
    match s {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err("must be 'on' or 'off'"),
    }
}
