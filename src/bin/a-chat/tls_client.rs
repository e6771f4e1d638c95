//! The client side of TLS for `a-chat client --tls` and `a-chat bench --tls`: the options,
//! whom to trust, and the name the server's certificate must show.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, RootCertStore};

/// How a client (or the load generator) speaks TLS.
#[derive(Debug, Clone, Args)]
pub struct TlsClientArgs {
    /// Speak TLS to the server.
    #[arg(long)]
    pub tls: bool,
    /// With --tls (or the load generator's --wss): trust the certificates of this PEM file (a
    /// self-signed one, say) instead of the system's roots.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
}

impl TlsClientArgs {
    /// Whether TLS is spoken, given whether another option (`--wss`) asks for it too; `--ca`
    /// without either is refused with a sentence.
    pub fn speaks_tls(&self, also: bool) -> io::Result<bool> {
        let tls = self.tls || also;
        if self.ca.is_some() && !tls {
            return Err(io::Error::other(
                "--ca needs --tls (or --wss): it says whom to trust over TLS",
            ));
        }
        Ok(tls)
    }
}

/// A client configuration trusting the certificates of `ca` (a PEM file), or the system's roots
/// when there is none.
pub fn client_config(ca: Option<&Path>) -> io::Result<Arc<ClientConfig>> {
    let roots = match ca {
        Some(path) => a_chat::tls::roots_from_pem(path)?,
        None => native_roots("give the server's certificate with --ca")?,
    };
    a_chat::tls::client_config(roots).map_err(io::Error::other)
}

/// The system's trust roots; `hint` says what to do when it has none.
pub fn native_roots(hint: &str) -> io::Result<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    if found.certs.is_empty() {
        return Err(io::Error::other(format!(
            "no trusted roots on this system: {hint}"
        )));
    }
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(found.certs);
    Ok(roots)
}

/// The name to check the certificate against: the host part of `addr` (`HOST:PORT`,
/// `[V6]:PORT`), an IP address or a DNS name.
pub fn server_name(addr: &str) -> io::Result<ServerName<'static>> {
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(host, _)| host)
        .trim_start_matches('[')
        .trim_end_matches(']');
    ServerName::try_from(host.to_string()).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{addr}: no server name for TLS: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_addresses() {
        assert!(matches!(
            server_name("127.0.0.1:8080").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]:8080").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("chat.example.org:443").unwrap(),
            ServerName::DnsName(_)
        ));
    }
}
