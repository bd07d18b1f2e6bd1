//! Serves the HTTP API, over plain HTTP or, with `[http.tls]`, over HTTPS
//! with rustls; both stop gracefully when told to.
//!
//! One crypto provider for the whole process: ring, which reqwest and
//! lettre already use through rustls. It is installed as the process
//! default before any TLS configuration is built, because rustls panics
//! ("no process-level CryptoProvider") when it cannot tell which one to
//! use, and the server's configuration names it explicitly besides.
//!
//! What it must not do: start with a certificate or key it cannot use. A
//! missing file, a file without PEM, or a key that is not the
//! certificate's is a configuration error that names the file, found
//! before the service opens its state.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;
use crate::error::Error;

/// The rustls configuration for `[http.tls]`.
pub fn server_config(tls: &TlsConfig) -> Result<Arc<rustls::ServerConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // Err only when a default is already installed: then that one stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs = certificates(&tls.cert)?;
    let key = PrivateKeyDer::from_pem_file(&tls.key).map_err(|e| pem_error("http.tls.key", &tls.key, e))?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config(format!("http.tls: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            Error::config(format!(
                "http.tls: the key {} does not go with the certificate {}: {e}",
                tls.key.display(),
                tls.cert.display()
            ))
        })?;
    Ok(Arc::new(config))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error("http.tls.cert", path, e))?;
    if certs.is_empty() {
        return Err(Error::config(format!("http.tls.cert: {} holds no PEM certificate", path.display())));
    }
    Ok(certs)
}

fn pem_error(key: &str, path: &Path, error: rustls::pki_types::pem::Error) -> Error {
    use rustls::pki_types::pem::Error as Pem;
    let why = match error {
        Pem::Io(e) if e.kind() == std::io::ErrorKind::NotFound => "no such file".to_string(),
        Pem::Io(e) => format!("cannot read it: {e}"),
        Pem::NoItemsFound => "no PEM item of the right kind in it".to_string(),
        other => format!("not valid PEM: {other}"),
    };
    Error::config(format!("{key}: {}: {why}", path.display()))
}

/// Serves `app` on `listener` until `stop` turns true, then lets the
/// requests in flight finish (up to 5 s).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let Some(tls) = tls else {
        let shutdown = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
            tracing::error!(error = %e, "HTTP server failed");
        }
        return;
    };
    let handle = axum_server::Handle::<std::net::SocketAddr>::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        let _ = stop.wait_for(|stop| *stop).await;
        stopper.graceful_shutdown(Some(Duration::from_secs(5)));
    });
    let acceptor =
        axum_server::tls_rustls::RustlsAcceptor::new(axum_server::tls_rustls::RustlsConfig::from_config(tls));
    // HTTP/1 only, as over plain HTTP: one protocol surface either way.
    let served = axum_server::Server::from_listener(listener)
        .http1_only()
        .acceptor(acceptor)
        .handle(handle)
        .serve(app.into_make_service())
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "HTTPS server failed");
    }
}
