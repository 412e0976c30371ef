//! HTTPS for `strata serve`: the node's certificate and key, and a
//! listener that hands axum connections whose TLS handshake is done.
//!
//! Handshakes run on their own tasks, bounded in number and time, so a
//! client that connects and says nothing holds up no one else.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::config::TlsConfig;
use crate::error::{Result, StorageError};

/// How long a client has to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once, at most.
const MAX_HANDSHAKES: usize = 256;

fn read(what: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        StorageError::Configuration(format!("tls.{what}: cannot read {}: {e}", path.display()))
    })
}

/// The server side of `config`: its certificate chain and private key.
pub(crate) fn server_config(config: &TlsConfig) -> Result<Arc<rustls::ServerConfig>> {
    let bad = |what: &str, path: &Path, e: &dyn std::fmt::Display| {
        StorageError::Configuration(format!("tls.{what}: {}: {e}", path.display()))
    };
    let chain = strata_client::tls::certificates_from_pem(&read("cert", &config.cert)?)
        .map_err(|e| bad("cert", &config.cert, &e))?;
    let key = PrivateKeyDer::from_pem_slice(&read("key", &config.key)?)
        .map_err(|e| bad("key", &config.key, &e))?;
    let mut server = rustls::ServerConfig::builder_with_provider(strata_client::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| StorageError::Configuration(format!("tls: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| bad("key", &config.key, &e))?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(server))
}

/// The CA certificates peers' certificates are checked against, if
/// configured (the system's roots otherwise).
pub(crate) fn peer_roots(config: &TlsConfig) -> Result<Option<Vec<u8>>> {
    config.ca.as_deref().map(|p| read("ca", p)).transpose()
}

/// Connections whose handshake completed, for `axum::serve`.
pub(crate) struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Accepts on `tcp` and runs each handshake with `config`.
    pub(crate) fn new(tcp: TcpListener, config: Arc<rustls::ServerConfig>) -> Result<Self> {
        let local = tcp
            .local_addr()
            .map_err(|e| StorageError::Io(format!("listener address: {e}")))?;
        let (tx, ready) = mpsc::channel(MAX_HANDSHAKES);
        let acceptor = tokio::spawn(accept_loop(tcp, TlsAcceptor::from(config), tx));
        Ok(TlsListener {
            ready,
            local,
            acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

async fn accept_loop(
    tcp: TcpListener,
    tls: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, addr) = match tcp.accept().await {
            Ok(c) => c,
            // Out of descriptors and the like: wait, as axum's own
            // listener does, rather than spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let tls = tls.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            // A failed or slow handshake drops the connection; the client
            // sees it closed.
            if let Ok(Ok(stream)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await
            {
                let _ = ready.send((stream, addr)).await;
            }
            drop(slot);
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept loop ended (only when aborted): no more
            // connections come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(name)
    }

    fn tls(cert: &str, key: &str) -> TlsConfig {
        TlsConfig {
            cert: fixture(cert),
            key: fixture(key),
            ca: None,
        }
    }

    fn refused(c: &TlsConfig) -> String {
        match server_config(c) {
            Ok(_) => panic!("{c:?} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_fixture_certificate_and_key_make_a_server() {
        assert!(server_config(&tls("node.pem", "node.key")).is_ok());
    }

    #[test]
    fn missing_or_wrong_files_are_configuration_errors_naming_the_setting() {
        let e = refused(&tls("absent.pem", "node.key"));
        assert!(e.contains("tls.cert") && e.contains("absent.pem"), "{e}");
        let e = refused(&tls("node.pem", "absent.key"));
        assert!(e.contains("tls.key"), "{e}");
        // A certificate where the key should be, a key where the
        // certificate should be.
        let e = refused(&tls("node.pem", "node.pem"));
        assert!(e.contains("tls.key"), "{e}");
        let e = refused(&tls("node.key", "node.key"));
        assert!(e.contains("tls.cert"), "{e}");
        let mut c = tls("node.pem", "node.key");
        c.ca = Some(fixture("absent-ca.pem"));
        assert!(peer_roots(&c).is_err());
    }
}
