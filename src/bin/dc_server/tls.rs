//! TLS on dc_server's listeners: the `-tls-*` options, checked against the
//! listeners, and the credentials put on them.

use distcache::internals::cli::{Args, CliError, TlsFiles};
use distcache::internals::daemon::{log, Level};
use distcache::{Server, ServerOptions, ServerTls};
use std::sync::Arc;

/// The `-tls-*` options.
#[derive(Default)]
pub(crate) struct TlsArgs {
    files: TlsFiles,
    no_client_cert: bool,
    tls12: bool,
}

impl TlsArgs {
    /// Takes option `name` if it is one of these.
    pub(crate) fn take(&mut self, name: &str, args: &mut Args) -> Result<bool, CliError> {
        match name {
            "tls-no-client-cert" => self.no_client_cert = true,
            "tls12" => self.tls12 = true,
            _ => return self.files.take(name, args),
        }
        Ok(true)
    }

    fn given(&self) -> bool {
        self.files.given() || self.no_client_cert
    }

    /// The TLS listeners' options, checked against the listeners.
    pub(crate) fn options(
        self,
        tls_listeners: Vec<usize>,
    ) -> Result<Option<(ServerOptions, Vec<usize>)>, CliError> {
        if tls_listeners.is_empty() {
            if self.given() || self.tls12 {
                return Err(CliError::Missing("-tls-* options need a TLS: listener"));
            }
            return Ok(None);
        }
        let (Some(cert), Some(key)) = (self.files.cert, self.files.key) else {
            return Err(CliError::Missing(
                "a TLS: listener needs -tls-cert and -tls-key",
            ));
        };
        if self.files.ca.is_none() && !self.no_client_cert {
            return Err(CliError::Missing(
                "a TLS: listener needs -tls-ca (or -tls-no-client-cert)",
            ));
        }
        let options = ServerOptions {
            cert,
            key,
            ca: self.files.ca,
            require_client_cert: !self.no_client_cert,
            allow_tls12: self.tls12,
        };
        Ok(Some((options, tls_listeners)))
    }
}

/// Loads the TLS credentials and puts them on the TLS listeners.
pub(crate) fn serve_tls(
    server: &Server,
    options: &ServerOptions,
    listeners: &[usize],
) -> Result<Arc<ServerTls>, String> {
    let tls = Arc::new(ServerTls::new(options.clone()).map_err(|e| e.to_string())?);
    for &i in listeners {
        server.set_tls(i, tls.clone());
    }
    if !options.require_client_cert {
        log(
            Level::Warning,
            "-tls-no-client-cert: any client that reaches a TLS port can read, add and remove sessions",
        );
    }
    Ok(tls)
}
