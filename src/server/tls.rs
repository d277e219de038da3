//! TLS for clients (`--tls-port`), with rustls: server certificate and key
//! from PEM files, and optionally mutual TLS against a CA
//! (`--tls-ca-cert-file`, `--tls-auth-clients yes`).

use std::io;
use std::sync::Arc;

use rustls::ServerConfig as TlsConfig;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::ServerConfig;

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// The acceptor for `--tls-port`, or None when TLS is not configured.
pub fn acceptor(config: &ServerConfig) -> io::Result<Option<TlsAcceptor>> {
    if config.tls_port == 0 {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (Some(cert_file), Some(key_file)) = (&config.tls_cert_file, &config.tls_key_file) else {
        return Err(invalid("--tls-port needs --tls-cert-file and --tls-key-file".into()));
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect())
        .map_err(|e| invalid(format!("{}: {e}", cert_file.display())))?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| invalid(format!("{}: {e}", key_file.display())))?;
    let builder = TlsConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?;
    let builder = match (&config.tls_ca_cert_file, config.tls_auth_clients) {
        (Some(ca_file), true) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in
                CertificateDer::pem_file_iter(ca_file).map_err(|e| invalid(format!("{}: {e}", ca_file.display())))?
            {
                roots
                    .add(ca.map_err(|e| invalid(format!("{}: {e}", ca_file.display())))?)
                    .map_err(|e| invalid(e.to_string()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| invalid(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let tls = builder
        .with_single_cert(certs, key)
        .map_err(|e| invalid(e.to_string()))?;
    Ok(Some(TlsAcceptor::from(Arc::new(tls))))
}
