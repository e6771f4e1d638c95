//! TLS for the tests: certificates made at test time (a CA and a server certificate for
//! `localhost` and 127.0.0.1, and a client certificate, written as PEM files once per test
//! process), and the client configurations that trust that CA, or another one.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;

/// The PEM files of the test PKI.
pub struct TlsFiles {
    /// The CA that signed the server's certificate.
    pub ca: PathBuf,
    /// The server's certificate chain.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
    /// A CA that signed nothing the server has.
    pub other_ca: PathBuf,
    /// A client certificate signed by the CA (for a Redis with `tls-auth-clients yes`).
    pub client_cert: PathBuf,
    /// Its private key.
    pub client_key: PathBuf,
    ca_der: CertificateDer<'static>,
    other_ca_der: CertificateDer<'static>,
}

fn ca(name: &str) -> (CertifiedIssuer<'static, KeyPair>, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let pem = issuer.pem();
    (issuer, pem)
}

/// The test PKI, made on first use.
pub fn files() -> &'static TlsFiles {
    static FILES: OnceLock<TlsFiles> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("a-chat-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (issuer, ca_pem) = ca("a-chat test CA");
        let (other, other_pem) = ca("another CA");
        let key = KeyPair::generate().unwrap();
        let params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let client_key = KeyPair::generate().unwrap();
        let client_cert = CertificateParams::new(vec!["a-chat node".to_string()])
            .unwrap()
            .signed_by(&client_key, &issuer)
            .unwrap();
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        TlsFiles {
            ca: write("ca.pem", &ca_pem),
            cert: write("cert.pem", &cert.pem()),
            key: write("key.pem", &key.serialize_pem()),
            other_ca: write("other-ca.pem", &other_pem),
            client_cert: write("client-cert.pem", &client_cert.pem()),
            client_key: write("client-key.pem", &client_key.serialize_pem()),
            ca_der: issuer.der().clone(),
            other_ca_der: other.der().clone(),
        }
    })
}

/// A self-signed certificate for `localhost` and 127.0.0.1 that is marked a CA (as OpenSSL 3's
/// `req -x509` makes them), and its key: the PEM files' paths.
pub fn ca_marked_files() -> (PathBuf, PathBuf) {
    static FILES: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    FILES
        .get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("a-chat-tls-ca-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let key = KeyPair::generate().unwrap();
            let mut params =
                CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                    .unwrap();
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            let cert = params.self_signed(&key).unwrap();
            let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
            std::fs::write(&cert_path, cert.pem()).unwrap();
            std::fs::write(&key_path, key.serialize_pem()).unwrap();
            (cert_path, key_path)
        })
        .clone()
}

/// A client configuration trusting the test CA (or, with `other`, the CA that signed nothing).
pub fn client_config(other: bool) -> Arc<ClientConfig> {
    let files = files();
    let mut roots = rustls::RootCertStore::empty();
    let ca = if other {
        &files.other_ca_der
    } else {
        &files.ca_der
    };
    roots.add(ca.clone()).unwrap();
    a_chat::tls::client_config(roots).unwrap()
}
