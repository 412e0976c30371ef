//! How clients and nodes check a server's certificate over HTTPS.
//!
//! Both sides use rustls with the ring provider, configured here once: the
//! system's roots by default, or only the given CA certificates (a
//! cluster's own CA), which is stricter than adding them to the system's.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::{ClientError, Result};

/// The crypto provider every TLS connection of Strata uses: ring, with
/// TLS 1.3 and 1.2's ECDHE suites. rustls marks it as lacking
/// post-quantum key exchange; that needs aws-lc, whose C build would
/// double the workspace's build time. The choice is stated in SPEC §19.4.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Parses the certificates of a PEM bundle; at least one is required.
pub fn certificates_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| ClientError::Transport(format!("a bad PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(ClientError::Transport(
            "the PEM data holds no certificate".into(),
        ));
    }
    Ok(certs)
}

/// The TLS configuration of a connection to servers whose certificates are
/// signed by one of the CA certificates in `ca_pem`, or, without it, by a
/// root the system trusts.
pub fn client_config(ca_pem: Option<&[u8]>) -> Result<rustls::ClientConfig> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Transport(format!("TLS: {e}")))?;
    let config = match ca_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates_from_pem(pem)? {
                roots
                    .add(cert)
                    .map_err(|e| ClientError::Transport(format!("a bad CA certificate: {e}")))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            let verifier = rustls_platform_verifier::Verifier::new(provider())
                .map_err(|e| ClientError::Transport(format!("the system's roots: {e}")))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        }
    };
    Ok(config)
}

/// An HTTP client builder whose HTTPS connections use [`client_config`].
/// Every client of Strata starts here: reqwest is built without a default
/// crypto provider, and a builder that did not get a configuration would
/// fail.
pub fn http_builder(ca_pem: Option<&[u8]>) -> Result<reqwest::ClientBuilder> {
    Ok(reqwest::Client::builder().tls_backend_preconfigured(client_config(ca_pem)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_without_a_certificate_is_refused() {
        assert!(certificates_from_pem(b"").is_err());
        assert!(certificates_from_pem(b"not pem at all").is_err());
        let broken = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(certificates_from_pem(broken).is_err());
        assert!(client_config(Some(b"nothing")).is_err());
    }

    #[test]
    fn clients_build_with_and_without_a_ca() {
        assert!(http_builder(None).unwrap().build().is_ok());
    }
}
