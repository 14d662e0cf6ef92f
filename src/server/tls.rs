//! gRPC over TLS (rustls): the server's certificate chain and key and, for mutual TLS, the CA
//! certificates that client certificates must chain to.

use std::path::Path;
use std::time::Duration;

use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use super::StartupError;
use crate::config::ServeConfig;

/// How long a client may take to complete the handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS settings of `config`, read from its PEM files and checked; `None`: plaintext.
pub fn server_config(config: &ServeConfig) -> Result<Option<ServerTlsConfig>, StartupError> {
    let (cert, key) = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => (cert, key),
        (None, None) if config.tls_client_ca.is_some() => {
            return Err(invalid("--tls-client-ca needs --tls-cert and --tls-key"));
        }
        (None, None) => return Ok(None),
        _ => return Err(invalid("--tls-cert and --tls-key go together")),
    };
    let identity = Identity::from_pem(read_pem(cert, "--tls-cert")?, read_pem(key, "--tls-key")?);
    let mut tls = ServerTlsConfig::new()
        .identity(identity)
        .timeout(HANDSHAKE_TIMEOUT);
    if let Some(ca) = &config.tls_client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read_pem(ca, "--tls-client-ca")?));
    }
    // Parses the PEM and matches the key to the certificate now, so that a bad file stops the
    // start instead of every handshake.
    Server::builder()
        .tls_config(tls.clone())
        .map_err(|e| invalid(format!("TLS: {}", error_chain(&e))))?;
    Ok(Some(tls))
}

fn read_pem(path: &Path, flag: &str) -> Result<Vec<u8>, StartupError> {
    std::fs::read(path).map_err(|e| invalid(format!("{flag} {}: {e}", path.display())))
}

fn invalid(message: impl Into<String>) -> StartupError {
    StartupError::Config(message.into())
}

/// An error with its causes: tonic's own message says only "transport error".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}
