//! The rustls configurations of a-chat, built in one place: the crypto provider (ring), the
//! protocol versions (TLS 1.2 and 1.3), and the loading of PEM files: a server's certificate
//! and key, a client's, and trust roots.

use std::fs::File;
use std::io::{self, BufReader};
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// The crypto provider of every configuration a-chat builds: ring's algorithms.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    // rustls 0.23.48 deprecates ring's provider because ring has no post-quantum key exchange;
    // the provider that has one (aws-lc-rs) needs cmake and a C toolchain to build, which the
    // library does not ask of its embedders. rustls offers no other way to build ring's
    // provider (its random source and key loader are private), so the warning is allowed here,
    // once.
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(provider)
}

/// A server configuration (TLS 1.2 and 1.3, [`crypto_provider`], no client certificates)
/// presenting `certs` with `key`. Fails when the key does not fit the chain.
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, rustls::Error> {
    let config = ServerConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

/// A client configuration (TLS 1.2 and 1.3, [`crypto_provider`], no client certificate)
/// trusting `roots`.
pub fn client_config(roots: RootCertStore) -> Result<Arc<ClientConfig>, rustls::Error> {
    let config = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A client configuration ([`client_config`]'s) trusting `roots` that presents `certs` with
/// `key` when the server asks for a client certificate. Fails when the key does not fit.
pub fn client_config_with_cert(
    roots: RootCertStore,
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let config = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(certs, key)?;
    Ok(Arc::new(config))
}

/// An error that names `path` and what is wrong with it.
fn bad(path: &Path, what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{}: {what}", path.display()),
    )
}

/// The certificate chain of the PEM file `cert_pem` and the private key of `key_pem`. Errors
/// name the file and what is wrong with it.
fn chain_and_key(
    cert_pem: &Path,
    key_pem: &Path,
) -> io::Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let file = File::open(cert_pem).map_err(|e| bad(cert_pem, e.to_string()))?;
    let certs = CertificateDer::pem_reader_iter(BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert_pem, format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(bad(cert_pem, "no certificate in it".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_pem)
        .map_err(|e| bad(key_pem, format!("no PEM private key in it: {e}")))?;
    Ok((certs, key))
}

/// A server configuration ([`server_config`]) with the certificate chain of `cert_pem` and the
/// private key of `key_pem`, both PEM files. Errors name the file and what is wrong with it.
pub fn server_config_from_pem(cert_pem: &Path, key_pem: &Path) -> io::Result<Arc<ServerConfig>> {
    let (certs, key) = chain_and_key(cert_pem, key_pem)?;
    // ring's provider supports both protocol versions, so the only error left is the key's.
    server_config(certs, key).map_err(|e| {
        bad(
            key_pem,
            format!("the key does not fit the certificate chain: {e}"),
        )
    })
}

/// A client configuration ([`client_config_with_cert`]) trusting `roots` that presents the
/// certificate chain of `cert_pem` with the key of `key_pem`. Errors name the file and what is
/// wrong with it.
pub fn client_config_from_pem(
    roots: RootCertStore,
    cert_pem: &Path,
    key_pem: &Path,
) -> io::Result<Arc<ClientConfig>> {
    let (certs, key) = chain_and_key(cert_pem, key_pem)?;
    client_config_with_cert(roots, certs, key).map_err(|e| {
        bad(
            key_pem,
            format!("the key does not fit the certificate chain: {e}"),
        )
    })
}

/// The certificates of the PEM file `ca`, as trust roots (a private CA, or a self-signed
/// certificate). Errors name the file and what is wrong with it.
pub fn roots_from_pem(ca: &Path) -> io::Result<RootCertStore> {
    let certs = CertificateDer::pem_file_iter(ca)
        .map_err(|e| bad(ca, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(ca, format!("not PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(bad(ca, "no certificate in it".into()));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| bad(ca, e.to_string()))?;
    }
    Ok(roots)
}
